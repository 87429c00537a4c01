"""hftfeed wire format version 1: encoder and decoder (docs/PROTOCOL.md is normative).

Why one module for both directions: the encoder (publisher hot path) and the decoder (monitor,
tests, third-party consumers' reference) must agree byte for byte, so both are built from the same
precompiled ``struct.Struct`` layouts below, each of which spells out one PROTOCOL.md table.

Encoder functions write into a caller-owned, preallocated ``bytearray`` at ``off`` with
``pack_into`` and return the new end offset: nothing is allocated per message except what
``struct`` itself needs. They raise :class:`WireError` for values the format cannot carry
(a negative u64, a price outside int64, a symbol longer than 24 bytes, no room left in ``buf``).

The decoder is strict on purpose (it is the reference a consumer is checked against): it raises
:class:`WireError` for anything PROTOCOL.md does not allow, and never returns a half-read packet.
Reserved bytes and unknown flag bits are ignored (they exist for forward compatibility), and so
is the tail of a known fixed-size message that is longer than its defined length (PROTOCOL.md
"Compatibility": a later version 1 publisher may append fields; shorter is still an error).

Pure: no ``asyncio``, no ``socket``.
"""

import platform
import struct
from collections import namedtuple

from hftfeed.errors import WireError

MAGIC = b"HF"
VERSION = 1
HEADER_SIZE = 32
MSG_HEADER_SIZE = 32
PACKET_FLAG_END_OF_SESSION = 1
DEFAULT_MAX_PAYLOAD = 1472   # 1500-byte Ethernet MTU - 20 (IPv4) - 8 (UDP)

TYPE_BOOK = ord("B")
TYPE_TRADE = ord("T")
TYPE_QUOTE = ord("Q")
TYPE_STATUS = ord("S")
TYPE_INSTRUMENT = ord("I")
TYPE_DETAILS = ord("D")      # instrument details: tick, lot, min qty, contract size, status

BOOK_FLAG_SNAPSHOT = 1       # first book after a (re)synchronisation from a snapshot
BOOK_FLAG_REFRESH = 2        # re-sent by the refresh cycle: no new update since the last B

STATE_LIVE = 1
STATE_RESYNC = 2
STATE_DISCONNECTED = 3

# D status byte (the venue's trading status, mapped; PROTOCOL.md "D instrument details").
TRADING_UNKNOWN = 0          # the venue's list gives none (or one this version does not map)
TRADING_OPEN = 1             # trading normally
TRADING_RESTRICTED = 2       # listed but not trading normally (halted, pre-open, cancel/post only)
TRADING_CLOSED = 3           # delisted, expired, settled or closed

# Venue ids live in hftfeed/venues/registry.py (one table with the rest of each venue's facts).

BOOK_FIXED_LEN = 40          # message header + bid_n, ask_n, 6 reserved bytes
LEVEL_SIZE = 16              # (i64 price, i64 qty)
TRADE_LEN = 56
QUOTE_LEN = 64
STATUS_LEN = 40
INSTRUMENT_LEN = 64
DETAILS_LEN = 72
SYMBOL_SIZE = 24
MAX_BOOK_LEVELS = 255        # bid_n and ask_n are u8

# One Struct per PROTOCOL.md table; "<" = little-endian, no padding.
# Packet header: magic, version, flags, channel, count, session, reserved, seq, send_ns.
_PACKET_HEADER = struct.Struct("<2sBBHHIIQQ")
# Message header: length, type, venue, instrument, flags, exch_ns, recv_ns, update_id.
_MSG_HEADER = struct.Struct("<HBBHHQQQ")
# Header + body in one Struct so that each encoder is a single pack_into call.
_BOOK_HEAD = struct.Struct("<HBBHHQQQBB6x")
_TRADE = struct.Struct("<HBBHHQQQqqB7x")
_QUOTE = struct.Struct("<HBBHHQQQqqqq")
_STATUS = struct.Struct("<HBBHHQQQB7x")
_INSTRUMENT = struct.Struct("<HBBHHQQQ24sbb6x")
# D: header, tick size, lot size, min qty, contract size (all i64, 10^-8), status u8, 7 reserved.
_DETAILS = struct.Struct("<HBBHHQQQqqqqB7x")
_BOOK_COUNTS = struct.Struct("<BB")
_LEVEL = struct.Struct("<qq")
# Decoding B levels: one unpack_from for all of them and zip beats 40 calls on CPython (~15 %);
# PyPy's JIT makes the per-level loop ~1.6x faster than building the big tuple.
_UNPACK_ALL_LEVELS = platform.python_implementation() == "CPython"
# PyPy raises ValueError (not struct.error) for a negative value in an unsigned field.
_PACK_ERRORS = (struct.error, ValueError, OverflowError)

# Public names for receivers that read datagrams in place (client, monitor, bench receiver): the
# layouts above are their one home, nobody restates them.
PACKET_HEADER = _PACKET_HEADER
MSG_HEADER = _MSG_HEADER
BOOK_HEAD = _BOOK_HEAD     # a B's fixed part: the message header plus bid and ask counts
DETAILS = _DETAILS         # a D: header, tick, lot, min qty, contract size, trading
# Message header fields a fast receiver needs: length, type, venue, instrument, flags, exch_ns,
# recv_ns, update_id are all of it, so this is MSG_HEADER itself; LEVEL is one (price, qty).
LEVEL = _LEVEL

assert _PACKET_HEADER.size == HEADER_SIZE and _MSG_HEADER.size == MSG_HEADER_SIZE
assert _BOOK_HEAD.size == BOOK_FIXED_LEN and _TRADE.size == TRADE_LEN
assert _QUOTE.size == QUOTE_LEN and _STATUS.size == STATUS_LEN
assert _INSTRUMENT.size == INSTRUMENT_LEN and _DETAILS.size == DETAILS_LEN


def book_len(bid_n, ask_n):
    """Length in bytes of a ``B`` message carrying ``bid_n`` bids and ``ask_n`` asks."""
    return BOOK_FIXED_LEN + LEVEL_SIZE * (bid_n + ask_n)


def book_packet_bytes(depth):
    """Bytes of a datagram carrying one ``B`` message of ``depth`` levels a side (what a
    publisher's max_payload must hold)."""
    return HEADER_SIZE + book_len(depth, depth)


# ---------------------------------------------------------------------------------------------
# Encoder
# ---------------------------------------------------------------------------------------------

def pack_packet_header(buf, flags, channel, count, session, seq, send_ns):
    """Write the 32-byte packet header at offset 0 of ``buf``; return HEADER_SIZE."""
    try:
        _PACKET_HEADER.pack_into(buf, 0, MAGIC, VERSION, flags, channel, count, session, 0,
                                 seq, send_ns)
    except _PACK_ERRORS as exc:
        raise WireError("packet header not encodable (channel=%r count=%r session=%r seq=%r): %s"
                        % (channel, count, session, seq, exc)) from exc
    return HEADER_SIZE


def pack_book(buf, off, venue, instrument, flags, exch_ns, recv_ns, book, depth):
    """Write a ``B`` message with the top ``depth`` levels of ``book``; return the end offset.

    ``update_id`` is ``book.update_id``; bid_n/ask_n are ``min(depth, levels on that side)``.
    The levels are copied by the book itself (``Book.copy_levels_into``), which knows its own
    storage layout and picks the fastest copy for the running interpreter.
    """
    if depth < 0:
        raise WireError("book depth %r is negative" % (depth,))
    bid_n = book.bid_levels
    if bid_n > depth:
        bid_n = depth
    ask_n = book.ask_levels
    if ask_n > depth:
        ask_n = depth
    length = BOOK_FIXED_LEN + LEVEL_SIZE * (bid_n + ask_n)
    # Explicit room check: a slice copy past the end of a bytearray would grow it silently.
    if off + length > len(buf) or off < 0:
        raise WireError("no room for a %d-byte book message at offset %d of a %d-byte buffer"
                        % (length, off, len(buf)))
    try:
        _BOOK_HEAD.pack_into(buf, off, length, TYPE_BOOK, venue, instrument, flags, exch_ns,
                             recv_ns, book.update_id, bid_n, ask_n)
    except _PACK_ERRORS as exc:
        raise WireError("book message not encodable (depth=%r update_id=%r): %s"
                        % (depth, book.update_id, exc)) from exc
    book.copy_levels_into(buf, off + BOOK_FIXED_LEN, bid_n, ask_n)
    return off + length


def pack_trade(buf, off, venue, instrument, exch_ns, recv_ns, trade_id, price, qty, side):
    """Write a ``T`` message (update_id = trade id); return the end offset."""
    try:
        _TRADE.pack_into(buf, off, TRADE_LEN, TYPE_TRADE, venue, instrument, 0, exch_ns, recv_ns,
                         trade_id, price, qty, side)
    except _PACK_ERRORS as exc:
        raise WireError("trade not encodable (trade_id=%r price=%r qty=%r side=%r): %s"
                        % (trade_id, price, qty, side, exc)) from exc
    return off + TRADE_LEN


def pack_quote(buf, off, venue, instrument, exch_ns, recv_ns, update_id, bid_px, bid_qty,
               ask_px, ask_qty):
    """Write a ``Q`` (best bid/offer) message; return the end offset."""
    try:
        _QUOTE.pack_into(buf, off, QUOTE_LEN, TYPE_QUOTE, venue, instrument, 0, exch_ns, recv_ns,
                         update_id, bid_px, bid_qty, ask_px, ask_qty)
    except _PACK_ERRORS as exc:
        raise WireError("quote not encodable (update_id=%r %r x %r / %r x %r): %s"
                        % (update_id, bid_px, bid_qty, ask_px, ask_qty, exc)) from exc
    return off + QUOTE_LEN


def pack_status(buf, off, venue, instrument, recv_ns, state):
    """Write an ``S`` (instrument state) message; return the end offset."""
    try:
        _STATUS.pack_into(buf, off, STATUS_LEN, TYPE_STATUS, venue, instrument, 0, 0, recv_ns, 0,
                          state)
    except _PACK_ERRORS as exc:
        raise WireError("status not encodable (state=%r): %s" % (state, exc)) from exc
    return off + STATUS_LEN


def pack_instrument(buf, off, venue, instrument, symbol, price_exp=-8, qty_exp=-8):
    """Write an ``I`` (instrument definition) message; return the end offset.

    ``symbol`` (str or bytes) must be 1..24 ASCII bytes without NUL: the field is NUL-padded,
    so a NUL inside would be read back as the end of the symbol.
    """
    if isinstance(symbol, str):
        try:
            raw = symbol.encode("ascii")
        except UnicodeEncodeError as exc:
            raise WireError("instrument symbol %r is not ASCII" % (symbol,)) from exc
    else:
        raw = bytes(symbol)
        if any(b > 127 for b in raw):
            raise WireError("instrument symbol %r is not ASCII" % (raw,))
    if not raw or len(raw) > SYMBOL_SIZE or b"\0" in raw:
        raise WireError("instrument symbol %r must be 1..%d ASCII bytes without NUL"
                        % (symbol, SYMBOL_SIZE))
    try:
        _INSTRUMENT.pack_into(buf, off, INSTRUMENT_LEN, TYPE_INSTRUMENT, venue, instrument, 0, 0,
                              0, 0, raw, price_exp, qty_exp)
    except _PACK_ERRORS as exc:
        raise WireError("instrument %r not encodable: %s" % (symbol, exc)) from exc
    return off + INSTRUMENT_LEN


def pack_details(buf, off, venue, instrument, recv_ns, tick_size, lot_size, min_qty=0,
                 contract_size=0, trading=TRADING_UNKNOWN):
    """Write a ``D`` (instrument details) message; return the end offset.

    Sizes are ints scaled by 10^8 like prices and quantities (``tick_size`` and ``lot_size``
    > 0; ``min_qty`` and ``contract_size`` >= 0, 0 meaning "the venue states none");
    ``recv_ns`` is when the venue's instrument list was read. Why a message of its own and not
    fields of ``I``: ``I`` is 64 bytes and version 1 decoders refuse any other length.
    """
    if tick_size <= 0 or lot_size <= 0 or min_qty < 0 or contract_size < 0:
        raise WireError("instrument details out of range (tick=%r lot=%r min=%r contract=%r)"
                        % (tick_size, lot_size, min_qty, contract_size))
    try:
        _DETAILS.pack_into(buf, off, DETAILS_LEN, TYPE_DETAILS, venue, instrument, 0, 0, recv_ns,
                           0, tick_size, lot_size, min_qty, contract_size, trading)
    except _PACK_ERRORS as exc:
        raise WireError("instrument details not encodable (tick=%r lot=%r min=%r contract=%r "
                        "trading=%r): %s" % (tick_size, lot_size, min_qty, contract_size,
                                             trading, exc)) from exc
    return off + DETAILS_LEN


# ---------------------------------------------------------------------------------------------
# Decoder
# ---------------------------------------------------------------------------------------------

PacketHeader = namedtuple("PacketHeader", "flags channel count session seq send_ns")


class Packet(object):
    """A decoded datagram: the header fields and the list of decoded messages."""

    __slots__ = ("flags", "channel", "count", "session", "seq", "send_ns", "messages")

    def __init__(self, flags, channel, count, session, seq, send_ns, messages):
        self.flags = flags
        self.channel = channel
        self.count = count
        self.session = session
        self.seq = seq
        self.send_ns = send_ns
        self.messages = messages

    @property
    def end_of_session(self):
        return bool(self.flags & PACKET_FLAG_END_OF_SESSION)

    @property
    def is_heartbeat(self):
        return self.count == 0 and not self.flags & PACKET_FLAG_END_OF_SESSION

    def __repr__(self):
        return ("Packet(flags=%d, channel=%d, count=%d, session=%d, seq=%d, send_ns=%d, %r)"
                % (self.flags, self.channel, self.count, self.session, self.seq, self.send_ns,
                   self.messages))


class _Msg(object):
    """Common base: every message has the header fields ``type`` .. ``update_id``.

    Equality compares the type and every slot, so tests can compare decoded messages directly.
    """

    __slots__ = ("venue", "instrument", "flags", "exch_ns", "recv_ns", "update_id")
    type = 0

    def _fields(self):
        names = []
        for cls in reversed(type(self).__mro__):
            names.extend(cls.__dict__.get("__slots__", ()))
        return names

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in ["type"] + self._fields())

    def __ne__(self, other):
        result = self.__eq__(other)
        return result if result is NotImplemented else not result

    __hash__ = None

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (n, getattr(self, n)) for n in self._fields()))


class BookMsg(_Msg):
    """``B``: bids and asks are lists of (price, qty), best first."""

    __slots__ = ("bids", "asks")
    type = TYPE_BOOK

    def __init__(self, venue, instrument, flags, exch_ns, recv_ns, update_id, bids, asks):
        self.venue = venue
        self.instrument = instrument
        self.flags = flags
        self.exch_ns = exch_ns
        self.recv_ns = recv_ns
        self.update_id = update_id
        self.bids = bids
        self.asks = asks

    @property
    def is_snapshot(self):
        return bool(self.flags & BOOK_FLAG_SNAPSHOT)

    @property
    def is_refresh(self):
        return bool(self.flags & BOOK_FLAG_REFRESH)


class TradeMsg(_Msg):
    """``T``: the header's update_id is the trade id (``trade_id`` is an alias)."""

    __slots__ = ("price", "qty", "side")
    type = TYPE_TRADE

    def __init__(self, venue, instrument, flags, exch_ns, recv_ns, trade_id, price, qty, side):
        self.venue = venue
        self.instrument = instrument
        self.flags = flags
        self.exch_ns = exch_ns
        self.recv_ns = recv_ns
        self.update_id = trade_id
        self.price = price
        self.qty = qty
        self.side = side

    @property
    def trade_id(self):
        return self.update_id


class QuoteMsg(_Msg):
    """``Q``: best bid and offer."""

    __slots__ = ("bid_px", "bid_qty", "ask_px", "ask_qty")
    type = TYPE_QUOTE

    def __init__(self, venue, instrument, flags, exch_ns, recv_ns, update_id, bid_px, bid_qty,
                 ask_px, ask_qty):
        self.venue = venue
        self.instrument = instrument
        self.flags = flags
        self.exch_ns = exch_ns
        self.recv_ns = recv_ns
        self.update_id = update_id
        self.bid_px = bid_px
        self.bid_qty = bid_qty
        self.ask_px = ask_px
        self.ask_qty = ask_qty


class StatusMsg(_Msg):
    """``S``: instrument state (STATE_LIVE, STATE_RESYNC, STATE_DISCONNECTED)."""

    __slots__ = ("state",)
    type = TYPE_STATUS

    def __init__(self, venue, instrument, flags, exch_ns, recv_ns, update_id, state):
        self.venue = venue
        self.instrument = instrument
        self.flags = flags
        self.exch_ns = exch_ns
        self.recv_ns = recv_ns
        self.update_id = update_id
        self.state = state


class InstrumentMsg(_Msg):
    """``I``: instrument id -> venue symbol, and the price/qty decimal exponents."""

    __slots__ = ("symbol", "price_exp", "qty_exp")
    type = TYPE_INSTRUMENT

    def __init__(self, venue, instrument, flags, exch_ns, recv_ns, update_id, symbol, price_exp,
                 qty_exp):
        self.venue = venue
        self.instrument = instrument
        self.flags = flags
        self.exch_ns = exch_ns
        self.recv_ns = recv_ns
        self.update_id = update_id
        self.symbol = symbol
        self.price_exp = price_exp
        self.qty_exp = qty_exp


class DetailsMsg(_Msg):
    """``D``: tick size, lot size, minimum quantity and contract size (ints, 10^-8; the last two
    0 when the venue states none) and the trading status (TRADING_*)."""

    __slots__ = ("tick_size", "lot_size", "min_qty", "contract_size", "trading")
    type = TYPE_DETAILS

    def __init__(self, venue, instrument, flags, exch_ns, recv_ns, update_id, tick_size,
                 lot_size, min_qty, contract_size, trading):
        self.venue = venue
        self.instrument = instrument
        self.flags = flags
        self.exch_ns = exch_ns
        self.recv_ns = recv_ns
        self.update_id = update_id
        self.tick_size = tick_size
        self.lot_size = lot_size
        self.min_qty = min_qty
        self.contract_size = contract_size
        self.trading = trading


class UnknownMsg(_Msg):
    """A message type this decoder does not know: kept as raw bytes (whole message), skipped by
    length as PROTOCOL.md requires. ``type`` is an instance attribute here."""

    __slots__ = ("type", "raw")

    def __init__(self, type, venue, instrument, raw, flags=0, exch_ns=0, recv_ns=0, update_id=0):
        self.type = type
        self.venue = venue
        self.instrument = instrument
        self.raw = raw
        self.flags = flags
        self.exch_ns = exch_ns
        self.recv_ns = recv_ns
        self.update_id = update_id

    def _fields(self):
        return ["venue", "instrument", "flags", "exch_ns", "recv_ns", "update_id", "raw"]


def decode_header(data):
    """Cheap header-only read: return a :class:`PacketHeader` (a namedtuple), or raise WireError.

    Checks size, magic and version only; the messages are not looked at.
    """
    if len(data) < HEADER_SIZE:
        raise WireError("datagram of %d bytes is shorter than the %d-byte packet header"
                        % (len(data), HEADER_SIZE))
    magic, version, flags, channel, count, session, _reserved, seq, send_ns = \
        _PACKET_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise WireError("bad magic %r (expected %r)" % (magic, MAGIC))
    if version != VERSION:
        raise WireError("unknown protocol version %d (this decoder speaks %d)"
                        % (version, VERSION))
    return PacketHeader(flags, channel, count, session, seq, send_ns)


def check_datagram(data, nbytes=None):
    """Validate a whole datagram against PROTOCOL.md; return its :class:`PacketHeader`.

    The one validation function of the project: :func:`decode_packet`, the client, the monitor
    and the bench receiver all call it, so a datagram one of them accepts is one every other
    accepts. ``data`` may be a reused receive buffer holding ``nbytes`` valid bytes. Reads only
    the length/type bytes of each message (plus the symbol of ``I``): no allocation per message.
    Raises :class:`WireError` for anything PROTOCOL.md does not allow.
    """
    if nbytes is None:
        nbytes = len(data)
    if nbytes < HEADER_SIZE:
        raise WireError("datagram of %d bytes is shorter than the %d-byte packet header"
                        % (nbytes, HEADER_SIZE))
    magic, version, flags, channel, count, session, _reserved, seq, send_ns = \
        _PACKET_HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise WireError("bad magic %r (expected %r)" % (magic, MAGIC))
    if version != VERSION:
        raise WireError("unknown protocol version %d (this decoder speaks %d)"
                        % (version, VERSION))
    off = HEADER_SIZE
    for index in range(count):
        if off + MSG_HEADER_SIZE > nbytes:
            raise WireError("header says %d messages, datagram ends after %d (%d bytes)"
                            % (count, index, nbytes))
        length = data[off] | (data[off + 1] << 8)   # u16 little-endian without a Struct call
        if length < MSG_HEADER_SIZE or length & 7:
            raise WireError("message %d: length %d is not a multiple of 8 >= %d"
                            % (index, length, MSG_HEADER_SIZE))
        if off + length > nbytes:
            raise WireError("message %d: length %d runs %d bytes past the end of the datagram"
                            % (index, length, off + length - nbytes))
        mtype = data[off + 2]
        if mtype == TYPE_BOOK:
            if length < BOOK_FIXED_LEN:
                raise WireError("message %d: B message of length %d is shorter than %d"
                                % (index, length, BOOK_FIXED_LEN))
            expected = book_len(data[off + 32], data[off + 33])
            if length != expected:
                raise WireError("message %d: B message length %d disagrees with bid_n=%d "
                                "ask_n=%d (expected %d)" % (index, length, data[off + 32],
                                                            data[off + 33], expected))
        else:
            fixed = _FIXED_LENGTH[mtype]
            if length < fixed:
                # Longer is allowed (PROTOCOL.md "Compatibility": appended fields are skipped).
                raise WireError("message %d: %s message of length %d (PROTOCOL.md says %d)"
                                % (index, chr(mtype), length, fixed))
            if mtype == TYPE_INSTRUMENT:
                _decode_symbol(bytes(data[off + MSG_HEADER_SIZE:off + MSG_HEADER_SIZE
                                          + SYMBOL_SIZE]), index)
        off += length
    if off != nbytes:
        raise WireError("%d bytes of trailing garbage after %d messages" % (nbytes - off, count))
    return PacketHeader(flags, channel, count, session, seq, send_ns)


def decode_packet(data):
    """Decode one datagram into a :class:`Packet`; raise WireError if it breaks PROTOCOL.md."""
    flags, channel, count, session, seq, send_ns = check_datagram(data)
    size = len(data)
    messages = []
    off = HEADER_SIZE
    for index in range(count):
        messages.append(_decode_message(data, off, size, index))
        off += _MSG_HEADER.unpack_from(data, off)[0]
    return Packet(flags, channel, count, session, seq, send_ns, messages)


def _decode_message(data, off, size, index):
    """Decode the message at ``off`` (its 32-byte header is known to be inside ``data``)."""
    length, mtype, venue, instrument, flags, exch_ns, recv_ns, update_id = \
        _MSG_HEADER.unpack_from(data, off)
    if length < MSG_HEADER_SIZE or length % 8:
        raise WireError("message %d: length %d is not a multiple of 8 >= %d"
                        % (index, length, MSG_HEADER_SIZE))
    if off + length > size:
        raise WireError("message %d: length %d runs %d bytes past the end of the datagram"
                        % (index, length, off + length - size))
    if mtype == TYPE_BOOK:
        return _decode_book(data, off, length, venue, instrument, flags, exch_ns, recv_ns,
                            update_id, index)
    if mtype == TYPE_TRADE:
        _expect_length(length, TRADE_LEN, "T", index)
        fields = _TRADE.unpack_from(data, off)
        return TradeMsg(venue, instrument, flags, exch_ns, recv_ns, update_id, fields[8],
                        fields[9], fields[10])
    if mtype == TYPE_QUOTE:
        _expect_length(length, QUOTE_LEN, "Q", index)
        fields = _QUOTE.unpack_from(data, off)
        return QuoteMsg(venue, instrument, flags, exch_ns, recv_ns, update_id, fields[8],
                        fields[9], fields[10], fields[11])
    if mtype == TYPE_STATUS:
        _expect_length(length, STATUS_LEN, "S", index)
        fields = _STATUS.unpack_from(data, off)
        return StatusMsg(venue, instrument, flags, exch_ns, recv_ns, update_id, fields[8])
    if mtype == TYPE_INSTRUMENT:
        _expect_length(length, INSTRUMENT_LEN, "I", index)
        fields = _INSTRUMENT.unpack_from(data, off)
        return InstrumentMsg(venue, instrument, flags, exch_ns, recv_ns, update_id,
                             _decode_symbol(fields[8], index), fields[9], fields[10])
    if mtype == TYPE_DETAILS:
        _expect_length(length, DETAILS_LEN, "D", index)
        fields = _DETAILS.unpack_from(data, off)
        return DetailsMsg(venue, instrument, flags, exch_ns, recv_ns, update_id, fields[8],
                          fields[9], fields[10], fields[11], fields[12])
    return UnknownMsg(mtype, venue, instrument, bytes(data[off:off + length]), flags, exch_ns,
                      recv_ns, update_id)


# Exact length of every fixed-size type (the "Message bodies" tables); 0 = variable or unknown.
_FIXED_LENGTH = [0] * 256
_FIXED_LENGTH[TYPE_TRADE] = TRADE_LEN
_FIXED_LENGTH[TYPE_QUOTE] = QUOTE_LEN
_FIXED_LENGTH[TYPE_STATUS] = STATUS_LEN
_FIXED_LENGTH[TYPE_INSTRUMENT] = INSTRUMENT_LEN
_FIXED_LENGTH[TYPE_DETAILS] = DETAILS_LEN


def _expect_length(length, expected, letter, index):
    # PROTOCOL.md "Compatibility": a known message may grow (fields appended by a later
    # publisher are skipped by length); one shorter than its defined length is malformed.
    if length < expected:
        raise WireError("message %d: %s message of length %d (PROTOCOL.md says %d)"
                        % (index, letter, length, expected))


def _decode_book(data, off, length, venue, instrument, flags, exch_ns, recv_ns, update_id,
                 index):
    if length < BOOK_FIXED_LEN:
        raise WireError("message %d: B message of length %d is shorter than %d"
                        % (index, length, BOOK_FIXED_LEN))
    bid_n, ask_n = _BOOK_COUNTS.unpack_from(data, off + MSG_HEADER_SIZE)
    if length != book_len(bid_n, ask_n):
        raise WireError("message %d: B message length %d disagrees with bid_n=%d ask_n=%d "
                        "(expected %d)" % (index, length, bid_n, ask_n, book_len(bid_n, ask_n)))
    pos = off + BOOK_FIXED_LEN
    if _UNPACK_ALL_LEVELS:
        levels = _levels_struct(bid_n + ask_n).unpack_from(data, pos)
        split = 2 * bid_n
        bids = list(zip(levels[0:split:2], levels[1:split:2]))
        asks = list(zip(levels[split::2], levels[split + 1::2]))
    else:
        unpack_level = _LEVEL.unpack_from   # bound method hoisted out of the loops
        bids = []
        for _ in range(bid_n):
            bids.append(unpack_level(data, pos))
            pos += LEVEL_SIZE
        asks = []
        for _ in range(ask_n):
            asks.append(unpack_level(data, pos))
            pos += LEVEL_SIZE
    return BookMsg(venue, instrument, flags, exch_ns, recv_ns, update_id, bids, asks)


_LEVELS_STRUCTS = {}


def _levels_struct(count):
    """Struct for ``count`` (i64 price, i64 qty) levels, built once per count (<= 510)."""
    layout = _LEVELS_STRUCTS.get(count)
    if layout is None:
        layout = _LEVELS_STRUCTS[count] = struct.Struct("<%dq" % (2 * count))
    return layout


def _decode_symbol(raw, index):
    symbol = raw.rstrip(b"\0")
    if not symbol or b"\0" in symbol or any(b > 127 for b in symbol):
        raise WireError("message %d: I symbol %r is not NUL-padded ASCII" % (index, raw))
    return symbol.decode("ascii")


# ---------------------------------------------------------------------------------------------
# Retransmission over TCP (PROTOCOL.md "Retransmission")
# ---------------------------------------------------------------------------------------------

RETRANS_MAGIC = b"HR"
# Request: magic, version, reserved, channel, reserved, session, reserved, first_seq, count,
# reserved (32 bytes).
RETRANS_REQUEST = struct.Struct("<2sBxH2xI4xQI4x")
# Reply frame: magic, code, reserved, length of the datagram that follows (0 for an end frame),
# reserved (8 bytes).
RETRANS_FRAME = struct.Struct("<2sBxH2x")
RETRANS_OK = 0            # a datagram of ``length`` bytes follows; more frames follow
RETRANS_DONE = 1          # end of the reply: every requested message was sent
RETRANS_NOT_HELD = 2      # (part of) the range is no longer (or not yet) held: end of reply
RETRANS_BAD_REQUEST = 3   # malformed request, or count 0 / above the per-request limit
RETRANS_UNKNOWN_SESSION = 4   # channel/session is not this publisher's
RETRANS_LIMIT = 5         # per-connection request limit reached; the server closes
RETRANS_CODE_NAMES = {RETRANS_OK: "ok", RETRANS_DONE: "done", RETRANS_NOT_HELD: "not held",
                      RETRANS_BAD_REQUEST: "bad request",
                      RETRANS_UNKNOWN_SESSION: "unknown channel/session",
                      RETRANS_LIMIT: "request limit reached"}

assert RETRANS_REQUEST.size == 32 and RETRANS_FRAME.size == 8


def pack_retrans_request(channel, session, first_seq, count):
    """The 32-byte request for messages ``first_seq .. first_seq+count-1`` of one session."""
    try:
        return RETRANS_REQUEST.pack(RETRANS_MAGIC, VERSION, channel, session, first_seq, count)
    except _PACK_ERRORS as exc:
        raise WireError("retransmission request not encodable: %s" % (exc,)) from exc


def unpack_retrans_request(data):
    """(channel, session, first_seq, count) of a request; WireError for a malformed one."""
    if len(data) != RETRANS_REQUEST.size:
        raise WireError("retransmission request of %d bytes (expected %d)"
                        % (len(data), RETRANS_REQUEST.size))
    magic, version, channel, session, first_seq, count = RETRANS_REQUEST.unpack(data)
    if magic != RETRANS_MAGIC or version != VERSION:
        raise WireError("retransmission request with magic %r version %d" % (magic, version))
    return channel, session, first_seq, count


def pack_retrans_frame(code, length=0):
    return RETRANS_FRAME.pack(RETRANS_MAGIC, code, length)


def unpack_retrans_frame(data):
    """(code, length) of a reply frame header; WireError for a malformed one."""
    magic, code, length = RETRANS_FRAME.unpack(data)
    if magic != RETRANS_MAGIC:
        raise WireError("retransmission reply with magic %r" % (magic,))
    return code, length
