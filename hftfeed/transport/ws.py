"""Asyncio WebSocket client: a thin driver around the sans-I/O core in :mod:`hftfeed.codecs.ws_proto`.

Why an ``asyncio.Protocol`` and not streams: ``data_received`` runs the frame parser and the
``on_message`` callback inline, in the same loop callback as the socket read, with no task
switch, queue or extra copy between the kernel buffer and the venue parser (DESIGN.md hot path).

It is a ``BufferedProtocol``: the transport ``recv_into``s one preallocated buffer per
connection instead of ``recv(256 KiB)``, which allocated (and freed) a 256 KiB object per socket
read -- on PyPy a raw ``malloc`` that grew and shrank the heap (``brk``) tens of times a second.
The frame parser copies what it keeps (``FrameParser.feed``), so the buffer is reused at once.

Outgoing frames (text, ping, pong) can be limited to ``max_out_msgs_per_s`` in any one-second
window, because Binance disconnects a client that sends more than 5 messages per second
(pongs included). Frames over budget wait (``loop.call_later``); pongs jump the queue.
"""

import asyncio
import collections
import logging
import os
import socket
import ssl
import time
from urllib.parse import urlsplit

from hftfeed.codecs import ws_proto
from hftfeed.errors import (ConnectionClosed, InvalidHandshake, ProtocolError, TransportError,
                            escape_text)

log = logging.getLogger("hftfeed.ws")

_time_ns = time.time_ns                # bound once: called on every read of the hot path
_Message = ws_proto.Message             # class identity test on the hot path, no isinstance chain
_OP_TEXT = ws_proto.OP_TEXT

# The rate window is a little longer than 1 s so that network jitter cannot squeeze
# N+1 of our frames into one second as the venue measures it.
RATE_WINDOW_S = 1.05
READ_BUFFER_BYTES = 256 * 1024          # one read takes what the kernel has (asyncio's own size)
CLOSE_LINGER_S = 2.0                    # wait this long for the server to close TCP (RFC 6455 §7.1.1)


def parse_ws_url(url):
    """Split a ws:// or wss:// URL into (secure, host, port, resource). Host has no brackets."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise ValueError("not a ws:// or wss:// URL: %r" % (url,))
    if not parts.hostname:
        raise ValueError("URL without a host: %r" % (url,))
    if parts.fragment:
        raise ValueError("fragment identifiers are not allowed in WebSocket URLs (RFC 6455 §3)")
    secure = scheme == "wss"
    port = parts.port or (443 if secure else 80)
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return secure, parts.hostname, port, resource


class WsClient(asyncio.BufferedProtocol):
    """One client WebSocket connection. Create it with :func:`connect`, not directly."""

    def __init__(self, url, on_message, on_close, max_message_bytes, max_out_msgs_per_s, loop):
        self.url = url
        self.transport = None
        self.peer = None
        self.last_recv_ns = 0
        self.last_ping_ns = 0
        self.last_pong_ns = 0
        self.callback_errors = 0
        self.frames_dropped_at_close = 0
        self.close_initiated = False             # we sent the first close frame (close())
        self._loop = loop
        self._on_message = on_message
        self._on_close = on_close
        # Optional callback after all messages of one socket read were delivered: lets the
        # owner batch work per read (the feed flushes its UDP packet here in "read" mode).
        self.on_read_end = None
        self._conn = ws_proto.Connection(ws_proto.CLIENT, max_message_bytes=max_message_bytes, auto_pong=False)
        self.closed = loop.create_future()
        self.closed.add_done_callback(_mark_retrieved)
        self._lost = loop.create_future()        # set when TCP is gone
        self._handshake = loop.create_future()
        self._handshake.add_done_callback(_mark_retrieved)
        self._client_key = ws_proto.make_client_key()
        self._read_view = memoryview(bytearray(READ_BUFFER_BYTES))   # recv_into target, reused
        self._head_buf = bytearray()
        self._open = False
        self._linger_handle = None
        # Outgoing rate limit state: send times in the current window, and the waiting frames.
        self._rate = max_out_msgs_per_s
        self._sent_times = collections.deque()
        self._pending = collections.deque()      # (kind, payload): "text" / "ping"
        self._pending_pong = None                # newest unanswered ping payload (§5.5.3 allows one)
        self._pump_handle = None

    # ---- counters (kept by the protocol core)

    @property
    def messages_in(self):
        return self._conn.messages_in

    @property
    def frames_in(self):
        return self._conn.frames_in

    @property
    def pings_in(self):
        return self._conn.pings_in

    @property
    def pongs_out(self):
        return self._conn.pongs_out

    @property
    def bytes_in(self):
        return self._conn.bytes_in

    @property
    def state(self):
        return self._conn.state

    # ---- asyncio.Protocol

    def connection_made(self, transport):
        self.transport = transport
        self.peer = transport.get_extra_info("peername")

    def get_buffer(self, sizehint):
        return self._read_view

    def buffer_updated(self, nbytes):
        self.data_received(self._read_view[:nbytes])

    def data_received(self, data):
        """One socket read (``data``: bytes, or a view of the read buffer valid during this
        call only)."""
        recv_ns = _time_ns()                     # one clock read per socket read
        if not self._open:
            self.last_recv_ns = recv_ns
            self._handshake_data(data)
            return
        conn = self._conn
        try:
            events = conn.receive_data(data)
        except ProtocolError as exc:
            self._dispatch(exc.events, recv_ns)
            self._fail(exc)
            return
        if events:
            # Liveness means progress: only a complete frame (a message, ping, pong or close)
            # moves last_recv_ns. A peer trickling one byte a second into a frame it never
            # finishes, or endless empty fragments, is as silent as one sending nothing.
            self.last_recv_ns = recv_ns
        on_message = self._on_message
        for event in events:
            if event.__class__ is _Message:      # hot path: a data message
                try:
                    on_message(event.text if event.opcode == _OP_TEXT else event.payload, recv_ns)
                except Exception:                # the callback's bug must not kill the feed
                    self.callback_errors += 1
                    log.exception("on_message callback failed (%d so far); message dropped", self.callback_errors)
            else:
                self._control_event(event, recv_ns)
        on_read_end = self.on_read_end
        if on_read_end is not None:
            try:
                on_read_end()
            except Exception:                    # same rule as on_message: log, count, go on
                self.callback_errors += 1
                log.exception("on_read_end callback failed (%d so far)", self.callback_errors)
        if conn.close_sent:
            out = conn.data_to_send()
            if out:
                self.transport.write(out)

    def _dispatch(self, events, recv_ns):
        """Deliver events decoded before a protocol error in the same read."""
        for event in events or ():
            if event.__class__ is _Message:
                try:
                    self._on_message(event.text if event.opcode == _OP_TEXT else event.payload, recv_ns)
                except Exception:
                    self.callback_errors += 1
                    log.exception("on_message callback failed; message dropped")

    def _control_event(self, event, recv_ns):
        if isinstance(event, ws_proto.Ping):
            self.last_ping_ns = recv_ns
            self._queue_pong(event.payload)
        elif isinstance(event, ws_proto.Pong):
            self.last_pong_ns = recv_ns
        elif isinstance(event, ws_proto.Close):
            self._on_close_frame(event)

    def _on_close_frame(self, event):
        # The core queued the echo (§5.5.1); write it, then let the server close TCP first (§7.1.1).
        out = self._conn.data_to_send()
        if out:
            self.transport.write(out)
        self._drop_pending()
        if event.code == 1006:
            self._finish(ConnectionClosed("connection closed without a close frame", code=1006))
            return
        log.info("%s: close frame received, code %d %s", self.url, event.code,
                 escape_text(event.reason, 123))
        self._finish((event.code, event.reason))
        if self._linger_handle is None:
            self._linger_handle = self._loop.call_later(CLOSE_LINGER_S, self._close_transport)

    def eof_received(self):
        if self._open:
            events = self._conn.receive_data(b"")
            for event in events:
                self._control_event(event, _time_ns())
        return False                             # let the transport close itself

    def connection_lost(self, exc):
        self._cancel_timers()
        if not self._lost.done():
            self._lost.set_result(None)
        # An SSL app transport is not marked closed when the peer ended the stream (it would
        # warn "unclosed transport" when collected): close it explicitly, a no-op otherwise.
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if not self._handshake.done():
            self._handshake.set_exception(
                TransportError("connection lost during the opening handshake: %s" % (exc or "EOF")))
        if self._conn.close_received:
            self._finish((self._conn.close_code, self._conn.close_reason))
        else:
            err = ConnectionClosed("connection lost without a close frame: %s" % (exc or "EOF"), code=1006)
            if exc is not None:
                err.__cause__ = exc
            self._finish(err)

    # ---- opening handshake (RFC 6455 §4.1)

    def _start_handshake(self, host_value, resource, extra_headers):
        self.transport.write(ws_proto.build_client_request(host_value, resource, self._client_key, extra_headers))

    def _handshake_data(self, data):
        self._head_buf += data
        try:
            found = ws_proto.parse_http_head(self._head_buf)
            if found is None:
                return
            head, consumed = found
            ws_proto.check_server_response(head, self._client_key)
        except InvalidHandshake as exc:
            if not self._handshake.done():
                self._handshake.set_exception(exc)
            self.transport.abort()
            return
        rest = bytes(self._head_buf[consumed:])
        self._head_buf = bytearray()
        self._open = True
        self._handshake.set_result(None)
        if rest:
            self.data_received(rest)             # frames sent right behind the 101

    # ---- sending

    def send_text(self, text):
        """Send a text message (str, or UTF-8 bytes), subject to the outgoing rate limit."""
        self._send("text", text)

    def send_ping(self, payload=b""):
        """Send a ping (at most 125 bytes), subject to the outgoing rate limit."""
        if len(payload) > ws_proto.MAX_CONTROL_PAYLOAD_BYTES:
            raise ValueError("ping payload over 125 bytes")
        self._send("ping", payload)

    def _send(self, kind, payload):
        if self._conn.close_sent or self.closed.done():
            raise ConnectionClosed("connection is closing or closed", code=self._conn.close_code or 1006)
        if self._rate is None:
            self._write_frame(kind, payload)
            return
        self._pending.append((kind, payload))
        self._pump()

    def _queue_pong(self, payload):
        if self._conn.close_sent:
            return
        if self._rate is None:
            self._write_frame("pong", payload)
            return
        # §5.5.3: with several pings unanswered, answering only the most recent is allowed.
        self._pending_pong = payload
        self._pump()

    def _write_frame(self, kind, payload):
        conn = self._conn
        if kind == "text":
            conn.send_text(payload)
        elif kind == "ping":
            conn.send_ping(payload)
        else:
            conn.send_pong(payload)
        self.transport.write(conn.data_to_send())

    def _pump(self):
        """Send waiting frames while the window allows; otherwise come back when it does."""
        self._pump_handle = None
        if self._conn.close_sent or self.transport is None or self.transport.is_closing():
            return
        now = self._loop.time()
        sent = self._sent_times
        while sent and now - sent[0] >= RATE_WINDOW_S:
            sent.popleft()
        while (self._pending_pong is not None or self._pending) and len(sent) < self._rate:
            if self._pending_pong is not None:      # pongs first: an unanswered ping costs the connection
                kind, payload = "pong", self._pending_pong
                self._pending_pong = None
            else:
                kind, payload = self._pending.popleft()
            self._write_frame(kind, payload)
            sent.append(now)
        if (self._pending_pong is not None or self._pending) and self._pump_handle is None:
            delay_s = max(0.0, RATE_WINDOW_S - (now - sent[0]))
            self._pump_handle = self._loop.call_later(delay_s, self._pump)

    def _drop_pending(self):
        dropped = len(self._pending) + (self._pending_pong is not None)
        if dropped:
            self.frames_dropped_at_close += dropped
            log.warning("%s: %d queued outgoing frame(s) dropped at close", self.url, dropped)
        self._pending.clear()
        self._pending_pong = None

    # ---- closing

    async def close(self, code=1000, reason="", timeout_s=2.0):
        """Closing handshake (§7.1.2), then TCP close. Close frames bypass the rate limit."""
        if not self.closed.done() and not self._conn.close_sent and self.transport is not None:
            self.close_initiated = True
            self._drop_pending()
            self._conn.send_close(code, reason)
            self.transport.write(self._conn.data_to_send())
        deadline = self._loop.time() + timeout_s
        if not self.closed.done():
            try:
                await asyncio.wait_for(asyncio.shield(self.closed), timeout_s)
            except asyncio.TimeoutError:
                log.warning("%s: no close frame from the server within %.1f s; aborting", self.url, timeout_s)
                self.abort()
            except Exception as exc:             # the outcome is already recorded in self.closed
                log.debug("%s: connection ended with %r during close", self.url, exc)
        # §7.1.1: the server should close TCP first (it keeps TIME_WAIT); give it the rest of the time.
        if not self._lost.done() and self.transport is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._lost), max(0.0, deadline - self._loop.time()))
            except asyncio.TimeoutError:
                log.debug("%s: server kept TCP open after the close handshake; closing it", self.url)
                self._close_transport()

    def abort(self):
        """Drop the TCP connection now, without a close frame."""
        if self.transport is not None:
            self.transport.abort()

    def _close_transport(self):
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def _fail(self, exc):
        """§7.1.7: send our close frame (queued by the core), close TCP, report the error."""
        log.warning("%s: protocol error, closing with %d: %s", self.url, exc.close_code, exc)
        out = self._conn.data_to_send()
        if out:
            self.transport.write(out)
        self._drop_pending()
        self._finish(exc)
        self._close_transport()

    def _finish(self, outcome):
        if self.closed.done():
            return
        self._cancel_pump()
        if isinstance(outcome, BaseException):
            self.closed.set_exception(outcome)
            code = getattr(outcome, "close_code", None) or getattr(outcome, "code", 1006)
            reason = str(outcome)
        else:
            self.closed.set_result(outcome)
            code, reason = outcome
        if self._on_close is not None:
            try:
                self._on_close(code, reason)
            except Exception:
                log.exception("on_close callback failed")

    def _cancel_pump(self):
        if self._pump_handle is not None:
            self._pump_handle.cancel()
            self._pump_handle = None

    def _cancel_timers(self):
        self._cancel_pump()
        if self._linger_handle is not None:
            self._linger_handle.cancel()
            self._linger_handle = None


def _mark_retrieved(fut):
    """Mark a future's exception as seen: the outcome is logged by us and kept on the future."""
    if not fut.cancelled():
        fut.exception()


def trust_store_description(ssl_context):
    """One line naming the CA certificates ``ssl_context`` verifies venues against, for the
    start-up log. Why: OpenSSL honours SSL_CERT_FILE / SSL_CERT_DIR silently, so a process
    started with another CA bundle in its environment would otherwise trust it unannounced."""
    paths = ssl.get_default_verify_paths()
    env = [(name, os.environ.get(name)) for name in ("SSL_CERT_FILE", "SSL_CERT_DIR")]
    overridden = ["%s=%s" % (name, escape_text(value, 200)) for name, value in env if value]
    cafile = paths.cafile or paths.openssl_cafile
    capath = paths.capath or paths.openssl_capath
    stats = ssl_context.cert_store_stats()
    return "%s; file %s, directory %s; %d CA certificates loaded%s" % (
        "from the environment: " + ", ".join(overridden) if overridden else "system default",
        escape_text(cafile or "-", 200), escape_text(capath or "-", 200), stats.get("x509_ca", 0),
        " (a directory's certificates load on first use)" if capath else "")


MAX_ADDRESS_ATTEMPTS = 3   # addresses tried within one connect_timeout_s, each with a share


def interleave_families(infos):
    """getaddrinfo results reordered to alternate address families, the resolver's first
    family first (RFC 8305 section 4), so a broken IPv6 (or IPv4) path costs one attempt."""
    by_family = {}
    order = []
    for info in infos:
        if info[0] not in by_family:
            by_family[info[0]] = []
            order.append(info[0])
        by_family[info[0]].append(info)
    out = []
    while any(by_family.values()):
        for family in order:
            if by_family[family]:
                out.append(by_family[family].pop(0))
    return out


async def _open_socket(loop, host, port, rcvbuf_bytes, connect_timeout_s=None):
    """Resolve and connect a non-blocking TCP socket (SO_RCVBUF must be set before connect).

    With several addresses each attempt gets ``connect_timeout_s / MAX_ADDRESS_ATTEMPTS``: a
    blackholed address (SYNs dropped, e.g. IPv6 routed but filtered) times out instead of
    using the whole connect budget, and the next family is tried."""
    infos = interleave_families(await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    attempt_s = None
    if connect_timeout_s and len(infos) > 1:
        attempt_s = connect_timeout_s / min(len(infos), MAX_ADDRESS_ATTEMPTS)
    last_error = None
    for family, type_, proto, _canon, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            if rcvbuf_bytes:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, int(rcvbuf_bytes))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)   # small frames leave at once
            await asyncio.wait_for(loop.sock_connect(sock, addr), attempt_s)
            return sock
        except asyncio.TimeoutError:
            log.info("connect to %s: no answer within %.1f s; trying the next address",
                     addr, attempt_s)
            last_error = "timed out"
            sock.close()
        except OSError as exc:
            log.debug("connect to %s failed: %s", addr, exc)
            last_error = exc
            sock.close()
        except BaseException:
            sock.close()
            raise
    raise TransportError("cannot connect to %s:%s: %s" % (host, port, last_error))


async def _connect(url, on_message, on_close, ssl_context, max_message_bytes, extra_headers,
                   rcvbuf_bytes, max_out_msgs_per_s, loop, connect_timeout_s):
    secure, host, port, resource = parse_ws_url(url)
    if secure and ssl_context is None:
        ssl_context = ssl.create_default_context()      # verification and hostname check on
    sock = await _open_socket(loop, host, port, rcvbuf_bytes, connect_timeout_s)
    client = WsClient(url, on_message, on_close, max_message_bytes, max_out_msgs_per_s, loop)
    try:
        await loop.create_connection(lambda: client, sock=sock, ssl=ssl_context if secure else None,
                                     server_hostname=host if secure else None)
    except BaseException:
        sock.close()
        raise
    try:
        client._start_handshake(ws_proto.host_header(host, port, secure), resource, extra_headers)
        await client._handshake
    except BaseException:
        client.abort()
        raise
    log.info("%s: connected to %s", url, client.peer)
    return client


async def connect(url, on_message, *, on_close=None, ssl_context=None, connect_timeout_s=10.0,
                  max_message_bytes=16 * 2**20, extra_headers=(), rcvbuf_bytes=None,
                  max_out_msgs_per_s=None, loop=None):
    """Open a WebSocket client connection and return its :class:`WsClient` once the handshake passed.

    ``on_message(text_or_bytes, recv_ns)`` runs inline for every data message (str for text,
    bytes for binary); ``on_close(code, reason)`` runs once when the connection ends.
    Raises :class:`InvalidHandshake` or :class:`TransportError` (timeout, refused, TLS failure).
    """
    if loop is None:
        loop = asyncio.get_running_loop()
    try:
        return await asyncio.wait_for(
            _connect(url, on_message, on_close, ssl_context, max_message_bytes, extra_headers,
                     rcvbuf_bytes, max_out_msgs_per_s, loop, connect_timeout_s),
            connect_timeout_s)
    except asyncio.TimeoutError:
        raise TransportError("connect to %s timed out after %.1f s" % (url, connect_timeout_s)) from None
    except (InvalidHandshake, TransportError):
        raise
    except OSError as exc:                       # refused, unreachable, DNS, TLS verification
        raise TransportError("connect to %s failed: %s" % (url, exc)) from exc
