"""venues/okx.py: OKX v5 messages -> shared update types, its subscribe / ack / ping protocol,
and the seqId chain (keepalives, seqId going down after maintenance) through the sync engine.
The CRC32 checksum has its own file, test_okx_checksum.py."""

import json

import pytest

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.okx import Okx, OkxRule
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_SERVER_SHUTDOWN,
                             CTRL_SUBSCRIBED, SIDE_BUY, SIDE_SELL, Control, DepthUpdate, Quote,
                             Trade)


# Shapes from OKX's docs and the 2022 capture (levels: [px, sz, liquidated, orders]).
SNAPSHOT = ('{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{'
            '"asks":[["30243.5","1.2112","0","4"],["30243.6","0.059","0","1"]],'
            '"bids":[["30230","0.5","0","2"],["30229.9","12","0","3"]],'
            '"ts":"1652459225464","checksum":0,"prevSeqId":-1,"seqId":123456}]}')
UPDATE = ('{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{'
          '"asks":[["30243.6","0","0","0"]],"bids":[["30231","0.00265859","0","1"]],'
          '"ts":"1652459225510","checksum":0,"prevSeqId":123456,"seqId":123470}]}')
TRADES = ('{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
          '"tradeId":"338476307","px":"30236","sz":"0.0002","side":"buy","ts":"1652459224818",'
          '"count":"1"},{"instId":"BTC-USDT","tradeId":"338476308","px":"30243.5","sz":"0.001",'
          '"side":"sell","ts":"1652459226050","count":"2"}]}')
BBO = ('{"arg":{"channel":"bbo-tbt","instId":"BTC-USDT"},"data":[{"asks":[["30243.5","1.2112",'
       '"0","4"]],"bids":[["30230","0.5","0","2"]],"ts":"1652459225464","seqId":123456}]}')
P = 100000000


def venue(channels=("depth", "trade", "bookTicker")):
    return Okx(["btc-usdt", "ETH-USDT-SWAP"], channels)


def test_the_venue_has_its_keepalive_and_subscribe_protocol_facts():
    """Id, name and URLs: tests/test_venue_registry.py."""
    assert registry.adapter("okx") is Okx
    assert Okx.rule.snapshot_in_stream is True
    assert (Okx.APP_PING_TEXT, Okx.APP_PING_INTERVAL_S, Okx.APP_PING_ALWAYS) == ("ping", 25.0, False)
    assert Okx.SUBSCRIBE_ACKS is True


def test_books_snapshot_becomes_an_in_stream_snapshot_with_seq_ids():
    (upd,) = venue().parse(SNAPSHOT)
    assert type(upd) is DepthUpdate
    assert (upd.symbol, upd.first_id, upd.last_id, upd.prev_id, upd.is_snapshot) == \
        ("BTC-USDT", 123456, 123456, -1, True)
    assert upd.exch_ns == 1652459225464 * 1000000
    assert upd.bids == [3023000000000, 50000000, 3022990000000, 1200000000]
    assert upd.asks == [3024350000000, 121120000, 3024360000000, 5900000]
    assert upd.checksum is None                  # 0: deprecated, never verified


def test_books_update_links_to_the_previous_seq_id_and_qty_zero_deletes():
    (upd,) = venue().parse(UPDATE)
    assert (upd.first_id, upd.last_id, upd.prev_id, upd.is_snapshot) == (123470, 123470, 123456, False)
    assert upd.bids == [3023100000000, 265859]
    assert upd.asks == [3024360000000, 0]


def test_a_non_zero_checksum_is_carried_as_a_signed_int():
    (upd,) = venue().parse(UPDATE.replace('"checksum":0', '"checksum":-914047754'))
    assert upd.checksum == -914047754


def test_trades_have_the_taker_side_and_numeric_ids():
    t1, t2 = venue().parse(TRADES)
    assert (t1.symbol, t1.trade_id, t1.price, t1.qty, t1.side, t1.exch_ns) == \
        ("BTC-USDT", 338476307, 3023600000000, 20000, SIDE_BUY, 1652459224818 * 1000000)
    assert (t2.trade_id, t2.price, t2.qty, t2.side) == (338476308, 3024350000000, 100000, SIDE_SELL)


def test_bbo_tbt_is_the_quote_stream_without_an_update_id():
    (q,) = venue().parse(BBO)
    assert type(q) is Quote
    assert (q.symbol, q.update_id, q.bid_px, q.bid_qty, q.ask_px, q.ask_qty, q.exch_ns) == \
        ("BTC-USDT", 0, 3023000000000, 50000000, 3024350000000, 121120000, 1652459225464 * 1000000)
    (half,) = venue().parse(BBO.replace('"bids":[["30230","0.5","0","2"]]', '"bids":[]'))
    assert (half.bid_px, half.bid_qty) == (0, 0)


def test_the_text_pong_is_the_keepalive_answer():
    (event,) = venue().parse("pong")
    assert type(event) is Control and event.kind == CTRL_PONG


@pytest.mark.parametrize("text, kind", [
    ('{"event":"error","code":"60012","msg":"Invalid request","connId":"a4d3ae55"}', CTRL_ERROR),
    ('{"event":"notice","code":"64008","msg":"The connection will soon be closed for a service '
     'upgrade.","connId":"a4d3ae55"}', CTRL_SERVER_SHUTDOWN),
    ('{"event":"unsubscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a"}',
     CTRL_IGNORED),
    ('{"event":"channel-conn-count","channel":"books","connCount":"2","connId":"a"}', CTRL_IGNORED),
    ('{"arg":{"channel":"tickers","instId":"BTC-USDT"},"data":[{"last":"1"}]}', CTRL_IGNORED),
])
def test_events_become_control_events(text, kind):
    (event,) = venue().parse(text)
    assert type(event) is Control and event.kind == kind


def test_one_acknowledgement_per_subscribe_request_counts_though_okx_acks_every_arg():
    v = venue()
    streams = ["books:I%d" % i for i in range(45)]
    messages = [json.loads(m) for m in v.subscribe_messages(streams)]
    assert [len(m["args"]) for m in messages] == [40, 5]
    assert messages[0]["op"] == "subscribe"
    assert messages[0]["args"][0] == {"channel": "books", "instId": "I0"}
    kinds = [v.parse('{"event":"subscribe","arg":{"channel":"books","instId":"I%d"},"connId":"c"}'
                     % i)[0].kind for i in range(45)]
    assert kinds.count(CTRL_SUBSCRIBED) == 2                  # one per request
    assert kinds[39] == CTRL_SUBSCRIBED and kinds[44] == CTRL_SUBSCRIBED
    assert set(kinds) == {CTRL_SUBSCRIBED, CTRL_IGNORED}


def test_channels_map_to_okx_channels_and_resubscribe_refreshes_the_book():
    v = venue()
    assert v.streams_for("btc-usdt") == ["books:BTC-USDT", "trades:BTC-USDT", "bbo-tbt:BTC-USDT"]
    assert v.connection_path(v.streams_for("BTC-USDT")) == ""
    assert v.resubscribe_messages("btc-usdt") == [
        '{"op":"unsubscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}',
        '{"op":"subscribe","args":[{"channel":"books","instId":"BTC-USDT"}]}']
    (ack,) = v.parse('{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"}}')
    assert ack.kind == CTRL_SUBSCRIBED
    assert venue(("trade",)).resubscribe_messages("BTC-USDT") == []


@pytest.mark.parametrize("text", [
    "ping", "PONG",
    '{"data":[]}', '{"arg":"books"}',
    SNAPSHOT.replace('"action":"snapshot"', '"action":"partial"'),
    SNAPSHOT.replace('"data":[{', '"data":[1,{'),
    SNAPSHOT.replace('"seqId":123456', '"seqId":"123456"'),
    SNAPSHOT.replace(',"seqId":123456', ''),                 # the pre-2022 format: no chain
    SNAPSHOT.replace('"prevSeqId":-1', '"prevSeqId":-2'),
    SNAPSHOT.replace('"checksum":0', '"checksum":4294967295'),   # not a signed 32-bit int
    SNAPSHOT.replace('"checksum":0', '"checksum":"0"'),
    SNAPSHOT.replace('"ts":"1652459225464"', '"ts":1652459225464'),
    SNAPSHOT.replace('"ts":"1652459225464"', '"ts":"-1"'),
    SNAPSHOT.replace('"30243.5"', '"1e999"'),
    SNAPSHOT.replace('"1.2112"', '"-1.2112"'),
    SNAPSHOT.replace('["30230","0.5","0","2"]', '["30230"]'),
    TRADES.replace('"side":"buy"', '"side":"BUY"'),
    TRADES.replace('"tradeId":"338476307"', '"tradeId":"x1"'),
    TRADES.replace('"tradeId":"338476307"', '"tradeId":338476307'),
    BBO.replace('"asks":[[', '"asks":[5,['),
])
def test_malformed_or_absurd_messages_raise_venue_error_only(text):
    with pytest.raises(VenueError):
        venue().parse(text)


# -- the seqId chain through the shared engine ---------------------------------------------------

def book_event(seq_id, prev_id, bids=(), asks=(), snapshot=False):
    return DepthUpdate("BTC-USDT", seq_id, seq_id, prev_id, 0, list(bids), list(asks), snapshot)


def live():
    s = sync.InstrumentSync(OkxRule(), Book(400))
    s.start_resync()
    assert s.on_update(book_event(100, -1, bids=(100 * P, 1 * P), asks=(101 * P, 1 * P),
                                  snapshot=True)) == sync.SYNCED
    return s


def test_updates_before_the_snapshot_wait_for_it():
    s = sync.InstrumentSync(OkxRule(), Book(400))
    s.start_resync()
    assert s.on_update(book_event(90, 80)) == sync.BUFFERED
    assert s.on_update(book_event(100, -1, bids=(100 * P, 1 * P), snapshot=True)) == sync.SYNCED
    assert s.on_update(book_event(105, 100, bids=(100 * P, 2 * P))) == sync.APPLIED
    assert s.book.top(1) == ([(100 * P, 2 * P)], [])


def test_updates_chain_by_prev_seq_id_whatever_the_step():
    s = live()
    assert s.on_update(book_event(107, 100, bids=(100 * P, 3 * P))) == sync.APPLIED
    assert s.on_update(book_event(193, 107, asks=(102 * P, 5 * P))) == sync.APPLIED
    assert s.book.update_id == 193


def test_a_keepalive_with_prev_equal_to_seq_keeps_the_chain_and_changes_nothing():
    s = live()
    s.on_update(book_event(107, 100, bids=(100 * P, 3 * P)))
    assert s.on_update(book_event(107, 107)) == sync.IGNORED
    assert s.on_update(book_event(110, 107, bids=(100 * P, 4 * P))) == sync.APPLIED
    assert s.gaps == 0 and s.book.top(1) == ([(100 * P, 4 * P)], [(101 * P, 1 * P)])


def test_a_keepalive_that_does_not_match_the_book_is_a_gap():
    s = live()
    assert s.on_update(book_event(120, 120)) == sync.GAP


def test_a_missing_update_is_a_gap_and_the_next_snapshot_recovers():
    s = live()
    assert s.on_update(book_event(130, 120, bids=(99 * P, 1 * P))) == sync.GAP
    assert s.state == sync.RESYNCING and s.gaps == 1
    assert s.on_update(book_event(140, 130)) == sync.BUFFERED
    assert s.on_update(book_event(150, -1, bids=(98 * P, 1 * P), snapshot=True)) == sync.SYNCED
    assert s.on_update(book_event(151, 150)) == sync.APPLIED


def test_seq_id_going_down_after_maintenance_is_fine_while_the_chain_holds():
    s = live()
    s.on_update(book_event(5000, 100, bids=(100 * P, 2 * P)))
    assert s.on_update(book_event(12, 5000, bids=(100 * P, 3 * P))) == sync.APPLIED   # lower id
    assert s.on_update(book_event(15, 12, asks=(101 * P, 0, 103 * P, 1 * P))) == sync.APPLIED
    assert s.gaps == 0 and s.book.update_id == 15
    assert s.book.top(1) == ([(100 * P, 3 * P)], [(103 * P, 1 * P)])
    assert s.on_update(book_event(9, 14)) == sync.GAP                  # lower id, broken chain


def test_a_repeated_update_is_ignored():
    s = live()
    s.on_update(book_event(107, 100, bids=(100 * P, 3 * P)))
    assert s.on_update(book_event(107, 100, bids=(100 * P, 9 * P))) == sync.IGNORED
    assert s.book.top(1)[0] == [(100 * P, 3 * P)]


def test_adapter_messages_drive_the_engine_end_to_end():
    v = venue()
    s = sync.InstrumentSync(v.rule, Book(400))
    s.start_resync()
    (snap,) = v.parse(SNAPSHOT)
    (upd,) = v.parse(UPDATE)
    assert s.on_update(snap) == sync.SYNCED
    assert s.on_update(upd) == sync.APPLIED
    assert s.book.top(5) == ([(3023100000000, 265859), (3023000000000, 50000000),
                              (3022990000000, 1200000000)], [(3024350000000, 121120000)])


def test_a_trade_of_zero_quantity_is_bad_data_not_a_trade():
    with pytest.raises(VenueError, match="zero"):
        venue().parse(TRADES.replace('"sz":"0.001"', '"sz":"0"'))
