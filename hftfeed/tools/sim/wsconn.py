"""One simulated WebSocket client connection on the server side: keepalive, limits, odd frames.

The server fans the shared event stream out by appending ready-made frames to ``conn.out``; this
class owns everything that is per connection: the RFC 6455 state (``ws_proto.Connection`` in the
server role), the venue's keepalive rules (Binance: a ping every ``ping_interval_s``, no pong
answering a ping within ``pong_timeout_s`` -> disconnect; Bybit: a client silent for
``idle_timeout_s`` is dropped; OKX: a connection with no subscription, or nothing pushed, for
``idle_timeout_s`` is closed), the incoming message limit (pings, pongs and JSON requests count
unless the dialect's session exempts a message, like OKX's ``ping``), the connection lifetime
with its shutdown notice, and the per-connection faults (fragmented messages, half-open, abrupt
close, broken frames).
"""

import collections
import logging
import time

from hftfeed.errors import HftfeedError
from hftfeed.codecs.ws_proto import (OP_CONT, OP_TEXT, SERVER, Close, Connection, Message, Ping, Pong,
                              encode_frame)

log = logging.getLogger("hftfeed.sim.wsconn")

MAX_CLIENT_MESSAGE_BYTES = 1 << 16  # clients only send small JSON requests and control frames


class WsConn(object):
    """Server-side state of one upgraded connection (driven by ``server.SimServer``)."""

    def __init__(self, server, conn_id, transport, session, peer, now_s):
        cfg = server.config
        self.server = server
        self.id = conn_id
        self.transport = transport
        self.session = session             # dialect.StreamSession: streams + combined flag
        self.peer = peer
        self.opened_s = now_s
        self.ws = Connection(SERVER, max_message_bytes=MAX_CLIENT_MESSAGE_BYTES)
        self.out = []                      # frames queued during the current tick
        # Venues numbering every message of a connection (Coinbase): the session stamps each
        # outgoing payload, so every data message takes the per-connection path.
        self.stamp = getattr(session, "stamp", None)
        self.special = self.stamp is not None  # hot-path guard: a per-connection transform
        self.fragment_parts = 0
        self.fragment_left = 0
        self.half_open = False
        self.closing = False
        self.closed = False
        self.close_reason = ""
        # Venues without ping frames (Bybit, OKX: application-level pings from the client).
        self.pings_stopped = cfg.ping_interval_s is None
        self.ignore_pongs = False
        self.pending_pings = []            # [(payload bytes, sent monotonic s)], oldest first
        self.next_ping_s = now_s + (cfg.ping_interval_s or 0.0)
        dialect = server.dialect
        self.unsolicited_pongs_count = getattr(dialect, "UNSOLICITED_PONGS_KEEP_ALIVE", False)
        self.idle_rule = getattr(dialect, "IDLE_RULE", None) if cfg.idle_timeout_s else None
        self.last_client_s = now_s         # last frame from the client
        self.last_push_s = now_s           # last write to the client (seen by on_timer)
        self.pushed = False                # set by write(): cheaper than a clock read per write
        self.shutdown_sent = False
        self.shutdown_reason = "server_shutdown"
        self.close_at_s = None             # after a serverShutdown notice
        self.force_close_at_s = None       # close-handshake or half-open timeout
        self.set_lifetime(cfg.lifetime_s, now_s)
        self.win_start_s = now_s
        self.win_count = 0
        self.messages_sent = 0
        self.bytes_sent = 0
        # Our own backlog while the transport is paused (above its high-water mark): appending
        # chunks is O(1), while letting asyncio's buffer grow costs a memmove of the whole
        # buffer per send (measured: a 300k msg/s overload fell to 90k msg/s that way).
        self.paused = False
        self.backlog = collections.deque()
        self.backlog_bytes = 0
        self.pings_sent = 0
        self.pongs_received = 0

    # ------------------------------------------------------------------ lifetime
    def set_lifetime(self, lifetime_s, now_s, from_now=False):
        """Close ``lifetime_s`` after opening (or from now); notice goes out shortly before."""
        base = now_s if from_now else self.opened_s
        self.deadline_s = base + lifetime_s
        notice = min(self.server.config.shutdown_notice_s, 0.2 * lifetime_s)
        self.notice_at_s = self.deadline_s - notice

    def describe(self):
        return {"id": self.id, "peer": self.peer, "streams": list(self.session.streams),
                "combined": self.session.combined, "messages_sent": self.messages_sent,
                "bytes_sent": self.bytes_sent, "pings_sent": self.pings_sent,
                "pongs_received": self.pongs_received, "half_open": self.half_open,
                "closing": self.closing, "age_s": round(time.monotonic() - self.opened_s, 3)}

    # ------------------------------------------------------------------ receiving
    def on_data(self, data):
        """Bytes from the client: control frames, JSON requests, close."""
        if self.closed or self.half_open:
            return
        try:
            events = self.ws.receive_data(data)
        except HftfeedError as exc:
            log.info("conn %d: client broke the protocol: %s", self.id, exc)
            self._write_control()
            self.server.count_disconnect("client_protocol_error")
            self.drop("client protocol error: %s" % exc)
            return
        now = time.monotonic()
        self.last_client_s = now
        for ev in events:
            if isinstance(ev, Close):
                self._write_control()
                self.drop("client closed (%s)" % ev.code)
                return
            if isinstance(ev, (Message, Ping, Pong)):
                exempt = isinstance(ev, Message) and ev.text is not None \
                    and not self.session_counts(ev.text)
                if not exempt and not self._count_incoming(now):
                    return
            if isinstance(ev, Pong):
                self._on_pong(ev.payload)
            elif isinstance(ev, Message):
                self._on_request(ev)
        self._write_control()

    def session_counts(self, text):
        """Does this client message count against the venue's incoming-message limit?"""
        counts = getattr(self.session, "counts_toward_limit", None)
        return True if counts is None else counts(text)

    def _count_incoming(self, now):
        """Venue limit: more than max_incoming_per_s messages in one second -> disconnect."""
        if now - self.win_start_s >= 1.0:
            self.win_start_s = now
            self.win_count = 0
        self.win_count += 1
        if self.win_count > self.server.config.max_incoming_per_s:
            log.info("conn %d: %d incoming messages within a second: disconnecting",
                     self.id, self.win_count)
            self.server.count_disconnect("incoming_rate")
            self.close_with(1008, "Too many requests")
            return False
        return True

    def _on_pong(self, payload):
        self.pongs_received += 1
        self.server.pongs_received += 1
        if self.ignore_pongs:
            return
        if self.unsolicited_pongs_count:
            self.pending_pings = []         # USD-M futures: any pong keeps the connection
            return
        # Only a pong echoing one of our pings counts; unsolicited pongs keep nothing alive.
        for i, (sent_payload, _sent_s) in enumerate(self.pending_pings):
            if sent_payload == payload:
                del self.pending_pings[:i + 1]
                return

    def _on_request(self, msg):
        if msg.text is None:
            return  # binary frames carry no request on this venue
        before = list(self.session.streams)
        reply = self.session.handle_text(msg.text)
        if self.session.streams != before:
            self.server.resubscribe(self)
        if isinstance(reply, str):
            self.send_raw_text(reply)
            return
        for text in reply:  # Bybit/OKX: the answer, then the snapshots it promises, in order
            self.send_raw_text(text)

    def _write_control(self):
        data = self.ws.data_to_send()
        if data and not self.closed:
            self.write(data)

    def write(self, data):
        """Every byte to the client goes through here, so frames keep their order."""
        self.pushed = True
        if self.paused or self.backlog:
            self.backlog.append(data)
            self.backlog_bytes += len(data)
        else:
            self.transport.write(data)

    def pause_writing(self):
        self.paused = True

    def resume_writing(self):
        """Feed the backlog to the transport until it pauses us again (or the backlog is empty)."""
        self.paused = False
        backlog = self.backlog
        while backlog and not self.paused and not self.closed:
            data = backlog.popleft()
            self.backlog_bytes -= len(data)
            self.transport.write(data)  # may call pause_writing() synchronously

    # ------------------------------------------------------------------ sending
    def send_raw_text(self, text):
        """Send one text message now (outside the tick batching), honouring a fragment fault."""
        if self.closed or self.closing or self.half_open:
            return
        payload = text.encode("utf-8") if isinstance(text, str) else text
        if self.special:
            self.push_special(payload)
            frames = b"".join(self.out)
            self.out = []
        else:
            frames = encode_frame(OP_TEXT, payload)
        self.write(frames)

    def push_special(self, payload):
        """Queue one data message when a per-connection transform (fragmentation, a
        per-connection sequence stamp) is armed."""
        if self.stamp is not None:
            payload = self.stamp(payload)
        if self.fragment_left > 0:
            n = self.fragment_parts
            size = max(1, (len(payload) + n - 1) // n)
            chunks = [payload[i:i + size] for i in range(0, len(payload), size)] or [b""]
            last = len(chunks) - 1
            for i, chunk in enumerate(chunks):
                self.out.append(encode_frame(OP_TEXT if i == 0 else OP_CONT, chunk,
                                             fin=(i == last)))
            self.fragment_left -= 1
            if self.fragment_left <= 0:
                self.special = self.stamp is not None
            return
        self.special = self.stamp is not None
        self.out.append(encode_frame(OP_TEXT, payload))

    def flush(self):
        """Write this tick's frames in one transport.write (fewer syscalls than one per frame)."""
        out = self.out
        if not out:
            return 0
        self.out = []
        data = out[0] if len(out) == 1 else b"".join(out)
        self.write(data)
        self.messages_sent += len(out)
        self.bytes_sent += len(data)
        return len(data)

    def send_frame_bytes(self, data):
        if not self.closed:
            self.write(data)

    # ------------------------------------------------------------------ keepalive and timers
    def on_timer(self, now_s):
        """Housekeeping: pings, pong timeout, lifetime notice and close, forced closes."""
        if self.closed:
            return
        if self.force_close_at_s is not None and now_s >= self.force_close_at_s:
            self.drop("timed out (%s)" % (self.close_reason or "close"), abort=True)
            return
        if self.half_open or self.closing:
            return
        cfg = self.server.config
        if self.idle_rule is not None and self._idle(now_s, cfg.idle_timeout_s):
            return
        if self.pending_pings and now_s - self.pending_pings[0][1] >= cfg.pong_timeout_s:
            log.info("conn %d: no pong within %.1f s: disconnecting", self.id, cfg.pong_timeout_s)
            self.server.count_disconnect("pong_timeout")
            self.drop("pong timeout")
            return
        if not self.pings_stopped and now_s >= self.next_ping_s:
            self.next_ping_s = now_s + cfg.ping_interval_s
            payload = ("%d" % int(time.time() * 1000)).encode("ascii")
            self.pending_pings.append((payload, now_s))
            self.ws.send_ping(payload)
            self._write_control()
            self.pings_sent += 1
            self.server.pings_sent += 1
        if not self.shutdown_sent and now_s >= self.notice_at_s:
            self.send_server_shutdown(self.deadline_s - now_s, "lifetime")
        if self.close_at_s is not None and now_s >= self.close_at_s:
            self.server.count_disconnect(self.shutdown_reason)
            self.close_with(1001, "Server shutdown")
            return
        if now_s >= self.deadline_s:
            self.server.count_disconnect("lifetime")
            self.close_with(1001, "Connection lifetime expired")

    def _idle(self, now_s, timeout_s):
        """The venue's idle rule; True if it closed the connection."""
        if self.pushed:
            self.pushed = False
            self.last_push_s = now_s
        if self.idle_rule == "client":
            idle = now_s - self.last_client_s >= timeout_s
        else:   # "push": nothing sent for that long, or never subscribed that long (OKX)
            idle = now_s - self.last_push_s >= timeout_s or (
                not getattr(self.session, "ever_subscribed", True)
                and now_s - self.opened_s >= timeout_s)
        if not idle:
            return False
        code, reason = getattr(self.server.dialect, "IDLE_CLOSE", (1000, "idle"))
        log.info("conn %d: idle for %.1f s (%s rule): closing", self.id, timeout_s, self.idle_rule)
        self.server.count_disconnect("idle")
        self.close_with(code, reason)
        return True

    def send_server_shutdown(self, close_after_s, reason="server_shutdown"):
        """The venue's notice that the server goes away; the close follows ``close_after_s`` later.
        (Venues without such a notice just close.)"""
        self.shutdown_sent = True
        self.shutdown_reason = reason
        notice = self.server.dialect.server_shutdown_payload(int(time.time() * 1000))
        if notice is not None:
            self.send_raw_text(notice)
        self.close_at_s = time.monotonic() + max(0.0, close_after_s)

    # ------------------------------------------------------------------ closing
    def close_with(self, code, reason=""):
        """Start the closing handshake; the TCP connection goes when the client answers (or 5 s)."""
        if self.closed or self.closing:
            return
        self.closing = True
        self.close_reason = reason
        self.out = []
        try:
            self.ws.send_close(code, reason)
        except ValueError as exc:  # a fault asked for a code RFC 6455 forbids on the wire
            log.info("conn %d: close code %r not sendable (%s); sending 1008", self.id, code, exc)
            self.ws.send_close(1008, reason)
        self._write_control()
        self.force_close_at_s = time.monotonic() + 5.0

    def drop(self, reason, abort=False):
        """Close the TCP connection now (no close frame unless one was already queued)."""
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.out = []
        self.backlog.clear()
        self.backlog_bytes = 0
        log.debug("conn %d closed: %s", self.id, reason)
        if abort:
            self.transport.abort()
        else:
            self.transport.close()
        self.server.forget(self)
