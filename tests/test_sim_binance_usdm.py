"""Specification of the simulator's Binance USD-M futures dialect (hftfeed/tools/sim/binance_usdm.py).

Shapes checked against Binance's USD-M docs ("Diff. Book Depth Streams", "Individual Symbol Book
Ticker Streams", "Aggregate Trade Streams", "Order Book", "How to manage a local order book
correctly", "Websocket Market Streams") and the real capture in shared/data/captures.
"""

import asyncio
import json
from pathlib import Path

import pytest

import simtruth
from refbook import RefBook

from hftfeed.codecs.fixed import parse_price
from hftfeed.tools.sim import binance_usdm, rawclient
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SIDE_BUY, SIDE_SELL
from hftfeed.tools.sim.server import start_sim
from hftfeed.codecs.ws_proto import Close, Ping

HOST = "127.0.0.1"
CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "captures"
VENUE = "binance-usdm"


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def collect(ws, n, timeout_s=5.0):
    return [json.loads(await ws.recv_message(timeout_s)) for _ in range(n)]


def flat(levels):
    out = []
    for p, q in levels:
        out.append(parse_price(p))
        out.append(parse_price(q))
    return out


class FakeServer(object):
    """What the dialect object reads from its server, for tests without sockets."""

    def __init__(self, symbols):
        self.symbols = list(symbols)
        self.source = self

    def initial_books(self):
        return [(s, 1000, [], []) for s in self.symbols]

    @staticmethod
    def now_ms():
        return 1700000000123


# ---------------------------------------------------------------------- message shapes
def test_depth_update_has_futures_keys_in_order_with_T_and_pu():
    d = binance_usdm.Dialect(FakeServer(["BTCUSDT"]))
    ev = d.observe_depth((EV_DEPTH, "BTCUSDT", 1001, 1003, [3700001000000, 123000000],
                          [3700002000000, 0]))
    msg = json.loads(d.formatter("depth@100ms")(ev, 1700000000123, ""))
    assert list(msg) == ["e", "E", "T", "s", "U", "u", "pu", "b", "a"]
    assert msg["e"] == "depthUpdate" and msg["E"] == 1700000000123 and msg["T"] <= msg["E"]
    assert (msg["u"], msg["pu"]) == (1003, 1000)
    assert msg["b"] == [["37000.01", "1.230"]] and msg["a"] == [["37000.02", "0.000"]]


def test_pu_is_the_previous_events_u_and_U_may_skip_ids_as_on_the_venue():
    d = binance_usdm.Dialect(FakeServer(["BTCUSDT"]))
    fmt = d.formatter("depth")
    first = json.loads(fmt(d.observe_depth((EV_DEPTH, "BTCUSDT", 1001, 1003, [], [])), 1, ""))
    second = json.loads(fmt(d.observe_depth((EV_DEPTH, "BTCUSDT", 1004, 1004, [], [])), 1, ""))
    assert second["pu"] == first["u"]
    assert first["U"] > first["pu"] + 1     # ids between belong to "other symbols"
    assert first["U"] <= first["u"] and second["U"] == second["u"] == 1004


def test_prices_and_quantities_carry_the_instrument_precision():
    d = binance_usdm.Dialect(FakeServer(["XRPUSDT", "BTCUSDT"]))
    fmt = d.formatter("depth@100ms")
    xrp = json.loads(fmt(d.observe_depth((EV_DEPTH, "XRPUSDT", 5, 5, [60010000, 1200000000000],
                                          [])), 1, ""))
    assert xrp["b"] == [["0.6001", "12000"]]    # tick 0.0001, lot 1: like "7.6110", "813"


def test_bookticker_has_event_type_times_and_the_book_update_id():
    d = binance_usdm.Dialect(FakeServer(["BTCUSDT"]))
    msg = json.loads(d.formatter("bookTicker")(
        (EV_QUOTE, "BTCUSDT", 77, 3700000000000, 100000, 3700001000000, 200000), 9000, ""))
    assert list(msg) == ["e", "u", "s", "b", "B", "a", "A", "T", "E"]
    assert msg["e"] == "bookTicker" and msg["u"] == 77 and msg["E"] == 9000
    assert (msg["b"], msg["B"], msg["a"], msg["A"]) == ("37000.00", "0.001", "37000.01", "0.002")


def test_aggtrade_has_no_M_and_m_means_the_buyer_was_the_maker():
    d = binance_usdm.Dialect(FakeServer(["BTCUSDT"]))
    fmt = d.formatter("aggTrade")
    sell = json.loads(fmt((EV_TRADE, "BTCUSDT", 42, 3700000000000, 100000, SIDE_SELL), 5, ""))
    buy = json.loads(fmt((EV_TRADE, "BTCUSDT", 43, 3700000000000, 100000, SIDE_BUY), 5, ""))
    assert set(sell) == {"e", "E", "a", "s", "p", "q", "f", "l", "T", "m"}
    assert sell["a"] == sell["f"] == sell["l"] == 42
    assert sell["m"] is True and buy["m"] is False


def test_our_key_order_is_the_real_captures_key_order():
    path = CAPTURES / "BINANCE_FUTURES.ws.1.0"
    if not path.exists():
        pytest.skip("no capture at %s" % path)
    real = {}
    with open(str(path)) as fh:
        for line in fh:
            _ts, sep, text = line.partition(": ")
            if sep and text.startswith("{"):
                data = json.loads(text)["data"]
                real.setdefault(data.get("e"), list(data))
    d = binance_usdm.Dialect(FakeServer(["BTCUSDT"]))
    ours = {
        "depthUpdate": d.formatter("depth@100ms")(
            d.observe_depth((EV_DEPTH, "BTCUSDT", 1001, 1001, [], [])), 1, ""),
        "bookTicker": d.formatter("bookTicker")((EV_QUOTE, "BTCUSDT", 1, 1, 1, 2, 1), 1, ""),
        "aggTrade": d.formatter("aggTrade")((EV_TRADE, "BTCUSDT", 1, 1, 1, SIDE_BUY), 1, ""),
    }
    for kind, text in ours.items():
        assert list(json.loads(text)) == real[kind], kind


# ---------------------------------------------------------------------- paths and REST rules
def test_ws_targets_know_the_public_and_market_routes_and_the_unsplit_paths():
    parse = binance_usdm.parse_ws_target
    assert parse("/public/stream?streams=btcusdt@depth@100ms/btcusdt@bookTicker") == \
        ("/public", True, ["btcusdt@depth@100ms", "btcusdt@bookTicker"])
    assert parse("/market/ws/btcusdt@aggTrade") == ("/market", False, ["btcusdt@aggTrade"])
    assert parse("/stream?streams=btcusdt@aggTrade") == ("", True, ["btcusdt@aggTrade"])
    assert parse("/public/ws") == ("/public", False, [])
    with pytest.raises(ValueError):
        parse("/private/stream?streams=btcusdt@aggTrade")
    with pytest.raises(ValueError):
        parse("/public/stream?streams=btcusdt")


def test_depth_query_takes_only_the_listed_limits_and_defaults_to_500():
    known = {"BTCUSDT"}
    assert binance_usdm.parse_depth_query("symbol=BTCUSDT", known) == ("BTCUSDT", 500)
    for limit in (5, 10, 20, 50, 100, 500, 1000):
        assert binance_usdm.parse_depth_query("symbol=BTCUSDT&limit=%d" % limit, known)[1] == limit
    for bad in ("7", "5000", "-5", "x"):
        with pytest.raises(binance_usdm.BinanceRequestError) as err:
            binance_usdm.parse_depth_query("symbol=BTCUSDT&limit=" + bad, known)
        assert err.value.code == -1100
    with pytest.raises(binance_usdm.BinanceRequestError) as err:
        binance_usdm.parse_depth_query("symbol=NOPE", known)
    assert err.value.code == -1121


def test_depth_weights_are_the_futures_table():
    assert [binance_usdm.depth_weight(n) for n in (5, 10, 20, 50, 100, 500, 1000)] == \
        [2, 2, 2, 2, 5, 10, 20]


# ---------------------------------------------------------------------- through real sockets
def test_public_route_carries_the_book_streams_and_market_route_the_trades():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=2000)
        try:
            names = "btcusdt@depth@100ms/btcusdt@bookTicker/btcusdt@aggTrade"
            public = await rawclient.ws_connect(HOST, srv.port, "/public/stream?streams=" + names)
            market = await rawclient.ws_connect(HOST, srv.port, "/market/stream?streams=" + names)
            got_public = await collect(public, 150)
            got_market = await collect(market, 15)
            public.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 3})
            listed = None
            while listed is None:
                m = json.loads(await public.recv_message())
                if m.get("id") == 3:
                    listed = m["result"]
            await public.close()
            await market.close()
        finally:
            await srv.close()
        return got_public, got_market, listed

    got_public, got_market, listed = run(body())
    assert {m["stream"] for m in got_public} == {"btcusdt@depth@100ms", "btcusdt@bookTicker"}
    assert {m["stream"] for m in got_market} == {"btcusdt@aggTrade"}
    assert listed == ["btcusdt@depth@100ms", "btcusdt@bookTicker", "btcusdt@aggTrade"]


def test_documented_procedure_rebuilds_the_journal_book_from_snapshot_and_pu_chain(tmp_path):
    """Buffer, snapshot, drop u < lastUpdateId, first event has U <= lastUpdateId <= u, then
    every pu equals the previous u."""
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT", "ETHUSDT"], rate=1000,
                              record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port,
                                            "/public/stream?streams=btcusdt@depth@100ms")
            first = await collect(ws, 3)
            status, headers, body = await rawclient.http_request(
                HOST, srv.port, "GET", "/fapi/v1/depth?symbol=BTCUSDT&limit=1000")
            later = await collect(ws, 80)
            await ws.close()
        finally:
            await srv.close()
        return status, headers, json.loads(body.decode()), [m["data"] for m in first + later]

    status, headers, snap, events = run(body())
    assert status == 200 and headers["x-mbx-used-weight-1m"] == "20"
    assert list(snap) == ["lastUpdateId", "E", "T", "bids", "asks"]
    last_id = snap["lastUpdateId"]
    for prev, ev in zip(events, events[1:]):
        assert ev["pu"] == prev["u"]
    live = [e for e in events if e["u"] >= last_id]
    assert live[0]["U"] <= last_id <= live[0]["u"]          # the snapshot lies inside [U, u]
    book = RefBook()
    book.load_snapshot(flat(snap["bids"]), flat(snap["asks"]), last_id)
    for e in live:
        book.apply_levels(flat(e["b"]), flat(e["a"]))
    truth = simtruth.load_journal(journal)
    assert book.top(1000) == truth.book_at("BTCUSDT", live[-1]["u"]).top(1000)


def test_dropped_diff_breaks_the_pu_chain_exactly_once(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=500, record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/public/ws/btcusdt@depth@100ms")
            before = await collect(ws, 5)
            status, _ = await rawclient.post_fault(HOST, srv.port, {"fault": "drop_diff"})
            after = await collect(ws, 30)
            await ws.close()
        finally:
            await srv.close()
        return status, before + after

    status, events = run(body())
    assert status == 200
    breaks = [(a, b) for a, b in zip(events, events[1:]) if b["pu"] != a["u"]]
    assert len(breaks) == 1
    dropped = simtruth.load_journal(journal).faults_named("drop_diff")
    assert any(f.get("u") == breaks[0][1]["pu"] for f in dropped)   # the missing event's u


def test_pings_every_interval_and_unsolicited_pongs_keep_a_futures_connection_alive():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=50, ping_interval_s=0.1,
                              pong_timeout_s=0.35)
        try:
            silent = await rawclient.ws_connect(HOST, srv.port, "/market/ws/btcusdt@aggTrade",
                                                auto_pong=False)
            ponging = await rawclient.ws_connect(HOST, srv.port, "/market/ws/btcusdt@aggTrade",
                                                 auto_pong=False)

            async def pong_forever():
                while True:     # unsolicited, never echoing a ping: allowed on futures
                    ponging.send_pong(b"")
                    await asyncio.sleep(0.15)   # below the 10 messages a second limit
            ponger = asyncio.ensure_future(pong_forever())
            pings = 0
            while True:
                ev = await silent.recv(timeout_s=3)
                pings += isinstance(ev, Ping)
                if isinstance(ev, Close):
                    break
            await asyncio.sleep(0.5)
            status = srv.status()
            ponger.cancel()
            await ponging.close()
        finally:
            await srv.close()
        return pings, status

    pings, status = run(body())
    assert pings >= 2
    assert status["disconnects"] == {"pong_timeout": 1}
    assert [c["closing"] for c in status["connections"]] == [False]
    assert status["venue"] == VENUE


def test_futures_defaults_ping_every_three_minutes_and_allow_ten_messages_a_second():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=50)
        try:
            cfg = srv.config
            ws = await rawclient.ws_connect(HOST, srv.port, "/market/ws/btcusdt@aggTrade")
            for _ in range(10):
                ws.send_ping(b"p")
            await asyncio.sleep(0.2)
            still_open = srv.status()["connections_open"]
            ws.send_ping(b"p")
            code = None
            while code is None:
                ev = await ws.recv(timeout_s=3)
                if isinstance(ev, Close):
                    code = ev.code
            _s, _h, ping = await rawclient.http_request(HOST, srv.port, "GET", "/fapi/v1/ping")
            _s, _h, when = await rawclient.http_request(HOST, srv.port, "GET", "/fapi/v1/time")
        finally:
            await srv.close()
        return cfg, still_open, code, ping, json.loads(when.decode())

    cfg, still_open, code, ping, when = run(body())
    assert (cfg.ping_interval_s, cfg.pong_timeout_s) == (180.0, 600.0)
    assert cfg.weight_limit == 2400 and cfg.lifetime_s == 86400.0
    assert still_open == 1 and code == 1008
    assert ping == b"{}" and when["serverTime"] > 0


def test_bad_limit_is_refused_with_the_venue_error():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=50)
        try:
            return await rawclient.http_request(HOST, srv.port, "GET",
                                                "/fapi/v1/depth?symbol=BTCUSDT&limit=7")
        finally:
            await srv.close()
    status, _headers, body = run(body())
    assert status == 400 and json.loads(body.decode())["code"] == -1100
