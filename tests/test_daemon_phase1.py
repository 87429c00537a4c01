"""Phase 1 controls on the real daemon (subprocess), verified from /proc, by doctor and by a
stand-in for systemd's notify socket; and the daemon keeps publishing correct books when the OS
refuses a control."""

import ctypes
import json
import os
import resource
import socket
import subprocess
import sys
import time

import pytest

from hftfeed.runtime import hw
from hftfeed.codecs import wire

from e2e import ENTRY, Collector, DaemonProcess, SimProcess, check_books_against_truth, \
    check_sequence, daemon_config
from simtruth import load_journal

IS_ROOT = os.geteuid() == 0
PR_CAPBSET_DROP = 24
SYMBOLS = ["BTCUSDT"]


def live(data):
    return any(m.type == wire.TYPE_STATUS and m.state == wire.STATE_LIVE
               for m in wire.decode_packet(data).messages)


def proc_status(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].strip()
    return None


def capped_memlock_without_cap_ipc_lock():
    """preexec: RLIMIT_MEMLOCK 64 KiB and no CAP_IPC_LOCK (root would bypass the limit)."""
    resource.setrlimit(resource.RLIMIT_MEMLOCK, (65536, 65536))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_CAPBSET_DROP, hw.CAP_IPC_LOCK, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl")


def run_and_check_books(tmp_path, seconds=3.0, env=None, preexec_fn=None, **overrides):
    """Start sim + daemon, return (daemon, packets, log) after checking every book."""
    sim = SimProcess(tmp_path, SYMBOLS, rate=200)
    col = Collector()
    daemon = DaemonProcess(tmp_path, daemon_config(sim, col.target, SYMBOLS, **overrides),
                           env=env, preexec_fn=preexec_fn)
    try:
        assert col.collect(15, until=live), daemon.log_text()[-3000:]
        col.collect(seconds)
        snapshot = {"VmLck": proc_status(daemon.pid, "VmLck"),
                    "threads": os.listdir("/proc/%d/task" % daemon.pid)}
        result = (daemon, snapshot)
    finally:
        code, _ = daemon.stop()
        sim.stop()
        col.close()
    assert code == 0, daemon.log_text()[-3000:]
    packets = col.packets()
    check_sequence(packets)
    ids = {m.instrument: m.symbol for p in packets for m in p.messages
           if m.type == wire.TYPE_INSTRUMENT}
    assert check_books_against_truth(packets, load_journal(sim.journal), ids) > 50
    return result[0], result[1], daemon.log_text()


@pytest.mark.skipif(not IS_ROOT, reason="mlockall of the whole daemon needs root / CAP_IPC_LOCK")
def test_memory_is_locked_and_the_hot_thread_is_pinned(tmp_path):
    core = max(hw.get_cpu_affinity())
    sim = SimProcess(tmp_path, SYMBOLS, rate=200)
    col = Collector()
    daemon = DaemonProcess(tmp_path, daemon_config(sim, col.target, SYMBOLS, memory_lock=True,
                                                   cpu_affinity={"enabled": True,
                                                                 "processor_core": core}))
    try:
        assert col.collect(15, until=live), daemon.log_text()[-3000:]
        vmlck_kb = int(proc_status(daemon.pid, "VmLck").split()[0])
        assert vmlck_kb > 0
        # every thread of the daemon (the event loop runs the hot path) is on the core
        for tid in os.listdir("/proc/%d/task" % daemon.pid):
            with open("/proc/%d/task/%s/status" % (daemon.pid, tid)) as f:
                allowed = [l for l in f if l.startswith("Cpus_allowed_list:")][0]
            assert allowed.split(":")[1].strip() == str(core)
        doctor = subprocess.run([sys.executable, ENTRY, "doctor", "--pid", str(daemon.pid),
                                 "--config", daemon.config_path, "--json"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                universal_newlines=True, timeout=60)
    finally:
        code, _ = daemon.stop()
        sim.stop()
        col.close()
    assert code == 0
    assert doctor.returncode == 0, doctor.stderr
    report = {c["item"]: c for c in json.loads(doctor.stdout)}
    assert report["memory_lock"]["status"] == "PASS"
    assert "VmLck" in report["memory_lock"]["value"]
    threads = [c for item, c in report.items() if item.startswith("thread ")]
    assert threads and all(c["status"] == "PASS" for c in threads), threads
    log = DaemonProcess.log_text(daemon)
    assert "memory locked" in log


def test_memory_lock_off_is_reported_and_books_stay_exact(tmp_path):
    daemon, snap, log = run_and_check_books(tmp_path, memory_lock=False)
    assert snap["VmLck"].startswith("0 ")
    assert "memory_lock is off" in log


@pytest.mark.skipif(not IS_ROOT, reason="dropping CAP_IPC_LOCK from the bounding set needs root")
def test_capped_memlock_rlimit_warns_and_books_stay_exact(tmp_path):
    daemon, snap, log = run_and_check_books(tmp_path, memory_lock=True,
                                            preexec_fn=capped_memlock_without_cap_ipc_lock)
    assert snap["VmLck"].startswith("0 ")
    assert "WARNING hftfeed.hw: memory_lock" in log
    assert "LimitMEMLOCK=infinity" in log


def test_systemd_notify_ready_and_watchdog_pings(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    sim = SimProcess(tmp_path, SYMBOLS, rate=100)
    col = Collector()
    daemon = DaemonProcess(tmp_path, daemon_config(sim, col.target, SYMBOLS),
                           env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    received = []
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                received.append(sock.recv(4096).decode())
            except socket.timeout:
                pass
            if sum("WATCHDOG=1" in m for m in received) >= 3 and any("READY=1" in m for m in received):
                break
    finally:
        code, _ = daemon.stop()
        try:
            while True:
                received.append(sock.recv(4096).decode())
        except socket.timeout:
            pass
        sim.stop()
        col.close()
        sock.close()
    assert code == 0
    ready = [i for i, m in enumerate(received) if "READY=1" in m]
    assert ready, received
    assert sum("WATCHDOG=1" in m for m in received) >= 3
    assert any("STOPPING=1" in m for m in received[ready[0]:])
