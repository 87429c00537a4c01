"""Specification of the simulator's Coinbase Advanced Trade dialect (hftfeed/tools/sim/coinbase.py).

Subscribe answers (a ``subscriptions`` message per request, errors without a number), the
``sequence_num`` of each connection counting every message of it from 0 across channels,
``level2`` snapshot-then-updates reproducing the journal's book, maker-side trades,
heartbeats, and a message lost in transit showing as a hole on every receiving connection."""

import asyncio
import json

import simtruth
from refbook import RefBook

from hftfeed.codecs.fixed import parse_price
from hftfeed.tools.sim import coinbase, rawclient
from hftfeed.tools.sim.market import SIDE_BUY
from hftfeed.tools.sim.server import start_sim

HOST = "127.0.0.1"


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def flat(updates, side):
    out = []
    for u in updates:
        if u["side"] == side:
            out.append(parse_price(u["price_level"]))
            out.append(parse_price(u["new_quantity"]))
    return out


class FakeDialect(object):
    formats = {"BTC-USD": None}

    @staticmethod
    def subscriptions_message(streams):
        return coinbase.envelope("subscriptions", "t", json.dumps(streams))

    @staticmethod
    def snapshot_message(stream):
        return coinbase.envelope("snap", "t", '"%s"' % stream)


def test_a_session_stamps_its_own_numbers_from_zero():
    a = coinbase.CoinbaseSession(FakeDialect(), 10)
    b = coinbase.CoinbaseSession(FakeDialect(), 10)
    text = coinbase.envelope("heartbeats", "t", "{}").encode()
    assert [json.loads(a.stamp(text))["sequence_num"] for _ in range(3)] == [0, 1, 2]
    assert json.loads(b.stamp(text))["sequence_num"] == 0       # per connection
    err = coinbase.error_message("x").encode()
    assert a.stamp(err) == err and a.seq == 3                    # errors take no number


def test_subscribe_is_answered_by_subscriptions_then_the_snapshot_and_errors_are_typed():
    s = coinbase.CoinbaseSession(FakeDialect(), 10)
    out = s.handle_text('{"type":"subscribe","product_ids":["BTC-USD"],"channel":"level2"}')
    assert [json.loads(t)["channel"] for t in out] == ["subscriptions", "snap"]
    assert s.streams == ["level2:BTC-USD"]
    assert s.handle_text('{"type":"subscribe","channel":"heartbeats"}')[0]
    assert s.streams == ["level2:BTC-USD", "heartbeats"]
    for bad in ('nope', '[]', '{"type":"hello"}', '{"type":"subscribe","channel":"level3",'
                '"product_ids":["BTC-USD"]}', '{"type":"subscribe","channel":"level2"}',
                '{"type":"subscribe","channel":"level2","product_ids":["DOGE-USD"]}'):
        (reply,) = s.handle_text(bad)
        assert json.loads(reply)["type"] == "error"
    s.handle_text('{"type":"unsubscribe","product_ids":["BTC-USD"],"channel":"level2"}')
    assert s.streams == ["heartbeats"]


def test_level2_snapshot_then_updates_reproduce_the_journal_book_and_numbers_count_up(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue="coinbase", symbols=["BTC-USD", "ETH-USD"], rate=1000,
                              record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/")
            ws.send_json({"type": "subscribe", "channel": "level2",
                          "product_ids": ["BTC-USD", "ETH-USD"]})
            ws.send_json({"type": "subscribe", "channel": "market_trades",
                          "product_ids": ["BTC-USD"]})
            msgs = [json.loads(await ws.recv_message()) for _ in range(300)]
            await ws.close()
        finally:
            await srv.close()
        return msgs

    msgs = run(body())
    assert [m["sequence_num"] for m in msgs] == list(range(300))
    assert msgs[0]["channel"] == "subscriptions"
    assert list(msgs[0]) == ["channel", "client_id", "timestamp", "sequence_num", "events"]
    truth = simtruth.load_journal(journal, initial_book_ids=True)
    book = RefBook()
    started = False
    trades = 0
    for m in msgs:
        if m["channel"] == "market_trades":
            for t in m["events"][0]["trades"]:
                price, qty, side = truth.trades["BTC-USD"][int(t["trade_id"])]
                assert (parse_price(t["price"]), parse_price(t["size"])) == (price, qty)
                assert t["side"] == ("SELL" if side == SIDE_BUY else "BUY")   # the maker's
                trades += 1
            continue
        if m["channel"] != "l2_data" or m["events"][0]["product_id"] != "BTC-USD":
            continue
        ev = m["events"][0]
        bids, asks = flat(ev["updates"], "bid"), flat(ev["updates"], "offer")
        if ev["type"] == "snapshot":
            book.load_snapshot(bids, asks, 0)
            started = True
        else:
            assert started
            book.apply_levels(bids, asks)
    assert started
    tops = {u: truth.book_at("BTC-USD", u).top(50) for u in
            [e[1] for e in truth.depth_events["BTC-USD"]]}
    assert book.top(50) in tops.values()
    assert trades > 0


def test_heartbeats_come_every_second_and_a_lost_message_is_a_hole_on_each_connection():
    async def body():
        srv = await start_sim(venue="coinbase", symbols=["BTC-USD"], rate=200)
        try:
            conns = []
            for _ in range(2):
                ws = await rawclient.ws_connect(HOST, srv.port, "/")
                ws.send_json({"type": "subscribe", "channel": "heartbeats"})
                ws.send_json({"type": "subscribe", "channel": "level2",
                              "product_ids": ["BTC-USD"]})
                conns.append(ws)
            first = []
            for ws in conns:
                first.append([json.loads(await ws.recv_message()) for _ in range(20)])
            await rawclient.post_fault(HOST, srv.port, {"fault": "drop_diff"})
            seen = []
            for ws in conns:
                got = []
                while not any(m["channel"] == "heartbeats" for m in got[5:]):
                    got.append(json.loads(await ws.recv_message(3.0)))
                seen.append(got)
            for ws in conns:
                await ws.close()
        finally:
            await srv.close()
        return first, seen

    first, seen = run(body())
    for before, after in zip(first, seen):
        nums = [m["sequence_num"] for m in before + after]
        steps = [b - a for a, b in zip(nums, nums[1:])]
        assert steps.count(2) == 1 and set(steps) == {1, 2}, steps
        beat = next(m for m in after if m["channel"] == "heartbeats")
        assert beat["events"][0]["heartbeat_counter"] >= 1
