"""``hftfeed.py health`` and ``live n/m`` in sd_notify STATUS (app/health.py): the verdict as a
pure function, then against daemon subprocesses that are healthy, half-broken and gone."""

import socket
import subprocess
import sys
import time

from hftfeed.app import health

from e2e import ENTRY, Collector, DaemonProcess, SimProcess, daemon_config
from test_metrics import free_port


def metric_rows(rows):
    """rows: (id, symbol, state, age_s) -> parsed-exposition shape."""
    def labels(i, sym):
        return {"channel": "1", "venue": "binance", "symbol": sym, "instrument_id": str(i)}
    return {"hftfeed_instrument_state": [(labels(i, s), float(st)) for i, s, st, _ in rows],
            "hftfeed_instrument_last_update_age_seconds": [(labels(i, s), a)
                                                           for i, s, _, a in rows]}


def test_all_live_and_fresh_is_healthy():
    ok, lines = health.verdict(metric_rows([(1, "BTCUSDT", 1, 0.2), (2, "ETHUSDT", 1, 1.5)]),
                               expected_ids=[1, 2], max_age_s=10)
    assert ok and lines == ["healthy: 2/2 instruments live, oldest update 1.5 s ago"]


def test_every_reason_is_named():
    ok, lines = health.verdict(metric_rows([(1, "BTCUSDT", 1, 42.0), (2, "ETHUSDT", 2, 0.1),
                                            (3, "SOLUSDT", 3, 0.1), (4, "XRPUSDT", 0, 9.0)]),
                               expected_ids=[1, 2, 3, 4, 5], max_age_s=10)
    assert not ok
    assert lines == [
        "unhealthy: 1/4 instruments live; 5 problem(s):",
        "  binance BTCUSDT (id 1) has not changed for 42.0 s (max 10.0 s)",
        "  binance ETHUSDT (id 2) is resyncing",
        "  binance SOLUSDT (id 3) is disconnected",
        "  binance XRPUSDT (id 4) is not started",
        "  instrument id 5 is configured but the daemon does not serve it (reload or restart it)"]


def test_no_instruments_is_not_healthy():
    ok, lines = health.verdict({}, None)
    assert not ok and "serves no instruments" in lines[-1]


class Inst(object):
    def __init__(self, venue_id, instrument_id):
        self.venue_id, self.instrument_id = venue_id, instrument_id
        self.book = type("B", (), {"update_id": 0})()
        self.last_quote_id = -1
        self.recent_trade_order = []
        self.state = 1


class FakeFeed(object):
    def __init__(self, insts):
        self.instruments = {i.instrument_id: i for i in insts}


def test_freshness_notes_when_book_quote_or_trades_last_moved():
    a, b = Inst(1, 1), Inst(1, 2)
    fresh = health.Freshness(start_mono_ns=0)
    feeds = [FakeFeed([a, b])]
    fresh.sample(feeds, 1 * 10 ** 9)
    assert fresh.age_s(a, 3 * 10 ** 9) == 3.0            # never changed: since start
    a.book.update_id = 10
    fresh.sample(feeds, 4 * 10 ** 9)
    b.recent_trade_order.append(77)
    fresh.sample(feeds, 5 * 10 ** 9)
    fresh.sample(feeds, 6 * 10 ** 9)                     # nothing moved
    assert fresh.age_s(a, 7 * 10 ** 9) == 3.0
    assert fresh.age_s(b, 7 * 10 ** 9) == 2.0
    b.last_quote_id = 5
    fresh.sample(feeds, 8 * 10 ** 9)
    assert fresh.age_s(b, 8 * 10 ** 9) == 0.0
    assert health.live_counts(feeds) == (2, 2)


def run_health(*args):
    return subprocess.run([sys.executable, ENTRY, "health"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30)


def test_health_of_a_running_daemon_then_of_a_stopped_one(tmp_path):
    port = free_port()
    sim = SimProcess(tmp_path, ["BTCUSDT", "ETHUSDT"], rate=200)
    col = Collector()
    cfg = daemon_config(sim, col.target, ["BTCUSDT", "ETHUSDT"],
                        metrics={"listen": "127.0.0.1:%d" % port})
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        deadline = time.monotonic() + 20
        proc = run_health("--config", daemon.config_path)
        while proc.returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.3)
            proc = run_health("--config", daemon.config_path)
        assert proc.returncode == 0, (proc.stdout, daemon.log_text()[-2000:])
        assert proc.stdout.startswith("healthy: 2/2 instruments live")
        strict = run_health("--url", "127.0.0.1:%d" % port, "--max-age-s", "0.000001")
        assert strict.returncode == 1 and "has not changed for" in strict.stdout
    finally:
        daemon.stop()
        sim.stop()
        col.close()
    gone = run_health("--config", daemon.config_path)
    assert gone.returncode == 1
    assert gone.stdout.startswith("unhealthy: cannot read metrics at 127.0.0.1:%d" % port)


def test_health_names_an_instrument_that_never_goes_live(tmp_path):
    port = free_port()
    sim = SimProcess(tmp_path, ["BTCUSDT"], rate=200)
    col = Collector()
    # NOPEUSDT is unknown to the simulator: it never goes live
    cfg = daemon_config(sim, col.target, ["BTCUSDT", "NOPEUSDT"],
                        metrics={"listen": "127.0.0.1:%d" % port})
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        deadline = time.monotonic() + 20
        proc = run_health("--config", daemon.config_path)
        while ("BTCUSDT" in proc.stdout or "cannot read" in proc.stdout) \
                and time.monotonic() < deadline:
            time.sleep(0.3)
            proc = run_health("--config", daemon.config_path)
    finally:
        daemon.stop()
        sim.stop()
        col.close()
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[0] == "unhealthy: 1/2 instruments live; 1 problem(s):"
    assert "binance NOPEUSDT (id 2) is " in proc.stdout


def test_bad_health_usage_is_exit_2(tmp_path):
    proc = run_health()
    assert proc.returncode == 2 and "no metrics address" in proc.stderr
    assert run_health("--url", "nonsense").returncode == 2


def test_sd_notify_status_carries_live_n_of_m(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    sim = SimProcess(tmp_path, ["BTCUSDT"], rate=200)
    col = Collector()
    daemon = DaemonProcess(tmp_path, daemon_config(sim, col.target, ["BTCUSDT", "NOPEUSDT"]),
                           env={"NOTIFY_SOCKET": path})
    seen = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "STATUS=live 1/2 (not all live)" not in seen:
            try:
                seen.append(sock.recv(4096).decode())
            except socket.timeout:
                continue
    finally:
        daemon.stop()
        sim.stop()
        col.close()
        sock.close()
    assert "STATUS=live 1/2 (not all live)" in seen, seen
    ready = [s for s in seen if s.startswith("READY=1")]
    assert ready and ready[0].startswith("READY=1\nSTATUS=feeds connected; live "), seen
