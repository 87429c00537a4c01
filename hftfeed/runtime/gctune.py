"""Garbage-collector controls: start-up thresholds, automatic collection off, ``gc.freeze()``
after start-up, collections on our own schedule, and a counter of every pause the collector takes.

Why they matter: a collection that starts in the middle of a frame is the largest source of
jitter a Python feed handler has (docs/benchmarks.md measures each setting). Each function
returns an :class:`~hftfeed.runtime.hwresult.HwResult`; only an invalid setting raises ``ConfigError``.
"""

import gc
import sys
import time

from hftfeed.errors import ConfigError
from hftfeed.runtime.hwresult import OK, SKIPPED, WARN, report as _report

IS_PYPY = hasattr(sys, "pypy_version_info")


def tune_gc(gc_cfg):
    """Apply the start-up GC settings: thresholds (CPython), automatic collection off.

    CPython: ``gc.disable()`` stops the cyclic collector (reference counting still frees most
    objects). PyPy: it stops *major* collections only; minor (nursery) collections still run and
    are short. Either way garbage then piles up unless a :class:`GcScheduler` collects it, which
    is why the config refuses disable_automatic without collect_interval_s. ``freeze_after_start``
    is applied later by :func:`gc_after_startup`. ``gc_cfg`` is the validated ``gc`` section
    (app/config.py: validated there, once)."""
    name = "gc"
    thresholds = gc_cfg.thresholds
    disable_automatic = gc_cfg.disable_automatic
    collect_interval_s = gc_cfg.collect_interval_s
    done = []
    warnings = []
    if thresholds is not None:
        if hasattr(gc, "set_threshold"):
            gc.set_threshold(*thresholds)
            done.append("thresholds %s" % (gc.get_threshold(),))
        else:
            warnings.append("gc.thresholds ignored: %s has no gc.set_threshold"
                            % sys.implementation.name)
    if disable_automatic:
        gc.disable()
        done.append("automatic %s collection off" % ("major" if IS_PYPY else "cyclic"))
    if gc_cfg.freeze_after_start:
        done.append("gc.freeze() after start-up" if hasattr(gc, "freeze")
                    else "no gc.freeze() on %s" % sys.implementation.name)
    if collect_interval_s:
        done.append("scheduled collection every %g s" % collect_interval_s)
    message = "; ".join(done) if done else "interpreter defaults"
    if warnings:
        fix = "PyPy: tune with PYPY_GC_NURSERY / PYPY_GC_MAJOR_COLLECT in the unit's Environment="
        return _report(name, WARN, message + "; " + "; ".join(warnings), fix)
    return _report(name, OK, message)


def gc_after_startup(freeze=True):
    """Collect once, then move every surviving object to the permanent generation (gc.freeze, 3.7+)
    so later collections do not rescan the configuration, modules and books. Call it when the feeds
    are connected and before READY. PyPy has no gc.freeze: skipped with an info line."""
    name = "gc_freeze"
    if not freeze:
        return _report(name, SKIPPED, "gc.freeze_after_start is off")
    if not hasattr(gc, "freeze"):
        return _report(name, SKIPPED, "%s has no gc.freeze(): nothing frozen" % sys.implementation.name)
    start_ns = time.perf_counter_ns()
    gc.collect()
    gc.freeze()
    elapsed_us = (time.perf_counter_ns() - start_ns) // 1000
    return _report(name, OK, "collected and froze %d objects in %d us"
                   % (gc.get_freeze_count(), elapsed_us))


class GcScheduler(object):
    """Collect on our schedule, from the event loop, instead of whenever an allocation count trips.

    Why: the collection then runs between two frames rather than in the middle of one, and its cost
    is measured. CPython: ``gc.collect(generation)``. PyPy: ``gc.collect(n)`` is always a full major
    collection (~15 ms on a small heap), so one incremental step, ``gc.collect_step()`` (~1 ms), is
    done instead. ``collections``, ``total_ns``, ``max_ns`` and ``last_ns`` feed the stats line."""

    def __init__(self, interval_s, generation=0, clock_ns=time.perf_counter_ns):
        if interval_s < 0:
            raise ConfigError("gc.collect_interval_s: expected >= 0, got %r" % (interval_s,))
        self.interval_s = float(interval_s)
        self.generation = generation
        self._clock_ns = clock_ns
        self._collect = self._pypy_step if IS_PYPY and hasattr(gc, "collect_step") else self._cpython
        self._loop = None
        self._handle = None
        self.collections = 0
        self.total_ns = 0
        self.max_ns = 0
        self.last_ns = 0

    def _cpython(self):
        gc.collect(self.generation)

    @staticmethod
    def _pypy_step():
        gc.collect_step()

    def run_once(self):
        """Collect now; return the time it took in ns."""
        start_ns = self._clock_ns()
        self._collect()
        elapsed_ns = self._clock_ns() - start_ns
        self.collections += 1
        self.total_ns += elapsed_ns
        self.last_ns = elapsed_ns
        if elapsed_ns > self.max_ns:
            self.max_ns = elapsed_ns
        return elapsed_ns

    def start(self, loop):
        """Schedule on ``loop`` (asyncio); a no-op returning False when the interval is 0."""
        if not self.interval_s:
            return False
        self._loop = loop
        self._handle = loop.call_later(self.interval_s, self._tick)
        return True

    def _tick(self):
        self.run_once()
        if self._loop is not None:
            self._handle = self._loop.call_later(self.interval_s, self._tick)

    def stop(self):
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._loop = None

    def snapshot(self):
        """Counters for the stats line."""
        return {"collections": self.collections, "total_ns": self.total_ns,
                "max_ns": self.max_ns, "last_ns": self.last_ns}


class GcPauseMonitor(object):
    """Count and time every collection the interpreter runs by itself (not just scheduled ones).

    CPython reports through ``gc.callbacks`` (start/stop around each collection); PyPy through
    ``gc.hooks`` (minor collections and incremental major steps, with their durations). The
    counters let the stats line and bench.py show what GC tuning changes."""

    def __init__(self, clock_ns=time.perf_counter_ns):
        self._clock_ns = clock_ns
        self._start_ns = 0
        self.count = 0
        self.total_ns = 0
        self.max_ns = 0
        self.interval_max_ns = 0       # longest pause since the last take_interval()
        self._taken = (0, 0)           # (count, total_ns) at the last take_interval()
        self.installed = False

    def _record(self, elapsed_ns, count=1):
        self.count += count
        self.total_ns += elapsed_ns
        if elapsed_ns > self.max_ns:
            self.max_ns = elapsed_ns
        if elapsed_ns > self.interval_max_ns:
            self.interval_max_ns = elapsed_ns

    def _cpython_callback(self, phase, info):
        if phase == "start":
            self._start_ns = self._clock_ns()
        elif self._start_ns:
            self._record(self._clock_ns() - self._start_ns)
            self._start_ns = 0

    def _pypy_hook(self, stats):
        # PyPy batches events: stats.count collections took stats.duration seconds in total.
        self.count += stats.count
        self.total_ns += int(stats.duration * 1e9)
        longest_ns = int(stats.duration_max * 1e9)
        if longest_ns > self.max_ns:
            self.max_ns = longest_ns
        if longest_ns > self.interval_max_ns:
            self.interval_max_ns = longest_ns

    def install(self):
        """Start counting; returns False if this interpreter offers no hook."""
        if hasattr(gc, "callbacks"):
            gc.callbacks.append(self._cpython_callback)
        elif hasattr(gc, "hooks"):
            gc.hooks.on_gc_minor = self._pypy_hook
            gc.hooks.on_gc_collect_step = self._pypy_hook
        else:
            return False
        self.installed = True
        return True

    def uninstall(self):
        if not self.installed:
            return
        if hasattr(gc, "callbacks"):
            if self._cpython_callback in gc.callbacks:
                gc.callbacks.remove(self._cpython_callback)
        elif hasattr(gc, "hooks"):
            gc.hooks.on_gc_minor = None
            gc.hooks.on_gc_collect_step = None
        self.installed = False

    def snapshot(self):
        return {"count": self.count, "total_ns": self.total_ns, "max_ns": self.max_ns}

    def take_interval(self):
        """(pauses, total_ns, max_ns) since the previous call: the stats line's gc figures."""
        count, total_ns = self._taken
        out = (self.count - count, self.total_ns - total_ns, self.interval_max_ns)
        self._taken = (self.count, self.total_ns)
        self.interval_max_ns = 0
        return out
