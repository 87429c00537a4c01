"""Log output (app/logs.py): journald priorities, JSON lines, escaping and bounds, the level from
the environment, and what a daemon subprocess writes from start to a clean stop."""

import io
import json
import logging
import os
import re
import subprocess
import sys
import time

import pytest

from hftfeed.app import logs
from hftfeed.errors import ConfigError

from e2e import ENTRY, Collector, DaemonProcess, SimProcess, daemon_config


def wait_for_text(daemon, text, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if text in daemon.log_text():
            return True
        time.sleep(0.1)
    return False


def record(msg, *args, level=logging.WARNING, exc_info=None):
    return logging.LogRecord("hftfeed.feed", level, __file__, 1, msg, args, exc_info)


def test_journal_lines_carry_the_syslog_priority_and_no_timestamp():
    fmt = logs.JournalFormatter()
    assert fmt.format(record("x", level=logging.ERROR)) == "<3>hftfeed.feed: x"
    assert fmt.format(record("x", level=logging.WARNING)) == "<4>hftfeed.feed: x"
    assert fmt.format(record("x", level=logging.INFO)) == "<6>hftfeed.feed: x"
    assert fmt.format(record("x", level=logging.DEBUG)) == "<7>hftfeed.feed: x"
    assert fmt.format(record("x", level=logging.CRITICAL)) == "<2>hftfeed.feed: x"


def test_control_characters_from_a_venue_cannot_forge_lines_or_reach_the_terminal():
    hostile = "BTC\nFAKE 2026 ERROR hftfeed.daemon: pwned\x1b[2J\x00"
    for fmt in (logs.TextFormatter(), logs.JournalFormatter()):
        line = fmt.format(record("symbol %s", hostile))
        assert "\n" not in line and "\x1b" not in line and "\x00" not in line
        assert "\\nFAKE" in line and "\\x1b[2J" in line
    doc = json.loads(logs.JsonFormatter().format(record("symbol %s", hostile)))
    assert doc["msg"] == "symbol " + logs.escape_text(hostile)


def test_every_line_is_bounded():
    line = logs.TextFormatter().format(record("%s", "A" * 100000))
    assert len(line) < logs.MAX_LINE_CHARS + 200
    assert line.endswith("...[%d chars cut]" % (100000 - logs.MAX_LINE_CHARS))


def test_a_traceback_keeps_its_lines_each_with_the_priority():
    try:
        raise ValueError("bad\x1bthing")
    except ValueError:
        rec = record("crashed", level=logging.ERROR, exc_info=sys.exc_info())
    lines = logs.JournalFormatter().format(rec).split("\n")
    assert lines[0] == "<3>hftfeed.feed: crashed"
    assert len(lines) > 2 and all(line.startswith("<3>  | ") for line in lines[1:])
    assert lines[-1] == "<3>  | ValueError: bad\\x1bthing"
    doc = json.loads(logs.JsonFormatter().format(rec))
    assert doc["traceback"][-1] == "ValueError: bad\\x1bthing" and doc["priority"] == 3


def test_json_lines_name_time_level_and_logger():
    doc = json.loads(logs.JsonFormatter().format(record("live %d/%d", 3, 4, level=logging.INFO)))
    assert doc["msg"] == "live 3/4" and doc["level"] == "info" and doc["priority"] == 6
    assert doc["logger"] == "hftfeed.feed"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", doc["ts"])


def test_level_from_the_environment_wins_and_unknown_names_are_errors():
    assert logs.level_from({}, None) == logging.INFO
    assert logs.level_from({}, "debug") == logging.DEBUG
    assert logs.level_from({"HFTFEED_LOG": "warn"}, "debug") == logging.WARNING
    assert logs.level_from({"RUST_LOG": "hftfeed=debug"}, None) == logging.DEBUG
    assert logs.level_from({"HFTFEED_LOG": "error,x=debug"}, None) == logging.ERROR
    with pytest.raises(ConfigError, match="HFTFEED_LOG: 'bogus' is not a log level"):
        logs.level_from({"HFTFEED_LOG": "bogus"}, None)
    with pytest.raises(ConfigError, match="RUST_LOG"):
        logs.level_from({"RUST_LOG": "hftfeed=loud"}, None)


def test_journal_stream_is_recognised_only_when_it_is_really_stderr(tmp_path):
    path = tmp_path / "stream"
    with open(str(path), "w") as f:
        st = os.fstat(f.fileno())
        value = "%d:%d" % (st.st_dev, st.st_ino)
        assert logs.stderr_is_journal({"JOURNAL_STREAM": value}, f.fileno())
        assert not logs.stderr_is_journal({"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino + 1)},
                                          f.fileno())
        assert not logs.stderr_is_journal({"JOURNAL_STREAM": "junk"}, f.fileno())
        assert not logs.stderr_is_journal({}, f.fileno())
        assert logs.choose_format("auto", {"JOURNAL_STREAM": value}, f.fileno()) == "journal"
        assert logs.choose_format("json", {"JOURNAL_STREAM": value}, f.fileno()) == "json"


def test_setup_installs_one_handler_and_can_be_called_again():
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        logs.setup_logging("info", "json", environ={}, stream=stream)
        logs.setup_logging("info", "json", environ={}, stream=stream)
        logging.getLogger("hftfeed.x").info("once")
        assert [json.loads(l)["msg"] for l in stream.getvalue().splitlines()] == ["once"]
        assert logs.set_level("error", environ={}) == logging.ERROR
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


def test_an_unknown_hftfeed_log_value_is_one_line_and_exit_2(tmp_path):
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"]}]}))
    env = dict(os.environ, HFTFEED_LOG="bogus")
    proc = subprocess.run([sys.executable, ENTRY, "run", "--config", str(cfg)], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "hftfeed.py run: error: HFTFEED_LOG: 'bogus' is not a log level "
        "(one of error, warn, warning, info, debug, trace)"]


def test_a_daemon_under_journald_writes_priorities_and_a_clean_stop_is_info_only(tmp_path):
    """The daemon's stderr is a file whose device:inode is in JOURNAL_STREAM, as systemd does."""
    sim = SimProcess(tmp_path, ["BTCUSDT", "ETHUSDT"], rate=200)
    col = Collector()
    log_path = tmp_path / "daemon.log"
    log_path.write_text("")
    st = os.stat(str(log_path))
    daemon = DaemonProcess(tmp_path, daemon_config(sim, col.target, ["BTCUSDT", "ETHUSDT"]),
                           env={"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)})
    try:
        assert wait_for_text(daemon, "all feeds connected", 15)
        col.collect(1.5)
        mark = len(daemon.log_text().splitlines())
    finally:
        code, _ = daemon.stop()
        sim.stop()
        col.close()
    assert code == 0
    lines = daemon.log_text().splitlines()
    assert lines and all(re.match(r"^<[0-7]>hftfeed\.[a-z_.]+: ", l) for l in lines), lines[:5]
    assert not any(re.match(r"^<\d>\d{4}-", l) for l in lines), "no timestamp under journald"
    stop_lines = lines[mark:]
    assert stop_lines[-1].startswith("<6>hftfeed.daemon: stopped after ")
    assert re.search(r"\d+ connects, 0 failed connect attempts, 0 connections dropped",
                     stop_lines[-1])
    assert "{" not in stop_lines[-1], "a sentence, not a dict repr"
    assert [l for l in stop_lines if not l.startswith("<6>")] == [], \
        "a clean stop logs at INFO only"


def test_log_format_json_gives_one_object_per_line(tmp_path):
    sim = SimProcess(tmp_path, ["BTCUSDT"], rate=100)
    col = Collector()
    daemon = DaemonProcess(tmp_path, daemon_config(sim, col.target, ["BTCUSDT"],
                                                   log_format="json"))
    try:
        col.collect(3.0)
    finally:
        code, _ = daemon.stop()
        sim.stop()
        col.close()
    assert code == 0
    docs = [json.loads(l) for l in daemon.log_text().splitlines()]
    assert docs[-1]["msg"].startswith("stopped after ") and docs[-1]["level"] == "info"
    assert any(d["msg"].startswith("HFT OrderBook:") for d in docs)


def test_failed_connection_attempts_are_counted_as_such(tmp_path):
    """Nothing listens: every attempt fails; the stats line must not say all is well."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    col = Collector()
    cfg = {"feeds": [{"venue": "binance", "ws_url": "ws://127.0.0.1:%d/ws" % port,
                      "rest_url": "http://127.0.0.1:%d" % port, "symbols": ["BTCUSDT"],
                      "reconnect_backoff_initial_s": 0.1, "reconnect_backoff_max_s": 0.2}],
           "publisher": {"target": col.target}, "memory_lock": False, "stats_interval_s": 0.5}
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        col.collect(2.5)
    finally:
        code, _ = daemon.stop()
        col.close()
    assert code == 0
    text = daemon.log_text()
    failed = [int(x) for x in re.findall(r"connects 0, failed (\d+), dropped 0", text)]
    assert failed and failed[-1] >= 4, text[-2000:]
    assert re.search(r"stopped after [\d.]+ s: .* 0 connects, [1-9]\d* failed connect attempts",
                     text)
