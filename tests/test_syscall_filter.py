"""The unit's ``SystemCallFilter=@system-service`` allows every system call the daemon makes
under PyPy: a PyPy daemon (JIT on, mlockall, pinned, SCHED_FIFO attempted, metrics scraped) runs
under ``strace -f -c`` and each traced call is checked against the set that
``systemd-analyze syscall-filter`` expands @system-service to.

What this does not prove: a seccomp filter installed by a booted systemd (none runs in CI); the
expansion used is the installed systemd's own, so it is the list that systemd would enforce."""

import json
import os
import shutil
import signal
import subprocess
import urllib.request

import pytest

from e2e import ENTRY, Collector, SimProcess, daemon_config
from test_metrics import free_port

PYPY = shutil.which("pypy3")
NEEDED = [shutil.which("strace"), shutil.which("systemd-analyze"), PYPY]


def expand(group, depth=0):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], stdout=subprocess.PIPE,
                         universal_newlines=True, timeout=60).stdout
    calls = set()
    for line in out.splitlines()[1:]:
        item = line.strip()
        if not item or item.startswith("#"):
            continue
        if item.startswith("@"):
            assert depth < 5
            calls |= expand(item, depth + 1)
        else:
            calls.add(item)
    return calls


def traced_calls(summary):
    """strace -c output -> syscall names (the last column of each table row)."""
    names = set()
    for line in summary.splitlines():
        cols = line.split()
        if not cols or line.startswith(("%", "-")) or cols[-1] == "total":
            continue
        names.add(cols[-1])
    return names


def test_strace_summary_is_parsed():
    text = ("% time     seconds  usecs/call     calls    errors syscall\n"
            "------ ----------- ----------- --------- --------- ----------------\n"
            " 40.00    0.000400          10        40           mprotect\n"
            "  1.00    0.000010          10         1         1 sched_setscheduler\n"
            "------ ----------- ----------- --------- --------- ----------------\n"
            "100.00    0.001000                    41         1 total\n")
    assert traced_calls(text) == {"mprotect", "sched_setscheduler"}


@pytest.mark.skipif(not all(NEEDED), reason="needs strace, systemd-analyze and pypy3")
def test_every_call_of_a_pypy_daemon_is_in_system_service(tmp_path):
    allowed = expand("@system-service")
    assert {"mlockall", "mprotect", "mmap", "sched_setaffinity", "sched_setscheduler"} <= allowed
    sim = SimProcess(tmp_path, ["BTCUSDT", "ETHUSDT"], rate=200)
    col = Collector()
    port = free_port()
    cfg = daemon_config(sim, col.target, ["BTCUSDT", "ETHUSDT"], memory_lock=True,
                        cpu_affinity={"enabled": True, "processor_core": 0},
                        scheduler={"policy": "fifo", "priority": 10},
                        metrics={"listen": "127.0.0.1:%d" % port})
    config_path = tmp_path / "daemon.json"
    config_path.write_text(json.dumps(cfg))
    summary = tmp_path / "strace.txt"
    log = open(str(tmp_path / "daemon.log"), "w")
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-c", "-o", str(summary), PYPY, ENTRY,
                               "run", "--config", str(config_path)], stdout=log, stderr=log)
    try:
        col.collect(6.0)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
            assert b"hftfeed_instrument_live" in r.read()
        with open("/proc/%d/task/%d/children" % (tracer.pid, tracer.pid)) as f:
            daemon_pid = int(f.read().split()[0])
        os.kill(daemon_pid, signal.SIGTERM)           # the daemon, not strace
        tracer.wait(30)
    finally:
        if tracer.poll() is None:
            tracer.kill()
            tracer.wait()
        log.close()
        sim.stop()
        col.close()
    text = open(str(tmp_path / "daemon.log")).read()
    assert "memory_lock:" in text and "stopped after" in text, text[-2000:]
    used = traced_calls(summary.read_text())
    assert len(used) > 20, summary.read_text()
    assert sorted(used - allowed) == []
