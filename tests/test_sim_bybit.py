"""Specification of the simulator's Bybit v5 public linear dialect (hftfeed/tools/sim/bybit.py).

Shapes checked against Bybit's v5 docs ("Connect", "Orderbook", "Trade"): subscribe answers,
app-level ping/pong, snapshot-then-delta with u + 1, the u == 1 restart snapshot, level 1
snapshots repeated after 3 s without change, publicTrade with the taker side and a UUID id.
"""

import asyncio
import json
import re

import pytest

import simtruth
from refbook import RefBook

from hftfeed.codecs.fixed import parse_price
from hftfeed.tools.sim import bybit, rawclient
from hftfeed.tools.sim.market import SIDE_BUY, SIDE_SELL
from hftfeed.tools.sim.server import start_sim
from hftfeed.codecs.ws_proto import Close, Ping

HOST = "127.0.0.1"
VENUE = "bybit"
PATH = "/v5/public/linear"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def flat(levels):
    out = []
    for p, q in levels:
        out.append(parse_price(p))
        out.append(parse_price(q))
    return out


async def recv_until(ws, pred, limit=2000, timeout_s=5.0):
    """Messages up to and including the first one ``pred`` accepts."""
    seen = []
    for _ in range(limit):
        msg = json.loads(await ws.recv_message(timeout_s))
        seen.append(msg)
        if pred(msg):
            return seen
    raise AssertionError("no matching message in %d" % limit)


def topic_is(topic):
    return lambda m: m.get("topic") == topic


async def subscribe(srv, *topics, req_id=None):
    ws = await rawclient.ws_connect(HOST, srv.port, PATH)
    req = {"op": "subscribe", "args": list(topics)}
    if req_id is not None:
        req["req_id"] = req_id
    ws.send_json(req)
    return ws


# ---------------------------------------------------------------------- pure rules
class FakeDialect(object):
    formats = {"BTCUSDT": None}

    @staticmethod
    def snapshot_message(topic):
        return '{"snapshot":"%s"}' % topic


def test_subscribe_answer_has_bybits_fields_in_order_and_echoes_req_id():
    session = bybit.BybitSession(FakeDialect(), "c1")
    out = session.handle_text('{"op":"subscribe","args":["orderbook.50.BTCUSDT"],"req_id":"r7"}')
    ack = json.loads(out[0])
    assert list(ack) == ["success", "ret_msg", "conn_id", "req_id", "op"]
    assert ack == {"success": True, "ret_msg": "", "conn_id": "c1", "req_id": "r7",
                   "op": "subscribe"}
    assert out[1:] == ['{"snapshot":"orderbook.50.BTCUSDT"}']   # the snapshot follows the answer
    plain = json.loads(session.handle_text('{"op":"subscribe","args":["publicTrade.BTCUSDT"]}')[0])
    assert "req_id" not in plain and plain["success"] is True


def test_ping_is_answered_with_a_linear_pong():
    out = bybit.BybitSession(FakeDialect(), "c9").handle_text('{"op":"ping","req_id":"100"}')
    assert [json.loads(t) for t in out] == [{"success": True, "ret_msg": "pong", "conn_id": "c9",
                                             "req_id": "100", "op": "ping"}]


def test_subscribing_twice_or_to_an_unknown_topic_fails_and_unsubscribe_answers():
    session = bybit.BybitSession(FakeDialect(), "c1")
    session.handle_text('{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}')
    again = json.loads(session.handle_text(
        '{"op":"subscribe","args":["orderbook.50.BTCUSDT"]}')[0])
    assert again["success"] is False and "already subscribed" in again["ret_msg"]
    for topic in ("orderbook.7.BTCUSDT", "kline.1.BTCUSDT", "orderbook.50.NOPEUSDT"):
        bad = json.loads(session.handle_text('{"op":"subscribe","args":["%s"]}' % topic)[0])
        assert bad["success"] is False and topic in bad["ret_msg"]
    gone = json.loads(session.handle_text(
        '{"op":"unsubscribe","args":["orderbook.50.BTCUSDT"]}')[0])
    assert gone["success"] is True and gone["op"] == "unsubscribe" and session.streams == []
    junk = json.loads(session.handle_text("not json")[0])
    assert junk["success"] is False


def test_trade_ids_are_uuids_that_keep_the_engine_id():
    text = bybit.trade_uuid("BTCUSDT", 1234567)
    assert UUID.match(text)
    assert bybit.trade_id_of_uuid(text) == 1234567
    assert int(text.replace("-", ""), 16) & (2 ** 64 - 1) == (2 << 62) | 1234567


def test_public_trade_shape_and_taker_side():
    fmt = bybit.SymbolFormat("BTCUSDT")
    buy = json.loads(bybit.trade_message(fmt, "BTCUSDT", 5, 3700001000000, 100000, SIDE_BUY,
                                         "PlusTick", 1700000000000))
    assert list(buy) == ["topic", "type", "ts", "data"]
    assert buy["topic"] == "publicTrade.BTCUSDT" and buy["type"] == "snapshot"
    trade = buy["data"][0]
    assert list(trade) == ["T", "s", "S", "v", "p", "L", "i", "BT"]
    assert (trade["S"], trade["p"], trade["v"], trade["L"]) == ("Buy", "37000.01", "0.001",
                                                                  "PlusTick")
    sell = json.loads(bybit.trade_message(fmt, "BTCUSDT", 6, 1, 1, SIDE_SELL, "MinusTick", 1))
    assert sell["data"][0]["S"] == "Sell"


def test_topics_the_dialect_serves():
    assert bybit.parse_topic("orderbook.50.BTCUSDT") == ("book", 50, "BTCUSDT")
    assert bybit.parse_topic("orderbook.1.BTCUSDT") == ("l1", 1, "BTCUSDT")
    assert bybit.parse_topic("publicTrade.ETHUSDT") == ("trade", 0, "ETHUSDT")
    for bad in ("orderbook.25.BTCUSDT", "orderbook.BTCUSDT", "tickers.BTCUSDT", 5):
        with pytest.raises(ValueError):
            bybit.parse_topic(bad)


# ---------------------------------------------------------------------- through real sockets
def test_snapshot_then_deltas_with_u_plus_one_reproduce_the_journal_book(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT", "ETHUSDT"], rate=1000,
                              record=str(journal))
        try:
            ws = await subscribe(srv, "orderbook.50.BTCUSDT", req_id="1")
            ack = json.loads(await ws.recv_message())
            msgs = [json.loads(await ws.recv_message()) for _ in range(120)]
            await ws.close()
        finally:
            await srv.close()
        return ack, msgs

    ack, msgs = run(body())
    assert ack["success"] is True and ack["req_id"] == "1"
    snap = msgs[0]
    assert snap["type"] == "snapshot" and list(snap) == ["topic", "type", "ts", "data", "cts"]
    assert list(snap["data"]) == ["s", "b", "a", "u", "seq"]
    truth = simtruth.load_journal(journal, initial_book_ids=True)
    book = RefBook()
    book.load_snapshot(flat(snap["data"]["b"]), flat(snap["data"]["a"]), snap["data"]["u"])
    assert book.top(50) == truth.book_at("BTCUSDT", snap["data"]["u"]).top(50)
    prev = snap["data"]
    for m in msgs[1:]:
        assert m["type"] == "delta" and m["topic"] == "orderbook.50.BTCUSDT"
        assert m["data"]["u"] == prev["u"] + 1 and m["data"]["seq"] > prev["seq"]
        book.apply_levels(flat(m["data"]["b"]), flat(m["data"]["a"]))
        prev = m["data"]
    assert book.top(50) == truth.book_at("BTCUSDT", prev["u"]).top(50)


def test_resubscribing_sends_a_fresh_snapshot_that_continues_the_chain():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=500)
        try:
            ws = await subscribe(srv, "orderbook.50.BTCUSDT")
            first = await recv_until(ws, lambda m: m.get("type") == "delta")
            ws.send_json({"op": "unsubscribe", "args": ["orderbook.50.BTCUSDT"]})
            await recv_until(ws, lambda m: m.get("op") == "unsubscribe")
            ws.send_json({"op": "subscribe", "args": ["orderbook.50.BTCUSDT"]})
            await recv_until(ws, lambda m: m.get("op") == "subscribe")
            snap = json.loads(await ws.recv_message())
            delta = json.loads(await ws.recv_message())
            await ws.close()
        finally:
            await srv.close()
        return first, snap, delta

    first, snap, delta = run(body())
    assert first[0]["op"] == "subscribe" and first[1]["type"] == "snapshot"
    assert snap["type"] == "snapshot" and snap["data"]["u"] >= first[-1]["data"]["u"]
    assert delta["type"] == "delta" and delta["data"]["u"] == snap["data"]["u"] + 1


def test_service_restart_sends_a_whole_book_snapshot_with_u_1_then_deltas_from_2(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT", "ETHUSDT"], rate=500,
                              record=str(journal))
        try:
            ws = await subscribe(srv, "orderbook.50.BTCUSDT", "orderbook.50.ETHUSDT")
            await recv_until(ws, lambda m: m.get("type") == "delta")
            status, _ = await rawclient.post_fault(HOST, srv.port,
                                                   {"fault": "bybit_restart", "symbol": "BTCUSDT"})
            seen = await recv_until(ws, lambda m: m.get("topic") == "orderbook.50.BTCUSDT"
                                    and m["data"]["u"] == 2)
            await ws.close()
        finally:
            await srv.close()
        return status, seen

    status, seen = run(body())
    assert status == 200
    btc = [m for m in seen if m.get("topic") == "orderbook.50.BTCUSDT"]
    restart, after = btc[-2], btc[-1]
    assert restart["type"] == "snapshot" and restart["data"]["u"] == 1
    assert after["type"] == "delta" and after["data"]["u"] == 2
    assert after["data"]["seq"] > restart["data"]["seq"]        # the cross sequence goes on
    truth = simtruth.load_journal(journal)
    book = RefBook()
    book.load_snapshot(flat(restart["data"]["b"]), flat(restart["data"]["a"]), 1)
    assert book.top(50) == truth.book_at("BTCUSDT", 1).top(50)  # the whole book, as of u=1
    eth = [m["data"]["u"] for m in seen if m.get("topic") == "orderbook.50.ETHUSDT"]
    assert eth and min(eth) > 2                                  # only BTCUSDT restarted
    assert truth.faults_named("bybit_restart")


def test_dropped_delta_shows_as_a_u_gap_of_one():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=500)
        try:
            ws = await subscribe(srv, "orderbook.50.BTCUSDT")
            before = await recv_until(ws, lambda m: m.get("type") == "delta")
            await rawclient.post_fault(HOST, srv.port, {"fault": "drop_diff"})
            after = [json.loads(await ws.recv_message()) for _ in range(20)]
            await ws.close()
        finally:
            await srv.close()
        return [m["data"]["u"] for m in before[1:] + after]

    us = run(body())
    steps = [b - a for a, b in zip(us, us[1:])]
    assert steps.count(2) == 1 and set(steps) == {1, 2}


def test_trades_carry_the_journal_price_size_and_taker_side(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=2000, record=str(journal))
        try:
            ws = await subscribe(srv, "publicTrade.BTCUSDT")
            await recv_until(ws, lambda m: m.get("op") == "subscribe")
            msgs = [json.loads(await ws.recv_message()) for _ in range(15)]
            await ws.close()
        finally:
            await srv.close()
        return msgs

    msgs = run(body())
    truth = simtruth.load_journal(journal)
    for m in msgs:
        for t in m["data"]:
            assert UUID.match(t["i"])
            price, qty, side = truth.trades["BTCUSDT"][bybit.trade_id_of_uuid(t["i"])]
            assert (parse_price(t["p"]), parse_price(t["v"])) == (price, qty)
            assert t["S"] == ("Buy" if side == SIDE_BUY else "Sell")
            assert t["L"] in ("PlusTick", "ZeroPlusTick", "MinusTick", "ZeroMinusTick")


def test_level_one_is_snapshots_only_with_its_own_u_and_repeats_after_a_quiet_spell(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        # ~3 messages a second: quiet spells longer than the (shortened) 0.2 s repeat
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=3, quote_resend_s=0.2,
                              record=str(journal))
        try:
            ws = await subscribe(srv, "orderbook.1.BTCUSDT")
            await recv_until(ws, lambda m: m.get("op") == "subscribe")
            msgs = [json.loads(await ws.recv_message(timeout_s=5)) for _ in range(10)]
            await ws.close()
        finally:
            await srv.close()
        return msgs

    msgs = run(body())
    truth = simtruth.load_journal(journal)
    us = [m["data"]["u"] for m in msgs]
    for m in msgs:
        assert m["topic"] == "orderbook.1.BTCUSDT" and m["type"] == "snapshot"
        assert len(m["data"]["b"]) == 1 and len(m["data"]["a"]) == 1
    assert any(a == b for a, b in zip(us, us[1:])), us          # repeated unchanged
    assert all(b in (a, a + 1) for a, b in zip(us, us[1:])), us
    for m in msgs[1:]:
        if m["data"]["seq"] in truth.quotes["BTCUSDT"]:
            bid_px, bid_qty, ask_px, ask_qty = truth.quotes["BTCUSDT"][m["data"]["seq"]]
            assert flat(m["data"]["b"] + m["data"]["a"]) == [bid_px, bid_qty, ask_px, ask_qty]


def test_a_silent_client_is_dropped_a_pinging_one_stays_and_no_ping_frames_are_sent():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=["BTCUSDT"], rate=50, idle_timeout_s=0.4)
        try:
            silent = await rawclient.ws_connect(HOST, srv.port, PATH, auto_pong=False)
            pinging = await subscribe(srv, "publicTrade.BTCUSDT")

            async def ping_forever():
                while True:
                    pinging.send_json({"op": "ping"})
                    await asyncio.sleep(0.1)
            pinger = asyncio.ensure_future(ping_forever())
            frames = []
            while True:
                ev = await silent.recv(timeout_s=3)
                frames.append(ev)
                if isinstance(ev, Close):
                    break
            await asyncio.sleep(0.3)
            status = srv.status()
            pinger.cancel()
            await pinging.close()
        finally:
            await srv.close()
        return frames, status

    frames, status = run(body())
    assert not any(isinstance(f, Ping) for f in frames)
    assert status["disconnects"] == {"idle": 1}
    assert [c["closing"] for c in status["connections"]] == [False]
