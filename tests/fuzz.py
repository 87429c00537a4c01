#!/usr/bin/env python3
"""A standard-library fuzz harness for hftfeed's byte and text parsers.

Each target takes valid seed inputs, mutates them (bit flips, byte/char insertions and
deletions, splices of two seeds, truncations, random junk) and feeds them to one parser, whole
and in random chunks. The only allowed outcomes are a parsed result or the module's own typed
error; anything else (another exception, a hang, an invariant broken) is a failure, saved with
its input so it can be replayed.

    python3 tests/fuzz.py --seconds 600                 # every target, 10 minutes in all
    pypy3 tests/fuzz.py --target ws --seconds 3600 --seed 7
    python3 tests/fuzz.py --replay fuzz-crash-ws-....bin --target ws

tests/test_fuzz.py runs the ws, http and wire targets, and tests/test_venue_contract.py each
venue's target, for a short, seeded, bounded time in CI. VENUE_SEEDS (one entry per venue of
hftfeed/venues/registry.py) are also the contract tests' samples.
"""

import argparse
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from hftfeed.codecs import ws_proto  # noqa: E402
from hftfeed.codecs import http_proto
from hftfeed.codecs import wire
from hftfeed.core.book import Book  # noqa: E402
from hftfeed.errors import HttpError, VenueError, WebSocketError, WireError  # noqa: E402
from hftfeed.venues import registry  # noqa: E402
from hftfeed.core.updates import ConnSequence, Control, DepthUpdate, Quote, Trade  # noqa: E402


# ------------------------------------------------------------------------------ seeds

def ws_seeds():
    enc = ws_proto.encode_frame
    return [
        enc(ws_proto.OP_TEXT, b'{"stream":"btcusdt@trade","data":{}}'),
        enc(ws_proto.OP_TEXT, b"Hel", fin=False) + enc(ws_proto.OP_CONT, b"lo"),
        enc(ws_proto.OP_PING, b"ping!") + enc(ws_proto.OP_TEXT, b"x" * 200),
        enc(ws_proto.OP_BINARY, bytes(range(256)) * 2),
        enc(ws_proto.OP_TEXT, "caf\u00e9 \u20ac".encode("utf-8")),
        enc(ws_proto.OP_CLOSE, b"\x03\xe8bye"),
        enc(ws_proto.OP_PONG, b""),
    ]


def http_seeds():
    body = b'{"lastUpdateId":1,"bids":[["1.0","2.0"]],"asks":[]}'
    return [
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    ]


def wire_seeds():
    buf = bytearray(1472)
    book = Book(50)
    book.load_snapshot([100 * 10 ** 8, 10 ** 8, 99 * 10 ** 8, 2 * 10 ** 8],
                       [101 * 10 ** 8, 10 ** 8], 42)
    off = wire.HEADER_SIZE
    off = wire.pack_book(buf, off, 1, 7, wire.BOOK_FLAG_SNAPSHOT, 1, 2, book, 20)
    off = wire.pack_trade(buf, off, 1, 7, 1, 2, 99, 10 ** 8, 5, 1)
    off = wire.pack_quote(buf, off, 1, 7, 1, 2, 42, 1, 2, 3, 4)
    off = wire.pack_status(buf, off, 1, 7, 2, wire.STATE_LIVE)
    off = wire.pack_instrument(buf, off, 1, 7, "BTCUSDT")
    off = wire.pack_details(buf, off, 1, 7, 3, 10 ** 6, 10 ** 5, 2 * 10 ** 5, 0, wire.TRADING_OPEN)
    wire.pack_packet_header(buf, 0, 3, 6, 1700000000, 1, 123)
    heartbeat = bytearray(wire.HEADER_SIZE)
    wire.pack_packet_header(heartbeat, 0, 3, 0, 1700000000, 6, 124)
    return [bytes(buf[:off]), bytes(heartbeat)]


VENUE_SEEDS = {
    "binance": [
        '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1633998512068,"s":"BTCUSDT",'
        '"U":157,"u":160,"b":[["0.0024","10"]],"a":[["0.0026","100"],["0.0027","0"]]}}',
        '{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":12345,'
        '"p":"0.001","q":"100","T":1,"m":true,"M":true}}',
        '{"stream":"btcusdt@bookTicker","data":{"u":400900217,"s":"BTCUSDT","b":"25.35190000",'
        '"B":"31.21000000","a":"25.36520000","A":"40.66000000"}}',
        '{"result":null,"id":1}',
    ],
    "binance-usdm": [
        '{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":1626992741037,'
        '"T":1626992741024,"s":"BTCUSDT","U":600859599090,"u":600859600917,"pu":600859598061,'
        '"b":[["7.5040","813"],["7.6090","0"]],"a":[["7.6150","1563"]]}}',
        '{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1,"s":"BTCUSDT","a":5,"p":"7.6",'
        '"q":"2","f":1,"l":2,"T":1,"m":false}}',
    ],
    "binance-coinm": [
        '{"stream":"btcusd_perp@depth@100ms","data":{"e":"depthUpdate","E":1591270260907,'
        '"T":1591270260891,"s":"BTCUSD_PERP","ps":"BTCUSD","U":17285681,"u":17285702,'
        '"pu":17285675,"b":[["9517.6","10"]],"a":[["9518.5","45"],["9518.6","0"]]}}',
        '{"stream":"btcusd_perp@bookTicker","data":{"e":"bookTicker","u":17242169,'
        '"s":"BTCUSD_PERP","ps":"BTCUSD","b":"9548.1","B":"52","a":"9548.5","A":"11",'
        '"T":1591268628155,"E":1591268628166}}',
    ],
    "bybit-spot": [
        '{"topic":"orderbook.200.BTCUSDT","type":"delta","ts":1,"data":{"s":"BTCUSDT",'
        '"b":[["16493.50","0.006"]],"a":[],"u":18521288,"seq":7961638724},"cts":1}',
        '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT",'
        '"S":"Sell","v":"0.001","p":"16578.50","L":"MinusTick","i":"2290000000061666327",'
        '"BT":false}]}',
        '{"success":true,"ret_msg":"pong","conn_id":"x","op":"pong"}',
    ],
    "bybit-inverse": [
        '{"topic":"orderbook.1.BTCUSD","type":"snapshot","ts":1,"data":{"s":"BTCUSD",'
        '"b":[["43000.5","1200"]],"a":[["43001.0","800"]],"u":7,"seq":99},"cts":1}',
        '{"topic":"orderbook.50.BTCUSD","type":"delta","ts":1,"data":{"s":"BTCUSD",'
        '"b":[["43000.5","1100"]],"a":[],"u":8,"seq":100},"cts":1}',
    ],
    "bitget": [
        '{"action":"snapshot","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT"},'
        '"data":[{"asks":[["26275","0.0009"]],"bids":[["26274.9","0.5"]],"checksum":0,"pseq":0,'
        '"seq":100,"ts":"1695710946294"}],"ts":1695710946294}',
        '{"action":"update","arg":{"instType":"SPOT","channel":"books","instId":"BTCUSDT"},'
        '"data":[{"asks":[],"bids":[["26274.9","0"]],"checksum":-1234567,"pseq":100,"seq":107,'
        '"ts":"1695710946295"}],"ts":1695710946295}',
        '{"action":"update","arg":{"instType":"SPOT","channel":"trade","instId":"BTCUSDT"},'
        '"data":[{"ts":"1695709835822","price":"26293.4","size":"0.0013","side":"buy",'
        '"tradeId":"1106624271"}],"ts":1695709835822}',
        '{"action":"snapshot","arg":{"instType":"SPOT","channel":"ticker","instId":"BTCUSDT"},'
        '"data":[{"instId":"BTCUSDT","bidPr":"1","askPr":"2","bidSz":"3","askSz":"4",'
        '"ts":"1"}],"ts":1}',
        '{"event":"error","code":30001,"msg":"x"}',
        "pong",
    ],
    "bitget-futures": [
        '{"action":"snapshot","arg":{"instType":"USDT-FUTURES","channel":"books",'
        '"instId":"BTCUSDT"},"data":[{"asks":[["26275","9"]],"bids":[["26274.9","5"]],'
        '"checksum":0,"pseq":0,"seq":100,"ts":"1695710946294"}],"ts":1695710946294}',
    ],
    "deribit": [
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms",'
        '"data":{"type":"snapshot","timestamp":1554373962454,"instrument_name":"BTC-PERPETUAL",'
        '"change_id":297217,"bids":[["new",5042.34,30],["new",5041.94,20]],'
        '"asks":[["new",5042.64,40],["new",5043.3,40]]}}}',
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.100ms",'
        '"data":{"type":"change","timestamp":1554373911330,"prev_change_id":297217,'
        '"instrument_name":"BTC-PERPETUAL","change_id":297218,"bids":[["delete",5041.94,0]],'
        '"asks":[["change",5042.64,1e-05],["new",5043.5,20]]}}}',
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"trades.BTC-PERPETUAL.100ms",'
        '"data":[{"trade_seq":30289432,"trade_id":"48079254","timestamp":1590484156350,'
        '"tick_direction":0,"price":8950,"instrument_name":"BTC-PERPETUAL","direction":"sell",'
        '"amount":10}]}}',
        '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"quote.BTC-PERPETUAL",'
        '"data":{"timestamp":1550658624149,"instrument_name":"BTC-PERPETUAL",'
        '"best_bid_price":3914.97,"best_bid_amount":40,"best_ask_price":3996.61,'
        '"best_ask_amount":50}}}',
        '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}',
        '{"jsonrpc":"2.0","id":100,"result":["book.BTC-PERPETUAL.100ms"],"usIn":1,"usOut":2}',
        '{"jsonrpc":"2.0","id":100,"error":{"code":-32602,"message":"Invalid params"}}',
    ],
    "bybit": [
        '{"topic":"orderbook.50.BTCUSDT","type":"snapshot","ts":1671179923028,"data":{"s":"BTCUSDT",'
        '"b":[["17440.00","40.833"]],"a":[["17440.50","78.815"]],"u":13079592,"seq":22520573250},'
        '"cts":1671179923025}',
        '{"topic":"orderbook.50.BTCUSDT","type":"delta","ts":1671179923046,"data":{"s":"BTCUSDT",'
        '"b":[],"a":[["17440.50","78.857"]],"u":13079593,"seq":22520573251},"cts":1}',
        '{"topic":"publicTrade.BTCUSDT","type":"snapshot","ts":1,"data":[{"T":1,"s":"BTCUSDT",'
        '"S":"Buy","v":"0.001","p":"16578.50","L":"PlusTick","i":"20f43950-d8dd-5b31-9112-a178eb6023af",'
        '"BT":false}]}',
        '{"success":true,"ret_msg":"pong","conn_id":"x","op":"ping"}',
    ],
    "okx": [
        '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"snapshot","data":[{"asks":'
        '[["8476.98","415","0","13"]],"bids":[["8476.97","256","0","12"]],"ts":"1597026383085",'
        '"checksum":0,"prevSeqId":-1,"seqId":123456}]}',
        '{"arg":{"channel":"books","instId":"BTC-USDT"},"action":"update","data":[{"asks":'
        '[["8476.98","0","0","0"]],"bids":[],"ts":"1597026383086","checksum":0,"prevSeqId":123456,'
        '"seqId":123457}]}',
        '{"arg":{"channel":"trades","instId":"BTC-USDT"},"data":[{"instId":"BTC-USDT",'
        '"tradeId":"130639474","px":"42219.9","sz":"0.12060306","side":"buy","ts":"1630048897897"}]}',
        '{"event":"subscribe","arg":{"channel":"books","instId":"BTC-USDT"},"connId":"a4d3ae55"}',
        "pong",
    ],
    "coinbase": [
        '{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z",'
        '"sequence_num":0,"events":[{"type":"snapshot","product_id":"BTC-USD","updates":[{"side":'
        '"bid","event_time":"1970-01-01T00:00:00Z","price_level":"21921.73","new_quantity":'
        '"0.06317902"},{"side":"offer","event_time":"1970-01-01T00:00:00Z","price_level":'
        '"21921.74","new_quantity":"1.5"}]}]}',
        '{"channel":"l2_data","client_id":"","timestamp":"2023-02-09T20:32:50.8Z","sequence_num":'
        '7,"events":[{"type":"update","product_id":"BTC-USD","updates":[{"side":"offer",'
        '"event_time":"2023-02-09T20:32:50.8Z","price_level":"21921.74","new_quantity":"0"}]}]}',
        '{"channel":"market_trades","client_id":"","timestamp":"2023-02-09T20:19:35.39625135Z",'
        '"sequence_num":1,"events":[{"type":"update","trades":[{"trade_id":"000000000",'
        '"product_id":"ETH-USD","price":"1260.01","size":"0.3","side":"BUY",'
        '"time":"2019-08-14T20:42:27.265Z"}]}]}',
        '{"channel":"ticker","client_id":"","timestamp":"2023-02-09T20:30:37.167359596Z",'
        '"sequence_num":2,"events":[{"type":"update","tickers":[{"type":"ticker","product_id":'
        '"BTC-USD","price":"21932.98","best_bid":"21931.98","best_bid_quantity":"8000.21",'
        '"best_ask":"21933.98","best_ask_quantity":"8038.07770938"}]}]}',
        '{"channel":"heartbeats","client_id":"","timestamp":"2023-06-23T20:31:26.122969572Z",'
        '"sequence_num":3,"events":[{"current_time":"2023-06-23 20:31:56.121961769 +0000 UTC",'
        '"heartbeat_counter":3049}]}',
        '{"channel":"subscriptions","client_id":"","timestamp":"2023-02-09T20:32:50.714964855Z",'
        '"sequence_num":4,"events":[{"subscriptions":{"level2":["BTC-USD"]}}]}',
        '{"type":"error","message":"failure to subscribe"}',
    ],
    "kraken": [
        '{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[{"symbol":'
        '"BTC/USD","base":"BTC","quote":"USD","status":"online","qty_precision":8,'
        '"qty_increment":0.00000001,"price_precision":1,"cost_precision":5,"marginable":true,'
        '"has_index":true,"cost_min":0.5,"tick_size":0.1,"price_increment":0.1,"qty_min":0.0001}]}}',
        '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,'
        '"qty":0.1},{"price":45283.4,"qty":1.2}],"asks":[{"price":45285.2,"qty":0.001}],'
        '"checksum":3310070434}]}',
        '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":45283.5,'
        '"qty":0}],"asks":[],"checksum":2114181697,"timestamp":"2023-10-06T17:35:55.440295Z"}]}',
        '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"sell","price":'
        '45283.5,"qty":0.1,"ord_type":"market","trade_id":4665906,"timestamp":'
        '"2023-09-25T07:49:37.708706Z"}]}',
        '{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":45283.5,'
        '"bid_qty":0.1,"ask":45285.2,"ask_qty":0.001,"last":45284.0,"volume":10.5}]}',
        '{"method":"subscribe","result":{"channel":"book","depth":25,"snapshot":true,"symbol":'
        '"BTC/USD"},"success":true,"time_in":"2023-09-25T09:04:31.742599Z","time_out":'
        '"2023-09-25T09:04:31.742648Z","req_id":7}',
        '{"error":"Currency pair not supported","method":"subscribe","success":false,"symbol":'
        '"XX/YY","time_in":"2023-09-25T09:04:31.742599Z","time_out":"2023-09-25T09:04:31.7Z"}',
        '{"method":"pong","req_id":101,"time_in":"2023-09-24T14:10:23.799685Z","time_out":'
        '"2023-09-24T14:10:23.799703Z"}',
        '{"channel":"heartbeat"}',
    ],
}


# ------------------------------------------------------------------------------ mutations

def mutate_bytes(rng, seeds):
    data = bytearray(rng.choice(seeds))
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        if op < 0.25 and data:
            i = rng.randrange(len(data))
            data[i] ^= 1 << rng.randrange(8)
        elif op < 0.45 and data:
            del data[rng.randrange(len(data)):][:rng.randint(1, 4)]
        elif op < 0.65:
            i = rng.randint(0, len(data))
            data[i:i] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4)))
        elif op < 0.75:
            other = rng.choice(seeds)
            data += other[rng.randrange(len(other) + 1):]
        elif op < 0.85 and data:
            del data[rng.randrange(len(data)):]
        elif op < 0.92 and data:
            i = rng.randrange(len(data))
            data[i] = rng.choice((0, 0x7F, 0x80, 0xFF, 0x7E, 0x7D))   # length-field edges
        else:
            data += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 32)))
    return bytes(data)


TEXT_ALPHABET = '0123456789.,:[]{}"-eE +abuU\\ÿ€'


def mutate_text(rng, seeds, alphabet=TEXT_ALPHABET):
    """One seed with 1..5 character replacements, deletions, insertions or a truncation
    (``alphabet``: the characters to insert; adapter tests pass their venue's letters)."""
    chars = list(rng.choice(seeds))
    for _ in range(rng.randint(1, 5)):
        op = rng.random()
        if op < 0.35 and chars:
            chars[rng.randrange(len(chars))] = rng.choice(alphabet)
        elif op < 0.6 and chars:
            del chars[rng.randrange(len(chars))]
        elif op < 0.85:
            chars.insert(rng.randint(0, len(chars)), rng.choice(alphabet))
        elif chars:
            del chars[rng.randrange(len(chars)):]
    return "".join(chars)


def chunks(rng, data):
    """Split ``data`` at random points (parsers must not care how bytes arrive)."""
    out, pos = [], 0
    while pos < len(data):
        step = rng.randint(1, max(1, len(data) // 3))
        out.append(data[pos:pos + step])
        pos += step
    return out or [b""]


# ------------------------------------------------------------------------------ targets

def run_ws(rng, data):
    conn = ws_proto.Connection(ws_proto.CLIENT, max_message_bytes=4096,
                               mask_key_source=lambda n: b"\x01\x02\x03\x04")
    try:
        for part in chunks(rng, data):
            for event in conn.receive_data(part):
                assert type(event).__name__ in ("Message", "Ping", "Pong", "Close"), event
            conn.data_to_send()
        conn.receive_data(b"")
    except WebSocketError:
        return


def run_http(rng, data):
    parser = http_proto.ResponseParser(max_body_bytes=4096)
    try:
        for part in chunks(rng, data):
            parser.feed(part)
            while parser.next_response() is not None:
                pass
        parser.feed(b"")
        while parser.next_response() is not None:
            pass
    except HttpError:
        return


def run_wire(rng, data):
    try:
        packet = wire.decode_packet(data)
    except WireError:
        return
    assert packet.count == len(packet.messages)


U64 = 2 ** 64


def check_venue_events(events):
    """The invariants every event of every venue adapter keeps (tests/test_venue_contract.py)."""
    assert type(events) is list
    for event in events:
        assert type(event) in (DepthUpdate, Trade, Quote, Control, ConnSequence), event
        if type(event) is DepthUpdate:
            assert type(event.symbol) is str and event.symbol
            assert type(event.first_id) is int and type(event.last_id) is int
            assert 0 <= event.first_id <= event.last_id < U64
            assert type(event.prev_id) is int and -1 <= event.prev_id < U64
            assert len(event.bids) % 2 == 0 and len(event.asks) % 2 == 0
            assert all(type(x) is int and x >= 0 for x in event.bids + event.asks)
            assert all(p > 0 for p in event.bids[0::2] + event.asks[0::2])
        elif type(event) is Trade:
            assert 0 <= event.trade_id < U64
            assert event.price > 0 and event.qty > 0
        elif type(event) is Quote:
            assert min(event.bid_px, event.bid_qty, event.ask_px, event.ask_qty) >= 0


def venue_runner(name):
    venue = registry.adapter(name)([], ("depth", "trade", "bookTicker"))

    def run(rng, text):
        venue.fast_scanner = rng.random() < 0.5     # both parse paths, on every interpreter
        try:
            events = venue.parse(text)
        except VenueError:
            return
        check_venue_events(events)
    return run


TARGETS = {
    "ws": (ws_seeds, mutate_bytes, run_ws),
    "http": (http_seeds, mutate_bytes, run_http),
    "wire": (wire_seeds, mutate_bytes, run_wire),
}
for _name in VENUE_SEEDS:
    TARGETS["venue-" + _name] = ((lambda n=_name: VENUE_SEEDS[n]), mutate_text, venue_runner(_name))


def fuzz(target, seconds, seed, crash_dir=None):
    """Run one target for ``seconds``; returns (cases, None) or (cases, (input, exception))."""
    make_seeds, mutate, run = TARGETS[target]
    seeds = make_seeds()
    rng = random.Random(seed)
    for s in seeds:                      # the seeds themselves must pass
        run(random.Random(seed), s)
    deadline = time.monotonic() + seconds
    cases = 0
    while time.monotonic() < deadline:
        for _ in range(50):
            data = mutate(rng, seeds)
            try:
                run(rng, data)
            except Exception as exc:      # noqa: BLE001 -- that is exactly what we look for
                if crash_dir:
                    save_crash(crash_dir, target, data)
                return cases, (data, exc)
            cases += 1
    return cases, None


def save_crash(crash_dir, target, data):
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    path = os.path.join(crash_dir, "fuzz-crash-%s-%d.bin" % (target, int(time.time())))
    with open(path, "wb") as f:
        f.write(raw)
    print("crash input saved to %s" % path, file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", choices=sorted(TARGETS), action="append",
                        help="repeatable; default: every target")
    parser.add_argument("--seconds", type=float, default=60.0, help="total, split over targets")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--replay", metavar="FILE", help="run one saved input through --target")
    args = parser.parse_args(argv)
    targets = args.target or sorted(TARGETS)
    if args.replay:
        with open(args.replay, "rb") as f:
            raw = f.read()
        make_seeds, mutate, run = TARGETS[targets[0]]
        run(random.Random(args.seed), raw.decode("utf-8", "surrogatepass")
            if mutate is mutate_text else raw)
        print("no failure")
        return 0
    failed = False
    report = {"seed": args.seed, "targets": {}}
    for target in targets:
        cases, crash = fuzz(target, args.seconds / len(targets), args.seed, crash_dir=".")
        report["targets"][target] = {"cases": cases, "failure": repr(crash[1]) if crash else None}
        failed = failed or crash is not None
    print(json.dumps(report, indent=1, sort_keys=True))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
