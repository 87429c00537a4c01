"""UDP receiver for the hftfeed wire format: sequence gaps, restarts, latency and a book view.

``python3 hftfeed.py monitor --listen ADDR:PORT`` (or ``python3 -m hftfeed.tools.monitor ...``) binds a
unicast address or joins a multicast group, accounts every datagram and prints one report per
interval (human text, or one JSON object per line with ``--json``), then a summary on exit.
:class:`FeedMonitor` is the same receiver for in-process use (benchmark, tests).

Why the receive path looks the way it does (it must keep up with >= 100k messages/s on PyPy):

* one non-blocking socket drained with ``recv_into`` a preallocated 64 KiB buffer; a selector
  only sleeps when the socket is empty;
* each datagram is checked by ``wire.check_datagram`` (the one validation function that
  ``wire.decode_packet`` and the client use too), reading only length/type bytes; then message
  headers are read with ``wire.MSG_HEADER``. No message object is built on the hot path: the latest ``B`` message of each
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

Sequencing is the client's (``hftfeed.client.sequencer``): ``seq`` counts messages; a jump
forward inside one session is a gap; a packet that fills an earlier gap is out of order (its
messages are counted as recovered); one whose messages were all seen already is a duplicate; a
new ``session`` on a channel is a publisher restart once a few packets in a row confirm it (one
forged datagram is only counted as ``held_packets``); a smaller ``session`` after that is stale.
Instruments are keyed by ``(channel, venue, instrument)``: ids are unique only within a channel,
so two shards on one group are shown apart. Symbols are sanitised before display.
"""

import logging
import platform
import selectors
import socket
import time

from hftfeed.client import sequencer as seqmod
from hftfeed.client.names import sanitize, state_name, venue_name
from hftfeed.codecs import wire
from hftfeed.venues import registry
from hftfeed.errors import WireError
from hftfeed.runtime.stats import LatencyHistogram

from hftfeed.client.net import DEFAULT_RCVBUF_BYTES, open_udp_socket

log = logging.getLogger("hftfeed.monitor")

IS_PYPY = platform.python_implementation() == "PyPy"
RECV_BUFFER_BYTES = 65536           # > the largest UDP payload (65507): recv_into never truncates
MAX_DATAGRAMS_PER_POLL = 4096       # bound one poll() so reports stay on time under a flood
LATENCY_PERCENTILES = (50, 99, 99.9)
MAX_DECODE_ERROR_LOGS = 10          # then decode errors are only counted
MAX_VIEW_KEYS = 3 * 65536           # (channel, venue, instrument) entries of the view, at most

_PACKET_HEADER = wire.PACKET_HEADER
_MSG_HEADER = wire.MSG_HEADER
_LEVEL = wire.LEVEL

_TYPE_B = wire.TYPE_BOOK
_STATE_LIVE = wire.STATE_LIVE
_TYPE_T = wire.TYPE_TRADE
_TYPE_Q = wire.TYPE_QUOTE
_TYPE_S = wire.TYPE_STATUS
_TYPE_I = wire.TYPE_INSTRUMENT
_TYPE_D = wire.TYPE_DETAILS
_DETAILS = wire.DETAILS
_EOS = wire.PACKET_FLAG_END_OF_SESSION
_REFRESH = wire.BOOK_FLAG_REFRESH

# What the sequencer lets the message loop do with a packet.
_APPLY = 0        # in order (or after a gap): count messages, update the views
_COUNT_ONLY = 1   # late, fills a gap: count messages, keep the (newer) views
_SKIP = 2         # duplicate, stale or held: messages already seen or not (yet) trusted
_RELEASED = 3     # this packet confirmed a held stream: account the held packets first

# Interval counters: reset by interval_report(), accumulated into the totals.
_COUNTERS = ("packets", "bytes", "messages", "heartbeats", "end_of_session", "gaps",
             "missing_messages", "duplicates", "out_of_order", "recovered_messages", "restarts",
             "stale_session_packets", "held_packets", "decode_errors", "filtered_packets",
             "recv_errors")

# A packet header with count 1, to decode one stored message with the reference decoder.
_SINGLE_MESSAGE_HEADER = _PACKET_HEADER.pack(wire.MAGIC, wire.VERSION, 0, 0, 1, 0, 0, 0, 0)



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

    Attributes for callers, keyed by ``(channel, venue, instrument)``: ``books`` (latest
    wire.BookMsg of each instrument), ``symbols`` (sanitised, from ``I``), ``states`` (from
    ``S``); ``channels`` {channel: sequencing state},
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
        self._sequencer = seqmod.Sequencer()
        self.channels = self._sequencer.channels
        self._views = {}
        self.symbols = {}
        self.details = {}               # key -> (tick_size, lot_size) from D messages
        self.states = {}
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
            flags, channel, count, session, seq, send_ns = wire.check_datagram(buf, nbytes)
        except WireError as exc:
            self._count_decode_error(exc)
            return
        if self.channel_filter is not None and channel != self.channel_filter:
            self.filtered_packets += 1
            return
        self.packets += 1
        self.bytes += nbytes
        self._lat_net.record(recv_ns - send_ns)
        mode = self._sequence(channel, session, seq, count, flags, nbytes)
        if flags & _EOS:
            self.end_of_session += 1
        elif count == 0:
            self.heartbeats += 1
        if mode == _RELEASED:
            # held packets of a newly confirmed stream: account them in order, then this one
            for held in self._sequencer.released[:-1]:
                held_header = _PACKET_HEADER.unpack_from(held, 0)
                if held_header[4]:
                    self._account_messages(held, channel, held_header[4], held_header[8], True)
            mode = _APPLY
        if count and mode != _SKIP:
            self._account_messages(buf, channel, count, send_ns, mode == _APPLY)

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

    def _sequence(self, channel_id, session, seq, count, flags, nbytes):
        """Classify one packet with the client's sequencer; count what it says."""
        sequencer = self._sequencer
        state = sequencer.channels.get(channel_id)
        held = None
        if state is not None and (session != state.session or abs(seq - state.next_seq)
                                  > sequencer.max_jump_messages):
            held = bytes(self._buf[:nbytes])   # may be held: keep a copy, the buffer is reused
        gaps, missing = sequencer.gaps, sequencer.missing_messages
        mode = sequencer.packet(channel_id, session, seq, count, flags, held)
        self.gaps += sequencer.gaps - gaps
        self.missing_messages += sequencer.missing_messages - missing
        if sequencer.restarted:
            self.restarts += 1
        if mode == seqmod.APPLY:
            return _APPLY
        if mode == seqmod.RELEASE:
            return _RELEASED
        if mode == seqmod.FILL:
            self.out_of_order += 1
            self.recovered_messages += sequencer.filled
            return _COUNT_ONLY
        if mode == seqmod.DUP:
            if count:
                self.duplicates += 1
        elif mode == seqmod.STALE:
            self.stale_session_packets += 1
        else:
            self.held_packets += 1
        return _SKIP

    def _account_messages(self, buf, channel, count, send_ns, apply_views):
        """Count each message by type, record in-daemon latency, feed the views."""
        type_counts = self._type_counts
        record_daemon = self._lat_daemon.record
        keep_books = self.book_view and apply_views
        views = self._views
        unpack = _MSG_HEADER.unpack_from
        off = wire.HEADER_SIZE
        full = len(views) + len(self.states) + len(self.symbols) >= MAX_VIEW_KEYS
        for _ in range(count):
            length, mtype, venue, instrument, _flags, _exch_ns, msg_recv_ns, _uid = \
                unpack(buf, off)
            type_counts[mtype] += 1
            key = (channel, venue, instrument)
            if full and key not in self.states and key not in views and key not in self.symbols:
                off += length    # bounded: forged ids cannot grow the view without limit
                continue
            if mtype == _TYPE_B:
                if msg_recv_ns and not _flags & _REFRESH:   # a refresh re-sends an old book
                    record_daemon(send_ns - msg_recv_ns)
                if apply_views and self.states.get(key) != _STATE_LIVE:
                    # PROTOCOL.md: books are published only while synchronised, so a B shows
                    # live even when the S that said so was lost or sent before we joined
                    self.states[key] = _STATE_LIVE
                if keep_books:
                    view = views.get(key)
                    if view is None:
                        view = views[key] = _BookView()
                    view.raw = buf[off:off + length]   # a copy: buf is reused by the next recv
                    view.decoded = None
                    view.books_interval += 1
            elif mtype == _TYPE_T or mtype == _TYPE_Q:
                if msg_recv_ns:
                    record_daemon(send_ns - msg_recv_ns)
                if keep_books:
                    view = views.get(key)
                    if view is None:
                        view = views[key] = _BookView()
                    if mtype == _TYPE_Q:
                        view.quote_raw = buf[off:off + length]
                    else:
                        view.trade_raw = buf[off:off + length]
            elif mtype == _TYPE_S:
                if apply_views:
                    self.states[key] = buf[off + wire.MSG_HEADER_SIZE]
            elif mtype == _TYPE_I:   # rare: decode the symbol fully, sanitised for display
                self.symbols[key] = _symbol_at(buf, off)
            elif mtype == _TYPE_D and key in self.symbols:   # bounded: a D follows its I
                self.details[key] = _DETAILS.unpack_from(buf, off)[8:10]
            off += length
        self.messages += count

    # -- views and reports -----------------------------------------------------------------

    @property
    def books(self):
        """{instrument: wire.BookMsg}: the latest book of each instrument (decoded on demand)."""
        result = {}
        for key, view in self._views.items():
            book = self._decoded_book(view)
            if book is not None:
                result[key] = book
        return result

    def _decoded_book(self, view):
        if view.decoded is None and view.raw is not None:
            view.decoded = decode_single_message(view.raw)  # validated on receipt: cannot fail
        return view.decoded

    def _instrument_rows(self, depth, interval_s, per_interval):
        rows = []
        keys = set(self._views) | set(self.symbols) | set(self.states)
        for key in sorted(keys):
            channel, venue, instrument = key
            view = self._views.get(key)
            book = self._decoded_book(view) if view is not None else None
            books = 0
            if view is not None:
                books = view.books_interval
                if not per_interval:
                    books += view.books_total
            state = self.states.get(key)
            row = {
                "channel": channel,
                "instrument": instrument,
                "symbol": self.symbols.get(key),
                "tick_size": self.details.get(key, (None, None))[0],
                "lot_size": self.details.get(key, (None, None))[1],
                "venue": venue,
                "venue_name": venue_name(venue),
                "state": state,
                "state_name": state_name(state) if state is not None else None,
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
            wire.BOOK_HEAD.pack_into(buf, off, end - off, _TYPE_B, 1 + instrument % 5, instrument,
                                     0, now_ns, now_ns - 30000, instrument, depth, depth)
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
            wire.pack_packet_header(data, 0, 1, count, 1, seq, time.time_ns())
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


def _symbol_at(buf, off):
    """The symbol of the (validated) ``I`` message at ``off``, sanitised for display."""
    start = off + wire.MSG_HEADER_SIZE
    return sanitize(bytes(buf[start:start + wire.SYMBOL_SIZE]).rstrip(b"\0"), 32)
