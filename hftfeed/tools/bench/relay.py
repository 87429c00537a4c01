"""The relay floor: the cheapest relay from the simulator to the receiver, run as its own process.

``python -m hftfeed.tools.bench.relay --ws URL --symbols A,B --target HOST:PORT`` connects one
blocking TCP socket to the simulator's Binance combined stream (depth, trade and bookTicker of
every symbol), and for every frame: ``json.loads``, pack one PROTOCOL.md message (the diff's
first levels as a ``B`` -- there is no book --, a ``T`` or a ``Q``) and ``sendto`` it at once.
No asyncio, no sync engine, no book, no checks beyond what the loop needs to stay correct.

Why: ``bench.py e2e`` runs it interleaved with the daemon against the same simulator and
receiver, so every daemon latency can be printed as a ratio to what a minimal Python program
achieves on the same machine in the same minute (the shared VM's noise moves both alike). It
runs under the interpreter being measured, so the floor includes that interpreter's own costs.

It announces its instruments (``I``, ids 1..N in ``--symbols`` order) and marks them live
(``S`` 1) before relaying, so the receiver counts it live like the daemon. Prices and
quantities are the simulator's 8-decimal strings read as integers scaled by 1e8 (the
simulator always writes 8 decimals). Stops on SIGTERM or when the simulator closes.
"""

import argparse
import json
import os
import signal
import socket
import sys
import time

from hftfeed.codecs import ws_proto
from hftfeed.codecs import wire
from hftfeed.transport.ws import parse_ws_url

VENUE_BINANCE = 1
DEPTH = 20
RECV_BYTES = 1 << 18


class Levels(object):
    """The first levels of one diff, in the shape ``wire.pack_book`` reads from a book."""

    __slots__ = ("update_id", "bid_levels", "ask_levels", "bids", "asks")

    def __init__(self):
        self.update_id = 0
        self.bid_levels = self.ask_levels = 0
        self.bids = self.asks = ()

    def copy_levels_into(self, buf, off, bid_n, ask_n):
        level = wire.LEVEL
        for side, n in ((self.bids, bid_n), (self.asks, ask_n)):
            for i in range(n):
                price, qty = side[i]
                level.pack_into(buf, off, int(price.replace(".", "")), int(qty.replace(".", "")))
                off += wire.LEVEL_SIZE


def _scaled(text):
    return int(text.replace(".", ""))


class Relay(object):
    def __init__(self, sock, symbols, target, session):
        self.sock = sock
        self.ids = {s: i + 1 for i, s in enumerate(symbols)}
        self.symbols = symbols
        self.target = target
        self.out = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
        self.session = session
        self.seq = 1
        self.levels = Levels()

    def _send(self, off, count):
        send_ns = time.time_ns()
        wire.pack_packet_header(self.buf, 0, 1, count, self.session, self.seq, send_ns)
        self.out.sendto(memoryview(self.buf)[:off], self.target)
        self.seq += count

    def announce(self):
        now_ns = time.time_ns()
        for symbol, inst in self.ids.items():
            off = wire.pack_instrument(self.buf, wire.HEADER_SIZE, VENUE_BINANCE, inst, symbol)
            off = wire.pack_status(self.buf, off, VENUE_BINANCE, inst, now_ns, wire.STATE_LIVE)
            self._send(off, 2)

    def frame(self, payload, recv_ns):
        """One text frame of the combined stream -> one datagram."""
        data = json.loads(payload)["data"]
        buf = self.buf
        kind = data.get("e")
        inst = self.ids[data["s"]]
        if kind == "depthUpdate":
            lv = self.levels
            lv.update_id = data["u"]
            lv.bids = data["b"]
            lv.asks = data["a"]
            lv.bid_levels = len(lv.bids)
            lv.ask_levels = len(lv.asks)
            off = wire.pack_book(buf, wire.HEADER_SIZE, VENUE_BINANCE, inst, 0,
                                 data["E"] * 1000000, recv_ns, lv, DEPTH)
        elif kind == "trade":
            off = wire.pack_trade(buf, wire.HEADER_SIZE, VENUE_BINANCE, inst,
                                  data["T"] * 1000000, recv_ns, data["t"], _scaled(data["p"]),
                                  _scaled(data["q"]), 2 if data["m"] else 1)
        elif "u" in data:                                  # bookTicker
            off = wire.pack_quote(buf, wire.HEADER_SIZE, VENUE_BINANCE, inst, 0, recv_ns,
                                  data["u"], _scaled(data["b"]), _scaled(data["B"]),
                                  _scaled(data["a"]), _scaled(data["A"]))
        else:
            return
        self._send(off, 1)

    def run(self, pending):
        """Read, split frames, relay; returns when the simulator closes the connection."""
        sock = self.sock
        buf = bytearray(pending)
        while True:
            data = sock.recv(RECV_BYTES)
            if not data:
                return
            recv_ns = time.time_ns()
            buf += data
            off = 0
            n = len(buf)
            while n - off >= 2:
                b0 = buf[off]
                length = buf[off + 1] & 0x7F
                head = 2
                if length == 126:
                    if n - off < 4:
                        break
                    length = int.from_bytes(buf[off + 2:off + 4], "big")
                    head = 4
                elif length == 127:
                    if n - off < 10:
                        break
                    length = int.from_bytes(buf[off + 2:off + 10], "big")
                    head = 10
                end = off + head + length
                if end > n:
                    break
                opcode = b0 & 0x0F
                if opcode == 1:
                    self.frame(bytes(buf[off + head:end]), recv_ns)
                elif opcode == 9:                          # ping: answer (masked, client role)
                    sock.sendall(ws_proto.encode_frame(ws_proto.OP_PONG, bytes(buf[off + head:end]),
                                                       mask_key=os.urandom(4)))
                elif opcode == 8:
                    return
                off = end
            del buf[:off]


def connect(url, symbols, timeout_s=10.0):
    """The combined stream of every symbol's depth, trade and bookTicker: (socket, the bytes
    after the handshake response)."""
    _secure, host, port, _ = parse_ws_url(url)
    streams = []
    for s in symbols:
        low = s.lower()
        streams += [low + "@depth@100ms", low + "@trade", low + "@bookTicker"]
    sock = socket.create_connection((host, port), timeout_s)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = ws_proto.make_client_key()
    sock.sendall(ws_proto.build_client_request(ws_proto.host_header(host, port, False),
                                               "/stream?streams=" + "/".join(streams), key))
    buf = b""
    while True:
        found = ws_proto.parse_http_head(buf)
        if found is not None:
            break
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("simulator closed the connection during the handshake")
        buf += chunk
    head, consumed = found
    ws_proto.check_server_response(head, key)
    sock.settimeout(None)                                  # blocking from here on
    return sock, buf[consumed:]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hftfeed.tools.bench.relay")
    p.add_argument("--ws", required=True, help="the simulator's ws:// URL")
    p.add_argument("--symbols", required=True, help="comma-separated symbols")
    p.add_argument("--target", required=True, help="receiver HOST:PORT")
    args = p.parse_args(argv)
    host, port = args.target.rsplit(":", 1)
    symbols = [s for s in args.symbols.split(",") if s]
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    sock, pending = connect(args.ws, symbols)
    relay = Relay(sock, symbols, (host, int(port)), int(time.time()) & 0xFFFFFFFF)
    relay.announce()
    try:
        relay.run(pending)
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
