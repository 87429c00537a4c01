"""UDP receiver for the hftfeed wire format: sequence gaps, restarts, latency and a book view.

``python3 hftfeed.py monitor --listen ADDR:PORT`` (or ``python3 -m hftfeed.tools.monitor ...``) binds a
unicast address or joins a multicast group, accounts every datagram and prints one report per
interval (human text, or one JSON object per line with ``--json``), then a summary on exit.
:class:`FeedMonitor` is the same receiver for in-process use (benchmark, tests).

Why the receive path looks the way it does (it must keep up with >= 100k messages/s on PyPy):

* one non-blocking socket drained with ``recv_into`` a preallocated 64 KiB buffer; a selector
  only sleeps when the socket is empty;
* each datagram is checked against every structural rule of PROTOCOL.md (the same rules as
  ``wire.decode_packet``, so a datagram the monitor accepts is one the reference decoder
  accepts), reading only length/type bytes; then message headers are read with one precompiled
  ``Struct``. No message object is built on the hot path: the latest ``B`` message of each
  instrument is kept as raw bytes and decoded with ``wire.decode_packet`` only when the view
  asks for it (once per instrument per report);
* ``recv_into`` rather than ``recvfrom_into``: the sender's address is not needed, and this
  saves an address tuple per datagram;
* under PyPy, ``main`` first runs the receive path on synthetic traffic (``warm_up_jit``), so
  the JIT has compiled it before the first real datagram arrives.

Latencies (LatencyHistogram, ns): ``latency_net`` = wall time the datagram was read minus the
packet's ``send_ns`` (publisher to monitor; hosts' clocks must agree), ``latency_daemon`` =
packet ``send_ns`` minus each ``B``/``T``/``Q`` message's ``recv_ns`` (exchange frame read to
send, inside the daemon; messages with ``recv_ns`` 0 are left out).

Sequencing follows PROTOCOL.md "Packet": ``seq`` counts messages; a jump forward inside one
session is a gap of ``seq - expected`` missing messages; a packet that fills an earlier gap is
out of order (its messages are counted as recovered); one whose messages were all seen already is
a duplicate; a new, larger ``session`` on a channel is a publisher restart (a restart at seq 1 is
not a gap); a smaller ``session`` is a stale or second publisher and is only counted.
"""

import logging
import platform
import selectors
import socket
import struct
import time

from hftfeed.codecs import wire
from hftfeed.errors import WireError
from hftfeed.runtime.stats import LatencyHistogram
from hftfeed.venues import registry

from hftfeed.tools.monitor.udp import DEFAULT_RCVBUF_BYTES, open_udp_socket

log = logging.getLogger("hftfeed.monitor")

IS_PYPY = platform.python_implementation() == "PyPy"
RECV_BUFFER_BYTES = 65536           # > the largest UDP payload (65507): recv_into never truncates
MAX_DATAGRAMS_PER_POLL = 4096       # bound one poll() so reports stay on time under a flood
LATENCY_PERCENTILES = (50, 99, 99.9)
MAX_HOLES_PER_CHANNEL = 64          # remembered gaps, to tell late (reordered) from duplicate
MAX_DECODE_ERROR_LOGS = 10          # then decode errors are only counted

_PACKET_HEADER = struct.Struct("<2sBBHHIIQQ")  # PROTOCOL.md "Packet" table, 32 bytes
# PROTOCOL.md message header, only what the monitor needs: length, type, venue, instrument,
# (flags, exch_ns skipped), recv_ns -- one unpack per message, no tuple of unused fields.
_MSG_PEEK = struct.Struct("<HBBH10xQ")
_LEVEL = struct.Struct("<qq")

_TYPE_B = wire.TYPE_BOOK
_STATE_LIVE = wire.STATE_LIVE
_TYPE_T = wire.TYPE_TRADE
_TYPE_Q = wire.TYPE_QUOTE
_TYPE_S = wire.TYPE_STATUS
_TYPE_I = wire.TYPE_INSTRUMENT
_EOS = wire.PACKET_FLAG_END_OF_SESSION

# Exact length of every fixed-size type (PROTOCOL.md "Message bodies"); 0 = variable or unknown.
_FIXED_LENGTH = [0] * 256
_FIXED_LENGTH[_TYPE_T] = wire.TRADE_LEN
_FIXED_LENGTH[_TYPE_Q] = wire.QUOTE_LEN
_FIXED_LENGTH[_TYPE_S] = wire.STATUS_LEN
_FIXED_LENGTH[_TYPE_I] = wire.INSTRUMENT_LEN

STATE_NAMES = {wire.STATE_LIVE: "live", wire.STATE_RESYNC: "resync",
               wire.STATE_DISCONNECTED: "disconnected"}

# What the sequencer lets the message loop do with a packet.
_APPLY = 0        # in order (or after a gap): count messages, update the views
_COUNT_ONLY = 1   # late, fills a gap: count messages, keep the (newer) views
_SKIP = 2         # duplicate or stale session: messages already seen or not ours

# Interval counters: reset by interval_report(), accumulated into the totals.
_COUNTERS = ("packets", "bytes", "messages", "heartbeats", "end_of_session", "gaps",
             "missing_messages", "duplicates", "out_of_order", "recovered_messages", "restarts",
             "stale_session_packets", "decode_errors", "filtered_packets", "recv_errors")

# A packet header with count 1, to decode one stored message with the reference decoder.
_SINGLE_MESSAGE_HEADER = _PACKET_HEADER.pack(wire.MAGIC, wire.VERSION, 0, 0, 1, 0, 0, 0, 0)



class _Channel(object):
    """Sequencing state of one publisher channel (PROTOCOL.md: seq counts messages)."""

    __slots__ = ("session", "next_seq", "holes", "ended", "packets", "gaps", "missing_messages",
                 "restarts")

    def __init__(self, session, next_seq):
        self.session = session
        self.next_seq = next_seq
        self.holes = []          # [first_missing_seq, end_seq) of recent gaps, oldest first
        self.ended = False
        self.packets = 0
        self.gaps = 0
        self.missing_messages = 0
        self.restarts = 0

    def add_hole(self, start, end):
        self.holes.append([start, end])
        if len(self.holes) > MAX_HOLES_PER_CHANNEL:
            del self.holes[0]

    def fill(self, start, end):
        """Remove ``[start, end)`` from the remembered holes; return how many seqs it filled."""
        filled = 0
        kept = []
        for hole_start, hole_end in self.holes:
            low = max(hole_start, start)
            high = min(hole_end, end)
            if low >= high:
                kept.append([hole_start, hole_end])
                continue
            filled += high - low
            if hole_start < low:
                kept.append([hole_start, low])
            if high < hole_end:
                kept.append([high, hole_end])
        self.holes = kept
        return filled

    def as_dict(self):
        return {"session": self.session, "next_seq": self.next_seq, "ended": self.ended,
                "packets": self.packets, "gaps": self.gaps,
                "missing_messages": self.missing_messages, "restarts": self.restarts,
                "open_holes": len(self.holes)}


class _BookView(object):
    """Latest ``B`` message of one instrument, kept raw until someone looks at it."""

    __slots__ = ("raw", "decoded", "books_interval", "books_total", "quote_raw", "trade_raw")

    def __init__(self):
        self.raw = None
        self.decoded = None
        self.books_interval = 0
        self.books_total = 0
        self.quote_raw = None       # latest Q (best bid/offer), raw like the book
        self.trade_raw = None       # latest T


def _quote_row(view):
    """The latest Q of a view as a dict (None if none seen)."""
    if view is None or view.quote_raw is None:
        return None
    q = decode_single_message(view.quote_raw)
    return {"update_id": q.update_id, "bid_px": q.bid_px, "bid_qty": q.bid_qty,
            "ask_px": q.ask_px, "ask_qty": q.ask_qty}


def _trade_row(view):
    """The latest T of a view as a dict (None if none seen)."""
    if view is None or view.trade_raw is None:
        return None
    t = decode_single_message(view.trade_raw)
    return {"trade_id": t.update_id, "price": t.price, "qty": t.qty, "side": t.side}


def decode_single_message(raw):
    """Decode one raw message (bytes of its full length) with the reference decoder."""
    return wire.decode_packet(_SINGLE_MESSAGE_HEADER + bytes(raw)).messages[0]


class FeedMonitor(object):
    """In-process receiver: ``poll()`` accounts datagrams, reports come out as dicts.

    Attributes for callers: ``books`` {instrument: wire.BookMsg} (latest book of each
    instrument), ``symbols`` {instrument: str} (from ``I``), ``states`` {instrument: state}
    (from ``S``), ``venues`` {instrument: venue id}, ``channels`` {channel: sequencing state},
    ``port`` (the bound port), ``rcvbuf_bytes_actual``/``rcvbuf_capped``.
    ``book_view=False`` skips keeping books (the ``--no-book`` fast path).
    """

    def __init__(self, listen_host, listen_port, *, interface=None,
                 rcvbuf_bytes=DEFAULT_RCVBUF_BYTES, channel=None, book_view=True,
                 clock_ns=time.time_ns):
        sock, rcvbuf_actual, rcvbuf_capped = open_udp_socket(listen_host, listen_port, interface,
                                                             rcvbuf_bytes)
        self._attach(sock, listen_host, rcvbuf_bytes, rcvbuf_actual, rcvbuf_capped, channel,
                     book_view, clock_ns)

    @classmethod
    def from_socket(cls, sock, *, channel=None, book_view=True, clock_ns=time.time_ns):
        """A monitor reading an already bound datagram socket (made non-blocking); it owns it."""
        sock.setblocking(False)
        self = cls.__new__(cls)
        rcvbuf_actual = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # "" and ints rather than None: PyPy specialises instance layouts on attribute types
        self._attach(sock, "", rcvbuf_actual, rcvbuf_actual, False, channel, book_view,
                     clock_ns)
        return self

    def _attach(self, sock, listen_host, rcvbuf_requested, rcvbuf_actual, rcvbuf_capped,
                channel, book_view, clock_ns):
        # One place assigns every attribute, in one order: PyPy then gives all instances the
        # same map, so JIT code warmed on one monitor (warm_up_jit) is reused by the next.
        self._sock = sock
        self.listen_host = listen_host
        self.rcvbuf_bytes_requested = rcvbuf_requested
        self.rcvbuf_bytes_actual = rcvbuf_actual
        self.rcvbuf_capped = rcvbuf_capped
        self.channel_filter = channel
        self.book_view = book_view
        self._clock_ns = clock_ns
        name = sock.getsockname()
        self.port = name[1] if isinstance(name, tuple) else 0
        self._selector = selectors.DefaultSelector()
        self._selector.register(sock, selectors.EVENT_READ)
        self._buf = bytearray(RECV_BUFFER_BYTES)   # preallocated: recv_into, never a new bytes
        self._type_counts = [0] * 256
        self._type_totals = [0] * 256
        self._lat_net = LatencyHistogram()         # receive wall time - packet send_ns
        self._lat_daemon = LatencyHistogram()      # packet send_ns - message recv_ns
        self._lat_net_total = LatencyHistogram()
        self._lat_daemon_total = LatencyHistogram()
        self._totals = dict.fromkeys(_COUNTERS, 0)
        for counter in _COUNTERS:
            setattr(self, counter, 0)
        self.last_decode_error = None
        self.channels = {}
        self._views = {}
        self.symbols = {}
        self.states = {}
        self.venues = {}
        self._started_mono_ns = time.monotonic_ns()
        self._interval_start_mono_ns = self._started_mono_ns
        self._closed = False

    # -- receive ---------------------------------------------------------------------------

    def fileno(self):
        return self._sock.fileno()

    def poll(self, timeout_s):
        """Receive and account every datagram available (up to MAX_DATAGRAMS_PER_POLL),
        waiting up to ``timeout_s`` for the first one. Returns the number of datagrams handled."""
        handled = self._drain()
        if handled or timeout_s <= 0:
            return handled
        if self._selector.select(timeout_s):
            handled = self._drain()
        return handled

    def _drain(self):
        recv_into = self._sock.recv_into
        buf = self._buf
        handle = self._handle_datagram
        clock_ns = self._clock_ns
        handled = 0
        while handled < MAX_DATAGRAMS_PER_POLL:
            try:
                nbytes = recv_into(buf)
            except BlockingIOError:
                break
            except OSError as exc:   # e.g. ENOBUFS: counted and logged; the next poll retries
                self.recv_errors += 1
                log.warning("recv failed: %s", exc)
                break
            handle(nbytes, clock_ns())
            handled += 1
        return handled

    def handle_datagram(self, data, recv_ns=None):
        """Account one datagram given as bytes (tests, replay); same path as the socket's."""
        nbytes = len(data)
        if nbytes > RECV_BUFFER_BYTES:
            raise ValueError("datagram of %d bytes exceeds the receive buffer" % nbytes)
        self._buf[:nbytes] = data
        self._handle_datagram(nbytes, self._clock_ns() if recv_ns is None else recv_ns)

    def _handle_datagram(self, nbytes, recv_ns):
        buf = self._buf
        try:
            if nbytes < wire.HEADER_SIZE:
                raise WireError("datagram of %d bytes is shorter than the %d-byte header"
                                % (nbytes, wire.HEADER_SIZE))
            magic, version, flags, channel, count, session, _reserved, seq, send_ns = \
                _PACKET_HEADER.unpack_from(buf, 0)
            if magic != wire.MAGIC or version != wire.VERSION:
                raise WireError("bad magic %r or version %d" % (magic, version))
            _validate_messages(buf, nbytes, count)
        except WireError as exc:
            self._count_decode_error(exc)
            return
        if self.channel_filter is not None and channel != self.channel_filter:
            self.filtered_packets += 1
            return
        self.packets += 1
        self.bytes += nbytes
        self._lat_net.record(recv_ns - send_ns)
        mode = self._sequence(channel, session, seq, count, flags)
        if flags & _EOS:
            self.end_of_session += 1
        elif count == 0:
            self.heartbeats += 1
        if count and mode != _SKIP:
            self._account_messages(buf, count, send_ns, mode == _APPLY)

    def _count_decode_error(self, exc):
        self.decode_errors += 1
        self.last_decode_error = str(exc)
        total = self.decode_errors + self._totals["decode_errors"]
        if total <= MAX_DECODE_ERROR_LOGS:
            log.warning("malformed datagram dropped (%s)%s", exc,
                        "; further ones are only counted" if total == MAX_DECODE_ERROR_LOGS
                        else "")
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("malformed datagram dropped (%s)", exc)

    def _sequence(self, channel_id, session, seq, count, flags):
        """Apply PROTOCOL.md's sequencing rules for one packet; return _APPLY/_COUNT_ONLY/_SKIP."""
        state = self.channels.get(channel_id)
        if state is None:   # first packet seen on this channel: joining late is not a gap
            state = self.channels[channel_id] = _Channel(session, seq + count)
        elif session != state.session:
            if session < state.session:
                self.stale_session_packets += 1
                return _SKIP
            self.restarts += 1
            state.restarts += 1
            state.session = session
            state.holes = []
            state.ended = False
            if seq > 1:    # the new session's first messages were lost
                self._gap(state, 1, seq)
            state.next_seq = seq + count
        else:
            expected = state.next_seq
            if seq == expected:
                state.next_seq = seq + count
            elif seq > expected:
                self._gap(state, expected, seq)
                state.next_seq = seq + count
            elif count:   # seq < expected: late or repeated (a late heartbeat says nothing)
                state.packets += 1
                filled = state.fill(seq, seq + count)
                if seq + count > expected:
                    state.next_seq = seq + count
                if filled:
                    self.out_of_order += 1
                    self.recovered_messages += filled
                    return _COUNT_ONLY
                self.duplicates += 1
                return _SKIP
        state.packets += 1
        if flags & _EOS:
            state.ended = True
        return _APPLY

    def _gap(self, state, first_missing, next_seen):
        missing = next_seen - first_missing
        self.gaps += 1
        self.missing_messages += missing
        state.gaps += 1
        state.missing_messages += missing
        state.add_hole(first_missing, next_seen)

    def _account_messages(self, buf, count, send_ns, apply_views):
        """Count each message by type, record in-daemon latency, feed the views."""
        type_counts = self._type_counts
        record_daemon = self._lat_daemon.record
        keep_books = self.book_view and apply_views
        views = self._views
        unpack = _MSG_PEEK.unpack_from
        off = wire.HEADER_SIZE
        for _ in range(count):
            length, mtype, venue, instrument, msg_recv_ns = unpack(buf, off)
            type_counts[mtype] += 1
            if mtype == _TYPE_B:
                if msg_recv_ns:
                    record_daemon(send_ns - msg_recv_ns)
                if apply_views and self.states.get(instrument) != _STATE_LIVE:
                    # PROTOCOL.md: books are published only while synchronised, so a B shows
                    # live even when the S that said so was lost or sent before we joined
                    self.states[instrument] = _STATE_LIVE
                    self.venues[instrument] = venue
                if keep_books:
                    view = views.get(instrument)
                    if view is None:
                        view = views[instrument] = _BookView()
                    view.raw = buf[off:off + length]   # a copy: buf is reused by the next recv
                    view.decoded = None
                    view.books_interval += 1
                    self.venues[instrument] = venue
            elif mtype == _TYPE_T or mtype == _TYPE_Q:
                if msg_recv_ns:
                    record_daemon(send_ns - msg_recv_ns)
                if keep_books:
                    view = views.get(instrument)
                    if view is None:
                        view = views[instrument] = _BookView()
                    if mtype == _TYPE_Q:
                        view.quote_raw = buf[off:off + length]
                    else:
                        view.trade_raw = buf[off:off + length]
            elif mtype == _TYPE_S:
                if apply_views:
                    self.states[instrument] = buf[off + wire.MSG_HEADER_SIZE]
                    self.venues[instrument] = venue
            elif mtype == _TYPE_I:   # rare (every 5 s): decode the symbol fully
                self.symbols[instrument] = _symbol_at(buf, off)
                self.venues.setdefault(instrument, venue)
            off += length
        self.messages += count

    # -- views and reports -----------------------------------------------------------------

    @property
    def books(self):
        """{instrument: wire.BookMsg}: the latest book of each instrument (decoded on demand)."""
        result = {}
        for instrument, view in self._views.items():
            book = self._decoded_book(view)
            if book is not None:
                result[instrument] = book
        return result

    def _decoded_book(self, view):
        if view.decoded is None and view.raw is not None:
            view.decoded = decode_single_message(view.raw)  # validated on receipt: cannot fail
        return view.decoded

    def _instrument_rows(self, depth, interval_s, per_interval):
        rows = []
        instruments = set(self._views) | set(self.symbols) | set(self.states)
        for instrument in sorted(instruments):
            view = self._views.get(instrument)
            book = self._decoded_book(view) if view is not None else None
            books = 0
            if view is not None:
                books = view.books_interval
                if not per_interval:
                    books += view.books_total
            venue = self.venues.get(instrument)
            state = self.states.get(instrument)
            row = {
                "instrument": instrument,
                "symbol": self.symbols.get(instrument),
                "venue": venue,
                "venue_name": registry.wire_name(venue) if venue is not None else None,
                "state": state,
                "state_name": STATE_NAMES.get(state) if state is not None else None,
                "update_id": book.update_id if book is not None else None,
                "books": books,
                "bids": [list(level) for level in book.bids[:depth]] if book is not None else [],
                "asks": [list(level) for level in book.asks[:depth]] if book is not None else [],
                "quote": _quote_row(view),
                "last_trade": _trade_row(view),
            }
            if per_interval:
                row["books_per_s"] = books / interval_s if interval_s > 0 else 0.0
            rows.append(row)
        return rows

    @staticmethod
    def _by_type(counts):
        return dict((chr(t) if 32 < t < 127 else "0x%02x" % t, n)
                    for t, n in enumerate(counts) if n)

    def interval_report(self, depth=1):
        """Counters, rates, latencies and the book view since the last call; resets them."""
        now_mono_ns = time.monotonic_ns()
        interval_s = (now_mono_ns - self._interval_start_mono_ns) / 1e9
        self._interval_start_mono_ns = now_mono_ns
        per_s = 1.0 / interval_s if interval_s > 0 else 0.0
        report = {"type": "interval", "time_ns": time.time_ns(), "interval_s": interval_s}
        current = dict((name, getattr(self, name)) for name in _COUNTERS)
        report.update(current)
        report["packets_per_s"] = current["packets"] * per_s
        report["messages_per_s"] = current["messages"] * per_s
        report["by_type"] = self._by_type(self._type_counts)
        report["last_decode_error"] = self.last_decode_error
        report["latency_net"] = self._lat_net.snapshot(LATENCY_PERCENTILES)
        report["latency_daemon"] = self._lat_daemon.snapshot(LATENCY_PERCENTILES)
        if self.book_view:
            report["instruments"] = self._instrument_rows(depth, interval_s, True)
        # reset: fold the interval into the totals
        for name in _COUNTERS:
            self._totals[name] += current[name]
            setattr(self, name, 0)
        for index in range(256):
            self._type_totals[index] += self._type_counts[index]
            self._type_counts[index] = 0
        self._lat_net_total.merge(self._lat_net)
        self._lat_daemon_total.merge(self._lat_daemon)
        self._lat_net.reset()
        self._lat_daemon.reset()
        for view in self._views.values():
            view.books_total += view.books_interval
            view.books_interval = 0
        self.last_decode_error = None
        return report

    def summary(self, depth=1):
        """Totals since start (including the interval in progress); resets nothing."""
        elapsed_s = (time.monotonic_ns() - self._started_mono_ns) / 1e9
        report = {"type": "summary", "time_ns": time.time_ns(), "elapsed_s": elapsed_s}
        for name in _COUNTERS:
            report[name] = self._totals[name] + getattr(self, name)
        report["by_type"] = self._by_type([a + b for a, b in zip(self._type_totals,
                                                                self._type_counts)])
        net = self._lat_net_total.copy()
        net.merge(self._lat_net)
        daemon = self._lat_daemon_total.copy()
        daemon.merge(self._lat_daemon)
        report["latency_net"] = net.snapshot(LATENCY_PERCENTILES)
        report["latency_daemon"] = daemon.snapshot(LATENCY_PERCENTILES)
        report["channels"] = dict((str(ch), state.as_dict())
                                  for ch, state in sorted(self.channels.items()))
        if self.book_view:
            report["instruments"] = self._instrument_rows(depth, elapsed_s, False)
        report["rcvbuf_bytes_requested"] = self.rcvbuf_bytes_requested
        report["rcvbuf_bytes_actual"] = self.rcvbuf_bytes_actual
        report["rcvbuf_capped"] = self.rcvbuf_capped
        return report

    def close(self):
        if self._closed:
            return
        self._closed = True
        self._selector.close()
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _warm_up_packets():
    """Templates of a realistic publisher mix for warm_up_jit (seq and send_ns patched later)."""
    now_ns = time.time_ns()
    templates = []

    def build(writers):
        buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
        off = wire.HEADER_SIZE
        for write in writers:
            off = write(buf, off)
        wire.pack_packet_header(buf, 0, 1, len(writers), 1, 1, now_ns)
        templates.append((bytearray(buf[:off]), len(writers)))

    def book(instrument, depth):
        def write(buf, off):
            end = off + wire.book_len(depth, depth)
            struct.pack_into("<HBBHHQQQBB", buf, off, end - off, _TYPE_B, 1 + instrument % 5,
                             instrument, 0, now_ns, now_ns - 30000, instrument, depth, depth)
            for level in range(2 * depth):
                _LEVEL.pack_into(buf, off + wire.BOOK_FIXED_LEN + 16 * level,
                                 100000000 * (1000 + level), 100000000)
            return end
        return write

    def trade(instrument):
        return lambda buf, off: wire.pack_trade(buf, off, registry.WIRE_ID_SIM, instrument, now_ns,
                                                now_ns - 20000, 1, 100000000, 1, 1)

    def quote(instrument):
        return lambda buf, off: wire.pack_quote(buf, off, registry.WIRE_ID_SIM, instrument, now_ns,
                                                now_ns - 20000, 1, 1, 1, 2, 1)

    build([book(1, 20), book(2, 20)])
    build([book(3, 5), book(4, 5), book(5, 5)])
    build([book(6, 1)] + [trade(6)] * 3)
    build([trade(7)] * 12)
    build([book(9, 10), book(10, 10), book(11, 10), trade(9)])
    build([quote(8)] * 5 + [trade(8)] * 3)
    build([book(12, 1), book(13, 1), book(14, 1), book(15, 1)])
    build([])
    return templates


def warm_up_jit(datagrams=30000):
    """Run the receive path on synthetic traffic over a private socket pair, then discard it.

    Why: PyPy interprets and traces the receive loop for its first ~10**4 datagrams at ~60 us
    each (measured: 4096 datagrams took 259 ms) before it runs compiled at ~1 us; a publisher
    already sending 100k messages/s when the monitor starts would overflow a 4 MiB socket buffer
    in that time. Compiled code is shared by every FeedMonitor of the process. Returns the
    datagrams handled. Harmless (and pointless) on CPython.
    """
    tx, rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    scratch = FeedMonitor.from_socket(rx)
    try:
        tx.setblocking(False)
        templates = _warm_up_packets()
        seq = 1
        handled = 0
        index = 0
        while handled < datagrams:
            data, count = templates[index % len(templates)]
            if index % 997 == 996:
                seq += 3             # an occasional gap, so that path is compiled too
            struct.pack_into("<QQ", data, 16, seq, time.time_ns())
            try:
                tx.send(data)
            except BlockingIOError:  # the pair's queue is short: drain, then resend
                handled += scratch.poll(0)
                continue
            seq += count
            index += 1
            if index > 4 * datagrams:   # the pair never filled up: drain what is queued
                handled += scratch.poll(0)
        return handled
    finally:
        scratch.close()
        tx.close()


def _validate_messages(buf, nbytes, count):
    """Raise WireError unless ``count`` messages tile ``buf[32:nbytes]`` exactly as PROTOCOL.md
    (and wire.decode_packet) require. Reads two or three bytes per message: no allocation."""
    off = wire.HEADER_SIZE
    for index in range(count):
        if off + wire.MSG_HEADER_SIZE > nbytes:
            raise WireError("header says %d messages, datagram ends after %d" % (count, index))
        length = buf[off] | (buf[off + 1] << 8)   # u16 little-endian without a Struct call
        if length < wire.MSG_HEADER_SIZE or length & 7 or off + length > nbytes:
            raise WireError("message %d: bad length %d at offset %d of %d"
                            % (index, length, off, nbytes))
        mtype = buf[off + 2]
        if mtype == _TYPE_B:
            if length < wire.BOOK_FIXED_LEN or length != wire.book_len(buf[off + 32],
                                                                      buf[off + 33]):
                raise WireError("message %d: B length %d disagrees with its level counts"
                                % (index, length))
        else:
            fixed = _FIXED_LENGTH[mtype]
            if fixed and length != fixed:
                raise WireError("message %d: %s message of length %d (expected %d)"
                                % (index, chr(mtype), length, fixed))
            if mtype == _TYPE_I:
                _symbol_at(buf, off)
        off += length
    if off != nbytes:
        raise WireError("%d bytes of trailing garbage after %d messages" % (nbytes - off, count))


def _symbol_at(buf, off):
    """The NUL-padded ASCII symbol of the ``I`` message at ``off`` (PROTOCOL.md: 24 bytes)."""
    start = off + wire.MSG_HEADER_SIZE
    raw = bytes(buf[start:start + wire.SYMBOL_SIZE]).rstrip(b"\0")
    if not raw or b"\0" in raw or max(raw) > 127:
        raise WireError("I symbol %r is not NUL-padded ASCII" % (raw,))
    return raw.decode("ascii")

