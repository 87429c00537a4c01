"""Specification of hftfeed/core/book.py: the fixed-capacity array book, checked against RefBook."""

import random
import struct

import pytest

from hftfeed.core import book as book_module
from hftfeed.core.book import Book
from hftfeed.errors import BookError
from refbook import RefBook

INT64_MAX = 2 ** 63 - 1
STRATEGIES = [(False, False), (True, True), (False, True), (True, False)]


def make_book(capacity_levels=5000, move_with_memoryview=None, copy_with_memoryview=None):
    """A Book, optionally forced onto one interpreter's strategy so both are tested everywhere."""
    book = Book(capacity_levels)
    if move_with_memoryview is not None:
        book._move_with_memoryview = move_with_memoryview
    if copy_with_memoryview is not None:
        book._copy_with_memoryview = copy_with_memoryview
    return book


def assert_same(book, ref, depth=10 ** 6):
    assert book.top(depth) == ref.top(depth)
    assert book.bid_count() == len(ref.bids) and book.ask_count() == len(ref.asks)


# --- basics ---------------------------------------------------------------------------------

def test_new_book_is_empty():
    book = Book()
    assert book.capacity_levels == 5000
    assert (book.bid_count(), book.ask_count()) == (0, 0)
    assert book.best_bid() is None and book.best_ask() is None
    assert book.top(5) == ([], [])
    assert not book.is_crossed()
    assert book.update_id == 0 and book.truncated_levels == 0


@pytest.mark.parametrize("capacity", [0, -1, 2.5, "10"])
def test_capacity_must_be_a_positive_int(capacity):
    with pytest.raises(BookError):
        Book(capacity)


def test_bids_come_out_highest_first_and_asks_lowest_first():
    book = Book()
    for price in (100, 102, 101):
        book.set_bid(price, price * 10)
    for price in (205, 203, 204):
        book.set_ask(price, price * 10)
    assert book.top(5) == ([(102, 1020), (101, 1010), (100, 1000)],
                           [(203, 2030), (204, 2040), (205, 2050)])
    assert book.best_bid() == (102, 1020) and book.best_ask() == (203, 2030)


def test_set_replaces_the_quantity_of_an_existing_level():
    book = Book()
    book.set_bid(100, 5)
    book.set_bid(100, 7)
    book.set_ask(200, 5)
    book.set_ask(200, 9)
    assert book.top(5) == ([(100, 7)], [(200, 9)])


def test_qty_zero_deletes_the_level():
    book = Book()
    book.apply_levels([100, 1, 99, 2, 98, 3], [200, 1, 201, 2, 202, 3])
    book.set_bid(99, 0)
    book.set_ask(200, 0)
    assert book.top(5) == ([(100, 1), (98, 3)], [(201, 2), (202, 3)])


def test_deleting_an_absent_level_is_a_no_op():
    book = Book()
    book.set_bid(100, 0)
    book.set_ask(100, 0)
    book.apply_levels([100, 1, 98, 1], [200, 1, 202, 1])
    for price in (101, 99, 97):
        book.set_bid(price, 0)
    for price in (199, 201, 203):
        book.set_ask(price, 0)
    assert book.top(5) == ([(100, 1), (98, 1)], [(200, 1), (202, 1)])


@pytest.mark.parametrize("price, qty", [(0, 1), (-5, 1), (100, -1), (INT64_MAX + 1, 1),
                                        (100, INT64_MAX + 1), (-1, 0)])
def test_bad_levels_raise_book_error_and_leave_the_book_alone(price, qty):
    book = Book()
    book.apply_levels([100, 1], [200, 1])
    with pytest.raises(BookError):
        book.set_bid(price, qty)
    with pytest.raises(BookError):
        book.set_ask(price, qty)
    assert book.top(5) == ([(100, 1)], [(200, 1)])


def test_int64_extremes_are_stored_exactly():
    book = Book()
    book.set_bid(INT64_MAX, INT64_MAX)
    book.set_ask(1, INT64_MAX)
    assert book.best_bid() == (INT64_MAX, INT64_MAX) and book.best_ask() == (1, INT64_MAX)


def test_apply_levels_rejects_odd_length_lists():
    with pytest.raises(BookError):
        Book().apply_levels([100], [])
    with pytest.raises(BookError):
        Book().apply_levels([], [100, 1, 101])


def test_top_n_larger_than_the_book_returns_what_there_is():
    book = Book()
    book.apply_levels([100, 1, 99, 2], [101, 3])
    assert book.top(50) == ([(100, 1), (99, 2)], [(101, 3)])
    assert book.top(1) == ([(100, 1)], [(101, 3)])
    assert book.top(0) == ([], [])


def test_is_crossed_when_best_bid_reaches_best_ask():
    book = Book()
    book.set_bid(100, 1)
    assert not book.is_crossed()                    # one side empty
    book.set_ask(101, 1)
    assert not book.is_crossed()
    book.set_bid(101, 1)
    assert book.is_crossed()                        # equal prices count as crossed
    book.set_bid(101, 0)
    book.set_bid(102, 1)
    assert book.is_crossed()
    book.set_bid(102, 0)
    assert not book.is_crossed()


def test_clear_empties_both_sides_without_reallocating():
    book = Book(100)
    bids_before = (id(book._bids), book._bids.buffer_info())
    book.apply_levels([100, 1, 99, 1], [200, 1])
    book.update_id = 55
    book.clear()
    assert book.top(5) == ([], []) and book.update_id == 0
    assert book.best_bid() is None and not book.is_crossed()
    assert (id(book._bids), book._bids.buffer_info()) == bids_before
    book.set_bid(50, 1)
    assert book.top(5) == ([(50, 1)], [])


# --- snapshots ------------------------------------------------------------------------------

def test_snapshot_in_any_order_is_sorted_and_sets_update_id():
    book = Book()
    book.load_snapshot([99, 2, 101, 1, 100, 3], [203, 1, 201, 2, 202, 3], 777)
    assert book.top(5) == ([(101, 1), (100, 3), (99, 2)], [(201, 2), (202, 3), (203, 1)])
    assert book.update_id == 777


def test_snapshot_skips_zero_qty_and_last_duplicate_wins():
    book = Book()
    book.load_snapshot([100, 1, 99, 0, 100, 5, 98, 2, 98, 0], [200, 0, 201, 1, 201, 4], 1)
    ref = RefBook()
    ref.load_snapshot([100, 1, 99, 0, 100, 5, 98, 2, 98, 0], [200, 0, 201, 1, 201, 4], 1)
    assert book.top(5) == ([(100, 5)], [(201, 4)]) == ref.top(5)


def test_snapshot_replaces_the_previous_book():
    book = Book()
    book.apply_levels([100, 1, 50, 1], [200, 1])
    book.load_snapshot([90, 1], [], 2)
    assert book.top(5) == ([(90, 1)], [])


def test_bad_snapshot_raises_and_keeps_the_previous_book():
    book = Book()
    book.load_snapshot([100, 1], [200, 1], 5)
    for bids, asks in (([100, -1], []), ([], [0, 1]), ([100], []), ([1, 1], [2, 1, 3])):
        with pytest.raises(BookError):
            book.load_snapshot(bids, asks, 6)
        assert book.top(5) == ([(100, 1)], [(200, 1)]) and book.update_id == 5


def test_snapshot_larger_than_capacity_keeps_the_best_levels():
    book = Book(3)
    book.load_snapshot([x for p in range(1, 11) for x in (p, p)],
                       [x for p in range(11, 16) for x in (p, p)], 1)
    assert book.top(10) == ([(10, 10), (9, 9), (8, 8)], [(11, 11), (12, 12), (13, 13)])
    assert book.truncated_levels == 7 + 2


# --- capacity policy ------------------------------------------------------------------------

def test_full_side_ignores_a_level_worse_than_its_worst():
    book = Book(3)
    book.apply_levels([100, 1, 99, 1, 98, 1], [200, 1, 201, 1, 202, 1])
    book.apply_levels([97, 1], [203, 1])
    assert book.top(5) == ([(100, 1), (99, 1), (98, 1)], [(200, 1), (201, 1), (202, 1)])
    assert book.truncated_levels == 2


def test_full_side_inserts_a_better_level_and_drops_its_worst():
    book = Book(3)
    book.apply_levels([100, 1, 98, 1, 96, 1], [200, 1, 202, 1, 204, 1])
    book.apply_levels([99, 5, 101, 6], [203, 5, 199, 6])
    assert book.top(5) == ([(101, 6), (100, 1), (99, 5)], [(199, 6), (200, 1), (202, 1)])
    assert book.truncated_levels == 4


def test_full_side_still_updates_and_deletes_existing_levels():
    book = Book(2)
    book.apply_levels([100, 1, 99, 1], [])
    book.set_bid(99, 7)
    assert book.truncated_levels == 0
    book.set_bid(100, 0)
    book.set_bid(98, 1)
    assert book.top(5) == ([(99, 7), (98, 1)], []) and book.truncated_levels == 0


# --- property tests against the reference book ----------------------------------------------

def random_ops(rng, n_ops, mid, span, near_top):
    """Flat (bids, asks) diffs around ``mid``; most prices near the top when ``near_top``."""
    diffs = []
    for _ in range(n_ops):
        bids, asks = [], []
        for _ in range(rng.randrange(0, 6)):
            off = int(rng.expovariate(1 / 5.0)) if near_top and rng.random() < 0.8 \
                else rng.randrange(span)
            qty = 0 if rng.random() < 0.3 else rng.randrange(1, 10 ** 12)
            if rng.random() < 0.5:
                bids.extend((mid - 1 - off, qty))
            else:
                asks.extend((mid + off, qty))
        diffs.append((bids, asks))
    return diffs


@pytest.mark.parametrize("move_mv, copy_mv", STRATEGIES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_diffs_match_the_reference_book(seed, move_mv, copy_mv):
    rng = random.Random(seed)
    book = make_book(5000, move_mv, copy_mv)
    ref = RefBook()
    mid = 10 ** 12
    snap_b = [x for _ in range(300) for x in (mid - 1 - rng.randrange(600), rng.randrange(10))]
    snap_a = [x for _ in range(300) for x in (mid + rng.randrange(600), rng.randrange(10))]
    book.load_snapshot(snap_b, snap_a, 10)
    ref.load_snapshot(snap_b, snap_a, 10)
    assert_same(book, ref)
    for i, (bids, asks) in enumerate(random_ops(rng, 1500, mid, 800, near_top=True)):
        book.apply_levels(bids, asks)
        ref.apply_levels(bids, asks)
        if i % 50 == 0:
            assert_same(book, ref)
            assert book.best_bid() == (ref.top(1)[0] or [None])[0]
            assert book.best_ask() == (ref.top(1)[1] or [None])[0]
    assert_same(book, ref)
    assert not book.is_crossed()


@pytest.mark.parametrize("move_mv", [False, True])
@pytest.mark.parametrize("capacity", [1, 2, 7, 40])
def test_capacity_overflow_matches_a_reference_with_the_same_rule(capacity, move_mv):
    rng = random.Random(capacity)
    book = make_book(capacity, move_mv)
    ref = RefBook(capacity_levels=capacity)
    mid = 10 ** 9
    snap = [x for _ in range(capacity * 2) for x in (mid - 1 - rng.randrange(200), 1)]
    book.load_snapshot(snap, [], 1)
    ref.load_snapshot(snap, [], 1)
    assert_same(book, ref)
    for bids, asks in random_ops(rng, 1500, mid, 200, near_top=rng.random() < 0.5):
        book.apply_levels(bids, asks)
        ref.apply_levels(bids, asks)
        assert book.top(capacity + 1) == ref.top(capacity + 1)
    assert book.truncated_levels == ref.truncated_levels > 0


@pytest.mark.parametrize("move_mv", [False, True])
def test_deep_books_cross_the_scan_and_bisect_boundary(move_mv):
    """Prices at every rank, so both the top scan and the bisect below it find and miss."""
    rng = random.Random(99)
    book = make_book(5000, move_mv)
    ref = RefBook()
    levels = book_module.SCAN_LEVELS * 6
    mid = 10 ** 9
    bids = [x for k in range(levels) for x in (mid - 2 * k, k + 1)]       # even ticks only
    asks = [x for k in range(levels) for x in (mid + 1 + 2 * k, k + 1)]
    book.load_snapshot(bids, asks, 1)
    ref.load_snapshot(bids, asks, 1)
    for _ in range(4000):
        k = rng.randrange(2 * levels + 2)
        qty = rng.choice((0, 0, rng.randrange(1, 100)))
        if rng.random() < 0.5:
            diff = ([mid - k, qty], [])
        else:
            diff = ([], [mid + 1 + k, qty])
        book.apply_levels(*diff)
        ref.apply_levels(*diff)
    assert_same(book, ref)


@pytest.mark.parametrize("move_mv", [False, True])
@pytest.mark.parametrize("capacity, direction", [(50, 1), (50, -1), (5000, 1), (3, 1), (3, -1)])
def test_a_long_price_drift_keeps_the_book_exact_while_its_block_floats(capacity, direction,
                                                                         move_mv):
    """A trend adds levels at one end and removes them at the other for many times the
    storage size, so the block of levels runs into the end of its array and is re-centred."""
    book = make_book(capacity, move_mv)
    ref = RefBook(capacity_levels=capacity)
    width = min(capacity, 40)
    mid = 10 ** 9
    book.load_snapshot([x for k in range(width) for x in (mid - k, 1)],
                       [x for k in range(width) for x in (mid + 1 + k, 1)], 1)
    ref.load_snapshot([x for k in range(width) for x in (mid - k, 1)],
                      [x for k in range(width) for x in (mid + 1 + k, 1)], 1)
    steps = 3 * book_module.storage_slots(capacity)
    for step in range(1, steps):
        best_bid = mid + direction * step
        diff = ([best_bid, step, best_bid - direction * width, 0],
                [best_bid + 1, step, best_bid + 1 - direction * width, 0])
        book.apply_levels(*diff)
        ref.apply_levels(*diff)
        if step % 97 == 0:
            assert_same(book, ref)
    assert_same(book, ref)
    assert book.truncated_levels == ref.truncated_levels


def test_a_change_at_either_end_of_the_book_moves_at_most_a_handful_of_levels(monkeypatch):
    """Inserts and deletes move the shorter part of the side: levels at the best and at the
    worst end are as cheap as each other (real diffs reach deep levels too)."""
    book = make_book(5000)
    mid = 10 ** 9
    book.load_snapshot([x for k in range(1000) for x in (mid - 2 * k, 1)], [], 1)
    moved = []      # pairs moved by each call; a re-centring moves the whole side

    def spy(name, pairs_moved):
        real = getattr(book, name)

        def counting(*args):
            moved.append(pairs_moved(*args))
            return real(*args)
        monkeypatch.setattr(book, name, counting)

    spy("_shift_up", lambda arr, view, first, end: end - first)
    spy("_shift_down", lambda arr, view, first, end: end - first)
    spy("_recentre", lambda arr, view, base, n, pair: n)
    worst = mid - 2 * 999
    for price, qty in ((worst, 0), (worst - 5, 3), (mid, 0), (mid + 1, 4), (worst + 1, 2)):
        book.set_bid(price, qty)
    assert max(moved, default=0) <= 1
    book.set_bid(mid - 1001, 9)        # the middle: about half the side moves
    assert 400 <= moved[-1] <= 600
    assert book.bid_count() == 1002 and book.top(1)[0] == [(mid + 1, 4)]


def test_buffers_are_the_preallocated_storage_of_both_sides():
    book = Book(10)
    bids, asks = book.buffers()
    assert bids is book._bids and asks is book._asks
    assert len(bids) == len(asks) == 2 * book_module.storage_slots(10) and bids.itemsize == 8


def test_updates_never_resize_or_move_the_storage():
    rng = random.Random(5)
    book = Book(64)
    addresses = (book._bids.buffer_info(), book._asks.buffer_info())
    for bids, asks in random_ops(rng, 3000, 10 ** 6, 300, near_top=True):
        book.apply_levels(bids, asks)
    assert (book._bids.buffer_info(), book._asks.buffer_info()) == addresses
    assert book.truncated_levels > 0


# --- copying the top into a packet ----------------------------------------------------------

def expected_levels(book, bid_n, ask_n):
    bids, asks = book.top(max(bid_n, ask_n))
    return b"".join(struct.pack("<qq", p, q) for p, q in bids[:bid_n] + asks[:ask_n])


@pytest.mark.parametrize("copy_mv", [False, True])
@pytest.mark.parametrize("off", [0, 8, 40, 3])
def test_copy_levels_writes_little_endian_pairs_best_first(copy_mv, off):
    rng = random.Random(off)
    book = make_book(100, copy_with_memoryview=copy_mv)
    bids = [x for _ in range(30) for x in (rng.randrange(1, 1000), rng.randrange(10 ** 15))]
    asks = [x for _ in range(30) for x in (rng.randrange(1000, 2000), rng.randrange(10 ** 15))]
    book.load_snapshot(bids, asks, 1)
    for bid_n, ask_n in ((0, 0), (1, 0), (0, 1), (5, 3), (book.bid_count(), book.ask_count())):
        buf = bytearray(b"\xee" * (off + 16 * (bid_n + ask_n) + 8))
        end = book.copy_levels_into(buf, off, bid_n, ask_n)
        assert end == off + 16 * (bid_n + ask_n)
        assert bytes(buf[off:end]) == expected_levels(book, bid_n, ask_n)
        assert bytes(buf[:off]) == b"\xee" * off and bytes(buf[end:]) == b"\xee" * 8
        assert len(buf) == off + 16 * (bid_n + ask_n) + 8


@pytest.mark.parametrize("copy_mv", [False, True])
def test_copy_levels_of_empty_sides_writes_nothing(copy_mv):
    for bids, asks in (([], []), ([100, 1], []), ([], [101, 2])):
        book = make_book(10, copy_with_memoryview=copy_mv)
        book.load_snapshot(bids, asks, 1)
        buf = bytearray(b"\xee" * 48)
        end = book.copy_levels_into(buf, 8, book.bid_count(), book.ask_count())
        assert bytes(buf[8:end]) == expected_levels(book, book.bid_count(), book.ask_count())
        assert bytes(buf[end:]) == b"\xee" * (48 - end) and len(buf) == 48


def test_copy_levels_leaves_the_buffer_resizable():
    book = Book(10)
    book.load_snapshot([100, 1], [101, 2], 1)
    buf = bytearray(64)
    book.copy_levels_into(buf, 0, 1, 1)
    buf.extend(b"x")                    # no memoryview export may outlive the call
    assert len(buf) == 65
