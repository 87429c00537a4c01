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
from hftfeed.core.updates import Control, DepthUpdate, Quote, Trade  # noqa: E402


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
    wire.pack_packet_header(buf, 0, 3, 5, 1700000000, 1, 123)
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
        assert type(event) in (DepthUpdate, Trade, Quote, Control), event
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
