"""Specification of the simulator's burst traffic shape (tools/sim/sources.py BurstSource):
Binance ``@depth@100ms`` timing -- every symbol's diff at the same boundary, trades and quotes
in between -- pure, then through the simulator on loopback."""

import asyncio
import json
import subprocess
import sys

from hftfeed.tools.sim import rawclient
from hftfeed.tools.sim.market import EV_DEPTH
from hftfeed.tools.sim.server import start_sim
from hftfeed.tools.sim.sources import BurstSource

from e2e import ENTRY

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT"]


def test_depth_comes_only_at_boundaries_one_per_symbol_and_steps_in_between():
    src = BurstSource(SYMBOLS, seed=3, boundaries_per_s=10, depth_levels=50,
                      steps_per_boundary=4)
    out = []
    assert src.pull(0.0999, out) == 0
    assert out and all(ev[0] != EV_DEPTH for ev in out)      # trades and quotes already flow
    between = len(out)
    out = []
    assert src.pull(0.1, out) == 3
    assert [ev[1] for ev in out if ev[0] == EV_DEPTH] == SYMBOLS
    assert len(out) == 3 and between > 0                      # every step came before it


def test_depth_ids_chain_across_boundaries_and_net_every_step():
    src = BurstSource(SYMBOLS, seed=5, boundaries_per_s=10, depth_levels=50)
    last = {e.symbol: e.last_update_id for e in src.engines}
    out = []
    for k in range(1, 31):
        src.pull(k * 0.1, out)
    depth = [ev for ev in out if ev[0] == EV_DEPTH]
    assert len(depth) == 30 * 3 and src.boundaries == 30
    for ev in depth:
        assert ev[2] == last[ev[1]] + 1, ev[:4]                # U = previous u + 1
        last[ev[1]] = ev[3]
    assert src.produced == 90


def test_same_seed_same_events_whatever_the_pull_timing():
    a = BurstSource(SYMBOLS, seed=9, boundaries_per_s=20, depth_levels=50)
    b = BurstSource(SYMBOLS, seed=9, boundaries_per_s=20, depth_levels=50)
    out_a, out_b = [], []
    a.pull(1.0, out_a)
    t = 0.0
    while t < 1.0:
        t = min(1.0, t + 0.0013)
        b.pull(t, out_b)
    assert out_a == out_b


def test_a_loop_more_than_a_second_behind_skips_boundaries_and_counts_them():
    src = BurstSource(SYMBOLS, seed=1, boundaries_per_s=10, depth_levels=50)
    out = []
    src.pull(5.05, out)          # 50 boundaries due at once: the first 49 are skipped
    assert src.behind_msgs == 49 * 3
    assert len([ev for ev in out if ev[0] == EV_DEPTH]) == 3


def test_through_the_simulator_a_boundary_is_one_run_of_every_symbol():
    async def body():
        srv = await start_sim(symbols=SYMBOLS, shape="burst", boundaries_per_s=20,
                              depth_levels=50)
        try:
            streams = []
            for s in SYMBOLS:
                streams += [s.lower() + "@depth@100ms", s.lower() + "@trade",
                            s.lower() + "@bookTicker"]
            ws = await rawclient.ws_connect("127.0.0.1", srv.port,
                                            "/stream?streams=" + "/".join(streams))
            msgs = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 1.5
            while loop.time() < deadline:
                msgs.append(json.loads(await ws.recv_message(5.0))["data"])
            await ws.close()
            return msgs
        finally:
            await srv.close()

    msgs = asyncio.run(asyncio.wait_for(body(), 30))
    runs = []          # consecutive depth messages
    others_between = 0
    current = []
    for m in msgs:
        if m.get("e") == "depthUpdate":
            current.append(m)
            continue
        if current:
            runs.append(current)
            current = []
        others_between += 1
    full = runs[1:]    # the first run may have begun before the connection
    assert len(full) >= 10
    for run in full:
        assert sorted(m["s"] for m in run) == sorted(SYMBOLS), [m["s"] for m in run]
        assert len({m["E"] for m in run}) <= 2                 # one boundary (ms may tick)
    assert others_between >= len(full)                          # trades/quotes in between


def test_cli_refuses_a_rate_with_the_burst_shape():
    proc = subprocess.run([sys.executable, ENTRY, "sim", "--shape", "burst", "--rate", "100"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 2
    assert "--rate does not apply to --shape burst" in proc.stderr
    assert "Traceback" not in proc.stderr
