"""Specification of hftfeed.runtime.trace: the sampling trace of the live hot path.

The stage mechanics are checked in process with a scripted clock; the real thing is checked
through the daemon as a subprocess against the simulator: with tracing on, the stats output
carries every stage with samples; off, nothing of the trace exists (no wrapper installed)."""

import asyncio
import json
import re

import pytest

from hftfeed.app.config import load_config_dict
from hftfeed.errors import ConfigError
from hftfeed.runtime.stats import LatencyHistogram
from hftfeed.runtime.trace import STAGES, Trace, merge_exports, parse_export_lines

from e2e import Collector, DaemonProcess, SimProcess, daemon_config


class Clock(object):
    """perf_counter_ns stand-in: every reading is 100 ns after the previous one."""

    def __init__(self):
        self.now = 0

    def __call__(self):
        self.now += 100
        return self.now


class FakeConn(object):
    def receive_data(self, data):
        return data.split(b"|")


class FakeClient(object):
    """The two things the trace wraps on a WebSocket client: data_received and the decoder."""

    def __init__(self, router):
        self._conn = FakeConn()
        self.router = router

    def data_received(self, data):
        for frame in self._conn.receive_data(data):
            self.router.handle(None, frame, 0)


class FakePublisher(object):
    targets = [("127.0.0.1", 9, None, 1)]

    def __init__(self):
        self.sent = []
        self.pending = 0

    def book(self, *args):
        self.pending += 1

    trade = quote = status = book

    def flush(self):
        if self.pending:
            self._send(self.pending, 0)
            self.pending = 0

    def _send(self, length, send_ns):
        self.sent.append(length)


class FakeRouter(object):
    """Parses b"B" into a book, b"-" into nothing; flushes per frame like the real router."""

    def __init__(self, publisher):
        self.publisher = publisher

    def _parse(self, frame):
        return [frame]

    def handle(self, link, frame, recv_ns):
        events = self._parse(frame)
        if events == [b"B"]:
            self.publisher.book()
        self.publisher.flush()


def traced_rig(sample_every):
    clock = Clock()
    trace = Trace(sample_every, clock_ns=clock)
    pub = FakePublisher()
    router = FakeRouter(pub)
    trace.attach_publisher(pub)
    trace.attach_router(router)
    client = FakeClient(router)
    trace.attach_ws(client)
    return trace, client, pub


def test_a_sampled_read_stamps_every_stage_of_each_message_it_carries():
    trace, client, pub = traced_rig(1)
    client.data_received(b"B|B|-")
    s = trace.summary()
    assert s["sampled_reads"] == 1
    assert s["frames_per_read"]["max"] == 3
    assert s["datagrams_per_read"]["max"] == 2           # the third frame published nothing
    stages = s["stages"]
    assert stages["queue"]["count"] == 3 and stages["parse"]["count"] == 3
    for name in ("sync", "pack", "send", "total"):
        assert stages[name]["count"] == 2, name
    # the second message waited behind the whole first one: its queue time is the longer
    assert stages["queue"]["max_ns"] > stages["queue"]["min_ns"]
    assert stages["total"]["max_ns"] > stages["total"]["min_ns"]
    assert pub.sent == [1, 1]                            # the wrapped calls still did their job


def test_only_every_nth_read_is_sampled():
    trace, client, pub = traced_rig(3)
    for _ in range(7):
        client.data_received(b"B")
    assert trace.reads == 7
    assert trace.sampled_reads == 2                      # reads 3 and 6
    assert trace.stages["total"].count == 2
    assert len(pub.sent) == 7


def test_sends_outside_a_sampled_read_are_not_counted():
    trace, client, pub = traced_rig(1)
    pub.book()
    pub.flush()                                          # a timer's status, not a message
    assert trace.stages["send"].count == 0 and trace.sendto_ns.count == 0


def test_reset_starts_a_new_interval():
    trace, client, _ = traced_rig(1)
    client.data_received(b"B")
    trace.reset()
    assert trace.reads == 0 and all(trace.stages[n].count == 0 for n in STAGES)


def test_exports_merge_exactly_across_intervals():
    trace, client, _ = traced_rig(1)
    client.data_received(b"B|B")
    first = json.loads(json.dumps(trace.export()))       # through JSON, as bench.py reads it
    trace.reset()
    client.data_received(b"B|B|B|B")
    second = json.loads(json.dumps(trace.export()))
    merged = merge_exports([first, second])
    assert merged["sampled_reads"] == 2
    assert merged["frames_per_read"]["count"] == 2 and merged["frames_per_read"]["max"] == 4
    assert merged["stages"]["total"]["count"] == 6
    whole = LatencyHistogram.from_export(first["stages"]["total"])
    whole.merge(LatencyHistogram.from_export(second["stages"]["total"]))
    assert merged["stages"]["total"]["p99_ns"] == whole.percentile(99)
    assert merge_exports([]) is None


def test_export_lines_regroup_into_the_same_export_and_each_fits_a_log_line():
    from hftfeed.app.logs import MAX_LINE_CHARS
    trace, client, _ = traced_rig(1)
    for n in range(1, 60):
        client.data_received(b"|".join([b"B"] * (n % 7 + 1)))
    pairs = trace.export_lines(123)
    assert all(len("trace %s %s" % kv) < MAX_LINE_CHARS - 100 for kv in pairs)
    [(t_ns, doc)] = parse_export_lines(list(reversed(pairs)))
    assert t_ns == 123 and doc == json.loads(json.dumps(trace.export()))
    assert parse_export_lines(pairs[1:]) == []            # an interval missing a line is skipped
    cut = [(k, v[:-20] + "...[20 chars cut]") if k == "total" else (k, v) for k, v in pairs]
    assert parse_export_lines(cut) == []                  # ... and one with a line cut short


def test_sample_every_must_be_positive():
    with pytest.raises(ValueError):
        Trace(0)


def test_config_key_is_off_by_default_and_bounded():
    base = {"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"]}]}
    assert load_config_dict(base).trace.sample_every == 0
    assert load_config_dict(dict(base, trace={"sample_every": 64})).trace.sample_every == 64
    for bad in (-1, "64", 10 ** 9):
        with pytest.raises(ConfigError):
            load_config_dict(dict(base, trace={"sample_every": bad}))
    with pytest.raises(ConfigError):
        load_config_dict(dict(base, trace={"every": 64}))


# -- through the real daemon ------------------------------------------------------------------

def _run_daemon(tmp_path, **overrides):
    symbols = ["BTCUSDT", "ETHUSDT"]
    sim = SimProcess(tmp_path, symbols, rate=400)
    collector = Collector()
    daemon = DaemonProcess(tmp_path, daemon_config(sim, collector.target, symbols, **overrides))
    try:
        collector.collect(6.0)
    finally:
        code, _ = daemon.stop()
        sim.stop()
        collector.close()
    assert code == 0, daemon.log_text()[-3000:]
    assert collector.datagrams
    return daemon.log_text()


def test_daemon_with_trace_reports_every_stage_with_samples(tmp_path):
    text = _run_daemon(tmp_path, trace={"sample_every": 2})
    assert "trace: on, every 2 socket read(s) sampled" in text
    pairs = re.findall(r" trace ([a-z_]+) (\{.*\})$", text, re.M)
    intervals = parse_export_lines(pairs)
    assert intervals and len(pairs) == len(intervals) * (1 + len(STAGES) + 3)   # none cut
    merged = merge_exports([doc for _, doc in intervals])
    assert merged is not None and merged["sampled_reads"] > 0, text[-3000:]
    for name in STAGES:
        assert merged["stages"][name]["count"] > 0, name
    assert merged["frames_per_read"]["count"] > 0 and merged["datagrams_per_read"]["count"] > 0
    assert merged["sendto_ns"]["count"] > 0
    assert re.search(r"HFT OrderBook: .* \| trace \d+ reads: [\d.]+ frames/read, [\d.]+ "
                     r"sendto/read, .*read->sent p50 ", text)


def test_daemon_without_trace_has_none_of_it(tmp_path):
    text = _run_daemon(tmp_path)
    assert "HFT OrderBook:" in text
    assert " trace " not in text and "trace:" not in text


def test_the_daemon_installs_wrappers_only_when_tracing():
    from hftfeed.app.daemon import Daemon
    base = {"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"]}],
            "publisher": {"target": "127.0.0.1:9"}, "memory_lock": False, "prefault": False}
    async def built(cfg):           # the daemon builds inside its running loop
        daemon = Daemon(cfg)
        daemon.build()
        return daemon

    for sample_every in (0, 8):
        cfg = load_config_dict(dict(base, trace={"sample_every": sample_every}))
        daemon = asyncio.run(built(cfg))
        try:
            pub, router = daemon.publisher, daemon.feeds[0].router
            wrapped = {"book", "_send"} & set(vars(pub)) | {"handle"} & set(vars(router))
            parser_wrapped = router._parse != router.venue.parse
            if sample_every:
                assert wrapped == {"book", "_send", "handle"} and parser_wrapped
                assert router.trace is daemon.trace
            else:
                assert wrapped == set() and not parser_wrapped
                assert daemon.trace is None and router.trace is None
        finally:
            daemon.publisher.close()
