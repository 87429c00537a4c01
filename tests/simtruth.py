"""Ground truth from a simulator journal, for end-to-end tests and the latency benchmark.

    truth = load_journal(path)
    truth.book_at("BTCUSDT", u).top(20)        -> (bids, asks) lists of (price, qty), best first
    truth.trades["BTCUSDT"][trade_id]          -> (price, qty, side)
    truth.quotes["BTCUSDT"][u]                 -> (bid_px, bid_qty, ask_px, ask_qty)
    truth.send_ns_by_update["BTCUSDT"][u]      -> send_ns of the depth event that ended at u

``book_at(symbol, u)`` is the simulator's book right after the depth event whose last update id
is ``u`` (every generated event counts, delivered or not: the book is the exchange's, not what a
client saw), or the initial book when ``u`` is its id and the journal was loaded with
``initial_book_ids=True``; KeyError if no event of that symbol ended at ``u``. The ids are the venue's own: Binance ``u``, Bybit ``u`` (one per message), OKX
``seqId``; quotes are keyed by Binance's ``u``, Bybit's ``seq``, OKX's ``seqId``. Books are rebuilt with
:class:`tests.refbook.RefBook` by replaying the journal forward from the initial book; a cursor
per symbol makes calls with increasing ``u`` cheap. All ints are scaled by 10**8.
"""

import json
from collections import deque
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refbook import RefBook  # noqa: E402  (tests/ is not a package)


def _flat(pairs):
    out = []
    for p, q in pairs:
        out.append(p)
        out.append(q)
    return out


class Truth(object):
    """Everything one simulator run generated, indexed for lookups (see module docstring)."""

    def __init__(self):
        self.header = {}
        self.symbols = []
        self.initial_books = {}     # symbol -> (update_id, bids_flat, asks_flat)
        self.depth_events = {}      # symbol -> [(U, u, bids_flat, asks_flat, send_ns, delivered)]
        self.trades = {}            # symbol -> {trade_id: (price, qty, side)}
        self.quotes = {}            # symbol -> {u: (bid_px, bid_qty, ask_px, ask_qty)}
        self.send_ns_by_update = {}  # symbol -> {u: send_ns}
        self.trade_send_ns = {}     # symbol -> {trade_id: send_ns}
        self.quote_send_ns = {}     # symbol -> {u: send_ns}
        self.faults = []            # fault records (dicts) in order
        self.snapshots = []         # REST snapshots the simulator served (dicts) in order
        self.bad_lines = 0          # unreadable lines (a writer killed mid-line)
        self._index = {}            # symbol -> {u: position in depth_events}
        self._cursor = {}           # symbol -> (position applied, RefBook)
        self.initial_book_ids = False  # book_at() also answers the initial books' ids

    # -------------------------------------------------------------- loading
    def _add(self, rec):
        kind = rec.get("kind")
        if kind == "start":
            self.header = rec
            self.symbols = list(rec.get("symbols", []))
            for s in self.symbols:
                self._ensure(s)
        elif kind == "book":
            s = rec["symbol"]
            self._ensure(s)
            self.initial_books[s] = (rec["update_id"], _flat(rec["bids"]), _flat(rec["asks"]))
        elif kind == "depth":
            s = rec["symbol"]
            self._ensure(s)
            evs = self.depth_events[s]
            self._index[s][rec["u"]] = len(evs)
            evs.append((rec["U"], rec["u"], _flat(rec["b"]), _flat(rec["a"]), rec["send_ns"],
                        rec.get("delivered", True)))
            self.send_ns_by_update[s][rec["u"]] = rec["send_ns"]
        elif kind == "trade":
            s = rec["symbol"]
            self._ensure(s)
            self.trades[s][rec["id"]] = (rec["price"], rec["qty"], rec["side"])
            self.trade_send_ns[s][rec["id"]] = rec["send_ns"]
        elif kind == "quote":
            s = rec["symbol"]
            self._ensure(s)
            self.quotes[s][rec["u"]] = (rec["bid_px"], rec["bid_qty"], rec["ask_px"], rec["ask_qty"])
            self.quote_send_ns[s][rec["u"]] = rec["send_ns"]
        elif kind == "fault":
            self.faults.append(rec)
        elif kind == "snapshot":
            self.snapshots.append(rec)

    def _ensure(self, s):
        if s not in self.depth_events:
            if s not in self.symbols:
                self.symbols.append(s)
            self.depth_events[s] = []
            self.trades[s] = {}
            self.quotes[s] = {}
            self.send_ns_by_update[s] = {}
            self.trade_send_ns[s] = {}
            self.quote_send_ns[s] = {}
            self._index[s] = {}

    # -------------------------------------------------------------- queries
    def book_at(self, symbol, update_id):
        """A RefBook copy of ``symbol``'s book right after the event ending at ``update_id``.

        With ``initial_book_ids`` (see :func:`load_journal`) ``update_id`` may also be the
        initial book's id: venues with in-stream snapshots (Bybit, OKX) send one at
        subscription time, possibly before the symbol's first event."""
        index = self._index[symbol]
        if self.initial_book_ids and update_id not in index and symbol in self.initial_books \
                and update_id == self.initial_books[symbol][0]:
            uid, bids, asks = self.initial_books[symbol]
            book = RefBook()
            book.load_snapshot(bids, asks, uid)
            return book
        pos = index[update_id]  # KeyError: no event of that symbol ended there
        applied, book = self._cursor.get(symbol, (-1, None))
        if book is None or applied > pos:
            uid, bids, asks = self.initial_books[symbol]
            book = RefBook()
            book.load_snapshot(bids, asks, uid)
            applied = -1
        evs = self.depth_events[symbol]
        for i in range(applied + 1, pos + 1):
            ev = evs[i]
            book.apply_levels(ev[2], ev[3])
            book.update_id = ev[1]
        self._cursor[symbol] = (pos, book)
        copy = RefBook()
        copy.bids = dict(book.bids)
        copy.asks = dict(book.asks)
        copy.update_id = book.update_id
        return copy

    def update_ids(self, symbol):
        """Last update ids of every depth event of ``symbol``, in order."""
        return [ev[1] for ev in self.depth_events[symbol]]

    def delivered_update_ids(self, symbol):
        return [ev[1] for ev in self.depth_events[symbol] if ev[5]]

    def faults_named(self, name):
        return [f for f in self.faults if f.get("fault") == name]


def load_journal(path, initial_book_ids=False):
    """Read a journal file into a :class:`Truth` (a truncated last line is ignored).

    ``initial_book_ids``: ``book_at`` also accepts each initial book's own id (in-stream snapshot
    venues may publish the book before its first event); otherwise that id is a KeyError."""
    truth = Truth()
    truth.initial_book_ids = bool(initial_book_ids)
    with open(str(path), "r", encoding="ascii") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                truth.bad_lines += 1  # the writer was killed mid-line: the rest still counts
                continue
            truth._add(rec)
    return truth


class JournalStream(object):
    """The simulator's books read forward from a journal, for runs too long to load whole.

    The 1-hour soak writes ~10**7 depth events; :class:`Truth` would hold them all. This reads
    the file lazily and answers ``top(symbol, u, n)`` like ``Truth.book_at(symbol, u).top(n)``
    (also for a book still at its initial id), provided each symbol's ``u`` never goes back
    between calls, which holds for one publisher's books of one instrument. Memory holds only
    the events read ahead of the symbol that lags most. KeyError: no event of that symbol ended
    at ``u``, or ``u`` is behind a book already returned."""

    READ_LINES = 512

    def __init__(self, path):
        self._fh = open(str(path), "r", encoding="ascii")
        self._books = {}       # symbol -> RefBook with every event read so far up to its cursor
        self._pending = {}     # symbol -> deque of (u, bids_flat, asks_flat) not yet applied
        self.bad_lines = 0
        self.events_read = 0

    def close(self):
        self._fh.close()

    def top(self, symbol, update_id, n):
        pending = self._pending.get(symbol)
        while pending is None:
            if not self._read_more():
                raise KeyError((symbol, update_id))
            pending = self._pending.get(symbol)
        book = self._books[symbol]
        while book.update_id < update_id:
            if not pending and not self._read_more():
                break
            if pending:
                u, bids, asks = pending.popleft()
                book.apply_levels(bids, asks)
                book.update_id = u
        if book.update_id != update_id:
            raise KeyError((symbol, update_id))
        return book.top(n)

    def _read_more(self):
        """Read the next lines into the per-symbol queues; False at the end of the file."""
        got = False
        for _ in range(self.READ_LINES):
            line = self._fh.readline()
            if not line:
                return got
            got = True
            try:
                rec = json.loads(line)
            except ValueError:
                self.bad_lines += 1      # the writer was killed mid-line
                continue
            kind = rec.get("kind")
            if kind == "depth":
                self.events_read += 1
                self._pending[rec["symbol"]].append((rec["u"], _flat(rec["b"]), _flat(rec["a"])))
            elif kind == "book":
                book = RefBook()
                book.load_snapshot(_flat(rec["bids"]), _flat(rec["asks"]), rec["update_id"])
                self._books[rec["symbol"]] = book
                self._pending[rec["symbol"]] = deque()
        return got
