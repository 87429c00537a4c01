"""A scriptable hostile exchange on loopback (WebSocket + HTTP on one port), and a feed driven
against it in-process, for tests of what the pipeline does with a misbehaving venue.

The server speaks just enough RFC 6455 (server side: unmasked frames out, masked frames in)
and HTTP/1.1 to be scripted byte by byte: a test gives ``ws_script(conn)`` (a coroutine run
per WebSocket connection) and ``http(path) -> bytes`` (a raw response per GET).
"""

import asyncio
import json
import logging
import struct

from hftfeed.app.config import load_config_dict
from hftfeed.codecs import ws_proto
from hftfeed.pipeline.feed import Feed, FeedStats
from hftfeed.venues import registry

P = 10 ** 8


def frame(opcode, payload, fin=True):
    """One unmasked server frame."""
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    return head + payload


def http_response(status, body=b"", headers=()):
    if isinstance(body, str):
        body = body.encode()
    lines = ["HTTP/1.1 %d X" % status, "Content-Length: %d" % len(body)]
    lines += ["%s: %s" % h for h in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class WsConn(object):
    """One accepted WebSocket connection as the script sees it."""

    def __init__(self, reader, writer, number):
        self.reader = reader
        self.writer = writer
        self.number = number
        self.texts = []                 # text messages received from the client
        self.closed_by_client = None    # (code, reason) when the client sent a close frame

    def send_text(self, text):
        self.writer.write(frame(0x1, text))

    def send_binary(self, data):
        self.writer.write(frame(0x2, data))

    def send_raw(self, data):
        self.writer.write(data)

    def close(self, code, reason):
        self.writer.write(frame(0x8, struct.pack("!H", code) + reason.encode()))

    async def read_loop(self):
        """Decode the client's (masked) frames; answer a close with a close, then end."""
        try:
            while True:
                b0, b1 = await self.reader.readexactly(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", await self.reader.readexactly(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", await self.reader.readexactly(8))[0]
                mask = await self.reader.readexactly(4)
                data = bytes(c ^ mask[i % 4] for i, c in enumerate(await self.reader.readexactly(n)))
                opcode = b0 & 0x0F
                if opcode == 0x1:
                    self.texts.append(data.decode())
                elif opcode == 0x8:
                    code = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 1005
                    self.closed_by_client = (code, data[2:].decode(errors="replace"))
                    self.writer.write(frame(0x8, data[:2]))
                    await self.writer.drain()
                    self.writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            return


class HostileExchange(object):
    def __init__(self, ws_script=None, http=None):
        self.ws_script = ws_script
        self.http = http
        self.server = None
        self.port = None
        self.conns = []
        self.requests = []
        self._tasks = []

    async def start(self):
        self.server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    @property
    def url(self):
        return "127.0.0.1:%d" % self.port

    async def stop(self):
        for task in self._tasks:
            task.cancel()
        for conn in self.conns:
            conn.writer.close()
        self.server.close()
        await self.server.wait_closed()

    async def _accept(self, reader, writer):
        self._tasks.append(asyncio.current_task())
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if b"upgrade: websocket" in head.lower():
                    await self._websocket(reader, writer, head)
                    return
                path = head.split(b" ")[1].decode()
                self.requests.append(path)
                writer.write(self.http(path))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def _websocket(self, reader, writer, head):
        _path, headers = ws_proto.parse_client_request(head)
        key = headers["sec-websocket-key"]
        writer.write(ws_proto.build_server_response(key))
        conn = WsConn(reader, writer, len(self.conns))
        self.conns.append(conn)
        reading = asyncio.ensure_future(conn.read_loop())
        self._tasks.append(reading)
        if self.ws_script is not None:
            await self.ws_script(conn)
        await reading


class Recorder(object):
    """A publisher that records what the feed would put on the wire."""

    def __init__(self):
        self.statuses = []   # (instrument, state)
        self.books = []      # (instrument, flags, best bid, best ask, update id)
        self.quotes = []     # (instrument, update id)
        self.trades = []

    def status(self, venue, instrument, recv_ns, state):
        self.statuses.append((instrument, state))

    def book(self, venue, instrument, flags, exch_ns, recv_ns, book):
        self.books.append((instrument, flags, book.best_bid(), book.best_ask(), book.update_id))

    def quote(self, venue, instrument, exch_ns, recv_ns, update_id, *levels):
        self.quotes.append((instrument, update_id))

    def trade(self, venue, instrument, *rest):
        self.trades.append((instrument,) + rest)

    def flush(self):
        pass

    def state_of(self, instrument):
        states = [s for i, s in self.statuses if i == instrument]
        return states[-1] if states else 0


def make_feed(venue, exchange, symbols=("BTCUSDT",), capacity_levels=100, **feed_keys):
    entry = {"venue": venue, "ws_url": "ws://" + exchange.url, "symbols": list(symbols),
             "reconnect_backoff_initial_s": 0.05, "reconnect_backoff_max_s": 0.2,
             "snapshot_timeout_s": 1.0, "connect_timeout_s": 2.0,
             # the hostile exchange has no instruments endpoint (and only loopback is allowed)
             "instrument_metadata": False}
    if venue.startswith("binance"):
        entry["rest_url"] = "http://" + exchange.url
    entry.update(feed_keys)
    cfg = load_config_dict({"feeds": [entry]})
    recorder = Recorder()
    feed = Feed(cfg.feeds[0], registry.adapter(venue), recorder, FeedStats(), capacity_levels)
    return feed, recorder


async def wait_for(predicate, timeout_s=10.0, step_s=0.02):
    """Poll until predicate() is true; returns its final value (tests assert on it)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step_s)
    return bool(predicate())


def run(coro):
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


# -- venue message builders ---------------------------------------------------------------------

def binance_depth(first_id, last_id, bids=(), asks=(), symbol="BTCUSDT"):
    data = {"e": "depthUpdate", "E": 1700000000000, "s": symbol, "U": first_id, "u": last_id,
            "b": [[str(p), str(q)] for p, q in bids], "a": [[str(p), str(q)] for p, q in asks]}
    return json.dumps({"stream": symbol.lower() + "@depth@100ms", "data": data})


def binance_snapshot(last_id, bids=((100, 1),), asks=((101, 1),)):
    return json.dumps({"lastUpdateId": last_id, "bids": [[str(p), str(q)] for p, q in bids],
                       "asks": [[str(p), str(q)] for p, q in asks]})


def binance_ticker(update_id, symbol="BTCUSDT"):
    return json.dumps({"stream": symbol.lower() + "@bookTicker",
                       "data": {"u": update_id, "s": symbol, "b": "100", "B": "1", "a": "101",
                                "A": "1"}})


def bybit_book(kind, update_id, bids=(), asks=(), symbol="BTCUSDT"):
    return json.dumps({"topic": "orderbook.50." + symbol, "type": kind, "ts": 1700000000000,
                       "data": {"s": symbol, "u": update_id, "seq": update_id,
                                "b": [[str(p), str(q)] for p, q in bids],
                                "a": [[str(p), str(q)] for p, q in asks]}})


BYBIT_ACK = '{"success":true,"ret_msg":"","conn_id":"c1","op":"subscribe"}'

log = logging.getLogger("tests.hostile")
