"""Shared pieces of the benchmarks: summaries of repetitions, machine facts, /proc readers and
running a benchmark child under another interpreter.

Why medians with min-max: the development machine is a shared 2-vCPU VM where other jobs come
and go; a mean would be dragged by one disturbed repetition, a minimum would hide how noisy the
machine is. The median says what is typical, the range how far to trust it.
"""

import json
import logging
import os
import platform
import shutil
import subprocess
import sys
import time

log = logging.getLogger("hftfeed.bench")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ENTRY = os.path.join(ROOT, "hftfeed.py")
BENCH_ENTRY = os.path.join(ROOT, "bench.py")
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def median(values):
    """Median of a non-empty list (mean of the two middle values for an even count)."""
    ordered = sorted(values)
    n = len(ordered)
    if n == 0:
        raise ValueError("median of no values")
    mid = n // 2
    if n % 2:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def summarize(values, unit):
    """{"median", "min", "max", "n", "unit", "values"} of the measured repetitions; None values
    (a repetition that could not measure this figure) are left out and counted in "missing"."""
    kept = [v for v in values if v is not None]
    result = {"unit": unit, "n": len(kept), "missing": len(values) - len(kept),
              "values": [_round(v) for v in kept]}
    if kept:
        result["median"] = _round(median(kept))
        result["min"] = _round(min(kept))
        result["max"] = _round(max(kept))
    else:
        result["median"] = result["min"] = result["max"] = None
    return result


def _round(value):
    if isinstance(value, float):
        return round(value, 3) if abs(value) < 1000 else round(value, 1)
    return value


def ratio(numerator, denominator):
    """numerator / denominator, or None when either is missing or the denominator is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return float(numerator) / float(denominator)


def calibrate_rounds(run_rounds, target_s, clock=time.perf_counter):
    """How many rounds of ``run_rounds(rounds)`` take about ``target_s`` seconds here.

    Sizing each repetition by time rather than by a fixed amount of work keeps a benchmark as
    long on CPython as on PyPy (10x apart on some of these). The calibration runs count as
    warm-up too; their time is returned so the JSON can say what it cost."""
    rounds = 1
    spent = 0.0
    while True:
        start = clock()
        run_rounds(rounds)
        elapsed = clock() - start
        spent += elapsed
        if elapsed >= target_s / 4.0 or rounds >= 1 << 30:
            return max(1, int(rounds * target_s / max(elapsed, 1e-9))), spent
        rounds *= 4


def timed_reps(run_rounds, units_per_round, reps, warmup_reps, target_s,
               clock=time.perf_counter):
    """Calibrate, then run ``warmup_reps + reps`` repetitions of about ``target_s`` each.

    Returns ``(rates, warmup)``: the measured rates in units per second, and a dict describing
    what was discarded (calibration time, the warm-up repetitions' rates). The warm-up
    repetitions are thrown away because PyPy's JIT compiles during them (PERF_NOTES: the first
    batches run at 10 % of the steady speed)."""
    rounds, calibration_s = calibrate_rounds(run_rounds, target_s, clock)
    rates = []
    for _ in range(warmup_reps + reps):
        start = clock()
        run_rounds(rounds)
        elapsed = clock() - start
        rates.append(rounds * units_per_round / elapsed if elapsed > 0 else None)
    warmup = {"calibration_s": round(calibration_s, 3), "reps_discarded": warmup_reps,
              "discarded_rates": [round(r, 1) for r in rates[:warmup_reps] if r is not None],
              "units_per_rep": rounds * units_per_round}
    return rates[warmup_reps:], warmup


# -- the machine --------------------------------------------------------------------------------

def _first_line_with(path, prefix):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
    except OSError as exc:
        log.debug("cannot read %s: %s", path, exc)
    return None


def cpu_model():
    return _first_line_with("/proc/cpuinfo", "model name") or platform.processor() or "unknown"


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError as exc:
        log.debug("no load average: %s", exc)
        return None


def allowed_cpus():
    """CPUs this process may run on (cgroup / taskset), via hw so it also works on PyPy."""
    try:
        from hftfeed.runtime import hw
        return sorted(hw.get_cpu_affinity(0))
    except (OSError, AttributeError, ImportError) as exc:
        log.debug("affinity unknown: %s", exc)
        return list(range(os.cpu_count() or 1))


def git_commit():
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5)
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("git unavailable: %s", exc)
        return None
    commit = out.stdout.decode().strip() or None
    if commit and dirty.stdout.strip():
        commit += "+dirty"
    return commit


def machine_facts():
    """What the JSON records about the machine (the issue: interpreter, CPU model, cores, kernel).
    The interpreters themselves are described per run by :func:`interpreter_facts`."""
    mem_kb = _first_line_with("/proc/meminfo", "MemTotal")
    return {
        "cpu_model": cpu_model(),
        "cores_online": os.cpu_count(),
        "cores_allowed": allowed_cpus(),
        "kernel": platform.release(),
        "os": platform.system(),
        "machine": platform.machine(),
        "mem_total": mem_kb,
        "load_average_start": load_average(),
        "git_commit": git_commit(),
        "bench_python": interpreter_facts(),
    }


def interpreter_facts():
    """The running interpreter: implementation, versions, executable."""
    facts = {
        "implementation": platform.python_implementation(),
        "python_version": platform.python_version(),
        "executable": sys.executable,
    }
    pypy = getattr(sys, "pypy_version_info", None)
    if pypy is not None:
        facts["pypy_version"] = "%d.%d.%d" % (pypy.major, pypy.minor, pypy.micro)
    facts["version_text"] = sys.version.replace("\n", " ")
    return facts


def resolve_interpreter(name):
    """An interpreter given as a path or a name on PATH -> absolute path (None if not found)."""
    if os.path.sep in name:
        return name if os.access(name, os.X_OK) else None
    return shutil.which(name)


def default_helper_python():
    """Interpreter for the simulator and the receiver: PyPy when installed (it offers about
    twice CPython's message rate), else the one running bench.py."""
    return shutil.which("pypy3") or sys.executable


# -- /proc readers --------------------------------------------------------------------------------

def cpu_times(pid):
    """(user, system) CPU seconds of process ``pid`` (all its threads) from /proc/PID/stat
    fields 14-15 (utime, stime), or None when the process is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError as exc:
        log.debug("cannot read /proc/%d/stat: %s", pid, exc)
        return None
    # the command name (field 2) may contain spaces: split after its closing parenthesis
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[11]) / float(CLK_TCK), int(fields[12]) / float(CLK_TCK)


def status_kb(pid, field):
    """A ``kB`` field of /proc/PID/status (VmHWM = peak RSS, VmRSS, VmLck) as an int, or None."""
    value = _first_line_with("/proc/%d/status" % pid, field + ":")
    if value is None:
        return None
    try:
        return int(value.split()[0])
    except (ValueError, IndexError):
        return None


# -- children -------------------------------------------------------------------------------------

def child_env():
    """Environment for benchmark children: the checkout importable, unbuffered output."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_child_json(argv, timeout_s):
    """Run a child that prints one JSON object as its last stdout line; return it as a dict.

    Raises RuntimeError with the child's stderr tail when it fails (a benchmark that cannot run
    must say why, not print a zero)."""
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                          env=child_env(), timeout=timeout_s)
    out = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    if proc.returncode != 0 or not out:
        raise RuntimeError("%s exited with %s: %s"
                           % (" ".join(argv[:4]), proc.returncode,
                              proc.stderr.decode("utf-8", "replace")[-2000:]))
    return json.loads(out[-1])
