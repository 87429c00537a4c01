"""Where the simulator's events come from: the synthetic engines, a journal, or a real capture.

Every source has the same small interface the server drives (pure: no asyncio, no socket):

* ``symbols`` -- upper-case venue symbols it serves;
* ``pull(elapsed_s, out)`` -- append the events due ``elapsed_s`` seconds after the source started
  (engine event tuples from ``market``, or ``(EV_RAW, stream, combined_text, raw_text)`` for a
  capture, whose exact bytes are re-served); returns the number of depth messages appended;
* ``snapshot(symbol, limit)`` -- ``(last_update_id, bids_flat, asks_flat)``, or raw body bytes;
* ``finished`` -- a replay that has served everything; ``start_on_connect`` -- replays wait for
  the first WebSocket client so that it sees the recording from its first message.
"""

import json
import logging
from urllib.parse import parse_qs, urlsplit

from hftfeed.tools.sim.journal import read_journal
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, MarketEngine

log = logging.getLogger("hftfeed.sim.sources")

EV_RAW = 9


class SyntheticSource(object):
    """Random-walk engines, one per symbol, producing ``rate`` depth messages per second in total.

    Symbols take turns (round robin), so the content is a deterministic function of the seed and
    of how many messages were produced, never of timing.
    """

    start_on_connect = False
    finished = False

    def __init__(self, symbols, seed=1, rate=None, depth_levels=200, max_steps_per_msg=3,
                 max_batch=None, id_mode="steps"):
        self.symbols = list(symbols)
        self.seed = seed
        self.rate = float(rate) if rate else 100.0 * len(self.symbols)
        self.max_steps_per_msg = max(1, int(max_steps_per_msg))
        self.engines = [MarketEngine(s, seed=seed, depth_levels=depth_levels, id_mode=id_mode)
                        for s in self.symbols]
        self.by_symbol = dict(zip(self.symbols, self.engines))
        # A tick never produces more than ~10 ms worth of messages: a stalled or overloaded loop
        # does not burst (huge writes measured slower than a steady trickle of small ones).
        self.max_batch = int(max_batch) if max_batch else max(1, int(self.rate * 0.01))
        self.max_backlog = max(2 * self.max_batch, int(self.rate))
        self.produced = 0
        self.behind_msgs = 0     # messages skipped because the loop could not keep up
        self._rr = 0

    def initial_books(self):
        """``[(symbol, update_id, bids, asks)]`` of the full books before any event."""
        return [(e.symbol,) + e.snapshot(len(e.bid_px) + len(e.ask_px)) for e in self.engines]

    def pull(self, elapsed_s, out):
        target = int(elapsed_s * self.rate)
        due = target - self.produced
        if due <= 0:
            return 0
        if due > self.max_backlog:
            # More than a second behind: the loop cannot keep this rate; forget the excess
            # rather than bursting it out later (counted, reported by /_sim/status).
            self.behind_msgs += due - self.max_batch
            self.produced = target - self.max_batch
            due = self.max_batch
        elif due > self.max_batch:
            due = self.max_batch  # catch up over the next ticks (the server does not idle)
        return self.generate(due, out)

    def generate(self, n_msgs, out):
        """Append exactly ``n_msgs`` depth messages (with their trades and quotes) to ``out``."""
        engines = self.engines
        n_eng = len(engines)
        rr = self._rr
        max_steps = self.max_steps_per_msg
        for _ in range(n_msgs):
            eng = engines[rr]
            rr += 1
            if rr == n_eng:
                rr = 0
            eng.generate(1 if max_steps == 1 else eng.draw_steps(max_steps), out)
        self._rr = rr
        self.produced += n_msgs
        return n_msgs

    def snapshot(self, symbol, limit):
        return self.by_symbol[symbol].snapshot(limit)

    def last_update_id(self, symbol):
        return self.by_symbol[symbol].last_update_id


class BurstSource(SyntheticSource):
    """Binance ``@depth@100ms`` timing: every symbol's depth diff at the same boundary.

    Every ``1 / boundaries_per_s`` seconds, one depth message per symbol (``len(symbols) *
    boundaries_per_s`` depth messages a second), all in the same tick, so they leave in one
    burst; in between, each symbol's engine takes ``steps_per_boundary`` steps at evenly spaced
    times (symbols interleaved), and the trades and best-quote changes of those steps go out as
    they happen. A depth message nets out the steps since the previous boundary, as the venue's
    aggregated diff does. Like the steady shape, the content is a function of the seed and of
    how many boundaries were produced, never of timing.
    """

    def __init__(self, symbols, seed=1, boundaries_per_s=10.0, depth_levels=200,
                 steps_per_boundary=3, id_mode="steps"):
        symbols = list(symbols)
        boundaries_per_s = float(boundaries_per_s)
        SyntheticSource.__init__(self, symbols, seed=seed, rate=len(symbols) * boundaries_per_s,
                                 depth_levels=depth_levels, max_steps_per_msg=steps_per_boundary,
                                 id_mode=id_mode)
        self.boundary_s = 1.0 / boundaries_per_s
        self.steps_per_boundary = max(1, int(steps_per_boundary))
        self.max_batch = 2 * len(self.engines)     # two boundaries in one pull = behind
        self.boundaries = 0          # boundaries produced
        self._slot = 0               # steps taken since the last boundary (all symbols)
        self._first_ids = [e.last_update_id + 1 for e in self.engines]

    def pull(self, elapsed_s, out):
        engines = self.engines
        n_eng = len(engines)
        steps_total = self.steps_per_boundary * n_eng
        boundary_s = self.boundary_s
        due_boundaries = int(elapsed_s / boundary_s)
        if due_boundaries - self.boundaries > 1.0 / boundary_s:
            # More than a second behind: forget the excess boundaries rather than bursting them
            # out later (counted, reported by /_sim/status like the steady shape's).
            skipped = due_boundaries - self.boundaries - 1
            self.behind_msgs += skipped * n_eng
            self.boundaries += skipped
            self._slot = 0
        produced = 0
        while True:
            k = self.boundaries
            slot = self._slot
            if slot < steps_total:
                if (k + (slot + 1.0) / (steps_total + 1)) * boundary_s > elapsed_s:
                    break
                engines[slot % n_eng].step(out)
                self._slot = slot + 1
                continue
            if (k + 1) * boundary_s > elapsed_s:
                break
            first_ids = self._first_ids
            for i in range(n_eng):
                eng = engines[i]
                if eng.per_message_ids:
                    eng.last_update_id = first_ids[i]     # one id per message (Bybit's "u")
                out.append(eng.take_depth(first_ids[i]))
                first_ids[i] = eng.last_update_id + 1
            self.boundaries = k + 1
            self._slot = 0
            produced += n_eng
        self.produced += produced
        return produced


class _DictBook(object):
    """Plain dict book for replays (the journal source must answer REST snapshots)."""

    def __init__(self, update_id, bids, asks):
        self.update_id = update_id
        self.bids = {bids[i]: bids[i + 1] for i in range(0, len(bids), 2) if bids[i + 1]}
        self.asks = {asks[i]: asks[i + 1] for i in range(0, len(asks), 2) if asks[i + 1]}

    def apply(self, last_id, bids, asks):
        for side, flat in ((self.bids, bids), (self.asks, asks)):
            for i in range(0, len(flat), 2):
                if flat[i + 1]:
                    side[flat[i]] = flat[i + 1]
                else:
                    side.pop(flat[i], None)
        self.update_id = last_id

    def snapshot(self, limit):
        bids = []
        for p in sorted(self.bids, reverse=True)[:limit]:
            bids.append(p)
            bids.append(self.bids[p])
        asks = []
        for p in sorted(self.asks)[:limit]:
            asks.append(p)
            asks.append(self.asks[p])
        return (self.update_id, bids, asks)


def _flat(pairs):
    out = []
    for p, q in pairs:
        out.append(p)
        out.append(q)
    return out


class JournalSource(object):
    """Re-serves a recorded journal with its original timing (scaled by ``speed``).

    Depth events that a fault kept from delivery in the recording are applied to the book (the
    REST snapshot stays the exchange's truth) but not sent, so clients see what they saw then.
    """

    start_on_connect = True

    def __init__(self, path, speed=1.0):
        self.speed = float(speed) if speed and speed > 0 else 1.0
        self.header = {}
        self.symbols = []
        self.books = {}
        self._events = []  # (offset_ns, event tuple, delivered)
        first_ns = None
        for rec in read_journal(path):
            kind = rec.get("kind")
            if kind == "start":
                self.header = rec
                self.symbols = list(rec.get("symbols", []))
            elif kind == "book":
                self.books[rec["symbol"]] = _DictBook(rec["update_id"], _flat(rec["bids"]),
                                                      _flat(rec["asks"]))
            elif kind in ("depth", "trade", "quote"):
                ns = rec["send_ns"]
                if first_ns is None:
                    first_ns = ns
                self._events.append((ns - first_ns, _event_from_record(rec),
                                     rec.get("delivered", True)))
        if not self.symbols:
            self.symbols = sorted(self.books)
        missing = [s for s in self.symbols if s not in self.books]
        if missing:
            raise ValueError("journal %s has no initial book for %s" % (path, ", ".join(missing)))
        self._idx = 0
        self.finished = not self._events

    def initial_books(self):
        return [(s,) + self.books[s].snapshot(1 << 30) for s in self.symbols]

    def pull(self, elapsed_s, out):
        limit_ns = elapsed_s * 1e9 * self.speed
        events = self._events
        i = self._idx
        n = len(events)
        depth = 0
        while i < n and events[i][0] <= limit_ns:
            _off, ev, delivered = events[i]
            if ev[0] == EV_DEPTH:
                self.books[ev[1]].apply(ev[3], ev[4], ev[5])
                depth += 1
            if delivered:
                out.append(ev)
            i += 1
        self._idx = i
        self.finished = i >= n
        return depth

    def snapshot(self, symbol, limit):
        return self.books[symbol].snapshot(limit)

    def last_update_id(self, symbol):
        return self.books[symbol].update_id


def _event_from_record(rec):
    kind = rec["kind"]
    if kind == "depth":
        return (EV_DEPTH, rec["symbol"], rec["U"], rec["u"], _flat(rec["b"]), _flat(rec["a"]))
    if kind == "trade":
        return (EV_TRADE, rec["symbol"], rec["id"], rec["price"], rec["qty"], rec["side"])
    return (EV_QUOTE, rec["symbol"], rec["u"], rec["bid_px"], rec["bid_qty"], rec["ask_px"],
            rec["ask_qty"])


class CaptureSource(object):
    """Re-serves a real venue capture (``<ts>: <combined JSON>`` lines) byte for byte.

    Snapshots come from the matching ``.http`` capture (``URL -> ts: body``) and are served as
    recorded whatever the requested limit.
    """

    start_on_connect = True

    def __init__(self, ws_path, http_path=None, speed=1.0):
        self.speed = float(speed) if speed and speed > 0 else 1.0
        self._events = []   # (offset_s, (EV_RAW, stream, combined_text, raw_text))
        self.snapshots = {}
        symbols = []
        first_ts = None
        with open(str(ws_path), "r", encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.rstrip("\r\n")
                if lineno == 1 and " <-> " in line:
                    continue  # "URL <-> connect_time" header line
                ts_text, sep, text = line.partition(": ")
                if not sep:
                    continue
                try:
                    ts = float(ts_text)
                    stream, raw = _split_combined(text)
                except ValueError as exc:
                    log.warning("capture %s line %d skipped: %s", ws_path, lineno, exc)
                    continue
                if first_ts is None:
                    first_ts = ts
                sym = stream.partition("@")[0].upper()
                if sym not in symbols:
                    symbols.append(sym)
                self._events.append((ts - first_ts, (EV_RAW, stream, text, raw)))
        if http_path:
            with open(str(http_path), "r", encoding="utf-8") as fh:
                for line in fh:
                    head, sep, body = line.rstrip("\r\n").partition(": ")
                    if not sep:
                        continue
                    url = head.partition(" -> ")[0]
                    sym = parse_qs(urlsplit(url).query).get("symbol", [""])[0]
                    if sym:
                        self.snapshots[sym] = body.encode("utf-8")
                        if sym not in symbols:
                            symbols.append(sym)
        self.symbols = symbols
        self._idx = 0
        self.finished = not self._events

    def initial_books(self):
        return []

    def pull(self, elapsed_s, out):
        limit = elapsed_s * self.speed
        events = self._events
        i = self._idx
        n = len(events)
        count = 0
        while i < n and events[i][0] <= limit:
            out.append(events[i][1])
            i += 1
            count += 1
        self._idx = i
        self.finished = i >= n
        return count

    def snapshot(self, symbol, limit):
        body = self.snapshots.get(symbol)
        if body is None:
            raise KeyError(symbol)
        return body

    def last_update_id(self, symbol):
        return 0


def _split_combined(text):
    """``(stream, raw data text)`` of a combined-stream message, slicing the exact inner bytes."""
    obj = json.loads(text)
    if not isinstance(obj, dict) or "stream" not in obj or "data" not in obj:
        raise ValueError("not a combined stream message")
    prefix = '{"stream":"%s","data":' % obj["stream"]
    if text.startswith(prefix) and text.endswith("}"):
        raw = text[len(prefix):-1]
    else:
        raw = json.dumps(obj["data"], separators=(",", ":"))
    return obj["stream"], raw
