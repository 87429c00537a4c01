"""Specification of the simulator server (hftfeed/tools/sim/server.py): WebSocket + REST on loopback."""

import asyncio
import json
import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import simtruth  # noqa: E402
from refbook import RefBook  # noqa: E402

from hftfeed.errors import InvalidHandshake  # noqa: E402
from hftfeed.tools.sim import rawclient  # noqa: E402
from hftfeed.tools.sim.server import start_sim  # noqa: E402
from hftfeed.codecs.ws_proto import Close, Ping  # noqa: E402

HOST = "127.0.0.1"


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def collect(ws, n, timeout_s=5.0):
    return [json.loads(await ws.recv_message(timeout_s)) for _ in range(n)]


def scaled(text):
    """Binance's 8-decimal string -> int scaled by 1e8 (exact; the format is checked first)."""
    whole, dot, frac = text.partition(".")
    assert dot and len(frac) == 8 and whole.isdigit() and frac.isdigit(), text
    return int(whole + frac)


def flat_levels(levels):
    out = []
    for p, q in levels:
        out.append(scaled(p))
        out.append(scaled(q))
    return out


# ---------------------------------------------------------------------- stream delivery
def test_combined_stream_delivers_only_subscribed_streams_with_a_contiguous_depth_chain():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT", "ETHUSDT"], rate=2000)
        try:
            streams = ["btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker"]
            ws = await rawclient.ws_connect(HOST, srv.port, "/stream?streams=" + "/".join(streams))
            msgs = await collect(ws, 150)
            await ws.close()
        finally:
            await srv.close()
        kinds = set()
        prev_u = None
        for m in msgs:
            assert list(m) == ["stream", "data"] and m["stream"] in streams
            data = m["data"]
            assert data["s"] == "BTCUSDT"
            if m["stream"].endswith("@depth@100ms"):
                kinds.add("depth")
                if prev_u is not None:
                    assert data["U"] == prev_u + 1
                prev_u = data["u"]
            elif m["stream"].endswith("@trade"):
                kinds.add("trade")
                assert data["e"] == "trade"
            else:
                kinds.add("quote")
                assert set(data) == {"u", "s", "b", "B", "a", "A"}
        assert kinds == {"depth", "trade", "quote"}
    run(body())


def test_raw_stream_delivers_unwrapped_payloads():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT", "ETHUSDT"], rate=1000)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/ethusdt@depth")
            msgs = await collect(ws, 5)
            await ws.close()
        finally:
            await srv.close()
        for m in msgs:
            assert m["e"] == "depthUpdate" and m["s"] == "ETHUSDT"
    run(body())


def test_two_connections_receive_byte_identical_depth_messages():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=1000)
        try:
            target = "/stream?streams=btcusdt@depth@100ms"
            a = await rawclient.ws_connect(HOST, srv.port, target)
            b = await rawclient.ws_connect(HOST, srv.port, target)
            msgs_a = [await a.recv_message() for _ in range(200)]  # b may have joined later
            msgs_b = [await b.recv_message() for _ in range(40)]
            await a.close()
            await b.close()
        finally:
            await srv.close()
        by_u = {json.loads(t)["data"]["u"]: t for t in msgs_a}
        common = [t for t in msgs_b if json.loads(t)["data"]["u"] in by_u]
        assert len(common) >= 20
        for t in common:
            assert t == by_u[json.loads(t)["data"]["u"]]
    run(body())


def test_snapshot_and_diffs_after_it_reproduce_the_simulator_book(tmp_path):
    """Binance's documented procedure: buffer diffs, fetch the snapshot, drop u <= lastUpdateId,
    the first applied one spans lastUpdateId + 1, apply the rest in order."""
    journal = tmp_path / "run.jsonl"

    async def body():
        srv = await start_sim(symbols=["BTCUSDT", "ETHUSDT"], rate=1000, record=str(journal),
                              depth_levels=100)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@depth@100ms")
            first = await collect(ws, 3)
            status, snap = await rawclient.get_json(HOST, srv.port,
                                                    "/api/v3/depth?symbol=BTCUSDT&limit=1000")
            later = await collect(ws, 60)
            await ws.close()
        finally:
            await srv.close()
        return status, snap, first + later

    status, snap, msgs = run(body())
    assert status == 200
    last_id = snap["lastUpdateId"]
    assert msgs[0]["U"] <= last_id
    book = RefBook()
    book.load_snapshot(flat_levels(snap["bids"]), flat_levels(snap["asks"]), last_id)
    applied = [m for m in msgs if m["u"] > last_id]
    assert applied[0]["U"] <= last_id + 1 <= applied[0]["u"]
    for m in applied:
        book.apply_levels(flat_levels(m["b"]), flat_levels(m["a"]))
    truth = simtruth.load_journal(journal)
    expected = truth.book_at("BTCUSDT", applied[-1]["u"])
    assert book.top(1000) == expected.top(1000)
    assert truth.send_ns_by_update["BTCUSDT"][applied[-1]["u"]] > 0


def test_subscribe_list_and_unsubscribe_on_a_live_connection():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=1000, max_incoming_per_s=20)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws")
            ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@trade", "btcusdt@depth"],
                          "id": 1})
            assert await ws.recv_json() == {"result": None, "id": 1}
            got = await collect(ws, 5)
            assert all(m.get("e") in ("depthUpdate", "trade") for m in got)
            ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 3})
            reply = None
            while reply is None or "id" not in reply:
                reply = await ws.recv_json()
            assert reply == {"result": ["btcusdt@trade", "btcusdt@depth"], "id": 3}
            ws.send_json({"method": "UNSUBSCRIBE", "params": ["btcusdt@depth", "btcusdt@trade"],
                          "id": 4})
            while True:
                m = await ws.recv_json()
                if m.get("id") == 4:
                    assert m == {"result": None, "id": 4}
                    break
            with pytest.raises(asyncio.TimeoutError):
                await ws.recv_message(timeout_s=0.3)
            await ws.close()
        finally:
            await srv.close()
    run(body())


def test_more_than_1024_streams_are_rejected_at_the_handshake():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100)
        try:
            target = "/stream?streams=" + "/".join("a%d@trade" % i for i in range(1025))
            with pytest.raises(InvalidHandshake):
                await rawclient.ws_connect(HOST, srv.port, target)
            ok = await rawclient.ws_connect(HOST, srv.port, "/stream?streams=" + "/".join(
                "a%d@trade" % i for i in range(1024)))
            await ok.close()
        finally:
            await srv.close()
    run(body())


def test_unknown_paths_and_bad_handshakes_are_refused():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100)
        try:
            with pytest.raises(InvalidHandshake):
                await rawclient.ws_connect(HOST, srv.port, "/nowhere")
            with pytest.raises(InvalidHandshake):
                await rawclient.ws_connect(HOST, srv.port, "/ws/not a stream")
            status, _h, body_bytes = await rawclient.http_request(HOST, srv.port, "GET", "/api/v9/x")
            assert status == 404 and json.loads(body_bytes)["code"] == -1
            # An upgrade request without a key is not a WebSocket handshake: 400.
            reader, writer = await asyncio.open_connection(HOST, srv.port)
            writer.write(b"GET /ws/btcusdt@trade HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\n\r\n")
            head = await asyncio.wait_for(reader.read(1000), 5)
            assert head.startswith(b"HTTP/1.1 400 ")
            writer.close()
        finally:
            await srv.close()
    run(body())


# ---------------------------------------------------------------------- keepalive and limits
def test_server_pings_and_drops_a_client_that_never_answers():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100, ping_interval_s=0.1,
                              pong_timeout_s=0.35)
        try:
            silent = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@trade", auto_pong=False)
            polite = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@trade")
            reading = polite.keep_reading()
            pings = 0
            while True:
                ev = await silent.recv(timeout_s=3)
                if isinstance(ev, Ping):
                    pings += 1
                    assert ev.payload      # a payload the pong must echo
                if isinstance(ev, Close):
                    break
            assert pings >= 2
            status = srv.status()
            assert status["disconnects"].get("pong_timeout") == 1
            assert status["connections_open"] == 1        # the polite one is still there
            assert status["pings_sent"] >= 4 and status["pongs_received"] >= 2
            reading.cancel()
            await polite.close()
        finally:
            await srv.close()
    run(body())


def test_unsolicited_pongs_do_not_keep_a_connection_alive():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100, ping_interval_s=0.1,
                              pong_timeout_s=0.3)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@trade", auto_pong=False)
            while True:
                ev = await ws.recv(timeout_s=3)
                if isinstance(ev, Ping):
                    ws.send_pong(b"not-the-payload")
                if isinstance(ev, Close):
                    break
            assert srv.status()["disconnects"].get("pong_timeout") == 1
        finally:
            await srv.close()
    run(body())


def test_more_than_five_incoming_messages_in_a_second_disconnects():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@trade")
            for _ in range(6):
                ws.send_ping(b"x")
            code = None
            while code is None:
                ev = await ws.recv(timeout_s=3)
                if isinstance(ev, Close):
                    code = ev.code
            assert code == 1008
            assert srv.status()["disconnects"] == {"incoming_rate": 1}
            ok = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@trade")
            for _ in range(5):
                ok.send_ping(b"y")   # five is allowed
            await asyncio.sleep(0.2)
            assert srv.status()["connections_open"] == 1
            await ok.close()
        finally:
            await srv.close()
    run(body())


def test_connection_lifetime_sends_server_shutdown_then_closes_with_1001():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=200, lifetime_s=0.6)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@depth")
            seen_shutdown = False
            while True:
                ev = await ws.recv(timeout_s=3)
                if isinstance(ev, Close):
                    assert ev.code == 1001
                    break
                if hasattr(ev, "text") and ev.text and "serverShutdown" in ev.text:
                    assert json.loads(ev.text)["e"] == "serverShutdown"
                    seen_shutdown = True
            assert seen_shutdown
            assert srv.status()["disconnects"].get("lifetime") == 1
        finally:
            await srv.close()
    run(body())


# ---------------------------------------------------------------------- REST
def test_depth_snapshot_weights_429_then_418():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100, weight_limit=60, ban_after_429=1)
        try:
            url = "/api/v3/depth?symbol=BTCUSDT"
            used = []
            for _ in range(7):
                status, hdrs, _b = await rawclient.http_request(HOST, srv.port, "GET", url)
                assert status == 200
                used.append(int(hdrs["x-mbx-used-weight-1m"]))
            assert used == [5, 10, 15, 20, 25, 30, 35]
            status, hdrs, _b = await rawclient.http_request(HOST, srv.port, "GET", url + "&limit=500")
            assert status == 200 and hdrs["x-mbx-used-weight-1m"] == "60"
            status, hdrs, b = await rawclient.http_request(HOST, srv.port, "GET", url)
            assert status == 429 and int(hdrs["retry-after"]) > 0
            assert json.loads(b)["code"] == -1003
            assert (await rawclient.http_request(HOST, srv.port, "GET", url))[0] == 429
            status, hdrs, b = await rawclient.http_request(HOST, srv.port, "GET", url)
            assert status == 418 and int(hdrs["retry-after"]) > 0
        finally:
            await srv.close()
    run(body())


def test_depth_snapshot_validation_and_default_limit():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100, depth_levels=150)
        try:
            status, snap = await rawclient.get_json(HOST, srv.port, "/api/v3/depth?symbol=BTCUSDT")
            assert status == 200 and len(snap["bids"]) == 100 and len(snap["asks"]) == 100
            status, snap = await rawclient.get_json(HOST, srv.port,
                                                    "/api/v3/depth?symbol=BTCUSDT&limit=5000")
            assert len(snap["bids"]) == 150
            status, err = await rawclient.get_json(HOST, srv.port, "/api/v3/depth?symbol=NOPE")
            assert (status, err) == (400, {"code": -1121, "msg": "Invalid symbol."})
            status, err = await rawclient.get_json(HOST, srv.port, "/api/v3/depth")
            assert status == 400 and err["code"] == -1102
        finally:
            await srv.close()
    run(body())


def test_rest_keep_alive_serves_several_requests_on_one_connection():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100)
        try:
            reader, writer = await asyncio.open_connection(HOST, srv.port)
            req = b"GET /api/v3/depth?symbol=BTCUSDT&limit=5 HTTP/1.1\r\nHost: x\r\n\r\n"
            writer.write(req + req)
            data = b""
            while data.count(b"lastUpdateId") < 2:
                data += await asyncio.wait_for(reader.read(65536), 5)
            assert data.count(b"HTTP/1.1 200 OK") == 2
            writer.close()
        finally:
            await srv.close()
    run(body())


def test_status_reports_connections_counters_and_update_ids():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT", "ETHUSDT"], rate=500)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/stream?streams=ethusdt@depth")
            await collect(ws, 3)
            await rawclient.get_json(HOST, srv.port, "/api/v3/depth?symbol=ETHUSDT&limit=5")
            status, st = await rawclient.get_json(HOST, srv.port, "/_sim/status")
            await ws.close()
        finally:
            await srv.close()
        assert status == 200
        assert st["connections_open"] == 1
        assert st["connections"][0]["streams"] == ["ethusdt@depth"]
        assert st["messages_sent"]["ETHUSDT"] >= 3 and st["messages_sent"]["BTCUSDT"] == 0
        assert st["messages_generated"]["BTCUSDT"] > 0
        assert st["snapshots_served"] == 1
        assert set(st["update_ids"]) == {"BTCUSDT", "ETHUSDT"}
        for key in ("pings_sent", "pongs_received", "faults_applied", "disconnects"):
            assert key in st
    run(body())


def test_control_endpoint_refuses_bad_faults():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100)
        try:
            status, reply = await rawclient.post_fault(HOST, srv.port, {"fault": "nope"})
            assert status == 400 and reply["ok"] is False and "nope" in reply["error"]
            status, reply = await rawclient.post_fault(HOST, srv.port,
                                                       {"fault": "drop_diff", "symbol": "XXX"})
            assert status == 400
            status, reply = await rawclient.post_fault(HOST, srv.port,
                                                       {"fault": "close_abrupt", "conn": 99})
            assert status == 400
            status, reply = await rawclient.post_fault(HOST, srv.port, {"fault": "drop_diff"})
            assert (status, reply) == (200, {"ok": True})
        finally:
            await srv.close()
    run(body())


def _ipv6_loopback_available():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback here")
def test_localhost_serves_ipv4_and_ipv6_loopback_on_one_port():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=200, host="localhost")
        try:
            for host in ("127.0.0.1", "::1"):
                ws = await rawclient.ws_connect(host, srv.port, "/ws/btcusdt@depth")
                assert (await ws.recv_json())["e"] == "depthUpdate"
                await ws.close()
                status, _snap = await rawclient.get_json(host, srv.port,
                                                         "/api/v3/depth?symbol=BTCUSDT&limit=5")
                assert status == 200
        finally:
            await srv.close()
    run(body())


def test_closing_the_server_closes_clients_with_1001(tmp_path):
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=200, record=str(tmp_path / "j.jsonl"))
        ws = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@depth")
        await ws.recv_message()
        await srv.close()
        while True:
            ev = await ws.recv(timeout_s=3)
            if isinstance(ev, Close):
                return ev.code
    assert run(body()) == 1001
    truth = simtruth.load_journal(tmp_path / "j.jsonl")
    assert truth.depth_events["BTCUSDT"] and truth.bad_lines == 0
