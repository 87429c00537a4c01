"""Specification of the Bitget v2 adapter (hftfeed/venues/bitget.py) and its simulator dialect
(hftfeed/tools/sim/bitget.py): subscriptions per market (instType), books with the seq/pseq
chain and the top-25 CRC32 checksum, trades, tickers, ping/pong, malformed input."""

import asyncio
import json

import pytest

import simtruth
from refbook import RefBook

from hftfeed.codecs.fixed import parse_price
from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.core.updates import CTRL_ERROR, CTRL_PONG, CTRL_SUBSCRIBED, DepthUpdate, Quote, Trade
from hftfeed.errors import VenueError
from hftfeed.tools.sim import rawclient
from hftfeed.tools.sim.okx import book_checksum as sim_checksum
from hftfeed.tools.sim.server import start_sim
from hftfeed.venues import registry
from hftfeed.venues.bitget import Bitget, BitgetFutures, BitgetRule

HOST = "127.0.0.1"
P = 100000000


def snap_text(bids, asks, seq, checksum, inst_type="SPOT"):
    return json.dumps({"action": "snapshot", "arg": {"instType": inst_type, "channel": "books",
                                                     "instId": "BTCUSDT"},
                       "data": [{"asks": asks, "bids": bids, "checksum": checksum, "pseq": 0,
                                 "seq": seq, "ts": "1695710946294"}], "ts": 1695710946294})


def update_text(bids, asks, seq, pseq, checksum):
    return json.dumps({"action": "update", "arg": {"instType": "SPOT", "channel": "books",
                                                   "instId": "BTCUSDT"},
                       "data": [{"asks": asks, "bids": bids, "checksum": checksum, "pseq": pseq,
                                 "seq": seq, "ts": "1695710946295"}], "ts": 1695710946295})


def crc(bids, asks):
    flat = lambda side: [parse_price(v) for level in side for v in level]    # noqa: E731
    return sim_checksum(flat(bids), flat(asks))


BIDS = [["26274.9", "0.5"], ["26274.8", "1.25"]]
ASKS = [["26275", "0.0009"], ["26275.1", "3"]]


def test_markets_are_registry_entries_that_differ_by_inst_type():
    assert registry.adapter("bitget") is Bitget and registry.adapter("bitget-futures") is BitgetFutures
    assert (Bitget.VENUE_ID, BitgetFutures.VENUE_ID) == (11, 12)
    spot = json.loads(Bitget(["btcusdt"], ("depth", "trade", "bookTicker")).subscribe_messages(
        Bitget(["BTCUSDT"], ("depth", "trade", "bookTicker")).streams_for("btcusdt"))[0])
    assert spot == {"op": "subscribe", "args": [
        {"instType": "SPOT", "channel": "books", "instId": "BTCUSDT"},
        {"instType": "SPOT", "channel": "trade", "instId": "BTCUSDT"},
        {"instType": "SPOT", "channel": "ticker", "instId": "BTCUSDT"}]}
    fut = BitgetFutures(["BTCUSDT"], ("depth",))
    unsub, sub = [json.loads(m) for m in fut.resubscribe_messages("BTCUSDT")]
    assert unsub["op"] == "unsubscribe" and sub["args"][0]["instType"] == "USDT-FUTURES"


def test_books_snapshot_and_update_chain_by_seq_and_pseq_with_checksums():
    v = Bitget(["BTCUSDT"], ("depth",))
    (snap,) = v.parse(snap_text(BIDS, ASKS, 100, crc(BIDS, ASKS)))
    assert isinstance(snap, DepthUpdate) and snap.is_snapshot and snap.last_id == 100
    assert snap.checksum == crc(BIDS, ASKS)
    new_bids = [["26274.9", "0"]]
    after_bids = [["26274.8", "1.25"]]
    (upd,) = v.parse(update_text(new_bids, [], 107, 100, crc(after_bids, ASKS)))
    assert (upd.prev_id, upd.last_id) == (100, 107)
    s = sync.InstrumentSync(BitgetRule(), Book(50))
    s.start_resync()
    assert s.on_update(snap) == sync.SYNCED
    assert s.on_update(upd) == sync.APPLIED
    (bad,) = v.parse(update_text([["26270", "1"]], [], 108, 107, 12345))
    assert s.on_update(bad) == sync.GAP and "checksum" in s.last_gap
    s.start_resync()
    s.on_update(snap)
    (hole,) = v.parse(update_text([], [], 110, 105, 0))
    assert s.on_update(hole) == sync.GAP


def test_a_seq_reset_with_pseq_0_breaks_the_chain_and_nothing_is_applied_across_it():
    """Bitget may reset its numbers after a release or restart and then "most likely" sends a
    message with ``pseq`` 0 (docs/venues.md): it cannot continue a book that ended elsewhere,
    so it is a gap (re-subscribe, fresh snapshot), never applied; the new snapshot, whatever
    its now smaller ``seq``, starts the book again."""
    v = Bitget(["BTCUSDT"], ("depth",))
    s = sync.InstrumentSync(BitgetRule(), Book(50))
    s.start_resync()
    assert s.on_update(v.parse(snap_text(BIDS, ASKS, 90000, 0))[0]) == sync.SYNCED
    (reset,) = v.parse(update_text([["26270", "1"]], [], 3, 0, 0))
    assert reset.prev_id == 0
    assert s.on_update(reset) == sync.GAP
    assert s.book.best_bid() != (2627000000000, 100000000)
    s.start_resync()
    assert s.on_update(v.parse(snap_text(BIDS, ASKS, 4, 0))[0]) == sync.SYNCED
    assert s.on_update(v.parse(update_text([], [], 5, 4, 0))[0]) == sync.APPLIED


def test_a_zero_checksum_is_not_verified_and_padded_strings_disable_it_once(caplog):
    v = Bitget(["BTCUSDT"], ("depth",))
    (zero,) = v.parse(snap_text(BIDS, ASKS, 5, 0))
    assert zero.checksum is None
    (padded,) = v.parse(snap_text([["26274.90", "0.5"]], ASKS, 6, 99))
    assert padded.checksum is None and "not in shortest decimal form" in caplog.text
    (later,) = v.parse(snap_text(BIDS, ASKS, 7, 99))
    assert later.checksum is None          # that instrument stays unverified


def test_trades_tickers_pong_and_events():
    v = Bitget(["BTCUSDT"], ("trade", "bookTicker"))
    (t,) = v.parse('{"action":"update","arg":{"instType":"SPOT","channel":"trade","instId":"BTCUSDT"},'
                   '"data":[{"ts":"1695709835822","price":"26293.4","size":"0.0013","side":"sell",'
                   '"tradeId":"1106624271"}],"ts":1695709835822}')
    assert isinstance(t, Trade) and (t.trade_id, t.price, t.qty) == (1106624271, 2629340000000, 130000)
    (q,) = v.parse('{"action":"snapshot","arg":{"instType":"SPOT","channel":"ticker","instId":"BTCUSDT"},'
                   '"data":[{"instId":"BTCUSDT","lastPr":"1","bidPr":"26293.3","askPr":"26293.4",'
                   '"bidSz":"2","askSz":"0.5","ts":"1695709835822"}],"ts":1}')
    assert isinstance(q, Quote) and (q.update_id, q.bid_px, q.ask_qty) == (0, 2629330000000, P // 2)
    assert v.parse("pong")[0].kind == CTRL_PONG
    assert v.parse('{"event":"subscribe","arg":{"instType":"SPOT","channel":"trade",'
                   '"instId":"BTCUSDT"}}')[0].kind == CTRL_SUBSCRIBED
    assert v.parse('{"event":"error","code":30001,"msg":"x"}')[0].kind == CTRL_ERROR


@pytest.mark.parametrize("text", [
    "", "ping", "[]", '{"arg":1}',
    snap_text(BIDS, ASKS, 0, 0), snap_text(BIDS, ASKS, "5", 0), snap_text(BIDS, ASKS, 5, 2 ** 31),
    snap_text([["-1", "1"]], ASKS, 5, 0), snap_text([["1", "x"]], ASKS, 5, 0),
    update_text([], [], 6, None, 0), update_text([["1"]], [], 6, 5, 0),
    snap_text(BIDS, ASKS, 5, 0).replace('"snapshot"', '"partial"'),
    '{"action":"update","arg":{"channel":"trade","instId":"X"},"data":[{"ts":"1","price":"1",'
    '"size":"1","side":"buy","tradeId":"abc"}]}',
])
def test_malformed_messages_raise_venue_error_only(text):
    with pytest.raises(VenueError):
        Bitget(["BTCUSDT"], ("depth",)).parse(text)


def test_the_simulated_books_chain_verify_their_checksums_and_match_the_journal(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue="bitget-futures", symbols=["BTCUSDT"], rate=1000,
                              record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/v2/ws/public")
            ws.send_json({"op": "subscribe", "args": [
                {"instType": "SPOT", "channel": "books", "instId": "BTCUSDT"},
                {"instType": "USDT-FUTURES", "channel": "books", "instId": "BTCUSDT"}]})
            ws.send_text("ping")
            msgs = [await ws.recv_message() for _ in range(120)]
            await ws.close()
        finally:
            await srv.close()
        return msgs

    msgs = run(body())
    assert "pong" in msgs
    parsed = [json.loads(m) for m in msgs if m != "pong"]
    assert parsed[0]["event"] == "error" and parsed[0]["code"] == 30001     # wrong instType
    assert parsed[1] == {"event": "subscribe", "arg": {"instType": "USDT-FUTURES",
                                                       "channel": "books", "instId": "BTCUSDT"}}
    v = BitgetFutures(["BTCUSDT"], ("depth",))
    s = sync.InstrumentSync(BitgetRule(), Book(1000))
    s.start_resync()
    results = [s.on_update(v.parse(json.dumps(m))[0]) for m in parsed[2:]]
    assert results[0] == sync.SYNCED and set(results[1:]) == {sync.APPLIED}
    truth = simtruth.load_journal(journal, initial_book_ids=True)
    bids, asks = s.book.top(200)
    book = RefBook()
    book.load_snapshot([v for level in bids for v in level], [v for level in asks for v in level],
                       s.book.update_id)
    assert book.top(200) == truth.book_at("BTCUSDT", s.book.update_id).top(200)


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))
