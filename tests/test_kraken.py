"""venues/kraken.py: Kraken spot WebSocket v2 messages -> shared update types, its subscribe
protocol, Kraken's book checksum, and the checksum-only model through the sync engine."""

import json

import pytest

from hftfeed.codecs.fixed import parse_price
from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_SUBSCRIBED, SIDE_SELL,
                                  DepthUpdate, Quote, Trade)
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.kraken import BOOK_DEPTH, Kraken, checksum_of, level_digits

import fuzz

SEEDS = fuzz.VENUE_SEEDS["kraken"]          # shapes from Kraken's v2 channel docs
INSTRUMENT, SNAPSHOT, UPDATE, TRADE, TICKER, ACK, REFUSED, PONG, HEARTBEAT = SEEDS

# Kraken's worked checksum example (its book-checksum guide, v1 page; v2 keeps the same string
# format): ten asks from 0.05005 and ten bids from 0.05000, each of 0.00000500, at price
# precision 5 and qty precision 8 -> 974947235.
DOC_ASKS = ["0.05005", "0.05010", "0.05015", "0.05020", "0.05025", "0.05030", "0.05035",
            "0.05040", "0.05045", "0.05050"]
DOC_BIDS = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975", "0.04970", "0.04965",
            "0.04960", "0.04955", "0.04950"]
DOC_QTY = "0.00000500"
DOC_CHECKSUM = 974947235


def flat(prices, qty=DOC_QTY):
    return [x for p in prices for x in (parse_price(p), parse_price(qty))]


def venue(channels=("depth", "trade", "bookTicker")):
    v = Kraken(["btc/usd", "ETH/USD"], channels)
    v.parse(INSTRUMENT)
    return v


def test_the_venue_is_registered_with_its_protocol_facts():
    assert registry.adapter("kraken") is Kraken
    assert Kraken.VENUE_ID == 6 and registry.wire_name(6) == "kraken"
    assert Kraken.DEFAULT_WS_URL == "wss://ws.kraken.com/v2" and registry.ws_path("kraken") == "/v2"
    assert Kraken.rule.snapshot_in_stream and not Kraken.rule.ids_span_links
    assert Kraken.APP_PING_TEXT == '{"method":"ping"}'
    assert registry.symbol_error("kraken", "btc/usd") is None
    assert "BTC/USD" in registry.symbol_error("kraken", "BTC-USD")


def test_the_documented_checksum_example():
    book = Book(100)
    book.load_snapshot(flat(DOC_BIDS), flat(DOC_ASKS), 0)
    assert checksum_of(book, 5, 8) == DOC_CHECKSUM
    assert level_digits(parse_price("0.05000"), 5) == "5000"
    assert level_digits(parse_price("0.00000500"), 8) == "500"
    assert level_digits(parse_price("45285.2"), 1) == "452852"


def test_only_the_top_ten_levels_count():
    book = Book(100)
    book.load_snapshot(flat(DOC_BIDS + ["0.04000"]), flat(DOC_ASKS + ["0.06000"]), 0)
    assert checksum_of(book, 5, 8) == DOC_CHECKSUM


def test_subscribe_asks_for_instruments_first_then_each_channel():
    v = venue()
    streams = v.streams_for("btc/usd") + v.streams_for("ETH/USD")
    msgs = [json.loads(m) for m in v.subscribe_messages(streams)]
    assert msgs == [
        {"method": "subscribe", "params": {"channel": "instrument", "snapshot": True}},
        {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"],
                                           "depth": BOOK_DEPTH, "snapshot": True}},
        {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD"],
                                           "snapshot": False}},
        {"method": "subscribe", "params": {"channel": "ticker", "symbol": ["BTC/USD", "ETH/USD"],
                                           "event_trigger": "bbo"}},
    ]
    resub = [json.loads(m) for m in v.resubscribe_messages("btc/usd")]
    assert [m["method"] for m in resub] == ["unsubscribe", "subscribe"]
    assert resub[1]["params"]["symbol"] == ["BTC/USD"]


def test_book_messages_keep_exact_digits_and_carry_checksum_and_a_growing_count():
    v = venue()
    (snap,) = v.parse(SNAPSHOT)
    assert type(snap) is DepthUpdate and snap.is_snapshot
    assert snap.bids == [parse_price("45283.5"), parse_price("0.1"), parse_price("45283.4"),
                         parse_price("1.2")]
    assert snap.asks == [parse_price("45285.2"), parse_price("0.001")]
    assert snap.checksum == 3310070434 and snap.last_id == 1
    (upd,) = v.parse(UPDATE)
    assert not upd.is_snapshot and upd.last_id == 2 and upd.bids == [parse_price("45283.5"), 0]
    assert upd.exch_ns % 10 ** 9 == 440295000


def test_trade_ticker_and_replies():
    (trade,) = venue().parse(TRADE)
    assert type(trade) is Trade
    assert (trade.symbol, trade.trade_id, trade.price, trade.qty, trade.side) == \
        ("BTC/USD", 4665906, parse_price("45283.5"), parse_price("0.1"), SIDE_SELL)
    (quote,) = venue().parse(TICKER)
    assert type(quote) is Quote and quote.update_id == 0       # Kraken gives no id
    assert (quote.bid_px, quote.ask_qty) == (parse_price("45283.5"), parse_price("0.001"))
    assert venue().parse(ACK)[0].kind == CTRL_SUBSCRIBED
    err = venue().parse(REFUSED)[0]
    assert err.kind == CTRL_ERROR and "not supported" in err.detail
    assert venue().parse(PONG)[0].kind == CTRL_PONG
    assert venue().parse(HEARTBEAT)[0].kind == CTRL_IGNORED


def test_numbers_keep_their_exact_value_on_the_fast_and_the_exact_path():
    v = venue()
    (fast,) = v.parse(SNAPSHOT.replace('"qty":1.2', '"qty":9999999.12345678'))
    assert fast.bids[3] == 999999912345678                 # 15 digits: float and back, exact
    big = '"qty":12345678901.12345678'                      # 19 digits: a float would round it
    (exact,) = v.parse(SNAPSHOT.replace('"qty":1.2', big))
    assert exact.bids[3] == 1234567890112345678
    (tiny,) = v.parse(SNAPSHOT.replace('"qty":1.2', '"qty":1e-05'))
    assert tiny.bids[3] == 1000


def test_instruments_keep_only_the_configured_pairs():
    v = Kraken(["ETH/USD"], ("depth",))
    v.parse(INSTRUMENT)
    assert v.precisions == {}
    v = venue()
    assert v.precisions == {"BTC/USD": (1, 8)}


@pytest.mark.parametrize("text", [
    "[]", "nope", '{"x":1}',
    SNAPSHOT.replace('"snapshot"', '"partial"'),
    SNAPSHOT.replace('"checksum":3310070434', '"checksum":-1'),
    SNAPSHOT.replace('"checksum":3310070434', '"checksum":4294967296'),
    SNAPSHOT.replace('"checksum":3310070434', '"checksum":"1"'),
    SNAPSHOT.replace('"qty":0.1', '"qty":"0.1"'),
    SNAPSHOT.replace('"qty":0.1', '"qty":-0.1'),
    SNAPSHOT.replace('"price":45283.5', '"price":0'),
    SNAPSHOT.replace('"price":45283.5', '"price":1e-12'),
    SNAPSHOT.replace('"price":45283.5', '"price":NaN'),
    SNAPSHOT.replace('"price":45283.5', '"price":Infinity'),
    SNAPSHOT.replace('"qty":1.2', '"qty":123456789012.123456789'),
    SNAPSHOT.replace('"bids":[', '"bids":{"a":[').replace('"asks"', '"x":1},"asks"', 1),
    '{"channel":"book","type":"update","data":{}}',
    '{"channel":"book","type":"update","data":[1]}',
    UPDATE.replace("2023-10-06T17:35:55.440295Z", "yesterday"),
    TRADE.replace('"sell"', '"Sell"'),
    TRADE.replace('"trade_id":4665906', '"trade_id":4665906.5'),
    TICKER.replace('"bid":45283.5', '"bid":null'),
    INSTRUMENT.replace('"price_precision":1', '"price_precision":9'),
    INSTRUMENT.replace('"pairs":[', '"pairs":[1,'),
])
def test_malformed_messages_are_venue_errors(text):
    with pytest.raises(VenueError):
        venue().parse(text)


# -- the checksum-only model -------------------------------------------------------------------

def doc_update(bids, asks, crc, n):
    return DepthUpdate("BTC/USD", n, n, -1, 0, bids, asks, False, crc)


def synced_doc_book():
    v = Kraken(["BTC/USD"], ("depth",))
    v.precisions["BTC/USD"] = (5, 8)
    s = sync.InstrumentSync(v.rule, Book(100))
    s.start_resync()
    snap = DepthUpdate("BTC/USD", 1, 1, -1, 0, flat(DOC_BIDS), flat(DOC_ASKS), True,
                       DOC_CHECKSUM)
    assert s.on_update(snap) == sync.SYNCED
    return s


def test_a_matching_checksum_keeps_the_book_live_and_a_wrong_one_is_a_gap():
    s = synced_doc_book()
    book = Book(100)
    book.load_snapshot(flat(DOC_BIDS[1:]), flat(DOC_ASKS), 0)
    good = checksum_of(book, 5, 8)
    assert s.on_update(doc_update([parse_price("0.05000"), 0], [], good, 2)) == sync.APPLIED
    assert s.on_update(doc_update([parse_price("0.04999"), 1], [], good, 3)) == sync.GAP
    assert "checksum mismatch" in s.last_gap and s.state == sync.RESYNCING


def test_levels_pushed_out_of_the_subscribed_depth_are_dropped_without_a_deletion():
    v = Kraken(["BTC/USD"], ("depth",))
    v.precisions["BTC/USD"] = (5, 8)
    s = sync.InstrumentSync(v.rule, Book(100))
    s.start_resync()
    bids = ["%.5f" % (0.04 - i * 0.00005) for i in range(BOOK_DEPTH)]
    asks = ["%.5f" % (0.05 + i * 0.00005) for i in range(BOOK_DEPTH)]
    ref = Book(100)
    ref.load_snapshot(flat(bids), flat(asks), 0)
    assert s.on_update(DepthUpdate("BTC/USD", 1, 1, -1, 0, flat(bids), flat(asks), True,
                                   checksum_of(ref, 5, 8))) == sync.SYNCED
    better = flat(["0.04001"])                   # a new best bid: the worst one leaves the depth
    ref.apply_levels(better, [])
    ref.truncate(BOOK_DEPTH)
    assert s.on_update(doc_update(better, [], checksum_of(ref, 5, 8), 2)) == sync.APPLIED
    assert s.book.bid_count() == BOOK_DEPTH
    assert s.book.top(BOOK_DEPTH)[0][-1][0] == parse_price(bids[-2])
    # the venue deletes a top level; the level that moves in from deeper is sent as an insert,
    # and the one cut earlier must not come back
    gone = flat(["0.04001"], "0")
    back = flat([bids[-1]])
    ref.apply_levels(gone + back, [])
    assert s.on_update(doc_update(gone + back, [], checksum_of(ref, 5, 8), 3)) == sync.APPLIED
    assert s.book.top(BOOK_DEPTH) == ref.top(BOOK_DEPTH)


def test_an_unknown_precision_cannot_verify_so_the_book_is_not_trusted():
    v = Kraken(["BTC/USD"], ("depth",))
    s = sync.InstrumentSync(v.rule, Book(100))
    s.start_resync()
    snap = DepthUpdate("BTC/USD", 1, 1, -1, 0, flat(DOC_BIDS), flat(DOC_ASKS), True,
                       DOC_CHECKSUM)
    assert s.on_update(snap) == sync.GAP
