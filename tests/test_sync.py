"""sync.py: the shared snapshot + diff procedure, exercised with Binance spot's rule."""

import random

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.venues.binance import BinanceSpotRule
from hftfeed.core.updates import DepthUpdate, Snapshot

from refbook import RefBook

P = 100000000   # 1.0 scaled


def diff(first, last, bids=(), asks=(), prev=-1):
    return DepthUpdate("BTCUSDT", first, last, prev, 0, list(bids), list(asks))


def snap(last_id, bids=(100 * P, 1 * P), asks=(101 * P, 1 * P)):
    return Snapshot("BTCUSDT", last_id, list(bids), list(asks))


def fresh():
    s = sync.InstrumentSync(BinanceSpotRule(), Book(100))
    s.start_resync()
    return s


def test_diffs_are_buffered_until_the_snapshot_arrives():
    s = fresh()
    assert s.on_update(diff(10, 12)) == sync.BUFFERED
    assert s.state == sync.RESYNCING
    assert len(s.buffer) == 1


def test_snapshot_older_than_first_buffered_diff_is_refused():
    # spot docs: "if lastUpdateId is strictly less than the first U, get a new snapshot"
    s = fresh()
    s.on_update(diff(10, 12))
    assert s.on_snapshot(snap(9)) == sync.SNAPSHOT_TOO_OLD
    assert s.state == sync.RESYNCING
    assert s.buffer, "the buffer is kept for the next snapshot"


def test_buffered_diffs_already_in_the_snapshot_are_dropped_and_the_bridge_applies():
    # the capture's NKNUSDT case: snapshot 499869752, first diff 750..752 dropped, 753.. applies
    s = fresh()
    s.on_update(diff(499869750, 499869752, bids=[99 * P, 5 * P]))
    s.on_update(diff(499869753, 499869754, bids=[100 * P, 7 * P]))
    assert s.on_snapshot(snap(499869752)) == sync.SYNCED
    assert s.state == sync.LIVE
    assert s.book.update_id == 499869754
    assert s.book.top(5)[0] == [(100 * P, 7 * P)]        # 99 from the dropped diff is absent


def test_first_diff_must_straddle_snapshot_plus_one():
    s = fresh()
    s.on_update(diff(11, 12))
    s.on_update(diff(15, 20))                              # 13..14 never arrived
    assert s.on_snapshot(snap(12)) == sync.GAP
    assert s.state == sync.RESYNCING and s.gaps == 1


def test_snapshot_without_buffered_diffs_waits_for_the_bridge_and_is_not_live():
    s = fresh()
    s.buffer = []
    assert s.on_snapshot(snap(50)) == sync.WAITING_BRIDGE
    assert s.state == sync.RESYNCING
    assert s.on_update(diff(45, 50)) == sync.WAITING_BRIDGE   # already contained: dropped
    assert s.on_update(diff(51, 53, asks=[101 * P, 0])) == sync.SYNCED
    assert s.state == sync.LIVE and s.book.update_id == 53
    assert s.book.top(1)[1] == []


def test_live_diff_must_continue_previous_u_plus_one():
    s = fresh()
    s.on_update(diff(11, 12))
    s.on_snapshot(snap(11))
    assert s.on_update(diff(13, 15)) == sync.APPLIED
    assert s.on_update(diff(17, 18)) == sync.GAP
    assert s.state == sync.RESYNCING
    assert s.book.update_id == 0 and s.book.bid_count() == 0, "a stale book is dropped at once"
    assert "17..18" in s.last_gap


def test_duplicates_and_old_diffs_are_ignored_while_live():
    s = fresh()
    s.on_update(diff(11, 12))
    s.on_snapshot(snap(11))
    assert s.on_update(diff(11, 12)) == sync.IGNORED
    assert s.on_update(diff(5, 6)) == sync.IGNORED
    assert s.on_update(diff(13, 13)) == sync.APPLIED


def test_a_crossed_book_after_a_diff_forces_a_resync():
    s = fresh()
    s.on_update(diff(11, 12))
    s.on_snapshot(snap(11))
    assert s.on_update(diff(13, 13, bids=[102 * P, 1 * P])) == sync.GAP


def test_disconnected_instrument_ignores_data_until_resync_starts():
    s = sync.InstrumentSync(BinanceSpotRule(), Book(10))
    assert s.state == sync.DISCONNECTED
    assert s.on_update(diff(1, 2)) == sync.IGNORED
    assert s.on_snapshot(snap(1)) == sync.IGNORED


def test_buffer_is_bounded_and_drops_the_oldest():
    s = sync.InstrumentSync(BinanceSpotRule(), Book(10), max_buffered=3)
    s.start_resync()
    for i in range(5):
        s.on_update(diff(i * 2 + 1, i * 2 + 2))
    assert [u.first_id for u in s.buffer] == [5, 7, 9]
    assert s.buffer_overflows == 2
    assert s.on_snapshot(snap(2)) == sync.SNAPSHOT_TOO_OLD


def test_random_streams_match_the_reference_book():
    """Random diffs + a snapshot taken mid-stream: after sync every book equals a reference
    that simply applies every diff from the start."""
    rng = random.Random(7)
    for trial in range(30):
        ref = RefBook()
        s = fresh()
        uid = 1000
        history = []
        for step in range(200):
            bids, asks = [], []
            for _ in range(rng.randint(1, 4)):
                bids += [rng.randint(90, 99) * P, rng.choice([0, rng.randint(1, 9) * P])]
                asks += [rng.randint(101, 110) * P, rng.choice([0, rng.randint(1, 9) * P])]
            first = uid + 1
            uid += rng.randint(1, 3)
            history.append(diff(first, uid, bids, asks))
        cut = rng.randint(5, 150)
        # reference: state after event `cut` (the snapshot), built from scratch
        for upd in history[:cut]:
            ref.apply_levels(upd.bids, upd.asks)
        snapshot_bids = [x for p, q in ref.top(1000)[0] for x in (p, q)]
        snapshot_asks = [x for p, q in ref.top(1000)[1] for x in (p, q)]
        buffered_from = rng.randint(0, cut - 1)
        for upd in history[buffered_from:cut + 3]:
            s.on_update(upd)
        assert s.on_snapshot(Snapshot("BTCUSDT", history[cut - 1].last_id, snapshot_bids,
                                      snapshot_asks)) == sync.SYNCED
        for upd in history[cut:cut + 3]:
            ref.apply_levels(upd.bids, upd.asks)
        assert s.book.top(20) == ref.top(20)
        for upd in history[cut + 3:]:
            assert s.on_update(upd) == sync.APPLIED
            ref.apply_levels(upd.bids, upd.asks)
            assert s.book.top(20) == ref.top(20), trial


# -- every book-loading path applies the same checks ------------------------------------------

import pytest  # noqa: E402

from hftfeed.errors import SyncError  # noqa: E402


def test_a_crossed_rest_snapshot_raises_sync_error_and_leaves_nothing_loaded():
    s = fresh()
    s.on_update(diff(10, 12))
    with pytest.raises(SyncError, match="crossed"):
        s.on_snapshot(snap(11, bids=(102 * P, 1 * P)))
    assert s.state == sync.RESYNCING and not s.loaded and s.book.bid_count() == 0
    assert s.buffer, "the buffer is kept for the next snapshot"
    assert s.on_snapshot(snap(11)) == sync.SYNCED


def test_a_crossed_in_stream_snapshot_is_a_gap_not_a_live_book():
    s = fresh()
    crossed = DepthUpdate("BTCUSDT", 5, 5, -1, 0, [30001 * P, 1 * P], [300005 * P // 10, 1 * P],
                          is_snapshot=True)
    assert s.on_update(crossed) == sync.GAP
    assert s.state == sync.RESYNCING and "crossed" in s.last_gap


def test_an_in_stream_snapshot_with_absurd_levels_is_a_gap():
    s = fresh()
    bad = DepthUpdate("BTCUSDT", 5, 5, -1, 0, [-1, 1 * P], [], is_snapshot=True)
    assert s.on_update(bad) == sync.GAP and s.state == sync.RESYNCING


# -- ids far outside the stream are bad data ---------------------------------------------------

def test_a_snapshot_id_of_2_63_minus_1_is_refused():
    s = fresh()
    s.on_update(diff(10, 12))
    with pytest.raises(SyncError, match="outside the stream"):
        s.on_snapshot(snap(2 ** 63 - 1))
    assert s.bad_ids == 1 and not s.loaded


def test_a_snapshot_far_ahead_of_the_buffered_diffs_is_refused():
    s = fresh()
    s.on_update(diff(10, 12))
    with pytest.raises(SyncError):
        s.on_snapshot(snap(12 + sync.MAX_SNAPSHOT_LEAD_IDS + 1))
    assert s.on_snapshot(snap(12 + 1000)) == sync.WAITING_BRIDGE    # ahead, but plausibly so


def test_an_absurd_diff_id_on_a_live_book_is_a_gap_and_while_resyncing_is_dropped():
    s = fresh()
    s.on_update(diff(10, 12))
    assert s.on_snapshot(snap(11)) == sync.SYNCED
    assert s.on_update(diff(13, 2 ** 63 - 1)) == sync.GAP
    assert s.on_update(diff(2 ** 63 - 2, 2 ** 63 - 1)) == sync.IGNORED
    assert not s.buffer and s.bad_ids == 2


# -- buffered diffs are capped by bytes ---------------------------------------------------------

def test_buffered_diffs_over_the_byte_cap_resync_and_release_their_bytes():
    pool = sync.BufferPool(10 ** 9)
    s = sync.InstrumentSync(BinanceSpotRule(), Book(100), 10000, 100000, pool)
    s.start_resync()
    big = [i * P for i in range(1, 1001)]                       # 500 levels: ~36 kB each
    results = [s.on_update(diff(i, i, bids=big)) for i in range(1, 4)]
    assert results == [sync.BUFFERED, sync.BUFFERED, sync.GAP]
    assert s.buffered_bytes == 0 and pool.used_bytes == 0 and s.buffer_overflows == 1
    assert "buffered diffs over 100000 bytes" in s.last_gap


def test_the_shared_pool_caps_all_instruments_together():
    pool = sync.BufferPool(100000)
    a = sync.InstrumentSync(BinanceSpotRule(), Book(100), 10000, 10 ** 9, pool)
    b = sync.InstrumentSync(BinanceSpotRule(), Book(100), 10000, 10 ** 9, pool)
    a.start_resync()
    b.start_resync()
    big = [i * P for i in range(1, 1001)]
    assert a.on_update(diff(1, 1, bids=big)) == sync.BUFFERED
    assert b.on_update(diff(1, 1, bids=big)) == sync.BUFFERED
    assert b.on_update(diff(2, 2, bids=big)) == sync.GAP          # the pool is full
    assert pool.used_bytes == a.buffered_bytes > 0
    a.disconnect()
    assert pool.used_bytes == 0


def test_sync_results_are_an_int_enum():
    assert sync.GAP == 5 and sync.GAP.name == "GAP" and isinstance(sync.SYNCED, int)
    assert sync.LIVE == 1 and sync.RESYNCING == 2 and sync.DISCONNECTED == 3
