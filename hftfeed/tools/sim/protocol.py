"""The simulator's TCP connections: HTTP/1.1 requests until a WebSocket upgrade, then frames.

One :class:`SimProtocol` per accepted connection. REST requests go to ``rest.handle`` (keep-alive
supported, one request at a time); an upgrade on a stream path is validated with ``ws_proto``
(RFC 6455 §4.2) and the venue dialect (``open_session``: path, stream names, stream count),
answered 101, and the connection is handed to a ``wsconn.WsConn`` registered with the server.
"""

import asyncio
import logging
import socket

from hftfeed.errors import InvalidHandshake
from hftfeed.tools.sim import httpd
from hftfeed.codecs.ws_proto import build_rejection, build_server_response, parse_client_request

log = logging.getLogger("hftfeed.sim.protocol")


def upgrade(server, proto, req):
    """Validate the upgrade; answer 101 and return the new WsConn, or reject and return None."""
    if not server.dialect.is_ws_path(req.target):
        proto.reject(404, server.dialect.error_body(-1, "Not found"))
        return None
    try:
        parse_client_request(req.head_bytes)
        session = server.dialect.open_session(req.target, server.config.max_streams)
    except InvalidHandshake as exc:
        proto.reject(400, server.dialect.error_body(-1, "Bad WebSocket handshake: %s" % exc))
        return None
    except ValueError as exc:  # bad stream name or too many streams (BinanceRequestError)
        proto.reject(400, server.dialect.error_body(-1, str(exc)))
        return None
    proto.transport.write(build_server_response(req.headers["sec-websocket-key"]))
    conn = server.register(proto.transport, session, proto.peer)
    silent = [s for s in session.streams if s not in server.stream_names]
    if silent:
        # Legal names the venue would accept, but nothing here produces them (kline_1m, an
        # upper-case symbol, a symbol not simulated): say so, a typo otherwise looks like a hang.
        log.info("conn %d: streams with no simulated data: %s", conn.id, ", ".join(silent[:10]))
    return conn


class SimProtocol(asyncio.Protocol):
    """One TCP connection: HTTP requests until (maybe) a WebSocket upgrade, then frames."""

    def __init__(self, server):
        self.server = server
        self.transport = None
        self.peer = ""
        self.buf = bytearray()
        self.conn = None
        self.busy = False       # a slow REST response is in progress: later requests wait

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # No Nagle delay: small frames must leave at once (latency is what we measure).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = transport.get_extra_info("peername")
        self.peer = peer[0] if peer else ""
        # Pause above 1 MiB: past that, frames wait in WsConn.backlog (see its comment).
        transport.set_write_buffer_limits(high=1 << 20)

    def pause_writing(self):
        if self.conn is not None:
            self.conn.pause_writing()

    def resume_writing(self):
        if self.conn is not None:
            self.conn.resume_writing()

    def data_received(self, data):
        if self.conn is not None:
            self.conn.on_data(data)
            return
        self.buf += data
        self.process()

    def process(self):
        while self.conn is None and not self.busy and self.transport is not None \
                and not self.transport.is_closing():
            try:
                found = httpd.parse_request(self.buf)
            except httpd.BadRequest as exc:
                log.info("bad HTTP request from %s: %s", self.peer, exc)
                self.reject(400, self.server.dialect.error_body(-1, "Bad request: %s" % exc))
                return
            if found is None:
                return
            req, consumed = found
            del self.buf[:consumed]
            if req.is_upgrade():
                self.conn = self.server.handle_upgrade(self, req)
                if self.conn is not None and self.buf:
                    rest = bytes(self.buf)
                    self.buf = bytearray()
                    self.conn.on_data(rest)
                return
            self.server.handle_rest(self, req)

    def reject(self, status, body):
        self.transport.write(build_rejection(status, httpd.REASONS.get(status, "Error"), body,
                                             [("Content-Type", "application/json;charset=UTF-8")]))
        self.transport.close()

    def connection_lost(self, exc):
        if self.conn is not None:
            if not self.conn.closed:
                self.server.count_disconnect("client_gone")
            self.server.forget(self.conn)
        self.transport = None
