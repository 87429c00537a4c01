"""Replay of a real Binance USD-M futures capture (cryptofeed sample data, 2021-07-22) through the
futures adapter and the sync engine, checked against a reference book built independently here
(json + decimal.Decimal + RefBook, following Binance's futures steps by hand)."""

import json

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.venues.binance_usdm import BinanceUsdm
from hftfeed.core.updates import DepthUpdate, Quote, Trade

import captures
from captures import flat, read_snapshots, read_ws
from refbook import RefBook

WS = "BINANCE_FUTURES.ws.1.0"
HTTP = "BINANCE_FUTURES.http.0.0"

pytestmark = captures.require(WS, HTTP)


def reference_books(messages, snapshots):
    """For each symbol: the snapshot, then (step 4) events with u < lastUpdateId dropped, (step 5)
    the first kept event asserted to straddle lastUpdateId, (step 6) pu == previous u asserted.
    Returns {symbol: [(u, top20)]} after every applied event."""
    state = {}
    for symbol, (_, body) in snapshots.items():
        raw = json.loads(body)
        ref = RefBook()
        ref.load_snapshot(flat(raw["bids"]), flat(raw["asks"]), raw["lastUpdateId"])
        state[symbol] = (ref, raw["lastUpdateId"], [])
    for _, text in messages:
        data = json.loads(text)["data"]
        if data.get("e") != "depthUpdate" or data["s"] not in state:
            continue
        ref, snapshot_id, history = state[data["s"]]
        if data["u"] < snapshot_id:
            continue
        if history:
            assert data["pu"] == history[-1][0], "the capture's pu chain has a hole"
        else:
            assert data["U"] <= snapshot_id <= data["u"]
        ref.apply_levels(flat(data["b"]), flat(data["a"]))
        history.append((data["u"], ref.top(20)))
    return {symbol: history for symbol, (_, _, history) in state.items()}


def test_known_facts_of_the_capture_hold():
    snapshots = read_snapshots(HTTP)
    assert sorted(snapshots) == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
    assert json.loads(snapshots["SUSHIUSDT"][1])["lastUpdateId"] == 600859605926


def test_replay_through_adapter_and_sync_engine_matches_the_reference():
    messages = read_ws(WS)
    snapshots = read_snapshots(HTTP)
    expected = reference_books(messages, snapshots)
    venue = BinanceUsdm(list(snapshots), ("depth", "trade", "bookTicker"))
    syncs = {}
    for symbol in snapshots:
        syncs[symbol] = sync.InstrumentSync(venue.rule, Book(5000))
        syncs[symbol].start_resync()
    pending = dict(snapshots)       # a snapshot is delivered once its receive time has passed
    got = {symbol: [] for symbol in snapshots}
    kinds = {DepthUpdate: 0, Trade: 0, Quote: 0}
    for stamp, text in messages:
        for symbol in [s for s, (t, _) in pending.items() if t <= stamp]:
            snap = venue.parse_snapshot(symbol, pending.pop(symbol)[1].encode())
            result = syncs[symbol].on_snapshot(snap)
            assert result in (sync.SYNCED, sync.WAITING_BRIDGE)
            if result == sync.SYNCED:
                got[symbol].append((syncs[symbol].book.update_id, syncs[symbol].book.top(20)))
        for event in venue.parse(text):
            if type(event) in kinds:
                kinds[type(event)] += 1
            if type(event) is not DepthUpdate:
                continue
            assert event.prev_id >= 0          # every futures event carries pu
            result = syncs[event.symbol].on_update(event)
            assert result != sync.GAP, syncs[event.symbol].last_gap
            if result in (sync.APPLIED, sync.SYNCED):
                got[event.symbol].append((event.last_id, syncs[event.symbol].book.top(20)))
    assert kinds[DepthUpdate] > 100 and kinds[Trade] > 0 and kinds[Quote] > 0
    for symbol in snapshots:
        sync_state = syncs[symbol]
        assert sync_state.gaps == 0 and sync_state.state == sync.LIVE, symbol
        assert expected[symbol] and got[symbol], symbol
        reference_at = dict(expected[symbol])
        # Every book the engine would publish equals the reference's book at the same u.
        for update_id, top in got[symbol]:
            assert top == reference_at[update_id], (symbol, update_id)
        assert got[symbol][-1] == expected[symbol][-1]
        assert len(got[symbol]) > 10


def test_the_fast_scanner_takes_every_depth_event_of_the_capture():
    from hftfeed.venues.binance_usdm import fast_depth
    depth = [text for _, text in read_ws(WS) if '"e":"depthUpdate"' in text]
    assert depth and all(fast_depth(text) is not None for text in depth)
