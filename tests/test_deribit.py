"""Specification of the Deribit adapter (hftfeed/venues/deribit.py) and the venue-neutral
change-id chain it uses (hftfeed/core/sync.py PrevIdChainRule).

Message shapes follow Deribit's "book.(instrument_name).(interval)", "trades...", "quote...",
"public/set_heartbeat" and "Notifications" pages (docs/venues.md)."""

import json

import pytest

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.core.sync import PrevIdChainRule
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_REPLY,
                                  CTRL_SUBSCRIBED, DepthUpdate, Quote, SIDE_BUY, SIDE_SELL, Trade)
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.deribit import TEST_REPLY, Deribit, number

P = 100000000
SNAP = ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms",'
        '"data":{"type":"snapshot","timestamp":1554373962454,"instrument_name":"BTC-PERPETUAL",'
        '"change_id":297217,"bids":[["new",5042.34,30],["new",5041.94,20]],'
        '"asks":[["new",5042.64,40],["new",5043.3,40]]}}}')
CHANGE = ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms",'
          '"data":{"type":"change","timestamp":1554373911330,"prev_change_id":297217,'
          '"instrument_name":"BTC-PERPETUAL","change_id":297219,"bids":[["delete",5041.94,0.0]],'
          '"asks":[["change",5042.64,39],["new",5043.5,2.5e-05]]}}}')


def venue(channels=("depth", "trade", "bookTicker")):
    return Deribit(["BTC-PERPETUAL"], channels)


def test_the_venue_is_registered_with_its_protocol_facts():
    assert registry.adapter("deribit") is Deribit
    assert Deribit.VENUE_ID == 10 and Deribit.DEFAULT_WS_URL == "wss://www.deribit.com/ws/api/v2"
    assert isinstance(Deribit.rule, PrevIdChainRule) and Deribit.rule.snapshot_in_stream


@pytest.mark.parametrize("symbol", ["BTC-PERPETUAL", "BTC-27DEC26", "BTC-27DEC26-100000-C",
                                    "ETH-27DEC26-4000-P", "BTC_USDC-PERPETUAL",
                                    "XRP_USDC-27DEC26-1d5-P"])
def test_futures_perpetuals_and_options_are_valid_symbols(symbol):
    assert registry.symbol_error("deribit", symbol) is None
    assert Deribit.venue_symbol(symbol.lower()) == symbol


@pytest.mark.parametrize("symbol", ["BTCUSDT", "BTC-USDT", "BTC-27DEC26-100000", "BTC-PERP-C",
                                    "BTC-27DEC26-100000-X"])
def test_other_spellings_are_refused_with_an_example(symbol):
    assert "BTC-27DEC26-100000-C" in registry.symbol_error("deribit", symbol)


def test_channels_subscribe_after_set_heartbeat_and_resubscribe_refreshes_the_book():
    v = venue()
    streams = v.streams_for("btc-perpetual")
    assert streams == ["book.BTC-PERPETUAL.100ms", "trades.BTC-PERPETUAL.100ms",
                       "quote.BTC-PERPETUAL"]
    msgs = [json.loads(m) for m in v.subscribe_messages(streams)]
    assert msgs[0]["method"] == "public/set_heartbeat" and msgs[0]["params"] == {"interval": 10}
    assert msgs[1]["method"] == "public/subscribe" and msgs[1]["params"]["channels"] == streams
    assert all(m["jsonrpc"] == "2.0" for m in msgs)
    many = v.subscribe_messages(["quote.X%d" % i for i in range(250)])
    assert len(many) == 4 and len({json.loads(m)["id"] for m in many}) == 4
    unsub, sub = [json.loads(m) for m in v.resubscribe_messages("BTC-PERPETUAL")]
    assert unsub["method"] == "public/unsubscribe" and sub["method"] == "public/subscribe"
    assert sub["params"]["channels"] == ["book.BTC-PERPETUAL.100ms"]
    assert venue(("trade",)).resubscribe_messages("BTC-PERPETUAL") == []


def test_a_book_snapshot_is_an_in_stream_snapshot_with_exact_prices():
    (upd,) = venue().parse(SNAP)
    assert isinstance(upd, DepthUpdate) and upd.is_snapshot
    assert (upd.symbol, upd.first_id, upd.last_id, upd.prev_id) == ("BTC-PERPETUAL", 297217,
                                                                     297217, -1)
    assert upd.bids == [504234000000, 30 * P, 504194000000, 20 * P]
    assert upd.exch_ns == 1554373962454 * 1000000


def test_a_change_links_to_prev_change_id_and_delete_is_quantity_zero():
    (upd,) = venue().parse(CHANGE)
    assert not upd.is_snapshot and (upd.prev_id, upd.last_id) == (297217, 297219)
    assert upd.bids == [504194000000, 0]
    assert upd.asks == [504264000000, 39 * P, 504350000000, 2500]      # 2.5e-05 exactly


def test_numbers_convert_exactly_short_ones_via_the_double_long_ones_from_their_text():
    assert number("0.1", "t") == 10000000 and number(3, "t") == 3 * P
    assert number(0.1, "t") == 10000000 and number(43000.05, "t") == 4300005000000
    assert number("1E-8", "t") == 1 and number(1e-08, "t") == 1
    for bad in (True, None, "1e-9", "NaN", float("nan"), float("inf"), [1]):
        with pytest.raises(VenueError):
            number(bad, "t")
    # 17 significant digits: a double cannot hold them, the literal text can
    text = SNAP.replace("5042.34,30", "5042.34,12345678.12345678")
    (upd,) = venue().parse(text)
    assert upd.bids[:2] == [504234000000, 1234567812345678]


def test_trades_carry_trade_seq_and_the_taker_side():
    text = ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms",'
            '"data":[{"trade_seq":30289432,"trade_id":"48079254","timestamp":1590484156350,'
            '"price":8950.5,"instrument_name":"BTC-PERPETUAL","direction":"sell","amount":10},'
            '{"trade_seq":30289433,"trade_id":"48079255","timestamp":1590484156351,'
            '"price":8951,"instrument_name":"BTC-PERPETUAL","direction":"buy","amount":20}]}}')
    a, b = venue().parse(text)
    assert isinstance(a, Trade) and (a.trade_id, a.price, a.qty, a.side) == (
        30289432, 895050000000, 10 * P, SIDE_SELL)
    assert (b.trade_id, b.side) == (30289433, SIDE_BUY)


def test_quote_has_no_id_and_an_empty_side_is_zero():
    text = ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-27DEC26-100000-C",'
            '"data":{"timestamp":1550658624149,"instrument_name":"BTC-27DEC26-100000-C",'
            '"best_bid_price":null,"best_bid_amount":0,"best_ask_price":0.0125,'
            '"best_ask_amount":5.5}}}')
    (q,) = venue().parse(text)
    assert isinstance(q, Quote) and q.update_id == 0
    assert (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty) == (0, 0, 1250000, 550000000)


def test_a_test_request_is_answered_with_public_test_and_heartbeats_are_pongs():
    (reply,) = venue().parse('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}')
    assert reply.kind == CTRL_REPLY and reply.detail == TEST_REPLY
    assert json.loads(TEST_REPLY)["method"] == "public/test"
    (beat,) = venue().parse('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}')
    assert beat.kind == CTRL_PONG


@pytest.mark.parametrize("text, kind", [
    ('{"jsonrpc":"2.0","id":100,"result":["book.BTC-PERPETUAL.100ms"],"usIn":1}', CTRL_SUBSCRIBED),
    ('{"jsonrpc":"2.0","id":1,"result":"ok"}', CTRL_SUBSCRIBED),
    ('{"jsonrpc":"2.0","id":2,"result":{"version":"1.2.26"}}', CTRL_PONG),
    ('{"jsonrpc":"2.0","id":3,"result":[]}', CTRL_IGNORED),
    ('{"jsonrpc":"2.0","id":100,"error":{"code":-32602,"message":"Invalid params"}}', CTRL_ERROR),
    ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-PERPETUAL.100ms",'
     '"data":{}}}', CTRL_IGNORED),
])
def test_responses_and_other_channels_become_control_events(text, kind):
    (event,) = venue().parse(text)
    assert event.kind == kind


@pytest.mark.parametrize("text", [
    "", "[]", "nul", '{"jsonrpc":"2.0"}', '{"method":"heartbeat","params":{"type":"x"}}',
    '{"id":5}', '{"id":5,"error":"x"}',
    SNAP.replace('"change_id":297217', '"change_id":0'),
    SNAP.replace('"change_id":297217', '"change_id":"297217"'),
    SNAP.replace('"type":"snapshot"', '"type":"partial"'),
    CHANGE.replace('"prev_change_id":297217,', ''),
    CHANGE.replace('["delete",5041.94,0.0]', '["remove",5041.94,0.0]'),
    CHANGE.replace('["delete",5041.94,0.0]', '["new",-5041.94,1]'),
    CHANGE.replace('["delete",5041.94,0.0]', '["new",5041.94,-1]'),
    CHANGE.replace('["delete",5041.94,0.0]', '["new",5041.94,1e400]'),
    CHANGE.replace('["delete",5041.94,0.0]', '["new",5041.94]'),
    SNAP.replace('"timestamp":1554373962454', '"timestamp":1e3'),
    '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.X.100ms","data":{}}}',
    '{"jsonrpc":"2.0","method":"subscription","params":{"channel":7,"data":{}}}',
    "[" * 100000,
])
def test_malformed_or_absurd_messages_raise_venue_error_only(text):
    with pytest.raises(VenueError):
        venue().parse(text)


def test_every_truncation_of_a_book_message_is_rejected():
    v = venue()
    for cut in range(len(CHANGE)):
        with pytest.raises(VenueError):
            v.parse(CHANGE[:cut])


# ---------------------------------------------------------------------- the change-id chain
def chain(first, prev, bids=()):
    return DepthUpdate("BTC-PERPETUAL", first, first, prev, 0, list(bids), [])


def snapshot(change_id):
    return DepthUpdate("BTC-PERPETUAL", change_id, change_id, -1, 0, [100 * P, P], [101 * P, P],
                       True)


def test_the_chain_applies_while_prev_is_the_last_id_and_a_hole_is_a_gap():
    s = sync.InstrumentSync(PrevIdChainRule(), Book(50))
    s.start_resync()
    assert s.on_update(chain(20, 10)) == sync.BUFFERED       # before the snapshot: waits
    assert s.on_update(snapshot(10)) == sync.SYNCED and s.state == sync.LIVE
    assert s.on_update(chain(20, 10)) == sync.APPLIED
    assert s.on_update(chain(35, 20, [99 * P, 2 * P])) == sync.APPLIED
    assert s.on_update(chain(35, 20)) == sync.IGNORED        # a duplicate
    assert s.on_update(chain(50, 40)) == sync.GAP            # 35 -> 40: something was lost
    assert s.state == sync.RESYNCING
