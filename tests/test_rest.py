"""Specification of hftfeed.transport.rest.HttpClient against a loopback asyncio HTTP server."""

import asyncio
import socket
import ssl

import pytest

from hftfeed.errors import HttpError, HttpStatusError, TransportError
from hftfeed.transport.rest import HttpClient

from test_ws import _blackholed_listener, make_self_signed_cert

JSON_BODY = b'{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}'


def run(coro, timeout_s=10.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def response(status, reason, body=b"", headers=()):
    head = "HTTP/1.1 %d %s\r\nContent-Length: %d\r\n" % (status, reason, len(body))
    head += "".join("%s: %s\r\n" % h for h in headers)
    return head.encode() + b"\r\n" + body


class HttpServer:
    """Loopback HTTP/1.1 server. ``respond(writer, conn_no, req_no, path, headers)`` writes the
    answer itself (it may sleep or send partial data) and returns False to close the connection."""

    def __init__(self, respond):
        self.respond = respond
        self.connections = 0
        self.requests = []              # (conn_no, path, headers)
        self.writers = []

    async def start(self, ssl_context=None):
        self.srv = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=ssl_context)
        self.port = self.srv.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader, writer):
        self.connections += 1
        conn_no = self.connections
        self.writers.append(writer)
        req_no = 0
        try:
            while True:
                try:
                    raw = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = raw.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                headers = dict((k.lower(), v.strip()) for k, _, v in (l.partition(":") for l in lines[1:] if l))
                req_no += 1
                self.requests.append((conn_no, path, headers))
                keep = await self.respond(writer, conn_no, req_no, path, headers)
                await writer.drain()
                if keep is False:
                    return
        finally:
            writer.close()

    async def stop(self):
        for writer in self.writers:
            writer.close()
        self.srv.close()
        await self.srv.wait_closed()


def serve_json(status=200, reason="OK", body=JSON_BODY, headers=()):
    async def respond(writer, conn_no, req_no, path, req_headers):
        writer.write(response(status, reason, body, headers))
    return respond


def with_server(respond, scenario, **client_kwargs):
    """Start a server, build a client on it, run ``scenario(client, server)``, clean up."""
    async def main():
        server = await HttpServer(respond).start()
        client = HttpClient("http://127.0.0.1:%d" % server.port, **client_kwargs)
        try:
            return await scenario(client, server)
        finally:
            await client.close()
            await server.stop()
    return run(main())


def test_get_200_json_returns_body_and_sends_expected_request():
    async def scenario(client, server):
        resp = await client.get("/api/v3/depth?symbol=BNBBTC&limit=1000")
        return resp, server.requests, client

    resp, requests, client = with_server(serve_json(headers=[("X-MBX-USED-WEIGHT-1M", "50")]), scenario)
    assert resp.status == 200 and resp.body == JSON_BODY
    assert resp.headers["x-mbx-used-weight-1m"] == "50"
    conn_no, path, headers = requests[0]
    assert path == "/api/v3/depth?symbol=BNBBTC&limit=1000"
    assert headers["host"].startswith("127.0.0.1:")
    assert headers["accept-encoding"] == "identity" and headers["connection"] == "keep-alive"
    assert client.requests == 1 and client.bytes_in == len(response(200, "OK", JSON_BODY,
                                                                    [("X-MBX-USED-WEIGHT-1M", "50")]))


def test_base_url_path_prefix_is_prepended():
    async def scenario(client, server):
        await client.get("/depth?x=1")
        return server.requests[0][1]

    async def main():
        server = await HttpServer(serve_json()).start()
        client = HttpClient("http://127.0.0.1:%d/api/v3/" % server.port)
        try:
            return await scenario(client, server)
        finally:
            await client.close()
            await server.stop()

    assert run(main()) == "/api/v3/depth?x=1"


def test_chunked_response_from_server():
    async def respond(writer, conn_no, req_no, path, headers):
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        writer.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(JSON_BODY), JSON_BODY))

    async def scenario(client, server):
        return (await client.get("/x")).body

    assert with_server(respond, scenario) == JSON_BODY


def test_429_raises_status_error_with_retry_after():
    async def scenario(client, server):
        with pytest.raises(HttpStatusError) as info:
            await client.get("/api/v3/depth?symbol=X")
        return info.value

    err = with_server(serve_json(429, "Too Many Requests", b'{"code":-1003,"msg":"Too much request weight"}',
                                 headers=[("Retry-After", "7")]), scenario)
    assert err.status == 429 and err.retry_after_s == 7.0
    assert b"-1003" in err.body


def test_418_raises_status_error():
    async def scenario(client, server):
        with pytest.raises(HttpStatusError) as info:
            await client.get("/x")
        return info.value

    err = with_server(serve_json(418, "I'm a teapot", b"banned", headers=[("Retry-After", "120")]), scenario)
    assert err.status == 418 and err.retry_after_s == 120.0 and err.body == b"banned"


def test_500_raises_status_error_without_retry_after():
    async def scenario(client, server):
        with pytest.raises(HttpStatusError) as info:
            await client.get("/x")
        return info.value

    err = with_server(serve_json(500, "Internal Server Error", b"oops"), scenario)
    assert err.status == 500 and err.retry_after_s is None


def test_slow_body_times_out_with_transport_error_and_next_get_uses_a_new_connection():
    async def respond(writer, conn_no, req_no, path, headers):
        if conn_no == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            await writer.drain()
            await asyncio.sleep(3)
            return False
        writer.write(response(200, "OK", JSON_BODY))

    async def scenario(client, server):
        with pytest.raises(TransportError):
            await client.get("/slow")
        resp = await client.get("/fast")
        return resp, server.connections

    resp, connections = with_server(respond, scenario, timeout_s=0.3)
    assert resp.body == JSON_BODY and connections == 2


def test_keep_alive_reuses_one_tcp_connection():
    async def scenario(client, server):
        first = await client.get("/a")
        second = await client.get("/b")
        return first, second, server.connections, client.connects

    first, second, connections, connects = with_server(serve_json(), scenario)
    assert first.body == second.body == JSON_BODY
    assert connections == 1 and connects == 1


def test_server_closing_between_requests_is_reconnected_transparently():
    async def respond(writer, conn_no, req_no, path, headers):
        writer.write(response(200, "OK", JSON_BODY))
        return False                    # close after every response, without announcing it

    async def scenario(client, server):
        await client.get("/a")
        await asyncio.sleep(0.05)       # the FIN arrives while the client is idle
        resp = await client.get("/b")
        return resp, server.connections, client.reconnects_after_stale

    resp, connections, stale = with_server(respond, scenario)
    assert resp.body == JSON_BODY and connections == 2
    assert stale == 0                   # noticed while idle: no request was wasted


def test_server_closing_a_reused_connection_instead_of_answering_is_retried_once():
    async def respond(writer, conn_no, req_no, path, headers):
        if conn_no == 1 and req_no == 2:
            return False                # the race: request sent on a connection the server drops
        writer.write(response(200, "OK", JSON_BODY))

    async def scenario(client, server):
        await client.get("/a")
        resp = await client.get("/b")
        return resp, server.connections, client.reconnects_after_stale, [p for _, p, _ in server.requests]

    resp, connections, stale, paths = with_server(respond, scenario)
    assert resp.body == JSON_BODY and connections == 2 and stale == 1
    assert paths == ["/a", "/b", "/b"]


def test_connection_close_header_is_honoured():
    async def scenario(client, server):
        await client.get("/a")
        await client.get("/b")
        return server.connections

    assert with_server(serve_json(headers=[("Connection", "close")]), scenario) == 2


def test_truncated_body_at_eof_raises_http_error():
    async def respond(writer, conn_no, req_no, path, headers):
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + JSON_BODY[:20])
        return False

    async def scenario(client, server):
        with pytest.raises(HttpError) as info:
            await client.get("/a")
        return info.value

    err = with_server(respond, scenario)
    assert not isinstance(err, HttpStatusError)


def test_body_over_max_raises_http_error():
    async def scenario(client, server):
        with pytest.raises(HttpError):
            await client.get("/a")

    with_server(serve_json(body=b"x" * 1000), scenario, max_body_bytes=100)


def test_refused_connection_raises_transport_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    async def main():
        client = HttpClient("http://127.0.0.1:%d" % port, timeout_s=2.0)
        with pytest.raises(TransportError):
            await client.get("/a")
        await client.close()

    run(main())


def test_https_verifies_certificate(tmp_path):
    key, cert = make_self_signed_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)

    async def main():
        server = await HttpServer(serve_json()).start(ssl_context=server_ctx)
        url = "https://localhost:%d" % server.port
        try:
            default = HttpClient(url, timeout_s=2.0)
            with pytest.raises(TransportError):
                await default.get("/a")          # self-signed: refused by the default context
            await default.close()
            trusting = HttpClient(url, ssl_context=ssl.create_default_context(cafile=cert))
            resp = await trusting.get("/a")
            await trusting.close()
            return resp
        finally:
            await server.stop()

    assert run(main()).body == JSON_BODY


def test_a_blackholed_first_address_is_raced_by_the_next_one(monkeypatch):
    """Happy eyeballs (RFC 8305): the second address starts 250 ms after the first, so a
    filtered path does not stall the snapshot until the kernel gives up on its SYNs."""
    hole = _blackholed_listener()
    if hole is None:
        pytest.skip("this kernel completes connects to a full accept queue")
    listener, fillers = hole

    async def main():
        server = await HttpServer(serve_json()).start()
        # A host name, not an IP literal: asyncio only resolves (and races) names.
        client = HttpClient("http://localhost:%d" % server.port, timeout_s=5.0)
        loop = asyncio.get_running_loop()
        infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", listener.getsockname()),
                 (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]

        async def resolve(host, port, **kwargs):
            assert host == "localhost"
            return infos

        monkeypatch.setattr(loop, "getaddrinfo", resolve)
        try:
            return await client.get("/api/v3/depth?symbol=BTCUSDT&limit=5")
        finally:
            await client.close()
            await server.stop()

    try:
        resp = run(main())
    finally:
        for sock in fillers + [listener]:
            sock.close()
    assert resp.status == 200 and resp.body == JSON_BODY


def test_429_with_a_400_digit_retry_after_raises_the_status_error_with_the_cap():
    """It used to raise OverflowError out of get(), so the 429 was never seen as one."""
    from hftfeed.codecs.http_proto import MAX_RETRY_AFTER_S

    async def scenario(client, server):
        with pytest.raises(HttpStatusError) as info:
            await client.get("/x")
        return info.value

    exc = with_server(serve_json(429, "Too Many Requests", b"{}",
                                 [("Retry-After", "9" * 400)]), scenario)
    assert exc.status == 429 and exc.retry_after_s == MAX_RETRY_AFTER_S
