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

Traffic shapes (``--shape``): ``steady`` (depth messages round robin at the offered rate, depth
channel only) and ``burst`` (the simulator's Binance ``@depth@100ms`` timing: every symbol's diff
at the same boundary, ``boundaries_per_s`` times a second, trades and book tickers in between;
the daemon subscribes all three channels). The shape applies to the fixed-rate runs; max-rate
runs measure throughput and stay steady.

The relay floor (variant ``floor``, :mod:`hftfeed.tools.bench.relay`): the cheapest possible
relay, run under the same interpreter against the same simulator and receiver in place of the
daemon, interleaved with the daemon variants (A/B/A/B), so every latency is also reported as a
ratio to the floor measured in the same repetition (``vs_relay``: the median of the per-rep
ratios).

With ``trace_every`` > 0 the daemon runs with ``trace.sample_every`` set and its ``trace`` log
lines from the window are merged into ``trace`` (stage breakdown, runtime/trace.py); its stats
lines give the longest GC pause of the window (``daemon_gc_max_pause_ns``).

Phase 1 variants (:data:`PHASE1_KEYS`): the baseline has every setting off, then each one on
alone, then all on. "Off" for socket buffers is 0 in the config: no setsockopt, the kernel's
default UDP sizes and TCP autotuning.
"""

import json
import logging
import os
import re
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
from hftfeed.runtime.trace import merge_exports, parse_export_lines

log = logging.getLogger("hftfeed.bench.e2e")

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT",
           "AVAXUSDT", "DOTUSDT", "LINKUSDT")
SHAPES = ("steady", "burst")
FLOOR = "floor"         # the variant name of the relay floor (tools/bench/relay.py)
PERCENTILES = (50, 90, 99, 99.9)
LATENCY_KEYS = ("p50_ns", "p90_ns", "p99_ns", "p99.9_ns", "max_ns")
LIVE_TIMEOUT_S = 60.0
SIM_SEED = 4242

PHASE1_KEYS = ("memory_lock", "prefault", "cpu_affinity", "scheduler", "socket_buffers", "gc",
               "busy_poll")
# Not Phase 1 settings, so only run when asked by name (--variants baseline,flush_frame):
# "flush_frame" = publisher.flush "frame" (one datagram per venue frame instead of the default,
# one per socket read); "flush_read" is kept as a name for the default, so older commands run.
# "jit_pypy_defaults" = the daemon's ``jit`` section set to PyPy's own thresholds (the daemon's
# defaults are lower: compiled sooner after going live).
EXTRA_KEYS = ("flush_frame", "flush_read", "jit_pypy_defaults")
PYPY_JIT_DEFAULTS = {"threshold": 1039, "function_threshold": 1619, "trace_eagerness": 200}
# Daemon environment variants (baseline settings, extra environment), also only by name: PyPy
# sizes its nursery from the "cache size" /proc/cpuinfo reports, which on some VMs is the whole
# L3 (480 MB here: a 240 MB nursery that never stays in any cache); glibc's heap trimming is
# what makes the heap grow and shrink (brk) under bursts of allocation.
ENV_VARIANTS = {
    "nursery_1m": {"PYPY_GC_NURSERY": "1M"},
    "nursery_4m": {"PYPY_GC_NURSERY": "4M"},
    "nursery_16m": {"PYPY_GC_NURSERY": "16M"},
    "malloc_pad": {"MALLOC_TOP_PAD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(256 << 20)},
}
# Interpreter options of the daemon (PyPy only): the JIT gives up on traces longer than
# trace_limit (6000 operations by default) and runs those paths in the interpreter.
INTERPRETER_VARIANTS = {
    "jit_long_traces": ["--jit", "trace_limit=15000"],   # PyPy 7.3.11 refuses above ~16000
}


def symbols_for(count):
    """``count`` symbols: the ten real names first, then generic ones (SYM11USDT, ...)."""
    names = list(SYMBOLS[:count])
    names += ["SYM%02dUSDT" % i for i in range(len(names) + 1, count + 1)]
    return names


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
        "publisher_flush": "frame" if "flush_frame" in on else "read",
        "jit": dict(PYPY_JIT_DEFAULTS) if "jit_pypy_defaults" in on else {},
    }


def variants(names=None):
    """[(variant name, keys on)]: baseline, each key alone, all_on (or the ``names`` asked).

    A name may join several with "+" (``nursery_4m+gc``): their settings, environments and
    interpreter options together."""
    table = [("baseline", ())] + [(k, (k,)) for k in PHASE1_KEYS] + [("all_on", PHASE1_KEYS)]
    if names is None:
        return table
    by_name = dict(table + [(k, (k,)) for k in EXTRA_KEYS] + [(FLOOR, ())]
                   + [(k, ()) for k in ENV_VARIANTS] + [(k, ()) for k in INTERPRETER_VARIANTS])
    unknown = [p for n in names for p in n.split("+") if p not in by_name]
    if unknown or any(FLOOR in n.split("+") and n != FLOOR for n in names):
        raise ValueError("unknown variant(s) %s (choose from %s, joined with +)"
                         % (", ".join(unknown) or FLOOR + " joined", ", ".join(by_name)))
    out = []
    for n in names:
        keys = []
        for part in n.split("+"):
            keys += [k for k in by_name[part] if k not in keys]
        out.append((n, tuple(keys)))
    return out


def variant_env(name):
    """The daemon environment of variant ``name`` (its "+"-joined parts merged)."""
    env = {}
    for part in name.split("+"):
        env.update(ENV_VARIANTS.get(part, {}))
    return env


def variant_interpreter_args(name):
    return [a for part in name.split("+") for a in INTERPRETER_VARIANTS.get(part, ())]


def daemon_config(ws_url, rest_url, target_port, symbols, settings, channels=("depth",),
                  trace_every=0):
    cfg = {
        "feeds": [{"venue": "binance", "ws_url": ws_url, "rest_url": rest_url,
                   "symbols": list(symbols), "channels": list(channels),
                   "snapshot_limit": 1000}],
        "publisher": {"target": "127.0.0.1:%d" % target_port, "channel": 1, "depth": 20},
        "stats_interval_s": 1,
        "watchdog": False,
        "trace": {"sample_every": trace_every},
    }
    settings = dict(settings)
    cfg["publisher"]["flush"] = settings.pop("publisher_flush", "read")
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
             workdir=None, keep=False, profile_path=None, shape="steady", boundaries_per_s=10.0,
             relay=False, trace_every=0, daemon_env=None, interpreter_args=()):
    """One measured run; returns a flat dict of figures (see module docstring).

    ``relay``: run the relay floor instead of the daemon (``on_keys`` is then ignored).
    ``daemon_env``: extra environment of the daemon (or the relay) only; ``interpreter_args``:
    options for the daemon's interpreter (``--jit ...`` for PyPy).
    ``profile_path``: run the daemon under cProfile and write its stats there (the figures of
    such a run are distorted by the profiler; it is for finding the next bottleneck only)."""
    tmp = tempfile.mkdtemp(prefix="hftfeed-bench-", dir=workdir)
    record = mode == "fixed"
    burst = shape == "burst" and mode == "fixed"
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
                    ",".join(symbols), "--seed", str(SIM_SEED), "--log-level", "warn"]
        sim_argv += (["--shape", "burst", "--boundaries-per-s", str(boundaries_per_s)] if burst
                     else ["--rate", str(rate)])
        if record:
            sim_argv += ["--record", journal]
        sim = procs["sim"] = Child(sim_argv, os.path.join(tmp, "sim.log"))
        line = sim.readline(20.0)
        if not line or not line.startswith("SIM READY"):
            raise RunError("simulator did not start: %r %s" % (line, sim.log_tail()))
        urls = dict(p.split("=", 1) for p in line.split()[2:])
        env = child_env()
        env["HFTFEED_LOG"] = "info"
        env.update(daemon_env or {})
        started = time.monotonic()
        if relay:
            argv = [exe, "-m", "hftfeed.tools.bench.relay", "--ws", urls["ws"], "--symbols",
                    ",".join(symbols), "--target", "127.0.0.1:%d" % port]
        else:
            settings = phase1_settings(on_keys, core)
            cfg_path = os.path.join(tmp, "daemon.json")
            channels = ("depth", "trade", "bookTicker") if burst else ("depth",)
            with open(cfg_path, "w") as f:
                json.dump(daemon_config(urls["ws"], urls["rest"], port, symbols, settings,
                                        channels, trace_every), f)
            prefix = [exe] + list(interpreter_args)
            if profile_path:
                prefix += ["-m", "cProfile", "-o", profile_path]
            argv = prefix + [ENTRY, "run", "--config", cfg_path]
        daemon = procs["daemon"] = Child(argv, os.path.join(tmp, "daemon.log"), env=env)
        _wait_live(receiver, daemon, len(symbols), LIVE_TIMEOUT_S)
        startup_s = time.monotonic() - started
        time.sleep(warmup_s)
        status0 = _sim_status(urls["rest"])
        cpu0 = _cpu_all(procs)
        t0 = time.monotonic()
        window_start_unix_ns = time.time_ns()
        receiver.send("start")
        time.sleep(seconds)
        receiver.send("stop")
        window_end_unix_ns = time.time_ns()
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
            "shape": "burst" if burst else "steady", "relay_floor": relay,
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
        if burst:
            result["boundaries_per_s"] = boundaries_per_s
        for name in ("daemon", "sim", "receiver"):
            if cpu0.get(name) is not None and cpu1.get(name) is not None:
                user_s = cpu1[name][0] - cpu0[name][0]
                system_s = cpu1[name][1] - cpu0[name][1]
                result[name + "_cpu_pct"] = 100.0 * (user_s + system_s) / window_s
                result[name + "_cpu_system_pct"] = 100.0 * system_s / window_s
                if name == "daemon" and got.get("messages"):
                    # every published message stands for one inbound frame (plus a few S/I)
                    result["daemon_cpu_us_per_msg"] = 1e6 * (user_s + system_s) / got["messages"]
        if not relay:
            result.update(daemon_log_figures(daemon.log_path, window_start_unix_ns,
                                             window_end_unix_ns))
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


_LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) ")
_GC_MAX = re.compile(r"\| gc \d+ pauses \S+ \(max (\S+)\)")
_JIT = re.compile(r"\| jit (\d+) loops (\d+) bridges (\d+) aborts")
_NS_UNITS = (("ns", 1), ("us", 1000), ("ms", 1000000), ("s", 1000000000))


def parse_ns(text):
    """``runtime.stats.format_ns`` output ("312ns", "4.8us", "1.20ms", "2.50s") -> int ns."""
    for unit, scale in sorted(_NS_UNITS, key=lambda u: -len(u[0])):
        if text.endswith(unit):
            return int(round(float(text[:-len(unit)]) * scale))
    raise ValueError("not a duration: %r" % (text,))


_TRACE_LINE = re.compile(r" trace ([a-z_]+) (\{.*\})$")


def daemon_log_figures(log_path, start_unix_ns, end_unix_ns):
    """From the daemon's log: the trace lines written during the window merged into one
    breakdown (``trace``), the longest GC pause of the window's stats lines and the JIT
    compilations they report (PyPy: a non-zero count means the window still saw warm-up). A
    stats line covers the second before it, so lines from 1 s after the window opened to 1 s
    after it closed are taken."""
    pairs = []
    gc_max_ns = None
    jit_compiled = None
    try:
        with open(log_path, errors="replace") as f:
            for line in f:
                found = _TRACE_LINE.search(line)
                if found:
                    pairs.append((found.group(1), found.group(2)))
                    continue
                found = _GC_MAX.search(line)
                jit = _JIT.search(line)
                stamp = _LOG_TIME.match(line)
                if (found or jit) and stamp:
                    when = time.mktime(time.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S"))
                    when_ns = int(when * 1e9) + int(stamp.group(2)) * 1000000
                    if start_unix_ns + 1e9 <= when_ns <= end_unix_ns + 1e9:
                        if found:
                            pause_ns = parse_ns(found.group(1))
                            gc_max_ns = pause_ns if gc_max_ns is None else max(gc_max_ns,
                                                                               pause_ns)
                        if jit:
                            jit_compiled = (jit_compiled or 0) + int(jit.group(1)) \
                                + int(jit.group(2))
    except OSError as exc:
        log.warning("cannot read the daemon log %s: %s", log_path, exc)
    out = {"daemon_gc_max_pause_ns": gc_max_ns, "daemon_jit_compiled": jit_compiled}
    intervals = parse_export_lines(pairs)
    merged = merge_exports([doc for t_ns, doc in intervals
                            if start_unix_ns + 1e9 <= t_ns <= end_unix_ns + 1e9])
    if merged is not None:
        out["trace"] = merged
    return out


# -- repetitions and variants ----------------------------------------------------------------------

SCALARS = (("offered_msgs_per_s", "msgs/s"), ("delivered_msgs_per_s", "msgs/s"),
           ("lost_messages", "msgs"), ("kernel_drops", "datagrams"), ("resyncs", "count"),
           ("sim_behind_msgs", "msgs"), ("daemon_cpu_pct", "%"), ("daemon_cpu_system_pct", "%"),
           ("sim_cpu_pct", "%"),
           ("receiver_cpu_pct", "%"), ("daemon_peak_rss_kb", "kB"), ("daemon_locked_kb", "kB"),
           ("daemon_cpu_us_per_msg", "us"), ("daemon_gc_max_pause_ns", "ns"),
           ("daemon_jit_compiled", "count"))


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
    traced = [r["trace"] for r in ok if r.get("trace")]
    if traced:
        out["trace"] = {"stages": {}}
        for stage in traced[0]["stages"]:
            out["trace"]["stages"][stage] = {
                k: summarize([t["stages"][stage][k] for t in traced if stage in t["stages"]],
                             "ns") for k in ("p50_ns", "p99_ns", "count")}
        for name in ("frames_per_read", "datagrams_per_read"):
            out["trace"][name + "_mean"] = summarize([t[name]["mean"] for t in traced], "count")
        out["trace"]["sendto_p50_ns"] = summarize([t["sendto_ns"]["p50_ns"] for t in traced],
                                                  "ns")
    out["warmup"] = [r.get("warmup") for r in ok]
    return out


def vs_relay(runs, floor_runs):
    """Each latency percentile as a ratio to the relay floor's in the same repetition; the
    median (min-max) of those per-rep ratios. Pairing by rep cancels the machine's slow and
    fast minutes, which a ratio of two medians would not."""
    out = {}
    for lat in ("latency_daemon", "latency_wire_to_wire"):
        table = {}
        for k in LATENCY_KEYS:
            ratios = []
            for run, floor in zip(runs, floor_runs):
                a = run.get(lat, {}).get(k) if "error" not in run else None
                b = floor.get(lat, {}).get(k) if "error" not in floor else None
                r = ratio(a, b)
                ratios.append(None if r is None else round(r, 3))
            table[k] = summarize(ratios, "x")
        if any(v["n"] for v in table.values()):
            out[lat] = table
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
                 progress=None, keep=False, shape="steady", symbols=SYMBOLS,
                 boundaries_per_s=10.0, trace_every=0):
    """Interleaved repetitions: rep 1 runs every variant (in a rotated order), then rep 2, ...
    so that a slow period of the shared machine hits every variant alike, not one of them.
    With the ``floor`` variant among them, each other variant also gets ``vs_relay``."""
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
                                 symbols=symbols, keep=keep, shape=shape,
                                 boundaries_per_s=boundaries_per_s, relay=name == FLOOR,
                                 trace_every=trace_every, daemon_env=variant_env(name),
                                 interpreter_args=variant_interpreter_args(name))
                except (RunError, OSError, ValueError, KeyError,
                        subprocess.SubprocessError) as exc:
                    log.warning("%s %s rep %d failed: %s", name, mode, rep + 1, exc)
                    r = {"error": "%s: %s" % (type(exc).__name__, exc)}
                runs[(name, mode)].append(r)
                if progress:
                    floor_runs = runs.get((FLOOR, mode)) or []
                    floor = floor_runs[rep] if len(floor_runs) > rep and name != FLOOR else None
                    progress(rep, name, mode, r, floor)
    result = {"variants": {}, "order": order_log, "reps": reps, "modes": list(modes),
              "rates": dict(rates), "seconds": seconds, "warmup_s": warmup_s,
              "phase1_keys": list(PHASE1_KEYS), "shape": shape, "symbols": len(symbols),
              "boundaries_per_s": boundaries_per_s if shape == "burst" else None,
              "trace_every": trace_every}
    for name, keys in table:
        entry = {"on": list(keys), "settings": phase1_settings(keys, allowed_cpus()[-1])}
        if name == FLOOR:
            entry = {"on": [], "relay_floor": True}
        else:
            entry["daemon_env"] = variant_env(name)
            entry["interpreter_args"] = variant_interpreter_args(name)
        for mode in modes:
            entry[mode] = aggregate(runs[(name, mode)])
            entry[mode]["runs"] = runs[(name, mode)]
            if name != FLOOR and (FLOOR, mode) in runs:
                entry[mode]["vs_relay"] = vs_relay(runs[(name, mode)], runs[(FLOOR, mode)])
        result["variants"][name] = entry
    return result
