"""One test per simulator fault, through real sockets: simulator and daemon are subprocesses,
the daemon's UDP output is decoded, and the observable outcome is asserted (status messages,
exact books afterwards, reconnects, log lines, no crash)."""

import re
import time

import pytest

from hftfeed.codecs import wire

from e2e import Collector, DaemonProcess, SimProcess, check_books_against_truth, check_sequence, \
    daemon_config
from simtruth import load_journal

SYMBOLS = ["BTCUSDT", "ETHUSDT"]
BTC, ETH = 1, 2
RESYNC, LIVE, DISC = wire.STATE_RESYNC, wire.STATE_LIVE, wire.STATE_DISCONNECTED


class Rig(object):
    """sim + daemon + collector, with the latest state per instrument tracked as packets arrive."""

    def __init__(self, tmp_path, sim_extra=(), **overrides):
        self.sim = SimProcess(tmp_path, SYMBOLS, rate=200, extra=sim_extra)
        self.col = Collector()
        settings = {"feed_silence_timeout_s": 1.5, "feed_snapshot_timeout_s": 1.0,
                    "feed_reconnect_backoff_initial_s": 0.1, "feed_reconnect_backoff_max_s": 0.5}
        settings.update(overrides)
        self.daemon = DaemonProcess(tmp_path, daemon_config(self.sim, self.col.target, SYMBOLS,
                                                            **settings))
        self.state = {}
        self.seen = 0
        self.state_at_mark = {}

    def _track(self, data):
        for m in wire.decode_packet(data).messages:
            if m.type == wire.TYPE_STATUS:
                self.state[m.instrument] = m.state
        return False

    def wait(self, seconds, predicate):
        """Collect until predicate(state) holds (checked after every datagram)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if predicate(self.state):
                return True
            self.col.collect(0.05, until=self._track)
        return predicate(self.state)

    def wait_live(self, seconds=15):
        assert self.wait(seconds, lambda s: s.get(BTC) == LIVE and s.get(ETH) == LIVE), \
            self.daemon.log_text()[-4000:]

    def mark(self):
        self.seen = len(self.col.datagrams)
        self.state_at_mark = dict(self.state)

    def statuses_since_mark(self, inst):
        """State changes of ``inst`` since mark() (the refresh cycle repeats the current
        state every interval: a repeat is not a change)."""
        changes = []
        last = self.state_at_mark.get(inst)
        for _, d in self.col.datagrams[self.seen:]:
            for m in wire.decode_packet(d).messages:
                if m.type == wire.TYPE_STATUS and m.instrument == inst and m.state != last:
                    changes.append(m.state)
                    last = m.state
        return changes

    def fault(self, **spec):
        self.sim.fault(**spec)

    def finish(self):
        """Stop everything; check the whole run: clean exit, no sequence hole, exact books."""
        code, took_s = self.daemon.stop()
        self.sim.stop()
        self.col.close()
        assert code == 0, self.daemon.log_text()[-4000:]
        assert took_s < 2.0
        packets = self.col.packets()
        check_sequence(packets)
        ids = {m.instrument: m.symbol for p in packets for m in p.messages
               if m.type == wire.TYPE_INSTRUMENT}
        check_books_against_truth(packets, load_journal(self.sim.journal), ids)
        log = self.daemon.log_text()
        assert "Traceback" not in log
        return packets, log


def reconnects(log):
    counts = [int(x) for x in re.findall(r"connects \d+, failed \d+, dropped (\d+)", log)]
    return counts[-1] if counts else 0


@pytest.fixture
def rig(tmp_path, request):
    extra = getattr(request, "param", ())
    r = Rig(tmp_path, sim_extra=extra)
    yield r
    if r.daemon.proc.poll() is None:
        r.daemon.stop()
    r.sim.stop()


def test_sequence_faults_resync_only_the_instrument_hit(rig):
    rig.wait_live()
    rig.mark()
    rig.fault(fault="drop_diff", symbol="BTCUSDT")
    assert rig.wait(8, lambda s: rig.statuses_since_mark(BTC) == [RESYNC, LIVE])
    rig.mark()
    rig.fault(fault="reorder_diffs", symbol="ETHUSDT")
    assert rig.wait(8, lambda s: rig.statuses_since_mark(ETH) == [RESYNC, LIVE])
    assert rig.statuses_since_mark(BTC) == []
    rig.mark()
    rig.fault(fault="duplicate_diff", symbol="BTCUSDT", count=3)
    rig.wait(1.5, lambda s: False)
    assert rig.statuses_since_mark(BTC) == [] and rig.statuses_since_mark(ETH) == []
    packets, log = rig.finish()
    assert log.count("resynchronising this instrument") == 2


def test_junk_messages_are_dropped_and_counted_without_resync_or_reconnect(rig):
    rig.wait_live()
    rig.mark()
    for name in ("malformed_json", "absurd_numbers", "unknown_event", "fragment"):
        rig.fault(fault=name)
        rig.wait(0.4, lambda s: False)
    rig.wait(1.5, lambda s: False)
    assert rig.statuses_since_mark(BTC) == [] and rig.statuses_since_mark(ETH) == []
    packets, log = rig.finish()
    assert "dropped a bad message" in log
    assert reconnects(log) == 0
    bad = [int(x) for x in re.findall(r"bad msgs (\d+)", log)]
    assert bad and bad[-1] >= 2


@pytest.mark.parametrize("spec", [
    {"fault": "close_abrupt"},
    {"fault": "close_abrupt", "rst": True},
    {"fault": "close_frame", "code": 1001, "reason": "going away"},
    {"fault": "close_frame", "code": 1011},
    {"fault": "invalid_utf8"},
    {"fault": "oversized_frame", "bytes": 32 * 2 ** 20},
    {"fault": "half_open", "duration_s": 30},
], ids=lambda spec: "-".join(str(v) for v in spec.values()))
def test_dead_connections_are_replaced_and_every_instrument_resyncs(rig, spec):
    rig.wait_live()
    rig.mark()
    rig.fault(**spec)
    assert rig.wait(12, lambda s: rig.statuses_since_mark(BTC) == [DISC, RESYNC, LIVE]
                    and rig.statuses_since_mark(ETH) == [DISC, RESYNC, LIVE]), \
        rig.daemon.log_text()[-3000:]
    packets, log = rig.finish()
    if spec["fault"] == "half_open":
        assert "nothing received for" in log
    elif spec["fault"] in ("invalid_utf8", "oversized_frame"):
        assert "connection lost: ProtocolError" in log or "connection lost: MessageTooBig" in log
    else:
        assert "reconnecting" in log


@pytest.mark.parametrize("rig", [("--ping-interval-s", "0.3", "--pong-timeout-s", "1.0")],
                         indirect=True)
def test_pings_are_answered_and_a_server_that_ignores_pongs_gets_a_reconnect(rig):
    rig.wait_live()
    rig.wait(1.5, lambda s: False)
    status = rig.sim.status()
    assert status["pings_sent"] > 0 and status["pongs_received"] > 0
    rig.mark()
    rig.fault(fault="ignore_pongs")          # the venue drops us for "not answering" its pings
    assert rig.wait(12, lambda s: rig.statuses_since_mark(BTC) == [DISC, RESYNC, LIVE]
                    and rig.statuses_since_mark(ETH) == [DISC, RESYNC, LIVE]), \
        rig.daemon.log_text()[-3000:]
    rig.mark()
    rig.fault(fault="stop_pings")            # a venue going quiet on pings is not a failure
    rig.wait(2.0, lambda s: False)
    assert rig.statuses_since_mark(BTC) == [] and rig.statuses_since_mark(ETH) == []
    rig.finish()


@pytest.mark.parametrize("spec, log_line", [
    ({"fault": "rest_status", "code": 429, "retry_after_s": 1}, "rate limited (HTTP 429)"),
    ({"fault": "rest_status", "code": 418, "retry_after_s": 1}, "rate limited (HTTP 418)"),
    ({"fault": "rest_status", "code": 503, "count": 2}, "snapshot failed (HttpStatusError"),
    ({"fault": "rest_slow", "delay_s": 3.0}, "snapshot failed (TransportError"),
    ({"fault": "rest_truncated"}, "snapshot failed ("),
    ({"fault": "stale_snapshot", "symbol": "BTCUSDT"}, "older than the first buffered diff"),
], ids=lambda v: v["fault"] + str(v.get("code", "")) if isinstance(v, dict) else "")
def test_snapshot_failures_are_retried_until_live(rig, spec, log_line):
    rig.wait_live()
    rig.mark()
    rig.fault(**spec)
    rig.fault(fault="drop_diff", symbol="BTCUSDT")     # forces a snapshot request
    assert rig.wait(15, lambda s: rig.statuses_since_mark(BTC) == [RESYNC, LIVE]), \
        rig.daemon.log_text()[-3000:]
    assert rig.statuses_since_mark(ETH) == []
    packets, log = rig.finish()
    assert log_line in log


def test_server_shutdown_is_a_make_before_break_rollover_without_resync(rig):
    rig.wait_live()
    rig.mark()
    rig.fault(fault="server_shutdown", after_s=2.0)
    assert rig.wait(8, lambda s: "rolled over to a new connection" in rig.daemon.log_text())
    rig.wait(2.5, lambda s: False)           # past the old connection's close
    assert rig.statuses_since_mark(BTC) == [] and rig.statuses_since_mark(ETH) == []
    packets, log = rig.finish()
    assert "2/2 instruments switched seamlessly" in log


def test_connection_lifetime_rolls_over_before_the_venue_cuts(tmp_path):
    r = Rig(tmp_path, sim_extra=("--lifetime-s", "4"), feed_connection_lifetime_s=2.0,
            feed_overlap_s=1.5)
    try:
        r.wait_live()
        r.mark()
        r.wait(5.0, lambda s: False)
        assert r.statuses_since_mark(BTC) == [] and r.statuses_since_mark(ETH) == []
        packets, log = r.finish()
    finally:
        if r.daemon.proc.poll() is None:
            r.daemon.stop()
        r.sim.stop()
    rollovers = re.findall(r"rolled over to a new connection; (\d+)/2", log)
    assert len(rollovers) >= 2 and set(rollovers) == {"2"}, "every switch seamless"
    assert reconnects(log) == 0
