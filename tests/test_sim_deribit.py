"""Specification of the simulator's Deribit dialect (hftfeed/tools/sim/deribit.py), through real
loopback sockets: JSON-RPC answers, the book's snapshot + change-id chain rebuilding the
journal's book, new/change/delete actions, trades and quotes, and the heartbeat rule (an
unanswered test_request closes the connection)."""

import asyncio
import json
from decimal import Decimal

import simtruth
from refbook import RefBook

from hftfeed.codecs.fixed import parse_price
from hftfeed.tools.sim import rawclient
from hftfeed.tools.sim.server import start_sim

HOST = "127.0.0.1"
VENUE = "deribit"
PERP = "BTC-PERPETUAL"
OPTION = "BTC-27DEC26-100000-C"


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def scaled(number):
    return parse_price(format(Decimal(repr(number)) if isinstance(number, float)
                              else Decimal(number), "f"))


async def rpc(ws, request_id, method, params):
    ws.send_json({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    while True:
        msg = json.loads(await ws.recv_message())
        if msg.get("id") == request_id:
            return msg


def test_subscribe_answers_the_channels_it_took_and_refuses_the_rest():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[PERP], rate=50)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/api/v2")
            sub = await rpc(ws, 7, "public/subscribe", {"channels": [
                "book.%s.100ms" % PERP, "book.%s.raw" % PERP, "book.ETH-PERPETUAL.100ms",
                "quote." + PERP]})
            bad_hb = await rpc(ws, 8, "public/set_heartbeat", {"interval": 5})
            hb = await rpc(ws, 9, "public/set_heartbeat", {"interval": 10})
            unknown = await rpc(ws, 10, "public/nope", {})
            await ws.close()
        finally:
            await srv.close()
        return sub, bad_hb, hb, unknown

    sub, bad_hb, hb, unknown = run(body())
    assert sub["jsonrpc"] == "2.0" and sub["result"] == ["book.%s.100ms" % PERP, "quote." + PERP]
    assert bad_hb["error"]["code"] == -32602 and hb["result"] == "ok"
    assert unknown["error"]["code"] == -32601


def test_snapshot_then_changes_chain_by_prev_change_id_and_rebuild_the_journal_book(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=[PERP, OPTION], rate=1000,
                              record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/api/v2")
            ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "public/subscribe",
                          "params": {"channels": ["book.%s.100ms" % PERP]}})
            msgs = [json.loads(await ws.recv_message()) for _ in range(150)]
            await ws.close()
        finally:
            await srv.close()
        return msgs

    msgs = run(body())
    assert msgs[0]["id"] == 1
    books = [m["params"]["data"] for m in msgs[1:]]
    assert books[0]["type"] == "snapshot" and "prev_change_id" not in books[0]
    assert {a for lv in books[0]["bids"] + books[0]["asks"] for a in lv[:1]} == {"new"}
    bids = {}
    asks = {}
    prev = None
    actions = set()
    for data in books:
        if data["type"] == "change":
            assert data["prev_change_id"] == prev
        for side, levels in ((bids, data["bids"]), (asks, data["asks"])):
            for action, price, amount in levels:
                px = scaled(price)
                actions.add(action)
                if action == "delete":      # the engine also removes levels never shown
                    assert amount == 0
                    side.pop(px, None)
                else:
                    assert (action == "change") == (px in side), (action, price)
                    side[px] = scaled(amount)
        prev = data["change_id"]
    assert actions == {"new", "change", "delete"}
    truth = simtruth.load_journal(journal, initial_book_ids=True)
    book = RefBook()
    flat_b = [v for p in sorted(bids, reverse=True) for v in (p, bids[p])]
    flat_a = [v for p in sorted(asks) for v in (p, asks[p])]
    book.load_snapshot(flat_b, flat_a, prev)
    assert book.top(200) == truth.book_at(PERP, prev).top(200)


def test_trades_and_quotes_carry_the_journal_values(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=[PERP], rate=2000, record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/api/v2")
            ws.send_json({"jsonrpc": "2.0", "id": 1, "method": "public/subscribe",
                          "params": {"channels": ["trades.%s.100ms" % PERP, "quote." + PERP]}})
            msgs = [json.loads(await ws.recv_message()) for _ in range(120)]
            await ws.close()
        finally:
            await srv.close()
        return msgs

    msgs = run(body())
    truth = simtruth.load_journal(journal, initial_book_ids=True)
    trades = [t for m in msgs[1:] if m["params"]["channel"].startswith("trades.")
              for t in m["params"]["data"]]
    quotes = [m["params"]["data"] for m in msgs[1:] if m["params"]["channel"].startswith("quote.")]
    assert trades and quotes
    for t in trades:
        px, qty, side = truth.trades[PERP][t["trade_seq"]]
        assert (scaled(t["price"]), scaled(t["amount"])) == (px, qty)
        assert t["trade_id"] == str(t["trade_seq"]) and t["direction"] in ("buy", "sell")
    known = set(truth.quotes[PERP].values())
    for q in quotes:
        assert (scaled(q["best_bid_price"]), scaled(q["best_bid_amount"]),
                scaled(q["best_ask_price"]), scaled(q["best_ask_amount"])) in known


def test_an_unanswered_test_request_closes_the_connection_and_an_answered_one_does_not():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[PERP], rate=20, test_request_s=0.2)
        try:
            silent = await rawclient.ws_connect(HOST, srv.port, "/ws/api/v2")
            polite = await rawclient.ws_connect(HOST, srv.port, "/ws/api/v2")
            for ws in (silent, polite):
                await rpc(ws, 1, "public/set_heartbeat", {"interval": 10})
            requests = 0
            closed = None
            deadline = asyncio.get_running_loop().time() + 1.5
            while asyncio.get_running_loop().time() < deadline:
                try:
                    msg = json.loads(await polite.recv_message(0.3))
                except asyncio.TimeoutError:
                    continue
                if msg.get("method") == "heartbeat":
                    assert msg["params"] == {"type": "test_request"}
                    requests += 1
                    polite.send_json({"jsonrpc": "2.0", "id": 2, "method": "public/test",
                                      "params": {}})
            try:
                while True:
                    await silent.recv_message(2.0)
            except ConnectionError as exc:
                closed = str(exc)
            status = srv.status()["venue_state"]
            await polite.close()
        finally:
            await srv.close()
        return requests, closed, status

    requests, closed, status = run(body())
    assert requests >= 3
    assert closed is not None and "test_request not answered" in closed
    assert status["heartbeat_closes"] == 1 and status["tests_answered"] >= requests - 1
