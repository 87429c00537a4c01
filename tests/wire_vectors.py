"""The test vectors of docs/PROTOCOL.md ("Test vectors"), built with the project's encoder.

Each vector is one whole datagram; ``VECTORS`` maps its name to (description, bytes). The doc's
hex, the encoder, the Python decoder, the C header (docs/hftfeed_wire.h) and the Wireshark
dissector are all checked against these bytes."""

from hftfeed.codecs import wire

SESSION = 1764921600          # 2025-12-05 08:00:00 UTC
SEND_NS = 1764921600123456789
EXCH_NS = 1764921600100000000
RECV_NS = 1764921600120000000
PX = 100000000


class _Book(object):
    """The two-method book interface wire.pack_book needs, over plain lists."""

    def __init__(self, update_id, bids, asks):
        self.update_id = update_id
        self.bids = bids
        self.asks = asks
        self.bid_levels = len(bids)
        self.ask_levels = len(asks)

    def copy_levels_into(self, buf, off, bid_n, ask_n):
        for price, qty in self.bids[:bid_n] + self.asks[:ask_n]:
            wire.LEVEL.pack_into(buf, off, price, qty)
            off += wire.LEVEL_SIZE


def _datagram(writers, seq, flags=0, channel=7):
    buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
    off = wire.HEADER_SIZE
    for write in writers:
        off = write(buf, off)
    wire.pack_packet_header(buf, flags, channel, len(writers), SESSION, seq, SEND_NS)
    return bytes(buf[:off])


def _build():
    book = _Book(123456789, [(3700012000000, 150000000), (3700011000000, 42000000)],
                 [(3700013000000, 7500000)])
    return [
        ("instrument", "I: instrument 1 of venue 1 is BTCUSDT, exponents -8/-8",
         _datagram([lambda b, o: wire.pack_instrument(b, o, 1, 1, "BTCUSDT")], 1)),
        ("details", "I then D: BTCUSDT's tick 0.01, lot 0.00001, minimum 0.0001, no contract "
                    "size, trading",
         _datagram([lambda b, o: wire.pack_instrument(b, o, 1, 1, "BTCUSDT"),
                    lambda b, o: wire.pack_details(b, o, 1, 1, RECV_NS, 1000000, 1000, 10000, 0,
                                                   wire.TRADING_OPEN)], 9)),
        ("status", "S: instrument 1 is live (state 1)",
         _datagram([lambda b, o: wire.pack_status(b, o, 1, 1, RECV_NS, wire.STATE_LIVE)], 2)),
        ("book", "B: snapshot-flagged book, 2 bids and 1 ask, update id 123456789",
         _datagram([lambda b, o: wire.pack_book(b, o, 1, 1, wire.BOOK_FLAG_SNAPSHOT, EXCH_NS,
                                                RECV_NS, book, 20)], 3)),
        ("trade", "T: trade 987654321, 37000.12 x 0.015, buyer aggressor",
         _datagram([lambda b, o: wire.pack_trade(b, o, 1, 1, EXCH_NS, RECV_NS, 987654321,
                                                 3700012000000, 1500000, 1)], 4)),
        ("quote", "Q: best bid 37000.12 x 1.5, best ask 37000.13 x 0.075, update id 123456790",
         _datagram([lambda b, o: wire.pack_quote(b, o, 1, 1, EXCH_NS, RECV_NS, 123456790,
                                                 3700012000000, 150000000, 3700013000000,
                                                 7500000)], 5)),
        ("refresh", "B flagged refresh (bit 1) followed by a T in one datagram",
         _datagram([lambda b, o: wire.pack_book(b, o, 1, 1, wire.BOOK_FLAG_REFRESH, EXCH_NS,
                                                RECV_NS, book, 1),
                    lambda b, o: wire.pack_trade(b, o, 1, 1, EXCH_NS, RECV_NS, 987654322,
                                                 3700013000000, 100000000, 2)], 6)),
        ("heartbeat", "heartbeat: count 0, seq = the next sequence number (8)",
         _datagram([], 8)),
        ("end_of_session", "end of session: flags bit 0, count 0",
         _datagram([], 8, flags=wire.PACKET_FLAG_END_OF_SESSION)),
    ]


VECTORS = _build()


def hex_lines(data, width=32):
    return [data[i:i + width].hex() for i in range(0, len(data), width)]
