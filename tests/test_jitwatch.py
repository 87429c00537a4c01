"""runtime/jitwatch.py: PyPy's compilations counted per stats interval (the warm-up signal)."""

import platform

import pytest

from hftfeed.runtime.jitwatch import JitMonitor

PYPY = platform.python_implementation() == "PyPy"


class _Info(object):
    def __init__(self, kind):
        self.type = kind


def test_intervals_count_loops_bridges_and_aborts_since_the_previous_call():
    mon = JitMonitor()
    mon._on_compile(_Info("loop"))
    mon._on_compile(_Info("entry bridge"))
    mon._on_compile(_Info("bridge"))
    mon._on_abort("pypyjit", None, "ABORT_TOO_LONG", None)
    assert mon.take_interval() == (2, 1, 1)
    assert mon.take_interval() == (0, 0, 0)
    mon._on_compile(_Info("bridge"))
    assert mon.take_interval() == (0, 1, 0)
    assert mon.snapshot() == {"loops": 2, "bridges": 2, "aborts": 1}
    assert mon.compiled == 4


@pytest.mark.skipif(PYPY, reason="CPython has no JIT")
def test_cpython_has_nothing_to_install():
    mon = JitMonitor()
    assert mon.install() is False
    assert not mon.installed
    mon.uninstall()                       # harmless when nothing was installed


@pytest.mark.skipif(not PYPY, reason="PyPy's JIT only")
def test_pypy_hooks_see_a_real_compilation():
    mon = JitMonitor()
    assert mon.install() is True
    try:
        def hot(n):
            total = 0
            for i in range(n):
                total += i * 3 ^ (i >> 2)
            return total
        for _ in range(5):
            hot(20000)                    # well past the JIT's loop threshold
        loops, bridges, aborts = mon.take_interval()
        assert loops + bridges >= 1
    finally:
        mon.uninstall()
    assert not mon.installed
