"""Daemon lifecycle: SIGHUP reload of symbols, refused reloads, crash restart of a feed task."""

import asyncio
import json
import logging
import signal

from hftfeed.codecs import wire
from hftfeed.app.config import load_config_dict
from hftfeed.venues import registry
from hftfeed.pipeline.feed import Feed, FeedStats

from e2e import Collector, DaemonProcess, SimProcess, check_books_against_truth, check_sequence, \
    daemon_config
from simtruth import load_journal


def statuses(packets, inst):
    """The state changes of ``inst`` (the refresh cycle re-sends the current state each
    interval: a repeat is not a change)."""
    changes = []
    for p in packets:
        for m in p.messages:
            if m.type == wire.TYPE_STATUS and m.instrument == inst and (
                    not changes or changes[-1] != m.state):
                changes.append(m.state)
    return changes


def live(inst):
    def test(data):
        return any(m.type == wire.TYPE_STATUS and m.instrument == inst and m.state == 1
                   for m in wire.decode_packet(data).messages)
    return test


def test_sighup_adds_and_removes_symbols_without_touching_the_others(tmp_path):
    sim = SimProcess(tmp_path, ["BTCUSDT", "ETHUSDT", "SOLUSDT"], rate=300)
    col = Collector()
    cfg = daemon_config(sim, col.target, [{"symbol": "BTCUSDT", "id": 1},
                                          {"symbol": "ETHUSDT", "id": 2}])
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        assert col.collect(10, until=live(2))
        col.collect(0.5)
        cfg["feeds"][0]["symbols"] = [{"symbol": "ETHUSDT", "id": 2}, {"symbol": "SOLUSDT", "id": 3}]
        with open(daemon.config_path, "w") as f:
            json.dump(cfg, f)
        daemon.proc.send_signal(signal.SIGHUP)
        assert col.collect(10, until=live(3)), daemon.log_text()[-3000:]
        col.collect(6.0)     # long enough for the periodic I messages (every 5 s)
    finally:
        code, _ = daemon.stop()
        sim.stop()
        col.close()
    assert code == 0
    packets = col.packets()
    check_sequence(packets)
    assert statuses(packets, 1) == [2, 1, 3]            # BTCUSDT removed: disconnected
    assert statuses(packets, 2) == [2, 1]               # ETHUSDT untouched
    assert statuses(packets, 3) == [2, 1]               # SOLUSDT added
    symbols = {m.instrument: m.symbol for p in packets for m in p.messages
               if m.type == wire.TYPE_INSTRUMENT}
    assert symbols == {1: "BTCUSDT", 2: "ETHUSDT", 3: "SOLUSDT"}
    last_defs = [m.instrument for p in packets for m in p.messages if m.type == wire.TYPE_INSTRUMENT]
    assert sorted(last_defs[-2:]) == [2, 3]             # the removed one is no longer announced
    btc = [m for p in packets for m in p.messages if m.instrument == 1]
    removal = next(i for i, m in enumerate(btc) if m.type == wire.TYPE_STATUS and m.state == 3)
    assert btc[removal + 1:] == [], "nothing about BTCUSDT after its removal"
    check_books_against_truth(packets, load_journal(sim.journal), symbols)
    assert "reload: binance feed: added ['SOLUSDT'], removed ['BTCUSDT']" in daemon.log_text()


def test_sighup_with_a_renumbering_or_invalid_config_is_refused_and_the_daemon_keeps_going(tmp_path):
    sim = SimProcess(tmp_path, ["BTCUSDT", "ETHUSDT"], rate=200)
    col = Collector()
    cfg = daemon_config(sim, col.target, ["BTCUSDT", "ETHUSDT"])
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        assert col.collect(10, until=live(2))
        cfg["feeds"][0]["symbols"] = ["ETHUSDT"]        # ETHUSDT would become id 1
        with open(daemon.config_path, "w") as f:
            json.dump(cfg, f)
        daemon.proc.send_signal(signal.SIGHUP)
        col.collect(1.0)
        with open(daemon.config_path, "w") as f:
            f.write("{broken")
        daemon.proc.send_signal(signal.SIGHUP)
        col.collect(1.0)
        assert daemon.proc.poll() is None
    finally:
        code, _ = daemon.stop()
        sim.stop()
        col.close()
    assert code == 0
    text = daemon.log_text()
    assert "reload refused, still running the old config: instrument id of ETHUSDT would change " \
        "from 2 to 1" in text
    assert "reload refused, still running the old config: config" in text
    packets = col.packets()
    assert statuses(packets, 1) == [2, 1] and statuses(packets, 2) == [2, 1]


class FakePublisher(object):
    def __init__(self):
        self.statuses = []

    def status(self, venue, instrument, recv_ns, state):
        self.statuses.append((instrument, state))

    def flush(self):
        pass


def test_a_crashing_feed_task_is_logged_with_traceback_and_restarted(caplog):
    cfg = load_config_dict({"feeds": [{"venue": "binance", "ws_url": "ws://127.0.0.1:9",
                                       "symbols": ["BTCUSDT"], "reconnect_backoff_initial_s": 0.01,
                                       "reconnect_backoff_max_s": 0.02}]})

    async def scenario():
        feed = Feed(cfg.feeds[0], registry.adapter("binance"), FakePublisher(), FeedStats(), 100)
        sup = feed.supervisors[0]
        calls = []

        async def crashing_loop():
            calls.append(1)
            if len(calls) < 3:
                raise RuntimeError("boom %d" % len(calls))
            sup.stopping = True

        sup._connection_loop = crashing_loop
        await asyncio.wait_for(sup.run(), 5)
        return feed, calls

    with caplog.at_level(logging.ERROR, logger="hftfeed.feed"):
        feed, calls = asyncio.new_event_loop().run_until_complete(scenario())
    assert len(calls) == 3
    assert feed.stats.feed_crashes == 2
    crash_logs = [r for r in caplog.records if "feed task crashed" in r.getMessage()]
    assert len(crash_logs) == 2
    assert all(r.exc_info and "boom" in str(r.exc_info[1]) for r in crash_logs)
