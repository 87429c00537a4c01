"""UDP publisher: packs PROTOCOL.md messages into one preallocated datagram buffer and sends it.

Messages caused by one inbound exchange frame are appended to the pending packet and sent by
:meth:`Publisher.flush` once that frame is processed (with ``publisher.flush`` "read": once the
socket read is processed), or earlier: when the next message would not fit ``max_payload``, and
as soon as a book is packed into a datagram that cannot take another book. Sequence numbers count messages (MoldUDP64 style); a heartbeat goes out
after ``heartbeat_interval_s`` of silence, and an end-of-session packet on a clean stop.

Three things make the stream usable by a receiver that joined late or lost packets
(docs/PROTOCOL.md "Refresh cycle", "A/B redundancy", "Retransmission"):

* the refresh cycle re-sends, every ``refresh_interval_s``, the ``I`` and ``S`` of every
  instrument and a ``B`` flagged refresh for every live instrument that sent no ``B`` in that
  interval, spread evenly over the interval (a slice per :meth:`tick`), never in one burst;
* every datagram goes to each of ``targets`` (A/B feeds) with the same sequence numbers;
* with ``history_datagrams`` > 0, the last N datagrams are kept (as the bytes sent) for the TCP
  retransmission service (``pipeline/retransmit.py``).

The socket is unconnected on purpose: on Linux a connected UDP socket reports an ICMP "port
unreachable" (nobody listening yet) as ECONNREFUSED on the *next* send and drops that datagram.
"""

import errno
import logging
import socket
import time

from hftfeed.runtime import hw
from hftfeed.codecs import wire

log = logging.getLogger("hftfeed.publisher")


class Publisher(object):
    """One publishing channel (one sequence space, one session) sent to one or more targets.

    ``extra_targets``: further ``(host, port, multicast_interface, multicast_ttl)`` destinations
    (the B feed of an A/B pair); ``None`` for interface/TTL means "as the first target".
    """

    def __init__(self, target_host, target_port, channel=1, depth=20, max_payload=1472,
                 multicast_ttl=1, multicast_interface=None, multicast_loop=True,
                 heartbeat_interval_s=1.0, instrument_interval_s=5.0,
                 sndbuf_bytes=4 * 2 ** 20, rcvbuf_bytes=4 * 2 ** 20, source_host=None,
                 session=None, latency=None, extra_targets=(),
                 refresh_interval_s=1.0, history_datagrams=0):
        self.target = (target_host, target_port)
        self.targets = [(target_host, target_port, multicast_interface, multicast_ttl)] + [
            (host, port, multicast_interface if iface is None else iface,
             multicast_ttl if ttl is None else ttl) for host, port, iface, ttl in extra_targets]
        self.channel = channel
        self.depth = depth
        self.max_payload = max_payload
        self.multicast_ttl = multicast_ttl
        self.multicast_interface = multicast_interface
        self.multicast_loop = multicast_loop
        self.heartbeat_interval_ns = int(heartbeat_interval_s * 1e9)
        self.instrument_interval_ns = int(instrument_interval_s * 1e9)
        self.sndbuf_bytes = sndbuf_bytes
        self.rcvbuf_bytes = rcvbuf_bytes
        self.source_host = source_host
        self.session = new_session_id() if session is None else session
        self.refresh_interval_ns = int(refresh_interval_s * 1e9)
        self._refresh = {}               # instrument id -> [book, exch_ns, recv_ns, state]
        self._refresh_order = []         # instrument ids, in announcement order
        self._refresh_index = 0
        self._refresh_cycle_ns = 0
        self.refresh_messages = 0
        self.history = History(history_datagrams) if history_datagrams else None
        self.latency = latency          # optional stats.LatencyHistogram of send_ns - recv_ns
        # Preallocated once: every packet is built in place here (no per-update allocation).
        self.buf = bytearray(max_payload)
        self.view = memoryview(self.buf)
        self.book_room = wire.book_len(depth, depth)
        self.off = wire.HEADER_SIZE
        self.count = 0
        self.seq = 1
        self.oldest_recv_ns = 0
        self.last_send_ns = 0
        self.last_instruments_ns = 0
        self.instruments = []           # (venue_id, instrument_id, symbol)
        self.details = {}               # instrument id -> (InstrumentSpec, loaded_ns): D messages
        self.sock = None
        self._sends = []                 # (socket, (host, port)) for every target
        self.buffer_report = None
        self.packets_sent = 0
        self.messages_sent = 0
        self.bytes_sent = 0
        self.send_errors = 0
        self.books_sent = 0

    # -- socket --------------------------------------------------------------------------------

    def open(self):
        """Create one UDP socket per target with its buffers and multicast options; returns
        the buffer report of the first (an hw.HwResult saying what the kernel granted)."""
        sends = []
        try:
            for host, port, interface, ttl in self.targets:
                sock, report = self._open_socket(host, interface, ttl)
                sends.append((sock, (host, port)))
                if self.buffer_report is None:
                    self.buffer_report = report
        except OSError:
            for sock, _ in sends:
                sock.close()
            raise
        self._sends = sends
        self.sock = sends[0][0]
        return self.buffer_report

    def _open_socket(self, host, interface, ttl):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            report = hw.apply_socket_buffers(sock, self.sndbuf_bytes, self.rcvbuf_bytes)
            if family == socket.AF_INET:
                self._ipv4_options(sock, interface, ttl)
            else:
                self._ipv6_options(sock, interface, ttl)
            if self.source_host and (":" in self.source_host) == (family == socket.AF_INET6):
                sock.bind((self.source_host, 0))
        except OSError:
            sock.close()
            raise
        return sock, report

    def _ipv4_options(self, sock, interface, ttl):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if self.multicast_loop else 0)
        if interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            socket.inet_aton(interface))

    def _ipv6_options(self, sock, interface, ttl):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP,
                        1 if self.multicast_loop else 0)
        if interface:
            index = _ipv6_interface_index(interface)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)

    def close(self):
        for sock, _ in self._sends:
            sock.close()
        self._sends = []
        self.sock = None

    # -- messages (hot path: pack in place, no allocation) -----------------------------------------

    def book(self, venue, instrument, flags, exch_ns, recv_ns, book):
        if self.off + self.book_room > self.max_payload:
            self.flush()
        self._note(recv_ns)
        self.off = wire.pack_book(self.buf, self.off, venue, instrument, flags, exch_ns, recv_ns,
                                  book, self.depth)
        self.count += 1
        self.books_sent += 1
        entry = self._refresh.get(instrument)
        if entry is not None:            # what the refresh cycle re-sends if it goes quiet
            entry[0] = book
            entry[1] = exch_ns
            entry[2] = recv_ns
        if self.off + self.book_room > self.max_payload:
            # No further book fits: send now rather than when the next message (after its
            # parse and sync) finds the datagram full -- the books in it stop waiting sooner.
            self.flush()

    def trade(self, venue, instrument, exch_ns, recv_ns, trade_id, price, qty, side):
        if self.off + wire.TRADE_LEN > self.max_payload:
            self.flush()
        self._note(recv_ns)
        self.off = wire.pack_trade(self.buf, self.off, venue, instrument, exch_ns, recv_ns,
                                   trade_id, price, qty, side)
        self.count += 1

    def quote(self, venue, instrument, exch_ns, recv_ns, update_id, bid_px, bid_qty, ask_px,
              ask_qty):
        if self.off + wire.QUOTE_LEN > self.max_payload:
            self.flush()
        self._note(recv_ns)
        self.off = wire.pack_quote(self.buf, self.off, venue, instrument, exch_ns, recv_ns,
                                   update_id, bid_px, bid_qty, ask_px, ask_qty)
        self.count += 1

    def status(self, venue, instrument, recv_ns, state):
        if self.off + wire.STATUS_LEN > self.max_payload:
            self.flush()
        self._note(recv_ns)
        self.off = wire.pack_status(self.buf, self.off, venue, instrument, recv_ns, state)
        self.count += 1
        entry = self._refresh.get(instrument)
        if entry is not None:
            entry[3] = state

    def _note(self, recv_ns):
        if self.count == 0 or recv_ns < self.oldest_recv_ns:
            self.oldest_recv_ns = recv_ns

    def flush(self):
        """Send the pending packet, if any (called once per processed inbound frame)."""
        count = self.count
        if count == 0:
            return
        send_ns = time.time_ns()
        wire.pack_packet_header(self.buf, 0, self.channel, count, self.session, self.seq, send_ns)
        self._send(self.off, send_ns)
        if self.history is not None:
            self.history.add(self.seq, count, bytes(self.view[:self.off]))
        if self.latency is not None and self.oldest_recv_ns:
            self.latency.record(send_ns - self.oldest_recv_ns)
        self.seq += count
        self.messages_sent += count
        self.count = 0
        self.off = wire.HEADER_SIZE

    def _send(self, length, send_ns):
        data = self.view[:length]
        sent = False
        for sock, target in self._sends:
            try:
                sock.sendto(data, target)
                sent = True
            except OSError as exc:
                # The sequence number still advances: a consumer sees the hole as a gap (or
                # takes the other feed's copy), which is the truth. Never retry on the hot path.
                self.send_errors += 1
                if self.send_errors == 1 or self.send_errors % 1000 == 0:
                    log.warning("sendto %s:%d failed (%s); %d send errors so far", target[0],
                                target[1], errno.errorcode.get(exc.errno, exc),
                                self.send_errors)
        if sent:
            self.packets_sent += 1
            self.bytes_sent += length
            self.last_send_ns = send_ns

    # -- housekeeping (called from a timer, not the hot path) ---------------------------------------

    def set_instruments(self, instruments):
        """[(venue_id, instrument_id, symbol)] announced now and by the refresh cycle."""
        self.instruments = list(instruments)
        old = self._refresh
        self._refresh = {}
        for venue, instrument, symbol in self.instruments:
            self._refresh[instrument] = old.get(instrument) or [None, 0, 0, 0]
        self._refresh_order = [(venue, instrument, symbol)
                               for venue, instrument, symbol in self.instruments]
        self._refresh_index = 0
        self.details = {i: d for i, d in self.details.items() if i in self._refresh}

    def set_details(self, instrument, spec, loaded_ns):
        """Instrument details (tick, lot, ...: a venues.instruments.InstrumentSpec) to send as a
        ``D`` after the instrument's ``I``, now and by the refresh cycle."""
        self.details[instrument] = (spec, loaded_ns)

    def _pack_details(self, venue, instrument):
        """The instrument's ``D`` after its ``I`` (nothing when its details are unknown)."""
        entry = self.details.get(instrument)
        if entry is None:
            return
        spec, loaded_ns = entry
        self.off = wire.pack_details(self.buf, self.off, venue, instrument, loaded_ns,
                                     spec.tick_size, spec.lot_size, spec.min_qty,
                                     spec.contract_size, spec.trading)
        self.count += 1

    def send_instruments(self, now_ns=None):
        self.flush()
        recv_ns = now_ns or time.time_ns()
        for venue, instrument, symbol in self.instruments:
            if self.off + wire.INSTRUMENT_LEN + wire.DETAILS_LEN > self.max_payload:
                self.flush()
            self._note(recv_ns)
            self.off = wire.pack_instrument(self.buf, self.off, venue, instrument, symbol)
            self.count += 1
            self._pack_details(venue, instrument)
        # instrument definitions are not market data: keep them out of the latency figures
        self.oldest_recv_ns = 0
        self.flush()
        self.last_instruments_ns = recv_ns

    def tick(self, now_ns=None):
        """Housekeeping (every ~0.1 s): the due slice of the refresh cycle (or, with the cycle
        off, instrument definitions every instrument_interval_s), and a heartbeat after
        heartbeat_interval_s without traffic."""
        now_ns = now_ns or time.time_ns()
        if self.refresh_interval_ns > 0:
            self.refresh(now_ns)
        elif now_ns - self.last_instruments_ns >= self.instrument_interval_ns:
            self.send_instruments(now_ns)
        if now_ns - self.last_send_ns >= self.heartbeat_interval_ns:
            self.flush()
            self._empty_packet(0, now_ns)

    def refresh(self, now_ns):
        """Send the slice of the refresh cycle that is due by ``now_ns``.

        Instrument k of n is refreshed at ``k/n`` of the interval, so a channel with many
        instruments sends a few per tick rather than all of them at once. Per instrument: ``I``,
        its last ``S`` (if any was sent), and, when it is live and sent no ``B`` during the last
        interval, its current book flagged BOOK_FLAG_REFRESH (the same levels and update_id a
        new ``B`` would carry: the book has not changed since)."""
        order = self._refresh_order
        total = len(order)
        interval_ns = self.refresh_interval_ns
        if not self._refresh_cycle_ns:
            self._refresh_cycle_ns = now_ns     # the first cycle starts now
        elapsed_ns = now_ns - self._refresh_cycle_ns
        if elapsed_ns >= interval_ns or elapsed_ns < 0:
            if self._refresh_index < total and elapsed_ns >= 0:
                self._refresh_slice(self._refresh_index, total, now_ns)   # finish the cycle
            self._refresh_cycle_ns = now_ns
            self._refresh_index = 0
            elapsed_ns = 0
        due = total if interval_ns <= 0 else min(total, -(-total * (elapsed_ns + 1) // interval_ns))
        if due > self._refresh_index:
            self._refresh_slice(self._refresh_index, due, now_ns)
            self._refresh_index = due

    def _refresh_slice(self, start, end, now_ns):
        self.flush()
        self.oldest_recv_ns = 0         # not market data: keep them out of the latency figures
        refresh = self._refresh
        messages = 0
        stale_ns = now_ns - self.refresh_interval_ns
        for venue, instrument, symbol in self._refresh_order[start:end]:
            entry = refresh[instrument]
            self._room(wire.INSTRUMENT_LEN + wire.DETAILS_LEN + wire.STATUS_LEN + self.book_room)
            self.off = wire.pack_instrument(self.buf, self.off, venue, instrument, symbol)
            self.count += 1
            messages += 1
            if instrument in self.details:
                self._pack_details(venue, instrument)
                messages += 1
            state = entry[3]
            if state:
                self.off = wire.pack_status(self.buf, self.off, venue, instrument, now_ns, state)
                self.count += 1
                messages += 1
            book = entry[0]
            if state == wire.STATE_LIVE and book is not None and entry[2] <= stale_ns:
                self._room(self.book_room)      # a deep book may not share I, D and S's datagram
                self.off = wire.pack_book(self.buf, self.off, venue, instrument,
                                          wire.BOOK_FLAG_REFRESH, entry[1], entry[2], book,
                                          self.depth)
                self.count += 1
                messages += 1
        self.refresh_messages += messages
        self.flush()
        self.last_instruments_ns = now_ns

    def _room(self, length):
        if self.off + length > self.max_payload:
            self.oldest_recv_ns = 0
            self.flush()

    def _empty_packet(self, flags, now_ns):
        # heartbeat / end of session: count 0, seq = the next sequence number to be used
        wire.pack_packet_header(self.buf, flags, self.channel, 0, self.session, self.seq, now_ns)
        self._send(wire.HEADER_SIZE, now_ns)

    def end_session(self):
        """Flush what is pending, then send the end-of-session packet (clean stop)."""
        if self.sock is None:
            return
        self.flush()
        self._empty_packet(wire.PACKET_FLAG_END_OF_SESSION, time.time_ns())

    def counters(self):
        return {"packets_sent": self.packets_sent, "messages_sent": self.messages_sent,
                "bytes_sent": self.bytes_sent, "send_errors": self.send_errors,
                "books_sent": self.books_sent, "refresh_messages": self.refresh_messages,
                "next_seq": self.seq, "session": self.session}


def new_session_id(clock=time.time, sleep=time.sleep):
    """A session id no earlier run of this publisher used: the Unix second that starts after
    this call (waiting for it, at most 1 s, once at start-up).

    Why wait: a run owns its whole start second, so a run killed and restarted at once
    (SIGKILL, systemd Restart=) cannot reuse the id, which receivers would take for duplicates.
    Ids still grow with time, so receivers that only accept larger sessions keep working. A
    wall clock stepped back can give a smaller id (receivers of this version accept it once a
    few packets confirm it; see docs/PROTOCOL.md "Packet"); two runs at once on one channel
    are a configuration error the ids cannot fix.
    """
    now = clock()
    second = int(now) + 1
    sleep(max(0.0, second - now))
    return second & 0xFFFFFFFF


class History(object):
    """The last ``capacity`` datagrams with messages, for retransmission: a ring of
    ``(first_seq, count, bytes)`` in seq order (a bisect finds a range)."""

    def __init__(self, capacity):
        self.capacity = capacity
        self._items = [None] * capacity
        self._head = 0        # index of the oldest item
        self._size = 0

    def __len__(self):
        return self._size

    def add(self, seq, count, data):
        if self._size < self.capacity:
            self._items[(self._head + self._size) % self.capacity] = (seq, count, data)
            self._size += 1
        else:
            self._items[self._head] = (seq, count, data)
            self._head = (self._head + 1) % self.capacity

    def _at(self, index):
        return self._items[(self._head + index) % self.capacity]

    def oldest_seq(self):
        return self._at(0)[0] if self._size else None

    def next_seq(self):
        if not self._size:
            return None
        seq, count, _ = self._at(self._size - 1)
        return seq + count

    def clear(self):
        self._items = [None] * self.capacity
        self._head = 0
        self._size = 0

    def covering(self, first_seq, count):
        """The datagrams holding messages ``first_seq .. first_seq+count-1``, oldest first, or
        None when any of them is no longer (or not yet) held."""
        if not self._size or first_seq < self.oldest_seq() or first_seq + count > self.next_seq():
            return None
        low, high = 0, self._size - 1
        while low < high:                      # last datagram starting at or before first_seq
            mid = (low + high + 1) // 2
            if self._at(mid)[0] <= first_seq:
                low = mid
            else:
                high = mid - 1
        end_seq = first_seq + count
        result = []
        index = low
        while index < self._size:
            seq, n, data = self._at(index)
            if seq >= end_seq:
                break
            result.append(data)
            index += 1
        return result


def _ipv6_interface_index(address):
    """IPV6_MULTICAST_IF takes an interface index; find the interface holding ``address``."""
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6:
                    hexaddr = fields[0]
                    text = ":".join(hexaddr[i:i + 4] for i in range(0, 32, 4))
                    if socket.inet_pton(socket.AF_INET6, text) == \
                            socket.inet_pton(socket.AF_INET6, address):
                        return int(fields[1], 16)
    except OSError as exc:
        log.warning("cannot read /proc/net/if_inet6 (%s); using the default interface", exc)
    return 0
