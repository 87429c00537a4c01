"""What PyPy's JIT compiles while the daemon runs: the "is it warm yet?" signal.

Why: under PyPy a message's cost depends on whether its path through the adapter, sync engine
and book has been compiled. Until it has, messages run in the interpreter, and each new loop or
bridge the JIT traces and compiles stalls the event loop for up to a few milliseconds (tracing a
long bridge is slow) and leaves metadata that the next minor collection copies. Measured on the
2-vCPU VM (3 symbols x 100 burst boundaries/s): 98 compilations in the first 5 s of live traffic,
25 in the third 5 s, 2-5 per 5 s after a minute. Latency and GC figures taken in that window
describe warm-up, not the steady state, so the stats line says how many compilations the
interval saw and ``bench.py`` reports the count inside each measurement window.

How: ``pypyjit.set_compile_hook`` and ``set_abort_hook`` (which also sees ``ABORT_TOO_LONG``;
``set_trace_too_long_hook`` is left alone because installing it replaces PyPy's own reaction to
an over-long trace). The hooks
run only when the JIT compiles or gives up on a trace, never per message, so installing them
costs the hot path nothing. (``pypyjit.get_stats_snapshot()`` would give tracing times too, but
PyPy 7.3.11 crashes when it is called more than once in a process, so it is not used.)
On CPython there is no JIT: ``install()`` returns False and the stats line omits the field.
"""

import logging

log = logging.getLogger("hftfeed.hw")

__all__ = ["JitMonitor"]


class JitMonitor(object):
    """Counts compiled loops, bridges and aborted traces, in total and per stats interval."""

    def __init__(self):
        self.loops = 0              # new loops and entry bridges (a new hot path)
        self.bridges = 0            # bridges (a guard in compiled code failed often enough)
        self.aborts = 0             # traces abandoned (too long, escaped, ...)
        self.installed = False
        self._taken = (0, 0, 0)
        self._pypyjit = None

    # hook bodies: a few integer operations, at compile time only
    def _on_compile(self, info):
        if getattr(info, "type", "") == "bridge":
            self.bridges += 1
        else:
            self.loops += 1

    def _on_abort(self, *args):
        self.aborts += 1

    def install(self):
        """Start counting; returns False where there is no JIT (CPython, ``pypy --jit off``
        still has the module and counts nothing)."""
        try:
            import pypyjit
        except ImportError:
            return False
        pypyjit.set_compile_hook(self._on_compile)
        pypyjit.set_abort_hook(self._on_abort)
        self._pypyjit = pypyjit
        self.installed = True
        return True

    def uninstall(self):
        if not self.installed:
            return
        self._pypyjit.set_compile_hook(None)
        self._pypyjit.set_abort_hook(None)
        self.installed = False

    @property
    def compiled(self):
        return self.loops + self.bridges

    def snapshot(self):
        return {"loops": self.loops, "bridges": self.bridges, "aborts": self.aborts}

    def take_interval(self):
        """(loops, bridges, aborts) since the previous call: the stats line's jit figures."""
        loops, bridges, aborts = self._taken
        out = (self.loops - loops, self.bridges - bridges, self.aborts - aborts)
        self._taken = (self.loops, self.bridges, self.aborts)
        return out


def apply_params(params):
    """Set PyPy's JIT parameters (``"threshold=200,trace_eagerness=20"``) for this process.

    Returns what was set, or None where there is no JIT to tune (CPython). Why here and not on
    the command line: the systemd unit, ``hftfeed.py run`` and the tests start the daemon in
    different ways, and the config file is the one place all of them read."""
    try:
        import pypyjit
    except ImportError:
        return None
    pypyjit.set_param(params)
    return params
