"""SIGHUP reload (app/reload.py + Daemon.reload): the whole config is compared; one key of each
class goes through a daemon subprocess: log level, stats interval, GC, per-feed limits, metrics,
restart-only keys (one warning line naming all), and a refused reload."""

import gc
import json
import platform
import re
import signal
import time
import urllib.request

import pytest

from hftfeed.app import reload as reload_mod
from hftfeed.app.config import load_config_dict
from hftfeed.codecs import wire

from e2e import Collector, DaemonProcess, SimProcess, daemon_config
from test_metrics import free_port


# -- the plan, as a pure function ---------------------------------------------------------------

class RunningFeed(object):
    """What plan() reads from a running Feed: its config, identity and instruments."""

    def __init__(self, feed_cfg):
        from hftfeed.pipeline.feed import feed_identity
        self.cfg = feed_cfg
        self._ident = feed_identity(feed_cfg)
        self.instruments = {i.symbol: type("I", (), {"symbol": i.symbol,
                                                      "instrument_id": i.instrument_id})()
                            for i in feed_cfg.instruments}

    def identity(self):
        return self._ident


def base(**top):
    raw = {"feeds": [{"venue": "binance", "symbols": ["BTCUSDT", "ETHUSDT"]}],
           "memory_lock": False}
    raw.update(top)
    return raw


def plan_of(old_raw, new_raw):
    old = load_config_dict(old_raw)
    return reload_mod.plan(old, load_config_dict(new_raw), [RunningFeed(f) for f in old.feeds])


def test_every_changed_key_is_either_live_or_named_for_a_restart():
    new = base(log_level="warn", stats_interval_s=3, gc={"thresholds": [1000, 20, 20]},
               publisher={"channel": 9, "heartbeat_interval_s": 0.2},
               scheduler={"policy": "fifo"}, metrics={"listen": "127.0.0.1:9102"},
               book={"capacity_levels": 100})
    new["feeds"][0].update(silence_timeout_s=5, max_streams_per_connection=10)
    p = plan_of(base(), new)
    assert sorted(p.live) == ["feeds[0].silence_timeout_s", "gc.thresholds", "log_level",
                              "metrics.listen", "publisher.heartbeat_interval_s",
                              "stats_interval_s"]
    assert sorted(p.restart) == ["book.capacity_levels", "feeds[0].max_streams_per_connection",
                                 "publisher.channel", "scheduler.policy"]
    eff = p.effective
    assert eff.publisher.channel == 1 and eff.publisher.heartbeat_interval_s == 0.2
    assert eff.scheduler.policy == "other" and eff.book.capacity_levels == 5000
    assert eff.stats_interval_s == 3 and eff.log_level == "warn"


def test_an_unchanged_config_changes_nothing():
    p = plan_of(base(), base())
    assert p.live == [] and p.restart == [] and p.new == [] and p.gone == []


def test_every_config_key_is_classified():
    """A key added to config.py later is caught here until it is put in a class."""
    cfg = load_config_dict(base())
    names = reload_mod.changed_keys(cfg, cfg)
    assert names == []
    from hftfeed.app import config
    all_keys = set()
    for key in config.Config.KEYS:
        value = getattr(cfg, key.attr)
        if isinstance(value, config.Section):
            all_keys.update("%s.%s" % (key.name, k) for k in type(value).key_names())
        elif key.name != "feeds":
            all_keys.add(key.name)
    assert reload_mod.LIVE_KEYS <= all_keys
    feed_keys = set(config.FeedConfig.key_names()) - {"symbols"}
    assert reload_mod.LIVE_FEED_KEYS <= feed_keys
    assert reload_mod.IDENTITY_KEYS <= feed_keys


# -- a daemon subprocess -------------------------------------------------------------------------

class ReloadRig(object):
    def __init__(self, tmp_path, symbols=("BTCUSDT", "ETHUSDT"), **overrides):
        self.sim = SimProcess(tmp_path, list(symbols), rate=200)
        self.col = Collector()
        self.cfg = daemon_config(self.sim, self.col.target, list(symbols), **overrides)
        # HFTFEED_LOG empty: the config's log_level decides (the environment would win)
        self.daemon = DaemonProcess(tmp_path, self.cfg, env={"HFTFEED_LOG": ""})

    def wait_for(self, text, timeout_s=15.0, after=0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.daemon.log_text()[after:]:
                return True
            self.col.collect(0.1)
        return False

    def reload(self, **changes):
        """Write the config with ``changes`` (feed_X for the feed entry) and send SIGHUP;
        returns the log offset before it."""
        for key, value in changes.items():
            if key.startswith("feed_"):
                self.cfg["feeds"][0][key[5:]] = value
            else:
                self.cfg[key] = value
        with open(self.daemon.config_path, "w") as f:
            json.dump(self.cfg, f)
        mark = len(self.daemon.log_text())
        self.daemon.proc.send_signal(signal.SIGHUP)
        assert self.wait_for("SIGHUP: reloading", after=mark)
        self.col.collect(0.3)
        return mark

    def close(self):
        code = self.daemon.stop()[0] if self.daemon.proc.poll() is None else \
            self.daemon.proc.returncode
        self.sim.stop()
        self.col.close()
        return code


@pytest.fixture
def rig(tmp_path):
    rigs = []

    def make(**kw):
        r = ReloadRig(tmp_path, **kw)
        rigs.append(r)
        assert r.wait_for("all feeds connected"), r.daemon.log_text()[-2000:]
        return r
    yield make
    for r in rigs:
        if r.daemon.proc.poll() is None:
            r.close()


def test_reload_applies_log_level_and_stats_interval_live(rig):
    r = rig(stats_interval_s=30, log_level="info")
    mark = r.reload(stats_interval_s=0.3)
    r.col.collect(2.0)
    after = r.daemon.log_text()[mark:]
    assert "reload: applied live: stats_interval_s" in after
    assert after.count("HFT OrderBook:") >= 3, "stats lines every 0.3 s now, not every 30 s"
    mark = r.reload(log_level="warn")
    r.col.collect(1.5)
    assert r.close() == 0
    after = r.daemon.log_text()[mark:].splitlines()
    applied = next(i for i, l in enumerate(after) if "reload: applied live: log_level" in l)
    assert not any(" INFO " in l for l in after[applied + 1:]), after[applied + 1:][:5]


def test_reload_applies_gc_settings_live(rig):
    r = rig()
    mark = r.reload(gc={"thresholds": [50000, 20, 20], "collect_interval_s": 0.5})
    assert r.wait_for("reload: applied live: gc.thresholds, gc.collect_interval_s", after=mark)
    text = r.daemon.log_text()[mark:]
    assert re.search(r"reload: gc: .*scheduled collection every 0.5 s", text), text
    if hasattr(gc, "set_threshold"):      # the daemon runs on this interpreter
        assert "reload: gc: thresholds (50000, 20, 20)" in text
    assert r.close() == 0


def test_reload_applies_a_per_feed_limit_from_the_next_connection(rig):
    """silence_timeout_s 30 -> 1: after a reconnect, a silent venue is noticed in seconds."""
    r = rig()
    mark = r.reload(feed_silence_timeout_s=1.0)
    assert "reload: applied live: feeds[0].silence_timeout_s" in r.daemon.log_text()[mark:]
    r.sim.fault(fault="close_abrupt")                       # the next connection reads it
    assert r.wait_for("connected to", after=mark + 1), r.daemon.log_text()[-2000:]
    r.col.collect(1.0)
    r.sim.fault(fault="half_open", duration_s=60.0)
    # with the old 30 s this would not happen within the 10 s waited here
    assert r.wait_for("nothing received for", timeout_s=10, after=mark), \
        r.daemon.log_text()[-2000:]
    assert r.close() == 0


def test_reload_moves_the_metrics_endpoint(rig):
    r = rig()
    port = free_port()
    mark = r.reload(metrics={"listen": "127.0.0.1:%d" % port})
    assert r.wait_for("metrics: serving http://127.0.0.1:%d/metrics" % port, after=mark)
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as resp:
        assert b"hftfeed_instrument_live" in resp.read()
    mark = r.reload(metrics={"listen": None})
    assert r.wait_for("metrics: endpoint closed", after=mark)
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5)
    assert r.close() == 0


def test_restart_only_keys_are_named_in_one_warning_and_not_applied(rig):
    r = rig()
    mark = r.reload(publisher=dict(r.cfg["publisher"], channel=99),
                    scheduler={"policy": "fifo"}, feed_max_streams_per_connection=7,
                    book={"capacity_levels": 200})
    r.col.collect(1.0)
    warnings = [l for l in r.daemon.log_text()[mark:].splitlines() if "needs a restart" in l]
    assert len(warnings) == 1
    assert warnings[0].endswith("feeds[0].max_streams_per_connection, publisher.channel, "
                                "book.capacity_levels, scheduler.policy")
    n_before = len(r.col.datagrams)
    r.col.collect(1.0)
    assert {wire.decode_packet(d).channel for _, d in r.col.datagrams[n_before:]} == {7}
    # reloading the same file again still warns: the running value did not change
    mark = r.reload()
    assert "needs a restart" in r.daemon.log_text()[mark:]
    assert r.close() == 0


def test_an_invalid_reload_is_refused_and_changes_nothing(rig):
    r = rig(stats_interval_s=30)
    mark = r.reload(stats_interval_s=0.3, feeds="not a list")
    r.col.collect(1.5)
    text = r.daemon.log_text()[mark:]
    assert "reload refused, still running the old config: feeds:" in text
    assert "HFT OrderBook:" not in text, "the valid key next to the bad one was not applied"
    with open(r.daemon.config_path, "w") as f:
        f.write("[" * 100000)
    mark = len(r.daemon.log_text())
    r.daemon.proc.send_signal(signal.SIGHUP)
    assert r.wait_for("reload refused", after=mark)
    assert "Traceback" not in r.daemon.log_text()
    assert r.close() == 0


def test_symbols_added_by_a_reload_get_their_instrument_details(rig):
    """The venue's list is read again when a reload adds symbols: the added instrument's I is
    followed by its D (docs/PROTOCOL.md), as for the symbols configured at start."""
    r = rig()
    r.reload(feed_symbols=["BTCUSDT"])
    mark = len(r.col.datagrams)
    r.reload(feed_symbols=["BTCUSDT", "ETHUSDT"])
    r.col.collect(3.0)
    details = {}
    names = {}
    for _, data in r.col.datagrams[mark:]:
        for msg in wire.decode_packet(data).messages:
            if msg.type == wire.TYPE_INSTRUMENT:
                names[msg.instrument] = msg.symbol
            elif msg.type == wire.TYPE_DETAILS:
                details[msg.instrument] = msg
    assert r.close() == 0
    eth = [i for i, s in names.items() if s == "ETHUSDT"]
    assert eth and eth[0] in details, r.daemon.log_text()[-2000:]
    assert details[eth[0]].tick_size == 1000000           # the simulator's ETHUSDT tick, 0.01


def test_reload_applies_jit_thresholds_live(rig):
    """PyPy: new thresholds go to ``pypyjit.set_param`` (for code compiled from then on);
    CPython has no JIT, so the change is accepted and there is nothing to set."""
    r = rig()
    mark = r.reload(jit={"threshold": 500, "trace_eagerness": 50})
    assert r.wait_for("reload: applied live: jit.threshold, jit.trace_eagerness", after=mark)
    text = r.daemon.log_text()[mark:]
    if platform.python_implementation() == "PyPy":
        assert "jit: threshold=500,function_threshold=300,trace_eagerness=50" in text
    else:
        assert "jit: threshold=" not in text
    assert "needs a restart" not in text
    assert r.close() == 0
