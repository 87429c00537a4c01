"""More markets of the venues already here, with no new code per market where the protocol is the
same: Binance COIN-M futures (``binance-coinm``), Bybit spot and inverse (``bybit-spot``,
``bybit-inverse``) and OKX spot (instrument ids such as ``BTC-USDT`` on the ``okx`` venue).

Each market is a registry entry (hftfeed/venues/registry.py) whose adapter is a subclass holding
only the facts that differ, and whose simulator dialect is the venue's, parametrised by its
``MARKETS`` table. End-to-end exactness per market is in test_e2e_venues.py; this file pins the
per-market facts: endpoints, the JSON differences and what the adapters make of them.
"""

import asyncio
import json

import pytest

from hftfeed.app.config import load_config_dict
from hftfeed.core.updates import CTRL_PONG, DepthUpdate, Quote, Trade
from hftfeed.errors import ConfigError, InvalidHandshake, VenueError
from hftfeed.tools.sim import rawclient
from hftfeed.tools.sim.server import start_sim
from hftfeed.venues import registry
from hftfeed.venues.binance_usdm import BinanceCoinm, BinanceUsdm, fast_depth_coinm
from hftfeed.venues.bybit import Bybit, BybitInverse, BybitSpot

HOST = "127.0.0.1"

COINM_DEPTH = ('{"stream":"btcusd_perp@depth@100ms","data":{"e":"depthUpdate","E":1700000000123,'
               '"T":1700000000122,"s":"BTCUSD_PERP","ps":"BTCUSD","U":101,"u":105,"pu":99,'
               '"b":[["43000.1","12"]],"a":[["43000.2","0"],["43001.0","7"]]}}')


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


# ---------------------------------------------------------------------- one entry per market
@pytest.mark.parametrize("name, cls, ws_url", [
    ("binance-coinm", BinanceCoinm, "wss://dstream.binance.com"),
    ("bybit-spot", BybitSpot, "wss://stream.bybit.com/v5/public/spot"),
    ("bybit-inverse", BybitInverse, "wss://stream.bybit.com/v5/public/inverse"),
])
def test_each_market_is_a_registry_entry_with_its_own_wire_id_and_endpoint(name, cls, ws_url):
    assert registry.adapter(name) is cls
    assert cls.NAME == name and cls.DEFAULT_WS_URL == ws_url
    assert cls.VENUE_ID == registry.spec(name).wire_id
    parent = BinanceUsdm if name == "binance-coinm" else Bybit
    assert cls.VENUE_ID != parent.VENUE_ID and cls.rule is parent.rule   # same rule object


def test_a_market_subclass_does_not_change_its_parent():
    assert (Bybit.NAME, Bybit.VENUE_ID) == ("bybit", 3)
    assert (BinanceUsdm.NAME, BinanceUsdm.SNAPSHOT_PATH) == ("binance-usdm", "/fapi/v1/depth")


def test_check_refuses_a_symbol_of_another_market_with_an_example():
    with pytest.raises(ConfigError) as info:
        load_config_dict({"feeds": [{"venue": "binance-coinm", "symbols": ["BTCUSDT"]}]})
    assert "BTCUSD_PERP" in str(info.value)
    cfg = load_config_dict({"feeds": [{"venue": "binance-coinm",
                                       "symbols": ["BTCUSD_PERP", "ETHUSD_261225"]}]})
    assert cfg.feeds[0].ws_url == "wss://dstream.binance.com"
    cfg = load_config_dict({"feeds": [{"venue": "okx", "symbols": ["BTC-USDT", "BTC-USDT-SWAP"]}]})
    assert len(cfg.feeds[0].instruments) == 2


# ---------------------------------------------------------------------- Binance COIN-M adapter
def test_coinm_uses_one_unsplit_connection_and_the_dapi_snapshot():
    venue = BinanceCoinm(["BTCUSD_PERP"], ("depth", "trade", "bookTicker"))
    assert venue.routes() == [("", ("depth", "trade", "bookTicker"))]
    assert venue.streams_for("BTCUSD_PERP") == ["btcusd_perp@depth@100ms", "btcusd_perp@aggTrade",
                                                "btcusd_perp@bookTicker"]
    assert venue.snapshot_request("BTCUSD_PERP", 1000) == (
        "/dapi/v1/depth?symbol=BTCUSD_PERP&limit=1000", 20)



def test_coinm_takes_1024_streams_a_connection_as_its_docs_say():
    """Binance's COIN-M "Websocket Market Streams" page: "A single connection can listen to a
    maximum of 1024 streams" (read 2026-12-05; the adapter used to stop at 200 and opened five
    times the connections it needed). 300 instruments x 3 channels fit one connection."""
    symbols = ["C%dUSD_PERP" % i for i in range(300)]
    cfg = load_config_dict({"feeds": [{"venue": "binance-coinm", "symbols": symbols}]})
    assert cfg.feeds[0].max_streams_per_connection == 1024
    venue = BinanceCoinm(symbols, ("depth", "trade", "bookTicker"))
    streams = [s for sym in symbols for s in venue.streams_for(sym)]
    assert len(streams) == 900 <= cfg.feeds[0].max_streams_per_connection


@pytest.mark.parametrize("fast", [True, False])
def test_coinm_depth_with_the_pair_field_parses_the_same_on_both_paths(fast):
    venue = BinanceCoinm(["BTCUSD_PERP"], ("depth",))
    venue.fast_scanner = fast
    (upd,) = venue.parse(COINM_DEPTH)
    assert isinstance(upd, DepthUpdate)
    assert (upd.symbol, upd.first_id, upd.last_id, upd.prev_id) == ("BTCUSD_PERP", 101, 105, 99)
    assert upd.exch_ns == 1700000000123 * 1000000


def test_coinm_scanner_takes_its_shape_and_leaves_anything_else_to_json():
    assert fast_depth_coinm(COINM_DEPTH) is not None
    usdm_shape = COINM_DEPTH.replace(',"ps":"BTCUSD"', "")
    assert fast_depth_coinm(usdm_shape) is None
    assert fast_depth_coinm(COINM_DEPTH.replace('"ps":"BTCUSD"', '"ps":"BTC\\"USD"')) is None
    for cut in (10, 80, len(COINM_DEPTH) - 3):
        assert fast_depth_coinm(COINM_DEPTH[:cut]) is None


def test_coinm_snapshot_with_symbol_and_pair_fields():
    body = (b'{"lastUpdateId":16769853,"symbol":"BTCUSD_PERP","pair":"BTCUSD","E":1591250106370,'
            b'"T":1591250106368,"bids":[["9638.0","431"]],"asks":[["9638.2","12"]]}')
    snap = BinanceCoinm(["BTCUSD_PERP"], ("depth",)).parse_snapshot("BTCUSD_PERP", body)
    assert snap.last_id == 16769853 and snap.symbol == "BTCUSD_PERP"


# ---------------------------------------------------------------------- Bybit spot / inverse
def test_bybit_spot_pong_and_decimal_trade_ids():
    venue = BybitSpot(["BTCUSDT"], ("depth", "trade"))
    (pong,) = venue.parse('{"success":true,"ret_msg":"pong","conn_id":"c1","op":"pong"}')
    assert pong.kind == CTRL_PONG
    trades = venue.parse('{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,'
                         '"data":[{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001",'
                         '"p":"16578.50","L":"PlusTick","i":"2290000000061666327","BT":false}]}')
    assert isinstance(trades[0], Trade) and trades[0].trade_id == 2290000000061666327


def test_bybit_inverse_books_and_level_one_quotes_use_the_linear_parser():
    venue = BybitInverse(["BTCUSD"], ("depth", "bookTicker"))
    assert venue.streams_for("btcusd") == ["orderbook.50.BTCUSD", "orderbook.1.BTCUSD"]
    (q,) = venue.parse('{"topic":"orderbook.1.BTCUSD","type":"snapshot","ts":1,"data":{"s":"BTCUSD",'
                       '"b":[["43000.5","1200"]],"a":[["43001.0","800"]],"u":7,"seq":99}}')
    assert isinstance(q, Quote) and q.update_id == 99
    with pytest.raises(VenueError):
        venue.parse('{"topic":"orderbook.50.BTCUSD","type":"delta","ts":1,"data":{"s":"BTCUSD",'
                    '"b":[],"a":[],"u":0}}')


# ---------------------------------------------------------------------- the simulator's markets
def test_simulated_coinm_has_no_url_split_and_sends_the_pair_field():
    async def body():
        srv = await start_sim(venue="binance-coinm", symbols=["BTCUSD_PERP"], rate=1000)
        try:
            with pytest.raises(InvalidHandshake):
                await rawclient.ws_connect(HOST, srv.port, "/public/stream?streams="
                                           "btcusd_perp@depth@100ms")
            ws = await rawclient.ws_connect(HOST, srv.port, "/stream?streams=btcusd_perp@depth@100ms"
                                            "/btcusd_perp@bookTicker/btcusd_perp@aggTrade")
            got = [json.loads(await ws.recv_message(5.0)) for _ in range(120)]
            await ws.close()
            status, _headers, snap = await rawclient.http_request(
                HOST, srv.port, "GET", "/dapi/v1/depth?symbol=BTCUSD_PERP&limit=100")
            fapi, _headers, _ = await rawclient.http_request(
                HOST, srv.port, "GET", "/fapi/v1/depth?symbol=BTCUSD_PERP&limit=100")
        finally:
            await srv.close()
        return got, status, json.loads(snap.decode()), fapi

    got, status, snap, fapi = run(body())
    kinds = {m["stream"].partition("@")[2] for m in got}
    assert kinds == {"depth@100ms", "bookTicker", "aggTrade"}
    depth = next(m["data"] for m in got if m["stream"].endswith("@depth@100ms"))
    assert list(depth) == ["e", "E", "T", "s", "ps", "U", "u", "pu", "b", "a"]
    assert depth["ps"] == "BTCUSD"
    ticker = next(m["data"] for m in got if m["stream"].endswith("@bookTicker"))
    assert ticker["ps"] == "BTCUSD"
    assert status == 200 and list(snap)[:3] == ["lastUpdateId", "symbol", "pair"]
    assert fapi == 404


@pytest.mark.parametrize("venue, path, symbol, pong_op, uuid_ids", [
    ("bybit-spot", "/v5/public/spot", "BTCUSDT", "pong", False),
    ("bybit-inverse", "/v5/public/inverse", "BTCUSD", "ping", True),
])
def test_simulated_bybit_markets_serve_their_path_pong_and_trade_ids(venue, path, symbol, pong_op,
                                                                      uuid_ids):
    async def body():
        srv = await start_sim(venue=venue, symbols=[symbol], rate=2000)
        try:
            with pytest.raises(InvalidHandshake):
                await rawclient.ws_connect(HOST, srv.port, "/v5/public/linear")
            ws = await rawclient.ws_connect(HOST, srv.port, path)
            ws.send_json({"op": "ping"})
            ws.send_json({"op": "subscribe", "args": ["publicTrade." + symbol,
                                                      "orderbook.1000." + symbol]})
            got = [json.loads(await ws.recv_message(5.0)) for _ in range(200)]
            await ws.close()
        finally:
            await srv.close()
        return got

    got = run(body())
    assert got[0]["op"] == pong_op and got[0]["ret_msg"] == "pong"
    trade_ids = [t["i"] for m in got if m.get("topic", "").startswith("publicTrade")
                 for t in m["data"]]
    assert trade_ids
    assert all(("-" in i) == uuid_ids for i in trade_ids)
    assert all(i.isdigit() for i in trade_ids) != uuid_ids
    assert any(m.get("topic") == "orderbook.1000." + symbol for m in got)


def test_bybit_book_depths_are_1_50_200_and_1000_on_every_market():
    """Bybit's orderbook page (re-read 2026-12-05): linear, inverse and spot all offer depths
    1, 50, 200 and 1000; the older 500 is gone."""
    from hftfeed.tools.sim import bybit as sim_bybit
    for depth in (50, 200, 1000):
        assert sim_bybit.parse_topic("orderbook.%d.BTCUSDT" % depth) == ("book", depth, "BTCUSDT")
    assert sim_bybit.parse_topic("orderbook.1.BTCUSDT")[0] == "l1"
    for depth in (25, 500):
        with pytest.raises(ValueError):
            sim_bybit.parse_topic("orderbook.%d.BTCUSDT" % depth)
    for cls in (Bybit, BybitSpot, BybitInverse):
        assert cls(["BTCUSDT"], ("depth",)).streams_for("BTCUSDT") == ["orderbook.50.BTCUSDT"]
