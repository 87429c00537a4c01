"""Specification of hftfeed.runtime.gctune: GC thresholds, automatic collection off, freeze after
start-up, scheduled collections and the pause counter, on whichever interpreter runs the test."""

import asyncio
import gc

import pytest

from hftfeed.app.config import GcConfig
from hftfeed.runtime import gctune
from hftfeed.errors import ConfigError


def gc_section(**keys):
    """The validated ``gc`` section, as the daemon hands it over."""
    return GcConfig.parse(keys, "gc")
from hftfeed.runtime.hwresult import OK, SKIPPED, WARN


def test_tune_gc_sets_thresholds_where_the_interpreter_has_them(restore_gc):
    result = gctune.tune_gc(gc_section(freeze_after_start=False, thresholds=[5000, 20, 30]))
    if hasattr(gc, "set_threshold"):
        assert result.status == OK
        assert gc.get_threshold() == (5000, 20, 30)
    else:
        assert result.status == WARN
        assert "PYPY_GC_NURSERY" in result.fix


def test_disabling_automatic_gc_needs_a_schedule_and_turns_the_collector_off(restore_gc):
    with pytest.raises(ConfigError, match="never reclaimed"):
        gc_section(disable_automatic=True)
    result = gctune.tune_gc(gc_section(freeze_after_start=False, disable_automatic=True,
                                       collect_interval_s=1.0))
    assert result.status == OK
    assert "collection off" in result.message and "every 1 s" in result.message
    assert not gc.isenabled()


def test_bad_gc_thresholds_are_a_config_error():
    for bad in ([], [1, 2, 3, 4], [-1], ["7"], 700):
        with pytest.raises(ConfigError, match="gc.thresholds"):
            gc_section(thresholds=bad)


def test_gc_after_startup_freezes_on_cpython_and_skips_on_pypy(restore_gc):
    keep = [[i] for i in range(100)]
    result = gctune.gc_after_startup(True)
    if hasattr(gc, "freeze"):
        assert result.status == OK
        assert gc.get_freeze_count() >= len(keep)
    else:
        assert result.status == SKIPPED
    assert gctune.gc_after_startup(False).status == SKIPPED


def test_gc_scheduler_times_each_collection_with_the_given_clock():
    ticks = iter([100, 350, 1000, 1100])
    scheduler = gctune.GcScheduler(1.0, clock_ns=lambda: next(ticks))
    assert scheduler.run_once() == 250
    assert scheduler.run_once() == 100
    assert scheduler.snapshot() == {"collections": 2, "total_ns": 350, "max_ns": 250, "last_ns": 100}


def test_gc_scheduler_collects_repeatedly_from_the_event_loop():
    scheduler = gctune.GcScheduler(0.01)
    loop = asyncio.new_event_loop()
    try:
        assert scheduler.start(loop)
        loop.run_until_complete(asyncio.sleep(0.2))
        scheduler.stop()
    finally:
        loop.close()
    assert scheduler.collections >= 3
    assert scheduler.max_ns > 0
    assert not gctune.GcScheduler(0).start(None)


def test_gc_pause_monitor_counts_collections_the_interpreter_runs():
    monitor = gctune.GcPauseMonitor()
    if not monitor.install():
        pytest.skip("no GC hooks on this interpreter")
    try:
        for _ in range(20):
            junk = [[i] for i in range(50000)]
            cycle = []
            cycle.append(cycle)
        del junk, cycle
        gc.collect()
    finally:
        monitor.uninstall()
    assert monitor.snapshot()["count"] > 0
    assert monitor.snapshot()["total_ns"] > 0


def test_pause_monitor_gives_each_interval_its_own_count_total_and_longest_pause():
    monitor = gctune.GcPauseMonitor()
    monitor._record(5000)
    monitor._record(2000)
    assert monitor.take_interval() == (2, 7000, 5000)
    assert monitor.take_interval() == (0, 0, 0)
    monitor._record(1000)
    assert monitor.take_interval() == (1, 1000, 1000)
    assert monitor.snapshot() == {"count": 3, "total_ns": 8000, "max_ns": 5000}
