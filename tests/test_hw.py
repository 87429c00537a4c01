"""Specification of hftfeed.runtime.hw: each control reports ok / warn / skipped, never crashes on an OS
refusal, and its effect is visible from /proc (checked from a separate process where it matters).

Controls that change the calling process (mlockall, affinity, SCHED_FIFO) run in a child process
(the same interpreter as the test: the suite runs under CPython and PyPy), so pytest is unaffected.
"""

import ctypes
import errno
import json
import os
import resource
import socket
import subprocess
import sys
from array import array
from pathlib import Path

import pytest

from hftfeed.app.config import SchedulerConfig, host_config
from hftfeed.runtime import hw
from hftfeed.runtime.hwresult import HwResult
from hftfeed.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc needed")
root_only = pytest.mark.skipif(not IS_ROOT, reason="needs root (CAP_IPC_LOCK / CAP_SYS_NICE)")
PR_CAPBSET_DROP = 24  # prctl(2)
RLIMIT_RTPRIO = getattr(resource, "RLIMIT_RTPRIO", 14)  # PyPy's resource module lacks the name


def _drop_bounding_caps(caps):
    """preexec_fn body: remove caps from the bounding set so even root's child lacks them."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in caps:
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def spawn(code, memlock=None, rtprio=None, drop_caps=()):
    """Start a child that runs ``code`` (which prints one JSON line) and then waits for stdin EOF,
    so the parent can inspect its /proc entries while it is alive."""
    def preexec():
        if memlock is not None:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, memlock)
        if rtprio is not None:
            resource.setrlimit(RLIMIT_RTPRIO, rtprio)
        if drop_caps:
            _drop_bounding_caps(drop_caps)

    script = ("import json, sys, logging\nlogging.basicConfig(level=logging.INFO)\n"
              "from hftfeed.runtime import hw\n" + code +
              "\nsys.stdout.write(json.dumps(out) + '\\n'); sys.stdout.flush(); sys.stdin.read()\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=str(ROOT),
                            preexec_fn=preexec)
    line = proc.stdout.readline()
    if not line:
        _, err = proc.communicate(timeout=30)
        pytest.fail("child failed: %s" % err.decode(errors="replace"))
    return proc, json.loads(line)


def finish(proc):
    _, err = proc.communicate(b"", timeout=30)
    assert proc.returncode == 0, err.decode(errors="replace")
    return err.decode(errors="replace")


def proc_status(pid, field):
    return hw.proc_status_field(field, pid)


# ---------------------------------------------------------------------------------------------
# small pure helpers

def test_hwresult_carries_name_status_message_and_fix():
    result = HwResult("memory_lock", hw.WARN, "refused", "ulimit -l unlimited")
    assert result.as_dict() == {"name": "memory_lock", "status": "warn", "message": "refused",
                                "fix": "ulimit -l unlimited"}
    assert not result.ok
    assert HwResult("x", hw.OK, "fine").ok


def test_cpu_list_format_parses_ranges_and_singles_both_ways():
    assert hw.parse_cpu_list("0-3,8,10-11\n") == {0, 1, 2, 3, 8, 10, 11}
    assert hw.parse_cpu_list("") == set()
    assert hw.parse_cpu_list("(null)\n") == set()
    assert hw.format_cpu_list({0, 1, 2, 3, 8, 10, 11}) == "0-3,8,10-11"
    assert hw.format_cpu_list({5}) == "5"
    assert hw.format_cpu_list(set()) == ""


def test_memlock_threshold_is_four_times_vmsize_but_at_least_one_gib():
    assert hw.memlock_needed_bytes(10 * 2 ** 20) == 2 ** 30
    assert hw.memlock_needed_bytes(2 ** 30) == 4 * 2 ** 30


# ---------------------------------------------------------------------------------------------
# memory locking

def test_lock_memory_off_is_skipped_and_locks_nothing():
    before = hw.proc_status_kb("VmLck")
    result = hw.lock_memory(False)
    assert result.status == hw.SKIPPED
    assert hw.proc_status_kb("VmLck") == before


@linux_only
@root_only
def test_lock_memory_in_child_locks_pages_visible_as_vmlck():
    proc, out = spawn("r = hw.lock_memory(True)\nout = r.as_dict()")
    try:
        assert out["status"] == "ok", out
        assert "VmLck" in out["message"]
        assert int(proc_status(proc.pid, "VmLck").split()[0]) > 0
    finally:
        finish(proc)


@linux_only
def test_lock_memory_with_64k_rlimit_and_no_cap_ipc_lock_warns_and_keeps_running():
    code = ("r = hw.lock_memory(True)\n"
            "junk = [bytearray(1 << 20) for _ in range(64)]  # 64 MiB after the refusal: no crash\n"
            "out = r.as_dict()")
    proc, out = spawn(code, memlock=(64 * 1024, 64 * 1024),
                      drop_caps=(hw.CAP_IPC_LOCK,) if IS_ROOT else ())
    try:
        assert out["status"] == "warn", out
        assert "RLIMIT_MEMLOCK" in out["message"] and "65536" in out["message"]
        assert "LimitMEMLOCK=infinity" in out["fix"]
        assert int(proc_status(proc.pid, "VmLck").split()[0]) == 0
    finally:
        err = finish(proc)
    assert "WARNING:hftfeed.hw:memory_lock" in err


@linux_only
@root_only
def test_cap_ipc_lock_bypasses_a_small_rlimit_so_locking_proceeds():
    proc, out = spawn("out = hw.lock_memory(True).as_dict()", memlock=(64 * 1024, 64 * 1024))
    try:
        assert out["status"] == "ok", out
        assert int(proc_status(proc.pid, "VmLck").split()[0]) > 64
    finally:
        finish(proc)


def test_small_soft_limit_is_raised_to_a_big_enough_hard_limit(monkeypatch):
    calls = []
    monkeypatch.setattr(hw, "has_capability", lambda cap, pid="self": False)
    monkeypatch.setattr(hw.resource, "getrlimit", lambda which: (65536, hw.resource.RLIM_INFINITY))
    monkeypatch.setattr(hw.resource, "setrlimit", lambda which, limits: calls.append(limits))
    assert hw._check_memlock_rlimit("memory_lock") is None
    assert calls == [(hw.resource.RLIM_INFINITY, hw.resource.RLIM_INFINITY)]


def test_small_soft_and_hard_limit_refuses_to_lock_with_the_limit_in_the_message(monkeypatch):
    monkeypatch.setattr(hw, "has_capability", lambda cap, pid="self": False)
    monkeypatch.setattr(hw.resource, "getrlimit", lambda which: (8 << 20, 8 << 20))
    result = hw._check_memlock_rlimit("memory_lock")
    assert result.status == hw.WARN
    assert "RLIMIT_MEMLOCK is 8388608 bytes" in result.message
    assert "CAP_IPC_LOCK" in result.fix and "LimitMEMLOCK=infinity" in result.fix


@linux_only
@root_only
def test_small_soft_limit_under_unlimited_hard_limit_still_locks_in_a_child():
    hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)[1]
    if hard != resource.RLIM_INFINITY and not hw.has_capability(24):  # CAP_SYS_RESOURCE
        pytest.skip("cannot raise the hard RLIMIT_MEMLOCK here (no CAP_SYS_RESOURCE)")
    code = ("import resource\nr = hw.lock_memory(True)\n"
            "out = dict(r.as_dict(), soft=resource.getrlimit(resource.RLIMIT_MEMLOCK)[0])")
    proc, out = spawn(code, memlock=(64 * 1024, resource.RLIM_INFINITY),
                      drop_caps=(hw.CAP_IPC_LOCK,))
    try:
        assert out["status"] == "ok", out
        assert out["soft"] == resource.RLIM_INFINITY
    finally:
        finish(proc)


class _FakeLibc(object):
    """Stands in for libc: mlockall fails with a chosen errno."""

    def __init__(self, code):
        self.code = code

    def mlockall(self, flags):
        ctypes.set_errno(self.code)
        return -1


@pytest.mark.parametrize("code, words, fix_words", [
    (errno.EPERM, ["EPERM", "CAP_IPC_LOCK"], ["setcap cap_ipc_lock+ep", "AmbientCapabilities"]),
    (errno.ENOMEM, ["ENOMEM", "RLIMIT_MEMLOCK"], ["LimitMEMLOCK=infinity", "ulimit -l"]),
    (errno.EAGAIN, ["EAGAIN"], ["LimitMEMLOCK"]),
])
@linux_only
def test_mlockall_errors_become_named_warnings(monkeypatch, code, words, fix_words):
    monkeypatch.setattr(hw, "_check_memlock_rlimit", lambda name: None)
    monkeypatch.setattr(hw, "libc", lambda: _FakeLibc(code))
    result = hw.lock_memory(True)
    assert result.status == hw.WARN
    for word in words:
        assert word in result.message
    for word in fix_words:
        assert word in result.fix


def test_lock_memory_off_linux_is_an_info_noop(monkeypatch):
    monkeypatch.setattr(hw, "IS_LINUX", False)
    assert hw.lock_memory(True).status == hw.SKIPPED


# ---------------------------------------------------------------------------------------------
# prefault

def test_prefault_writes_every_page_without_changing_contents():
    data = bytearray(b"\x07" * (3 * 4096 + 5))
    numbers = array("q", range(10000))
    result = hw.prefault([data, numbers, b"read-only is fine", bytearray()])
    assert result.status == hw.OK
    assert "in 4 buffers" in result.message
    assert data == bytearray(b"\x07" * (3 * 4096 + 5))
    assert numbers == array("q", range(10000))
    data.extend(b"more")      # no view left exported: the buffers can still be resized
    numbers.append(1)


# ---------------------------------------------------------------------------------------------
# CPU affinity

def _target_core():
    """The highest allowed CPU: pinning there is visible (the default mask holds every CPU)."""
    return max(hw.get_cpu_affinity(0))


@linux_only
def test_set_cpu_affinity_in_child_is_visible_in_proc_cpus_allowed_list():
    core = _target_core()
    proc, out = spawn("out = hw.set_cpu_affinity(%d).as_dict()" % core)
    try:
        assert out["status"] == "ok", out
        assert proc_status(proc.pid, "Cpus_allowed_list") == str(core)
    finally:
        finish(proc)


@linux_only
def test_ctypes_fallback_pins_like_os_sched_setaffinity():
    core = _target_core()
    code = ("import os\n"
            "for n in ('sched_setaffinity', 'sched_getaffinity'):\n"
            "    if hasattr(os, n): delattr(os, n)\n"
            "r = hw.set_cpu_affinity(%d)\nout = dict(r.as_dict(), got=sorted(hw.get_cpu_affinity()))"
            % core)
    proc, out = spawn(code)
    try:
        assert out["status"] == "ok", out
        assert "libc sched_setaffinity" in out["message"]
        assert out["got"] == [core]
        assert proc_status(proc.pid, "Cpus_allowed_list") == str(core)
    finally:
        finish(proc)


@linux_only
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="compares with the os function")
def test_libc_getaffinity_agrees_with_os_sched_getaffinity():
    assert hw._libc_getaffinity(0) == set(os.sched_getaffinity(0))


def test_affinity_minus_one_is_skipped():
    assert hw.set_cpu_affinity(-1).status == hw.SKIPPED
    assert hw.validate_cpu_core(-1) == -1


@linux_only
def test_core_that_does_not_exist_is_a_config_error_naming_the_key():
    missing = max(hw.online_cpus()) + 1
    with pytest.raises(ConfigError) as info:
        hw.set_cpu_affinity(missing)
    assert "cpu_affinity.processor_core" in str(info.value)
    assert "does not exist" in str(info.value)
    for bad in (-2, "1", 1.0, True):
        with pytest.raises(ConfigError):
            hw.validate_cpu_core(bad)


@linux_only
def test_core_outside_the_allowed_set_is_a_config_error_listing_the_set(monkeypatch):
    online = hw.online_cpus()
    if len(online) < 2:
        pytest.skip("needs two online CPUs")
    first, other = sorted(online)[0], sorted(online)[1]
    monkeypatch.setattr(hw, "get_cpu_affinity", lambda pid=0: {first})
    with pytest.raises(ConfigError) as info:
        hw.validate_cpu_core(other)
    assert "not in the allowed CPU set %d" % first in str(info.value)


# ---------------------------------------------------------------------------------------------
# scheduler

def test_scheduler_other_is_skipped_and_bad_values_are_config_errors():
    assert hw.set_realtime("other", 10).status == hw.SKIPPED
    with pytest.raises(ConfigError, match="scheduler.policy"):
        SchedulerConfig.parse({"policy": "rr"}, "scheduler")
    for bad in (0, 100, "5", True):
        with pytest.raises(ConfigError, match="scheduler.priority"):
            SchedulerConfig.parse({"policy": "fifo", "priority": bad}, "scheduler")


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        text = f.read()
    return text[text.rindex(")") + 2:].split()  # field N (N >= 3) is [N - 3]


@linux_only
@root_only
def test_sched_fifo_in_child_shows_policy_and_priority_in_proc_stat():
    proc, out = spawn("out = hw.set_realtime('fifo', 7).as_dict()")
    try:
        assert out["status"] == "ok", out
        fields = _stat_fields(proc.pid)
        assert fields[41 - 3] == "1"   # policy: SCHED_FIFO
        assert fields[40 - 3] == "7"   # rt_priority
    finally:
        finish(proc)


@linux_only
def test_sched_fifo_without_cap_sys_nice_warns_with_the_fix():
    proc, out = spawn("out = hw.set_realtime('fifo', 7).as_dict()", rtprio=(0, 0),
                      drop_caps=(hw.CAP_SYS_NICE,) if IS_ROOT else ())
    try:
        assert out["status"] == "warn", out
        assert "EPERM" in out["message"]
        assert "CAP_SYS_NICE" in out["fix"] and "RestrictRealtime" in out["fix"]
        assert _stat_fields(proc.pid)[41 - 3] == "0"
    finally:
        finish(proc)


# ---------------------------------------------------------------------------------------------
# socket buffers

def test_socket_buffer_report_ok_when_the_request_fits():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        result = hw.apply_socket_buffers(sock, 65536, 65536)
    assert result.status == hw.OK
    assert "sndbuf 65536 B granted" in result.message


def test_socket_buffers_of_zero_keep_the_kernel_default_and_say_so():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        default_snd = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        result = hw.apply_socket_buffers(sock, 0, 0)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == default_snd
    assert result.status == hw.OK
    assert "sndbuf kernel default" in result.message and "rcvbuf kernel default" in result.message


@linux_only
def test_socket_buffer_report_names_the_sysctl_when_the_kernel_caps_the_request():
    rmem_max = hw.read_sysctl_int("net.core.rmem_max")
    if rmem_max is None:
        pytest.skip("no /proc/sys/net/core/rmem_max")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        result = hw.apply_socket_buffers(sock, 0, rmem_max + 65536)
    assert result.status == hw.WARN
    assert "net.core.rmem_max is %d" % rmem_max in result.message
    assert "sysctl -w net.core.rmem_max=" in result.fix
    assert "60-hftfeed.conf" in result.fix


# ---------------------------------------------------------------------------------------------
# start-up sequence

def test_apply_startup_with_everything_off_changes_nothing(restore_gc):
    results = hw.apply_startup(host_config({
        "memory_lock": False, "cpu_affinity": {"enabled": False, "processor_core": 0},
        "scheduler": {"policy": "other", "priority": 10}, "gc": {"freeze_after_start": False}}))
    assert [r.name for r in results] == ["cpu_affinity", "memory_lock", "scheduler", "gc"]
    assert [r.status for r in results] == ["skipped", "skipped", "skipped", "ok"]


@linux_only
def test_apply_startup_in_child_pins_then_locks():
    core = _target_core()
    code = ("from hftfeed.app.config import host_config\n"
            "rs = hw.apply_startup(host_config({'cpu_affinity': {'enabled': True, "
            "'processor_core': %d}}))\n"
            "out = [r.as_dict() for r in rs]" % core)
    proc, out = spawn(code)
    try:
        by_name = {r["name"]: r for r in out}
        assert by_name["cpu_affinity"]["status"] == "ok"
        assert by_name["memory_lock"]["status"] == ("ok" if IS_ROOT else "warn")
        assert proc_status(proc.pid, "Cpus_allowed_list") == str(core)
    finally:
        finish(proc)
