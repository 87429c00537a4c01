"""Seeded, time-bounded fuzzing of the byte parsers (tests/fuzz.py): the WebSocket frame parser,
the HTTP response parser and the wire decoder may only return a result or raise their own typed
error. Each venue adapter's target runs in tests/test_venue_contract.py, over the registry.
`python3 tests/fuzz.py --seconds 3600` is the long run of every target."""

import pytest

import fuzz

SECONDS_PER_TARGET = 1.5


@pytest.mark.parametrize("target", sorted(t for t in fuzz.TARGETS if not t.startswith("venue-")))
def test_parser_survives_mutated_input(target):
    cases, crash = fuzz.fuzz(target, SECONDS_PER_TARGET, seed=20261124)
    assert crash is None, "%s failed on %r: %r" % (target, crash[0][:300], crash[1])
    assert cases > 100


def test_the_harness_reports_an_escaping_exception():
    seeds, mutate, _ = fuzz.TARGETS["wire"]
    valid = seeds()

    def broken(rng, data):
        if data not in valid:       # the seeds must pass; mutations fail
            raise KeyError("not a typed error")
    fuzz.TARGETS["broken"] = (seeds, mutate, broken)
    try:
        cases, crash = fuzz.fuzz("broken", 0.2, seed=1)
    finally:
        del fuzz.TARGETS["broken"]
    assert crash is not None and isinstance(crash[1], KeyError)
