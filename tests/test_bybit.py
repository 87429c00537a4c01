"""venues/bybit.py: Bybit v5 linear messages -> shared update types, its subscribe / ping
protocol, and the ``u`` rule (consecutive ids, ``u == 1`` restart) through the sync engine."""

import json

import pytest

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.bybit import Bybit, BybitRule, trade_id_to_int
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_SUBSCRIBED, SIDE_BUY,
                             SIDE_SELL, Control, DepthUpdate, Quote, Trade)


# Message shapes from Bybit's v5 docs (values chosen for the tests).
SNAPSHOT = ('{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1672304484978,'
            '"data":{"s":"BTCUSDT","b":[["16493.50","0.006"],["16493.00","0.100"]],'
            '"a":[["16611.00","0.029"],["16612.00","0.213"]],"u":18521288,"seq":7961638724},'
            '"cts":1672304484976}')
DELTA = ('{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1687940967466,'
         '"data":{"s":"BTCUSDT","b":[["30247.20","30.028"],["30245.40","0.224"],'
         '["30242.10","0"]],"a":[["30248.70","0"]],"u":18521289,"seq":7961638725},'
         '"cts":1687940967464}')
TRADES = ('{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1672304486868,"data":['
          '{"T":1672304486865,"s":"BTCUSDT","S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick",'
          '"i":"20f43950-d8dd-5b31-9112-a178eb6023af","BT":false},'
          '{"T":1672304486866,"s":"BTCUSDT","S":"Sell","v":"0.250","p":"16578.00",'
          '"L":"MinusTick","i":"1000000000","BT":false}]}')
LEVEL1 = ('{"topic":"orderbook.1.BTCUSDT","type":"snapshot","ts":1672304484978,'
          '"data":{"s":"BTCUSDT","b":[["16493.50","0.006"]],"a":[["16611.00","0.029"]],'
          '"u":2876701,"seq":7961638724},"cts":1672304484976}')
P = 100000000


def venue(channels=("depth", "trade", "bookTicker")):
    return Bybit(["btcusdt", "ETHUSDT"], channels)


def test_the_venue_has_its_keepalive_and_subscribe_protocol_facts():
    """Id, name and URLs: tests/test_venue_registry.py."""
    assert registry.adapter("bybit") is Bybit
    assert Bybit.rule.snapshot_in_stream is True
    assert (Bybit.APP_PING_TEXT, Bybit.APP_PING_INTERVAL_S, Bybit.APP_PING_ALWAYS) == \
        ('{"op":"ping"}', 20.0, True)
    assert Bybit.SUBSCRIBE_ACKS is True


def test_snapshot_becomes_an_in_stream_snapshot_with_u_as_its_id():
    (upd,) = venue().parse(SNAPSHOT)
    assert type(upd) is DepthUpdate
    assert (upd.symbol, upd.first_id, upd.last_id, upd.prev_id, upd.is_snapshot) == \
        ("BTCUSDT", 18521288, 18521288, -1, True)
    assert upd.exch_ns == 1672304484978 * 1000000
    assert upd.bids == [1649350000000, 600000, 1649300000000, 10000000]
    assert upd.asks == [1661100000000, 2900000, 1661200000000, 21300000]


def test_delta_is_a_diff_and_qty_zero_deletes():
    (upd,) = venue().parse(DELTA)
    assert (upd.first_id, upd.last_id, upd.is_snapshot) == (18521289, 18521289, False)
    assert upd.bids == [3024720000000, 3002800000, 3024540000000, 22400000, 3024210000000, 0]
    assert upd.asks == [3024870000000, 0]


def test_a_delta_with_u_1_is_the_service_restart_and_replaces_the_book():
    (upd,) = venue().parse(DELTA.replace('"u":18521289', '"u":1'))
    assert upd.is_snapshot and upd.last_id == 1


def test_public_trades_become_trades_with_taker_side_and_u64_ids():
    t1, t2 = venue().parse(TRADES)
    assert type(t1) is Trade and type(t2) is Trade
    assert (t1.symbol, t1.price, t1.qty, t1.side, t1.exch_ns) == \
        ("BTCUSDT", 1657850000000, 100000, SIDE_BUY, 1672304486865 * 1000000)
    assert t1.trade_id == 0x9112a178eb6023af              # low 64 bits of the UUID
    assert (t2.trade_id, t2.side, t2.qty) == (1000000000, SIDE_SELL, 25000000)


def test_trade_ids_map_to_u64_deterministically():
    assert trade_id_to_int("123") == 123
    assert trade_id_to_int("18446744073709551615") == 2 ** 64 - 1
    big = trade_id_to_int("18446744073709551616")         # does not fit: hashed
    other = trade_id_to_int("not-a-uuid")
    assert 0 <= big < 2 ** 64 and 0 <= other < 2 ** 64 and big != other
    assert trade_id_to_int("not-a-uuid") == other          # same input, same id, every process
    assert trade_id_to_int("0000000000000000ffffffffffffffff") == 2 ** 64 - 1
    assert trade_id_to_int("g0f43950-d8dd-5b31-9112-a178eb6023af") != 0x9112a178eb6023af


def test_level_1_book_is_the_quote_stream_with_seq_as_its_id():
    (q,) = venue().parse(LEVEL1)
    assert type(q) is Quote
    assert (q.symbol, q.update_id, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, q.exch_ns) == \
        ("BTCUSDT", 7961638724, 1649350000000, 600000, 1661100000000, 2900000,
         1672304484978 * 1000000)
    (empty,) = venue().parse(LEVEL1.replace('"a":[["16611.00","0.029"]]', '"a":[]'))
    assert (empty.ask_px, empty.ask_qty) == (0, 0)
    (no_seq,) = venue().parse(LEVEL1.replace(',"seq":7961638724', ""))
    assert no_seq.update_id == 2876701


@pytest.mark.parametrize("text, kind", [
    ('{"success":true,"ret_msg":"","conn_id":"c1","req_id":"","op":"subscribe"}', CTRL_SUBSCRIBED),
    ('{"success":false,"ret_msg":"error:handler not found,topic:x","conn_id":"c1","req_id":"",'
     '"op":"subscribe"}', CTRL_ERROR),
    ('{"success":true,"ret_msg":"pong","conn_id":"c1","req_id":"","op":"ping"}', CTRL_PONG),
    ('{"op":"pong","args":["1675418560633"],"conn_id":"c1"}', CTRL_PONG),
    ('{"success":true,"ret_msg":"","conn_id":"c1","req_id":"","op":"unsubscribe"}', CTRL_IGNORED),
    ('{"topic":"tickers.BTCUSDT","type":"snapshot","ts":1,"data":{}}', CTRL_IGNORED),
])
def test_replies_and_other_topics_become_control_events(text, kind):
    (event,) = venue().parse(text)
    assert type(event) is Control and event.kind == kind


@pytest.mark.parametrize("text", [
    "pong",
    '{"topic":5}', '{"foo":"bar"}', '{"op":"subscribe"}',
    SNAPSHOT.replace('"type":"snapshot"', '"type":"full"'),
    SNAPSHOT.replace('"u":18521288', '"u":"18521288"'),
    SNAPSHOT.replace('"u":18521288', '"u":0'),
    SNAPSHOT.replace('"u":18521288', '"u":-5'),
    SNAPSHOT.replace('"ts":1672304484978', '"ts":"1672304484978"'),
    SNAPSHOT.replace('"16493.50"', '"abc"'),
    SNAPSHOT.replace('"0.006"', '"-0.006"'),
    SNAPSHOT.replace('"0.006"', '"0.0000000001"'),
    SNAPSHOT.replace('"data":{', '"data":[{').replace(',"cts"', '],"cts"'),
    TRADES.replace('"S":"Buy"', '"S":"buy"'),
    TRADES.replace('"i":"1000000000"', '"i":1000000000'),
    TRADES.replace('"i":"1000000000"', '"i":""'),
    TRADES.replace('"T":1672304486866', '"T":99999999999999999999'),
    LEVEL1.replace('"type":"snapshot"', '"type":"delta"'),
    LEVEL1.replace('"b":[["16493.50","0.006"]]', '"b":[["1","1"],["2","2"]]'),
])
def test_malformed_or_absurd_messages_raise_venue_error_only(text):
    with pytest.raises(VenueError):
        venue().parse(text)


def test_topics_subscribe_messages_batch_ten_args_and_resubscribe_refreshes_the_book():
    v = venue()
    assert v.streams_for("btcusdt") == \
        ["orderbook.50.BTCUSDT", "publicTrade.BTCUSDT", "orderbook.1.BTCUSDT"]
    assert v.connection_path(v.streams_for("BTCUSDT")) == ""
    streams = ["publicTrade.S%d" % i for i in range(23)]
    messages = [json.loads(m) for m in v.subscribe_messages(streams)]
    assert [m["op"] for m in messages] == ["subscribe"] * 3
    assert [len(m["args"]) for m in messages] == [10, 10, 3]
    assert sum((m["args"] for m in messages), []) == streams
    assert v.resubscribe_messages("btcusdt") == [
        '{"op":"unsubscribe","args":["orderbook.50.BTCUSDT"]}',
        '{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}']
    assert venue(("trade",)).resubscribe_messages("BTCUSDT") == []


# -- the u rule through the shared engine --------------------------------------------------------

def book_event(u, bids=(), asks=(), snapshot=False):
    return DepthUpdate("BTCUSDT", u, u, -1, 0, list(bids), list(asks), snapshot)


def fresh():
    s = sync.InstrumentSync(BybitRule(), Book(100))
    s.start_resync()
    return s


def test_deltas_before_the_first_snapshot_wait_and_the_snapshot_makes_the_book_live():
    s = fresh()
    assert s.on_update(book_event(41, bids=(1 * P, 1 * P))) == sync.BUFFERED
    assert s.on_update(book_event(50, bids=(100 * P, 2 * P), asks=(101 * P, 1 * P),
                                  snapshot=True)) == sync.SYNCED
    assert s.book.top(5) == ([(100 * P, 2 * P)], [(101 * P, 1 * P)])
    assert s.on_update(book_event(51, bids=(100 * P, 3 * P))) == sync.APPLIED
    assert s.on_update(book_event(51, bids=(100 * P, 9 * P))) == sync.IGNORED   # duplicate
    assert s.on_update(book_event(52, asks=(101 * P, 0, 102 * P, 4 * P))) == sync.APPLIED
    assert s.book.top(5) == ([(100 * P, 3 * P)], [(102 * P, 4 * P)])


def test_a_skipped_u_is_a_gap():
    s = fresh()
    s.on_update(book_event(50, bids=(100 * P, 2 * P), snapshot=True))
    assert s.on_update(book_event(52)) == sync.GAP
    assert s.state == sync.RESYNCING and s.gaps == 1


def test_the_u_1_restart_message_replaces_the_book_and_the_chain_restarts_from_it():
    v = venue()
    s = fresh()
    s.on_update(book_event(900, bids=(100 * P, 2 * P), asks=(101 * P, 1 * P), snapshot=True))
    s.on_update(book_event(901, bids=(99 * P, 5 * P)))
    (restart,) = v.parse(DELTA.replace('"u":18521289', '"u":1'))
    assert s.on_update(restart) == sync.SYNCED
    assert s.book.update_id == 1
    assert s.book.top(5) == ([(3024720000000, 3002800000), (3024540000000, 22400000)], [])
    assert s.on_update(book_event(2, asks=(3025000000000, 1 * P))) == sync.APPLIED
    assert s.gaps == 0


def test_a_new_snapshot_replaces_a_live_book():
    s = fresh()
    s.on_update(book_event(10, bids=(100 * P, 2 * P), snapshot=True))
    s.on_update(book_event(11, bids=(98 * P, 2 * P)))
    assert s.on_update(book_event(40, bids=(97 * P, 1 * P), snapshot=True)) == sync.SYNCED
    assert s.book.top(5) == ([(97 * P, 1 * P)], [])
    assert s.on_update(book_event(41)) == sync.APPLIED


def test_a_trade_of_zero_quantity_is_bad_data_not_a_trade():
    with pytest.raises(VenueError, match="zero"):
        venue().parse(TRADES.replace('"v":"0.250"', '"v":"0.000"'))
