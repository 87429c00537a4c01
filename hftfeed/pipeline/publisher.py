"""UDP publisher: packs PROTOCOL.md messages into one preallocated datagram buffer and sends it.

Messages caused by one inbound exchange frame are appended to the pending packet and sent by
:meth:`Publisher.flush` once that frame is processed (or earlier, when the next message would
not fit ``max_payload``). Sequence numbers count messages (MoldUDP64 style); a heartbeat goes out
after ``heartbeat_interval_s`` of silence, instrument definitions every ``instrument_interval_s``,
and an end-of-session packet on a clean stop.

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
    """One publishing channel (one UDP destination, one sequence space, one session)."""

    def __init__(self, target_host, target_port, channel=1, depth=20, max_payload=1472,
                 multicast_ttl=1, multicast_interface=None, multicast_loop=True,
                 heartbeat_interval_s=1.0, instrument_interval_s=5.0,
                 sndbuf_bytes=4 * 2 ** 20, rcvbuf_bytes=4 * 2 ** 20, source_host=None,
                 session=None, latency=None, flush_policy="frame"):
        self.target = (target_host, target_port)
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
        self.session = (int(time.time()) & 0xFFFFFFFF) if session is None else session
        self.latency = latency          # optional stats.LatencyHistogram of send_ns - recv_ns
        self.flush_policy = flush_policy  # read by the feed: "frame" or "read" (docs/config.md)
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
        self.sock = None
        self.buffer_report = None
        self.packets_sent = 0
        self.messages_sent = 0
        self.bytes_sent = 0
        self.send_errors = 0
        self.books_sent = 0

    # -- socket --------------------------------------------------------------------------------

    def open(self):
        """Create the UDP socket with its buffers and multicast options; returns the buffer
        report (an hw.HwResult saying what the kernel granted)."""
        host = self.target[0]
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            self.buffer_report = hw.apply_socket_buffers(sock, self.sndbuf_bytes,
                                                         self.rcvbuf_bytes)
            if family == socket.AF_INET:
                self._ipv4_options(sock)
            else:
                self._ipv6_options(sock)
            if self.source_host:
                sock.bind((self.source_host, 0))
        except OSError:
            sock.close()
            raise
        self.sock = sock
        return self.buffer_report

    def _ipv4_options(self, sock):
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, self.multicast_ttl)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1 if self.multicast_loop else 0)
        if self.multicast_interface:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF,
                            socket.inet_aton(self.multicast_interface))

    def _ipv6_options(self, sock):
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, self.multicast_ttl)
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_LOOP,
                        1 if self.multicast_loop else 0)
        if self.multicast_interface:
            index = _ipv6_interface_index(self.multicast_interface)
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)

    def close(self):
        if self.sock is not None:
            self.sock.close()
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
        if self.latency is not None and self.oldest_recv_ns:
            self.latency.record(send_ns - self.oldest_recv_ns)
        self.seq += count
        self.messages_sent += count
        self.count = 0
        self.off = wire.HEADER_SIZE

    def _send(self, length, send_ns):
        try:
            self.sock.sendto(self.view[:length], self.target)
        except OSError as exc:
            # The sequence number still advances: a consumer sees the hole as a gap, which is
            # the truth. Never retry in a loop on the hot path.
            self.send_errors += 1
            if self.send_errors == 1 or self.send_errors % 1000 == 0:
                log.warning("sendto %s:%d failed (%s); %d send errors so far", self.target[0],
                            self.target[1], errno.errorcode.get(exc.errno, exc), self.send_errors)
            return
        self.packets_sent += 1
        self.bytes_sent += length
        self.last_send_ns = send_ns

    # -- housekeeping (called from a timer, not the hot path) ---------------------------------------

    def set_instruments(self, instruments):
        """[(venue_id, instrument_id, symbol)] announced now and every instrument_interval_s."""
        self.instruments = list(instruments)

    def send_instruments(self, now_ns=None):
        self.flush()
        recv_ns = now_ns or time.time_ns()
        for venue, instrument, symbol in self.instruments:
            if self.off + wire.INSTRUMENT_LEN > self.max_payload:
                self.flush()
            self._note(recv_ns)
            self.off = wire.pack_instrument(self.buf, self.off, venue, instrument, symbol)
            self.count += 1
        # instrument definitions are not market data: keep them out of the latency figures
        self.oldest_recv_ns = 0
        self.flush()
        self.last_instruments_ns = recv_ns

    def tick(self, now_ns=None):
        """Heartbeat after heartbeat_interval_s without traffic; instruments every 5 s."""
        now_ns = now_ns or time.time_ns()
        if now_ns - self.last_instruments_ns >= self.instrument_interval_ns:
            self.send_instruments(now_ns)
        elif now_ns - self.last_send_ns >= self.heartbeat_interval_ns:
            self.flush()
            self._empty_packet(0, now_ns)

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
                "books_sent": self.books_sent, "next_seq": self.seq, "session": self.session}


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
