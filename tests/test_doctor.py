"""Specification of hftfeed.app.doctor: /proc parsing, the PASS/WARN/FAIL logic, the JSON schema and
exit codes, checked against this process and against live child processes set up with hw."""

import ctypes
import json
import time
import os
import resource
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hftfeed.app import doctor
from hftfeed.app.config import host_config
from hftfeed.runtime import hw

ROOT = Path(__file__).resolve().parents[1]
IS_ROOT = os.geteuid() == 0
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux /proc")
PR_CAPBSET_DROP = 24


def spawn(code, memlock=None, drop_caps=()):
    """A child running ``code`` (setting ``out``), printing it as JSON, then waiting on stdin."""
    def preexec():
        if memlock is not None:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, memlock)
        libc = ctypes.CDLL(None, use_errno=True)
        for cap in drop_caps:
            if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl")

    script = ("import json, sys\nfrom hftfeed.runtime import hw\n" + code +
              "\nsys.stdout.write(json.dumps(out) + '\\n'); sys.stdout.flush(); sys.stdin.read()\n")
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), preexec_fn=preexec)
    line = proc.stdout.readline()
    if not line:
        pytest.fail("child failed: %s" % proc.communicate(timeout=30)[1].decode(errors="replace"))
    return proc, json.loads(line)


def finish(proc):
    _, err = proc.communicate(b"", timeout=30)
    assert proc.returncode == 0, err.decode(errors="replace")


def host(**sections):
    """The machine-level part of a config, validated by the one parser (app/config.py)."""
    return host_config(sections)


def by_item(checks):
    return {c.item: c for c in checks}


# ---------------------------------------------------------------------------------------------
# parsers

def _stat_line(comm, **fields):
    values = ["0"] * 50  # fields 3..52
    values[0] = "S"
    for number, value in fields.items():
        values[int(number[1:]) - 3] = str(value)
    return "4242 (%s) %s\n" % (comm, " ".join(values))


def test_stat_parser_splits_at_the_last_parenthesis_of_a_tricky_comm():
    text = _stat_line("a) b (c) d", f10=123, f12=4, f39=1, f40=7, f41=1)
    stat = doctor.parse_stat(text)
    assert stat["pid"] == 4242
    assert stat["comm"] == "a) b (c) d"
    assert (stat["minflt"], stat["majflt"]) == (123, 4)
    assert (stat["processor"], stat["rt_priority"], stat["policy"]) == (1, 7, 1)


def test_stat_parser_reads_the_real_proc_self_stat():
    with open("/proc/self/stat") as f:
        stat = doctor.parse_stat(f.read())
    assert stat["pid"] == os.getpid()
    assert stat["minflt"] > 0
    assert stat["processor"] in hw.online_cpus()


def test_limits_parser_reads_soft_and_hard_with_unlimited_as_none():
    text = ("Limit                     Soft Limit           Hard Limit           Units     \n"
            "Max cpu time              unlimited            unlimited            seconds   \n"
            "Max locked memory         65536                8388608              bytes     \n"
            "Max realtime priority     0                    0                    \n")
    limits = doctor.parse_limits(text)
    assert limits["Max locked memory"] == (65536, 8388608)
    assert limits["Max cpu time"] == (None, None)
    assert limits["Max realtime priority"] == (0, 0)


def test_proc_net_udp_parser_finds_a_real_socket_by_inode_with_its_address():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        inode = os.fstat(sock.fileno()).st_ino
        with open("/proc/self/net/udp") as f:
            rows = [r for r in doctor.parse_proc_net_udp(f.read()) if r["inode"] == inode]
    assert len(rows) == 1
    assert rows[0]["local"] == "127.0.0.1:%d" % port
    assert rows[0]["remote"] == "0.0.0.0:0"
    assert rows[0]["drops"] == 0


def test_proc_net_udp6_parser_decodes_loopback():
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        sock.bind(("::1", 0))
    except OSError as exc:
        pytest.skip("no IPv6 loopback: %s" % exc)
    with sock:
        port = sock.getsockname()[1]
        inode = os.fstat(sock.fileno()).st_ino
        with open("/proc/self/net/udp6") as f:
            rows = [r for r in doctor.parse_proc_net_udp(f.read(), socket.AF_INET6)
                    if r["inode"] == inode]
    assert [r["local"] for r in rows] == ["[::1]:%d" % port]


def test_sock_diag_reports_the_doubled_sndbuf_of_our_own_socket():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
        sock.bind(("127.0.0.1", 0))
        memory = doctor.udp_socket_memory()
        inode = os.fstat(sock.fileno()).st_ino
    if not memory:
        pytest.skip("sock_diag for UDP unavailable in this kernel")
    rcvbuf, sndbuf, drops = memory[inode]
    assert sndbuf == 2 * 65536
    assert drops == 0


# ---------------------------------------------------------------------------------------------
# the report about this process

def test_doctor_on_itself_reports_every_item():
    items = by_item(doctor.collect())
    for name in ("interpreter", "kernel", "cpus", "isolated_cpus", "nohz_full", "memory_lock",
                 "memlock_rlimit", "scheduler", "page_faults", "net.core.rmem_max",
                 "net.core.wmem_max", "net.core.rmem_default"):
        assert name in items, name
    # either a line per open UDP socket, or one line saying there is none
    assert "udp_sockets" in items or any(name.startswith("udp ") for name in items)
    threads = [c for c in items.values() if c.item.startswith("thread %d " % os.getpid())]
    assert len(threads) == 1
    interpreter = items["interpreter"]
    if hasattr(sys, "pypy_version_info"):
        assert interpreter.status == "PASS" and "JIT on" in interpreter.value
    else:
        assert interpreter.status == "WARN" and "pypy3" in interpreter.fix


def nobody_config(tmp_path):
    """A valid config no running daemon uses: the doctor then checks only the host (whatever
    other daemons run on this machine)."""
    cfg = tmp_path / "nobody.json"
    cfg.write_text('{"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"]}]}')
    return cfg


def test_json_output_is_a_list_of_item_status_value_expected_fix(capsys, tmp_path):
    assert doctor.main(["--json", "--config", str(nobody_config(tmp_path))]) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report, list) and report
    for entry in report:
        assert set(entry) == {"item", "status", "value", "expected", "fix"}
        assert entry["status"] in ("PASS", "WARN", "FAIL", "INFO")
        if entry["status"] in ("WARN", "FAIL"):
            assert entry["fix"], entry


def test_text_output_shows_fix_lines_for_warnings_and_a_summary(capsys, tmp_path):
    cfg = nobody_config(tmp_path)
    assert doctor.main(["--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("no running hftfeed daemon found for %s: checking only the host" % cfg)
    assert out.splitlines()[1].startswith("hftfeed doctor ")
    assert " host only on " in out.splitlines()[1]
    assert "interpreter" not in out and "memory_lock" not in out
    assert "summary: " in out
    warn_lines = [line for line in out.splitlines() if line.startswith("WARN")]
    fix_lines = [line for line in out.splitlines() if line.strip().startswith("fix: ")]
    assert len(fix_lines) >= len(warn_lines)


@pytest.mark.parametrize("argv", [["--pid", "999999999"], ["--pid", "0"], ["--pid", "abc"],
                                  ["--bogus"]])
def test_bad_command_line_or_missing_pid_exits_2(argv, capsys):
    assert doctor.main(argv) == 2


def test_help_exits_0(capsys):
    assert doctor.main(["--help"]) == 0


def test_unreadable_or_invalid_config_exits_2(tmp_path, capsys):
    assert doctor.main(["--config", str(tmp_path / "missing.json")]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert doctor.main(["--config", str(bad)]) == 2
    assert "doctor:" in capsys.readouterr().err


def test_the_projects_own_config_is_accepted():
    path = ROOT / "etc" / "hftfeed.json"
    if not path.exists():
        pytest.skip("no etc/hftfeed.json")
    assert doctor.main(["--config", str(path), "--json"]) == 0


def test_the_doctor_reads_the_config_through_the_one_parser(tmp_path, capsys):
    """The doctor has no parser of its own: a key the daemon refuses, the doctor refuses too."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"]}],
                               "cpu_affinity": {"enabled": True}}))
    assert doctor.main(["--config", str(bad)]) == 2
    assert "cpu_affinity.processor_core: set a core >= 0" in capsys.readouterr().err


def test_configured_core_that_does_not_exist_fails_with_the_online_list():
    missing = max(hw.online_cpus()) + 1
    items = by_item(doctor.collect(cfg=host(cpu_affinity={"processor_core": missing})))
    check = items["config cpu_affinity.processor_core"]
    assert check.status == "FAIL"
    assert "does not exist" in check.fix and "online CPUs" in check.fix


def test_fifo_configured_but_not_granted_warns_with_the_capability_fix():
    check = by_item(doctor.collect(cfg=host(scheduler={"policy": "fifo", "priority": 10})))["scheduler"]
    assert check.status == "WARN"
    assert "CAP_SYS_NICE" in check.fix


def test_buffers_above_the_sysctl_maximum_warn_with_the_sysctl_fix():
    wmem_max = hw.read_sysctl_int("net.core.wmem_max")
    if wmem_max is None:
        pytest.skip("no /proc/sys/net/core/wmem_max")
    check = by_item(doctor.collect(cfg=host(socket_buffers={"sndbuf_bytes": wmem_max + 1})))["net.core.wmem_max"]
    assert check.status == "WARN"
    assert "sysctl -w" in check.fix


def test_busy_poll_on_a_core_that_is_not_isolated_warns():
    isolated, _ = doctor.isolation_sets()
    core = min(hw.online_cpus() - isolated) if hw.online_cpus() - isolated else None
    if core is None:
        pytest.skip("every CPU is isolated")
    check = by_item(doctor.collect(cfg=host(busy_poll=True, cpu_affinity={"processor_core": core})))["config busy_poll"]
    assert check.status == "WARN"


def test_memory_lock_off_in_config_is_information_not_a_warning():
    assert by_item(doctor.collect(cfg=host(memory_lock=False)))["memory_lock"].status == "INFO"


# ---------------------------------------------------------------------------------------------
# live children

def test_doctor_sees_a_locked_pinned_child_with_its_udp_socket():
    core = max(hw.get_cpu_affinity(0))
    code = ("import socket, threading, time\n"
            "lock = hw.lock_memory(True)\npin = hw.set_cpu_affinity(%d)\n"
            "t = threading.Thread(target=time.sleep, args=(30,), daemon=True); t.start()\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)\n"
            "s.connect(('127.0.0.1', 9))\n"
            "out = {'lock': lock.status, 'pin': pin.status, 'port': s.getsockname()[1]}" % core)
    proc, out = spawn(code)
    try:
        checks = doctor.collect(proc.pid, host(cpu_affinity={"processor_core": core},
                                                socket_buffers={"sndbuf_bytes": 1 << 20,
                                                                "rcvbuf_bytes": 1 << 20}))
        items = by_item(checks)
        threads = [c for c in checks if c.item.startswith("thread ")]
        assert len(threads) >= 2  # the main thread and the sleeper, which inherited the pin
        for thread in threads:
            assert thread.status == "PASS", thread
            assert thread.value.startswith("allowed %d," % core)
            assert "last ran on CPU %d" % core in thread.value
        udp = [c for c in checks if c.item == "udp 127.0.0.1:%d -> 127.0.0.1:9" % out["port"]]
        assert len(udp) == 1
        if "sndbuf" in udp[0].value:
            assert "sndbuf %d," % (2 << 20) in udp[0].value
            assert udp[0].status == "PASS"
        assert items["config cpu_affinity.processor_core"].status == "PASS"
        if IS_ROOT:
            assert out["lock"] == "ok"
            assert items["memory_lock"].status == "PASS"
            assert int(items["memory_lock"].value.split()[1]) > 0
    finally:
        finish(proc)


def test_child_with_capped_memlock_rlimit_gets_warnings_with_fixes():
    code = "r = hw.lock_memory(True)\nout = {'lock': r.status}"
    proc, out = spawn(code, memlock=(64 * 1024, 64 * 1024),
                      drop_caps=(hw.CAP_IPC_LOCK,) if IS_ROOT else ())
    try:
        items = by_item(doctor.collect(proc.pid, host(memory_lock=True)))
        assert out["lock"] == "warn"
        assert items["memlock_rlimit"].status == "WARN"
        assert "soft 65536, hard 65536; CAP_IPC_LOCK no" == items["memlock_rlimit"].value
        assert "LimitMEMLOCK=infinity" in items["memlock_rlimit"].fix
        assert items["memory_lock"].status == "WARN"
        assert items["memory_lock"].value.startswith("VmLck 0 kB")
    finally:
        finish(proc)


def test_doctor_refuses_a_pid_that_is_not_an_hftfeed_daemon(capsys):
    proc, _ = spawn("out = {}")
    try:
        assert doctor.main(["--pid", str(proc.pid), "--json"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("hftfeed.py doctor: error: pid %d is not an hftfeed daemon (its "
                              "command line: " % proc.pid)
        assert len(err.splitlines()) == 1
    finally:
        finish(proc)


def test_command_lines_of_daemons_are_recognised():
    assert doctor.daemon_argv(["/usr/bin/pypy3", "/opt/hftfeed/hftfeed.py", "run", "--config",
                               "/etc/hftfeed/a.json"])
    assert not doctor.daemon_argv(["python3", "hftfeed.py", "doctor"])
    assert not doctor.daemon_argv(["timeout", "10", "sleep", "run"])
    assert doctor.config_of(["x", "--config=/a.json"]) == "/a.json"


def test_doctor_finds_the_running_daemon_by_itself(capsys, tmp_path):
    from e2e import Collector, DaemonProcess
    col = Collector()
    cfg = {"feeds": [{"venue": "binance", "ws_url": "ws://127.0.0.1:9/ws",
                      "rest_url": "http://127.0.0.1:9", "symbols": ["BTCUSDT"]}],
           "publisher": {"target": col.target}, "memory_lock": False}
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        deadline = time.monotonic() + 20
        while "running:" not in daemon.log_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert doctor.main(["--config", daemon.config_path]) == 0
        out = capsys.readouterr().out
        assert out.startswith("found the running daemon: pid %d: " % daemon.pid)
        assert doctor.main(["--config", daemon.config_path, "--json"]) == 0
        report = json.loads(capsys.readouterr().out)
        interpreter = [e for e in report if e["item"] == "interpreter"][0]
        assert os.path.basename(interpreter["value"]) == os.path.basename(
            os.path.realpath(sys.executable))
        assert any(e["item"].startswith("thread %d " % daemon.pid) for e in report)
        assert doctor.main(["--pid", str(daemon.pid)]) == 0
    finally:
        daemon.stop()
        col.close()
