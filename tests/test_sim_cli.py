"""The simulator's command line (hftfeed/tools/sim/cli.py), run as a real process."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import simtruth  # noqa: E402

from hftfeed.tools.sim import cli  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def start(*args):
    proc = subprocess.Popen([sys.executable, "-m", "hftfeed.tools.sim"] + list(args), cwd=str(ROOT),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline().decode()
    assert line.startswith("SIM READY ws=ws://127.0.0.1:"), (line, proc.stderr.read()[-2000:])
    fields = dict(part.split("=", 1) for part in line.split()[2:])
    port = int(fields["rest"].rsplit(":", 1)[1])
    assert fields["ws"] == "ws://127.0.0.1:%d" % port
    return proc, port


def get(port, path):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as resp:
        return json.loads(resp.read())


def test_ready_line_then_sigterm_stops_cleanly_and_flushes_the_journal(tmp_path):
    journal = tmp_path / "run.jsonl"
    proc, port = start("--symbols", "BTCUSDT,ETHUSDT", "--rate", "500", "--record", str(journal))
    try:
        snap = get(port, "/api/v3/depth?symbol=ETHUSDT&limit=5")
        assert len(snap["bids"]) == 5
        time.sleep(0.3)
        status = get(port, "/_sim/status")
        assert status["symbols"] == ["BTCUSDT", "ETHUSDT"]
        assert status["messages_generated"]["BTCUSDT"] > 10
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert out == b""                      # the READY line was the only stdout output
    truth = simtruth.load_journal(journal)
    assert truth.bad_lines == 0
    assert len(truth.depth_events["BTCUSDT"]) >= 10
    assert truth.header["seed"] == 1 and truth.header["venue"] == "binance"


def test_duration_and_scheduled_fault_from_the_command_line(tmp_path):
    journal = tmp_path / "run.jsonl"
    proc, _port = start("--symbols", "BTCUSDT", "--rate", "300", "--record", str(journal),
                        "--duration-s", "0.8", "--fault", "drop_diff:symbol=BTCUSDT,after_s=0.2",
                        "--fault", '{"fault":"rest_status","code":503}')
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()[-2000:]
    truth = simtruth.load_journal(journal)
    assert truth.faults_named("rest_status")
    applied = [f for f in truth.faults_named("drop_diff") if "U" in f]
    assert len(applied) == 1
    assert applied[0]["u"] not in truth.delivered_update_ids("BTCUSDT")


@pytest.mark.parametrize("args", [
    ["--rate", "-5"], ["--fault", "bogus"], ["--replay", "/nonexistent/journal"],
    ["--no-such-flag"], ["--depth-levels", "2"], ["--symbols", "BTC-USDT"], ["--port", "70000"],
    ["--log-level", "loud"],
])
def test_bad_input_prints_one_error_line_and_exits_2(args):
    proc = subprocess.run([sys.executable, "-m", "hftfeed.tools.sim"] + args, cwd=str(ROOT),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert proc.returncode == 2
    assert proc.stdout == b""
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0]


def test_main_is_importable_and_help_exits_0(capsys):
    assert cli.main(["--help"]) == 0
    assert "--replay-capture" in capsys.readouterr().out


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs a POSIX system")
def test_sigint_also_stops_with_exit_0():
    proc, _port = start("--symbols", "BTCUSDT", "--rate", "100")
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()[-2000:]
