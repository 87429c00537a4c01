"""venues/binance.py: Binance spot messages -> shared update types (and nothing else)."""

import json

import pytest

from hftfeed.errors import VenueError
from hftfeed.venues.binance import BinanceSpot, fast_depth, snapshot_weight
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_SERVER_SHUTDOWN, CTRL_SUBSCRIBED,
                             SIDE_BUY, SIDE_SELL, Control, DepthUpdate, Quote, Trade)


DEPTH = ('{"stream":"nknusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512068,'
         '"s":"NKNUSDT","U":499869750,"u":499869752,"b":[["0.35130000","6195.00000000"],'
         '["0.34750000","0.00000000"]],"a":[]}}')


def venue(channels=("depth", "trade", "bookTicker")):
    return BinanceSpot(["BTCUSDT", "NKNUSDT"], channels)


def test_depth_update_becomes_a_depth_update_with_scaled_ints():
    (upd,) = venue().parse(DEPTH)
    assert type(upd) is DepthUpdate
    assert (upd.symbol, upd.first_id, upd.last_id, upd.prev_id) == ("NKNUSDT", 499869750, 499869752, -1)
    assert upd.exch_ns == 1633998512068 * 1000000
    assert upd.bids == [35130000, 619500000000, 34750000, 0]
    assert upd.asks == []


def test_fast_scanner_and_json_path_agree():
    slow = venue()._event(json.loads(DEPTH)["data"])
    fast = fast_depth(DEPTH)
    for name in DepthUpdate.__slots__:
        assert getattr(fast, name) == getattr(slow, name), name


def test_the_scanner_is_the_default_only_where_it_is_the_faster_path():
    import platform
    assert venue().fast_scanner == (platform.python_implementation() == "PyPy")


@pytest.mark.parametrize("fast_scanner", [False, True])
def test_parse_gives_the_same_update_with_and_without_the_scanner(fast_scanner):
    v = venue()
    v.fast_scanner = fast_scanner
    (upd,) = v.parse(DEPTH)
    (ref,) = venue().parse(DEPTH)
    for name in DepthUpdate.__slots__:
        assert getattr(upd, name) == getattr(ref, name), name


@pytest.mark.parametrize("text", [
    DEPTH.replace('"E":', '"x":1,"E":'),                 # unknown field first
    DEPTH.replace('"a":[]', '"a":[],"z":true'),          # unknown field last
    DEPTH.replace(",", ", "),                            # whitespace
    DEPTH.replace('"6195.00000000"]', '"6195.00000000",[]]'),   # legacy third element
    DEPTH.replace('{"stream":"nknusdt@depth@100ms","data":', "")[:-1],  # raw /ws/ form
])
def test_other_valid_shapes_take_the_json_path_and_give_the_same_update(text):
    assert fast_depth(text) is None
    (upd,) = venue().parse(text)
    assert (upd.symbol, upd.first_id, upd.last_id) == ("NKNUSDT", 499869750, 499869752)
    assert upd.bids == [35130000, 619500000000, 34750000, 0]


def test_trade_side_is_the_aggressor_buyer_maker_means_seller_aggressed():
    msg = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":12345,'
           '"p":"37000.01000000","q":"0.50000000","T":1633998523963,"m":true,"M":true}}')
    (t,) = venue().parse(msg)
    assert type(t) is Trade
    assert (t.trade_id, t.price, t.qty, t.side) == (12345, 3700001000000, 50000000, SIDE_SELL)
    assert t.exch_ns == 1633998523963 * 1000000
    (t2,) = venue().parse(msg.replace('"m":true', '"m":false'))
    assert t2.side == SIDE_BUY


def test_agg_trade_uses_the_aggregate_id():
    msg = ('{"stream":"nknusdt@aggTrade","data":{"e":"aggTrade","E":1633998523963,"s":"NKNUSDT",'
           '"a":15683430,"p":"0.35280000","q":"58.00000000","f":19862790,"l":19862790,'
           '"T":1633998523963,"m":false,"M":true}}')
    (t,) = venue().parse(msg)
    assert (t.trade_id, t.price, t.qty, t.side) == (15683430, 35280000, 5800000000, SIDE_BUY)


def test_book_ticker_becomes_a_quote():
    msg = ('{"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":"25.35190000",'
           '"B":"31.21000000","a":"25.36520000","A":"40.66000000"}}')
    (q,) = venue().parse(msg)
    assert type(q) is Quote
    assert (q.update_id, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, q.exch_ns) == \
        (400900217, 2535190000, 3121000000, 2536520000, 4066000000, 0)


@pytest.mark.parametrize("text, kind", [
    ('{"result":null,"id":1}', CTRL_SUBSCRIBED),
    ('{"code":2,"msg":"Invalid request"}', CTRL_ERROR),
    ('{"event":{"e":"serverShutdown","E":1770123456789}}', CTRL_SERVER_SHUTDOWN),
    ('{"stream":"x","data":{"e":"serverShutdown","E":1}}', CTRL_SERVER_SHUTDOWN),
    ('{"stream":"btcusdt@kline_1m","data":{"e":"kline","E":1,"s":"BTCUSDT","k":{}}}', CTRL_IGNORED),
    ('{"stream":"btcusdt@whatever","data":{"e":"brandNew","foo":[1,2]}}', CTRL_IGNORED),
])
def test_control_and_unknown_events(text, kind):
    (event,) = venue().parse(text)
    assert type(event) is Control and event.kind == kind


@pytest.mark.parametrize("text", [
    "{\"stream\":1}",
    DEPTH.replace('"U":499869750', '"U":"499869750"'),
    DEPTH.replace('"U":499869750', '"U":499869760'),                 # U > u
    DEPTH.replace('"U":499869750', '"U":-1'),
    DEPTH.replace('"U":499869750', '"U":true'),
    DEPTH.replace('"U":499869750', '"U":4.5'),
    DEPTH.replace('"0.35130000"', '"NaN"'),
    DEPTH.replace('"0.35130000"', '"-0.35130000"'),                  # negative price
    DEPTH.replace('"0.35130000"', '"0"'),                            # zero price
    DEPTH.replace('"6195.00000000"', '"-1"'),                        # negative qty
    DEPTH.replace('"6195.00000000"', '"1' + "0" * 40 + '"'),         # absurd qty: beyond int64
    DEPTH.replace('"6195.00000000"', '6195'),                        # number instead of string
    DEPTH.replace('["0.35130000","6195.00000000"]', '["0.35130000"]'),
    DEPTH.replace('"b":[', '"b":{"x":[').replace('],"a"', ']},"a"'),
    DEPTH.replace('"E":1633998512068', '"E":"soon"'),
    '{"stream":"a","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1","m":"yes"}}',
    '{"stream":"a","data":{"e":"trade","s":"BTCUSDT","t":1,"p":"1","q":"1"}}',
    '{"stream":"a","data":{"u":1,"s":"BTCUSDT","b":"1","B":"1","a":"x","A":"1"}}',
])
def test_malformed_or_absurd_messages_raise_venue_error_only(text):
    """Binance-shaped mistakes; what every venue must refuse is tests/test_venue_contract.py."""
    with pytest.raises(VenueError):
        venue().parse(text)


def test_stream_names_and_url_path():
    v = BinanceSpot(["BTCUSDT"], ("depth", "trade", "bookTicker"))
    assert v.streams_for("BTCUSDT") == ["btcusdt@depth@100ms", "btcusdt@trade", "btcusdt@bookTicker"]
    assert v.connection_path(v.streams_for("BTCUSDT")) == \
        "/stream?streams=btcusdt@depth@100ms/btcusdt@trade/btcusdt@bookTicker"
    slow = BinanceSpot(["BTCUSDT"], ("depth",), depth_speed="1000ms")
    assert slow.streams_for("BTCUSDT") == ["btcusdt@depth"]


def test_snapshot_request_and_weights():
    v = venue()
    assert v.snapshot_request("btcusdt", 1000) == ("/api/v3/depth?symbol=BTCUSDT&limit=1000", 50)
    assert [snapshot_weight(n) for n in (5, 100, 101, 500, 501, 1000, 1001, 5000)] == \
        [5, 5, 25, 25, 50, 50, 250, 250]


def test_snapshot_body_parses_and_bad_bodies_raise_venue_error():
    body = b'{"lastUpdateId":160,"bids":[["0.0024","10"]],"asks":[["0.0026","100"]]}'
    snap = venue().parse_snapshot("BTCUSDT", body)
    assert (snap.last_id, snap.bids, snap.asks) == (160, [240000, 1000000000], [260000, 10000000000])
    for bad in (b"", b"{", b'{"bids":[],"asks":[]}', b'{"lastUpdateId":-5,"bids":[],"asks":[]}',
                b'{"lastUpdateId":1,"bids":[["x","1"]],"asks":[]}', b"\xff\xfe"):
        with pytest.raises(VenueError):
            venue().parse_snapshot("BTCUSDT", bad)


def test_a_trade_of_zero_quantity_is_bad_data_not_a_trade():
    msg = ('{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":12345,'
           '"p":"37000.01000000","q":"0.00000000","T":1633998523963,"m":true,"M":true}}')
    with pytest.raises(VenueError, match="zero"):
        venue().parse(msg)


@pytest.mark.parametrize("pu", ["-2", "-9223372036854775808", "9223372036854775808"])
def test_a_pu_that_no_stream_could_send_is_bad_data(pu):
    msg = ('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1,"s":"BTCUSDT",'
           '"U":10,"u":12,"pu":%s,"b":[["1.0","1.0"]],"a":[]}}' % pu)
    for fast in (False, True):
        v = venue()
        v.fast_scanner = fast
        with pytest.raises(VenueError):
            v.parse(msg)
