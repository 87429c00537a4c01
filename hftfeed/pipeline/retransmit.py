"""TCP retransmission service: serves the publisher's recent datagrams (docs/PROTOCOL.md
"Retransmission").

Why TCP and not a UDP request/response: a spoofed UDP request would make the daemon send a
large reply to a victim's address (an amplifier). A TCP client has completed a handshake from
its own address before it can ask for anything. The service is off by default and listens on
loopback when on; every limit below is a bound on what one client can cost the daemon:

* ``max_clients`` connections at once (a further one gets a RETRANS_LIMIT frame and is closed);
* ``max_messages_per_request`` messages per request (more: RETRANS_BAD_REQUEST);
* ``max_requests_per_connection`` requests per connection (then RETRANS_LIMIT and close);
* ``idle_timeout_s`` to send a whole request, ``write_timeout_s`` for each reply to drain
  (a client that does not read is disconnected).

Replies are the original datagram bytes, so a client feeds them to the same decoder and
sequencer as live traffic. The service reads the publisher's :class:`History` from the event
loop thread that also publishes, so no lock is needed.
"""

import asyncio
import logging

from hftfeed.codecs import wire
from hftfeed.errors import WireError

log = logging.getLogger("hftfeed.retransmit")

DEFAULT_MAX_CLIENTS = 8
DEFAULT_MAX_MESSAGES_PER_REQUEST = 10000
DEFAULT_MAX_REQUESTS_PER_CONNECTION = 10000
DEFAULT_IDLE_TIMEOUT_S = 30.0
DEFAULT_WRITE_TIMEOUT_S = 5.0


class RetransmitServer(object):
    def __init__(self, publisher, host="127.0.0.1", port=0, max_clients=DEFAULT_MAX_CLIENTS,
                 max_messages_per_request=DEFAULT_MAX_MESSAGES_PER_REQUEST,
                 max_requests_per_connection=DEFAULT_MAX_REQUESTS_PER_CONNECTION,
                 idle_timeout_s=DEFAULT_IDLE_TIMEOUT_S, write_timeout_s=DEFAULT_WRITE_TIMEOUT_S):
        if publisher.history is None:
            raise ValueError("the publisher keeps no history (history_datagrams is 0)")
        self.publisher = publisher
        self.host = host
        self.port = port
        self.max_clients = max_clients
        self.max_messages_per_request = max_messages_per_request
        self.max_requests_per_connection = max_requests_per_connection
        self.idle_timeout_s = idle_timeout_s
        self.write_timeout_s = write_timeout_s
        self.clients = 0
        self.requests = 0
        self.rejects = 0
        self.datagrams_sent = 0
        self._server = None
        self._tasks = set()

    async def start(self):
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("retransmission service on %s:%d (history %d datagrams)", self.host, self.port,
                 self.publisher.history.capacity)
        return self.port

    async def close(self):
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:     # let each connection close its transport while the loop still runs
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _client(self, reader, writer):
        task = asyncio.current_task() if hasattr(asyncio, "current_task") else None
        if task is not None:
            self._tasks.add(task)
        peer = writer.get_extra_info("peername")
        try:
            if self.clients >= self.max_clients:
                self.rejects += 1
                log.warning("retransmission: %d clients already connected; refusing %s",
                            self.clients, peer)
                await self._write(writer, wire.pack_retrans_frame(wire.RETRANS_LIMIT))
                return
            self.clients += 1
            try:
                await self._serve(reader, writer)
            finally:
                self.clients -= 1
        except (asyncio.TimeoutError, ConnectionError, asyncio.IncompleteReadError) as exc:
            log.info("retransmission client %s: %s", peer, type(exc).__name__)
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader, writer):
        for _ in range(self.max_requests_per_connection):
            try:
                data = await asyncio.wait_for(reader.readexactly(wire.RETRANS_REQUEST.size),
                                              self.idle_timeout_s)
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                return                         # the client closed between requests
            self.requests += 1
            await self._answer(writer, data)
        self.rejects += 1
        await self._write(writer, wire.pack_retrans_frame(wire.RETRANS_LIMIT))

    async def _answer(self, writer, data):
        pub = self.publisher
        try:
            channel, session, first_seq, count = wire.unpack_retrans_request(data)
        except WireError as exc:
            self.rejects += 1
            log.info("retransmission: malformed request (%s)", exc)
            await self._write(writer, wire.pack_retrans_frame(wire.RETRANS_BAD_REQUEST))
            return
        if channel != pub.channel or session != pub.session:
            code = wire.RETRANS_UNKNOWN_SESSION
        elif not 0 < count <= self.max_messages_per_request:
            code = wire.RETRANS_BAD_REQUEST
        else:
            datagrams = pub.history.covering(first_seq, count)
            if datagrams is None:
                code = wire.RETRANS_NOT_HELD
            else:
                parts = []
                for datagram in datagrams:
                    parts.append(wire.pack_retrans_frame(wire.RETRANS_OK, len(datagram)))
                    parts.append(datagram)
                parts.append(wire.pack_retrans_frame(wire.RETRANS_DONE))
                self.datagrams_sent += len(datagrams)
                await self._write(writer, b"".join(parts))
                return
        self.rejects += 1
        await self._write(writer, wire.pack_retrans_frame(code))

    async def _write(self, writer, data):
        writer.write(data)
        await asyncio.wait_for(writer.drain(), self.write_timeout_s)

    def counters(self):
        return {"clients": self.clients, "requests": self.requests, "rejects": self.rejects,
                "datagrams_sent": self.datagrams_sent}
