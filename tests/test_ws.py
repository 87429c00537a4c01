"""Specification of hftfeed.transport.ws: the asyncio WebSocket client, against a tiny loopback server."""

import asyncio
import logging
import os
import shutil
import socket
import ssl
import subprocess

import pytest

from hftfeed.transport import ws
from hftfeed.codecs import ws_proto as wp
from hftfeed.errors import ConnectionClosed, InvalidHandshake, MessageTooBig, ProtocolError, TransportError


def run(coro, timeout_s=10.0):
    """Run one test scenario on a fresh loop with an overall bound."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


class Peer:
    """Server side of one test connection: raw writes plus a decoded event stream with arrival times."""

    def __init__(self, reader, writer, path, headers):
        self.reader = reader
        self.writer = writer
        self.path = path
        self.headers = headers
        self.conn = wp.Connection(wp.SERVER)
        self._events = []

    def send_raw(self, data):
        self.writer.write(data)

    def send_text(self, text):
        self.writer.write(wp.encode_frame(wp.OP_TEXT, text))

    async def recv(self, timeout_s=3.0):
        """Next (arrival_time_s, event); Close(1006) at EOF. Answers pings and closes like RFC 6455."""
        loop = asyncio.get_running_loop()
        while not self._events:
            data = await asyncio.wait_for(self.reader.read(65536), timeout_s)
            now = loop.time()
            self._events.extend((now, e) for e in self.conn.receive_data(data))
            out = self.conn.data_to_send()
            if out:
                self.writer.write(out)
        return self._events.pop(0)

    async def recv_event(self, timeout_s=3.0):
        return (await self.recv(timeout_s))[1]


class Server:
    """A loopback WebSocket server built on ws_proto's server role; ``handler(peer)`` scripts it."""

    def __init__(self, handler, accept_override=None, raw_response=None):
        self.handler = handler
        self.accept_override = accept_override
        self.raw_response = raw_response
        self.peers = []
        self.errors = []

    async def start(self, host="127.0.0.1", ssl_context=None):
        self.srv = await asyncio.start_server(self._serve, host, 0, ssl=ssl_context)
        self.port = self.srv.sockets[0].getsockname()[1]
        return self

    def url(self, path="/ws", scheme="ws", host="127.0.0.1"):
        return "%s://%s:%d%s" % (scheme, host, self.port, path)

    async def _serve(self, reader, writer):
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
            head, _ = wp.parse_http_head(raw)
            path, headers = wp.parse_client_request(head)
            if self.raw_response is not None:
                writer.write(self.raw_response)
            else:
                key = headers["sec-websocket-key"]
                response = wp.build_server_response(key)
                if self.accept_override is not None:
                    response = response.replace(wp.accept_key(key).encode(), self.accept_override)
                writer.write(response)
            peer = Peer(reader, writer, path, headers)
            self.peers.append(peer)
            await self.handler(peer)
        except Exception as exc:            # surfaced by the test through self.errors
            self.errors.append(exc)
        finally:
            writer.close()

    async def stop(self):
        self.srv.close()
        await self.srv.wait_closed()


async def echo_close_handler(peer):
    """Wait for the client's frames until it closes; the Peer echoes the close."""
    while True:
        event = await peer.recv_event()
        if isinstance(event, wp.Close):
            return


def collector():
    got = []
    return got, lambda msg, recv_ns: got.append((msg, recv_ns))


# ------------------------------------------------------------------ URL parsing

def test_parse_ws_url_defaults_ports_and_keeps_query():
    assert ws.parse_ws_url("ws://h/x?y=1") == (False, "h", 80, "/x?y=1")
    assert ws.parse_ws_url("wss://stream.binance.com:9443/stream?streams=a/b") == (
        True, "stream.binance.com", 9443, "/stream?streams=a/b")
    assert ws.parse_ws_url("wss://h") == (True, "h", 443, "/")
    assert ws.parse_ws_url("ws://[::1]:8080/ws") == (False, "::1", 8080, "/ws")
    with pytest.raises(ValueError):
        ws.parse_ws_url("http://h/")


# ------------------------------------------------------------------ handshake

def test_handshake_sends_path_and_host_then_delivers_text_binary_and_fragmented_messages():
    async def handler(peer):
        peer.send_text("hello")
        peer.send_raw(wp.encode_frame(wp.OP_BINARY, b"\x00\x01"))
        peer.send_raw(wp.encode_frame(wp.OP_TEXT, b"Hel", fin=False))
        peer.send_raw(wp.encode_frame(wp.OP_PING, b"p"))
        peer.send_raw(wp.encode_frame(wp.OP_CONT, "lo é".encode()))
        assert isinstance(await peer.recv_event(), wp.Pong)
        peer.send_raw(wp.encode_frame(wp.OP_CLOSE, b"\x03\xe8done"))
        await peer.recv_event()

    async def scenario():
        server = await Server(handler).start()
        got, on_message = collector()
        client = await ws.connect(server.url("/stream?streams=a@depth"), on_message)
        assert await client.closed == (1000, "done")
        await server.stop()
        assert server.errors == []
        peer = server.peers[0]
        assert peer.path == "/stream?streams=a@depth"
        assert peer.headers["host"] == "127.0.0.1:%d" % server.port
        return client, got

    client, got = run(scenario())
    assert [m for m, _ in got] == ["hello", b"\x00\x01", "Hello é"]
    assert all(isinstance(ns, int) and ns > 0 for _, ns in got)
    assert client.messages_in == 3 and client.pings_in == 1 and client.pongs_out == 1
    assert client.frames_in == 6 and client.last_ping_ns > 0


def test_wrong_accept_key_is_rejected():
    async def scenario():
        server = await Server(echo_close_handler, accept_override=b"AAAAAAAAAAAAAAAAAAAAAAAAAAA=").start()
        try:
            with pytest.raises(InvalidHandshake):
                await ws.connect(server.url(), lambda m, t: None)
        finally:
            await server.stop()

    run(scenario())


def test_http_error_status_is_rejected_as_invalid_handshake():
    async def scenario():
        server = await Server(echo_close_handler, raw_response=wp.build_rejection(404, "Not Found")).start()
        try:
            with pytest.raises(InvalidHandshake):
                await ws.connect(server.url(), lambda m, t: None)
        finally:
            await server.stop()

    run(scenario())


def test_refused_connection_raises_transport_error():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()                     # nobody listens there now

    async def scenario():
        with pytest.raises(TransportError):
            await ws.connect("ws://127.0.0.1:%d/" % port, lambda m, t: None, connect_timeout_s=2.0)

    run(scenario())


def test_silent_server_makes_connect_time_out_with_transport_error():
    async def scenario():
        writers = []

        async def mute(reader, writer):
            writers.append(writer)          # accept, then never answer the upgrade

        srv = await asyncio.start_server(mute, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        try:
            with pytest.raises(TransportError):
                await ws.connect("ws://127.0.0.1:%d/" % port, lambda m, t: None, connect_timeout_s=0.3)
        finally:
            for writer in writers:
                writer.close()
            srv.close()
            await srv.wait_closed()

    run(scenario())


def test_addresses_alternate_families_starting_with_the_resolvers_first():
    v6 = [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::%d" % i, 443, 0, 0)) for i in (1, 2, 3)]
    v4 = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.%d" % i, 443)) for i in (1, 2)]
    ordered = ws.interleave_families(v6 + v4)
    assert ordered == [v6[0], v4[0], v6[1], v4[1], v6[2]]
    assert ws.interleave_families(v4[::-1] + v6[:1]) == [v4[1], v6[0], v4[0]]
    assert ws.interleave_families([]) == []


def _blackholed_listener():
    """A loopback listener with a full accept queue: Linux drops further SYNs, so a connect to
    it hangs the way one to a filtered address does. None if this kernel answers anyway."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(4):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(listener.getsockname())
        fillers.append(filler)
    probe = socket.socket()
    probe.settimeout(0.3)
    try:
        probe.connect(listener.getsockname())
    except socket.timeout:
        return listener, fillers + [probe]
    except OSError:
        pass
    for sock in fillers + [probe, listener]:
        sock.close()
    return None


def test_a_blackholed_address_costs_only_its_share_of_the_timeout(monkeypatch, caplog):
    hole = _blackholed_listener()
    if hole is None:
        pytest.skip("this kernel completes connects to a full accept queue")
    listener, fillers = hole

    async def scenario():
        server = await Server(echo_close_handler).start()
        loop = asyncio.get_running_loop()
        infos = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", listener.getsockname()),
                 (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]

        async def resolve(host, port, **kwargs):
            return infos

        monkeypatch.setattr(loop, "getaddrinfo", resolve)
        try:
            client = await ws.connect(server.url(), lambda m, t: None, connect_timeout_s=1.5)
            await client.close()
        finally:
            await server.stop()

    try:
        with caplog.at_level(logging.INFO, logger="hftfeed.ws"):
            run(scenario())
    finally:
        for sock in fillers + [listener]:
            sock.close()
    assert any("no answer within 0.8 s; trying the next address" in r.getMessage()
               for r in caplog.records)


def test_socket_options_rcvbuf_and_nodelay_are_set():
    async def scenario():
        server = await Server(echo_close_handler).start()
        client = await ws.connect(server.url(), lambda m, t: None, rcvbuf_bytes=65536)
        sock = client.transport.get_extra_info("socket")
        rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        nodelay = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await client.close()
        await server.stop()
        return rcvbuf, nodelay

    rcvbuf, nodelay = run(scenario())
    assert rcvbuf >= 65536 and nodelay != 0


def test_ipv6_loopback_literal_url():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def scenario():
        async def handler(peer):
            peer.send_text("v6")
            await echo_close_handler(peer)
        server = await Server(handler).start(host="::1")
        got, on_message = collector()
        client = await ws.connect(server.url(host="[::1]"), on_message)
        while not got:
            await asyncio.sleep(0.01)
        await client.close()
        await server.stop()
        return got, server.peers[0].headers["host"]

    got, host = run(scenario())
    assert got[0][0] == "v6"
    assert host.startswith("[::1]:")


# ------------------------------------------------------------------ ping / close / errors

def test_client_answers_ping_with_same_payload():
    async def scenario():
        pongs = []

        async def handler(peer):
            peer.send_raw(wp.encode_frame(wp.OP_PING, b"are you there"))
            pongs.append(await peer.recv_event())
            await echo_close_handler(peer)

        server = await Server(handler).start()
        client = await ws.connect(server.url(), lambda m, t: None)
        while not pongs:
            await asyncio.sleep(0.01)
        await client.close()
        await server.stop()
        return pongs

    pongs = run(scenario())
    assert isinstance(pongs[0], wp.Pong) and pongs[0].payload == b"are you there"


def test_client_initiated_close_handshake():
    async def scenario():
        seen = []

        async def handler(peer):
            seen.append(await peer.recv_event())        # the Peer echoes the close, then we close TCP

        server = await Server(handler).start()
        closes = []
        client = await ws.connect(server.url(), lambda m, t: None, on_close=lambda c, r: closes.append((c, r)))
        await client.close(1000, "bye")
        result = client.closed.result()
        await server.stop()
        return seen, result, closes, client

    seen, result, closes, client = run(scenario())
    assert (seen[0].code, seen[0].reason) == (1000, "bye")
    assert result[0] == 1000
    assert closes == [result]
    assert client.transport.is_closing()
    with pytest.raises(ConnectionClosed):
        client.send_text("too late")


def test_server_initiated_close_is_echoed():
    async def scenario():
        seen = []

        async def handler(peer):
            peer.send_raw(wp.encode_frame(wp.OP_CLOSE, b"\x03\xe9restart"))
            seen.append(await peer.recv_event())

        server = await Server(handler).start()
        client = await ws.connect(server.url(), lambda m, t: None)
        result = await client.closed
        await server.stop()
        return seen, result

    seen, result = run(scenario())
    assert result == (1001, "restart")
    assert isinstance(seen[0], wp.Close) and seen[0].code == 1001


def test_abrupt_eof_without_close_frame_is_connection_closed_1006():
    async def scenario():
        async def handler(peer):
            peer.send_text("last words")
            await peer.writer.drain()               # then the server closes TCP with no close frame

        server = await Server(handler).start()
        got, on_message = collector()
        client = await ws.connect(server.url(), on_message)
        with pytest.raises(ConnectionClosed) as info:
            await client.closed
        await server.stop()
        return got, info.value

    got, err = run(scenario())
    assert [m for m, _ in got] == ["last words"]
    assert err.code == 1006


def test_message_over_max_size_closes_with_1009():
    async def scenario():
        seen = []

        async def handler(peer):
            peer.send_text("x" * 200)
            seen.append(await peer.recv_event())

        server = await Server(handler).start()
        client = await ws.connect(server.url(), lambda m, t: None, max_message_bytes=100)
        with pytest.raises(MessageTooBig):
            await client.closed
        await asyncio.sleep(0.05)
        await server.stop()
        return seen

    seen = run(scenario())
    assert isinstance(seen[0], wp.Close) and seen[0].code == 1009


def test_protocol_error_sends_1002_and_resolves_closed_with_the_error():
    async def scenario():
        seen = []

        async def handler(peer):
            peer.send_text("ok")
            peer.send_raw(wp.encode_frame(wp.OP_TEXT, b"masked", mask_key=b"abcd"))
            seen.append(await peer.recv_event())

        server = await Server(handler).start()
        got, on_message = collector()
        client = await ws.connect(server.url(), on_message)
        with pytest.raises(ProtocolError) as info:
            await client.closed
        await asyncio.sleep(0.05)
        await server.stop()
        return seen, got, info.value

    seen, got, err = run(scenario())
    assert err.close_code == 1002
    assert seen[0].code == 1002
    assert [m for m, _ in got] == ["ok"]


def test_on_message_exception_is_logged_counted_and_connection_continues(caplog):
    async def scenario():
        async def handler(peer):
            peer.send_text("boom")
            peer.send_text("fine")
            await echo_close_handler(peer)

        server = await Server(handler).start()
        got = []

        def on_message(msg, recv_ns):
            if msg == "boom":
                raise RuntimeError("callback bug")
            got.append(msg)

        client = await ws.connect(server.url(), on_message)
        while not got:
            await asyncio.sleep(0.01)
        assert not client.closed.done()
        await client.close()
        await server.stop()
        return client, got

    with caplog.at_level(logging.ERROR, logger="hftfeed.ws"):
        client, got = run(scenario())
    assert got == ["fine"] and client.callback_errors == 1
    assert any("callback failed" in r.getMessage() and r.exc_info for r in caplog.records)


# ------------------------------------------------------------------ outgoing rate limit

def test_rate_limiter_spaces_frames_keeps_order_and_gives_pongs_priority():
    limit = 5

    async def scenario():
        arrivals = []

        async def handler(peer):
            first = await peer.recv()
            arrivals.append(first)
            peer.send_raw(wp.encode_frame(wp.OP_PING, b"hb"))
            while len(arrivals) < 2 * limit + 1:
                arrivals.append(await peer.recv())
            await echo_close_handler(peer)

        server = await Server(handler).start()
        client = await ws.connect(server.url(), lambda m, t: None, max_out_msgs_per_s=limit)
        for i in range(2 * limit):
            client.send_text("m%d" % i)
        while len(arrivals) < 2 * limit + 1:
            await asyncio.sleep(0.02)
        await client.close()
        await server.stop()
        return arrivals

    arrivals = run(scenario())
    labels = [e.text if isinstance(e, wp.Message) else "pong" for _, e in arrivals]
    # the ping arrives while m1..m4 are already sent in the burst; the pong is the first frame after it
    assert labels == ["m0", "m1", "m2", "m3", "m4", "pong", "m5", "m6", "m7", "m8"] + ["m9"]
    t0 = arrivals[0][0]
    in_first_second = [t for t, _ in arrivals if t - t0 < 1.0]
    assert len(in_first_second) <= limit
    # and no sliding one-second window ever holds more than `limit` frames
    times = [t for t, _ in arrivals]
    for i in range(len(times) - limit):
        assert times[i + limit] - times[i] >= 0.9


# ------------------------------------------------------------------ wss://

def make_self_signed_cert(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
           "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
           "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
    if proc.returncode != 0 or not os.path.exists(str(cert)):
        pytest.skip("openssl could not make a certificate: %s" % proc.stderr[:200])
    return str(key), str(cert)


def test_wss_with_self_signed_certificate_verifies_against_given_ca(tmp_path):
    key, cert = make_self_signed_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    client_ctx = ssl.create_default_context(cafile=cert)

    async def scenario():
        async def handler(peer):
            peer.send_text("secret")
            await echo_close_handler(peer)

        server = await Server(handler).start(ssl_context=server_ctx)
        # default context: the self-signed certificate must be refused (verification is on)
        with pytest.raises(TransportError):
            await ws.connect(server.url(scheme="wss", host="localhost"), lambda m, t: None)
        got, on_message = collector()
        client = await ws.connect(server.url(scheme="wss", host="localhost"), on_message, ssl_context=client_ctx)
        while not got:
            await asyncio.sleep(0.01)
        await client.close()
        await server.stop()
        return got

    got = run(scenario())
    assert got[0][0] == "secret"


# ------------------------------------------------------------------ the reused read buffer

def _split_frames_scenario(ssl_server=None, ssl_client=None, host="127.0.0.1"):
    """Frames cut at every odd offset, written in separate reads: the client reads them all into
    one reused buffer, so whatever it keeps across reads must be a copy."""
    texts = ["msg %d " % i + "x" * (i * 37 % 300) for i in range(40)]
    blob = b"".join(wp.encode_frame(wp.OP_TEXT, t.encode()) for t in texts)

    async def handler(peer):
        pos, step = 0, 1
        while pos < len(blob):
            peer.send_raw(blob[pos:pos + step])
            await peer.writer.drain()
            await asyncio.sleep(0.002)          # a separate read on the client side
            pos += step
            step = step * 3 % 97 + 1
        await echo_close_handler(peer)

    async def scenario():
        server = await Server(handler).start(host=host, ssl_context=ssl_server)
        got, on_message = collector()
        scheme = "wss" if ssl_server else "ws"
        client = await ws.connect(server.url(scheme=scheme, host="localhost" if ssl_server
                                             else host), on_message, ssl_context=ssl_client)
        view = client.get_buffer(-1)
        while len(got) < len(texts):
            await asyncio.sleep(0.01)
        assert client.get_buffer(-1) is view    # one buffer for the connection's life
        await client.close()
        await server.stop()
        return got

    return texts, run(scenario(), timeout_s=60)


def test_messages_split_over_many_reads_arrive_intact_through_the_reused_buffer():
    texts, got = _split_frames_scenario()
    assert [m for m, _ in got] == texts


def test_the_reused_buffer_also_carries_tls(tmp_path):
    key, cert = make_self_signed_cert(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    texts, got = _split_frames_scenario(server_ctx, ssl.create_default_context(cafile=cert))
    assert [m for m, _ in got] == texts
