"""venues/binance_usdm.py: Binance USD-M futures messages -> shared update types, its URL
split, snapshot weights and the pu continuity rule driven through the shared sync engine."""


import pytest

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.binance_usdm import (BinanceUsdm, BinanceUsdmRule, fast_depth,
                                            snapshot_limit, snapshot_weight)
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_SERVER_SHUTDOWN, CTRL_SUBSCRIBED,
                             SIDE_BUY, SIDE_SELL, Control, DepthUpdate, Quote, Snapshot, Trade)


# Shapes as recorded from fstream (tests/../shared/data/captures/BINANCE_FUTURES.ws.1.0).
DEPTH = ('{"stream":"sushiusdt@depth@100ms","data":{"e":"depthUpdate","E":1626992741037,'
         '"T":1626992741024,"s":"SUSHIUSDT","U":600859599090,"u":600859600917,'
         '"pu":600859598061,"b":[["7.5040","813"],["7.6090","0"],["7.6110","2"]],'
         '"a":[["7.6150","1563"],["7.6220","3284"]]}}')
AGG_TRADE = ('{"stream":"ctkusdt@aggTrade","data":{"e":"aggTrade","E":1626992742527,'
             '"a":16599292,"s":"CTKUSDT","p":"1.01100","q":"10","f":23046473,"l":23046473,'
             '"T":1626992742372,"m":false}}')
BOOK_TICKER = ('{"stream":"sushiusdt@bookTicker","data":{"e":"bookTicker","u":600859600576,'
               '"s":"SUSHIUSDT","b":"7.6110","B":"2","a":"7.6120","A":"297",'
               '"T":1626992741012,"E":1626992741017}}')
P = 100000000


def venue(channels=("depth", "trade", "bookTicker"), depth_speed="100ms"):
    return BinanceUsdm(["SUSHIUSDT", "CTKUSDT"], channels, depth_speed)


def test_the_venue_has_its_own_limits():
    """Id, name and URLs: tests/test_venue_registry.py."""
    assert registry.adapter("binance-usdm") is BinanceUsdm
    assert (BinanceUsdm.REST_WEIGHT_PER_MIN, BinanceUsdm.MAX_STREAMS_PER_CONNECTION,
            BinanceUsdm.MAX_OUT_MSGS_PER_S) == (2400, 1024, 10.0)


def test_depth_update_carries_pu_as_prev_id_and_exact_scaled_levels():
    (upd,) = venue().parse(DEPTH)
    assert type(upd) is DepthUpdate
    assert (upd.symbol, upd.first_id, upd.last_id, upd.prev_id, upd.is_snapshot) == \
        ("SUSHIUSDT", 600859599090, 600859600917, 600859598061, False)
    assert upd.exch_ns == 1626992741037 * 1000000          # E, the event time
    assert upd.bids == [750400000, 81300000000, 760900000, 0, 761100000, 200000000]
    assert upd.asks == [761500000, 156300000000, 762200000, 328400000000]
    assert upd.checksum is None


def test_fast_scanner_and_json_path_agree():
    fast = fast_depth(DEPTH)
    (slow,) = venue().parse(DEPTH.replace(",", ", "))     # whitespace: not the scanner's shape
    assert fast_depth(DEPTH.replace(",", ", ")) is None
    for name in DepthUpdate.__slots__:
        assert getattr(fast, name) == getattr(slow, name), name


@pytest.mark.parametrize("text", [
    DEPTH.replace('"E":', '"x":1,"E":'),                               # unknown field first
    DEPTH.replace('"pu":600859598061,', '"pu":600859598061,"z":null,'),  # unknown field inside
    DEPTH.replace('"a":[[', '"a":[ ['),                                # whitespace
    DEPTH.replace('{"stream":"sushiusdt@depth@100ms","data":', "")[:-1],   # raw /ws/ form
])
def test_other_valid_shapes_take_the_json_path_and_give_the_same_update(text):
    assert fast_depth(text) is None
    (upd,) = venue().parse(text)
    assert (upd.first_id, upd.last_id, upd.prev_id) == (600859599090, 600859600917, 600859598061)
    assert upd.bids == [750400000, 81300000000, 760900000, 0, 761100000, 200000000]


def test_spot_shaped_depth_without_pu_is_not_taken_by_the_futures_scanner():
    spot = DEPTH.replace('"T":1626992741024,', "").replace('"pu":600859598061,', "")
    assert fast_depth(spot) is None
    (upd,) = venue().parse(spot)
    assert upd.prev_id == -1        # and the pu rule will then refuse to chain it


def test_agg_trade_is_the_trade_channel_with_the_aggregate_id_and_taker_side():
    (t,) = venue().parse(AGG_TRADE)
    assert type(t) is Trade
    assert (t.symbol, t.trade_id, t.price, t.qty, t.side, t.exch_ns) == \
        ("CTKUSDT", 16599292, 101100000, 1000000000, SIDE_BUY, 1626992742372 * 1000000)
    (t2,) = venue().parse(AGG_TRADE.replace('"m":false', '"m":true'))
    assert t2.side == SIDE_SELL                    # buyer is the maker: the seller aggressed


def test_book_ticker_becomes_a_quote_with_its_update_id():
    (q,) = venue().parse(BOOK_TICKER)
    assert type(q) is Quote
    assert (q.symbol, q.update_id, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, q.exch_ns) == \
        ("SUSHIUSDT", 600859600576, 761100000, 2 * P, 761200000, 297 * P, 1626992741017 * 1000000)


@pytest.mark.parametrize("text, kind", [
    ('{"result":null,"id":7}', CTRL_SUBSCRIBED),
    ('{"code":2,"msg":"Invalid request"}', CTRL_ERROR),
    ('{"stream":"x","data":{"e":"serverShutdown","E":1}}', CTRL_SERVER_SHUTDOWN),
    ('{"stream":"sushiusdt@kline_1m","data":{"e":"kline","E":1,"s":"SUSHIUSDT","k":{}}}',
     CTRL_IGNORED),
    ('{"stream":"sushiusdt@markPrice","data":{"e":"markPriceUpdate","E":1,"s":"SUSHIUSDT"}}',
     CTRL_IGNORED),
])
def test_control_and_unknown_events(text, kind):
    (event,) = venue().parse(text)
    assert type(event) is Control and event.kind == kind


@pytest.mark.parametrize("text", [
    DEPTH.replace('"pu":600859598061', '"pu":"600859598061"'),
    DEPTH.replace('"pu":600859598061', '"pu":1.5'),
    DEPTH.replace('"U":600859599090', '"U":600859600918'),          # U > u
    DEPTH.replace('"7.5040"', '"-7.5040"'),
    DEPTH.replace('"813"', '"0.000000001"'),                        # finer than 1e-8
    DEPTH.replace('"813"', '"1' + "0" * 30 + '"'),                   # beyond int64
    DEPTH.replace('"E":1626992741037', '"E":-1'),
    AGG_TRADE.replace('"a":16599292', '"a":"16599292"'),
    AGG_TRADE.replace('"m":false', '"m":0'),
    BOOK_TICKER.replace('"u":600859600576', '"u":-3'),
])
def test_malformed_or_absurd_messages_raise_venue_error_only(text):
    with pytest.raises(VenueError):
        venue().parse(text)


def test_routes_follow_the_url_split_public_for_depth_and_book_ticker_market_for_trades():
    assert venue().routes() == [("/public", ("depth", "bookTicker")), ("/market", ("trade",))]
    assert venue(("trade",)).routes() == [("/market", ("trade",))]
    assert venue(("bookTicker", "depth")).routes() == [("/public", ("bookTicker", "depth"))]


def test_stream_names_per_route_and_connection_path():
    v = venue()
    assert v.streams_for("SUSHIUSDT") == \
        ["sushiusdt@depth@100ms", "sushiusdt@aggTrade", "sushiusdt@bookTicker"]
    public = v.streams_for("SUSHIUSDT", ("depth", "bookTicker"))
    assert v.connection_path(public) == "/stream?streams=sushiusdt@depth@100ms/sushiusdt@bookTicker"
    assert v.streams_for("SUSHIUSDT", ("trade",)) == ["sushiusdt@aggTrade"]
    assert venue(("depth",), depth_speed="1000ms").streams_for("SUSHIUSDT") == ["sushiusdt@depth"]


def test_snapshot_request_uses_a_valid_limit_and_its_weight():
    v = venue()
    assert v.snapshot_request("sushiusdt", 1000) == ("/fapi/v1/depth?symbol=SUSHIUSDT&limit=1000", 20)
    assert v.snapshot_request("SUSHIUSDT", 300) == ("/fapi/v1/depth?symbol=SUSHIUSDT&limit=500", 10)
    assert [snapshot_limit(n) for n in (1, 5, 6, 50, 51, 100, 101, 500, 501, 1000, 5000)] == \
        [5, 5, 10, 50, 100, 100, 500, 500, 1000, 1000, 1000]
    assert [snapshot_weight(n) for n in (5, 10, 20, 50, 100, 500, 1000)] == [2, 2, 2, 2, 5, 10, 20]
    assert BinanceUsdm.MAX_SNAPSHOT_LIMIT == 1000


def test_snapshot_body_parses_like_spot():
    body = (b'{"lastUpdateId":600859605926,"E":1626992741264,"T":1626992741261,'
            b'"bids":[["7.6110","6"]],"asks":[["7.6120","297"]]}')
    snap = venue().parse_snapshot("SUSHIUSDT", body)
    assert (snap.symbol, snap.last_id, snap.bids, snap.asks) == \
        ("SUSHIUSDT", 600859605926, [761100000, 6 * P], [761200000, 297 * P])


# -- the pu rule through the shared engine -------------------------------------------------------

def ev(first, last, prev, bids=(), asks=()):
    return DepthUpdate("SUSHIUSDT", first, last, prev, 0, list(bids), list(asks))


def fresh():
    s = sync.InstrumentSync(BinanceUsdmRule(), Book(100))
    s.start_resync()
    return s


def snapshot(last_id):
    return Snapshot("SUSHIUSDT", last_id, [100 * P, 1 * P], [101 * P, 1 * P])


def test_events_older_than_the_snapshot_are_dropped_and_the_straddling_one_bridges():
    s = fresh()
    assert s.on_update(ev(90, 99, 80, bids=(99 * P, 5 * P))) == sync.BUFFERED   # u < id: dropped
    assert s.on_update(ev(100, 110, 99, bids=(100 * P, 2 * P))) == sync.BUFFERED
    assert s.on_update(ev(111, 120, 110, asks=(101 * P, 0, 102 * P, 3 * P))) == sync.BUFFERED
    assert s.on_snapshot(snapshot(105)) == sync.SYNCED            # U 100 <= 105 <= u 110
    assert s.book.update_id == 120
    assert s.book.top(5) == ([(100 * P, 2 * P)], [(102 * P, 3 * P)])


def test_an_event_whose_u_equals_the_snapshot_id_still_bridges():
    s = fresh()
    s.on_update(ev(100, 105, 99))
    assert s.on_snapshot(snapshot(105)) == sync.SYNCED            # u == lastUpdateId: applied


def test_a_first_event_that_starts_after_the_snapshot_does_not_bridge():
    s = fresh()
    assert s.on_snapshot(snapshot(105)) == sync.WAITING_BRIDGE
    assert s.on_update(ev(107, 110, 106)) == sync.GAP


def test_live_events_chain_by_pu_and_a_broken_chain_is_a_gap():
    s = fresh()
    s.on_update(ev(100, 110, 99))
    s.on_snapshot(snapshot(105))
    assert s.on_update(ev(115, 130, 110)) == sync.APPLIED         # ids jump, pu chains: fine
    assert s.on_update(ev(115, 130, 110)) == sync.IGNORED         # the same event again
    assert s.on_update(ev(140, 150, 135)) == sync.GAP             # pu 135 != previous u 130
    assert s.state == sync.RESYNCING and s.book.update_id == 0
