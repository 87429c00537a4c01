"""The simulator's journal: a JSON-lines record of everything it generated (pure file I/O).

It is the truth the end-to-end tests and the latency benchmark compare against
(``tests/simtruth.py``), and the input of ``--replay``. Layout, one JSON object a line:

1. ``{"kind":"start","seed":..,"venue":"binance","symbols":[..],"scale":100000000, ...}``
2. one ``{"kind":"book","symbol":..,"update_id":..,"bids":[[p,q],..],"asks":[..]}`` per symbol,
   before any event (the engine's full initial book);
3. then, in generation order, whether or not a fault suppressed delivery::

     {"kind":"depth","symbol":..,"U":..,"u":..,"b":[[p,q],..],"a":[..],"send_ns":..,"delivered":true}
     {"kind":"trade","symbol":..,"id":..,"price":..,"qty":..,"side":1|2,"send_ns":..}
     {"kind":"quote","symbol":..,"u":..,"bid_px":..,"bid_qty":..,"ask_px":..,"ask_qty":..,"send_ns":..}
     {"kind":"fault","fault":NAME,"send_ns":.., ...details}
     {"kind":"snapshot","symbol":..,"update_id":..,"limit":..,"send_ns":..,"stale":false}

Prices and quantities are ints scaled by 10**8; ``send_ns`` is ``time.time_ns()`` taken right
before the frames of that batch were written to the transports. Lines are buffered and written in
batches (a write per event would cost more than generating it), and flushed on :meth:`flush` /
:meth:`close`.
"""

import json
import logging
import os

from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SCALE

log = logging.getLogger("hftfeed.sim.journal")

_BATCH_LINES = 2048  # lines buffered in memory before one write() to the file


def _pairs(flat):
    # "[p,q],[p,q]" by string formatting: json.dumps is several times slower on this path, and
    # most depth events carry 0 or 1 level a side (no list, no join).
    n = len(flat)
    if n == 0:
        return ""
    if n == 2:
        return "[%d,%d]" % (flat[0], flat[1])
    return ",".join(["[%d,%d]" % (flat[i], flat[i + 1]) for i in range(0, n, 2)])


def format_event(ev, send_ns, delivered=True):
    """One journal line (without newline) for engine event ``ev``."""
    kind = ev[0]
    if kind == EV_DEPTH:
        return ('{"kind":"depth","symbol":"%s","U":%d,"u":%d,"b":[%s],"a":[%s],"send_ns":%d,'
                '"delivered":%s}' % (ev[1], ev[2], ev[3], _pairs(ev[4]), _pairs(ev[5]), send_ns,
                                     "true" if delivered else "false"))
    if kind == EV_TRADE:
        return ('{"kind":"trade","symbol":"%s","id":%d,"price":%d,"qty":%d,"side":%d,"send_ns":%d}'
                % (ev[1], ev[2], ev[3], ev[4], ev[5], send_ns))
    if kind == EV_QUOTE:
        return ('{"kind":"quote","symbol":"%s","u":%d,"bid_px":%d,"bid_qty":%d,"ask_px":%d,'
                '"ask_qty":%d,"send_ns":%d}' % (ev[1], ev[2], ev[3], ev[4], ev[5], ev[6], send_ns))
    raise ValueError("unknown event kind %r" % (kind,))


class JournalWriter(object):
    """Append-only journal file with batched writes."""

    def __init__(self, path, seed, venue, symbols, extra=None):
        self.path = str(path)
        # A raw fd and os.write of one encoded batch: PyPy's text-file layer measured ~3x slower
        # per line than formatting it, a raw write of the joined batch much less.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self._lines = []
        self.lines_written = 0
        self.closed = False
        header = {"kind": "start", "seed": seed, "venue": venue, "symbols": list(symbols),
                  "scale": SCALE}
        if extra:
            for k, v in extra.items():
                header.setdefault(k, v)
        self._add(json.dumps(header, separators=(",", ":")))

    def _add(self, line):
        self._lines.append(line)
        if len(self._lines) >= _BATCH_LINES:
            self._write_batch()

    def _write_batch(self):
        lines = self._lines
        if not lines:
            return
        lines.append("")  # the final newline
        data = "\n".join(lines).encode("ascii")
        self.lines_written += len(lines) - 1
        self._lines = []
        while data:
            n = os.write(self._fd, data)
            data = data[n:] if n < len(data) else b""

    def write_book(self, symbol, update_id, bids, asks):
        """The full book of ``symbol`` as of ``update_id`` (written once per symbol at start)."""
        self._add('{"kind":"book","symbol":"%s","update_id":%d,"bids":[%s],"asks":[%s]}'
                  % (symbol, update_id, _pairs(bids), _pairs(asks)))

    def write_event(self, ev, send_ns, delivered=True):
        self._add(format_event(ev, send_ns, delivered))

    def write_events(self, rows, send_ns):
        """Journal ``[(event, delivered)]`` of one batch, all with the batch's ``send_ns``.

        One call per batch, formats inlined: it runs for every generated event when recording.
        """
        lines = self._lines
        append = lines.append
        for ev, delivered in rows:
            kind = ev[0]
            if kind == EV_DEPTH:
                append('{"kind":"depth","symbol":"%s","U":%d,"u":%d,"b":[%s],"a":[%s],'
                       '"send_ns":%d,"delivered":%s}'
                       % (ev[1], ev[2], ev[3], _pairs(ev[4]), _pairs(ev[5]), send_ns,
                          "true" if delivered else "false"))
            elif kind == EV_QUOTE:
                append('{"kind":"quote","symbol":"%s","u":%d,"bid_px":%d,"bid_qty":%d,'
                       '"ask_px":%d,"ask_qty":%d,"send_ns":%d}'
                       % (ev[1], ev[2], ev[3], ev[4], ev[5], ev[6], send_ns))
            else:
                append(format_event(ev, send_ns, delivered))
        if len(lines) >= _BATCH_LINES:
            self._write_batch()

    def write_fault(self, name, send_ns, details=None):
        rec = {"kind": "fault", "fault": name, "send_ns": send_ns}
        if details:
            for k, v in details.items():
                rec.setdefault(k, v)
        self._add(json.dumps(rec, separators=(",", ":"), sort_keys=False, default=str))

    def write_snapshot(self, symbol, update_id, limit, send_ns, stale=False):
        """A REST snapshot was served (``stale`` when a fault served an old one)."""
        self._add('{"kind":"snapshot","symbol":"%s","update_id":%d,"limit":%d,"send_ns":%d,'
                  '"stale":%s}' % (symbol, update_id, limit, send_ns, "true" if stale else "false"))

    def flush(self):
        """Write buffered lines to the file (called periodically and on shutdown)."""
        if self.closed:
            return
        self._write_batch()

    def close(self):
        if self.closed:
            return
        self.flush()
        os.close(self._fd)
        self.closed = True


def read_journal(path):
    """Yield each journal record as a dict; a truncated last line (crash) is logged and skipped."""
    with open(str(path), "r", encoding="ascii") as fh:
        for lineno, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                yield json.loads(line)
            except ValueError as exc:
                log.warning("journal %s line %d unreadable (%s): skipped", path, lineno, exc)
