"""A deliberately thin WebSocket + HTTP client for poking the simulator (tests, tools, the demo).

Built directly on ``ws_proto`` in the client role over asyncio streams, with no reconnects or
retries: it shows exactly what the server sent (events, or raw frames with ``raw_frames=True``
so fragmentation and broken frames stay visible) and lets a test misbehave on purpose (never
answer pings, flood the server with messages).
"""

import asyncio
import json
import logging
import os

from hftfeed.errors import HftfeedError

from hftfeed.codecs.ws_proto import (CLIENT, Close, Connection, FrameParser, Message, Ping,
                              build_client_request, check_server_response, host_header,
                              make_client_key, parse_http_head)

log = logging.getLogger("hftfeed.sim.rawclient")


async def http_request(host, port, method, target, body=None, timeout_s=5.0, headers=()):
    """One HTTP/1.1 request on a fresh connection: ``(status, headers dict, body bytes)``.

    The body is read to Content-Length or EOF; a truncated body is returned as far as it came.
    """
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    try:
        data = body if isinstance(body, bytes) else (body or "").encode("utf-8")
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host_header(host, port, False),
                 "Connection: close", "Content-Length: %d" % len(data)]
        lines.extend("%s: %s" % h for h in headers)
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data)
        buf = b""
        while True:
            found = parse_http_head(buf)
            if found is not None:
                break
            chunk = await asyncio.wait_for(reader.read(65536), timeout_s)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            buf += chunk
        head, consumed = found
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        rest = buf[consumed:]
        length = int(hdrs.get("content-length", "-1"))
        while length < 0 or len(rest) < length:
            chunk = await asyncio.wait_for(reader.read(65536), timeout_s)
            if not chunk:
                break
            rest += chunk
        return status, hdrs, rest
    finally:
        writer.close()


async def get_json(host, port, target, timeout_s=5.0):
    status, _hdrs, body = await http_request(host, port, "GET", target, timeout_s=timeout_s)
    return status, json.loads(body.decode("utf-8"))


async def post_fault(host, port, spec, timeout_s=5.0):
    """``POST /_sim/fault``; returns ``(status, reply dict)``."""
    status, _hdrs, body = await http_request(host, port, "POST", "/_sim/fault",
                                             json.dumps(spec), timeout_s=timeout_s)
    return status, json.loads(body.decode("utf-8"))


class RawWs(object):
    """An open client connection (see :func:`ws_connect`)."""

    def __init__(self, reader, writer, raw_frames, auto_pong, leftover):
        self.reader = reader
        self.writer = writer
        self.conn = Connection(CLIENT, max_message_bytes=64 * 1024 * 1024, auto_pong=auto_pong)
        self.raw_frames = raw_frames
        self.parser = FrameParser(expect_masked=False, max_frame_bytes=1 << 30) if raw_frames else None
        self._pending = []
        self.eof = False
        if leftover:
            self._feed(leftover)

    def _feed(self, data):
        if self.raw_frames:
            self.parser.feed(data)
            while True:
                frame = self.parser.next_frame()
                if frame is None:
                    break
                self._pending.append(frame)
            return
        self._pending.extend(self.conn.receive_data(data))
        out = self.conn.data_to_send()
        if out:
            self.writer.write(out)

    async def recv(self, timeout_s=5.0):
        """Next event (Message, Ping, Pong, Close) or Frame in raw mode; Close(1006) on EOF."""
        while not self._pending:
            if self.eof:
                return Close(1006, "")
            chunk = await asyncio.wait_for(self.reader.read(1 << 20), timeout_s)
            if not chunk:
                self.eof = True
                if not self.raw_frames:
                    self._pending.extend(self.conn.receive_data(b""))
                continue
            self._feed(chunk)
        return self._pending.pop(0)

    async def recv_message(self, timeout_s=5.0):
        """Next data message as text (pings answered by the protocol, pongs skipped)."""
        while True:
            ev = await self.recv(timeout_s)
            if isinstance(ev, Message):
                return ev.text if ev.text is not None else ev.payload
            if isinstance(ev, Close):
                raise ConnectionError("closed by server: %s %s" % (ev.code, ev.reason))

    async def recv_json(self, timeout_s=5.0):
        return json.loads(await self.recv_message(timeout_s))

    def keep_reading(self):
        """Read (and answer pings) in the background, counting messages; returns the task."""
        self.messages_drained = 0

        async def drain():
            while True:
                ev = await self.recv(timeout_s=3600)
                if isinstance(ev, Message):
                    self.messages_drained += 1
                elif isinstance(ev, Close):
                    return ev
        return asyncio.get_running_loop().create_task(drain())

    def send_text(self, text):
        self.conn.send_text(text)
        self.writer.write(self.conn.data_to_send())

    def send_json(self, obj):
        self.send_text(json.dumps(obj))

    def send_ping(self, payload=b""):
        self.conn.send_ping(payload)
        self.writer.write(self.conn.data_to_send())

    def send_pong(self, payload=b""):
        self.conn.send_pong(payload)
        self.writer.write(self.conn.data_to_send())

    async def close(self):
        """Send a close frame (if the connection still allows one) and drop the TCP connection."""
        try:
            self.conn.send_close(1000)
            self.writer.write(self.conn.data_to_send())
        except (HftfeedError, OSError) as exc:
            log.debug("close frame not sent: %s", exc)
        self.writer.close()


async def ws_connect(host, port, target, timeout_s=5.0, raw_frames=False, auto_pong=True):
    """Open a WebSocket to ``target`` (e.g. ``/stream?streams=btcusdt@depth@100ms``)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    key = make_client_key(os.urandom)
    writer.write(build_client_request(host_header(host, port, False), target, key))
    buf = b""
    while True:
        found = parse_http_head(buf)
        if found is not None:
            break
        chunk = await asyncio.wait_for(reader.read(65536), timeout_s)
        if not chunk:
            writer.close()
            raise ConnectionError("closed during handshake: %r" % buf[:200])
        buf += chunk
    head, consumed = found
    check_server_response(head, key)
    return RawWs(reader, writer, raw_frames, auto_pong, buf[consumed:])


__all__ = ["http_request", "get_json", "post_fault", "ws_connect", "RawWs", "Message", "Ping",
           "Close"]
