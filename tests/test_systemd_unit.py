"""Specification of the deployment files: systemd/hftfeed.service (keys, hardening, documented
traps, `systemd-analyze verify` when available), etc/sysctl.d/60-hftfeed.conf, systemd/install.sh."""

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "hftfeed.service"
SYSCTL = ROOT / "etc" / "sysctl.d" / "60-hftfeed.conf"
INSTALL = ROOT / "systemd" / "install.sh"


def parse_unit(text):
    """{section: {key: [values...]}}: unit files may repeat a key (Environment=), so keep all."""
    sections = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, "not a unit-file line: %r" % raw
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def unit():
    return parse_unit(UNIT.read_text())


def one(unit, key, section="Service"):
    values = unit[section].get(key, [])
    assert len(values) == 1, "%s= should appear once, got %r" % (key, values)
    return values[0]


def test_unit_runs_the_daemon_under_pypy_with_the_etc_config(unit):
    assert one(unit, "ExecStart") == \
        "/usr/bin/pypy3 /opt/hftfeed/hftfeed.py run --config /etc/hftfeed/hftfeed.json"


def test_unit_is_type_notify_with_a_watchdog_and_restart_policy(unit):
    assert one(unit, "Type") == "notify"
    assert one(unit, "NotifyAccess") == "main"
    assert one(unit, "WatchdogSec").endswith("s")
    assert one(unit, "Restart") == "on-failure"
    assert one(unit, "RestartSec") == "1"
    assert one(unit, "TimeoutStopSec") == "5"


def test_unit_grants_memory_locking_and_no_other_capability(unit):
    """CAP_SYS_NICE comes from an installer drop-in, only for a config asking for SCHED_FIFO."""
    assert one(unit, "LimitMEMLOCK") == "infinity"
    assert one(unit, "AmbientCapabilities") == "CAP_IPC_LOCK"
    assert one(unit, "CapabilityBoundingSet") == "CAP_IPC_LOCK"


def test_unit_reloads_with_sighup_and_filters_system_calls(unit):
    assert one(unit, "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(unit, "SystemCallFilter") == "@system-service"
    assert one(unit, "SystemCallErrorNumber") == "EPERM"


TEMPLATE = ROOT / "systemd" / "hftfeed@.service"


def test_the_template_unit_is_the_unit_with_the_instance_as_config_name(unit):
    template = parse_unit(TEMPLATE.read_text())
    assert one(template, "ExecStart") == \
        "/usr/bin/pypy3 /opt/hftfeed/hftfeed.py run --config /etc/hftfeed/%i.json"
    assert one(template, "SyslogIdentifier") == "hftfeed@%i"
    assert "%i" in one(template, "Description", "Unit")
    differ = ("ExecStart", "SyslogIdentifier", "Description")
    for section in unit:
        mine = {k: v for k, v in unit[section].items() if k not in differ}
        theirs = {k: v for k, v in template[section].items() if k not in differ}
        assert mine == theirs, section


def test_unit_runs_as_the_dedicated_user(unit):
    assert one(unit, "User") == "hftfeed"
    assert one(unit, "Group") == "hftfeed"


@pytest.mark.parametrize("key", [
    "NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "ProtectKernelTunables",
    "ProtectKernelModules", "ProtectControlGroups", "RestrictNamespaces", "LockPersonality",
    "RestrictSUIDSGID"])
def test_unit_hardening_switch_is_on(unit, key):
    assert one(unit, key) == "yes"


def test_unit_hardening_values(unit):
    assert one(unit, "ProtectSystem") == "strict"
    assert one(unit, "SystemCallArchitectures") == "native"
    assert set(one(unit, "RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert "HFTFEED_LOG=info" in unit["Service"]["Environment"]
    assert one(unit, "WantedBy", "Install") == "multi-user.target"


def test_unit_avoids_the_settings_that_break_pypy_fifo_or_socket_checks(unit):
    service = unit["Service"]
    assert service.get("MemoryDenyWriteExecute", ["no"]) == ["no"]   # PyPy's JIT needs W+X
    assert service.get("RestrictRealtime", ["no"]) == ["no"]         # SCHED_FIFO
    assert "ProcSubset" not in service                               # /proc/sys/net/core reads


def test_unit_comments_explain_each_trap():
    comments = "\n".join(line for line in UNIT.read_text().splitlines() if line.startswith("#"))
    for word in ("MemoryDenyWriteExecute=yes", "RestrictRealtime=yes", "LimitMEMLOCK=infinity",
                 "MCL_FUTURE", "NoNewPrivileges", "AF_UNIX"):
        assert word in comments, word


def _verify(unit_text, tmp_path):
    """systemd-analyze verify on a copy whose ExecStart binary and directory exist here."""
    path = tmp_path / "hftfeed.service"
    path.write_text(unit_text.replace("/usr/bin/pypy3", os.path.realpath(sys.executable))
                    .replace("WorkingDirectory=/opt/hftfeed", "WorkingDirectory=%s" % tmp_path))
    proc = subprocess.run(["systemd-analyze", "verify", str(path)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    return [line for line in proc.stdout.decode(errors="replace").splitlines()
            if "hftfeed.service" in line]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_reports_nothing_about_the_unit(tmp_path):
    assert _verify(UNIT.read_text(), tmp_path) == []
    instance = tmp_path / "hftfeed@binance.service"
    instance.write_text(TEMPLATE.read_text().replace("/usr/bin/pypy3", os.path.realpath(
        sys.executable)).replace("WorkingDirectory=/opt/hftfeed", "WorkingDirectory=%s" % tmp_path))
    proc = subprocess.run(["systemd-analyze", "verify", str(instance)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    assert [l for l in proc.stdout.decode(errors="replace").splitlines()
            if "hftfeed@" in l] == []
    # and it would: a bad value in a copy is reported
    broken = UNIT.read_text().replace("NoNewPrivileges=yes", "NoNewPrivileges=maybe")
    assert _verify(broken, tmp_path), "systemd-analyze verify did not flag a bad boolean"


# ---------------------------------------------------------------------------------------------
# sysctl

def parse_sysctl(text):
    settings = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            key, sep, value = line.partition("=")
            assert sep, "not a sysctl line: %r" % line
            settings[key.strip()] = value.strip()
    return settings


def test_sysctl_raises_udp_buffer_maxima_to_at_least_4_mib():
    settings = parse_sysctl(SYSCTL.read_text())
    assert int(settings["net.core.rmem_max"]) >= 4 * 1024 * 1024
    assert int(settings["net.core.wmem_max"]) >= 4 * 1024 * 1024
    assert all(key.startswith("net.core.") for key in settings)
    assert "rmem_default" in SYSCTL.read_text()  # the decision about it is written down


# ---------------------------------------------------------------------------------------------
# installer

pytestmark_installer = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("install")
                                          is None, reason="bash and coreutils install needed")


def run_install(*args):
    return subprocess.run(["bash", str(INSTALL), "--no-compile"] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)


@pytestmark_installer
def test_installer_stages_code_config_and_units_and_no_system_settings_or_demo(tmp_path):
    proc = run_install("--destdir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr.decode()
    assert not (tmp_path / "etc/sysctl.d").exists(), "system settings only with --sysctl"
    assert b"system settings unchanged" in proc.stdout
    assert not (tmp_path / "etc/hftfeed/demo.json").exists()
    assert (tmp_path / "etc/systemd/system/hftfeed@.service").read_text() == \
        TEMPLATE.read_text()
    assert not list((tmp_path / "etc/systemd/system").glob("*.d"))
    proc = run_install("--destdir", str(tmp_path), "--sysctl")
    assert proc.returncode == 0, proc.stderr.decode()
    assert (tmp_path / "opt/hftfeed/hftfeed.py").is_file()
    assert (tmp_path / "opt/hftfeed/hftfeed/runtime/hw.py").is_file()
    assert (tmp_path / "opt/hftfeed/hftfeed/__init__.py").is_file()
    assert not list((tmp_path / "opt/hftfeed").rglob("__pycache__"))
    assert not (tmp_path / "opt/hftfeed/tests").exists()
    assert (tmp_path / "etc/sysctl.d/60-hftfeed.conf").read_bytes() == SYSCTL.read_bytes()
    assert (tmp_path / "etc/systemd/system/hftfeed.service").read_text() == UNIT.read_text()
    shipped = ROOT / "etc" / "hftfeed.json"
    if shipped.exists():
        installed = tmp_path / "etc/hftfeed/hftfeed.json"
        assert installed.read_bytes() == shipped.read_bytes()
        assert stat.S_IMODE(installed.stat().st_mode) == 0o640


@pytestmark_installer
def test_installer_never_overwrites_an_edited_config(tmp_path):
    shipped = ROOT / "etc" / "hftfeed.json"
    if not shipped.exists():
        pytest.skip("no etc/hftfeed.json to install")
    assert run_install("--destdir", str(tmp_path)).returncode == 0
    mine = tmp_path / "etc/hftfeed/hftfeed.json"
    mine.write_text('{"edited": true}\n')
    proc = run_install("--destdir", str(tmp_path))
    assert proc.returncode == 0
    assert mine.read_text() == '{"edited": true}\n'
    assert (tmp_path / "etc/hftfeed/hftfeed.json.dist").read_bytes() == shipped.read_bytes()
    assert b"kept your" in proc.stdout


@pytestmark_installer
def test_installer_rewrites_unit_paths_for_another_prefix(tmp_path):
    proc = run_install("--destdir", str(tmp_path), "--prefix", "/srv/feed", "--confdir", "/srv/conf")
    assert proc.returncode == 0, proc.stderr.decode()
    exec_start = one(parse_unit((tmp_path / "etc/systemd/system/hftfeed.service").read_text()),
                     "ExecStart")
    assert exec_start == "/usr/bin/pypy3 /srv/feed/hftfeed.py run --config /srv/conf/hftfeed.json"
    assert (tmp_path / "srv/feed/hftfeed.py").is_file()


@pytestmark_installer
def test_installer_grants_cap_sys_nice_only_to_units_whose_config_asks_for_fifo(tmp_path):
    confdir = tmp_path / "etc/hftfeed"
    confdir.mkdir(parents=True)
    (confdir / "fast-core2.json").write_text('{"scheduler": {"policy": "fifo", "priority": 10}}')
    (confdir / "slow-core3.json").write_text('{"scheduler": {"policy": "other"}}')
    assert run_install("--destdir", str(tmp_path)).returncode == 0
    systemd_dir = tmp_path / "etc/systemd/system"
    dropin = systemd_dir / "hftfeed@fast-core2.service.d/50-realtime.conf"
    section = parse_unit(dropin.read_text())["Service"]
    assert section == {"AmbientCapabilities": ["CAP_SYS_NICE"],
                       "CapabilityBoundingSet": ["CAP_SYS_NICE"]}
    assert sorted(p.name for p in systemd_dir.glob("*.d")) == ["hftfeed@fast-core2.service.d"]
    (confdir / "fast-core2.json").write_text('{"scheduler": {"policy": "other"}}')
    proc = run_install("--destdir", str(tmp_path))
    assert not dropin.exists() and b"CAP_SYS_NICE withdrawn" in proc.stdout


@pytestmark_installer
def test_installer_rejects_unknown_options(tmp_path):
    proc = run_install("--destdir", str(tmp_path), "--frobnicate")
    assert proc.returncode == 2
    assert b"unknown option" in proc.stderr


def test_the_run_command_in_execstart_accepts_config():
    proc = subprocess.run([sys.executable, str(ROOT / "hftfeed.py"), "run", "--help"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    assert b"--config" in proc.stdout
