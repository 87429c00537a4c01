"""Latency histogram, event-rate meter and a nanosecond formatter (pure: no I/O, no asyncio).

The daemon records one latency per published message, the monitor several per datagram and the
benchmark millions, so ``LatencyHistogram.record`` must cost a handful of integer operations and
allocate nothing. It keeps HDR-style log-linear buckets in one preallocated ``array('q')``:

* values below ``2 ** (sub_bucket_bits + 1)`` ns each get their own bucket (exact);
* above that, every power of two ``[2**k, 2**(k+1))`` is split into ``2 ** sub_bucket_bits``
  equal buckets, so a bucket is at most ``1 / 2 ** sub_bucket_bits`` of its lower bound wide
  (1/32 = 3.1 % with the default 5 bits).

A bucket index is ``(shift << bits) + (value >> shift)`` with
``shift = max(0, value.bit_length() - bits - 1)``: one ``bit_length``, two shifts, an add.

``percentile`` answers with the **upper bound** of the bucket that holds the requested rank
(HdrHistogram's "highest equivalent value"), clamped to the exact ``[min_ns, max_ns]`` seen, so a
reported latency is never below the true one and never more than 3.1 % above it.
"""

from array import array
import time

__all__ = ["LatencyHistogram", "RateMeter", "format_ns", "percentile_key"]

DEFAULT_MAX_VALUE_NS = 60000000000  # 60 s: anything slower is an outage, not a latency
DEFAULT_PERCENTILES = (50, 90, 99, 99.9)


def percentile_key(p):
    """JSON key for percentile ``p``: 50 -> "p50_ns", 99.9 -> "p99.9_ns" (units in the name)."""
    if p == int(p):
        return "p%d_ns" % int(p)
    return "p%s_ns" % repr(float(p))


class LatencyHistogram(object):
    """Log-linear latency histogram over ``[0, max_value_ns]`` with bounded relative error.

    Why not a sorted sample list: a histogram has fixed memory, constant-time recording and can be
    merged across intervals, threads or processes; exact percentiles are not worth an allocation
    per sample on the hot path. Negative samples (clock skew between two hosts' wall clocks) are
    counted in ``negative`` and recorded as 0; samples above ``max_value_ns`` are counted in
    ``overflow`` and land in the top bucket (``max_ns`` still holds the true maximum).
    """

    __slots__ = ("max_value_ns", "sub_bucket_bits", "_bits_plus_one", "_counts", "count",
                 "total_ns", "min_ns", "max_ns", "negative", "overflow")

    def __init__(self, max_value_ns=DEFAULT_MAX_VALUE_NS, sub_bucket_bits=5):
        if max_value_ns < 1:
            raise ValueError("max_value_ns must be >= 1, got %r" % (max_value_ns,))
        if not 1 <= sub_bucket_bits <= 16:
            raise ValueError("sub_bucket_bits must be in [1, 16], got %r"
                             % (sub_bucket_bits,))
        self.max_value_ns = int(max_value_ns)
        self.sub_bucket_bits = int(sub_bucket_bits)
        self._bits_plus_one = self.sub_bucket_bits + 1
        # Preallocated once: record() only ever increments an existing slot.
        self._counts = array("q", bytes(8 * (self._index_of(self.max_value_ns) + 1)))
        self.count = 0
        self.total_ns = 0
        self.min_ns = 0
        self.max_ns = 0
        self.negative = 0
        self.overflow = 0

    def _index_of(self, value_ns):
        shift = value_ns.bit_length() - self._bits_plus_one
        if shift < 0:
            shift = 0
        return (shift << self.sub_bucket_bits) + (value_ns >> shift)

    def bucket_bounds(self, index):
        """Inclusive ``(lowest_ns, highest_ns)`` of bucket ``index`` (inverse of the indexing)."""
        shift = (index >> self.sub_bucket_bits) - 1
        if shift < 0:
            shift = 0
        low = (index - (shift << self.sub_bucket_bits)) << shift
        return low, low + (1 << shift) - 1

    def nonzero_buckets(self):
        """``(highest_ns, count)`` of every bucket holding samples, lowest first (exporters
        re-bucket these, e.g. app/metrics.py into Prometheus ``le`` bounds)."""
        counts = self._counts
        return [(self.bucket_bounds(index)[1], counts[index])
                for index in range(len(counts)) if counts[index]]

    def bucket_count(self):
        """Number of preallocated buckets (about 1000 for 60 s at 5 bits)."""
        return len(self._counts)

    def record(self, value_ns):
        """Count one sample (an int, ns). Hot path: a few int ops and one array increment."""
        if value_ns < 0:
            self.negative += 1
            value_ns = 0
        # min/max first: exact values, independent of the bucketing
        if self.count == 0:
            self.min_ns = value_ns
            self.max_ns = value_ns
        elif value_ns < self.min_ns:
            self.min_ns = value_ns
        elif value_ns > self.max_ns:
            self.max_ns = value_ns
        self.count += 1
        self.total_ns += value_ns
        if value_ns > self.max_value_ns:
            self.overflow += 1
            value_ns = self.max_value_ns
        # inlined _index_of: a method call per sample costs more than the arithmetic on CPython
        shift = value_ns.bit_length() - self._bits_plus_one
        if shift < 0:
            shift = 0
        self._counts[(shift << self.sub_bucket_bits) + (value_ns >> shift)] += 1

    @property
    def mean_ns(self):
        """Exact mean of the recorded (negative-clamped) samples, as a float; 0.0 when empty."""
        if self.count == 0:
            return 0.0
        return self.total_ns / self.count

    def percentile(self, p):
        """Value (ns) at or below which ``p`` percent of the samples fall; 0 when empty.

        Returns the upper bound of the bucket holding the sample of rank ``ceil(p/100 * count)``
        clamped to ``[min_ns, max_ns]``: p=0 gives ``min_ns`` and p=100 gives ``max_ns`` exactly.
        """
        if not 0 <= p <= 100:
            raise ValueError("percentile must be in [0, 100], got %r" % (p,))
        if self.count == 0:
            return 0
        if p == 0:
            return self.min_ns
        if p == 100:
            return self.max_ns
        # rank in integer arithmetic on p * 10**6 so that 99.9 is not 99.90000000000001
        p_micro = int(round(p * 1000000))
        rank = -(-(p_micro * self.count) // 100000000)
        if rank < 1:
            rank = 1
        seen = 0
        counts = self._counts
        for index in range(len(counts)):
            seen += counts[index]
            if seen >= rank:
                high = self.bucket_bounds(index)[1]
                if high > self.max_ns:
                    return self.max_ns
                if high < self.min_ns:
                    return self.min_ns
                return high
        return self.max_ns  # unreachable unless counts and count disagree

    def reset(self):
        """Forget every sample; keeps the preallocated array."""
        counts = self._counts
        for index in range(len(counts)):
            counts[index] = 0
        self.count = 0
        self.total_ns = 0
        self.min_ns = 0
        self.max_ns = 0
        self.negative = 0
        self.overflow = 0

    def merge(self, other):
        """Add ``other``'s samples to this histogram (both must have the same configuration)."""
        if (other.max_value_ns != self.max_value_ns
                or other.sub_bucket_bits != self.sub_bucket_bits):
            raise ValueError("cannot merge histograms with different max_value_ns/sub_bucket_bits")
        if other.count == 0:
            return
        counts = self._counts
        other_counts = other._counts
        for index in range(len(counts)):
            counts[index] += other_counts[index]
        if self.count == 0:
            self.min_ns = other.min_ns
            self.max_ns = other.max_ns
        else:
            if other.min_ns < self.min_ns:
                self.min_ns = other.min_ns
            if other.max_ns > self.max_ns:
                self.max_ns = other.max_ns
        self.count += other.count
        self.total_ns += other.total_ns
        self.negative += other.negative
        self.overflow += other.overflow

    def copy(self):
        """An independent histogram with the same samples."""
        twin = LatencyHistogram(self.max_value_ns, self.sub_bucket_bits)
        twin.merge(self)
        return twin

    def export(self):
        """A JSON-ready dict holding every sample (non-zero buckets only), so a histogram can
        cross a process boundary (a log line, a file) and be merged exactly on the other side
        with :meth:`from_export` and :meth:`merge` -- percentiles cannot be averaged."""
        counts = self._counts
        return {"max_value_ns": self.max_value_ns, "sub_bucket_bits": self.sub_bucket_bits,
                "count": self.count, "total_ns": self.total_ns, "min_ns": self.min_ns,
                "max_ns": self.max_ns, "negative": self.negative, "overflow": self.overflow,
                "buckets": [[i, counts[i]] for i in range(len(counts)) if counts[i]]}

    @classmethod
    def from_export(cls, data):
        """The histogram :meth:`export` described (ValueError on a bucket out of range)."""
        hist = cls(data["max_value_ns"], data["sub_bucket_bits"])
        counts = hist._counts
        for index, n in data["buckets"]:
            if not 0 <= index < len(counts) or n < 0:
                raise ValueError("bucket %r out of range" % ([index, n],))
            counts[index] = n
        for key in ("count", "total_ns", "min_ns", "max_ns", "negative", "overflow"):
            setattr(hist, key, int(data[key]))
        return hist

    def snapshot(self, percentiles=DEFAULT_PERCENTILES):
        """A JSON-ready dict: count, min/max/mean (ns), the requested percentiles, anomalies."""
        result = {
            "count": self.count,
            "min_ns": self.min_ns,
            "mean_ns": int(round(self.mean_ns)),
            "max_ns": self.max_ns,
            "negative": self.negative,
            "overflow": self.overflow,
        }
        for p in percentiles:
            result[percentile_key(p)] = self.percentile(p)
        return result


class RateMeter(object):
    """Events per second over the last closed interval.

    ``add`` on the hot path is one integer addition; ``roll`` (once per report interval) turns the
    count into a rate using a monotonic clock, so the rate is right even if a report is late.
    ``clock_ns`` is injectable for tests.
    """

    __slots__ = ("_clock_ns", "interval_count", "total", "rate_per_s", "_start_ns",
                 "last_interval_s")

    def __init__(self, clock_ns=time.monotonic_ns):
        self._clock_ns = clock_ns
        self.interval_count = 0
        self.total = 0
        self.rate_per_s = 0.0
        self.last_interval_s = 0.0
        self._start_ns = clock_ns()

    def add(self, n=1):
        """Count ``n`` events in the current interval."""
        self.interval_count += n

    def current_rate(self, now_ns=None):
        """Rate (events/s) of the interval in progress, without closing it."""
        if now_ns is None:
            now_ns = self._clock_ns()
        elapsed_ns = now_ns - self._start_ns
        if elapsed_ns <= 0:
            return 0.0
        return self.interval_count * 1e9 / elapsed_ns

    def roll(self, now_ns=None):
        """Close the current interval: return its rate (events/s) and start a new one."""
        if now_ns is None:
            now_ns = self._clock_ns()
        self.rate_per_s = self.current_rate(now_ns)
        self.last_interval_s = (now_ns - self._start_ns) / 1e9
        self.total += self.interval_count
        self.interval_count = 0
        self._start_ns = now_ns
        return self.rate_per_s


def format_ns(ns):
    """Human duration with 3-4 significant digits: "312ns", "4.8us", "1.20ms", "2.50s".

    Integer rounding (half up), so the output is exact and a value never shows as "1000.0us":
    it moves to the next unit instead.
    """
    ns = int(ns)
    if ns < 0:
        return "-" + format_ns(-ns)
    if ns < 1000:
        return "%dns" % ns
    tenths_us = (ns + 50) // 100
    if tenths_us < 10000:
        return "%d.%dus" % divmod(tenths_us, 10)
    hundredths_ms = (ns + 5000) // 10000
    if hundredths_ms < 100000:
        return "%d.%02dms" % divmod(hundredths_ms, 100)
    hundredths_s = (ns + 5000000) // 10000000
    return "%d.%02ds" % divmod(hundredths_s, 100)
