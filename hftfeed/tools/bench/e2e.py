"""End to end on loopback, as separate processes: simulator -> daemon -> UDP -> receiver.

One run (:func:`run_once`):

1. start the receiver (``hftfeed.tools.bench.receiver``) and the simulator (``hftfeed.py sim``, with
   a journal when wire-to-wire latency is wanted), both under the helper interpreter;
2. start the daemon (``hftfeed.py run``) under the interpreter being measured, with a config
   that subscribes every symbol's depth stream and publishes to the receiver, plus the Phase 1
   settings of the variant;
3. wait until the receiver has seen every instrument go live (start-up: discarded), then let it
   run ``warmup_s`` more (PyPy's JIT: discarded, and the books received meanwhile are counted in
   the result), then measure for ``seconds``;
4. read the daemon's CPU time (/proc/PID/stat utime+stime) at both ends of the window and its
   peak RSS (VmHWM) at the end; stop everything; match the receiver's book receipts to the
   simulator's journal for the wire-to-wire latency.

Two offered rates: ``fixed`` (a rate every configuration can sustain: latency without queueing;
journal on) and ``max`` (the simulator asked for far more than it can produce: throughput, no
journal because writing it halves the simulator's rate, so no wire-to-wire figure there).

Phase 1 variants (:data:`PHASE1_KEYS`): the baseline has every setting off, then each one on
alone, then all on. "Off" for socket buffers is 0 in the config: no setsockopt, the kernel's
default UDP sizes and TCP autotuning.
"""

import json
import logging
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
import http.client
from array import array

from hftfeed.tools.bench.common import (ENTRY, allowed_cpus, child_env, cpu_times, ROOT, ratio,
                                  status_kb, summarize)
from hftfeed.runtime.stats import LatencyHistogram

log = logging.getLogger("hftfeed.bench.e2e")

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
           "AVAXUSDT", "DOTUSDT", "LINKUSDT")
PERCENTILES = (50, 90, 99, 99.9)
LATENCY_KEYS = ("p50_ns", "p90_ns", "p99_ns", "p99.9_ns", "max_ns")
LIVE_TIMEOUT_S = 60.0
SIM_SEED = 4242

PHASE1_KEYS = ("memory_lock", "prefault", "cpu_affinity", "scheduler", "socket_buffers", "gc",
               "busy_poll")
# Not Phase 1 settings, so only run when asked by name (--variants baseline,flush_read):
# "flush_read" = publisher.flush "read" (one datagram per socket read instead of per frame).
EXTRA_KEYS = ("flush_read",)


def phase1_settings(on_keys, core):
    """The daemon config's Phase 1 keys with ``on_keys`` on and every other one off."""
    on = set(on_keys)
    big = 4 * 2 ** 20
    return {
        "memory_lock": "memory_lock" in on,
        "prefault": "prefault" in on,
        "cpu_affinity": ({"enabled": True, "processor_core": core} if "cpu_affinity" in on
                         else {"enabled": False, "processor_core": -1}),
        "scheduler": {"policy": "fifo" if "scheduler" in on else "other", "priority": 10},
        "socket_buffers": ({"sndbuf_bytes": big, "rcvbuf_bytes": big} if "socket_buffers" in on
                           else {"sndbuf_bytes": 0, "rcvbuf_bytes": 0}),   # kernel defaults
        "gc": ({"freeze_after_start": True, "disable_automatic": True, "thresholds": None,
                "collect_interval_s": 1.0} if "gc" in on
               else {"freeze_after_start": False, "disable_automatic": False, "thresholds": None,
                     "collect_interval_s": 0}),
        "busy_poll": "busy_poll" in on,
        "publisher_flush": "read" if "flush_read" in on else "frame",
    }


def variants(names=None):
    """[(variant name, keys on)]: baseline, each key alone, all_on (or the ``names`` asked)."""
    table = [("baseline", ())] + [(k, (k,)) for k in PHASE1_KEYS] + [("all_on", PHASE1_KEYS)]
    if names is None:
        return table
    by_name = dict(table + [(k, (k,)) for k in EXTRA_KEYS])
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError("unknown variant(s) %s (choose from %s)"
                         % (", ".join(unknown), ", ".join(by_name)))
    return [(n, by_name[n]) for n in names]


def daemon_config(ws_url, rest_url, target_port, symbols, settings):
    cfg = {
        "feeds": [{"venue": "binance", "ws_url": ws_url, "rest_url": rest_url,
                   "symbols": list(symbols), "channels": ["depth"], "snapshot_limit": 1000}],
        "publisher": {"target": "127.0.0.1:%d" % target_port, "channel": 1, "depth": 20},
        "stats_interval_s": 1,
        "watchdog": False,
    }
    settings = dict(settings)
    cfg["publisher"]["flush"] = settings.pop("publisher_flush", "frame")
    cfg.update(settings)
    return cfg


# -- processes -------------------------------------------------------------------------------------

class Child(object):
    """A child process with a line-oriented stdout read with timeouts."""

    def __init__(self, argv, log_path, stdin=False, env=None):
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, cwd=ROOT,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     env=env or child_env(), bufsize=0)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.proc.stdout, selectors.EVENT_READ)
        self.pending = b""      # bytes read from stdout but not yet returned as lines

    @property
    def pid(self):
        return self.proc.pid

    def readline(self, timeout_s):
        """The next stdout line (str), or None after ``timeout_s`` or at EOF.

        Reads the pipe with os.read into our own buffer: a buffered file object would pull
        several lines at once and leave them where select() cannot see them."""
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.selector.select(remaining):
                return None
            data = os.read(self.proc.stdout.fileno(), 65536)
            if not data:
                return None
            self.pending += data
        line, self.pending = self.pending.split(b"\n", 1)
        return line.decode("utf-8", "replace") + "\n"

    def send(self, line):
        self.proc.stdin.write((line + "\n").encode("ascii"))
        self.proc.stdin.flush()

    def log_tail(self, chars=1500):
        self.log.flush()
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()[-chars:]
        except OSError as exc:
            return "(no log: %s)" % exc

    def stop(self, timeout_s=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("pid %d ignored SIGTERM for %.0f s: killing it", self.pid, timeout_s)
                self.proc.kill()
                self.proc.wait()
        self.selector.close()
        for stream in (self.proc.stdout, self.proc.stdin):
            if stream is not None:
                stream.close()
        self.log.close()
        return self.proc.returncode


class RunError(RuntimeError):
    """One end-to-end run could not measure (the message says which process and why)."""


def _sim_status(rest_url):
    host, port = rest_url.split("://", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        conn.request("GET", "/_sim/status")
        return json.loads(conn.getresponse().read().decode("utf-8"))
    finally:
        conn.close()


def _cpu_all(procs):
    return {name: cpu_times(child.pid) for name, child in procs.items()}


# -- the journal -----------------------------------------------------------------------------------

_DEPTH_PREFIX = '{"kind":"depth","symbol":"'


def journal_send_ns(path):
    """{(symbol, u): send_ns} of every depth event in a simulator journal.

    Reads the writer's fixed layout with str.find (the journal of a 10 s run holds ~10**5
    lines); a depth line in any other layout is decoded with json instead."""
    index = {}
    with open(path, encoding="ascii") as f:
        for line in f:
            if not line.startswith(_DEPTH_PREFIX):
                if line.startswith('{"kind":"depth"'):
                    rec = json.loads(line)
                    index[(rec["symbol"], rec["u"])] = rec["send_ns"]
                continue
            end = line.find('"', 26)
            u_at = line.find(',"u":', end)
            u_end = line.find(",", u_at + 5)
            ns_at = line.rfind('"send_ns":')
            ns_end = line.find(",", ns_at)
            try:
                index[(line[26:end], int(line[u_at + 5:u_end]))] = int(line[ns_at + 10:ns_end])
            except ValueError:
                rec = json.loads(line)
                index[(rec["symbol"], rec["u"])] = rec["send_ns"]
    return index


def wire_to_wire(receipts_path, symbols_by_id, journal_path):
    """LatencyHistogram of receiver recv_ns - simulator send_ns, matched by symbol + update id;
    returns (histogram, unmatched count)."""
    receipts = array("q")
    with open(receipts_path, "rb") as f:
        receipts.frombytes(f.read())
    sent = journal_send_ns(journal_path)
    hist = LatencyHistogram()
    unmatched = 0
    for i in range(0, len(receipts), 3):
        symbol = symbols_by_id.get(str(receipts[i]))
        send_ns = sent.get((symbol, receipts[i + 1]))
        if send_ns is None:
            unmatched += 1
            continue
        hist.record(receipts[i + 2] - send_ns)
    return hist, unmatched


# -- one run ---------------------------------------------------------------------------------------

def _wait_live(receiver, daemon, want, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if daemon.proc.poll() is not None:
            raise RunError("daemon exited with %s before going live: %s"
                           % (daemon.proc.returncode, daemon.log_tail()))
        line = receiver.readline(0.5)
        if line and line.startswith("LIVE ") and int(line.split()[1]) >= want:
            return
    raise RunError("not every instrument went live within %.0f s; daemon log: %s"
                   % (timeout_s, daemon.log_tail()))


def _read_result(receiver, timeout_s):
    """The receiver's JSON result line; "LIVE n" lines (a resync inside the window) are skipped
    (the resync itself is counted by the receiver)."""
    deadline = time.monotonic() + timeout_s
    while True:
        line = receiver.readline(max(0.0, deadline - time.monotonic()))
        if not line:
            raise RunError("receiver gave no result: %s" % receiver.log_tail())
        if line.startswith("{"):
            return json.loads(line)


def run_once(exe, helper, on_keys, mode, rate, seconds, warmup_s, symbols=SYMBOLS,
             workdir=None, keep=False, profile_path=None):
    """One measured run; returns a flat dict of figures (see module docstring).

    ``profile_path``: run the daemon under cProfile and write its stats there (the figures of
    such a run are distorted by the profiler; it is for finding the next bottleneck only)."""
    tmp = tempfile.mkdtemp(prefix="hftfeed-bench-", dir=workdir)
    record = mode == "fixed"
    journal = os.path.join(tmp, "journal.jsonl")
    receipts = os.path.join(tmp, "receipts.bin")
    core = allowed_cpus()[-1]
    procs = {}
    try:
        receiver = procs["receiver"] = Child(
            [helper, "-m", "hftfeed.tools.bench.receiver", "--out", receipts],
            os.path.join(tmp, "receiver.log"), stdin=True)
        line = receiver.readline(20.0)
        if not line or not line.startswith("READY port="):
            raise RunError("receiver did not start: %r %s" % (line, receiver.log_tail()))
        port = int(line.split("=", 1)[1])
        sim_argv = [helper, ENTRY, "sim", "--host", "127.0.0.1", "--port", "0", "--symbols",
                    ",".join(symbols), "--rate", str(rate), "--seed", str(SIM_SEED),
                    "--log-level", "warn"]
        if record:
            sim_argv += ["--record", journal]
        sim = procs["sim"] = Child(sim_argv, os.path.join(tmp, "sim.log"))
        line = sim.readline(20.0)
        if not line or not line.startswith("SIM READY"):
            raise RunError("simulator did not start: %r %s" % (line, sim.log_tail()))
        urls = dict(p.split("=", 1) for p in line.split()[2:])
        settings = phase1_settings(on_keys, core)
        cfg_path = os.path.join(tmp, "daemon.json")
        with open(cfg_path, "w") as f:
            json.dump(daemon_config(urls["ws"], urls["rest"], port, symbols, settings), f)
        env = child_env()
        env["HFTFEED_LOG"] = "info"
        started = time.monotonic()
        prefix = [exe, "-m", "cProfile", "-o", profile_path] if profile_path else [exe]
        daemon = procs["daemon"] = Child(prefix + [ENTRY, "run", "--config", cfg_path],
                                         os.path.join(tmp, "daemon.log"), env=env)
        _wait_live(receiver, daemon, len(symbols), LIVE_TIMEOUT_S)
        startup_s = time.monotonic() - started
        time.sleep(warmup_s)
        status0 = _sim_status(urls["rest"])
        cpu0 = _cpu_all(procs)
        t0 = time.monotonic()
        receiver.send("start")
        time.sleep(seconds)
        receiver.send("stop")
        t1 = time.monotonic()
        cpu1 = _cpu_all(procs)
        status1 = _sim_status(urls["rest"])
        peak_rss_kb = status_kb(daemon.pid, "VmHWM")
        locked_kb = status_kb(daemon.pid, "VmLck")
        got = _read_result(receiver, 30.0)
        if daemon.proc.poll() is not None:
            raise RunError("daemon died during the run: %s" % daemon.log_tail())
        daemon_code = daemon.stop()
        procs.pop("daemon")
        sim.stop()
        procs.pop("sim")
        window_s = t1 - t0
        result = {
            "mode": mode, "offered_rate_asked": rate, "window_s": round(window_s, 3),
            "offered_msgs_per_s": (sum(status1["messages_generated"].values())
                                   - sum(status0["messages_generated"].values())) / window_s,
            "delivered_msgs_per_s": got["books"] / got["window_s"] if got["window_s"] else None,
            "lost_messages": got["lost_messages"], "gaps": got["gaps"],
            "kernel_drops": got["kernel_drops"], "resyncs": got["resync_status_msgs"],
            "snapshot_books": got["snapshot_books"], "decode_errors": got["decode_errors"],
            "sim_behind_msgs": status1["behind_msgs"] - status0["behind_msgs"],
            "sim_disconnects": status1.get("disconnects"),
            "daemon_exit_code": daemon_code,
            "daemon_peak_rss_kb": peak_rss_kb, "daemon_locked_kb": locked_kb,
            "warmup": {"startup_s": round(startup_s, 2), "warmup_s": warmup_s,
                       "books_discarded": got["before_window"]["books"],
                       "packets_discarded": got["before_window"]["packets"]},
            "latency_daemon": got["latency_daemon"],
        }
        for name in ("daemon", "sim", "receiver"):
            if cpu0.get(name) is not None and cpu1.get(name) is not None:
                user_s = cpu1[name][0] - cpu0[name][0]
                system_s = cpu1[name][1] - cpu0[name][1]
                result[name + "_cpu_pct"] = 100.0 * (user_s + system_s) / window_s
                result[name + "_cpu_system_pct"] = 100.0 * system_s / window_s
        if record:
            hist, unmatched = wire_to_wire(receipts, got["symbols"], journal)
            result["latency_wire_to_wire"] = hist.snapshot(PERCENTILES)
            result["wire_to_wire_unmatched"] = unmatched
        return result
    finally:
        for child in procs.values():
            child.stop()
        if keep:
            log.warning("kept %s", tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


# -- repetitions and variants ----------------------------------------------------------------------

SCALARS = (("offered_msgs_per_s", "msgs/s"), ("delivered_msgs_per_s", "msgs/s"),
           ("lost_messages", "msgs"), ("kernel_drops", "datagrams"), ("resyncs", "count"),
           ("sim_behind_msgs", "msgs"), ("daemon_cpu_pct", "%"), ("daemon_cpu_system_pct", "%"),
           ("sim_cpu_pct", "%"),
           ("receiver_cpu_pct", "%"), ("daemon_peak_rss_kb", "kB"), ("daemon_locked_kb", "kB"))


def aggregate(runs):
    """Median and min-max over the repetitions of one variant and mode."""
    ok = [r for r in runs if "error" not in r]
    out = {"reps": len(runs), "failed": len(runs) - len(ok),
           "errors": [r["error"] for r in runs if "error" in r]}
    for key, unit in SCALARS:
        out[key] = summarize([r.get(key) for r in ok], unit)
    for lat in ("latency_daemon", "latency_wire_to_wire"):
        if any(lat in r for r in ok):
            out[lat] = {k: summarize([r[lat][k] if lat in r else None for r in ok], "ns")
                        for k in LATENCY_KEYS + ("count",)}
    out["warmup"] = [r.get("warmup") for r in ok]
    return out


def vs_floor(aggregated, floor):
    """Each latency percentile's median as a ratio to the floor's same percentile: one hop for
    the daemon-internal latency, two hops for wire to wire; both floor modes."""
    out = {}
    for lat, hops in (("latency_daemon", 1), ("latency_wire_to_wire", 2)):
        if lat not in aggregated or not floor:
            continue
        for mode in ("blocking", "busy_poll"):
            f = floor.get(mode) or {}
            if f.get("timed_out"):      # a floor that could not finish is no floor
                f = {}
            out["%s_vs_%s" % (lat, mode)] = {
                k: _round2(ratio(aggregated[lat][k]["median"], hops * f[k] if f.get(k) else None))
                for k in LATENCY_KEYS}
    return out


def _round2(x):
    return None if x is None else round(x, 2)


def run_variants(exe, helper, variant_names, modes, reps, rates, seconds, warmup_s,
                 progress=None, keep=False):
    """Interleaved repetitions: rep 1 runs every variant (in a rotated order), then rep 2, ...
    so that a slow period of the shared machine hits every variant alike, not one of them."""
    table = variants(variant_names)
    runs = {(name, mode): [] for name, _ in table for mode in modes}
    order_log = []
    for rep in range(reps):
        shift = rep % len(table)
        for name, keys in table[shift:] + table[:shift]:
            for mode in modes:
                order_log.append("%s/%s" % (name, mode))
                try:
                    r = run_once(exe, helper, keys, mode, rates[mode], seconds, warmup_s,
                                 keep=keep)
                except (RunError, OSError, ValueError, KeyError,
                        subprocess.SubprocessError) as exc:
                    log.warning("%s %s rep %d failed: %s", name, mode, rep + 1, exc)
                    r = {"error": "%s: %s" % (type(exc).__name__, exc)}
                runs[(name, mode)].append(r)
                if progress:
                    progress(rep, name, mode, r)
    result = {"variants": {}, "order": order_log, "reps": reps, "modes": list(modes),
              "rates": dict(rates), "seconds": seconds, "warmup_s": warmup_s,
              "phase1_keys": list(PHASE1_KEYS)}
    for name, keys in table:
        entry = {"on": list(keys), "settings": phase1_settings(keys, allowed_cpus()[-1])}
        for mode in modes:
            entry[mode] = aggregate(runs[(name, mode)])
            entry[mode]["runs"] = runs[(name, mode)]
        result["variants"][name] = entry
    return result
