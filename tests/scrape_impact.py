"""Does scraping /metrics disturb the hot path? Runs the simulator and a daemon subprocess
(the interpreter running this script) twice per round: once undisturbed, once with a scraper
fetching /metrics every ``--scrape-interval-s``; rounds alternate to spread machine noise.
Prints the daemon's own recv->send latency (median over its 1 s stats lines) for both.

    python3 tests/scrape_impact.py --seconds 20 --rounds 2
    pypy3 tests/scrape_impact.py --seconds 20 --rounds 2

docs/operations.md quotes the figures."""

import argparse
import pathlib
import re
import statistics
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from e2e import Collector, DaemonProcess, SimProcess, daemon_config  # noqa: E402
from test_metrics import free_port  # noqa: E402

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
UNITS = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6}


def to_us(text):
    number, unit = re.match(r"([\d.]+)(ns|us|ms|s)$", text).groups()
    return float(number) * UNITS[unit]


def one_run(seconds, scrape_interval_s, rate):
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="scrape-impact-"))
    port = free_port()
    sim = SimProcess(tmp, SYMBOLS, rate=rate)
    col = Collector()
    daemon = DaemonProcess(tmp, daemon_config(sim, col.target, SYMBOLS,
                                              metrics={"listen": "127.0.0.1:%d" % port}))
    stop = threading.Event()
    scrapes = [0, 0]    # count, bytes

    def scraper():
        while not stop.wait(scrape_interval_s):
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2) as r:
                    scrapes[1] += len(r.read())
                scrapes[0] += 1
            except OSError:
                pass
    thread = threading.Thread(target=scraper, daemon=True)
    try:
        col.collect(3.0)            # warm-up (connect, snapshots, JIT)
        mark = len(daemon.log_text().splitlines())
        if scrape_interval_s:
            thread.start()
        col.collect(seconds)
    finally:
        stop.set()
        daemon.stop()
        sim.stop()
        col.close()
    lines = daemon.log_text().splitlines()[mark:]
    p50, p99, p999 = [], [], []
    for line in lines:
        m = re.search(r"latency p50 (\S+) p99 (\S+) p99\.9 (\S+)", line)
        if m:
            p50.append(to_us(m.group(1)))
            p99.append(to_us(m.group(2)))
            p999.append(to_us(m.group(3)))
    return statistics.median(p50), statistics.median(p99), statistics.median(p999), scrapes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--rate", type=int, default=500, help="simulator events/s per symbol")
    parser.add_argument("--scrape-interval-s", type=float, default=1.0)
    args = parser.parse_args()
    results = {"off": [], "on": []}
    for _ in range(args.rounds):
        for mode in ("off", "on"):
            interval = args.scrape_interval_s if mode == "on" else 0
            p50, p99, p999, scrapes = one_run(args.seconds, interval, args.rate)
            results[mode].append((p50, p99, p999))
            print("%-3s p50 %7.1f us  p99 %7.1f us  p99.9 %7.1f us  (%d scrapes, %d bytes each)"
                  % (mode, p50, p99, p999, scrapes[0],
                     scrapes[1] // scrapes[0] if scrapes[0] else 0), flush=True)
    for mode in ("off", "on"):
        rows = results[mode]
        print("%s: median p50 %.1f us, p99 %.1f us, p99.9 %.1f us" % (
            mode, statistics.median(r[0] for r in rows), statistics.median(r[1] for r in rows),
            statistics.median(r[2] for r in rows)))


if __name__ == "__main__":
    main()
