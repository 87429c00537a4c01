"""The demo, as a newcomer runs it: simulators for every registered venue + daemon + monitor, real
processes, stopped by --duration-s; the monitor's final JSON shows every instrument live."""

import json
import os
import subprocess
import sys

from hftfeed.venues import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_runs_every_registered_venue_and_stops_cleanly():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "hftfeed.py"), "demo",
                           "--duration-s", "10", "--json", "--rate", "100"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    venues = {i["venue_name"] for i in summary["instruments"]}
    assert venues == set(registry.NAMES)
    not_live = [(i["venue_name"], i["symbol"], i["state_name"], i["books"])
                for i in summary["instruments"] if i["state_name"] != "live" or i["books"] == 0]
    assert not_live == [], proc.stderr[-2000:]
    assert summary["gaps"] == 0 and summary["decode_errors"] == 0
    assert "HFT OrderBook:" in proc.stderr      # the daemon's last stats line is shown


def test_demo_rejects_an_unknown_venue_with_exit_code_2():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "hftfeed.py"), "demo",
                           "--venues", "binance,nyse"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert proc.returncode == 2
    assert "--venues: 'nyse' is not one of" in proc.stderr
    assert "Traceback" not in proc.stderr
