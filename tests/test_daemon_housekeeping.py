"""app/daemon.py housekeeping: one loop timer on a fixed grid, and a bug in it ends run()."""

import asyncio

import pytest

from hftfeed.app import daemon as daemon_mod
from hftfeed.app.config import load_config_dict
from hftfeed.app.daemon import Daemon

CFG = {"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"],
                  "ws_url": "ws://127.0.0.1:9/stream", "rest_url": "http://127.0.0.1:9"}],
       "publisher": {"target": "127.0.0.1:9"}, "memory_lock": False, "prefault": False}


class _Boom(Exception):
    pass


def _run(daemon, seconds):
    async def main():
        task = asyncio.ensure_future(daemon.run())
        await asyncio.sleep(seconds)
        if not task.done():
            daemon.request_stop(15)
        try:
            return await asyncio.wait_for(task, 10.0)
        except _Boom:
            await daemon.shutdown()   # run() left without stopping its feeds: do it here
            raise
    return asyncio.run(main())


def test_housekeeping_runs_on_its_grid_without_a_task_per_round(monkeypatch):
    daemon = Daemon(load_config_dict(CFG))
    rounds = []
    tasks_seen = []
    real = Daemon.housekeeping

    def counting(self):
        rounds.append(asyncio.get_event_loop().time())
        tasks_seen.append(len(asyncio.all_tasks()))
        real(self)
    monkeypatch.setattr(Daemon, "housekeeping", counting)
    _run(daemon, 2.0)
    interval_s = daemon_mod.HOUSEKEEPING_INTERVAL_S
    # about one round per interval (a loaded machine may skip some, never bunch them)
    assert len(rounds) >= 4
    span_s = rounds[-1] - rounds[0]
    assert span_s / interval_s * 0.5 <= len(rounds) - 1 <= span_s / interval_s + 1
    gaps = [b - a for a, b in zip(rounds, rounds[1:])]
    assert min(gaps) >= interval_s * 0.5
    # the rounds themselves create no tasks: the count stays flat while they run
    assert max(tasks_seen[2:]) <= max(tasks_seen[:3]) + 1


def test_an_exception_in_housekeeping_ends_run_with_it(monkeypatch):
    daemon = Daemon(load_config_dict(CFG))
    calls = []

    def broken(self):
        calls.append(1)
        if len(calls) == 3:
            raise _Boom("housekeeping bug")
    monkeypatch.setattr(Daemon, "housekeeping", broken)
    with pytest.raises(_Boom):
        _run(daemon, 5.0)
    assert len(calls) == 3            # the timer stopped with the failure
