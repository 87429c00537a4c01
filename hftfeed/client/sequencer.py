"""Sequence tracking per (channel, session), hardened against forged datagrams (sans-I/O).

PROTOCOL.md "Packet": ``seq`` counts messages; a packet ``(seq=s, count=c)`` carries messages
``s .. s+c-1``. For each packet :meth:`Sequencer.packet` says what the caller may do with it:

``APPLY``  in order (after a gap too: ``gap`` then holds the missing range) -> use it;
``FILL``   late, fills part of an earlier gap (out of order, or a retransmission) -> its messages
           are new, but newer state has already been applied;
``DUP``    every message already seen (A/B arbitration: the second copy lands here) -> drop;
``STALE``  an older session than the confirmed one -> drop;
``HOLD``   a new session or a far jump that is not confirmed yet -> kept, not used;
``RELEASE`` this packet confirmed a held stream: ``released`` lists the held payloads, oldest
           first, ending with this one's; the caller applies them in order (nothing is lost).

Why the HOLD state: UDP is unauthenticated, so one spoofed datagram (session 0xFFFFFFFF, or the
real session with seq 2**63) must not move a receiver off the real stream. A new session, or a
jump of more than ``max_jump_messages``, is accepted only when ``confirm_packets`` packets in a
row continue it; a new larger session right after the current one's end-of-session packet is
accepted at once (a clean restart). Until then the real stream keeps flowing as before. The
first packet ever seen on a channel is accepted (there is nothing to protect yet) but marked
unconfirmed: a consistent stream elsewhere replaces it.
"""

APPLY = 0
FILL = 1
DUP = 2
STALE = 3
HOLD = 4
RELEASE = 5

DEFAULT_CONFIRM_PACKETS = 3
DEFAULT_MAX_JUMP_MESSAGES = 65536     # ~0.6 s of a busy 100k msg/s channel
MAX_HOLES = 64                        # remembered gaps per channel (to tell late from duplicate)
MAX_HELD_PACKETS = 16                 # bound on payloads kept for an unconfirmed stream


class ChannelState(object):
    """Sequencing state of one channel: the confirmed stream and at most one candidate."""

    __slots__ = ("session", "next_seq", "holes", "ended", "confirmed", "run",
                 "cand_session", "cand_next", "cand_held", "cand_first",
                 "packets", "gaps", "missing_messages", "restarts")

    def __init__(self, session, next_seq):
        self.session = session
        self.next_seq = next_seq
        self.holes = []               # [start, end) of recent gaps, oldest first
        self.ended = False
        self.confirmed = False
        self.run = 0                  # packets in a row that continued the stream
        self.cand_session = -1
        self.cand_next = -1
        self.cand_first = -1
        self.cand_held = []
        self.packets = 0
        self.gaps = 0
        self.missing_messages = 0
        self.restarts = 0

    def fill(self, start, end):
        """Remove ``[start, end)`` from the remembered holes; return how many seqs it filled."""
        filled = 0
        kept = []
        for hole_start, hole_end in self.holes:
            low = hole_start if hole_start > start else start
            high = hole_end if hole_end < end else end
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
                "confirmed": self.confirmed, "packets": self.packets, "gaps": self.gaps,
                "missing_messages": self.missing_messages, "restarts": self.restarts,
                "open_holes": len(self.holes)}


class Sequencer(object):
    """Per-channel sequencing for any number of channels; counters are plain attributes.

    After each call, ``filled`` is how many missing messages a FILL packet brought, ``gap`` is
    ``None`` or the ``(first_missing_seq, end_seq)`` range the
    packet revealed, ``released`` the payloads to apply on RELEASE, and ``restarted`` whether
    the confirmed stream changed session.
    """

    def __init__(self, confirm_packets=DEFAULT_CONFIRM_PACKETS,
                 max_jump_messages=DEFAULT_MAX_JUMP_MESSAGES):
        if not 1 <= confirm_packets <= MAX_HELD_PACKETS:
            raise ValueError("confirm_packets must be 1..%d" % MAX_HELD_PACKETS)
        self.confirm_packets = confirm_packets
        self.max_jump_messages = max_jump_messages
        self.channels = {}
        self.gap = None
        self.released = None
        self.restarted = False
        self.filled = 0
        self.gaps = 0
        self.missing_messages = 0
        self.duplicates = 0
        self.out_of_order = 0
        self.recovered_messages = 0
        self.restarts = 0
        self.stale_session_packets = 0
        self.held_packets = 0
        self.resyncs = 0

    def packet(self, channel, session, seq, count, flags, payload=None):
        """Classify one packet (see the module docstring); ``payload`` is kept on HOLD."""
        self.gap = None
        self.released = None
        self.restarted = False
        self.filled = 0
        state = self.channels.get(channel)
        if state is None:
            state = self.channels[channel] = ChannelState(session, seq + count)
            return self._applied(state, flags)
        if session == state.session:
            expected = state.next_seq
            if seq == expected:
                if state.ended and not count:
                    return DUP        # the other feed's copy of the end-of-session packet
                state.next_seq = seq + count
                return self._applied(state, flags)
            if expected < seq <= expected + self.max_jump_messages:
                self._add_gap(state, expected, seq)
                state.next_seq = seq + count
                return self._applied(state, flags)
            if seq < expected and seq + self.max_jump_messages >= expected:
                if not count:
                    return DUP        # a late heartbeat says nothing
                state.packets += 1
                filled = state.fill(seq, seq + count)
                if seq + count > expected:
                    state.next_seq = seq + count
                if filled:
                    self.filled = filled
                    self.out_of_order += 1
                    self.recovered_messages += filled
                    return FILL
                self.duplicates += 1
                return DUP
        elif state.confirmed and session < state.session:
            self.stale_session_packets += 1
            return STALE
        elif state.ended and session > state.session:
            self._switch(state, session, seq, count)   # clean restart after end-of-session
            return self._applied(state, flags)
        return self._candidate(state, channel, session, seq, count, flags, payload)

    def _applied(self, state, flags):
        state.packets += 1
        if not state.confirmed:
            state.run += 1
            if state.run >= self.confirm_packets:
                state.confirmed = True
        if flags & 1:
            state.ended = True
        state.cand_session = -1
        state.cand_held = []
        return APPLY

    def _candidate(self, state, channel, session, seq, count, flags, payload):
        if session == state.cand_session and seq == state.cand_next:
            state.cand_next = seq + count
            state.cand_held.append(payload)
            if len(state.cand_held) > MAX_HELD_PACKETS:
                del state.cand_held[0]
        else:
            state.cand_session = session
            state.cand_next = seq + count
            state.cand_first = seq
            state.cand_held = [payload]
        if len(state.cand_held) < self.confirm_packets:
            self.held_packets += 1
            return HOLD
        # Confirmed: the candidate becomes the stream, from its first held packet on.
        released = state.cand_held
        first = state.cand_first
        if session != state.session:
            self._switch(state, session, first, 0)
        else:
            self.resyncs += 1
            if first > state.next_seq:
                self._add_gap(state, state.next_seq, first)
            state.holes = []
        state.next_seq = state.cand_next
        state.confirmed = True
        state.run = self.confirm_packets
        state.ended = bool(flags & 1)
        state.packets += len(released)
        state.cand_session = -1
        state.cand_held = []
        self.released = released
        return RELEASE

    def _switch(self, state, session, first_seq, count):
        self.restarts += 1
        state.restarts += 1
        self.restarted = True
        state.session = session
        state.holes = []
        state.ended = False
        if first_seq > 1:    # the new session's first messages were lost
            self._add_gap(state, 1, first_seq)
        state.next_seq = first_seq + count

    def _add_gap(self, state, first_missing, next_seen):
        missing = next_seen - first_missing
        self.gaps += 1
        self.missing_messages += missing
        state.gaps += 1
        state.missing_messages += missing
        state.holes.append([first_missing, next_seen])
        if len(state.holes) > MAX_HOLES:
            del state.holes[0]
        self.gap = (first_missing, next_seen)
