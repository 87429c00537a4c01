"""Specification of the simulator's Kraken spot WebSocket v2 dialect (hftfeed/tools/sim/kraken.py).

Answers per symbol, ping/pong, the instrument snapshot with precisions, and the book: what a
subscriber of depth N is told (changes within N, qty 0 for deletions within N, levels moving
in from deeper, nothing for levels pushed out) keeps its truncated book equal to the venue's
top N, every message's CRC32 matching that book; ``bad_checksum`` corrupts exactly one."""

import asyncio
import json
import zlib

import simtruth
from refbook import RefBook

from hftfeed.codecs.fixed import parse_price
from hftfeed.tools.sim import kraken, rawclient
from hftfeed.tools.sim.server import start_sim

HOST = "127.0.0.1"


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


class FakeDialect(object):
    formats = {"BTC/USD": None}

    @staticmethod
    def snapshot_message(stream):
        return '{"snapshot":"%s"}' % stream

    @staticmethod
    def instrument_message():
        return '{"channel":"instrument"}'


def test_requests_are_answered_per_symbol_and_pings_with_pongs():
    s = kraken.KrakenSession(FakeDialect(), 10)
    out = s.handle_text('{"method":"subscribe","params":{"channel":"book","symbol":'
                        '["BTC/USD","XX/YY"],"depth":25},"req_id":3}')
    ok, snap, bad = [json.loads(t) for t in out]
    assert ok["success"] is True and ok["req_id"] == 3
    assert ok["result"] == {"channel": "book", "symbol": "BTC/USD", "depth": 25, "snapshot": True}
    assert snap == {"snapshot": "book25:BTC/USD"}
    assert bad["success"] is False and bad["symbol"] == "XX/YY"
    again = json.loads(s.handle_text('{"method":"subscribe","params":{"channel":"book",'
                                     '"symbol":["BTC/USD"],"depth":25}}')[0])
    assert again["error"] == "Already subscribed"
    depth = json.loads(s.handle_text('{"method":"subscribe","params":{"channel":"book",'
                                     '"symbol":["BTC/USD"],"depth":7}}')[0])
    assert depth["success"] is False
    pong = json.loads(s.handle_text('{"method":"ping","req_id":101}')[0])
    assert pong["method"] == "pong" and pong["req_id"] == 101
    inst = s.handle_text('{"method":"subscribe","params":{"channel":"instrument"}}')
    assert inst[1] == '{"channel":"instrument"}'
    s.handle_text('{"method":"unsubscribe","params":{"channel":"book","symbol":["BTC/USD"],'
                  '"depth":25}}')
    assert s.streams == []
    for junk in ("nope", "[]", '{"method":"fly"}', '{"method":"subscribe","params":{"channel":'
                 '"ohlc","symbol":["BTC/USD"]}}'):
        assert json.loads(s.handle_text(junk)[0])["success"] is False


def crc(book, pp, qp):
    bids, asks = book.top(10)
    text = "".join("%d%d" % (p // 10 ** (8 - pp), q // 10 ** (8 - qp)) for p, q in asks + bids)
    return zlib.crc32(text.encode())


def levels(side):
    return [x for lv in side for x in (parse_price(lv["price"]), parse_price(lv["qty"]))]


def subscribe_book(depth, symbol="BTC/USD"):
    return {"method": "subscribe", "params": {"channel": "book", "symbol": [symbol],
                                              "depth": depth}}


def collect(port, depth, count, fault=None):
    async def body():
        ws = await rawclient.ws_connect(HOST, port, "/v2")
        ws.send_json({"method": "subscribe", "params": {"channel": "instrument"}})
        ws.send_json(subscribe_book(depth))
        msgs = []
        while len(msgs) < count:
            text = await ws.recv_message()
            msgs.append(json.loads(text, parse_float=str))
            if fault is not None and len(msgs) == count // 2:
                await rawclient.post_fault(HOST, port, fault)
        await ws.close()
        return msgs
    return body()


def test_a_depth_10_subscriber_keeps_the_venues_top_10_with_every_checksum_matching(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue="kraken", symbols=["BTC/USD"], rate=1000, record=str(journal),
                              depth_levels=40)
        try:
            return await collect(srv.port, 10, 400)
        finally:
            await srv.close()

    msgs = run(body())
    pair = next(m for m in msgs if m.get("channel") == "instrument")["data"]["pairs"][0]
    pp, qp = pair["price_precision"], pair["qty_precision"]
    books = [m for m in msgs if m.get("channel") == "book"]
    assert books[0]["type"] == "snapshot" and len(books) > 300
    book = RefBook()
    for m in books:
        d = m["data"][0]
        if m["type"] == "snapshot":
            book.load_snapshot(levels(d["bids"]), levels(d["asks"]), 0)
        else:
            book.apply_levels(levels(d["bids"]), levels(d["asks"]))
        bids, asks = book.top(10)
        book.load_snapshot([x for lv in bids for x in lv], [x for lv in asks for x in lv], 0)
        assert d["checksum"] == crc(book, pp, qp)
        assert len(bids) <= 10
    truth = simtruth.load_journal(journal, initial_book_ids=True)
    tops = [truth.book_at("BTC/USD", ev[1]).top(10) for ev in truth.depth_events["BTC/USD"]]
    assert book.top(10) in tops


def test_bad_checksum_corrupts_exactly_one_message():
    async def body():
        srv = await start_sim(venue="kraken", symbols=["BTC/USD"], rate=500)
        try:
            return await collect(srv.port, 25, 200, {"fault": "bad_checksum"})
        finally:
            await srv.close()

    msgs = run(body())
    pair = next(m for m in msgs if m.get("channel") == "instrument")["data"]["pairs"][0]
    book = RefBook()
    wrong = 0
    for m in msgs:
        if m.get("channel") != "book":
            continue
        d = m["data"][0]
        if m["type"] == "snapshot":
            book.load_snapshot(levels(d["bids"]), levels(d["asks"]), 0)
        else:
            book.apply_levels(levels(d["bids"]), levels(d["asks"]))
        bids, asks = book.top(25)
        book.load_snapshot([x for lv in bids for x in lv], [x for lv in asks for x in lv], 0)
        wrong += d["checksum"] != crc(book, pair["price_precision"], pair["qty_precision"])
    assert wrong == 1


def test_heartbeats_come_only_in_a_second_without_other_messages():
    """Kraken sends ``{"channel":"heartbeat"}`` about once a second *in the absence of any
    other channel updates*: a connection with a busy book gets none, a quiet one gets them."""
    async def heartbeats(rate):
        srv = await start_sim(venue="kraken", symbols=["BTC/USD"], rate=rate)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/v2")
            ws.send_json(subscribe_book(10))
            loop = asyncio.get_running_loop()
            end_s = loop.time() + 3.5
            beats = others = 0
            while loop.time() < end_s:
                try:
                    text = await ws.recv_message(max(0.05, end_s - loop.time()))
                except asyncio.TimeoutError:
                    break
                if json.loads(text).get("channel") == "heartbeat":
                    beats += 1
                else:
                    others += 1
            await ws.close()
            return beats, others
        finally:
            await srv.close()

    busy_beats, busy_others = run(heartbeats(300))
    assert busy_others > 300 and busy_beats == 0
    quiet_beats, _quiet_others = run(heartbeats(0.01))
    assert quiet_beats >= 2
