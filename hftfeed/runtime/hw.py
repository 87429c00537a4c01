"""Operating-system controls for a low-jitter feed handler: memory locking, CPU pinning, scheduler
priority and socket-buffer checks; ``apply_startup`` runs them (and the GC settings of gctune.py)
in the order that matters.

Why together: each control is a switch in the config (docs/config.md), each must degrade to a
clear warning when the OS refuses (no capability, a small rlimit, a cgroup cpuset), and each must
name the command or unit line that fixes it. Every public function therefore returns an
:class:`HwResult` and logs exactly one line; an OS refusal never raises. Only a configuration
mistake this machine reveals (a core that does not exist here) raises ``ConfigError``,
which the CLI turns into exit code 2.

Linux semantics used here (man pages mlockall(2), sched_setaffinity(2), sched_setscheduler(2),
socket(7), capabilities(7)) are cited next to the code that depends on them.
"""

import ctypes
import errno
import logging
import mmap
import os
import resource
import socket
import sys

from hftfeed.errors import ConfigError
from hftfeed.runtime.gctune import tune_gc
from hftfeed.runtime.hwresult import ERROR, OK, SKIPPED, WARN, errno_name as _errno_name, report as _report

log = logging.getLogger("hftfeed.hw")

IS_LINUX = sys.platform.startswith("linux")

CAP_IPC_LOCK = 14            # capabilities(7): bypasses RLIMIT_MEMLOCK for mlock/mlockall/mmap
CAP_SYS_NICE = 23            # capabilities(7): allows SCHED_FIFO without RLIMIT_RTPRIO
MIN_MEMLOCK_RLIMIT_BYTES = 1 << 30   # see memlock_needed_bytes()
VMSIZE_HEADROOM = 4                   # see memlock_needed_bytes()
CPU_SET_BITS = 1024                   # glibc's CPU_SETSIZE; grown on EINVAL for bigger machines
SYSCTL_SUGGESTED_BYTES = 16 * 1024 * 1024   # what etc/sysctl.d/60-hftfeed.conf sets

MEMLOCK_FIX = ("systemd: LimitMEMLOCK=infinity (systemd/hftfeed.service); shell: ulimit -l unlimited; "
               "or '<user> - memlock unlimited' in /etc/security/limits.conf")
IPC_LOCK_FIX = ("run as root, or grant CAP_IPC_LOCK: systemd 'AmbientCapabilities=CAP_IPC_LOCK' "
                "(systemd/hftfeed.service), or setcap cap_ipc_lock+ep $(readlink -f $(which pypy3))")
SYS_NICE_FIX = ("grant CAP_SYS_NICE (systemd 'AmbientCapabilities=CAP_SYS_NICE') or LimitRTPRIO=99, "
                "and do not set RestrictRealtime=yes in the unit")
SYSCTL_FIX = ("sysctl -w net.core.rmem_max=%d net.core.wmem_max=%d; persist with "
              "install -m 644 etc/sysctl.d/60-hftfeed.conf /etc/sysctl.d/ && sysctl --system"
              % (SYSCTL_SUGGESTED_BYTES, SYSCTL_SUGGESTED_BYTES))


# ---------------------------------------------------------------------------------------------
# /proc helpers (this process; doctor.py reads other processes)

def proc_status_field(field, pid="self"):
    """Value of one ``Name:`` line of /proc/PID/status as a string, or None if absent."""
    prefix = field + ":"
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(prefix):
                    return line[len(prefix):].strip()
    except OSError as exc:
        log.debug("cannot read /proc/%s/status: %s", pid, exc)
    return None


def proc_status_kb(field, pid="self"):
    """A ``VmXxx:  N kB`` line as an int number of kB (0 if unreadable)."""
    value = proc_status_field(field, pid)
    if not value:
        return 0
    try:
        return int(value.split()[0])
    except ValueError:
        log.warning("unexpected /proc/%s/status %s line: %r", pid, field, value)
        return 0


def has_capability(cap, pid="self"):
    """True if ``cap`` is in the effective set (CapEff bitmask of /proc/PID/status)."""
    value = proc_status_field("CapEff", pid)
    if value is None:
        return os.geteuid() == 0 if pid == "self" else False
    return bool(int(value, 16) >> cap & 1)


def read_sysctl_int(name):
    """An integer sysctl such as ``net.core.rmem_max`` from /proc/sys, or None if unreadable."""
    path = "/proc/sys/" + name.replace(".", "/")
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None


def parse_cpu_list(text):
    """Parse the kernel's CPU list format ("0-3,8,10-11") into a set of ints."""
    cpus = set()
    for part in text.strip().split(","):
        part = part.strip()
        if not part or part == "(null)":
            continue
        if "-" in part:
            lo, hi = part.split("-", 1)
            cpus.update(range(int(lo), int(hi) + 1))
        else:
            cpus.add(int(part))
    return cpus


def format_cpu_list(cpus):
    """The inverse of :func:`parse_cpu_list` ({0, 1, 2, 5} -> "0-2,5"), "" for an empty set."""
    parts = []
    run = []
    for cpu in sorted(cpus):
        if run and cpu == run[-1] + 1:
            run.append(cpu)
            continue
        if run:
            parts.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
        run = [cpu]
    if run:
        parts.append(str(run[0]) if len(run) == 1 else "%d-%d" % (run[0], run[-1]))
    return ",".join(parts)


def online_cpus():
    """The CPUs the kernel has online (/sys/devices/system/cpu/online), else range(cpu_count)."""
    try:
        with open("/sys/devices/system/cpu/online") as f:
            return parse_cpu_list(f.read())
    except (OSError, ValueError) as exc:
        log.debug("cannot read /sys/devices/system/cpu/online: %s", exc)
        return set(range(os.cpu_count() or 1))


# ---------------------------------------------------------------------------------------------
# libc through ctypes

_libc = None


def libc():
    """The C library with errno capture (needed to tell EPERM from ENOMEM after mlockall)."""
    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.mlockall  # noqa: B018 -- probe: some builds need the explicit soname
        except (OSError, AttributeError):
            lib = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc = lib
    return _libc


def _mcl_flags():
    """(MCL_CURRENT, MCL_FUTURE): 1, 2 on most Linux architectures; powerpc/sparc/alpha differ."""
    machine = os.uname().machine
    if machine.startswith(("ppc", "powerpc", "sparc")):
        return 0x2000, 0x4000
    if machine.startswith("alpha"):
        return 8192, 16384
    return 1, 2


# ---------------------------------------------------------------------------------------------
# memory locking

def memlock_needed_bytes(vmsize_bytes):
    """Smallest finite RLIMIT_MEMLOCK under which we agree to mlockall(MCL_CURRENT | MCL_FUTURE).

    Why a threshold and not "try and see": with MCL_FUTURE every later mapping is locked and must
    fit under the limit (mlock(2), mmap(2) EAGAIN), so a limit that is just big enough at start-up
    turns into a MemoryError or a fatal PyPy GC/JIT "cannot map memory" hours later, in the middle
    of a session. MCL_CURRENT itself compares the whole virtual size (VmSize, not VmRSS) against
    the limit. So we ask for four times the current VmSize (books, nursery growth, JIT code) and
    never less than 1 GiB; anything smaller is safer left unlocked with a warning.
    """
    return max(MIN_MEMLOCK_RLIMIT_BYTES, VMSIZE_HEADROOM * vmsize_bytes)


def _fmt_limit(value):
    return "unlimited" if value == resource.RLIM_INFINITY else "%d bytes" % value


def _check_memlock_rlimit(name):
    """Return None if locking may proceed, else the warn HwResult (raising the soft limit to the
    hard one when that is enough: an unprivileged process may do that, setrlimit(2))."""
    if has_capability(CAP_IPC_LOCK):
        return None  # capabilities(7): CAP_IPC_LOCK ignores RLIMIT_MEMLOCK entirely
    soft, hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    needed = memlock_needed_bytes(proc_status_kb("VmSize") * 1024)
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return None
    if hard == resource.RLIM_INFINITY or hard >= needed:
        try:
            resource.setrlimit(resource.RLIMIT_MEMLOCK, (hard, hard))
            log.info("%s: raised the soft RLIMIT_MEMLOCK from %d bytes to the hard limit %s",
                     name, soft, _fmt_limit(hard))
            return None
        except (OSError, ValueError) as exc:
            log.warning("%s: cannot raise RLIMIT_MEMLOCK to the hard limit: %s", name, exc)
    return _report(name, WARN,
                   "not locking: RLIMIT_MEMLOCK is %s (hard %s), below the %d bytes needed for "
                   "MCL_FUTURE (every later allocation must fit) and no CAP_IPC_LOCK"
                   % (_fmt_limit(soft), _fmt_limit(hard), needed),
                   MEMLOCK_FIX + "; or " + IPC_LOCK_FIX)


def lock_memory(enabled=True):
    """mlockall(MCL_CURRENT | MCL_FUTURE): no page of this process is ever swapped out or
    reclaimed, so the hot path never takes a major page fault. Call before the hot path allocates
    (MCL_FUTURE then covers the books and buffers too)."""
    name = "memory_lock"
    if not enabled:
        return _report(name, SKIPPED, "memory_lock is off: memory not locked")
    if not IS_LINUX:
        return _report(name, SKIPPED, "mlockall is Linux-only here (%s): nothing done" % sys.platform)
    refusal = _check_memlock_rlimit(name)
    if refusal is not None:
        return refusal
    try:
        mlockall = libc().mlockall
    except (OSError, AttributeError) as exc:
        return _report(name, ERROR, "cannot load libc mlockall: %s" % exc)
    current, future = _mcl_flags()
    if mlockall(current | future) == 0:
        return _report(name, OK, "memory locked (VmLck %d kB)" % proc_status_kb("VmLck"))
    code = ctypes.get_errno()
    soft, _hard = resource.getrlimit(resource.RLIMIT_MEMLOCK)
    if code == errno.EPERM:   # mlockall(2): RLIMIT_MEMLOCK is 0 and no CAP_IPC_LOCK
        return _report(name, WARN, "mlockall refused (EPERM): needs root or CAP_IPC_LOCK",
                       IPC_LOCK_FIX)
    if code == errno.ENOMEM:  # mlockall(2): MCL_CURRENT and VmSize above RLIMIT_MEMLOCK
        return _report(name, WARN, "mlockall failed (ENOMEM): RLIMIT_MEMLOCK is %s"
                       % _fmt_limit(soft), MEMLOCK_FIX)
    return _report(name, WARN, "mlockall failed (%s: %s)" % (_errno_name(code), os.strerror(code)),
                   MEMLOCK_FIX)


def prefault(buffers):
    """Touch every page of each buffer (bytearray, array, writable memoryview) so the first
    packet does not pay the page fault. Writes each page's first byte back to itself: a write,
    not a read, because a read of untouched anonymous memory maps the shared zero page only."""
    name = "prefault"
    page = mmap.PAGESIZE
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    total_bytes = 0
    pages = 0
    for buf in buffers:
        outer = memoryview(buf)
        view = outer if outer.format == "B" and outer.ndim == 1 else outer.cast("B")
        nbytes = len(view)
        total_bytes += nbytes
        if nbytes == 0:
            view.release()
            outer.release()
            continue
        offsets = list(range(0, nbytes, page)) + [nbytes - 1]  # last byte: a partial last page
        if view.readonly:
            for i in offsets:
                view[i]  # noqa: B018 -- a read is all a read-only buffer allows
        else:
            for i in offsets:
                view[i] = view[i]
        pages += len(offsets) - 1
        view.release()  # an exported view would keep a bytearray from being resized
        outer.release()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    return _report(name, OK, "touched %d pages in %d buffers (%d bytes, %d minor faults taken now)"
                   % (pages, len(buffers), total_bytes, faults))


# ---------------------------------------------------------------------------------------------
# CPU affinity

def _cpu_set_type(nbits):
    word_bits = 8 * ctypes.sizeof(ctypes.c_ulong)
    return ctypes.c_ulong * ((nbits + word_bits - 1) // word_bits), word_bits


def _libc_getaffinity(pid):
    """sched_getaffinity(2) through libc, growing the mask on EINVAL (more than 1024 CPUs)."""
    nbits = CPU_SET_BITS
    while True:
        set_type, word_bits = _cpu_set_type(nbits)
        mask = set_type()
        if libc().sched_getaffinity(ctypes.c_int(pid), ctypes.c_size_t(ctypes.sizeof(mask)),
                                    ctypes.byref(mask)) == 0:
            return {i for i in range(nbits) if mask[i // word_bits] >> (i % word_bits) & 1}
        code = ctypes.get_errno()
        if code != errno.EINVAL or nbits >= 1 << 20:
            raise OSError(code, "sched_getaffinity: " + os.strerror(code))
        nbits *= 2


def _libc_setaffinity(pid, cpus):
    """sched_setaffinity(2) through libc: PyPy 7.3.11 has no os.sched_setaffinity."""
    nbits = max(CPU_SET_BITS, max(cpus) + 1)
    set_type, word_bits = _cpu_set_type(nbits)
    mask = set_type()
    for cpu in cpus:
        mask[cpu // word_bits] |= 1 << (cpu % word_bits)
    if libc().sched_setaffinity(ctypes.c_int(pid), ctypes.c_size_t(ctypes.sizeof(mask)),
                                ctypes.byref(mask)) != 0:
        code = ctypes.get_errno()
        raise OSError(code, "sched_setaffinity: " + os.strerror(code))


def get_cpu_affinity(pid=0):
    """The set of CPUs ``pid`` (0 = the calling thread) may run on."""
    if hasattr(os, "sched_getaffinity"):
        return set(os.sched_getaffinity(pid))
    return _libc_getaffinity(pid)


def _set_affinity(pid, cpus):
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(pid, cpus)
    else:
        _libc_setaffinity(pid, cpus)


def validate_cpu_core(core, pid=0):
    """Check ``cpu_affinity.processor_core`` against this machine; return it or raise ConfigError.

    -1 (disabled) is valid everywhere. A core must be online and in the allowed set of ``pid``
    (a cgroup cpuset, taskset or systemd CPUAffinity= may have narrowed it)."""
    if isinstance(core, bool) or not isinstance(core, int):
        raise ConfigError("cpu_affinity.processor_core: expected an integer, got %r" % (core,))
    if core == -1:
        return core
    if core < -1:
        raise ConfigError("cpu_affinity.processor_core: %d is not a CPU number (-1 disables)" % core)
    online = online_cpus()
    if core not in online:
        raise ConfigError("cpu_affinity.processor_core: CPU %d does not exist on this machine "
                          "(online CPUs: %s)" % (core, format_cpu_list(online)))
    if not IS_LINUX:
        return core
    try:
        allowed = get_cpu_affinity(pid)
    except OSError as exc:
        log.warning("cannot read the allowed CPU set of pid %d: %s", pid, exc)
        return core
    if core not in allowed:
        raise ConfigError("cpu_affinity.processor_core: CPU %d is not in the allowed CPU set %s "
                          "of this process (cgroup cpuset, taskset or systemd CPUAffinity=)"
                          % (core, format_cpu_list(allowed)))
    return core


def set_cpu_affinity(core, pid=0):
    """Pin ``pid`` (0 = the calling thread; threads started later inherit it) to one core.

    Call it from the hot thread before other threads start. -1 disables. An invalid core raises
    ConfigError; an OS refusal (another user's pid, a cpuset change in between) is a warning."""
    name = "cpu_affinity"
    if core is None or core == -1:
        return _report(name, SKIPPED, "cpu_affinity disabled (processor_core -1): not pinned")
    if not IS_LINUX:
        return _report(name, SKIPPED, "CPU pinning is Linux-only here (%s)" % sys.platform)
    validate_cpu_core(core, pid)
    via = "os.sched_setaffinity" if hasattr(os, "sched_setaffinity") else "libc sched_setaffinity"
    try:
        _set_affinity(pid, {core})
        granted = get_cpu_affinity(pid)
    except OSError as exc:
        return _report(name, WARN, "cannot pin to CPU %d (%s: %s)"
                       % (core, _errno_name(exc.errno or 0), exc.strerror or exc),
                       "taskset -cp %d <pid>, or CPUAffinity=%d in the systemd unit" % (core, core))
    if granted != {core}:
        return _report(name, WARN, "asked for CPU %d, kernel reports %s"
                       % (core, format_cpu_list(granted)), "check cgroup cpusets: cat /proc/self/status")
    return _report(name, OK, "pinned to CPU %d (%s)" % (core, via))


# ---------------------------------------------------------------------------------------------
# real-time scheduling

def set_realtime(policy, priority, pid=0):
    """SCHED_FIFO at ``priority`` for ``pid`` (0 = calling thread): the thread then preempts every
    normal task on its core. "other" leaves the default time-sharing policy alone. The values
    come from the validated ``scheduler`` section (app/config.py checks them, once)."""
    name = "scheduler"
    if policy == "other":
        return _report(name, SKIPPED, "scheduler.policy is other: default time-sharing scheduler")
    if not hasattr(os, "sched_setscheduler"):
        return _report(name, SKIPPED, "SCHED_FIFO is not available on %s" % sys.platform)
    try:
        os.sched_setscheduler(pid, os.SCHED_FIFO, os.sched_param(priority))
        granted_policy = os.sched_getscheduler(pid)
        granted_priority = os.sched_getparam(pid).sched_priority
    except OSError as exc:
        code = exc.errno or 0
        if code == errno.EPERM:  # sched_setscheduler(2): no CAP_SYS_NICE and RLIMIT_RTPRIO too low
            return _report(name, WARN, "SCHED_FIFO %d refused (EPERM)" % priority, SYS_NICE_FIX)
        return _report(name, WARN, "SCHED_FIFO %d failed (%s: %s)"
                       % (priority, _errno_name(code), exc.strerror), SYS_NICE_FIX)
    if granted_policy != os.SCHED_FIFO or granted_priority != priority:
        return _report(name, WARN, "asked SCHED_FIFO %d, kernel reports policy %d priority %d"
                       % (priority, granted_policy, granted_priority), SYS_NICE_FIX)
    return _report(name, OK, "SCHED_FIFO priority %d" % priority)


# ---------------------------------------------------------------------------------------------
# socket buffers

def apply_socket_buffers(sock, sndbuf_bytes, rcvbuf_bytes):
    """setsockopt SO_SNDBUF / SO_RCVBUF (0 or None = keep the kernel default), then report what
    was granted. The kernel silently caps at net.core.wmem_max / rmem_max, hence the read-back."""
    for option, value in ((socket.SO_SNDBUF, sndbuf_bytes), (socket.SO_RCVBUF, rcvbuf_bytes)):
        if value:
            try:
                sock.setsockopt(socket.SOL_SOCKET, option, value)
            except OSError as exc:
                log.warning("setsockopt(%s, %d) failed: %s", "SO_SNDBUF" if option == socket.SO_SNDBUF
                            else "SO_RCVBUF", value, exc)
    return socket_buffer_report(sock, sndbuf_bytes, rcvbuf_bytes)


def socket_buffer_report(sock, requested_snd, requested_rcv):
    """Compare what the kernel granted with what was asked.

    socket(7): Linux doubles the value passed to SO_SNDBUF/SO_RCVBUF (bookkeeping overhead) and
    getsockopt returns the doubled value, so granted = read-back / 2 is compared with the request.
    A request above net.core.wmem_max / rmem_max is silently capped at the maximum."""
    name = "socket_buffers"
    divisor = 2 if IS_LINUX else 1
    parts = []
    capped = []
    for label, option, requested, sysctl in (
            ("sndbuf", socket.SO_SNDBUF, requested_snd, "net.core.wmem_max"),
            ("rcvbuf", socket.SO_RCVBUF, requested_rcv, "net.core.rmem_max")):
        raw = sock.getsockopt(socket.SOL_SOCKET, option)
        granted = raw // divisor
        if requested:
            parts.append("%s %d B granted (kernel reports %d)" % (label, granted, raw))
        else:
            parts.append("%s kernel default %d B (kernel reports %d)" % (label, granted, raw))
        if requested and granted < requested:
            current = read_sysctl_int(sysctl)
            capped.append("%s capped at %d B, asked %d: %s is %s"
                          % (label, granted, requested, sysctl,
                             "unknown" if current is None else current))
    if capped:
        return _report(name, WARN, "; ".join(capped), SYSCTL_FIX)
    return _report(name, OK, ", ".join(parts))


# ---------------------------------------------------------------------------------------------
# start-up sequence

def apply_startup(cfg):
    """Apply the Phase 1 controls of a validated config (hftfeed/app/config.py: the
    ``cpu_affinity``, ``memory_lock``, ``scheduler`` and ``gc`` sections), in this order:

    1. CPU affinity first: mlockall(MCL_CURRENT) then faults every page in from the pinned core,
       so on a NUMA machine the kernel's first-touch policy puts them on that core's node;
    2. memory lock, before the hot path allocates (MCL_FUTURE then covers the books);
    3. SCHED_FIFO after the page-faulting of step 2, which should not run at real-time priority;
    4. GC settings.
    Returns the list of HwResult. Raises ConfigError only for a core this machine does not have."""
    return [set_cpu_affinity(cfg.cpu_affinity.core),
            lock_memory(cfg.memory_lock),
            set_realtime(cfg.scheduler.policy, cfg.scheduler.priority),
            tune_gc(cfg.gc)]


def physical_memory_bytes():
    """This machine's physical memory (sysconf), or 0 when the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError) as exc:
        log.debug("cannot read the physical memory size: %s", exc)
        return 0
