"""``hftfeed.py demo``: simulator + daemon + monitor on loopback, as three real processes.

The daemon and simulator run as children of this process (same interpreter, so ``pypy3
hftfeed.py demo`` demonstrates PyPy end to end); the monitor runs in the foreground and draws
the live view. Ctrl-C (or --duration-s) stops all three cleanly: each child gets SIGTERM,
the daemon sends end-of-session, and the demo prints the daemon's last stats line.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

from hftfeed.app.cli import OneLineParser
from hftfeed.errors import ConfigError
from hftfeed.venues import registry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ENTRY = os.path.join(ROOT, "hftfeed.py")
READY_TIMEOUT_S = 20.0


def free_udp_port(host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, 0))
        return sock.getsockname()[1]
    finally:
        sock.close()


def start_sim(python, symbols, rate, extra=(), venue="binance"):
    """Start the simulator on an ephemeral port; returns (process, ws_url, rest_url)."""
    cmd = [python, ENTRY, "sim", "--host", "127.0.0.1", "--port", "0", "--venue", venue,
           "--symbols", ",".join(symbols), "--rate", str(rate)] + list(extra)
    # own session: the terminal's Ctrl-C reaches only the demo, which stops children in order
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            universal_newlines=True, start_new_session=True)
    ws_url, rest_url = read_ready_line(proc)
    return proc, ws_url, rest_url


def read_ready_line(proc, timeout_s=READY_TIMEOUT_S):
    """Parse ``SIM READY ws=... rest=...`` from the simulator's first stdout line."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            if proc.poll() is not None:
                raise ConfigError("the simulator exited with code %s before it was ready"
                                  % proc.returncode)
            continue
        if line.startswith("SIM READY"):
            fields = dict(part.split("=", 1) for part in line.split()[2:] if "=" in part)
            return fields["ws"], fields["rest"]
    proc.kill()
    raise ConfigError("the simulator did not report ready within %.0f s" % timeout_s)


def demo_config(sims, udp_port):
    """etc/demo.json with one feed per simulator: [(venue, ws_url, rest_url, symbols)]."""
    with open(os.path.join(ROOT, "etc", "demo.json")) as f:
        cfg = json.load(f)
    template = cfg["feeds"][0]
    cfg["feeds"] = []
    for venue, ws_url, rest_url, symbols in sims:
        feed = dict(template)
        feed.update(venue=venue, ws_url=ws_url + registry.ws_path(venue), rest_url=rest_url,
                    symbols=list(symbols))
        if venue != "binance":
            feed.pop("snapshot_limit", None)
        cfg["feeds"].append(feed)
    cfg["publisher"]["target"] = "127.0.0.1:%d" % udp_port
    return cfg


def stop_child(proc, timeout_s=3.0):
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def last_stats_line(log_path):
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.strip() for line in f if "HFT OrderBook:" in line]
    except OSError:
        return None
    return lines[-1] if lines else None


def build_parser():
    parser = OneLineParser(prog="hftfeed.py demo", description=__doc__.split("\n")[0])
    parser.add_argument("--venues", default=",".join(registry.NAMES),
                        help="simulated venues, one simulator each, all in one daemon "
                             "(default: %(default)s)")
    parser.add_argument("--symbols", default=None,
                        help="comma-separated symbols for every venue (default: a few per venue "
                             "in its own spelling, e.g. %s)" % ", ".join(
                            sorted(set(v.symbol_example for v in registry.VENUES))))
    parser.add_argument("--rate", type=int, default=200,
                        help="simulated depth messages per second per venue (default: %(default)s)")
    parser.add_argument("--duration-s", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--json", action="store_true", help="monitor prints JSON lines")
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    venues = [v.strip() for v in args.venues.split(",") if v.strip()]
    for venue in venues:
        if venue not in registry.BY_NAME:
            raise ConfigError("--venues: %r is not one of %s" % (venue, ", ".join(registry.NAMES)))
    if not venues or len(set(venues)) != len(venues):
        raise ConfigError("--venues: give each venue once")
    symbols = None
    if args.symbols is not None:
        symbols = [s.strip() for s in args.symbols.split(",") if s.strip()]
        if not symbols:
            raise ConfigError("--symbols: give at least one symbol")
    if args.rate <= 0:
        raise ConfigError("--rate: must be positive")
    python = sys.executable
    workdir = tempfile.mkdtemp(prefix="hftfeed-demo-")
    log_path = os.path.join(workdir, "daemon.log")
    sims = []
    daemon = None
    code = 1
    try:
        started = []
        for venue in venues:
            venue_symbols = symbols or list(registry.spec(venue).demo_symbols)
            proc, ws_url, rest_url = start_sim(python, venue_symbols, args.rate, venue=venue)
            sims.append(proc)
            started.append((venue, ws_url, rest_url, venue_symbols))
        udp_port = free_udp_port()
        config_path = os.path.join(workdir, "demo.json")
        with open(config_path, "w") as f:
            json.dump(demo_config(started, udp_port), f, indent=2)
        with open(log_path, "w") as log_file:
            daemon = subprocess.Popen([python, ENTRY, "run", "--config", config_path],
                                      stdout=log_file, stderr=log_file,
                                      start_new_session=True)
        sys.stderr.write("demo: simulators %s; daemon pid %d -> udp 127.0.0.1:%d; daemon log %s\n"
                         % (", ".join("%s %s" % (v, w) for v, w, _, _ in started), daemon.pid,
                            udp_port, log_path))
        from hftfeed.tools.monitor import main as monitor_main
        monitor_argv = ["--listen", "127.0.0.1:%d" % udp_port]
        if args.duration_s is not None:
            monitor_argv += ["--duration-s", str(args.duration_s)]
        if args.json:
            monitor_argv.append("--json")
        try:
            code = monitor_main(monitor_argv)
        except KeyboardInterrupt:
            code = 0
    except KeyboardInterrupt:
        code = 0
    finally:
        stop_child(daemon)
        for proc in sims:
            stop_child(proc)
    line = last_stats_line(log_path)
    if line:
        sys.stderr.write("demo: daemon's last stats: %s\n" % line)
    if daemon is not None and daemon.returncode not in (0, None):
        sys.stderr.write("demo: daemon exited with code %s (see %s)\n"
                         % (daemon.returncode, log_path))
        return 1
    return code
