"""Asyncio HTTP/1.1 GET client for REST snapshots, on top of :mod:`hftfeed.codecs.http_proto`.

Why not urllib in a thread: a thread hand-off under the GIL can stall the hot path for a
switch interval, and snapshots are fetched exactly when the feed is busiest (resync).
One persistent keep-alive connection per client (per scheme, host, port) saves the TCP and
TLS handshakes on every resync; a connection the server closed is replaced transparently.
"""

import asyncio
import logging
import ssl
from urllib.parse import urlsplit

from hftfeed.errors import HttpError, HttpStatusError, TransportError
from hftfeed.codecs.http_proto import ResponseParser, build_get_request, retry_after_seconds
from hftfeed.codecs.ws_proto import host_header

log = logging.getLogger("hftfeed.rest")

READ_CHUNK_BYTES = 65536


class _StaleConnection(Exception):
    """A reused keep-alive connection ended before the first response byte (server closed it)."""


class HttpClient:
    """GET requests over one keep-alive connection to ``base_url`` (http:// or https://).

    Requests are serialised (no pipelining). ``timeout_s`` bounds each :meth:`get` as a whole:
    connect, TLS, request and the complete body.
    """

    def __init__(self, base_url, *, ssl_context=None, timeout_s=10.0, max_body_bytes=64 * 2**20):
        parts = urlsplit(base_url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("base_url must be http(s)://host[:port][/prefix], got %r" % (base_url,))
        self.base_url = base_url
        self.secure = scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.secure else 80)
        self.path_prefix = parts.path.rstrip("/")
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self._ssl_context = ssl_context
        if self.secure and self._ssl_context is None:
            self._ssl_context = ssl.create_default_context()     # SNI + certificate verification
        self._host_value = host_header(self.host, self.port, self.secure)
        self._reader = None
        self._writer = None
        self._lock = None              # created in the running loop (3.9's Lock binds a loop at creation)
        self.requests = 0
        self.bytes_in = 0
        self.connects = 0
        self.reconnects_after_stale = 0

    async def get(self, path_and_query, headers=()):
        """GET ``path_and_query`` (appended to the base URL's path); return the 2xx Response.

        Raises HttpStatusError (non-2xx, with ``retry_after_s`` and ``body``), HttpError
        (malformed response) or TransportError (timeout, refused, reset).
        """
        request = build_get_request(self._host_value, self.path_prefix + path_and_query, headers)
        loop = asyncio.get_running_loop()
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            deadline = loop.time() + self.timeout_s
            self.requests += 1
            try:
                response = await asyncio.wait_for(self._request(request), self.timeout_s)
            except asyncio.TimeoutError:
                await self._drop("timeout")
                raise TransportError("GET %s timed out after %.1f s" % (path_and_query, self.timeout_s)) from None
            except HttpError:
                await self._drop("malformed response")
                raise
            except (OSError, EOFError) as exc:
                await self._drop("transport error")
                raise TransportError("GET %s failed: %s" % (path_and_query, exc)) from exc
            except asyncio.CancelledError:
                await self._drop("cancelled")  # the response may still come: the connection is unusable
                raise
            if not response.keep_alive:
                await self._drop("server asked to close")
            log.debug("GET %s -> %d (%d bytes, %.3f s left)", path_and_query, response.status,
                      len(response.body), deadline - loop.time())
        if not 200 <= response.status < 300:
            raise HttpStatusError("GET %s -> %d %s" % (path_and_query, response.status, response.reason),
                                  response.status, retry_after_seconds(response.headers), response.body)
        return response

    async def _request(self, request):
        """One request; a reused connection found closed by the server is replaced once (GET is idempotent)."""
        reused = self._writer is not None
        if reused and (self._reader.at_eof() or self._writer.is_closing()):
            await self._drop("closed by the server while idle")
            reused = False
        if not reused:
            await self._connect()
        try:
            return await self._exchange(request)
        except _StaleConnection as exc:
            await self._drop("stale")
            if not reused:
                raise TransportError("connection closed before a response: %s" % exc) from None
            self.reconnects_after_stale += 1
            log.info("keep-alive connection to %s was closed by the server; reconnecting", self._host_value)
            await self._connect()
            try:
                return await self._exchange(request)
            except _StaleConnection as exc2:
                await self._drop("stale twice")
                raise TransportError("connection closed before a response: %s" % exc2) from None

    async def _connect(self):
        try:
            # Happy eyeballs (RFC 8305, asyncio 3.8+): a second address family is raced after
            # 250 ms, so a blackholed IPv6 path does not eat the snapshot timeout.
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl_context if self.secure else None,
                server_hostname=self.host if self.secure else None, limit=READ_CHUNK_BYTES,
                happy_eyeballs_delay=0.25, interleave=1)
        except OSError as exc:
            raise TransportError("cannot connect to %s:%d: %s" % (self.host, self.port, exc)) from exc
        self.connects += 1

    async def _exchange(self, request):
        parser = ResponseParser(self.max_body_bytes)
        reader = self._reader
        try:
            self._writer.write(request)
            await self._writer.drain()
            while True:
                data = await reader.read(READ_CHUNK_BYTES)
                self.bytes_in += len(data)
                parser.feed(data)
                try:
                    response = parser.next_response()
                except HttpError as exc:
                    if not data and parser.at_response_start():
                        raise _StaleConnection(str(exc)) from None
                    raise
                if response is not None:
                    break
        except (ConnectionResetError, BrokenPipeError) as exc:
            if parser.at_response_start():
                raise _StaleConnection(str(exc)) from None
            raise
        if parser.buffered_bytes():
            log.warning("%d unexpected bytes after the response from %s; dropping the connection",
                        parser.buffered_bytes(), self._host_value)
            response.keep_alive = False
        return response

    async def _drop(self, why):
        """Forget the current connection (closing it) so the next request opens a fresh one."""
        writer = self._writer
        self._reader = self._writer = None
        if writer is None:
            return
        log.debug("closing connection to %s: %s", self._host_value, why)
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 1.0)
        except (OSError, asyncio.TimeoutError) as exc:
            log.debug("connection to %s closed uncleanly: %r", self._host_value, exc)

    async def close(self):
        """Close the keep-alive connection, if any."""
        if self._lock is None:
            await self._drop("client closed")
            return
        async with self._lock:
            await self._drop("client closed")
