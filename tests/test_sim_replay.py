"""Re-serving a recorded journal (--replay) and a real Binance capture (--replay-capture)."""

import asyncio
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import simtruth  # noqa: E402

from hftfeed.tools.sim import rawclient  # noqa: E402
from hftfeed.tools.sim.server import start_sim  # noqa: E402
from hftfeed.tools.sim.sources import CaptureSource, JournalSource  # noqa: E402

HOST = "127.0.0.1"
CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "captures"


def run(coro, timeout_s=20.0):
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def scaled(text):
    whole, _dot, frac = text.partition(".")
    return int(whole + frac)


def levels(pairs):
    return [[scaled(p), scaled(q)] for p, q in pairs]


def record_session(journal):
    """A short recorded run with one drop_diff, so replay must honour 'delivered'."""
    async def body():
        srv = await start_sim(symbols=["BTCUSDT", "ETHUSDT"], rate=1500, record=str(journal))
        try:
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@depth")
            await ws.recv_message()
            await rawclient.post_fault(HOST, srv.port, {"fault": "drop_diff", "symbol": "BTCUSDT"})
            for _ in range(60):
                await ws.recv_message()
            await ws.close()
        finally:
            await srv.close()
    run(body())


def test_journal_replay_serves_the_delivered_events_in_order_and_consistent_snapshots(tmp_path):
    journal = tmp_path / "rec.jsonl"
    record_session(journal)
    truth = simtruth.load_journal(journal)
    expected = [ev for ev in truth.depth_events["BTCUSDT"] if ev[5]]
    assert len(expected) < len(truth.depth_events["BTCUSDT"])   # one was dropped

    async def body():
        srv = await start_sim(replay=str(journal), replay_speed=20.0)
        try:
            _s, before = await rawclient.get_json(HOST, srv.port,
                                                  "/api/v3/depth?symbol=BTCUSDT&limit=5000")
            ws = await rawclient.ws_connect(HOST, srv.port, "/ws/btcusdt@depth@100ms")
            got = [json.loads(await ws.recv_message()) for _ in range(len(expected))]
            while not srv.status()["replay_finished"]:
                await asyncio.sleep(0.02)
            _s, after = await rawclient.get_json(HOST, srv.port,
                                                 "/api/v3/depth?symbol=BTCUSDT&limit=5000")
            await ws.close()
            return before, got, after, srv.symbols
        finally:
            await srv.close()

    before, got, after, symbols = run(body())
    assert symbols == ["BTCUSDT", "ETHUSDT"]
    uid0, bids0, asks0 = truth.initial_books["BTCUSDT"]
    assert before["lastUpdateId"] == uid0
    assert [x for pq in levels(before["bids"]) for x in pq] == bids0
    assert [(m["U"], m["u"]) for m in got] == [(ev[0], ev[1]) for ev in expected]
    assert [x for pq in levels(got[-1]["b"]) for x in pq] == expected[-1][2]
    last_u = truth.update_ids("BTCUSDT")[-1]
    assert after["lastUpdateId"] == last_u
    final = truth.book_at("BTCUSDT", last_u).top(5000)
    assert [tuple(x) for x in levels(after["bids"])] == final[0]
    assert [tuple(x) for x in levels(after["asks"])] == final[1]


def test_journal_source_waits_for_its_timing(tmp_path):
    journal = tmp_path / "rec.jsonl"
    record_session(journal)
    src = JournalSource(str(journal), speed=1.0)
    out = []
    src.pull(0.0, out)
    first = len(out)
    src.pull(3600.0, out)
    assert first < len(out) and src.finished


def test_journal_without_books_is_refused(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind":"start","seed":1,"venue":"binance","symbols":["BTCUSDT"],'
                   '"scale":100000000}\n')
    with pytest.raises(ValueError):
        JournalSource(str(bad))


def _capture_files():
    ws = CAPTURES / "BINANCE.ws.1.0"
    http = CAPTURES / "BINANCE.http.0.0"
    if not (ws.is_file() and http.is_file()):
        pytest.skip("shared/data/captures not present")
    return ws, http


def test_capture_replay_serves_the_recorded_bytes_and_snapshots():
    ws_file, http_file = _capture_files()
    lines = [ln.split(": ", 1)[1] for ln in ws_file.read_text().splitlines()[1:] if ": " in ln]
    nkn_lines = [ln for ln in lines if ln.startswith('{"stream":"nknusdt@depth@100ms"')]
    snapshot_line = [ln for ln in http_file.read_text().splitlines() if "NKNUSDT" in ln][0]

    async def body():
        srv = await start_sim(replay_capture=str(ws_file), replay_snapshots=str(http_file),
                              replay_speed=200.0)
        try:
            comb = await rawclient.ws_connect(HOST, srv.port, "/stream?streams=nknusdt@depth@100ms")
            raw = await rawclient.ws_connect(HOST, srv.port, "/ws/nknusdt@depth@100ms")
            got = [await comb.recv_message() for _ in range(len(nkn_lines))]
            got_raw = [await raw.recv_message() for _ in range(3)]
            _st, _h, snap = await rawclient.http_request(HOST, srv.port, "GET",
                                                         "/api/v3/depth?symbol=NKNUSDT&limit=1000")
            await comb.close()
            await raw.close()
            return got, got_raw, snap, srv.symbols
        finally:
            await srv.close()

    got, got_raw, snap, symbols = run(body())
    assert got == nkn_lines
    prefix = len('{"stream":"nknusdt@depth@100ms","data":')
    raw_texts = [ln[prefix:-1] for ln in nkn_lines]   # the exact inner bytes, unwrapped
    start = raw_texts.index(got_raw[0])                # it joined a moment after the first client
    assert got_raw == raw_texts[start:start + 3]
    assert snap.decode() == snapshot_line.split(": ", 1)[1]
    assert set(symbols) >= {"NKNUSDT", "BLZETH", "LRCBTC", "RUNEEUR"}


def test_capture_snapshot_and_first_diffs_follow_binance_sync_rule():
    ws_file, http_file = _capture_files()
    src = CaptureSource(str(ws_file), str(http_file))
    snap = json.loads(src.snapshot("NKNUSDT", 1000))
    out = []
    src.pull(1e9, out)
    nkn = [json.loads(ev[3]) for ev in out if ev[1] == "nknusdt@depth@100ms"]
    first = [m for m in nkn if m["u"] > snap["lastUpdateId"]][0]
    assert first["U"] <= snap["lastUpdateId"] + 1 <= first["u"]
