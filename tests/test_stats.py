"""Specification of hftfeed.runtime.stats: the latency histogram, the rate meter and format_ns."""

import json
import math
import random

import pytest

from hftfeed.runtime.stats import LatencyHistogram, RateMeter, format_ns, percentile_key


def exact_percentile(sorted_values, p):
    """Reference: the value of rank ceil(p/100 * n) (1-based) in the sorted samples."""
    rank = max(1, int(math.ceil(p / 100.0 * len(sorted_values) - 1e-9)))
    return sorted_values[rank - 1]


# ---------------------------------------------------------------- LatencyHistogram

def test_empty_histogram_reports_zeros():
    hist = LatencyHistogram()
    assert hist.count == 0
    assert hist.percentile(50) == 0
    assert hist.percentile(99.9) == 0
    assert hist.min_ns == 0 and hist.max_ns == 0 and hist.mean_ns == 0.0
    snap = hist.snapshot()
    assert snap["count"] == 0 and snap["p99.9_ns"] == 0


def test_small_values_are_exact():
    hist = LatencyHistogram(sub_bucket_bits=5)
    for value in range(64):  # below 2 ** (bits + 1) every value has its own bucket
        hist.record(value)
    for value in range(64):
        lo, hi = hist.bucket_bounds(value)
        assert lo == hi == value
    assert hist.percentile(50) == 31
    assert hist.percentile(100) == 63
    assert hist.percentile(0) == 0


def test_bucket_bounds_tile_the_range_without_holes_or_overlap():
    hist = LatencyHistogram(max_value_ns=10 ** 9, sub_bucket_bits=5)
    expected_low = 0
    for index in range(hist.bucket_count()):
        lo, hi = hist.bucket_bounds(index)
        assert lo == expected_low
        assert hi >= lo
        # relative width bounded by 1/2**bits of the lower bound
        assert (hi - lo + 1) * 32 <= max(lo, 32)
        expected_low = hi + 1
    assert expected_low > 10 ** 9


def test_bucket_of_a_value_contains_it():
    hist = LatencyHistogram()
    rng = random.Random(7)
    for _ in range(2000):
        value = rng.randrange(0, hist.max_value_ns + 1)
        lo, hi = hist.bucket_bounds(hist._index_of(value))
        assert lo <= value <= hi


@pytest.mark.parametrize("bits", [3, 5, 7])
def test_percentiles_within_relative_error_of_exact(bits):
    rng = random.Random(1234 + bits)
    # log-uniform samples from 100 ns to 10 ms, the shape of real latencies
    values = [int(math.exp(rng.uniform(math.log(100), math.log(10 ** 7)))) for _ in range(20000)]
    hist = LatencyHistogram(sub_bucket_bits=bits)
    for value in values:
        hist.record(value)
    values.sort()
    bound = 1.0 / (1 << bits)
    for p in (1, 10, 50, 90, 99, 99.9, 99.99):
        exact = exact_percentile(values, p)
        got = hist.percentile(p)
        assert exact <= got <= exact * (1 + bound) + 1, (p, exact, got)


def test_percentile_never_exceeds_max_and_never_below_min():
    hist = LatencyHistogram()
    for value in (1000003, 1000005, 1000007):
        hist.record(value)
    assert hist.percentile(99.9) == 1000007
    assert hist.percentile(1) >= 1000003
    assert hist.percentile(100) == hist.max_ns == 1000007
    assert hist.percentile(0) == hist.min_ns == 1000003


def test_percentile_is_monotonic_in_p():
    hist = LatencyHistogram()
    rng = random.Random(3)
    for _ in range(5000):
        hist.record(rng.randrange(0, 5 * 10 ** 6))
    previous = -1
    for p in [0, 0.1, 1, 5, 25, 50, 75, 90, 99, 99.9, 99.99, 100]:
        value = hist.percentile(p)
        assert value >= previous
        previous = value


def test_percentile_rejects_out_of_range_p():
    hist = LatencyHistogram()
    hist.record(5)
    with pytest.raises(ValueError):
        hist.percentile(-1)
    with pytest.raises(ValueError):
        hist.percentile(100.5)


def test_p999_of_thousand_samples_is_the_largest():
    hist = LatencyHistogram(sub_bucket_bits=7)
    for value in range(1, 1001):
        hist.record(value * 1000)
    # rank ceil(0.999 * 1000) = 999, not 1000 (99.9 must not be read as 99.90000000000001)
    assert 998000 < hist.percentile(99.9) <= 999000 * (1 + 1 / 128.0)
    assert hist.percentile(99.9) < hist.max_ns


def test_negative_values_are_counted_and_clamped_to_zero():
    hist = LatencyHistogram()
    hist.record(-500)
    hist.record(-1)
    hist.record(1000)
    assert hist.negative == 2
    assert hist.count == 3
    assert hist.min_ns == 0
    assert hist.percentile(50) == 0
    assert hist.mean_ns == pytest.approx(1000 / 3.0)


def test_values_above_max_count_as_overflow_in_top_bucket():
    hist = LatencyHistogram(max_value_ns=10 ** 6)
    hist.record(5 * 10 ** 6)
    hist.record(10)
    assert hist.overflow == 1
    assert hist.max_ns == 5 * 10 ** 6  # exact maximum is kept
    top_low, top_high = hist.bucket_bounds(hist.bucket_count() - 1)
    assert top_low <= 10 ** 6 <= top_high
    assert hist.percentile(99) == top_high  # the top bucket, not beyond
    assert hist.percentile(100) == 5 * 10 ** 6


def test_max_value_itself_is_recordable_without_overflow():
    hist = LatencyHistogram(max_value_ns=60 * 10 ** 9)
    hist.record(60 * 10 ** 9)
    assert hist.overflow == 0
    assert hist.percentile(50) == 60 * 10 ** 9


def test_min_max_mean_are_exact():
    hist = LatencyHistogram()
    for value in (12345, 7, 99999999, 500):
        hist.record(value)
    assert hist.min_ns == 7
    assert hist.max_ns == 99999999
    assert hist.mean_ns == pytest.approx((12345 + 7 + 99999999 + 500) / 4.0)


def test_reset_forgets_everything():
    hist = LatencyHistogram()
    hist.record(-5)
    hist.record(10 ** 12)
    hist.reset()
    assert hist.count == hist.negative == hist.overflow == 0
    assert hist.percentile(50) == 0
    hist.record(42)
    assert hist.min_ns == hist.max_ns == hist.percentile(50) == 42


def test_merge_equals_recording_everything_in_one():
    rng = random.Random(99)
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for _ in range(3000):
        value = rng.randrange(-100, 10 ** 8)
        target = a if rng.random() < 0.3 else b
        target.record(value)
        both.record(value)
    a.merge(b)
    assert a.snapshot((1, 50, 99, 99.9)) == both.snapshot((1, 50, 99, 99.9))


def test_merge_into_empty_and_of_empty():
    a, b = LatencyHistogram(), LatencyHistogram()
    b.record(300)
    b.record(100)
    a.merge(LatencyHistogram())
    assert a.count == 0
    a.merge(b)
    assert (a.count, a.min_ns, a.max_ns) == (2, 100, 300)


def test_merge_refuses_different_configuration():
    with pytest.raises(ValueError):
        LatencyHistogram(sub_bucket_bits=5).merge(LatencyHistogram(sub_bucket_bits=6))


def test_copy_is_independent():
    hist = LatencyHistogram()
    hist.record(10)
    twin = hist.copy()
    twin.record(20)
    assert hist.count == 1 and twin.count == 2


def test_snapshot_is_json_ready_with_unit_named_keys():
    hist = LatencyHistogram()
    for value in (1000, 2000, 3000):
        hist.record(value)
    snap = hist.snapshot()
    assert set(snap) == {"count", "min_ns", "mean_ns", "max_ns", "negative", "overflow",
                         "p50_ns", "p90_ns", "p99_ns", "p99.9_ns"}
    assert json.loads(json.dumps(snap)) == snap
    assert snap["mean_ns"] == 2000
    assert snap["p50_ns"] <= snap["p99_ns"] <= snap["p99.9_ns"] <= snap["max_ns"]


def test_percentile_key_names():
    assert percentile_key(50) == "p50_ns"
    assert percentile_key(99.0) == "p99_ns"
    assert percentile_key(99.9) == "p99.9_ns"
    assert percentile_key(99.99) == "p99.99_ns"


def test_constructor_rejects_nonsense():
    with pytest.raises(ValueError):
        LatencyHistogram(max_value_ns=0)
    with pytest.raises(ValueError):
        LatencyHistogram(sub_bucket_bits=0)


def test_record_does_not_grow_the_bucket_array():
    hist = LatencyHistogram()
    before = hist.bucket_count()
    for value in (0, 1, 10 ** 3, 10 ** 9, 10 ** 15, -(10 ** 9)):
        hist.record(value)
    assert hist.bucket_count() == before
    assert before < 1100  # 60 s at 5 bits: about 1000 buckets, 8 KB


# ---------------------------------------------------------------- RateMeter

class FakeClock(object):
    def __init__(self):
        self.now_ns = 10 ** 9

    def __call__(self):
        return self.now_ns


def test_rate_meter_reports_events_per_second_of_last_interval():
    clock = FakeClock()
    meter = RateMeter(clock_ns=clock)
    meter.add(500)
    meter.add()
    clock.now_ns += 2 * 10 ** 9
    assert meter.roll() == pytest.approx(250.5)
    assert meter.rate_per_s == pytest.approx(250.5)
    assert meter.last_interval_s == pytest.approx(2.0)
    assert meter.total == 501
    assert meter.interval_count == 0


def test_rate_meter_new_interval_starts_at_roll():
    clock = FakeClock()
    meter = RateMeter(clock_ns=clock)
    meter.add(10)
    clock.now_ns += 10 ** 9
    meter.roll()
    meter.add(3)
    clock.now_ns += 500 * 10 ** 6
    assert meter.current_rate() == pytest.approx(6.0)
    assert meter.roll() == pytest.approx(6.0)
    assert meter.total == 13


def test_rate_meter_zero_elapsed_is_zero_rate():
    clock = FakeClock()
    meter = RateMeter(clock_ns=clock)
    meter.add(5)
    assert meter.roll() == 0.0


def test_rate_meter_default_clock_is_monotonic():
    meter = RateMeter()
    meter.add(1)
    assert meter.roll() >= 0.0
    assert meter.total == 1


# ---------------------------------------------------------------- format_ns

@pytest.mark.parametrize("ns, text", [
    (0, "0ns"),
    (312, "312ns"),
    (999, "999ns"),
    (1000, "1.0us"),
    (4800, "4.8us"),
    (4849, "4.8us"),
    (4850, "4.9us"),
    (999949, "999.9us"),
    (999950, "1.00ms"),
    (1200000, "1.20ms"),
    (1204999, "1.20ms"),
    (999994999, "999.99ms"),
    (999995000, "1.00s"),
    (2500000000, "2.50s"),
    (-4800, "-4.8us"),
])
def test_format_ns(ns, text):
    assert format_ns(ns) == text


def test_export_round_trips_through_json_and_merges_exactly():
    rng = random.Random(5)
    a, b, both = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for i in range(3000):
        value = int(rng.expovariate(1.0 / 40000))
        (a if i % 2 else b).record(value)
        both.record(value)
    copy = LatencyHistogram.from_export(json.loads(json.dumps(a.export())))
    assert copy.snapshot() == a.snapshot()
    copy.merge(LatencyHistogram.from_export(b.export()))
    assert copy.snapshot() == both.snapshot()
    bad = a.export()
    bad["buckets"].append([10 ** 9, 1])
    with pytest.raises(ValueError):
        LatencyHistogram.from_export(bad)


def test_nonzero_buckets_list_each_filled_bucket_once_lowest_first():
    hist = LatencyHistogram()
    assert hist.nonzero_buckets() == []
    for ns in (5, 5, 1000, 90000):
        hist.record(ns)
    buckets = hist.nonzero_buckets()
    assert [n for _, n in buckets] == [2, 1, 1]
    assert [high for high, _ in buckets] == sorted(high for high, _ in buckets)
    assert buckets[0][0] >= 5 and buckets[-1][0] >= 90000
