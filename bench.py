#!/usr/bin/env python3
"""hftfeed benchmarks: ``python3 bench.py [all|parse|book|wire|sections|floor|e2e|phase1|profile|
compare A.json B.json] [--quick] [--out FILE] [--interpreters python3,pypy3]`` (also pypy3).

A thin entry point: the benchmarks live in ``hftfeed/tools/bench/`` (see docs/benchmarks.md).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hftfeed.tools.bench.cli import main  # noqa: E402  (the path must be set first)

if __name__ == "__main__":
    sys.exit(main())
