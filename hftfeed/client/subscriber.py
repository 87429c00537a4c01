"""The :class:`Subscriber`: join the feed, get events (iterator, callbacks or ``async for``).

One receive path for every source: live UDP sockets (unicast or multicast, IPv4/IPv6, one or
more groups: A/B feeds arbitrate, first copy wins) and pcap recordings
(:meth:`Subscriber.from_pcap`), so a strategy runs unchanged on both.

Per datagram: :func:`wire.check_datagram` (the project's one validation function) -> optional
source-address and channel filters -> :class:`~hftfeed.client.sequencer.Sequencer` (gaps,
duplicates, out of order, restarts; forged datagrams are held until the stream confirms them)
-> decode -> events. On a gap the subscriber first waits up to ``arbitration_wait_s`` for the
other feed(s) to deliver the missing datagrams, then, if ``retransmit`` is configured, fetches
them over TCP, and only then applies the packet that revealed the gap: recovered messages are
applied in order, exactly as if nothing had been lost. What stays lost is reported as a
``Notice("lost")`` and makes every book of that channel untrusted until its next ``B``.
"""

import asyncio
import logging
import selectors
import time

from hftfeed.client import sequencer as seqmod
from hftfeed.client.events import (Book, Books, Details, Instrument, Notice, Quote, Status,
                                    Trade)
from hftfeed.client.names import sanitize
from hftfeed.client.net import DEFAULT_RCVBUF_BYTES, open_udp_socket, parse_listen
from hftfeed.client.pcap import PcapReader
from hftfeed.client.retransmit import RetransmitClient
from hftfeed.codecs import wire
from hftfeed.errors import WireError

log = logging.getLogger("hftfeed.client")

RECV_BUFFER_BYTES = 65536
MAX_DATAGRAMS_PER_POLL = 4096
MAX_RETRANSMIT_MESSAGES = 100000     # per gap; a bigger hole is reported lost
RETRANSMIT_CHUNK = 10000             # messages per request (the service's default limit)
PCAP_LOOKAHEAD = 64                  # datagrams a recording is read ahead to fill a gap
MAX_DECODE_ERROR_LOGS = 10
MAX_INSTRUMENT_KEYS = 65536          # (channel, venue, instrument) keys tracked at most
KINDS = ("book", "trade", "quote", "status", "instrument", "details", "notice")

COUNTERS = ("datagrams", "bytes", "messages", "decode_errors", "filtered_source",
            "filtered_channel", "recv_errors", "retransmit_requests", "retransmitted_messages",
            "retransmit_failures", "dropped_instruments",
            "lost_messages", "collisions")


def _addresses(listen):
    if isinstance(listen, str):
        listen = [listen]
    result = []
    for item in listen:
        result.append(parse_listen(item) if isinstance(item, str) else (item[0], int(item[1])))
    return result


class Subscriber(object):
    """Receive the hftfeed UDP stream and turn it into events.

    ``listen``: "HOST:PORT" (or a list: A/B feeds or several groups); ``interface``: the
    interface to join multicast groups on (address, name or index); ``sources``: accept
    datagrams only from these IP addresses; ``channels``: accept only these publisher channels;
    ``retransmit``: "HOST:PORT" of the publisher's retransmission service.
    """

    def __init__(self, listen=(), *, interface=None, sources=None, channels=None,
                 retransmit=None, rcvbuf_bytes=DEFAULT_RCVBUF_BYTES,
                 confirm_packets=seqmod.DEFAULT_CONFIRM_PACKETS, arbitration_wait_s=0.02,
                 retransmit_timeout_s=1.0, clock_ns=time.time_ns):
        self._socks = []
        self._selector = selectors.DefaultSelector()
        try:
            for host, port in _addresses(listen):
                sock = open_udp_socket(host, port, interface, rcvbuf_bytes)[0]
                self._socks.append(sock)
                self._selector.register(sock, selectors.EVENT_READ)
        except BaseException:
            self.close()
            raise
        self._setup(sources, channels, retransmit, confirm_packets, arbitration_wait_s,
                    retransmit_timeout_s, clock_ns)

    def _setup(self, sources, channels, retransmit, confirm_packets, arbitration_wait_s,
               retransmit_timeout_s, clock_ns):
        self.sources = frozenset(sources) if sources else None
        self.channels = frozenset(channels) if channels else None
        self.arbitration_wait_s = arbitration_wait_s
        self._clock_ns = clock_ns
        self._retransmit = None
        if retransmit:
            host, port = retransmit if not isinstance(retransmit, str) else \
                parse_listen(retransmit)
            self._retransmit = RetransmitClient(host, port, retransmit_timeout_s)
        self.sequencer = seqmod.Sequencer(confirm_packets)
        self.books = Books()
        self.symbols = {}            # key -> sanitised symbol
        self.states = {}             # key -> state
        self._exps = {}              # key -> (price_exp, qty_exp)
        self.details = {}            # key -> the latest Details (tick, lot, ...) of D messages
        self._keys_by_channel = {}   # channel -> set of keys
        self._raw_symbols = {}       # (venue, instrument) -> {channel: raw symbol}
        self._known_keys = set()     # every key seen, at most MAX_INSTRUMENT_KEYS
        self._queue = []
        self._callbacks = dict((kind, []) for kind in KINDS)
        self._buf = bytearray(RECV_BUFFER_BYTES)
        self._arbitrating = False
        self._deferred = []         # (channel, seq, data, local_ns, source) read ahead
        self._pcap_reader = None
        self._flushing = False
        self._pcap = None
        self._closed = False
        self.last_decode_error = None
        for name in COUNTERS:
            setattr(self, name, 0)

    @classmethod
    def from_pcap(cls, path, *, port=None, channels=None,
                  confirm_packets=seqmod.DEFAULT_CONFIRM_PACKETS):
        """A subscriber that reads a pcap recording (``record``, tcpdump) instead of sockets;
        ``port`` keeps only datagrams sent to that UDP port. Iteration ends at the end of the
        file; ``local_ns`` of each event is the capture time."""
        self = cls.__new__(cls)
        self._socks = []
        self._selector = None
        self._setup(None, channels, None, confirm_packets, 0.0, 0.0, time.time_ns)
        self._pcap_reader = PcapReader(path)
        self._pcap = iter(self._pcap_reader)
        self._pcap_port = port
        return self

    # -- consuming ---------------------------------------------------------------------------

    def on(self, kind, callback):
        """Call ``callback(event)`` for every event of ``kind`` (see KINDS); returns callback."""
        if kind not in self._callbacks:
            raise ValueError("unknown event kind %r (one of %s)" % (kind, ", ".join(KINDS)))
        self._callbacks[kind].append(callback)
        return callback

    def on_book(self, callback):
        return self.on("book", callback)

    def on_trade(self, callback):
        return self.on("trade", callback)

    def on_quote(self, callback):
        return self.on("quote", callback)

    def on_status(self, callback):
        return self.on("status", callback)

    def on_instrument(self, callback):
        return self.on("instrument", callback)

    def on_notice(self, callback):
        return self.on("notice", callback)

    def poll(self, timeout_s=0.0):
        """Receive what is available (waiting up to ``timeout_s`` for the first datagram), run
        the callbacks, and return the new events in order. ``[]`` at the end of a recording."""
        if self._pcap is not None:
            self._read_pcap(MAX_DATAGRAMS_PER_POLL)
        elif not self._drain() and timeout_s > 0 and not self._closed:
            if self._selector.select(timeout_s):
                self._drain()
        events = self._queue
        self._queue = []
        callbacks = self._callbacks
        for event in events:
            for callback in callbacks[event.kind]:
                callback(event)
        return events

    @property
    def exhausted(self):
        """True when a recording has been read to its end (never for live sockets)."""
        return self._pcap is False

    def run(self, duration_s=None):
        """Dispatch callbacks until ``duration_s`` passes (forever if None), the recording
        ends, or :meth:`close` is called from a callback."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while not self._closed and not self.exhausted:
            wait_s = 0.2
            if deadline is not None:
                wait_s = min(wait_s, deadline - time.monotonic())
                if wait_s <= 0:
                    return
            self.poll(wait_s)

    def __iter__(self):
        while not self._closed and not self.exhausted:
            for event in self.poll(0.2):
                yield event

    def __aiter__(self):
        return self._aiter()

    async def _aiter(self):
        loop = asyncio.get_running_loop()
        ready = asyncio.Event()
        for sock in self._socks:
            loop.add_reader(sock.fileno(), ready.set)
        try:
            while not self._closed and not self.exhausted:
                ready.clear()            # before reading: a datagram after it sets it again
                events = self.poll(0)
                if not events and self._pcap is None:
                    try:
                        await asyncio.wait_for(ready.wait(), 0.2)
                    except asyncio.TimeoutError:
                        continue         # the deadline: re-check closed, then wait again
                    continue
                for event in events:
                    yield event
                await asyncio.sleep(0)
        finally:
            if not self._closed:
                for sock in self._socks:
                    loop.remove_reader(sock.fileno())

    def stats(self):
        """Counters of this subscriber and of its sequencer, as one dict."""
        result = dict((name, getattr(self, name)) for name in COUNTERS)
        seq = self.sequencer
        for name in ("gaps", "missing_messages", "duplicates", "out_of_order",
                     "recovered_messages", "restarts", "stale_session_packets", "held_packets",
                     "resyncs"):
            result[name] = getattr(seq, name)
        result["channels"] = dict((ch, st.as_dict()) for ch, st in seq.channels.items())
        return result

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._selector is not None:
            self._selector.close()
        for sock in self._socks:
            sock.close()
        if self._retransmit is not None:
            self._retransmit.close()
        if self._pcap_reader is not None:
            self._pcap_reader.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    # -- receive -------------------------------------------------------------------------------

    def _read_pcap(self, limit):
        for _ in range(limit):
            item = self._next_pcap()
            if item is None:
                return
            self.datagram(*item)

    def _next_pcap(self):
        """(payload, capture ns, source host) of the recording's next datagram (port filter
        applied), or None at its end."""
        while self._pcap:
            try:
                ts_ns, src, dst, payload = next(self._pcap)
            except StopIteration:
                self._pcap = False
                return None
            if self._pcap_port is None or dst[1] == self._pcap_port:
                return payload, ts_ns, src[0]
        return None

    def _pcap_arbitrate(self, channel, state, seq):
        """A recording of A/B feeds: the other feed's copy of a missing datagram is a little
        further on in the file. Read ahead (up to PCAP_LOOKAHEAD datagrams) as the live client
        would have waited for it."""
        self._arbitrating = True
        try:
            for _ in range(PCAP_LOOKAHEAD):
                self._take_deferred(channel, seq)
                if state.next_seq >= seq:
                    return
                item = self._next_pcap()
                if item is None:
                    return
                data, ts_ns, source = item
                if len(data) < wire.HEADER_SIZE:
                    self.datagram(data, ts_ns, source)      # counted as malformed
                    continue
                fields = wire.PACKET_HEADER.unpack_from(data)
                self._deferred.append((fields[3], fields[7], data, ts_ns, source))
            self._take_deferred(channel, seq)
        finally:
            self._arbitrating = False

    def _drain(self):
        handled = 0
        for sock in self._socks:
            handled += self._drain_socket(sock, MAX_DATAGRAMS_PER_POLL)
        return handled

    def _drain_socket(self, sock, limit):
        buf = self._buf
        handled = 0
        while handled < limit:
            try:
                nbytes, address = sock.recvfrom_into(buf)
            except BlockingIOError:
                break
            except OSError as exc:
                self.recv_errors += 1
                log.warning("recv failed: %s", exc)
                break
            handled += 1
            self.datagram(bytes(buf[:nbytes]), self._clock_ns(), address[0])
        return handled

    def datagram(self, data, local_ns=None, source=None):
        """Handle one datagram given as bytes (live path, recordings, tests)."""
        if local_ns is None:
            local_ns = self._clock_ns()
        self.datagrams += 1
        self.bytes += len(data)
        if self.sources is not None and source not in self.sources:
            self.filtered_source += 1
            return
        self._datagram(data, local_ns)

    def _datagram(self, data, local_ns):
        try:
            header = wire.check_datagram(data)
        except WireError as exc:
            self._decode_error(exc)
            return
        flags, channel, count, session, seq, send_ns = header
        if self.channels is not None and channel not in self.channels:
            self.filtered_channel += 1
            return
        state = self.sequencer.channels.get(channel)
        if (state is not None and session == state.session and seq > state.next_seq
                and seq - state.next_seq <= self.sequencer.max_jump_messages):
            self._recover(channel, session, state, seq)
        self._sequence(data, header, local_ns)
        if self._deferred and not self._arbitrating and not self._flushing:
            self._flush_deferred()

    def _flush_deferred(self):
        """Apply the datagrams read ahead during arbitration, lowest seq first (A and B copies
        of one packet sit next to each other: the second is a duplicate)."""
        self._flushing = True
        try:
            while self._deferred and not self._arbitrating:
                self._deferred.sort()
                channel, seq, data, local_ns, source = self._deferred.pop(0)
                self.datagram(data, local_ns, source)
        finally:
            self._flushing = False

    def _take_deferred(self, channel, seq):
        """Apply the read-ahead datagrams of ``channel`` below ``seq`` (they may fill a gap)."""
        if not self._deferred:
            return
        items = sorted(self._deferred)
        self._deferred = [i for i in items if not (i[0] == channel and i[1] < seq)]
        for item in items:
            if item[0] == channel and item[1] < seq:
                self.datagram(item[2], item[3], item[4])

    def _recover(self, channel, session, state, seq):
        """A gap: let the other feed(s) fill it, then the retransmission service."""
        if self._arbitrating:
            return
        if len(self._socks) > 1 and self.arbitration_wait_s > 0:
            self._arbitrate(channel, state, seq)
        elif self._pcap:
            self._pcap_arbitrate(channel, state, seq)
        if state.next_seq < seq and self._retransmit is not None \
                and state.session == session and seq - state.next_seq <= MAX_RETRANSMIT_MESSAGES:
            self._fetch(channel, session, state, seq)

    def _fetch(self, channel, session, state, seq):
        """Ask the retransmission service for ``state.next_seq .. seq-1`` (in requests of at
        most RETRANSMIT_CHUNK messages, the service's own limit) and apply what comes back."""
        first = state.next_seq
        code = wire.RETRANS_DONE
        self._arbitrating = True         # no nested recovery for the fetched datagrams
        try:
            while state.next_seq < seq and code == wire.RETRANS_DONE:
                start = state.next_seq
                count = min(seq - start, RETRANSMIT_CHUNK)
                self.retransmit_requests += 1
                datagrams, code = self._retransmit.fetch(channel, session, start, count)
                for data in datagrams:
                    before = state.next_seq
                    self.datagrams += 1
                    self.bytes += len(data)
                    self._datagram(data, self._clock_ns())
                    self.retransmitted_messages += max(0, min(state.next_seq, seq) - before)
                if state.next_seq == start:
                    break                # nothing usable came back: do not ask again
        finally:
            self._arbitrating = False
        if state.next_seq < seq:
            self.retransmit_failures += 1
            if self.retransmit_failures <= MAX_DECODE_ERROR_LOGS:
                log.warning("retransmission of seq %d..%d on channel %d failed: %s%s", first,
                            seq - 1, channel,
                            wire.RETRANS_CODE_NAMES.get(code, sanitize(
                                str(self._retransmit.last_error), 200)),
                            "; further failures are only counted"
                            if self.retransmit_failures == MAX_DECODE_ERROR_LOGS else "")

    def _arbitrate(self, channel, state, seq):
        deadline = time.monotonic() + self.arbitration_wait_s
        self._arbitrating = True
        try:
            while state.next_seq < seq:
                self._take_deferred(channel, seq)
                for sock in self._socks:
                    self._drain_until(sock, seq)
                self._take_deferred(channel, seq)
                if state.next_seq >= seq:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._selector.select(remaining)
        finally:
            self._arbitrating = False

    def _drain_until(self, sock, seq):
        buf = self._buf
        for _ in range(MAX_DATAGRAMS_PER_POLL):
            try:
                nbytes, address = sock.recvfrom_into(buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.recv_errors += 1
                log.warning("recv failed: %s", exc)
                return
            data = bytes(buf[:nbytes])
            local_ns = self._clock_ns()
            if nbytes < wire.HEADER_SIZE:
                self.datagram(data, local_ns, address[0])    # counted as malformed
                continue
            fields = wire.PACKET_HEADER.unpack_from(data)
            self._deferred.append((fields[3], fields[7], data, local_ns, address[0]))

    def _decode_error(self, exc):
        self.decode_errors += 1
        self.last_decode_error = sanitize(str(exc), 200)
        if self.decode_errors <= MAX_DECODE_ERROR_LOGS:
            log.warning("malformed datagram dropped (%s)%s", self.last_decode_error,
                        "; further ones are only counted"
                        if self.decode_errors == MAX_DECODE_ERROR_LOGS else "")

    def _sequence(self, data, header, local_ns):
        flags, channel, count, session, seq, send_ns = header
        sequencer = self.sequencer
        mode = sequencer.packet(channel, session, seq, count, flags, (data, local_ns))
        if mode == seqmod.APPLY:
            if sequencer.restarted:
                self._restart(channel, session, local_ns)
            if sequencer.gap is not None:
                self._lost(channel, session, sequencer.gap, local_ns)
            self._apply(data, channel, session, send_ns, local_ns, True)
        elif mode == seqmod.RELEASE:
            if sequencer.restarted:
                self._restart(channel, session, local_ns)
            if sequencer.gap is not None:
                self._lost(channel, session, sequencer.gap, local_ns)
            for held, held_local_ns in sequencer.released:
                held_header = wire.decode_header(held)
                self._apply(held, channel, session, held_header.send_ns, held_local_ns, True)
        elif mode == seqmod.FILL:
            self._apply(data, channel, session, send_ns, local_ns, False)
        if flags & wire.PACKET_FLAG_END_OF_SESSION and mode in (seqmod.APPLY, seqmod.RELEASE):
            self._queue.append(Notice("end_of_session", channel, session,
                                      "publisher stopped cleanly", local_ns=local_ns))

    def _restart(self, channel, session, local_ns):
        self.books._untrust_channel(channel)
        self._queue.append(Notice("restart", channel, session,
                                  "publisher restarted: new session %d" % session,
                                  local_ns=local_ns))

    def _lost(self, channel, session, gap, local_ns):
        first, end = gap
        self.lost_messages += end - first
        self.books._untrust_channel(channel)
        self._queue.append(Notice("lost", channel, session,
                                  "messages %d..%d lost" % (first, end - 1), first, end - first,
                                  local_ns))

    def _apply(self, data, channel, session, send_ns, local_ns, in_order):
        """Decode a validated datagram and queue its events. ``in_order`` False (a late packet
        filling a gap): only trades and definitions are news; its books, quotes and states are
        older than what was already applied and are dropped."""
        packet = wire.decode_packet(data)
        self.messages += packet.count
        queue = self._queue
        known = self._known_keys
        for msg in packet.messages:
            mtype = msg.type
            key = (channel, msg.venue, msg.instrument)
            if key not in known:
                # bounded state: forged datagrams naming ever new instruments cannot grow it
                if len(known) >= MAX_INSTRUMENT_KEYS:
                    self.dropped_instruments += 1
                    continue
                known.add(key)
            if mtype == wire.TYPE_BOOK:
                if not in_order:
                    continue
                exps = self._exps.get(key, (-8, -8))
                book = Book(channel, session, msg, self.symbols.get(key), send_ns, local_ns,
                            exps[0], exps[1], True)
                # PROTOCOL.md: a book is published only while synchronised, so B means live
                self.states[key] = wire.STATE_LIVE
                self._remember(key)
                self.books._put(book)
                queue.append(book)
            elif mtype == wire.TYPE_TRADE:
                exps = self._exps.get(key, (-8, -8))
                queue.append(Trade(channel, session, msg, self.symbols.get(key), send_ns,
                                   local_ns, exps[0], exps[1]))
            elif mtype == wire.TYPE_QUOTE:
                if not in_order:
                    continue
                exps = self._exps.get(key, (-8, -8))
                queue.append(Quote(channel, session, msg, self.symbols.get(key), send_ns,
                                   local_ns, exps[0], exps[1]))
            elif mtype == wire.TYPE_STATUS:
                if not in_order:
                    continue
                self.states[key] = msg.state
                self._remember(key)
                if msg.state != wire.STATE_LIVE:
                    self.books._untrust(key)
                queue.append(Status(channel, session, msg, self.symbols.get(key), send_ns,
                                    local_ns))
            elif mtype == wire.TYPE_INSTRUMENT:
                self._define(key, channel, session, msg, send_ns, local_ns)
            elif mtype == wire.TYPE_DETAILS:
                exps = self._exps.get(key, (-8, -8))
                event = Details(channel, session, msg, self.symbols.get(key), send_ns, local_ns,
                                exps[0], exps[1])
                if in_order:        # a late copy must not replace newer details
                    self.details[key] = event
                queue.append(event)

    def _remember(self, key):
        keys = self._keys_by_channel.get(key[0])
        if keys is None:
            keys = self._keys_by_channel[key[0]] = set()
        keys.add(key)

    def _define(self, key, channel, session, msg, send_ns, local_ns):
        event = Instrument(channel, session, msg, send_ns, local_ns)
        known = self.symbols.get(key)
        if known is not None and known != event.symbol:
            self._queue.append(Notice("redefined", channel, session,
                                      "instrument %d on channel %d is now %s (was %s)"
                                      % (msg.instrument, channel, event.symbol, known),
                                      local_ns=local_ns))
            self.books._untrust(key)
        self.symbols[key] = event.symbol
        self._exps[key] = (msg.price_exp, msg.qty_exp)
        self._remember(key)
        others = self._raw_symbols.setdefault((msg.venue, msg.instrument), {})
        if channel not in others:
            for other_channel, other_symbol in others.items():
                if other_symbol != msg.symbol:
                    self.collisions += 1
                    self._queue.append(Notice(
                        "collision", channel, session,
                        "instrument id %d of venue %d is %s on channel %d and %s on channel %d:"
                        " kept apart by channel" % (msg.instrument, msg.venue, event.symbol,
                                                    channel, sanitize(other_symbol, 32),
                                                    other_channel), local_ns=local_ns))
                    break
        others[channel] = msg.symbol
        self._queue.append(event)
