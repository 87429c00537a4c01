"""Test-suite setup: the project root and tests/ on sys.path (tests import hftfeed and helpers
such as refbook / simtruth directly), whichever directory pytest is started from."""

import os
import sys

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
for path in (ROOT, TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)
