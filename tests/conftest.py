"""Test-suite setup: the project root and tests/ on sys.path (tests import hftfeed and helpers
such as refbook / simtruth directly), whichever directory pytest is started from."""

import gc
import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
for path in (ROOT, TESTS):
    if path not in sys.path:
        sys.path.insert(0, path)


@pytest.fixture
def restore_gc():
    """Put the collector back as it was (tests that tune or freeze it)."""
    enabled = gc.isenabled()
    thresholds = gc.get_threshold() if hasattr(gc, "get_threshold") else None
    yield
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    if hasattr(gc, "unfreeze"):
        gc.unfreeze()
    if enabled:
        gc.enable()
