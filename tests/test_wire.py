"""Specification of hftfeed/codecs/wire.py against PROTOCOL.md.

The golden byte strings below are written by hand from PROTOCOL.md's tables (field by field,
little-endian), not produced by the encoder, so a bug shared by encoder and decoder still fails.
"""

import random
import struct

import pytest

from hftfeed.codecs import wire
from hftfeed.core.book import Book
from hftfeed.errors import WireError


def h(text):
    """Bytes from hex pairs; '|' and whitespace are only visual field separators."""
    return bytes.fromhex(text.replace("|", " "))


# Packet header: magic "HF", version 1, flags 0, channel 7, count 1, session 1700000000,
# reserved 0, seq 1, send_ns 0x0102030405060708.
GOLDEN_HEADER = h("48 46 | 01 | 00 | 07 00 | 01 00 | 00 f1 53 65 | 00 00 00 00 |"
                  "01 00 00 00 00 00 00 00 | 08 07 06 05 04 03 02 01")

# T: length 56, 'T', venue 1, instrument 3, flags 0, exch_ns 1634036400123000000,
# recv_ns 1634036400456000000, trade id 42, price 37000.01 (3700001000000), qty 1.5
# (150000000), side 2 (seller), 7 reserved bytes.
GOLDEN_TRADE = h("38 00 | 54 | 01 | 03 00 | 00 00 |"
                 "c0 b4 63 cb 72 43 ad 16 | 00 e2 3c df 72 43 ad 16 |"
                 "2a 00 00 00 00 00 00 00 |"
                 "40 ca 3e 79 5d 03 00 00 | 80 d1 f0 08 00 00 00 00 |"
                 "02 | 00 00 00 00 00 00 00")

# Q: length 64, 'Q', venue 2, instrument 0x0102, flags 0, exch_ns 0, recv_ns 5,
# update_id 0x1122334455667788, bid 37000.01 x 1.5, ask -1 x 0 (signed fields carry -1).
GOLDEN_QUOTE = h("40 00 | 51 | 02 | 02 01 | 00 00 |"
                 "00 00 00 00 00 00 00 00 | 05 00 00 00 00 00 00 00 |"
                 "88 77 66 55 44 33 22 11 |"
                 "40 ca 3e 79 5d 03 00 00 | 80 d1 f0 08 00 00 00 00 |"
                 "ff ff ff ff ff ff ff ff | 00 00 00 00 00 00 00 00")

# S: length 40, 'S', venue 255, instrument 9, flags 0, exch_ns 0, recv_ns 1634036400456000000,
# update_id 0, state 2 (resync), 7 reserved bytes.
GOLDEN_STATUS = h("28 00 | 53 | ff | 09 00 | 00 00 |"
                  "00 00 00 00 00 00 00 00 | 00 e2 3c df 72 43 ad 16 |"
                  "00 00 00 00 00 00 00 00 | 02 | 00 00 00 00 00 00 00")

# I: length 64, 'I', venue 1, instrument 3, flags 0, times and update_id 0,
# symbol "BTCUSDT" NUL-padded to 24 bytes, price exp -8, qty exp -8, 6 reserved bytes.
GOLDEN_INSTRUMENT = h("40 00 | 49 | 01 | 03 00 | 00 00 |"
                      "00 00 00 00 00 00 00 00 | 00 00 00 00 00 00 00 00 |"
                      "00 00 00 00 00 00 00 00 |"
                      "42 54 43 55 53 44 54 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 |"
                      "f8 | f8 | 00 00 00 00 00 00")

# D: length 72, 'D', venue 3, instrument 5, flags 0, exch_ns 0, recv_ns 1634036400456000000,
# update_id 0, tick 0.1 (10000000), lot 0.001 (100000), min qty 0.005 (500000), contract size 0
# (none stated), trading 1 (open), 7 reserved bytes.
GOLDEN_DETAILS = h("48 00 | 44 | 03 | 05 00 | 00 00 |"
                   "00 00 00 00 00 00 00 00 | 00 e2 3c df 72 43 ad 16 |"
                   "00 00 00 00 00 00 00 00 |"
                   "80 96 98 00 00 00 00 00 | a0 86 01 00 00 00 00 00 |"
                   "20 a1 07 00 00 00 00 00 | 00 00 00 00 00 00 00 00 |"
                   "01 | 00 00 00 00 00 00 00")

# B: length 40 + 16 * 3 = 88, 'B', venue 1, instrument 3, flags 1 (snapshot), exch_ns 0,
# recv_ns 5, update_id 1000; bid_n 2, ask_n 1; bids 100 x 7, 99 x 8; ask 101 x 9.
GOLDEN_BOOK = h("58 00 | 42 | 01 | 03 00 | 01 00 |"
                "00 00 00 00 00 00 00 00 | 05 00 00 00 00 00 00 00 |"
                "e8 03 00 00 00 00 00 00 |"
                "02 | 01 | 00 00 00 00 00 00 |"
                "64 00 00 00 00 00 00 00 | 07 00 00 00 00 00 00 00 |"
                "63 00 00 00 00 00 00 00 | 08 00 00 00 00 00 00 00 |"
                "65 00 00 00 00 00 00 00 | 09 00 00 00 00 00 00 00")


def header(count, flags=0, channel=7, session=1700000000, seq=1,
           send_ns=0x0102030405060708):
    buf = bytearray(32)
    wire.pack_packet_header(buf, flags, channel, count, session, seq, send_ns)
    return bytes(buf)


def golden_book_source():
    book = Book(capacity_levels=8)
    book.load_snapshot([99, 8, 100, 7], [101, 9], 1000)
    return book


# --- constants ----------------------------------------------------------------------------

def test_constants_match_protocol_tables():
    assert wire.MAGIC == b"HF" and wire.VERSION == 1
    assert wire.HEADER_SIZE == 32 and wire.MSG_HEADER_SIZE == 32
    assert (wire.TYPE_BOOK, wire.TYPE_TRADE, wire.TYPE_QUOTE, wire.TYPE_STATUS,
            wire.TYPE_INSTRUMENT) == (0x42, 0x54, 0x51, 0x53, 0x49)
    assert (wire.TRADE_LEN, wire.QUOTE_LEN, wire.STATUS_LEN, wire.INSTRUMENT_LEN) == \
        (56, 64, 40, 64)
    assert (wire.TYPE_DETAILS, wire.DETAILS_LEN) == (0x44, 72)
    assert (wire.TRADING_UNKNOWN, wire.TRADING_OPEN, wire.TRADING_RESTRICTED,
            wire.TRADING_CLOSED) == (0, 1, 2, 3)
    assert (wire.STATE_LIVE, wire.STATE_RESYNC, wire.STATE_DISCONNECTED) == (1, 2, 3)
    assert wire.DEFAULT_MAX_PAYLOAD == 1472


def test_a_book_packet_is_the_packet_header_plus_the_book_message():
    assert wire.book_packet_bytes(1) == 32 + 40 + 2 * 16
    assert wire.book_packet_bytes(20) == 32 + 40 + 40 * 16
    buf = bytearray(2048)
    book = Book(64)
    book.load_snapshot([x for i in range(20) for x in (100 + i, 1)],
                       [x for i in range(20) for x in (200 + i, 1)], 1)
    end = wire.pack_book(buf, wire.HEADER_SIZE, 1, 1, 0, 0, 0, book, 20)
    assert end == wire.book_packet_bytes(20)


def test_book_len_is_40_plus_16_per_level():
    assert wire.book_len(0, 0) == 40
    assert wire.book_len(20, 20) == 680
    assert wire.book_len(2, 1) == 88


# --- encoder: exact bytes -------------------------------------------------------------------

def test_packet_header_encodes_golden_bytes_at_offset_zero():
    buf = bytearray(b"\xaa" * 40)
    end = wire.pack_packet_header(buf, 0, 7, 1, 1700000000, 1, 0x0102030405060708)
    assert end == 32
    assert bytes(buf[:32]) == GOLDEN_HEADER
    assert bytes(buf[32:]) == b"\xaa" * 8


def test_end_of_session_header_sets_flag_bit_zero():
    buf = bytearray(32)
    wire.pack_packet_header(buf, wire.PACKET_FLAG_END_OF_SESSION, 7, 0, 1700000000, 1, 0)
    assert bytes(buf[:8]) == h("48 46 01 01 07 00 00 00")


def test_trade_encodes_golden_bytes():
    buf = bytearray(100)
    end = wire.pack_trade(buf, 32, 1, 3, 1634036400123000000, 1634036400456000000, 42,
                          3700001000000, 150000000, 2)
    assert end == 32 + 56
    assert bytes(buf[32:end]) == GOLDEN_TRADE


def test_quote_encodes_golden_bytes_with_signed_fields():
    buf = bytearray(64)
    end = wire.pack_quote(buf, 0, 2, 0x0102, 0, 5, 0x1122334455667788, 3700001000000,
                          150000000, -1, 0)
    assert end == 64
    assert bytes(buf) == GOLDEN_QUOTE


def test_status_encodes_golden_bytes():
    buf = bytearray(40)
    assert wire.pack_status(buf, 0, 255, 9, 1634036400456000000, wire.STATE_RESYNC) == 40
    assert bytes(buf) == GOLDEN_STATUS


def test_instrument_encodes_golden_bytes_nul_padded():
    buf = bytearray(b"\xaa" * 64)
    assert wire.pack_instrument(buf, 0, 1, 3, "BTCUSDT") == 64
    assert bytes(buf) == GOLDEN_INSTRUMENT


def test_instrument_accepts_bytes_symbol_and_24_byte_symbol():
    buf = bytearray(64)
    wire.pack_instrument(buf, 0, 1, 3, b"BTCUSDT")
    assert bytes(buf) == GOLDEN_INSTRUMENT
    wire.pack_instrument(buf, 0, 1, 3, "X" * 24)
    assert bytes(buf[32:56]) == b"X" * 24


@pytest.mark.parametrize("symbol", ["X" * 25, "", "BTC\u00e9", b"BT\xffC", "BT\0C"])
def test_instrument_rejects_long_empty_non_ascii_or_nul_symbol(symbol):
    with pytest.raises(WireError):
        wire.pack_instrument(bytearray(64), 0, 1, 3, symbol)


def test_book_encodes_golden_bytes():
    buf = bytearray(b"\xaa" * 120)
    end = wire.pack_book(buf, 16, 1, 3, wire.BOOK_FLAG_SNAPSHOT, 0, 5, golden_book_source(), 20)
    assert end == 16 + 88
    assert bytes(buf[16:end]) == GOLDEN_BOOK
    assert bytes(buf[:16]) == b"\xaa" * 16 and bytes(buf[end:]) == b"\xaa" * 16


def test_book_depth_limits_each_side():
    book = Book(capacity_levels=64)
    book.load_snapshot([x for i in range(1, 30) for x in (100 - i, i)],
                       [x for i in range(1, 4) for x in (100 + i, i)], 77)
    buf = bytearray(wire.book_len(5, 5))
    end = wire.pack_book(buf, 0, 1, 3, 0, 0, 0, book, 5)
    assert end == wire.book_len(5, 3)
    msg = wire._decode_message(bytes(buf[:end]), 0, end, 0)
    assert msg.bids == [(99, 1), (98, 2), (97, 3), (96, 4), (95, 5)]
    assert msg.asks == [(101, 1), (102, 2), (103, 3)]
    assert msg.update_id == 77


def test_book_of_an_empty_book_has_no_levels():
    buf = bytearray(40)
    assert wire.pack_book(buf, 0, 1, 3, 0, 0, 0, Book(4), 20) == 40
    assert bytes(buf[32:40]) == bytes(8)


def test_book_without_room_raises_and_does_not_grow_the_buffer():
    buf = bytearray(87)
    with pytest.raises(WireError):
        wire.pack_book(buf, 0, 1, 3, 0, 0, 5, golden_book_source(), 20)
    assert len(buf) == 87


def test_book_negative_depth_is_refused():
    with pytest.raises(WireError):
        wire.pack_book(bytearray(200), 0, 1, 3, 0, 0, 0, golden_book_source(), -1)


def test_book_depth_above_255_levels_is_refused():
    book = Book(capacity_levels=300)
    book.load_snapshot([x for i in range(1, 300) for x in (i, 1)], [], 1)
    buf = bytearray(wire.book_len(300, 0))
    with pytest.raises(WireError):
        wire.pack_book(buf, 0, 1, 3, 0, 0, 0, book, 300)


@pytest.mark.parametrize("call", [
    lambda b: wire.pack_trade(b, 0, 1, 3, -1, 0, 1, 1, 1, 1),           # negative u64
    lambda b: wire.pack_trade(b, 0, 1, 3, 0, 0, 1, 2 ** 63, 1, 1),       # price past int64
    lambda b: wire.pack_quote(b, 0, 256, 3, 0, 0, 1, 1, 1, 1, 1),        # venue past u8
    lambda b: wire.pack_status(b, 0, 1, 70000, 0, 1),                    # instrument past u16
    lambda b: wire.pack_trade(b, 40, 1, 3, 0, 0, 1, 1, 1, 1),            # no room
    lambda b: wire.pack_packet_header(b, 0, 1, 70000, 1, 1, 0),          # count past u16
])
def test_values_the_format_cannot_carry_raise_wire_error(call):
    with pytest.raises(WireError):
        call(bytearray(64))


# --- decoder: golden bytes ------------------------------------------------------------------

def packet(*messages, **header_fields):
    return header(len(messages), **header_fields) + b"".join(messages)


def test_decode_header_reads_every_field():
    hdr = wire.decode_header(GOLDEN_HEADER)
    assert hdr == (0, 7, 1, 1700000000, 1, 0x0102030405060708)
    assert (hdr.flags, hdr.channel, hdr.count, hdr.session, hdr.seq, hdr.send_ns) == \
        (0, 7, 1, 1700000000, 1, 0x0102030405060708)


def test_decode_header_does_not_look_at_messages():
    assert wire.decode_header(GOLDEN_HEADER + b"garbage").count == 1


def test_decode_heartbeat():
    pkt = wire.decode_packet(header(0, seq=5))
    assert pkt.count == 0 and pkt.messages == [] and pkt.seq == 5 and pkt.is_heartbeat


def test_decode_end_of_session():
    pkt = wire.decode_packet(header(0, flags=1))
    assert pkt.end_of_session and not pkt.is_heartbeat


def test_decode_trade_golden():
    pkt = wire.decode_packet(GOLDEN_HEADER + GOLDEN_TRADE)
    (msg,) = pkt.messages
    assert msg == wire.TradeMsg(1, 3, 0, 1634036400123000000, 1634036400456000000, 42,
                                3700001000000, 150000000, 2)
    assert msg.type == ord("T") and msg.trade_id == 42 and msg.update_id == 42


def test_decode_quote_golden():
    (msg,) = wire.decode_packet(packet(GOLDEN_QUOTE)).messages
    assert msg == wire.QuoteMsg(2, 0x0102, 0, 0, 5, 0x1122334455667788, 3700001000000,
                                150000000, -1, 0)
    assert msg.type == ord("Q")


def test_decode_status_golden():
    (msg,) = wire.decode_packet(packet(GOLDEN_STATUS)).messages
    assert msg == wire.StatusMsg(255, 9, 0, 0, 1634036400456000000, 0, 2)
    assert msg.type == ord("S") and msg.state == wire.STATE_RESYNC


def test_pack_details_golden():
    buf = bytearray(72)
    end = wire.pack_details(buf, 0, 3, 5, 1634036400456000000, 10000000, 100000, 500000, 0,
                            wire.TRADING_OPEN)
    assert end == wire.DETAILS_LEN == 72 and bytes(buf) == GOLDEN_DETAILS


def test_decode_details_golden():
    (msg,) = wire.decode_packet(packet(GOLDEN_DETAILS)).messages
    assert msg == wire.DetailsMsg(3, 5, 0, 0, 1634036400456000000, 0, 10000000, 100000, 500000,
                                  0, wire.TRADING_OPEN)
    assert msg.type == ord("D") == wire.TYPE_DETAILS


def test_details_datagram_fed_whole_cut_short_and_with_trailing_bytes():
    data = packet(GOLDEN_INSTRUMENT, GOLDEN_DETAILS)
    assert [m.type for m in wire.decode_packet(data).messages] == [ord("I"), ord("D")]
    for n in range(len(data)):          # every prefix, as if it arrived byte by byte
        with pytest.raises(WireError):
            wire.decode_packet(data[:n])
        with pytest.raises(WireError):
            wire.check_datagram(data[:n])
    with pytest.raises(WireError, match="trailing"):
        wire.decode_packet(data + bytes(8))


@pytest.mark.parametrize("args", [(0, 1), (1, 0), (-1, 1), (1, 1, -1), (1, 1, 0, -1),
                                  (2 ** 63, 1), (1, 1, 0, 0, 256)])
def test_pack_details_refuses_what_the_format_cannot_carry(args):
    with pytest.raises(WireError):
        wire.pack_details(bytearray(72), 0, 1, 1, 0, *args)


def test_pack_details_needs_room():
    with pytest.raises(WireError):
        wire.pack_details(bytearray(71), 0, 1, 1, 0, 1, 1)


def test_decode_instrument_golden():
    (msg,) = wire.decode_packet(packet(GOLDEN_INSTRUMENT)).messages
    assert msg == wire.InstrumentMsg(1, 3, 0, 0, 0, 0, "BTCUSDT", -8, -8)
    assert msg.type == ord("I")


@pytest.mark.parametrize("unpack_all_levels", [False, True])
def test_decode_book_golden(monkeypatch, unpack_all_levels):
    monkeypatch.setattr(wire, "_UNPACK_ALL_LEVELS", unpack_all_levels)
    (msg,) = wire.decode_packet(packet(GOLDEN_BOOK)).messages
    assert msg == wire.BookMsg(1, 3, 1, 0, 5, 1000, [(100, 7), (99, 8)], [(101, 9)])
    assert msg.type == ord("B") and msg.is_snapshot


def test_decode_several_messages_in_order():
    pkt = wire.decode_packet(packet(GOLDEN_INSTRUMENT, GOLDEN_BOOK, GOLDEN_TRADE, GOLDEN_STATUS,
                                    seq=10))
    assert [m.type for m in pkt.messages] == [ord(c) for c in "IBTS"]
    assert pkt.count == 4 and pkt.seq == 10


def test_unknown_type_is_skipped_by_length_and_kept_raw():
    unknown = h("30 00 | 5a | 01 | 03 00 | 00 00 |") + bytes(24) + b"\x01" * 16
    pkt = wire.decode_packet(packet(unknown, GOLDEN_STATUS))
    first, second = pkt.messages
    assert isinstance(first, wire.UnknownMsg)
    assert (first.type, first.venue, first.instrument, first.raw) == (ord("Z"), 1, 3, unknown)
    assert first.update_id == 0 and first.flags == 0
    assert second.type == wire.TYPE_STATUS


def test_decoder_accepts_memoryview_and_bytearray():
    data = packet(GOLDEN_BOOK, GOLDEN_TRADE)
    for view in (bytearray(data), memoryview(data)):
        assert [m.type for m in wire.decode_packet(view).messages] == [ord("B"), ord("T")]


# --- decoder: every WireError ---------------------------------------------------------------

def test_short_datagram_is_rejected():
    for n in range(32):
        with pytest.raises(WireError):
            wire.decode_packet(GOLDEN_HEADER[:n])
        with pytest.raises(WireError):
            wire.decode_header(GOLDEN_HEADER[:n])


def test_bad_magic_is_rejected():
    with pytest.raises(WireError, match="magic"):
        wire.decode_packet(b"HG" + header(0)[2:])


def test_unknown_version_is_rejected():
    with pytest.raises(WireError, match="version"):
        wire.decode_packet(b"HF\x02" + header(0)[3:])


def test_count_larger_than_messages_is_rejected():
    with pytest.raises(WireError):
        wire.decode_packet(header(2) + GOLDEN_TRADE)


def test_trailing_garbage_after_count_messages_is_rejected():
    with pytest.raises(WireError, match="trailing"):
        wire.decode_packet(header(1) + GOLDEN_TRADE + b"\0" * 8)
    with pytest.raises(WireError, match="trailing"):
        wire.decode_packet(header(0) + b"x")


def test_message_length_below_32_is_rejected():
    bad = struct.pack("<H", 24) + GOLDEN_TRADE[2:24]
    with pytest.raises(WireError, match="length"):
        wire.decode_packet(packet(bad + bytes(8)))


def test_message_length_not_multiple_of_8_is_rejected():
    bad = struct.pack("<H", 57) + GOLDEN_TRADE[2:] + b"\0"
    with pytest.raises(WireError, match="multiple of 8"):
        wire.decode_packet(packet(bad))


def test_message_running_past_the_end_is_rejected():
    bad = struct.pack("<H", 64) + GOLDEN_TRADE[2:]
    with pytest.raises(WireError, match="past the end"):
        wire.decode_packet(packet(bad))


def test_book_length_disagreeing_with_level_counts_is_rejected():
    bad = GOLDEN_BOOK[:33] + b"\x02" + GOLDEN_BOOK[34:]     # ask_n 2 but room for 1
    with pytest.raises(WireError, match="bid_n"):
        wire.decode_packet(packet(bad))


def test_book_shorter_than_its_fixed_part_is_rejected():
    bad = struct.pack("<H", 32) + GOLDEN_BOOK[2:32]
    with pytest.raises(WireError):
        wire.decode_packet(packet(bad))


FIXED_GOLDENS = [GOLDEN_TRADE, GOLDEN_QUOTE, GOLDEN_STATUS, GOLDEN_INSTRUMENT, GOLDEN_DETAILS]


@pytest.mark.parametrize("golden", FIXED_GOLDENS)
def test_known_fixed_size_type_shorter_than_defined_is_rejected(golden):
    bad = struct.pack("<H", len(golden) - 8) + golden[2:-8]
    with pytest.raises(WireError, match="PROTOCOL.md says"):
        wire.decode_packet(packet(bad))
    with pytest.raises(WireError, match="PROTOCOL.md says"):
        wire.check_datagram(packet(bad))


@pytest.mark.parametrize("golden", FIXED_GOLDENS)
def test_known_fixed_size_type_longer_than_defined_reads_the_fields_and_skips_the_rest(golden):
    # PROTOCOL.md "Compatibility": fields a later publisher appends are skipped by length.
    longer = struct.pack("<H", len(golden) + 16) + golden[2:] + b"\xee" * 16
    pkt = wire.decode_packet(packet(longer, GOLDEN_STATUS))
    first, second = pkt.messages
    assert first == wire.decode_packet(packet(golden)).messages[0]
    assert second.type == wire.TYPE_STATUS
    wire.check_datagram(packet(longer, GOLDEN_STATUS))


@pytest.mark.parametrize("symbol_field", [bytes(24), b"BT\0C" + bytes(20), b"BT\xffC" + bytes(20)])
def test_instrument_symbol_must_be_nul_padded_ascii(symbol_field):
    bad = GOLDEN_INSTRUMENT[:32] + symbol_field + GOLDEN_INSTRUMENT[56:]
    with pytest.raises(WireError):
        wire.decode_packet(packet(bad))


def test_reserved_fields_are_ignored():
    hdr = bytearray(header(1))
    hdr[12:16] = b"\x01\x02\x03\x04"
    trade = bytearray(GOLDEN_TRADE)
    trade[49:56] = b"\xff" * 7
    (msg,) = wire.decode_packet(bytes(hdr) + bytes(trade)).messages
    assert msg.side == 2


# --- round trips ------------------------------------------------------------------------------

def build_mixed_packet(rng, buf):
    """Encode a random mix of messages; return (datagram bytes, expected messages)."""
    expected = []
    off = wire.HEADER_SIZE
    while True:
        kind = rng.choice("BTQSID")
        venue, instrument = rng.choice((1, 2, 255)), rng.randrange(65536)
        exch_ns, recv_ns = rng.randrange(2 ** 64), rng.randrange(2 ** 64)
        if kind == "B":
            book = Book(capacity_levels=32)
            bids = rng.sample(range(1, 1000), rng.randrange(0, 12))
            asks = rng.sample(range(1000, 2000), rng.randrange(0, 12))
            book.load_snapshot([x for p in bids for x in (p, rng.randrange(1, 2 ** 63))],
                               [x for p in asks for x in (p, rng.randrange(1, 2 ** 63))],
                               rng.randrange(2 ** 64))
            depth = rng.randrange(0, 12)
            if off + wire.book_len(depth, depth) > len(buf):
                break
            flags = rng.randrange(2)
            off = wire.pack_book(buf, off, venue, instrument, flags, exch_ns, recv_ns, book,
                                 depth)
            top_bids, top_asks = book.top(depth)
            expected.append(wire.BookMsg(venue, instrument, flags, exch_ns, recv_ns,
                                         book.update_id, top_bids, top_asks))
            continue
        size = {"T": 56, "Q": 64, "S": 40, "I": 64, "D": 72}[kind]
        if off + size > len(buf):
            break
        if kind == "T":
            args = (rng.randrange(2 ** 64), rng.randrange(-2 ** 63, 2 ** 63),
                    rng.randrange(-2 ** 63, 2 ** 63), rng.randrange(3))
            off = wire.pack_trade(buf, off, venue, instrument, exch_ns, recv_ns, *args)
            expected.append(wire.TradeMsg(venue, instrument, 0, exch_ns, recv_ns, *args))
        elif kind == "Q":
            args = (rng.randrange(2 ** 64),) + tuple(rng.randrange(-2 ** 63, 2 ** 63)
                                                     for _ in range(4))
            off = wire.pack_quote(buf, off, venue, instrument, exch_ns, recv_ns, *args)
            expected.append(wire.QuoteMsg(venue, instrument, 0, exch_ns, recv_ns, *args))
        elif kind == "S":
            state = rng.randrange(1, 4)
            off = wire.pack_status(buf, off, venue, instrument, recv_ns, state)
            expected.append(wire.StatusMsg(venue, instrument, 0, 0, recv_ns, 0, state))
        elif kind == "D":
            args = (rng.randrange(1, 2 ** 63), rng.randrange(1, 2 ** 63), rng.randrange(2 ** 63),
                    rng.randrange(2 ** 63), rng.randrange(4))
            off = wire.pack_details(buf, off, venue, instrument, recv_ns, *args)
            expected.append(wire.DetailsMsg(venue, instrument, 0, 0, recv_ns, 0, *args))
        else:
            symbol = "".join(rng.choice("ABCXYZ019-_") for _ in range(rng.randrange(1, 25)))
            off = wire.pack_instrument(buf, off, venue, instrument, symbol)
            expected.append(wire.InstrumentMsg(venue, instrument, 0, 0, 0, 0, symbol, -8, -8))
    session, seq, send_ns = rng.randrange(2 ** 32), rng.randrange(2 ** 64), rng.randrange(2 ** 64)
    wire.pack_packet_header(buf, 0, 3, len(expected), session, seq, send_ns)
    return bytes(buf[:off]), expected, (0, 3, len(expected), session, seq, send_ns)


@pytest.mark.parametrize("unpack_all_levels", [False, True])
def test_random_packets_round_trip(monkeypatch, unpack_all_levels):
    monkeypatch.setattr(wire, "_UNPACK_ALL_LEVELS", unpack_all_levels)
    rng = random.Random(20240601)
    buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
    for _ in range(200):
        data, expected, hdr = build_mixed_packet(rng, buf)
        assert len(data) <= wire.DEFAULT_MAX_PAYLOAD
        pkt = wire.decode_packet(data)
        assert (pkt.flags, pkt.channel, pkt.count, pkt.session, pkt.seq, pkt.send_ns) == hdr
        assert pkt.messages == expected


def test_mutated_or_truncated_packets_yield_a_packet_or_wire_error_only():
    rng = random.Random(7)
    buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
    outcomes = {"packet": 0, "error": 0}
    for _ in range(300):
        data, _, _ = build_mixed_packet(rng, buf)
        for _ in range(10):
            mutated = bytearray(data)
            action = rng.randrange(4)
            if action == 0:
                mutated = mutated[:rng.randrange(len(mutated) + 1)]
            elif action == 1:
                for _ in range(rng.randrange(1, 4)):
                    mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            elif action == 2:
                mutated += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
            else:
                mutated[6:8] = struct.pack("<H", rng.randrange(65536))
            try:
                result = wire.decode_packet(bytes(mutated))
            except WireError:
                outcomes["error"] += 1
            else:
                assert isinstance(result, wire.Packet)
                assert len(result.messages) == result.count
                outcomes["packet"] += 1
    assert outcomes["error"] > 0 and outcomes["packet"] > 0


def test_random_garbage_yields_only_wire_error_or_packet():
    rng = random.Random(11)
    errors = 0
    for _ in range(2000):
        data = b"HF\x01" + bytes(rng.randrange(256) for _ in range(rng.randrange(0, 120)))
        try:
            result = wire.decode_packet(data)
        except WireError:
            errors += 1
        else:
            assert isinstance(result, wire.Packet)
    assert errors > 1900
