"""Every simulator fault is observable from a raw client and in the journal (hftfeed/tools/sim/faultexec.py)."""

import asyncio
import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import simtruth  # noqa: E402

from hftfeed.errors import ProtocolError  # noqa: E402
from hftfeed.tools.sim import rawclient  # noqa: E402
from hftfeed.tools.sim.server import start_sim  # noqa: E402
from hftfeed.codecs.ws_proto import OP_CONT, OP_TEXT, Close, Message, Ping  # noqa: E402

HOST = "127.0.0.1"
DEPTH = "/ws/btcusdt@depth@100ms"


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


async def fault(srv, **spec):
    status, reply = await rawclient.post_fault(HOST, srv.port, spec)
    assert (status, reply) == (200, {"ok": True}), reply


async def depth_msgs(ws, n):
    out = []
    while len(out) < n:
        m = json.loads(await ws.recv_message())
        if m.get("e") == "depthUpdate":
            out.append(m)
    return out


async def depth_msgs_past_fault(srv, ws, name, extra=3):
    """Read depth messages until ``extra`` arrive after the event the fault hit (however many
    were already queued when the fault was armed)."""
    applied = []
    while not applied:
        applied = [f for f in srv.status()["faults_applied"] if f["fault"] == name and "u" in f]
        await asyncio.sleep(0.005)
    hit_u = applied[0]["u"]
    out = []
    after = 0
    while after < extra:
        m = (await depth_msgs(ws, 1))[0]
        out.append(m)
        if m["U"] > hit_u + 1:
            after += 1
    return out


async def wait_close(ws, timeout_s=5.0):
    while True:
        ev = await ws.recv(timeout_s)
        if isinstance(ev, Close):
            return ev


# ---------------------------------------------------------------------- stream faults
def test_drop_diff_leaves_exactly_one_update_id_gap_and_is_journaled(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(symbols=["BTCUSDT", "ETHUSDT"], rate=2000, record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            before = await depth_msgs(ws, 3)
            await fault(srv, fault="drop_diff", symbol="BTCUSDT")
            after = await depth_msgs_past_fault(srv, ws, "drop_diff")
            await ws.close()
            return before + after
        finally:
            await srv.close()

    msgs = run(body())
    gaps = [(a["u"], b["U"]) for a, b in zip(msgs, msgs[1:]) if b["U"] != a["u"] + 1]
    assert len(gaps) == 1
    truth = simtruth.load_journal(journal)
    dropped = [f for f in truth.faults_named("drop_diff") if "U" in f]
    assert len(dropped) == 1
    assert (dropped[0]["U"], dropped[0]["u"]) == (gaps[0][0] + 1, gaps[0][1] - 1)
    assert dropped[0]["u"] not in truth.delivered_update_ids("BTCUSDT")
    assert dropped[0]["u"] in truth.update_ids("BTCUSDT")   # the book still moved


def test_duplicate_diff_sends_the_same_event_twice():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=2000)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            await depth_msgs(ws, 2)
            await fault(srv, fault="duplicate_diff", count=1)
            msgs = await depth_msgs_past_fault(srv, ws, "duplicate_diff")
            await ws.close()
            return msgs
        finally:
            await srv.close()

    msgs = run(body())
    dups = [a for a, b in zip(msgs, msgs[1:]) if a == b]
    assert len(dups) == 1


def test_reorder_diffs_swaps_the_next_two_events():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=2000)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            first = await depth_msgs(ws, 2)
            await fault(srv, fault="reorder_diffs", symbol="BTCUSDT")
            msgs = first + await depth_msgs_past_fault(srv, ws, "reorder_diffs")
            await ws.close()
            return msgs
        finally:
            await srv.close()

    msgs = run(body())
    us = [m["U"] for m in msgs]
    backwards = [i for i in range(1, len(us)) if us[i] < us[i - 1]]
    assert len(backwards) == 1
    assert sorted(msgs, key=lambda m: m["U"]) != msgs
    chain = sorted(msgs, key=lambda m: m["U"])
    assert all(b["U"] == a["u"] + 1 for a, b in zip(chain, chain[1:]))   # nothing lost


def test_stale_snapshot_is_older_than_the_first_diff_a_new_client_sees():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=2000)
        try:
            await fault(srv, fault="stale_snapshot", symbol="BTCUSDT")
            await asyncio.sleep(0.05)
            ws = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            first = (await depth_msgs(ws, 1))[0]
            url = "/api/v3/depth?symbol=BTCUSDT&limit=50"
            _s, stale = await rawclient.get_json(HOST, srv.port, url)
            _s, fresh = await rawclient.get_json(HOST, srv.port, url)
            await ws.close()
            return first, stale, fresh
        finally:
            await srv.close()

    first, stale, fresh = run(body())
    assert stale["lastUpdateId"] < first["U"] - 1
    assert fresh["lastUpdateId"] >= first["U"] - 1
    assert len(stale["bids"]) == 50


# ---------------------------------------------------------------------- REST faults
@pytest.mark.parametrize("code", [429, 418, 500, 503])
def test_rest_status_answers_the_next_snapshot_request_with_that_status(code):
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100)
        try:
            await fault(srv, fault="rest_status", code=code, retry_after_s=3)
            url = "/api/v3/depth?symbol=BTCUSDT&limit=5"
            faulted = await rawclient.http_request(HOST, srv.port, "GET", url)
            normal = await rawclient.http_request(HOST, srv.port, "GET", url)
            return faulted, normal
        finally:
            await srv.close()

    (status, hdrs, body_bytes), normal = run(body())
    assert status == code
    assert isinstance(json.loads(body_bytes)["code"], int)
    if code in (418, 429, 503):
        assert hdrs["retry-after"] == "3"
    assert normal[0] == 200


def test_rest_slow_delays_the_body():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100)
        try:
            await fault(srv, fault="rest_slow", delay_s=0.4)
            t0 = time.monotonic()
            status, snap = await rawclient.get_json(HOST, srv.port,
                                                    "/api/v3/depth?symbol=BTCUSDT&limit=5")
            return status, snap, time.monotonic() - t0
        finally:
            await srv.close()

    status, snap, elapsed_s = run(body())
    assert status == 200 and "lastUpdateId" in snap
    assert elapsed_s >= 0.35


def test_rest_truncated_sends_half_the_body_then_closes():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100)
        try:
            await fault(srv, fault="rest_truncated")
            return await rawclient.http_request(HOST, srv.port, "GET",
                                                "/api/v3/depth?symbol=BTCUSDT&limit=20")
        finally:
            await srv.close()

    status, hdrs, body_bytes = run(body())
    assert status == 200
    assert 0 < len(body_bytes) < int(hdrs["content-length"])
    with pytest.raises(ValueError):
        json.loads(body_bytes)


# ---------------------------------------------------------------------- connection faults
def test_close_abrupt_ends_tcp_without_a_close_frame():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=500)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            await ws.recv_message()
            await fault(srv, fault="close_abrupt")
            return await wait_close(ws)
        finally:
            await srv.close()

    assert run(body()).code == 1006


def test_close_frame_sends_the_requested_code_to_the_chosen_connection_only():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=500)
        try:
            a = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            b = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            await a.recv_message()
            ids = [c["id"] for c in srv.status()["connections"]]
            await fault(srv, fault="close_frame", code=1011, reason="test", conn=ids[0])
            closed = await wait_close(a)
            still = await b.recv_message()
            await b.close()
            return closed, still
        finally:
            await srv.close()

    closed, still = run(body())
    assert (closed.code, closed.reason) == (1011, "test")
    assert json.loads(still)["e"] == "depthUpdate"


def test_half_open_goes_silent_but_keeps_tcp_open():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=1000, ping_interval_s=0.05)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            await ws.recv_message()
            await fault(srv, fault="half_open")
            while ws._pending:          # frames already queued before the fault
                ws._pending.pop(0)
            with pytest.raises(asyncio.TimeoutError):
                while True:
                    ev = await ws.recv(timeout_s=0.4)
                    assert not isinstance(ev, Close)
            assert srv.status()["connections"][0]["half_open"] is True
            ws.writer.close()
        finally:
            await srv.close()

    run(body())


def test_stop_pings_and_ignore_pongs():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=100, ping_interval_s=0.05,
                              pong_timeout_s=0.3, max_incoming_per_s=100)
        try:
            quiet = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@trade",
                                               auto_pong=False)
            await fault(srv, fault="stop_pings", conn=srv.status()["connections"][0]["id"])
            while quiet._pending:
                quiet._pending.pop(0)
            t_end = time.monotonic() + 0.4
            pings = 0
            while time.monotonic() < t_end:
                try:
                    ev = await quiet.recv(timeout_s=0.1)
                except asyncio.TimeoutError:
                    continue
                pings += isinstance(ev, Ping)
            assert pings <= 1          # at most one already in flight when the fault landed
            polite = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@trade")
            await fault(srv, fault="ignore_pongs", conn=srv.status()["connections"][-1]["id"])
            closed = await wait_close(polite, 3)
            await quiet.close()
            return closed, srv.status()["disconnects"]
        finally:
            await srv.close()

    closed, disconnects = run(body())
    assert closed.code == 1006 and disconnects.get("pong_timeout") == 1


def test_malformed_json_unknown_event_and_absurd_numbers_reach_the_client():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=500)
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/stream?streams=btcusdt@depth@100ms")
            await ws.recv_message()
            await fault(srv, fault="malformed_json")
            await fault(srv, fault="unknown_event")
            await fault(srv, fault="absurd_numbers")
            texts = []
            while len(texts) < 500:  # read past everything queued before the faults landed
                texts.append(await ws.recv_message())
                if '"NaN"' in texts[-1]:
                    texts.extend([await ws.recv_message() for _ in range(5)])
                    break
            await ws.close()
            return texts
        finally:
            await srv.close()

    texts = run(body())
    broken = []
    parsed = []
    for t in texts:
        try:
            parsed.append(json.loads(t))
        except ValueError:
            broken.append(t)
    assert len(broken) == 1
    datas = [m["data"] for m in parsed]
    assert any(d.get("e") == "simUnknownEvent" for d in datas)
    depth = [d for d in datas if d.get("e") == "depthUpdate"]
    assert any("sim" in d for d in depth)       # extra unknown fields in one real depth event
    absurd = [d for d in depth if any(q == "NaN" for _p, q in d["a"])]
    assert len(absurd) == 1
    assert any(len(q) == 40 for _p, q in absurd[0]["b"]) and any(p.startswith("-")
                                                                for p, _q in absurd[0]["b"])
    real_after = [d for d in depth if d["U"] >= absurd[0]["U"] and d is not absurd[0]]
    assert real_after and real_after[0]["U"] == absurd[0]["U"]   # the id was not consumed


def test_invalid_utf8_text_frame():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=200)
        try:
            raw = await rawclient.ws_connect(HOST, srv.port, DEPTH, raw_frames=True)
            proto = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            await fault(srv, fault="invalid_utf8")
            bad = None
            while bad is None:
                frame = await raw.recv()
                try:
                    frame.payload.decode("utf-8")
                except UnicodeDecodeError:
                    bad = frame
            with pytest.raises(ProtocolError) as info:   # a conforming client fails with 1007
                while True:
                    await proto.recv()
            raw.writer.close()
            proto.writer.close()
            return bad, info.value.close_code
        finally:
            await srv.close()

    bad, code = run(body())
    assert bad.opcode == OP_TEXT and code == 1007


def test_oversized_frame_announces_and_sends_that_many_bytes():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=200)
        try:
            raw = await rawclient.ws_connect(HOST, srv.port, DEPTH, raw_frames=True)
            await fault(srv, fault="oversized_frame", bytes=3 * 1024 * 1024)
            while True:
                frame = await raw.recv(timeout_s=5)
                if len(frame.payload) > 65536:
                    raw.writer.close()
                    return frame
        finally:
            await srv.close()

    frame = run(body())
    assert len(frame.payload) == 3 * 1024 * 1024 and frame.opcode == OP_TEXT


def test_fragment_splits_the_next_message_into_legal_fragments():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=500)
        try:
            raw = await rawclient.ws_connect(HOST, srv.port, DEPTH, raw_frames=True)
            await raw.recv()
            await fault(srv, fault="fragment", parts=3)
            frames = []
            while True:
                f = await raw.recv()
                if f.opcode in (OP_TEXT, OP_CONT):
                    frames.append(f)
                if len(frames) >= 2 and frames[-1].fin and not frames[0].fin:
                    break
                if len(frames) == 1 and frames[0].fin:
                    frames = []          # a whole frame sent before the fault landed
            raw.writer.close()
            return frames
        finally:
            await srv.close()

    frames = run(body())
    assert [f.opcode for f in frames] == [OP_TEXT, OP_CONT, OP_CONT]
    assert [f.fin for f in frames] == [False, False, True]
    assert json.loads(b"".join(f.payload for f in frames))["e"] == "depthUpdate"


def test_server_shutdown_then_close_1001_and_lifetime_fault():
    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=200)
        try:
            a = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            await fault(srv, fault="server_shutdown", after_s=0.2)
            notices = []
            while True:
                ev = await a.recv(timeout_s=3)
                if isinstance(ev, Message) and "serverShutdown" in ev.text:
                    notices.append(json.loads(ev.text))
                if isinstance(ev, Close):
                    break
            b = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            await fault(srv, fault="lifetime", seconds=0.3)
            t0 = time.monotonic()
            closed = await wait_close(b, 3)
            return notices, ev.code, closed.code, time.monotonic() - t0, srv.status()["disconnects"]
        finally:
            await srv.close()

    notices, code_a, code_b, elapsed_s, disconnects = run(body())
    assert notices and notices[0]["e"] == "serverShutdown" and code_a == 1001
    assert code_b == 1001 and elapsed_s >= 0.2
    assert disconnects == {"server_shutdown": 1, "lifetime": 1}


def test_every_applied_fault_is_journaled(tmp_path):
    journal = tmp_path / "j.jsonl"

    async def body():
        srv = await start_sim(symbols=["BTCUSDT"], rate=500, record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, DEPTH)
            await ws.recv_message()
            for name in ("drop_diff", "duplicate_diff", "reorder_diffs", "stale_snapshot",
                         "rest_status", "malformed_json", "unknown_event", "absurd_numbers",
                         "fragment", "stop_pings", "ignore_pongs", "invalid_utf8"):
                await fault(srv, fault=name)
            await rawclient.http_request(HOST, srv.port, "GET", "/api/v3/depth?symbol=BTCUSDT")
            await rawclient.http_request(HOST, srv.port, "GET", "/api/v3/depth?symbol=BTCUSDT")
            await asyncio.sleep(0.1)
            st = srv.status()
        finally:
            await srv.close()
        return st

    st = run(body())
    truth = simtruth.load_journal(journal)
    for name in ("drop_diff", "duplicate_diff", "reorder_diffs", "stale_snapshot", "rest_status",
                 "malformed_json", "unknown_event", "absurd_numbers", "fragment", "stop_pings",
                 "ignore_pongs", "invalid_utf8"):
        assert [f for f in truth.faults_named(name) if f.get("phase") == "armed"], name
    assert [f for f in truth.faults_named("drop_diff") if "U" in f]   # and when it took effect
    assert any(s["stale"] for s in truth.snapshots)
    assert {f["fault"] for f in st["faults_applied"]} >= {"drop_diff", "rest_status"}
