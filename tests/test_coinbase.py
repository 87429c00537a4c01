"""venues/coinbase.py: Coinbase Advanced Trade messages -> shared update types, its subscribe
protocol, and the per-connection ``sequence_num`` model through the sync engine."""

import json

import pytest

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_SUBSCRIBED, SIDE_BUY,
                                  SIDE_SELL, ConnSequence, Control, DepthUpdate, Quote, Trade)
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.coinbase import Coinbase, rfc3339_ns

import fuzz

P = 100000000
SEEDS = fuzz.VENUE_SEEDS["coinbase"]     # shapes from Coinbase's channel docs
SNAPSHOT, UPDATE, TRADES, TICKER, HEARTBEAT, SUBSCRIPTIONS, ERROR = SEEDS


def venue(channels=("depth", "trade", "bookTicker")):
    return Coinbase(["btc-usd", "ETH-USD"], channels)


def test_the_venue_is_registered_with_its_protocol_facts():
    assert registry.adapter("coinbase") is Coinbase
    assert Coinbase.VENUE_ID == 5 and registry.wire_name(5) == "coinbase"
    assert Coinbase.DEFAULT_WS_URL == "wss://advanced-trade-ws.coinbase.com"
    assert Coinbase.rule.snapshot_in_stream is True
    assert Coinbase.rule.ids_span_links is False
    assert Coinbase.SUBSCRIBE_ACKS is True


def test_subscribe_sends_heartbeats_first_then_one_request_per_channel():
    v = venue()
    streams = v.streams_for("btc-usd") + v.streams_for("ETH-USD")
    assert streams[:3] == ["level2:BTC-USD", "market_trades:BTC-USD", "ticker:BTC-USD"]
    msgs = [json.loads(m) for m in v.subscribe_messages(streams)]
    assert msgs == [
        {"type": "subscribe", "channel": "heartbeats"},
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "level2"},
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "market_trades"},
        {"type": "subscribe", "product_ids": ["BTC-USD", "ETH-USD"], "channel": "ticker"},
    ]


def test_resync_resubscribes_level2_of_that_product_only():
    msgs = [json.loads(m) for m in venue().resubscribe_messages("btc-usd")]
    assert msgs == [{"type": "unsubscribe", "product_ids": ["BTC-USD"], "channel": "level2"},
                    {"type": "subscribe", "product_ids": ["BTC-USD"], "channel": "level2"}]
    assert venue(("trade",)).resubscribe_messages("btc-usd") == []


def test_every_channel_message_starts_with_its_connection_sequence_number():
    for text, seq in ((SNAPSHOT, 0), (UPDATE, 7), (TRADES, 1), (TICKER, 2), (HEARTBEAT, 3),
                      (SUBSCRIPTIONS, 4)):
        events = venue().parse(text)
        assert type(events[0]) is ConnSequence and events[0].seq == seq


def test_level2_snapshot_and_update_carry_the_sequence_number_as_their_id():
    _, snap = venue().parse(SNAPSHOT)
    assert type(snap) is DepthUpdate and snap.is_snapshot
    assert (snap.symbol, snap.first_id, snap.last_id, snap.prev_id) == ("BTC-USD", 0, 0, -1)
    assert snap.bids == [2192173000000, 6317902] and snap.asks == [2192174000000, 150000000]
    assert snap.exch_ns == rfc3339_ns("2023-02-09T20:32:50.714964855Z", "t")
    _, upd = venue().parse(UPDATE)
    assert not upd.is_snapshot and upd.last_id == 7
    assert upd.bids == [] and upd.asks == [2192174000000, 0]


def test_trade_side_is_the_makers_so_the_aggressor_is_the_other():
    _, trade = venue().parse(TRADES)
    assert type(trade) is Trade
    assert (trade.symbol, trade.trade_id, trade.price, trade.qty, trade.side) == \
        ("ETH-USD", 0, 126001000000, 30000000, SIDE_SELL)
    _, buy = venue().parse(TRADES.replace('"side":"BUY"', '"side":"SELL"'))
    assert buy.side == SIDE_BUY


def test_the_trade_history_sent_on_subscribing_is_not_published_as_live_trades():
    history = TRADES.replace('"type":"update"', '"type":"snapshot"')
    assert venue().parse(history)[1:] == []
    with pytest.raises(VenueError):
        venue().parse(history.replace('"BUY"', '"HOLD"'))      # still checked
    with pytest.raises(VenueError):
        venue().parse(TRADES.replace('"type":"update"', '"type":"later"'))


def test_ticker_is_a_quote_with_the_sequence_number_as_its_id():
    _, quote = venue().parse(TICKER)
    assert type(quote) is Quote
    assert (quote.update_id, quote.bid_px, quote.bid_qty, quote.ask_px, quote.ask_qty) == \
        (2, 2193198000000, 800021000000, 2193398000000, 803807770938)


def test_control_messages():
    assert len(venue().parse(HEARTBEAT)) == 1        # only its sequence number matters
    assert venue().parse(SUBSCRIPTIONS)[1].kind == CTRL_SUBSCRIBED
    (err,) = venue().parse(ERROR)
    assert type(err) is Control and err.kind == CTRL_ERROR and "failure" in err.detail
    unknown = SUBSCRIPTIONS.replace('"subscriptions"', '"candles"', 1)
    assert venue().parse(unknown)[1].kind == CTRL_IGNORED


def test_rfc3339_timestamps():
    assert rfc3339_ns("1970-01-01T00:00:00Z", "t") == 0
    assert rfc3339_ns("2019-08-14T20:42:27.265Z", "t") == 1565815347265000000
    assert rfc3339_ns("2023-02-09T20:32:50.714964855Z", "t") % 10 ** 9 == 714964855


@pytest.mark.parametrize("text", [
    "[]", "{}", '{"channel":5}', '{"channel":"l2_data","events":[]}',
    '{"channel":"l2_data","sequence_num":-1,"events":[]}',
    '{"channel":"l2_data","sequence_num":1.5,"events":[]}',
    '{"channel":"l2_data","sequence_num":true,"events":[]}',
    '{"channel":"l2_data","sequence_num":1,"events":{}}',
    '{"channel":"l2_data","sequence_num":1,"events":[1]}',
    SNAPSHOT.replace('"bid"', '"buy"'),
    SNAPSHOT.replace('"21921.73"', '"-1"'),
    SNAPSHOT.replace('"0.06317902"', '"NaN"'),
    SNAPSHOT.replace('"snapshot"', '"partial"'),
    SNAPSHOT.replace('2023-02-09T20:32:50.714964855Z', '2023-02-09 20:32:50'),
    SNAPSHOT.replace('2023-02-09T20:32:50.714964855Z', '2023-13-09T20:32:50Z'),
    SNAPSHOT.replace('2023-02-09T20:32:50.714964855Z', '2023-02-09T20:32:50.1234567890Z'),
    TRADES.replace('"BUY"', '"buy"'),
    TRADES.replace('"000000000"', '"12a"'),
    TRADES.replace('"000000000"', '"99999999999999999999"'),
    TICKER.replace('"8000.21"', '8000.21'),
    '{"channel":"l2_data","sequence_num":1,"timestamp":"2023-02-09T20:32:50Z","events":[{"type":"update","product_id":"X","updates":[5]}]}',
])
def test_malformed_messages_are_venue_errors(text):
    with pytest.raises(VenueError):
        venue().parse(text)


# -- the per-connection sequence model --------------------------------------------------------

def test_connection_sequence_accepts_the_next_number_and_reports_holes_once():
    seq = sync.ConnectionSequence()
    assert seq.observe(0) == sync.SEQ_OK          # the first number is the start
    assert seq.observe(1) == sync.SEQ_OK
    assert seq.observe(4) == sync.SEQ_GAP and seq.lost == 2
    assert seq.observe(5) == sync.SEQ_OK          # continues from the new number
    assert seq.observe(3) == sync.SEQ_STALE and seq.observe(5) == sync.SEQ_STALE
    assert (seq.gaps, seq.stale) == (1, 2)


def test_connection_sequence_treats_absurd_numbers_as_gaps_and_restarts():
    seq = sync.ConnectionSequence()
    assert seq.observe(10) == sync.SEQ_OK
    assert seq.observe(2 ** 63) == sync.SEQ_GAP
    assert seq.observe(500) == sync.SEQ_OK        # a fresh start after the absurd one
    assert seq.observe(501) == sync.SEQ_OK
    fresh = sync.ConnectionSequence()
    assert fresh.observe(2 ** 63) == sync.SEQ_GAP and fresh.last == -1


def test_a_book_follows_growing_connection_numbers_through_the_engine():
    s = sync.InstrumentSync(Coinbase.rule, Book(100))
    s.start_resync()
    _, snap = venue().parse(SNAPSHOT)
    assert s.on_update(snap) == sync.SYNCED
    _, upd = venue().parse(UPDATE)             # seq 7: others' messages were 1..6
    assert s.on_update(upd) == sync.APPLIED
    assert s.book.top(5) == ([(2192173000000, 6317902)], [])
    assert s.on_update(upd) == sync.IGNORED    # the same number again: already applied


def test_a_diff_before_the_snapshot_is_buffered_and_then_dropped_by_it():
    s = sync.InstrumentSync(Coinbase.rule, Book(100))
    s.start_resync()
    _, upd = venue().parse(UPDATE)
    assert s.on_update(upd) == sync.BUFFERED
    _, snap = venue().parse(SNAPSHOT.replace('"sequence_num":0', '"sequence_num":9'))
    assert s.on_update(snap) == sync.SYNCED and s.buffer == []
    assert s.book.top(1) == ([(2192173000000, 6317902)], [(2192174000000, 150000000)])


def test_one_forged_far_ahead_number_does_not_make_every_later_message_look_old():
    """2^40 is below MAX_SANE_ID but 2^32 ahead of the stream: bad data, and the count starts
    again from the next real number instead of dropping every later message as stale."""
    seq = sync.ConnectionSequence()
    assert seq.observe(100) == sync.SEQ_OK
    assert seq.observe(2 ** 40) == sync.SEQ_GAP
    assert seq.observe(101) == sync.SEQ_OK and seq.observe(102) == sync.SEQ_OK


def test_a_count_that_goes_back_for_good_is_followed_after_a_run_of_old_numbers():
    seq = sync.ConnectionSequence()
    assert seq.observe(1000) == sync.SEQ_OK
    results = [seq.observe(n) for n in range(1, 1 + sync.MAX_STALE_RUN)]
    assert results[:-1] == [sync.SEQ_STALE] * (sync.MAX_STALE_RUN - 1)
    assert results[-1] == sync.SEQ_GAP                      # followed from here on
    assert seq.observe(sync.MAX_STALE_RUN + 1) == sync.SEQ_OK
    assert seq.observe(5) == sync.SEQ_STALE                  # one late message is still late
