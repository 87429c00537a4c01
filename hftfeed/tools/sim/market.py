"""Venue-neutral random-walk order book engine: the simulator's ground truth (pure, no I/O).

One :class:`MarketEngine` per symbol, deterministic from ``(seed, symbol)``: the same seed gives
the same sequence of book changes, trades and update ids on any interpreter, because the only
source of randomness is ``random.Random.random()`` (a Mersenne Twister whose output is fixed by
the integer seed) and no decision depends on the clock or on dict ordering.

Prices are kept in integer *ticks* and quantities in integer *lots* inside the engine; everything
it hands out is scaled by 10**8 like the rest of hftfeed (``price_scaled = ticks * tick_scaled``).
The book is never crossed: a bid is only ever inserted below the best ask and an ask above the
best bid, and trades only remove liquidity from the top of the opposite side.

Events are plain tuples (cheap to build on the hot path) tagged by their first item:

* ``(EV_DEPTH, symbol, first_id, last_id, bids_flat, asks_flat)`` -- the net level changes of one
  message, bids best (highest) first, asks best (lowest) first, qty 0 = level removed;
* ``(EV_TRADE, symbol, trade_id, price, qty, side)`` -- side is the aggressor, 1 buy / 2 sell;
* ``(EV_QUOTE, symbol, update_id, bid_px, bid_qty, ask_px, ask_qty)`` -- a new best bid/offer.

Update ids (``id_mode``). ``"steps"`` (default; Binance, OKX): every engine step consumes 1..3
ids, a depth event covers ``first_id .. last_id`` and quotes carry the id of their step.
``"message"`` (Bybit): every depth *message* consumes exactly one id (``first_id == last_id ==
previous + 1``, Bybit's ``u``) while the per-step counter becomes ``seq`` (Bybit's cross
sequence): quotes carry ``seq`` and depth events get it as a 7th item. The random draws are the
same in both modes, so one seed gives the same book evolution whatever the venue.
"""

import bisect
import random
import zlib

SCALE = 100000000  # every price and quantity handed out is an int scaled by 1e8

EV_DEPTH = 1
EV_TRADE = 2
EV_QUOTE = 3

SIDE_BUY = 1
SIDE_SELL = 2

# (tick_scaled, lot_scaled, start price scaled) for a few well-known symbols; others get a
# generic spec derived from the symbol name so that every symbol still looks plausible.
_KNOWN_SPECS = {
    "BTCUSDT": (1000000, 100000, 37000 * SCALE),        # tick 0.01, lot 0.001
    "ETHUSDT": (1000000, 1000000, 2000 * SCALE),        # tick 0.01, lot 0.01
    "BNBUSDT": (1000000, 10000000, 300 * SCALE),        # tick 0.01, lot 0.1
    "SOLUSDT": (1000000, 10000000, 100 * SCALE),
    "XRPUSDT": (10000, 100000000, 60000000),            # tick 0.0001, lot 1, price 0.6
    "NKNUSDT": (10000, 100000000, 35000000),
}


class SymbolSpec(object):
    """Static description of one instrument: tick and lot sizes and the starting mid price."""

    __slots__ = ("symbol", "tick_scaled", "lot_scaled", "start_px_scaled")

    def __init__(self, symbol, tick_scaled, lot_scaled, start_px_scaled):
        self.symbol = symbol
        self.tick_scaled = tick_scaled
        self.lot_scaled = lot_scaled
        self.start_px_scaled = start_px_scaled


def spec_for(symbol):
    """Return the :class:`SymbolSpec` for ``symbol`` (a known table, else derived from its name).

    OKX spells instruments with dashes (``BTC-USDT-SWAP``): the table is looked up without them
    (and without a ``SWAP`` suffix) so the same market gets the same tick, lot and price."""
    known = _KNOWN_SPECS.get(symbol)
    if known is None and "-" in symbol:
        bare = symbol.replace("-", "")
        known = _KNOWN_SPECS.get(bare[:-4] if bare.endswith("SWAP") else bare)
    if known is not None:
        return SymbolSpec(symbol, known[0], known[1], known[2])
    h = zlib.crc32(symbol.encode("ascii"))
    # Generic: tick 0.0001, lot 0.01, start between 1.0000 and 100.0000 (stable per name).
    start_ticks = 10000 + h % 990000
    return SymbolSpec(symbol, 10000, 1000000, start_ticks * 10000)


def seed_for(seed, symbol):
    """The integer RNG seed of one symbol's engine: stable across runs and interpreters."""
    return (int(seed) & 0xFFFFFFFF) * 4294967311 + zlib.crc32(symbol.encode("ascii"))


class MarketEngine(object):
    """Random-walk L2 book for one symbol; :meth:`generate` produces one message worth of events.

    Why bisect-sorted price lists plus dicts: most changes hit a level near the top, and the
    k-th best price is then an O(1) index, while a new price costs one C-level ``insort``.
    """

    def __init__(self, symbol, seed=1, depth_levels=200, spec=None, max_ids_per_step=3,
                 trade_prob=0.08, deep_prob=0.05, first_update_id=None, id_mode="steps"):
        if depth_levels < 4:
            raise ValueError("depth_levels must be >= 4, got %r" % (depth_levels,))
        if id_mode not in ("steps", "message"):
            raise ValueError("id_mode must be 'steps' or 'message', got %r" % (id_mode,))
        self.symbol = symbol
        self.spec = spec if spec is not None else spec_for(symbol)
        self.depth_levels = int(depth_levels)
        self.max_ids_per_step = max(1, int(max_ids_per_step))
        self.trade_prob = float(trade_prob)
        self.deep_prob = float(deep_prob)
        self._trade_or_deep_prob = self.trade_prob + self.deep_prob
        rng = random.Random(seed_for(seed, symbol))
        self._rnd = rng.random  # bound method: one attribute lookup less per draw
        self._tick = self.spec.tick_scaled
        self._lot = self.spec.lot_scaled
        self._base_lots = max(1, (SCALE // self._lot))  # ~1 unit of the base asset per level
        if first_update_id is None:
            first_update_id = 100000000 + int(self._rnd() * 900000000)
        self.last_update_id = int(first_update_id) - 1
        self.per_message_ids = id_mode == "message"
        # Bybit-style: u counts messages (smaller numbers, like Bybit's), seq counts steps.
        self.seq = self.last_update_id
        if self.per_message_ids:
            self.last_update_id = 1000000 + self.last_update_id % 9000000
        self.next_trade_id = 1000000 + int(self._rnd() * 9000000)
        self.bids = {}      # price ticks -> lots
        self.asks = {}
        self.bid_px = []    # ascending; best bid is the last item
        self.ask_px = []    # ascending; best ask is the first item
        self._ch_bids = {}  # pending net changes of the current message: ticks -> lots
        self._ch_asks = {}
        self.steps = 0
        self._build_initial_book()
        self._last_bbo = self._bbo_ticks()

    # ------------------------------------------------------------------ initial book
    def _rand_lots(self, distance):
        """A plausible level size: heavier a little further from the top."""
        r = self._rnd()
        return 1 + int(self._base_lots * (0.05 + r * r * 3.0) * (1.0 + distance / 40.0))

    def _gap(self):
        """Ticks between two neighbouring levels: mostly 1, sometimes a hole of 2-4."""
        return 1 if self._rnd() < 0.75 else 2 + int(self._rnd() * 3)

    def _build_initial_book(self):
        mid = self.spec.start_px_scaled // self._tick
        spread = 1 + int(self._rnd() * 2)
        bid = max(self.depth_levels * 5 + 1, mid)
        ask = bid + spread
        price = bid
        for i in range(self.depth_levels):
            self.bids[price] = self._rand_lots(i)
            price -= self._gap()
        price = ask
        for i in range(self.depth_levels):
            self.asks[price] = self._rand_lots(i)
            price += self._gap()
        self.bid_px = sorted(self.bids)
        self.ask_px = sorted(self.asks)

    # ------------------------------------------------------------------ level primitives
    def _set_bid(self, price, lots):
        if price not in self.bids:
            bisect.insort(self.bid_px, price)
        self.bids[price] = lots
        self._ch_bids[price] = lots

    def _set_ask(self, price, lots):
        if price not in self.asks:
            bisect.insort(self.ask_px, price)
        self.asks[price] = lots
        self._ch_asks[price] = lots

    def _del_bid(self, price):
        del self.bids[price]
        px = self.bid_px
        px.pop(bisect.bisect_left(px, price))  # list.pop, not del: cheap on PyPy too
        self._ch_bids[price] = 0

    def _del_ask(self, price):
        del self.asks[price]
        px = self.ask_px
        px.pop(bisect.bisect_left(px, price))
        self._ch_asks[price] = 0

    def _rebalance(self):
        """Keep exactly ``depth_levels`` a side: trim or extend at the far end (deep changes)."""
        n = self.depth_levels
        while len(self.bid_px) > n:
            self._del_bid(self.bid_px[0])
        while len(self.ask_px) > n:
            self._del_ask(self.ask_px[-1])
        while len(self.bid_px) < n:
            far = self.bid_px[0] - self._gap() if self.bid_px else self.ask_px[0] - 1
            if far < 1:
                break
            self._set_bid(far, self._rand_lots(n))
        while len(self.ask_px) < n:
            far = self.ask_px[-1] + self._gap() if self.ask_px else self.bid_px[-1] + 1
            self._set_ask(far, self._rand_lots(n))

    # ------------------------------------------------------------------ actions
    def _near_top(self):
        """Change one level near the top: new size, cancel, or a new order (maybe improving)."""
        rnd = self._rnd
        is_bid = rnd() < 0.5
        spread = self.ask_px[0] - self.bid_px[-1]
        if spread > 1 and rnd() < 0.2 * spread:
            # Liquidity flows back into a wide spread: keeps the spread mean-reverting while
            # the mid still random-walks (trades and cancels move the top, this refills it).
            cand = self.bid_px[-1] + 1 + int(rnd() * (spread - 1))
            if is_bid:
                self._set_bid(cand, self._rand_lots(0))
            else:
                self._set_ask(cand, self._rand_lots(0))
            return
        k = int(rnd() * rnd() * 12)  # skewed towards the top of the book
        action = rnd()
        if action < 0.6:
            # The most common change: a new size at an existing level. Inlined (no _set_* and
            # _rand_lots calls, same RNG draws) because it runs for most engine steps.
            r = rnd()
            lots = 1 + int(self._base_lots * (0.05 + r * r * 3.0) * (1.0 + k / 40.0))
            if is_bid:
                px = self.bid_px
                price = px[-1 - k] if k < len(px) else px[0]
                self.bids[price] = lots
                self._ch_bids[price] = lots
            else:
                px = self.ask_px
                price = px[k] if k < len(px) else px[-1]
                self.asks[price] = lots
                self._ch_asks[price] = lots
            return
        if is_bid:
            px = self.bid_px
            k = min(k, len(px) - 1)
            price = px[-1 - k]
            if action < 0.78 and len(px) > 2:
                self._del_bid(price)
            else:
                cand = px[-1] + 1 - int(rnd() * 8)  # may improve the best bid by one tick
                if 0 < cand < self.ask_px[0] and cand not in self.bids:
                    self._set_bid(cand, self._rand_lots(0))
                else:
                    self._set_bid(price, self._rand_lots(k))
        else:
            px = self.ask_px
            k = min(k, len(px) - 1)
            price = px[k]
            if action < 0.78 and len(px) > 2:
                self._del_ask(price)
            else:
                cand = px[0] - 1 + int(rnd() * 8)
                if cand > self.bid_px[-1] and cand not in self.asks:
                    self._set_ask(cand, self._rand_lots(0))
                else:
                    self._set_ask(price, self._rand_lots(k))

    def _deep(self):
        """An occasional change far from the top: a resize, or a cancel replaced further out."""
        rnd = self._rnd
        n = len(self.bid_px)
        if rnd() < 0.5:
            i = int(rnd() * (n // 2))  # index into the deeper half (ascending list)
            price = self.bid_px[i]
            if rnd() < 0.5:
                self._set_bid(price, self._rand_lots(n - i))
            else:
                self._del_bid(price)
        else:
            m = len(self.ask_px)
            i = m - 1 - int(rnd() * (m // 2))
            price = self.ask_px[i]
            if rnd() < 0.5:
                self._set_ask(price, self._rand_lots(i))
            else:
                self._del_ask(price)

    def _trade(self, out):
        """An aggressive order eats (part of) the opposite top level; emits one trade event."""
        rnd = self._rnd
        if rnd() < 0.5:
            side = SIDE_BUY
            price = self.ask_px[0]
            avail = self.asks[price]
            lots = avail if (avail == 1 or rnd() < 0.35) else 1 + int(rnd() * (avail - 1))
            if lots >= avail:
                self._del_ask(price)
            else:
                self._set_ask(price, avail - lots)
        else:
            side = SIDE_SELL
            price = self.bid_px[-1]
            avail = self.bids[price]
            lots = avail if (avail == 1 or rnd() < 0.35) else 1 + int(rnd() * (avail - 1))
            if lots >= avail:
                self._del_bid(price)
            else:
                self._set_bid(price, avail - lots)
        tid = self.next_trade_id
        self.next_trade_id = tid + 1
        out.append((EV_TRADE, self.symbol, tid, price * self._tick, lots * self._lot, side))

    # ------------------------------------------------------------------ stepping
    def _bbo_ticks(self):
        b = self.bid_px[-1]
        a = self.ask_px[0]
        return (b, self.bids[b], a, self.asks[a])

    def step(self, out):
        """Advance the book by one matching-engine step (1..max_ids_per_step update ids).

        Trade and quote events are appended to ``out`` in the order they happen; level changes
        accumulate until :meth:`take_depth` (so several steps net out into one depth message).
        """
        rnd = self._rnd
        r = rnd()
        if r < self.trade_prob:
            self._trade(out)
        elif r < self._trade_or_deep_prob:
            self._deep()
        else:
            self._near_top()
            if rnd() < 0.3:
                self._near_top()
        n = self.depth_levels
        if len(self.bid_px) != n or len(self.ask_px) != n:  # skip the call when nothing moved
            self._rebalance()
        if self.per_message_ids:
            self.seq += 1 + int(rnd() * self.max_ids_per_step)
            qid = self.seq
        else:
            self.last_update_id += 1 + int(rnd() * self.max_ids_per_step)
            qid = self.last_update_id
        self.steps += 1
        # Compare the best levels field by field: no tuple allocated on the common no-change path.
        b = self.bid_px[-1]
        a = self.ask_px[0]
        bq = self.bids[b]
        aq = self.asks[a]
        last = self._last_bbo
        if b != last[0] or bq != last[1] or a != last[2] or aq != last[3]:
            self._last_bbo = (b, bq, a, aq)
            t = self._tick
            l = self._lot
            out.append((EV_QUOTE, self.symbol, qid, b * t, bq * l, a * t, aq * l))

    def take_depth(self, first_id):
        """Return the depth event covering ``first_id .. last_update_id`` and reset the changes."""
        t = self._tick
        l = self._lot
        bids = []
        ch = self._ch_bids
        if ch:
            if len(ch) == 1:  # the common case: no sort needed
                for p, q in ch.items():
                    bids = [p * t, q * l]
            else:
                for p in sorted(ch, reverse=True):
                    bids.append(p * t)
                    bids.append(ch[p] * l)
            self._ch_bids = {}
        asks = []
        ch = self._ch_asks
        if ch:
            if len(ch) == 1:
                for p, q in ch.items():
                    asks = [p * t, q * l]
            else:
                for p in sorted(ch):
                    asks.append(p * t)
                    asks.append(ch[p] * l)
            self._ch_asks = {}
        if self.per_message_ids:
            return (EV_DEPTH, self.symbol, first_id, self.last_update_id, bids, asks, self.seq)
        return (EV_DEPTH, self.symbol, first_id, self.last_update_id, bids, asks)

    def generate(self, nsteps, out):
        """Run ``nsteps`` steps and append their trades, quotes and one depth event to ``out``."""
        first_id = self.last_update_id + 1
        step = self.step
        for _ in range(nsteps):
            step(out)
        if self.per_message_ids:
            self.last_update_id = first_id  # one id per message (Bybit's "u")
        out.append(self.take_depth(first_id))

    def draw_steps(self, max_steps):
        """How many engine steps the next message aggregates (1..max_steps), from the same RNG."""
        if max_steps <= 1:
            return 1
        return 1 + int(self._rnd() * max_steps)

    # ------------------------------------------------------------------ views
    def snapshot(self, limit):
        """``(last_update_id, bids_flat, asks_flat)`` of the top ``limit`` levels, scaled ints."""
        t = self._tick
        l = self._lot
        bids = []
        px = self.bid_px
        for i in range(len(px) - 1, max(-1, len(px) - 1 - limit), -1):
            p = px[i]
            bids.append(p * t)
            bids.append(self.bids[p] * l)
        asks = []
        for p in self.ask_px[:limit]:
            asks.append(p * t)
            asks.append(self.asks[p] * l)
        return (self.last_update_id, bids, asks)

    def best(self):
        """``(bid_px, bid_qty, ask_px, ask_qty)`` scaled."""
        b, bq, a, aq = self._bbo_ticks()
        return (b * self._tick, bq * self._lot, a * self._tick, aq * self._lot)

    def is_crossed(self):
        return self.bid_px[-1] >= self.ask_px[0]
