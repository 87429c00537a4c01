"""Datagram builders for receiver tests (client, recorder): wire's encoders, plus ``B`` messages
spelled out from PROTOCOL.md's table so the tests do not depend on core/book.py."""

import socket
import struct
import time

from hftfeed.codecs import wire
from hftfeed.venues import registry

SESSION = 1700000000
PX = 100000000          # 1.0 scaled by 10**8
VENUE = registry.spec("binance").wire_id


def trade(instrument=1, trade_id=1, price=37000 * PX, qty=PX // 2, side=1, venue=VENUE):
    return lambda buf, off: wire.pack_trade(buf, off, venue, instrument, 0, 0, trade_id, price,
                                            qty, side)


def quote(instrument=1, update_id=7, venue=VENUE):
    return lambda buf, off: wire.pack_quote(buf, off, venue, instrument, 0, 0, update_id,
                                            100 * PX, PX, 101 * PX, 2 * PX)


def status(instrument, state, venue=VENUE):
    return lambda buf, off: wire.pack_status(buf, off, venue, instrument, 0, state)


def instrument_def(instrument, symbol, venue=VENUE):
    return lambda buf, off: wire.pack_instrument(buf, off, venue, instrument, symbol)


def details(instrument, tick, lot, min_qty=0, contract=0, trading=wire.TRADING_OPEN,
            venue=VENUE, recv_ns=5):
    return lambda buf, off: wire.pack_details(buf, off, venue, instrument, recv_ns, tick, lot,
                                              min_qty, contract, trading)


def book(instrument, update_id, bids, asks, flags=0, venue=VENUE):
    def write(buf, off):
        length = 40 + 16 * (len(bids) + len(asks))
        struct.pack_into("<HBBHHQQQBB6x", buf, off, length, ord("B"), venue, instrument, flags,
                         0, 0, update_id, len(bids), len(asks))
        pos = off + 40
        for price, qty in list(bids) + list(asks):
            struct.pack_into("<qq", buf, pos, price, qty)
            pos += 16
        return off + length
    return write


def packet(messages=(), seq=1, session=SESSION, channel=1, flags=0, send_ns=None):
    buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
    off = wire.HEADER_SIZE
    for write in messages:
        off = write(buf, off)
    wire.pack_packet_header(buf, flags, channel, len(messages), session, seq,
                            time.time_ns() if send_ns is None else send_ns)
    return bytes(buf[:off])


class Stream(object):
    """Numbers packets like a publisher: ``next(messages)`` returns a datagram."""

    def __init__(self, channel=1, session=SESSION):
        self.channel = channel
        self.session = session
        self.seq = 1

    def next(self, messages=(), flags=0):
        data = packet(messages, self.seq, self.session, self.channel, flags)
        self.seq += len(messages)
        return data


class Sender(object):
    def __init__(self, port, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.address = (host, port)

    def send(self, data):
        self.sock.sendto(data, self.address)

    def close(self):
        self.sock.close()
