"""tools/bench/venues.py: per-venue parse + sync throughput over the simulator's own stream,
subscribed with each adapter's own messages (a clean stream: any gap fails the benchmark)."""

import asyncio
import subprocess
import sys

import pytest

from hftfeed.tools.bench import venues as bench_venues


def test_every_in_stream_venue_is_benchmarked_and_rates_are_reported():
    names = bench_venues.in_stream_venues()
    assert {"coinbase", "kraken"} <= set(names) and "binance" not in names
    results = bench_venues.bench(["coinbase", "kraken"], 300, quick=True)
    for name in ("coinbase", "kraken"):
        res = results[name]
        assert res["messages"] == 300 and res["bytes"] > 300 * 50
        assert res["parse_sync"]["n"] == 3 and res["parse_sync"]["median"] > 0


def test_a_gap_in_the_recorded_stream_fails_the_benchmark():
    symbols, texts = asyncio.run(bench_venues.record("coinbase", 200))
    del texts[100]                      # a lost message: the sequence check must notice
    with pytest.raises(AssertionError, match="sequence hole"):
        bench_venues.make_round("coinbase", symbols, texts)(1)


def test_the_command_line_refuses_rest_venues_with_exit_code_2():
    out = subprocess.run([sys.executable, "-m", "hftfeed.tools.bench.venues", "--venues",
                          "binance"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=60)
    assert out.returncode == 2 and "in-stream venues only" in out.stderr
    assert "Traceback" not in out.stderr
