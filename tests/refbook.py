"""RefBook: an obviously correct L2 book for tests (dict price -> qty per side, sorted on read).

Other tests import it as the oracle for hftfeed/core/book.py, the sync engine and the simulator, so
its API is small and stable:

    RefBook()                                        bids = {}, asks = {}, update_id = 0
    load_snapshot(bids_flat, asks_flat, update_id)   replace both sides; qty 0 levels skipped;
                                                     a repeated price: the last one wins
    apply_levels(bids_flat, asks_flat)               absolute qtys; qty 0 deletes (absent: no-op)
    top(n) -> (bids, asks)                           lists of (price, qty), best first

Flat lists are ``[price0, qty0, price1, qty1, ...]`` of ints scaled by 10**8 (see updates.py).
``capacity_levels`` (optional, default None = unbounded) applies the same truncation rule as
hftfeed.core.book.Book so the real book can be compared with it when a side overflows; leave it
None unless you test that rule.
"""


class RefBook(object):
    def __init__(self, capacity_levels=None):
        self.bids = {}
        self.asks = {}
        self.update_id = 0
        self.capacity_levels = capacity_levels
        self.truncated_levels = 0

    def load_snapshot(self, bids_flat, asks_flat, update_id):
        self.bids = {}
        self.asks = {}
        for side, flat in ((self.bids, bids_flat), (self.asks, asks_flat)):
            for i in range(0, len(flat), 2):
                if flat[i + 1]:
                    side[flat[i]] = flat[i + 1]
                else:
                    side.pop(flat[i], None)
        # A snapshot larger than the capacity keeps its best levels (same rule as Book).
        self._truncate(self.bids, best_is_high=True)
        self._truncate(self.asks, best_is_high=False)
        self.update_id = update_id

    def apply_levels(self, bids_flat, asks_flat):
        for i in range(0, len(bids_flat), 2):
            self._set(self.bids, bids_flat[i], bids_flat[i + 1], best_is_high=True)
        for i in range(0, len(asks_flat), 2):
            self._set(self.asks, asks_flat[i], asks_flat[i + 1], best_is_high=False)

    def top(self, n):
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return bids, asks

    def _set(self, side, price, qty, best_is_high):
        if qty == 0:
            side.pop(price, None)
            return
        if price in side or self.capacity_levels is None or len(side) < self.capacity_levels:
            side[price] = qty
            return
        # Full side, new price: keep the best `capacity_levels` levels; the one left out counts.
        worst = min(side) if best_is_high else max(side)
        self.truncated_levels += 1
        if (price > worst) if best_is_high else (price < worst):
            del side[worst]
            side[price] = qty

    def _truncate(self, side, best_is_high):
        if self.capacity_levels is None:
            return
        while len(side) > self.capacity_levels:
            del side[min(side) if best_is_high else max(side)]
            self.truncated_levels += 1
