"""The L2 order book: both sides in fixed-capacity ``array('q')`` storage allocated once.

Layout (why it looks backwards): each side is an interleaved array of ``(qty, price)`` pairs
sorted **worst first**, so the best level is the last used pair (bids ascending by price, asks
descending). Storing the pair as (qty, price) makes a *reversed* slice of the last pairs read as
``price, qty, price, qty, ...`` best first: exactly the PROTOCOL.md level order, so the wire
encoder copies the top N with one C-level memoryview assignment on CPython.

The levels are a block of pairs ``[base, base + n)`` floating inside an array 1.5x the
capacity (``storage_slots``), and an insert or a delete moves the shorter part of the block:
the pairs above it (towards the best) or below it (shifting ``base``). Real Binance diffs hit
the top of the book (median rank 4-9, p90 33-48 in recorded Binance captures) but also
reach deep levels, and a trending market adds levels at one end while the other end empties;
the simulator's diffs (half at rank <= 3, a quarter at its 200th level) cost 5-8 us a message
on PyPy when only the top end was cheap, ~0.6 us with both ends cheap. When the cheaper side
has no room left the block is re-centred (n pairs, rare: once per ~capacity/4 one-way moves).

Per interpreter (chosen once at import, a tested switch on each instance):
- moving pairs on insert/delete: CPython uses memoryview slice assignment (one memmove in C;
  its bytecode loop costs ~200 ns per element on the dev VM); PyPy uses a plain loop that its
  JIT compiles (~7-10 ns per element), because PyPy 7.3.11's memoryview slice copy is 3-5x
  slower than that loop for the 2-128 element moves that dominate here.
- copying the top N into a packet: CPython on a little-endian host uses the reversed
  memoryview copy (measured ~4.5x faster than 40 ``pack_into`` calls there); PyPy uses
  per-level ``pack_into``, which its JIT turns into direct stores (~13x faster there than the
  memoryview copy).

Finding a price: scan from the best for ``SCAN_LEVELS`` (32) levels, then binary search the
rest. In the captures 67-85 % of updated prices are within 16 levels of the best and 93-99 %
within 64. Hitting an existing level (most updates) writes one array item and allocates
nothing; inserts and deletes move memory inside the preallocated array, never resize it
(CPython's memoryview export even forbids a resize).

Measured with ``python3 -m hftfeed.core.book`` (1000 levels a side, ~90 % qty changes, ~5 % inserts,
~5 % deletes near the top, 1 % anywhere; 2-vCPU VM shared with other jobs): PyPy 7.3.11
8.1-8.5M level updates/s, CPython 3.11 (pyenv build without PGO) 0.6-0.75M/s (previous layout; this
layout measured 4.8-8.3M on PyPy in the same command on a busier day, see docs/benchmarks.md).
The cost that remains on PyPy is inserts/deletes in the middle of a deep side: up to n/2 pairs
move, ~7 ns an item.

Capacity policy: when a side already holds ``capacity_levels`` levels and a new price arrives,
a price worse than the worst kept level is ignored; a better one is inserted and the worst kept
level is dropped. Both cases add one to ``truncated_levels`` (a snapshot larger than the
capacity keeps its best levels and counts the rest the same way). The dropped levels are then
missing from the bottom of the book for as long as they exist at the venue; with the default
5000 levels a side against a 20-level publication that region is never published, so the
truncation only costs memory accuracy no consumer sees.

Errors: a non-positive price, a negative qty or a value outside int64 raises BookError before
the book is touched. ``apply_levels`` is not atomic: a BookError in the middle of a diff leaves
it half applied, and the recovery table (errors.py) answers BookError with a resync.

Pure: no asyncio, no socket.
"""

import platform
import struct
import sys
from array import array

from hftfeed.errors import BookError
from hftfeed.codecs.fixed import INT64_MAX
SCAN_LEVELS = 32            # levels scanned from the best before bisecting (see module doc)
_SCAN_SLOTS = 2 * SCAN_LEVELS
_LEVEL = struct.Struct("<qq")   # PROTOCOL.md level: i64 price, i64 qty, little-endian

_IS_CPYTHON = platform.python_implementation() == "CPython"
# CPython: slice moves in C beat a bytecode loop; PyPy: the JIT-compiled loop beats its slices.
MOVE_WITH_MEMORYVIEW = _IS_CPYTHON
# The memoryview copy writes native-endian int64s: only valid where native is little-endian.
COPY_WITH_MEMORYVIEW = _IS_CPYTHON and sys.byteorder == "little"


class Book(object):
    """One instrument's L2 book; prices and quantities are ints scaled by 10**8 (fixed.py).

    Public state: ``capacity_levels`` (per side), ``update_id`` (set by the sync engine),
    ``truncated_levels`` (counter, see the capacity policy), ``bid_levels``/``ask_levels``
    (level counts; read-only for everyone but this class).
    """

    def __init__(self, capacity_levels=5000):
        if not isinstance(capacity_levels, int) or capacity_levels < 1:
            raise BookError("capacity_levels must be a positive int, not %r" % (capacity_levels,))
        self.capacity_levels = capacity_levels
        self.update_id = 0
        self.truncated_levels = 0
        self.bid_levels = 0
        self.ask_levels = 0
        # Allocated once: 2 int64 per slot. bytes(n) builds the zeroed array without a list.
        self._slots = storage_slots(capacity_levels)
        self._bids = array("q", bytes(16 * self._slots))
        self._asks = array("q", bytes(16 * self._slots))
        self._bids_view = memoryview(self._bids)
        self._asks_view = memoryview(self._asks)
        self._bid_base = self._ask_base = self._slots // 2   # pair index of each side's worst level
        self._move_with_memoryview = MOVE_WITH_MEMORYVIEW
        self._copy_with_memoryview = COPY_WITH_MEMORYVIEW

    def buffers(self):
        """The preallocated storage, for hw.prefault (touch every page once at start-up)."""
        return [self._bids, self._asks]

    # -- whole-book operations (rare) -----------------------------------------------------------

    def clear(self):
        """Empty both sides (no reallocation); update_id back to 0; counters are kept."""
        self.bid_levels = 0
        self.ask_levels = 0
        self._bid_base = self._ask_base = self._slots // 2
        self.update_id = 0

    def load_snapshot(self, bids_flat, asks_flat, update_id):
        """Replace both sides from flat ``[p0, q0, p1, q1, ...]`` lists in any order.

        Qty-0 levels are skipped; a repeated price takes its last qty. Everything is validated
        before the book changes, so a BookError leaves the previous book intact.
        """
        bids = _snapshot_side(bids_flat, "bid")
        asks = _snapshot_side(asks_flat, "ask")
        # Worst first: bids ascending, asks descending; keep the best capacity_levels.
        bid_prices = sorted(bids)
        ask_prices = sorted(asks, reverse=True)
        cap = self.capacity_levels
        dropped = max(0, len(bid_prices) - cap) + max(0, len(ask_prices) - cap)
        bid_prices = bid_prices[-cap:]
        ask_prices = ask_prices[-cap:]
        # Each side's block starts centred: room to grow and to shrink at both ends.
        self._bid_base = (self._slots - len(bid_prices)) // 2
        self._ask_base = (self._slots - len(ask_prices)) // 2
        _fill(self._bids, self._bid_base, bid_prices, bids)
        _fill(self._asks, self._ask_base, ask_prices, asks)
        self.bid_levels = len(bid_prices)
        self.ask_levels = len(ask_prices)
        self.truncated_levels += dropped
        self.update_id = update_id

    # -- the hot path ---------------------------------------------------------------------------

    def set_bid(self, price, qty):
        """Set the bid at ``price`` to ``qty`` (absolute); qty 0 deletes (absent: no-op)."""
        if price <= 0 or qty < 0 or price > INT64_MAX or qty > INT64_MAX:
            raise BookError("bad bid level: price %r qty %r" % (price, qty))
        arr = self._bids
        n = self.bid_levels
        base = self._bid_base
        below = 2 * base - 1              # the price slot just under the worst level
        # Scan from the best (its price sits at 2(base+n)-1) towards worse prices.
        j = below + 2 * n
        stop = j - _SCAN_SLOTS
        if stop < below:
            stop = below
        while j > stop and arr[j] > price:
            j -= 2
        if j == stop and stop > below:
            # Not in the scanned top: bisect pairs [base, stop's pair) for the last price <= price.
            lo = base
            hi = (stop + 1) >> 1
            while lo < hi:
                mid = (lo + hi) >> 1
                if arr[2 * mid + 1] <= price:
                    lo = mid + 1
                else:
                    hi = mid
            j = 2 * lo - 1
        # Now every pair at or below j has price <= price, every pair above has price > price.
        if j > below and arr[j] == price:
            if qty:
                arr[j - 1] = qty          # the common case: one store, nothing allocated
            else:
                self._bid_base = self._delete_pair(arr, self._bids_view, base, n, j >> 1)
                self.bid_levels = n - 1
            return
        if qty:
            if n == self.capacity_levels:
                # Capacity policy: a price worse than the worst kept level is ignored; a better
                # one pushes the worst level out (the block's bottom moves up by one pair).
                self.truncated_levels += 1
                if j == below:
                    return
                base += 1
                n -= 1
            self._bid_base = self._insert_pair(arr, self._bids_view, base, n, (j + 1) >> 1,
                                               qty, price)
            self.bid_levels = n + 1

    def set_ask(self, price, qty):
        """Set the ask at ``price`` to ``qty`` (absolute); qty 0 deletes (absent: no-op)."""
        if price <= 0 or qty < 0 or price > INT64_MAX or qty > INT64_MAX:
            raise BookError("bad ask level: price %r qty %r" % (price, qty))
        arr = self._asks
        n = self.ask_levels
        base = self._ask_base
        below = 2 * base - 1
        # Mirror of set_bid: asks are stored descending, so "better" means a lower price. Two
        # copies on purpose: one function with a side flag would add a branch to every
        # comparison of the scan, the innermost loop of the daemon.
        j = below + 2 * n
        stop = j - _SCAN_SLOTS
        if stop < below:
            stop = below
        while j > stop and arr[j] < price:
            j -= 2
        if j == stop and stop > below:
            lo = base
            hi = (stop + 1) >> 1
            while lo < hi:
                mid = (lo + hi) >> 1
                if arr[2 * mid + 1] >= price:
                    lo = mid + 1
                else:
                    hi = mid
            j = 2 * lo - 1
        if j > below and arr[j] == price:
            if qty:
                arr[j - 1] = qty
            else:
                self._ask_base = self._delete_pair(arr, self._asks_view, base, n, j >> 1)
                self.ask_levels = n - 1
            return
        if qty:
            if n == self.capacity_levels:
                self.truncated_levels += 1
                if j == below:
                    return
                base += 1
                n -= 1
            self._ask_base = self._insert_pair(arr, self._asks_view, base, n, (j + 1) >> 1,
                                               qty, price)
            self.ask_levels = n + 1

    def apply_levels(self, bids_flat, asks_flat):
        """Apply a diff: flat ``[p0, q0, ...]`` lists of absolute quantities (0 deletes)."""
        if len(bids_flat) & 1 or len(asks_flat) & 1:
            raise BookError("flat level lists need an even length (%d bids, %d asks)"
                            % (len(bids_flat), len(asks_flat)))
        set_bid = self.set_bid          # bound once per diff, not once per level
        for i in range(0, len(bids_flat), 2):
            set_bid(bids_flat[i], bids_flat[i + 1])
        set_ask = self.set_ask
        for i in range(0, len(asks_flat), 2):
            set_ask(asks_flat[i], asks_flat[i + 1])

    # -- pair moves inside the preallocated arrays -------------------------------------------------
    # A side's levels are the pairs [base, base + n) of a larger array, so an insert or a delete
    # moves whichever part is shorter: the pairs above it (towards the best) or below it
    # (towards the worst, shifting base). Changes near either end are cheap; the worst case is
    # the middle, n/2 pairs.

    def _insert_pair(self, arr, view, base, n, pair, qty, price):
        """Open a pair for a new level that sorts just below pair index ``pair``; return the new
        base. Re-centres the block when the cheaper side has no room left (rare: a long drift)."""
        top = base + n
        if top - pair <= pair - base:             # fewer pairs above: they move up one
            if top == self._slots:
                base, pair = self._recentre(arr, view, base, n, pair)
                top = base + n
            if pair < top:
                self._shift_up(arr, view, pair, top)
        else:                                     # fewer below: they move down, base - 1
            if base == 0:
                base, pair = self._recentre(arr, view, base, n, pair)
            self._shift_down(arr, view, base, pair)
            base -= 1
            pair -= 1
        arr[2 * pair] = qty
        arr[2 * pair + 1] = price
        return base

    def _delete_pair(self, arr, view, base, n, pair):
        """Close pair index ``pair``; return the new base."""
        if pair - base < base + n - 1 - pair:
            if pair > base:
                self._shift_up(arr, view, base, pair)
            return base + 1
        if pair + 1 < base + n:
            self._shift_down(arr, view, pair + 1, base + n)
        return base

    def _shift_up(self, arr, view, first, end):
        """Move pairs [first, end) up by one pair (towards the best end)."""
        if self._move_with_memoryview:
            view[2 * first + 2:2 * end + 2] = view[2 * first:2 * end]
        else:
            k = 2 * end + 1
            stop = 2 * first + 1
            while k > stop:
                arr[k] = arr[k - 2]
                k -= 1

    def _shift_down(self, arr, view, first, end):
        """Move pairs [first, end) down by one pair (towards the worst end)."""
        if self._move_with_memoryview:
            view[2 * first - 2:2 * end - 2] = view[2 * first:2 * end]
        else:
            k = 2 * first - 2
            stop = 2 * end - 2
            while k < stop:
                arr[k] = arr[k + 2]
                k += 1

    def _recentre(self, arr, view, base, n, pair):
        """Move the whole block to the middle of its array; return (new base, new ``pair``)."""
        new_base = (self._slots - n - 1) // 2
        delta = 2 * (new_base - base)
        first = 2 * base
        stop = 2 * (base + n)
        if self._move_with_memoryview:
            view[first + delta:stop + delta] = view[first:stop]
        elif delta > 0:
            k = stop - 1
            while k >= first:
                arr[k + delta] = arr[k]
                k -= 1
        else:
            k = first
            while k < stop:
                arr[k + delta] = arr[k]
                k += 1
        return new_base, pair + new_base - base

    # -- reads ----------------------------------------------------------------------------------

    def bid_count(self):
        return self.bid_levels

    def ask_count(self):
        return self.ask_levels

    def best_bid(self):
        """(price, qty) of the highest bid, or None."""
        if not self.bid_levels:
            return None
        j = 2 * (self._bid_base + self.bid_levels) - 1
        return (self._bids[j], self._bids[j - 1])

    def best_ask(self):
        """(price, qty) of the lowest ask, or None."""
        if not self.ask_levels:
            return None
        j = 2 * (self._ask_base + self.ask_levels) - 1
        return (self._asks[j], self._asks[j - 1])

    def is_crossed(self):
        """True when best bid >= best ask: a sanity signal that the book is not trustworthy."""
        if not (self.bid_levels and self.ask_levels):
            return False
        return (self._bids[2 * (self._bid_base + self.bid_levels) - 1]
                >= self._asks[2 * (self._ask_base + self.ask_levels) - 1])

    def top(self, n):
        """(bids, asks): lists of (price, qty), best first, at most n each (tests, monitor)."""
        return (_top_side(self._bids, self._bid_base + self.bid_levels, self.bid_levels, n),
                _top_side(self._asks, self._ask_base + self.ask_levels, self.ask_levels, n))

    # -- wire support -----------------------------------------------------------------------------

    def copy_levels_into(self, buf, off, bid_n, ask_n):
        """Write the best ``bid_n`` bids then the best ``ask_n`` asks at ``buf[off:]`` as
        PROTOCOL.md levels (i64 price, i64 qty, little-endian); return the end offset.

        The caller (wire.pack_book) guarantees ``bid_n <= bid_levels``, ``ask_n <= ask_levels``
        and room in ``buf``.
        """
        if self._copy_with_memoryview and not off & 7:
            return self._copy_levels_memoryview(buf, off, bid_n, ask_n)
        return self._copy_levels_packed(buf, off, bid_n, ask_n)

    def _copy_levels_packed(self, buf, off, bid_n, ask_n):
        pack = _LEVEL.pack_into
        arr = self._bids
        j = 2 * (self._bid_base + self.bid_levels) - 1
        for _ in range(bid_n):
            pack(buf, off, arr[j], arr[j - 1])
            off += 16
            j -= 2
        arr = self._asks
        j = 2 * (self._ask_base + self.ask_levels) - 1
        for _ in range(ask_n):
            pack(buf, off, arr[j], arr[j - 1])
            off += 16
            j -= 2
        return off

    def _copy_levels_memoryview(self, buf, off, bid_n, ask_n):
        end = off + 16 * (bid_n + ask_n)
        # release() rather than `with` blocks: half the cost, and on CPython (the only default
        # user of this path) the intermediate views die at once, so buf is not left pinned.
        dst = memoryview(buf)[off:end].cast("q")
        try:
            # A reversed slice of (qty, price) pairs reads price, qty best first.
            # (Skip empty copies: a slice [-1:None:-1] would mean the whole array.)
            if bid_n:
                start = 2 * (self._bid_base + self.bid_levels) - 1
                stop = start - 2 * bid_n
                dst[0:2 * bid_n] = self._bids_view[start:stop if stop >= 0 else None:-1]
            if ask_n:
                start = 2 * (self._ask_base + self.ask_levels) - 1
                stop = start - 2 * ask_n
                dst[2 * bid_n:] = self._asks_view[start:stop if stop >= 0 else None:-1]
        finally:
            dst.release()
        return end

    def __repr__(self):
        return ("Book(%d bids, %d asks, update_id=%d, best %r / %r)"
                % (self.bid_levels, self.ask_levels, self.update_id, self.best_bid(),
                   self.best_ask()))


def _snapshot_side(flat, side_name):
    """Validate a flat snapshot side; return {price: qty} without qty-0 levels (last one wins)."""
    if len(flat) & 1:
        raise BookError("snapshot %ss: flat list of odd length %d" % (side_name, len(flat)))
    levels = {}
    for i in range(0, len(flat), 2):
        price = flat[i]
        qty = flat[i + 1]
        if price <= 0 or qty < 0 or price > INT64_MAX or qty > INT64_MAX:
            raise BookError("snapshot %s level: price %r qty %r" % (side_name, price, qty))
        levels[price] = qty
    return dict((p, q) for p, q in levels.items() if q)


def storage_slots(capacity_levels):
    """Pairs allocated per side: the capacity plus half again, so the block of levels can float
    (inserts and deletes shift its shorter part) and re-centring stays rare."""
    return capacity_levels + capacity_levels // 2 + 32


def _fill(arr, base, prices, qty_by_price):
    """Write (qty, price) pairs for ``prices`` (already in storage order) from pair ``base``."""
    k = 2 * base
    for price in prices:
        arr[k] = qty_by_price[price]
        arr[k + 1] = price
        k += 2


def _top_side(arr, end, count, n):
    """The best min(n, count) levels of the block ending (exclusive) at pair index ``end``."""
    levels = []
    j = 2 * end - 1
    for _ in range(min(max(n, 0), count)):
        levels.append((arr[j], arr[j - 1]))
        j -= 2
    return levels


def _bench():
    """Micro-benchmark: level updates/s on a realistic mix (a proper bench.py comes later).

    Mix modelled on recorded Binance captures: 1000 levels a side, ~90 % qty changes
    of existing levels, ~5 % inserts, ~5 % deletes, at a rank from the best drawn with a mean of
    12 levels, 1 % of them anywhere in the book; diffs of 200 levels a side. The first of four
    runs warms PyPy's JIT and is discarded.
    """
    import random
    import time
    rng = random.Random(1)
    gap = 1 << 20                                        # room to insert between any two levels
    top = 1001 * gap
    flats = ([], [])
    ops = ([], [])
    for side in (0, 1):
        live = [gap * k for k in range(1, 1001)]         # distance from "top", worst first
        flats[side].extend(x for t in live for x in (t, rng.randrange(1, 10 ** 12)))
        for _ in range(200000):
            rank = min(int(rng.expovariate(1 / 12.0)), len(live) - 1)
            if rng.random() < 0.01:
                rank = rng.randrange(len(live))
            idx = len(live) - 1 - rank
            new_tick = (live[idx - 1] + live[idx]) // 2 if idx > 0 else live[0] // 2
            roll = rng.random()
            if roll < 0.10 and len(live) >= 1000:        # delete that level
                ops[side].extend((live.pop(idx), 0))
            elif roll < 0.10 and new_tick not in (0, live[idx]):   # insert just below it
                live.insert(idx, new_tick)
                ops[side].extend((new_tick, rng.randrange(1, 10 ** 12)))
            else:                                        # change its qty
                ops[side].extend((live[idx], rng.randrange(1, 10 ** 12)))
    # Tick t -> price: a higher t is a better level (a higher bid, a lower ask).
    base = 10 ** 13
    to_bid = [base - top + x if i % 2 == 0 else x for i, x in enumerate(ops[0])]
    to_ask = [base + top - x if i % 2 == 0 else x for i, x in enumerate(ops[1])]
    bids_flat = [base - top + x if i % 2 == 0 else x for i, x in enumerate(flats[0])]
    asks_flat = [base + top - x if i % 2 == 0 else x for i, x in enumerate(flats[1])]
    step = 2 * 200
    count = min(len(to_bid), len(to_ask)) // step * step
    diffs = [(to_bid[i:i + step], to_ask[i:i + step]) for i in range(0, count, step)]
    book = Book()
    rates = []
    for _ in range(4):
        book.load_snapshot(bids_flat, asks_flat, 1)
        start = time.perf_counter()
        for bids, asks in diffs:
            book.apply_levels(bids, asks)
        rates.append(count / (time.perf_counter() - start))
    print("%s %s: %.2fM level updates/s (best of %d runs after 1 warm-up; %d/%d levels at end)"
          % (platform.python_implementation(), sys.version.split()[0], max(rates[1:]) / 1e6,
             len(rates) - 1, book.bid_levels, book.ask_levels))


if __name__ == "__main__":
    _bench()
