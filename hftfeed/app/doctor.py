"""``hftfeed.py doctor``: one report on how well this machine and a running daemon are set up for
low-latency work, for an operator to paste into a ticket.

Everything is read from /proc and /sys (and one netlink query for socket buffer sizes, the same
one ``ss -uamp`` makes), so the doctor can inspect another process (``--pid``) without touching
it. Each item is PASS, WARN or FAIL, or INFO for plain facts, and every WARN/FAIL carries the
command or config line that fixes it. ``--json`` prints the same items as a list of
``{item, status, value, expected, fix}`` objects. Exit code 0 even with warnings; 2 for bad
command-line input, an unreadable config, or a pid that does not exist.
"""

import json
import logging
import os
import platform
import socket
import struct
import sys
import time

from hftfeed import __version__
from hftfeed.runtime import hw
from hftfeed.app.cli import OneLineParser
from hftfeed.app.config import host_config, load_config
from hftfeed.errors import ConfigError

log = logging.getLogger("hftfeed.doctor")

PASS = "PASS"
WARN = "WARN"
FAIL = "FAIL"
INFO = "INFO"

POLICY_NAMES = {0: "SCHED_OTHER", 1: "SCHED_FIFO", 2: "SCHED_RR", 3: "SCHED_BATCH",
                5: "SCHED_IDLE", 6: "SCHED_DEADLINE"}
MAX_THREADS_LISTED = 64
ISOLATION_FIX = ("add 'isolcpus=%s nohz_full=%s rcu_nocbs=%s' to GRUB_CMDLINE_LINUX in "
                 "/etc/default/grub, then update-grub and reboot (docs/deployment.md)")


class Check(object):
    """One line of the report."""

    __slots__ = ("item", "status", "value", "expected", "fix")

    def __init__(self, item, status, value, expected="", fix=""):
        self.item = item
        self.status = status
        self.value = value
        self.expected = expected
        self.fix = fix

    def as_dict(self):
        return {"item": self.item, "status": self.status, "value": self.value,
                "expected": self.expected, "fix": self.fix}

    def __repr__(self):
        return "Check(%r, %r, %r)" % (self.item, self.status, self.value)


# ---------------------------------------------------------------------------------------------
# /proc parsers (pure: text in, dict out)

def parse_stat(text):
    """/proc/PID/stat (proc(5)). ``comm`` may hold spaces and parentheses, so the fixed fields
    start after the *last* ')'. Field N (1-based, N >= 3) is ``rest[N - 3]``."""
    open_at = text.index("(")
    close_at = text.rindex(")")
    rest = text[close_at + 2:].split()

    def field(n):
        return int(rest[n - 3]) if len(rest) > n - 3 else 0

    return {"pid": int(text[:open_at]), "comm": text[open_at + 1:close_at], "state": rest[0],
            "minflt": field(10), "majflt": field(12), "processor": field(39),
            "rt_priority": field(40), "policy": field(41)}


def parse_status(text):
    """/proc/PID/status: ``Name:\\tvalue`` lines -> {Name: value}."""
    fields = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name] = value.strip()
    return fields


def parse_limits(text):
    """/proc/PID/limits -> {"Max locked memory": (soft, hard)} with ints or None = unlimited."""
    limits = {}
    for line in text.splitlines()[1:]:
        # Columns are aligned with runs of spaces; limit names contain single spaces.
        parts = [p for p in line.split("  ") if p.strip()]
        if len(parts) < 3:
            continue
        values = []
        for raw in parts[1:3]:
            raw = raw.strip()
            values.append(None if raw == "unlimited" else int(raw))
        limits[parts[0].strip()] = tuple(values)
    return limits


def _decode_address(hex_addr, family):
    """``0100007F:1F90`` from /proc/net/udp -> ``127.0.0.1:8080``. The kernel prints each 32-bit
    word of the address in host byte order, so native-order packing restores the bytes."""
    addr_hex, port_hex = hex_addr.split(":")
    words = [int(addr_hex[i:i + 8], 16) for i in range(0, len(addr_hex), 8)]
    packed = struct.pack("=%dI" % len(words), *words)
    host = socket.inet_ntop(family, packed)
    return ("[%s]:%d" if family == socket.AF_INET6 else "%s:%d") % (host, int(port_hex, 16))


def parse_proc_net_udp(text, family=socket.AF_INET):
    """/proc/PID/net/udp or udp6 -> list of {local, remote, inode, tx_queue, rx_queue, drops}."""
    sockets = []
    for line in text.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 10:
            continue
        tx_queue, rx_queue = cols[4].split(":")
        sockets.append({"local": _decode_address(cols[1], family),
                        "remote": _decode_address(cols[2], family),
                        "tx_queue": int(tx_queue, 16), "rx_queue": int(rx_queue, 16),
                        "inode": int(cols[9]), "drops": int(cols[-1]) if len(cols) >= 13 else 0})
    return sockets


# ---------------------------------------------------------------------------------------------
# socket memory through NETLINK_SOCK_DIAG (what `ss -uamp` shows as skmem)

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_SKMEMINFO = 7
SK_MEMINFO_RCVBUF, SK_MEMINFO_SNDBUF, SK_MEMINFO_DROPS = 1, 3, 8
_NLMSG = struct.Struct("=IHHII")
_RTATTR = struct.Struct("=HH")


def _diag_dump(sock, family, seq):
    """One SOCK_DIAG_BY_FAMILY dump of UDP sockets -> {inode: (rcvbuf, sndbuf, drops)}."""
    # inet_diag_req_v2: family, protocol, ext (bit for SKMEMINFO), pad, states, zeroed sockid.
    request = struct.pack("=BBBBI", family, socket.IPPROTO_UDP, 1 << (INET_DIAG_SKMEMINFO - 1),
                          0, 0xFFFFFFFF) + bytes(48)
    sock.sendto(_NLMSG.pack(_NLMSG.size + len(request), SOCK_DIAG_BY_FAMILY,
                            NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + request, (0, 0))
    found = {}
    while True:
        data = sock.recv(65536)
        offset = 0
        while offset + _NLMSG.size <= len(data):
            length, msg_type = _NLMSG.unpack_from(data, offset)[:2]
            if msg_type == NLMSG_DONE:
                return found
            if msg_type == NLMSG_ERROR or length < _NLMSG.size:
                raise OSError("sock_diag dump failed for family %d" % family)
            body = offset + _NLMSG.size
            inode = struct.unpack_from("=I", data, body + 68)[0]  # inet_diag_msg.idiag_inode
            attr = body + 72
            while attr + _RTATTR.size <= offset + length:
                attr_len, attr_type = _RTATTR.unpack_from(data, attr)
                if attr_len < _RTATTR.size:
                    break
                if attr_type == INET_DIAG_SKMEMINFO:
                    mem = struct.unpack_from("=%dI" % ((attr_len - 4) // 4), data, attr + 4)
                    drops = mem[SK_MEMINFO_DROPS] if len(mem) > SK_MEMINFO_DROPS else 0
                    found[inode] = (mem[SK_MEMINFO_RCVBUF], mem[SK_MEMINFO_SNDBUF], drops)
                attr += (attr_len + 3) & ~3
            offset += (length + 3) & ~3


def udp_socket_memory():
    """{inode: (rcvbuf, sndbuf, drops)} for every UDP socket in this network namespace, as the
    kernel accounts them (the doubled values); {} where sock_diag is unavailable."""
    if not hasattr(socket, "AF_NETLINK"):
        return {}
    found = {}
    try:
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as sock:
            sock.settimeout(2.0)
            for seq, family in enumerate((socket.AF_INET, socket.AF_INET6), 1):
                found.update(_diag_dump(sock, family, seq))
    except OSError as exc:
        log.debug("sock_diag unavailable: %s", exc)
    return found


# ---------------------------------------------------------------------------------------------
# reading a target process

class Target(object):
    """A process under inspection; every read returns None when /proc denies or lacks it."""

    def __init__(self, pid):
        self.pid = pid
        self.base = "/proc/%d" % pid

    def read(self, name):
        try:
            with open("%s/%s" % (self.base, name)) as f:
                return f.read()
        except OSError as exc:
            log.debug("cannot read %s/%s: %s", self.base, name, exc)
            return None

    def status(self):
        return parse_status(self.read("status") or "")

    def stat(self):
        text = self.read("stat")
        return parse_stat(text) if text else None

    def thread_ids(self):
        try:
            return sorted(int(tid) for tid in os.listdir(self.base + "/task"))
        except OSError:
            return []

    def socket_inodes(self):
        """Inodes of the process's sockets from the /proc/PID/fd links, or None if unreadable."""
        try:
            names = os.listdir(self.base + "/fd")
        except OSError:
            return None
        inodes = set()
        for name in names:
            try:
                link = os.readlink("%s/fd/%s" % (self.base, name))
            except OSError:
                continue  # closed between listdir and readlink
            if link.startswith("socket:["):
                inodes.add(int(link[8:-1]))
        return inodes


def _kb(text):
    try:
        return int((text or "0").split()[0])
    except ValueError:
        return 0


# ---------------------------------------------------------------------------------------------
# the checks

def check_interpreter(target):
    if target.pid == os.getpid():
        if hasattr(sys, "pypy_version_info"):
            v = sys.pypy_version_info
            try:
                import pypyjit  # noqa: F401 -- only present when PyPy was built with its JIT
                jit = "JIT on"
            except ImportError:
                jit = "no JIT"
            value = "PyPy %d.%d.%d (Python %s), %s" % (v.major, v.minor, v.micro,
                                                       platform.python_version(), jit)
            return Check("interpreter", PASS if jit == "JIT on" else WARN, value, "PyPy with JIT",
                         "" if jit == "JIT on" else "apt-get install pypy3")
        value = "%s %s" % (platform.python_implementation(), platform.python_version())
        return Check("interpreter", WARN, value, "PyPy with JIT (the daemon's hot path is several "
                     "times faster)", "run the daemon with pypy3 (apt-get install pypy3)")
    try:
        exe = os.readlink(target.base + "/exe")
    except OSError:
        exe = "unknown (cannot read /proc/%d/exe)" % target.pid
    is_pypy = "pypy" in os.path.basename(exe)
    return Check("interpreter", PASS if is_pypy else WARN, exe, "pypy3",
                 "" if is_pypy else "ExecStart=/usr/bin/pypy3 ... (apt-get install pypy3)")


def check_kernel():
    return Check("kernel", INFO, "%s %s (%s)" % (platform.system(), platform.release(),
                                                platform.machine()))


def _read_sys(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def isolation_sets():
    """(isolated CPUs, nohz_full CPUs) from /sys, falling back to /proc/cmdline for nohz_full."""
    isolated = hw.parse_cpu_list(_read_sys("/sys/devices/system/cpu/isolated") or "")
    nohz_text = _read_sys("/sys/devices/system/cpu/nohz_full")
    if nohz_text is None:
        nohz_text = ""
        for arg in (_read_sys("/proc/cmdline") or "").split():
            if arg.startswith("nohz_full="):
                nohz_text = arg[len("nohz_full="):]
    try:
        nohz = hw.parse_cpu_list(nohz_text)
    except ValueError:
        nohz = set()
    return isolated, nohz


def check_cpus(hot_core):
    online = hw.online_cpus()
    isolated, nohz = isolation_sets()
    checks = [Check("cpus", INFO, "%d online: %s" % (len(online), hw.format_cpu_list(online)))]
    core_text = str(hot_core) if hot_core is not None else "N"
    fix = ISOLATION_FIX % (core_text, core_text, core_text)
    for item, cpus in (("isolated_cpus", isolated), ("nohz_full", nohz)):
        value = hw.format_cpu_list(cpus) or "none"
        if hot_core is None:
            checks.append(Check(item, INFO, value, "the daemon's pinned core", fix if not cpus else ""))
        elif hot_core in cpus:
            checks.append(Check(item, PASS, value, "contains CPU %d" % hot_core))
        else:
            checks.append(Check(item, WARN, value, "contains CPU %d" % hot_core, fix))
    return checks


def check_memory_lock(target, status, cfg):
    vmlck, vmrss = _kb(status.get("VmLck")), _kb(status.get("VmRSS"))
    value = "VmLck %d kB, VmRSS %d kB" % (vmlck, vmrss)
    if not cfg.memory_lock:
        return Check("memory_lock", INFO, value + " (memory_lock is false in the config)")
    if vmlck > 0:
        return Check("memory_lock", PASS, value, "VmLck > 0")
    return Check("memory_lock", WARN, value, "VmLck > 0",
                 '"memory_lock": true in the config, and in the unit LimitMEMLOCK=infinity + '
                 "AmbientCapabilities=CAP_IPC_LOCK (or run as root); the daemon's log says why "
                 "locking was refused")


def check_memlock_rlimit(target, status):
    """Can mlockall(MCL_CURRENT|MCL_FUTURE) succeed for this process (same rule as hw.lock_memory)?"""
    soft, hard = parse_limits(target.read("limits") or "").get("Max locked memory", (0, 0))
    cap = bool(int(status.get("CapEff", "0"), 16) >> hw.CAP_IPC_LOCK & 1)
    needed = hw.memlock_needed_bytes(_kb(status.get("VmSize")) * 1024)
    value = "soft %s, hard %s; CAP_IPC_LOCK %s" % (
        "unlimited" if soft is None else soft, "unlimited" if hard is None else hard,
        "yes" if cap else "no")
    expected = "unlimited, >= %d bytes, or CAP_IPC_LOCK" % needed
    if cap or soft is None or soft >= needed or hard is None or hard >= needed:
        return Check("memlock_rlimit", PASS, value, expected)
    return Check("memlock_rlimit", WARN, value, expected, hw.MEMLOCK_FIX + "; or " + hw.IPC_LOCK_FIX)


def check_threads(target, cfg):
    """Affinity of each thread: last CPU it ran on (stat field 39) and Cpus_allowed_list."""
    core = cfg.cpu_affinity.core
    checks = []
    tids = target.thread_ids()
    for tid in tids[:MAX_THREADS_LISTED]:
        stat_text = target.read("task/%d/stat" % tid)
        status = parse_status(target.read("task/%d/status" % tid) or "")
        if not stat_text or "Cpus_allowed_list" not in status:
            continue  # the thread exited meanwhile
        stat = parse_stat(stat_text)
        allowed = hw.parse_cpu_list(status["Cpus_allowed_list"])
        item = "thread %d (%s)" % (tid, stat["comm"])
        value = "allowed %s, last ran on CPU %d" % (status["Cpus_allowed_list"], stat["processor"])
        if core is not None and core >= 0:
            ok = allowed == {core}
            checks.append(Check(item, PASS if ok else WARN, value, "pinned to CPU %d" % core,
                                "" if ok else "taskset -cp %d %d (the daemon pins itself when "
                                "cpu_affinity.enabled is true)" % (core, target.pid)))
        else:
            ok = len(allowed) == 1
            checks.append(Check(item, PASS if ok else WARN, value, "pinned to one CPU",
                                "" if ok else 'config: "cpu_affinity": {"enabled": true, '
                                '"processor_core": N}, or taskset -cp N %d' % target.pid))
    if len(tids) > MAX_THREADS_LISTED:
        checks.append(Check("threads", INFO, "%d threads, first %d listed"
                            % (len(tids), MAX_THREADS_LISTED)))
    return checks


def check_scheduler(stat, cfg):
    policy_name = POLICY_NAMES.get(stat["policy"], "policy %d" % stat["policy"])
    value = "%s, rt_priority %d" % (policy_name, stat["rt_priority"])
    if cfg.scheduler.policy == "fifo":
        priority = cfg.scheduler.priority
        ok = stat["policy"] == 1 and stat["rt_priority"] == priority
        return Check("scheduler", PASS if ok else WARN, value, "SCHED_FIFO, rt_priority %d" % priority,
                     "" if ok else hw.SYS_NICE_FIX)
    return Check("scheduler", PASS if stat["policy"] in (0, 1, 2) else WARN, value,
                 "SCHED_OTHER (default) or SCHED_FIFO",
                 "" if stat["policy"] in (0, 1, 2) else "chrt --other -p 0 %d" % stat["pid"])


def check_page_faults(stat):
    return Check("page_faults", INFO, "minflt %d, majflt %d" % (stat["minflt"], stat["majflt"]),
                 "no growth once running",
                 "perf stat -e page-faults,major-faults -p %d -- sleep 10" % stat["pid"])


def check_sysctls(cfg):
    snd = cfg.socket_buffers.sndbuf_bytes
    rcv = cfg.socket_buffers.rcvbuf_bytes
    checks = []
    for name, wanted in (("net.core.rmem_max", rcv), ("net.core.wmem_max", snd)):
        value = hw.read_sysctl_int(name)
        if value is None:
            checks.append(Check(name, INFO, "unreadable"))
        elif value >= wanted:
            checks.append(Check(name, PASS, str(value), ">= %d (socket_buffers)" % wanted))
        else:
            checks.append(Check(name, WARN, str(value), ">= %d (socket_buffers)" % wanted,
                                hw.SYSCTL_FIX))
    default = hw.read_sysctl_int("net.core.rmem_default")
    checks.append(Check("net.core.rmem_default", INFO, "unreadable" if default is None else
                        str(default), "kernel default; hftfeed asks SO_RCVBUF explicitly"))
    return checks


def check_udp_sockets(target, cfg):
    """The target's UDP sockets: addresses from /proc/PID/net/udp{,6} matched to its fd inodes,
    granted buffer sizes and drops from sock_diag (the doubled values the kernel accounts)."""
    inodes = target.socket_inodes()
    if inodes is None:
        return [Check("udp_sockets", INFO, "cannot read /proc/%d/fd" % target.pid, "",
                      "run the doctor as root or as the daemon's user")]
    sockets = []
    for name, family in (("net/udp", socket.AF_INET), ("net/udp6", socket.AF_INET6)):
        sockets.extend(s for s in parse_proc_net_udp(target.read(name) or "", family)
                       if s["inode"] in inodes)
    if not sockets:
        return [Check("udp_sockets", INFO, "none open", "the daemon's publisher socket")]
    memory = udp_socket_memory()
    snd = cfg.socket_buffers.sndbuf_bytes
    rcv = cfg.socket_buffers.rcvbuf_bytes
    expected = "sndbuf >= %d or rcvbuf >= %d granted (kernel shows twice that); no drops" % (snd, rcv)
    checks = []
    for s in sockets:
        item = "udp %s -> %s" % (s["local"], s["remote"])
        if s["inode"] not in memory:
            checks.append(Check(item, INFO, "drops %d (buffer sizes need sock_diag: ss -uamp)"
                                % s["drops"], expected))
            continue
        rcvbuf, sndbuf, drops = memory[s["inode"]]
        value = "sndbuf %d, rcvbuf %d (kernel accounting), drops %d" % (sndbuf, rcvbuf, drops)
        raised = sndbuf // 2 >= snd or rcvbuf // 2 >= rcv
        if drops or not raised:
            checks.append(Check(item, WARN, value, expected, hw.SYSCTL_FIX + "; raise "
                                "socket_buffers.rcvbuf_bytes if drops grow"))
        else:
            checks.append(Check(item, PASS, value, expected))
    return checks


def check_config(target, cfg):
    """Items that only make sense with --config: does the configured core exist and is it
    allowed for the target; is busy-poll on a core of its own."""
    checks = []
    core = cfg.cpu_affinity.core
    if core is not None and core >= 0:
        try:
            hw.validate_cpu_core(core, target.pid if target.pid != os.getpid() else 0)
            checks.append(Check("config cpu_affinity.processor_core", PASS, str(core),
                                "an online CPU in the allowed set"))
        except ConfigError as exc:
            checks.append(Check("config cpu_affinity.processor_core", FAIL, str(core),
                                "an online CPU in the allowed set",
                                "%s; online CPUs: %s" % (exc, hw.format_cpu_list(hw.online_cpus()))))
    if cfg.busy_poll:
        isolated, _nohz = isolation_sets()
        ok = core is not None and core >= 0 and core in isolated
        checks.append(Check("config busy_poll", PASS if ok else WARN,
                            "on (one core at 100 %%), core %s" % core, "a pinned, isolated core",
                            "" if ok else "pin to an isolated core (cpu_affinity + isolcpus=), or "
                            "set busy_poll false"))
    return checks


def hot_core_of(target, cfg):
    """The core the daemon runs on: the configured one, else the one its main thread is pinned to."""
    core = cfg.cpu_affinity.core
    if core is not None and core >= 0:
        return core
    allowed = hw.parse_cpu_list(target.status().get("Cpus_allowed_list", "") or "")
    return next(iter(allowed)) if len(allowed) == 1 else None


def collect(pid=None, cfg=None):
    """Run every check against ``pid`` (default: this process) -> list of Check.

    ``cfg`` is a validated config (hftfeed.app.config: ``load_config`` or ``host_config``);
    None = the defaults of every section, what a daemon started without those keys uses."""
    cfg = host_config() if cfg is None else cfg
    target = Target(os.getpid() if pid is None else pid)
    status = target.status()
    stat = target.stat()
    checks = [check_interpreter(target), check_kernel()]
    checks.extend(check_cpus(hot_core_of(target, cfg)))
    checks.append(check_memory_lock(target, status, cfg))
    checks.append(check_memlock_rlimit(target, status))
    checks.extend(check_threads(target, cfg))
    if stat is not None:
        checks.append(check_scheduler(stat, cfg))
        checks.append(check_page_faults(stat))
    checks.extend(check_sysctls(cfg))
    checks.extend(check_udp_sockets(target, cfg))
    checks.extend(check_config(target, cfg))
    return checks


# ---------------------------------------------------------------------------------------------
# which process to inspect

def daemon_argv(argv):
    """True if a command line (argv list) is ``... hftfeed.py run ...``: an hftfeed daemon."""
    for i, arg in enumerate(argv[:-1]):
        if os.path.basename(arg) == "hftfeed.py" and argv[i + 1] == "run":
            return True
    return False


def cmdline_of(pid):
    """The argv of ``pid`` from /proc/PID/cmdline, or None when it is gone or unreadable."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def config_of(argv):
    """The --config path a daemon was started with (None: the default)."""
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg[len("--config="):]
    return None


def find_daemons(config_path=None):
    """[(pid, argv)] of running hftfeed daemons (not this process); with ``config_path``, only
    those started with that config (compared as real paths, relative to their cwd)."""
    found = []
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        argv = cmdline_of(int(name))
        if not argv or not daemon_argv(argv):
            continue
        if config_path is not None:
            theirs = config_of(argv)
            try:
                cwd = os.readlink("/proc/%s/cwd" % name)
            except OSError:
                cwd = "/"
            if theirs is None or os.path.realpath(os.path.join(cwd, theirs)) != \
                    os.path.realpath(config_path):
                continue
        found.append((int(name), argv))
    return sorted(found)


def _shown(argv, limit=200):
    text = " ".join(argv)
    text = "".join(c if c.isprintable() else "?" for c in text)
    return text if len(text) <= limit else text[:limit] + "..."


def choose_target(pid, config_path):
    """-> (pid or None for host-only, a note for the report). Raises ConfigError when ``pid`` is
    not an hftfeed daemon or when several daemons match and none was named."""
    if pid is not None:
        argv = cmdline_of(pid)
        if argv is None:
            raise ConfigError("no process with pid %d" % pid)
        if not daemon_argv(argv):
            raise ConfigError("pid %d is not an hftfeed daemon (its command line: %s); "
                              "give the pid of `hftfeed.py run`" % (pid, _shown(argv) or "empty"))
        return pid, "inspecting pid %d: %s" % (pid, _shown(argv))
    found = find_daemons(config_path)
    if len(found) == 1:
        return found[0][0], "found the running daemon: pid %d: %s" % (found[0][0],
                                                                      _shown(found[0][1]))
    if len(found) > 1:
        raise ConfigError("%d hftfeed daemons are running (%s): choose one with --pid, or "
                          "--config with its config file"
                          % (len(found), ", ".join("pid %d" % p for p, _ in found)))
    return None, ("no running hftfeed daemon found%s: checking only the host (start the "
                  "daemon, or pass --pid)" % (" for %s" % config_path if config_path else ""))


def collect_host(cfg=None):
    """The checks that need no daemon: kernel, cores, system-wide socket limits."""
    cfg = host_config() if cfg is None else cfg
    core = cfg.cpu_affinity.core
    checks = [check_kernel()]
    checks.extend(check_cpus(core if core >= 0 else None))
    checks.extend(check_sysctls(cfg))
    return checks


# ---------------------------------------------------------------------------------------------
# output

def format_text(checks, pid):
    """The human report: one line per item, then its expectation and fix when not PASS/INFO."""
    me = "%s %s" % (platform.python_implementation(), platform.python_version())
    lines = ["hftfeed doctor %s: %s on %s, %s (doctor runs on %s)"
             % (__version__, "pid %d" % pid if pid is not None else "host only", platform.node(),
                time.strftime("%Y-%m-%d %H:%M:%S %z"), me)]
    width = max([len(c.item) for c in checks] + [10])
    for c in checks:
        lines.append("%-4s  %-*s  %s" % (c.status, width, c.item, c.value))
        if c.status in (WARN, FAIL):
            if c.expected:
                lines.append("      %-*s  expected: %s" % (width, "", c.expected))
            if c.fix:
                lines.append("      %-*s  fix: %s" % (width, "", c.fix))
    counts = dict((s, sum(1 for c in checks if c.status == s)) for s in (PASS, WARN, FAIL, INFO))
    lines.append("summary: %d PASS, %d WARN, %d FAIL, %d INFO"
                 % (counts[PASS], counts[WARN], counts[FAIL], counts[INFO]))
    return "\n".join(lines)


def _parser():
    parser = OneLineParser(prog="hftfeed.py doctor",
                           description="check this machine and a running daemon")
    parser.add_argument("--config", help="the daemon's config file (checks its core and buffers)")
    parser.add_argument("--pid", type=int, help="the daemon's pid (default: the running daemon, "
                        "found by its command line; none running: the host only)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def main(argv=None):
    """Entry point for ``hftfeed.py doctor``; returns the exit code (0, or 2 for bad input)."""
    try:
        args = _parser().parse_args(argv)
    except ConfigError as exc:
        sys.stderr.write("hftfeed.py doctor: error: %s\n" % exc)
        return 2
    except SystemExit as exc:    # --help printed; argparse exits 0
        return exc.code if isinstance(exc.code, int) else 0
    if args.pid is not None and args.pid <= 0:
        sys.stderr.write("hftfeed.py doctor: error: no process with pid %d\n" % args.pid)
        return 2
    try:
        pid, note = choose_target(args.pid, args.config)
    except ConfigError as exc:
        sys.stderr.write("hftfeed.py doctor: error: %s\n" % exc)
        return 2
    cfg = None
    if args.config:
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            sys.stderr.write("hftfeed.py doctor: error: %s\n" % exc)
            return 2
    checks = collect(pid, cfg) if pid is not None else collect_host(cfg)
    if not args.json:
        sys.stdout.write(note + "\n")
    if args.json:
        sys.stdout.write(json.dumps([c.as_dict() for c in checks], indent=1) + "\n")
    else:
        sys.stdout.write(format_text(checks, pid) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
