#!/usr/bin/env python3
"""hftfeed entry point: ``python3 hftfeed.py {run,demo,monitor,sim,doctor} ...`` (also pypy3)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hftfeed.app.cli import main  # noqa: E402  (the path must be set first)

if __name__ == "__main__":
    sys.exit(main())
