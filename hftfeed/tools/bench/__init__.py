"""Reproducible benchmarks: ``python3 bench.py`` / ``pypy3 bench.py`` (docs/benchmarks.md).

Modules: ``common`` (summaries of repetitions, machine facts, child processes), ``micro``
(parse / book / wire in one process), ``floor`` (two-process UDP ping-pong), ``receiver`` (the
end-to-end UDP receiver process), ``e2e`` (simulator -> daemon -> receiver rigs and the Phase 1
variants), ``report`` (tables, compare), ``cli`` (the command line bench.py runs).

Nothing here asserts a speed: every figure is measured, summarised (median, min-max over
repetitions) and written to JSON next to what was discarded as warm-up.
"""

SCHEMA = "hftfeed-bench/1"
