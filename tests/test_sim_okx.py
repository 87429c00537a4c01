"""Specification of the simulator's OKX v5 public dialect (hftfeed/tools/sim/okx.py).

Shapes checked against OKX's v5 docs ("WebSocket: Connect", "Order book channel", "Trades
channel", the 2026-05-21 checksum notice) and the real 2022 capture: per-arg subscribe answers,
text ping/pong, books snapshot (prevSeqId -1) then updates chained by prevSeqId, the CRC32 of the
top 25 levels (real or 0), the empty keepalive update, seqId going down after maintenance,
the 30 s idle rule, the 3 requests a second limit.
"""

import asyncio
import json
import zlib
from pathlib import Path

import pytest

import simtruth
from refbook import RefBook

from hftfeed.codecs.fixed import parse_price
from hftfeed.tools.sim import okx, rawclient
from hftfeed.tools.sim.market import EV_DEPTH, SIDE_BUY, SIDE_SELL
from hftfeed.tools.sim.mirror import MirrorBook
from hftfeed.tools.sim.server import start_sim
from hftfeed.codecs.ws_proto import Close

HOST = "127.0.0.1"
VENUE = "okx"
PATH = "/ws/v5/public"
BTC = "BTC-USDT-SWAP"
ETH = "ETH-USDT-SWAP"
CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "captures"


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def flat(levels):
    out = []
    for level in levels:
        out.append(parse_price(level[0]))
        out.append(parse_price(level[1]))
    return out


def expected_checksum(bids, asks):
    """OKX's rule written out independently: bid1px:bid1sz:ask1px:ask1sz:... over 25 levels,
    CRC32 of the ASCII text as a signed 32-bit int. ``bids``/``asks``: [(px str, sz str)]."""
    parts = []
    for i in range(max(len(bids[:25]), len(asks[:25]))):
        if i < len(bids[:25]):
            parts.extend(bids[i])
        if i < len(asks[:25]):
            parts.extend(asks[i])
    value = zlib.crc32(":".join(parts).encode("ascii"))
    return value - 2 ** 32 if value >= 2 ** 31 else value


class StringBook(object):
    """A client book kept in the venue's own strings (what the checksum is computed over)."""

    def __init__(self, snapshot):
        self.bids = {}
        self.asks = {}
        self.apply(snapshot)

    def apply(self, data):
        for side, levels in ((self.bids, data["bids"]), (self.asks, data["asks"])):
            for level in levels:
                if parse_price(level[1]) == 0:
                    side.pop(level[0], None)
                else:
                    side[level[0]] = level[1]

    def checksum(self):
        bids = sorted(self.bids.items(), key=lambda kv: -parse_price(kv[0]))
        asks = sorted(self.asks.items(), key=lambda kv: parse_price(kv[0]))
        return expected_checksum(bids, asks)

    def flat(self):
        bids = sorted(self.bids.items(), key=lambda kv: -parse_price(kv[0]))
        asks = sorted(self.asks.items(), key=lambda kv: parse_price(kv[0]))
        return flat(bids), flat(asks)


async def recv_until(ws, pred, limit=3000, timeout_s=5.0):
    seen = []
    for _ in range(limit):
        text = await ws.recv_message(timeout_s)
        msg = text if text == "pong" else json.loads(text)
        seen.append(msg)
        if pred(msg):
            return seen
    raise AssertionError("no matching message in %d" % limit)


def books_of(msgs, inst=BTC):
    return [m for m in msgs if isinstance(m, dict) and m.get("arg") == {"channel": "books",
                                                                          "instId": inst}
            and "action" in m]


async def subscribe(srv, *args):
    ws = await rawclient.ws_connect(HOST, srv.port, PATH)
    ws.send_json({"op": "subscribe", "args": [{"channel": c, "instId": i} for c, i in args]})
    return ws


# ---------------------------------------------------------------------- pure rules
def test_hand_computed_checksum_of_a_small_book():
    # bid1 3366.1/7, ask1 3366.8/9, bid2 3366/6, ask2 3368/8, ask3 3372/8 (OKX's interleaving)
    text = "3366.1:7:3366.8:9:3366:6:3368:8:3372:8"
    expected = zlib.crc32(text.encode("ascii"))
    expected = expected - 2 ** 32 if expected >= 2 ** 31 else expected
    bids = [336610000000, 700000000, 336600000000, 600000000]
    asks = [336680000000, 900000000, 336800000000, 800000000, 337200000000, 800000000]
    assert okx.book_checksum(bids, asks) == expected
    mirror = MirrorBook(bids, asks, level_text=okx.level_text)
    assert mirror.interleaved_text(25) == text


def test_checksums_of_the_real_2022_capture_verify():
    path = CAPTURES / "OKX.ws.1.0"
    if not path.exists():
        pytest.skip("no capture at %s" % path)
    mirrors = {}
    verified = 0
    with open(str(path)) as fh:
        for line in fh:
            _ts, sep, text = line.partition(": ")
            if not sep or not text.startswith('{"arg":{"channel":"books"'):
                continue
            msg = json.loads(text)
            inst = msg["arg"]["instId"]
            for data in msg["data"]:
                if msg["action"] == "snapshot":
                    mirrors[inst] = MirrorBook(flat(data["bids"]), flat(data["asks"]),
                                               level_text=okx.level_text)
                elif inst in mirrors:
                    mirrors[inst].apply(flat(data["bids"]), flat(data["asks"]))
                else:
                    continue
                assert okx.crc32_signed(mirrors[inst].interleaved_text(25)) == data["checksum"]
                verified += 1
    assert verified >= 20


def test_books_message_shape_and_levels_as_the_capture_has_them():
    msg = json.loads(okx.books_message(BTC, "update", [3031610000000, 5900000], [3031600000000, 0],
                                       1652459225464, -914047754, 10, 12))
    assert list(msg) == ["arg", "action", "data"]
    assert msg["arg"] == {"channel": "books", "instId": BTC} and msg["action"] == "update"
    data = msg["data"][0]
    assert list(data) == ["asks", "bids", "ts", "checksum", "prevSeqId", "seqId"]
    assert data["bids"] == [["30316.1", "0.059", "0", data["bids"][0][3]]]
    assert data["asks"] == [["30316", "0", "0", "0"]]
    assert data["ts"] == "1652459225464" and data["checksum"] == -914047754
    assert (data["prevSeqId"], data["seqId"]) == (10, 12)


def test_trades_and_bbo_shapes():
    trade = json.loads(okx.trades_message(BTC, 130639474, 4221990000000, 12060306, SIDE_BUY,
                                          1630048897897))
    assert trade["arg"] == {"channel": "trades", "instId": BTC}
    assert trade["data"] == [{"instId": BTC, "tradeId": "130639474", "px": "42219.9",
                              "sz": "0.12060306", "side": "buy", "ts": "1630048897897",
                              "count": "1"}]
    sell = json.loads(okx.trades_message(BTC, 1, 1, 1, SIDE_SELL, 1))
    assert sell["data"][0]["side"] == "sell"
    bbo = json.loads(okx.bbo_message(BTC, 363996337, 11105000000, 5774500000000, 11106000000,
                                     5515400000000, 1670324386802))
    data = bbo["data"][0]
    assert bbo["arg"] == {"channel": "bbo-tbt", "instId": BTC}
    assert data["asks"][0][:3] == ["111.06", "55154", "0"]
    assert data["bids"][0][:3] == ["111.05", "57745", "0"] and data["seqId"] == 363996337


class FakeDialect(object):
    known = frozenset([BTC])

    @staticmethod
    def snapshot_message(inst):
        return '{"snapshot":"%s"}' % inst


def test_every_arg_is_answered_and_errors_name_the_channel():
    session = okx.OkxSession(FakeDialect(), "a4d3ae55")
    out = session.handle_text(json.dumps({"op": "subscribe", "args": [
        {"channel": "books", "instId": BTC}, {"channel": "trades", "instId": BTC},
        {"channel": "books", "instId": "NOPE-USDT"}, {"channel": "candle1m", "instId": BTC}]}))
    msgs = [json.loads(t) for t in out]
    assert msgs[0] == {"event": "subscribe", "arg": {"channel": "books", "instId": BTC},
                       "connId": "a4d3ae55"}
    assert msgs[1] == {"snapshot": BTC}                  # the snapshot follows its answer
    assert msgs[2]["event"] == "subscribe" and msgs[2]["arg"]["channel"] == "trades"
    for err in msgs[3:]:
        assert err["event"] == "error" and err["code"] == "60018" and err["connId"] == "a4d3ae55"
    assert "NOPE-USDT" in msgs[3]["msg"] and "candle1m" in msgs[4]["msg"]
    assert session.streams == ["books:" + BTC, "trades:" + BTC]
    gone = json.loads(session.handle_text(json.dumps(
        {"op": "unsubscribe", "args": [{"channel": "books", "instId": BTC}]}))[0])
    assert gone["event"] == "unsubscribe" and session.streams == ["trades:" + BTC]
    for junk in ("not json", '{"op":"login","args":[]}', '{"op":"subscribe"}'):
        err = json.loads(session.handle_text(junk)[0])
        assert err["event"] == "error" and err["code"] == "60012"


def test_ping_text_is_answered_pong_and_is_not_a_request():
    session = okx.OkxSession(FakeDialect(), "c")
    assert session.handle_text("ping") == ["pong"]
    assert not session.counts_toward_limit("ping")
    assert session.counts_toward_limit('{"op":"subscribe","args":[]}')


# ---------------------------------------------------------------------- through real sockets
def test_snapshot_then_updates_chain_verify_their_checksums_and_match_the_journal(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC, ETH], rate=1000, record=str(journal))
        try:
            ws = await subscribe(srv, ("books", BTC))
            msgs = [json.loads(await ws.recv_message()) for _ in range(100)]
            await ws.close()
        finally:
            await srv.close()
        return msgs

    msgs = run(body())
    assert msgs[0] == {"event": "subscribe", "arg": {"channel": "books", "instId": BTC},
                       "connId": msgs[0]["connId"]}
    books = books_of(msgs)
    snap = books[0]["data"][0]
    assert books[0]["action"] == "snapshot" and snap["prevSeqId"] == -1
    client = StringBook(snap)
    assert client.checksum() == snap["checksum"] != 0
    prev = snap["seqId"]
    for m in books[1:]:
        data = m["data"][0]
        assert m["action"] == "update" and data["prevSeqId"] == prev
        client.apply(data)
        assert client.checksum() == data["checksum"]
        prev = data["seqId"]
    truth = simtruth.load_journal(journal, initial_book_ids=True)
    book = RefBook()
    bids, asks = client.flat()
    book.load_snapshot(bids, asks, prev)
    assert book.top(400) == truth.book_at(BTC, prev).top(400)


def test_an_empty_update_with_prev_equal_to_seq_keeps_a_quiet_book_alive():
    async def body():
        # one message every ~2 s: the (shortened) 0.2 s keepalive fires in between
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=0.5, book_keepalive_s=0.2)
        try:
            ws = await subscribe(srv, ("books", BTC))
            msgs = await recv_until(ws, lambda m: isinstance(m, dict) and m.get("data")
                                    and m["data"][0].get("asks") == [] and m["data"][0].get(
                                        "bids") == [] and m.get("action") == "update")
            await ws.close()
        finally:
            await srv.close()
        return books_of(msgs)

    books = run(body())
    last = books[-2]["data"][0]
    keepalive = books[-1]["data"][0]
    assert keepalive["prevSeqId"] == keepalive["seqId"] == last["seqId"]
    assert keepalive["checksum"] == last["checksum"]       # nothing changed


def test_after_maintenance_seqid_goes_down_while_prevseqid_still_chains():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=300)
        try:
            ws = await subscribe(srv, ("books", BTC))
            before = await recv_until(ws, lambda m: isinstance(m, dict)
                                      and m.get("action") == "update")
            status, _ = await rawclient.post_fault(HOST, srv.port,
                                                   {"fault": "okx_seq_reset", "to": 1000})
            after = [json.loads(await ws.recv_message()) for _ in range(10)]
            await ws.close()
        finally:
            await srv.close()
        return status, books_of(before + after)

    status, books = run(body())
    assert status == 200
    datas = [m["data"][0] for m in books]
    for a, b in zip(datas, datas[1:]):
        assert b["prevSeqId"] == a["seqId"]                  # the chain never breaks
    downs = [b for a, b in zip(datas, datas[1:]) if b["seqId"] < a["seqId"]]
    assert len(downs) == 1 and 1000 <= downs[0]["seqId"] < 1010      # restarted at "to"


def test_a_bad_checksum_fault_corrupts_exactly_one_update():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=300)
        try:
            ws = await subscribe(srv, ("books", BTC))
            first = await recv_until(ws, lambda m: isinstance(m, dict)
                                     and m.get("action") == "update")
            await rawclient.post_fault(HOST, srv.port, {"fault": "bad_checksum", "symbol": BTC})
            after = [json.loads(await ws.recv_message()) for _ in range(20)]
            journal_faults = srv.faults_applied
            await ws.close()
        finally:
            await srv.close()
        return books_of(first + after), journal_faults

    books, applied = run(body())
    client = StringBook(books[0]["data"][0])
    wrong = 0
    for m in books[1:]:
        client.apply(m["data"][0])
        wrong += client.checksum() != m["data"][0]["checksum"]
    assert wrong == 1
    assert [f for f in applied if f["fault"] == "bad_checksum" and "correct" in f]


def test_checksum_zero_mode_sends_zero_everywhere():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=300, checksum="zero")
        try:
            ws = await subscribe(srv, ("books", BTC))
            msgs = [json.loads(await ws.recv_message()) for _ in range(20)]
            await ws.close()
        finally:
            await srv.close()
        return books_of(msgs)

    books = run(body())
    assert books[0]["action"] == "snapshot"
    assert {m["data"][0]["checksum"] for m in books} == {0}


def test_trades_and_bbo_carry_the_journal_values(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=1000, record=str(journal))
        try:
            ws = await subscribe(srv, ("trades", BTC), ("bbo-tbt", BTC))
            msgs = [json.loads(await ws.recv_message()) for _ in range(60)]
            await ws.close()
        finally:
            await srv.close()
        return msgs

    msgs = run(body())
    truth = simtruth.load_journal(journal)
    pushes = [m for m in msgs if "data" in m]
    trades = [d for m in pushes if m["arg"]["channel"] == "trades" for d in m["data"]]
    bbos = [d for m in pushes if m["arg"]["channel"] == "bbo-tbt" for d in m["data"]]
    assert trades and bbos
    for t in trades:
        price, qty, side = truth.trades[BTC][int(t["tradeId"])]
        assert (parse_price(t["px"]), parse_price(t["sz"])) == (price, qty)
        assert t["side"] == ("buy" if side == SIDE_BUY else "sell")
    for b in bbos:
        assert flat(b["bids"] + b["asks"]) == list(truth.quotes[BTC][b["seqId"]])


def test_closed_after_idle_time_without_pushes_or_without_subscription_but_pongs_count():
    """OKX: "the connection will break if the subscription is not established or data has not
    been pushed for more than 30 seconds" (shortened to 0.4 s; a depth message every 2 s)."""
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=0.5, idle_timeout_s=0.4)
        try:
            idle = await rawclient.ws_connect(HOST, srv.port, PATH)       # nothing at all
            unsubscribed = await rawclient.ws_connect(HOST, srv.port, PATH)
            quiet = await subscribe(srv, ("books", BTC))   # snapshot, then nothing for 2 s
            kept = await subscribe(srv, ("books", BTC))
            readers = [quiet.keep_reading(), kept.keep_reading()]

            async def ping_forever():
                while True:
                    unsubscribed.send_text("ping")
                    kept.send_text("ping")      # pongs are pushes: they keep it open
                    await asyncio.sleep(0.1)
            pinger = asyncio.ensure_future(ping_forever())
            code = None
            while code is None:
                ev = await idle.recv(timeout_s=3)
                if isinstance(ev, Close):
                    code = ev.code, ev.reason
            await asyncio.sleep(0.6)
            status = srv.status()
            pinger.cancel()
            for r in readers:
                r.cancel()
        finally:
            await srv.close()
        return code, status

    code, status = run(body())
    assert code == (4004, "No data received in 30s")
    assert status["disconnects"] == {"idle": 3}
    assert sum(not c["closing"] for c in status["connections"]) == 1      # the pinging subscriber


def test_more_than_three_requests_a_second_disconnect_but_pings_do_not_count():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=50)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, PATH)
            for _ in range(10):
                ws.send_text("ping")
            for _ in range(3):
                ws.send_json({"op": "subscribe", "args": [{"channel": "trades", "instId": BTC}]})
            await asyncio.sleep(0.2)
            alive = [c["closing"] for c in srv.status()["connections"]]
            ws.send_json({"op": "unsubscribe", "args": [{"channel": "trades", "instId": BTC}]})
            code = None
            while code is None:
                ev = await ws.recv(timeout_s=3)
                if isinstance(ev, Close):
                    code = ev.code
        finally:
            await srv.close()
        return alive, code

    alive, code = run(body())
    assert alive == [False] and code == 1008


def test_server_shutdown_fault_sends_the_64008_notice_first():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=50)
        try:
            ws = await subscribe(srv, ("trades", BTC))
            await recv_until(ws, lambda m: isinstance(m, dict) and m.get("event") == "subscribe")
            await rawclient.post_fault(HOST, srv.port, {"fault": "server_shutdown",
                                                        "after_s": 0.1})
            notice = await recv_until(ws, lambda m: isinstance(m, dict)
                                      and m.get("event") == "notice")
            code = None
            while code is None:
                ev = await ws.recv(timeout_s=3)
                if isinstance(ev, Close):
                    code = ev.code
        finally:
            await srv.close()
        return notice[-1], code

    notice, code = run(body())
    assert notice["code"] == "64008" and code == 1001


def test_venue_faults_of_other_venues_are_refused():
    async def body():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=50)
        try:
            bybit_fault = await rawclient.post_fault(HOST, srv.port, {"fault": "bybit_restart"})
            rest_fault = await rawclient.post_fault(HOST, srv.port, {"fault": "rest_status"})
            too_high = await rawclient.post_fault(HOST, srv.port,
                                                  {"fault": "okx_seq_reset", "to": 2 ** 62})
        finally:
            await srv.close()
        return bybit_fault, rest_fault, too_high

    for status, reply in run(body()):
        assert status == 400 and reply["ok"] is False


def test_observed_events_carry_prev_seq_and_checksum_for_the_formatter():
    class Server(object):
        symbols = [BTC]
        tick_now_s = 0.0

        class config(object):
            checksum = "real"

        class source(object):
            @staticmethod
            def initial_books():
                return [(BTC, 99, [100000000, 100000000], [200000000, 100000000])]

        @staticmethod
        def has_subscribers(symbol, kind):
            return True

    d = okx.Dialect(Server())
    ev = d.observe_depth((EV_DEPTH, BTC, 100, 102, [100000000, 0], [150000000, 300000000]))
    msg = json.loads(d.formatter("books")(ev, 5, ""))["data"][0]
    assert (msg["prevSeqId"], msg["seqId"]) == (99, 102)
    assert msg["checksum"] == expected_checksum([], [("1.5", "3"), ("2", "1")])
    assert d.formatter("trades") and d.formatter("bbo")
    assert not hasattr(d, "observe_other")      # trades and quotes need no venue state


def test_a_recorded_okx_journal_replays_with_the_same_chain_and_valid_checksums(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def record():
        srv = await start_sim(venue=VENUE, symbols=[BTC], rate=400, record=str(journal))
        try:
            ws = await subscribe(srv, ("books", BTC))
            msgs = [json.loads(await ws.recv_message()) for _ in range(40)]
            await ws.close()
        finally:
            await srv.close()
        return books_of(msgs)

    async def replay():
        srv = await start_sim(venue=VENUE, replay=str(journal), replay_speed=4.0)
        try:
            ws = await subscribe(srv, ("books", BTC))
            msgs = [json.loads(await ws.recv_message()) for _ in range(30)]
            await ws.close()
        finally:
            await srv.close()
        return books_of(msgs)

    recorded = run(record())
    replayed = run(replay())
    seqs = {m["data"][0]["seqId"]: m["data"][0] for m in recorded[1:]}
    client = StringBook(replayed[0]["data"][0])
    assert replayed[0]["data"][0]["prevSeqId"] == -1
    same = 0
    for m in replayed[1:]:
        data = m["data"][0]
        client.apply(data)
        assert client.checksum() == data["checksum"]
        if data["seqId"] in seqs:       # the same event as recorded, byte for byte in its levels
            same += 1
            assert (data["bids"], data["asks"], data["prevSeqId"]) == (
                seqs[data["seqId"]]["bids"], seqs[data["seqId"]]["asks"],
                seqs[data["seqId"]]["prevSeqId"])
    assert same >= 5
