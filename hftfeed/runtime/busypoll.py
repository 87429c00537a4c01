"""Busy-poll mode: an asyncio event loop that never sleeps in epoll_wait.

Why: a process sleeping in epoll_wait needs the scheduler to wake it when a packet arrives, which
costs ~25 us on a loopback hop in a VM (PERF_NOTES: ping-pong p50 28 us blocking vs 4.5-5 us
busy-polling). Here the selector asks the kernel "anything ready?" with a zero timeout, again and
again, until an event arrives or the loop's own timeout (its next timer) expires. asyncio itself
is unchanged: timers, pings, reconnects and signal handlers run as usual.

Cost: the loop's thread uses 100 % of one core even when the market is quiet. Use it only on a
pinned core that nothing else needs (cpu_affinity, isolcpus=); see docs/deployment.md.

``python3 -m hftfeed.runtime.busypoll pingpong [--busy]`` measures the effect on this machine.
"""

import argparse
import asyncio
import selectors
import subprocess
import sys
import time

from hftfeed.runtime import hw


class BusyPollSelector(selectors.DefaultSelector):
    """The platform's default selector (epoll on Linux) whose ``select(timeout)`` spins with
    zero-timeout polls instead of blocking for ``timeout``."""

    def select(self, timeout=None):
        poll = super(BusyPollSelector, self).select  # bound once: the spin loop stays small
        ready = poll(0)
        if ready or (timeout is not None and timeout <= 0):
            return ready
        clock = time.monotonic  # the clock asyncio's loop.time() uses
        deadline = None if timeout is None else clock() + timeout
        while True:
            ready = poll(0)
            if ready:
                return ready
            if deadline is not None and clock() >= deadline:
                return ready


def new_event_loop(busy_poll=False):
    """A new asyncio loop: busy-polling if ``busy_poll`` (config key ``busy_poll``), else the
    interpreter's default loop."""
    if busy_poll:
        return asyncio.SelectorEventLoop(BusyPollSelector())
    return asyncio.new_event_loop()


# ---------------------------------------------------------------------------------------------
# ping-pong measurement: one-way latency = round trip / 2 over loopback UDP

class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.transport = transport

    def datagram_received(self, data, addr):
        self.transport.sendto(data, addr)


class _Pinger(asyncio.DatagramProtocol):
    """Sends the next ping as soon as the previous one comes back; records each round trip."""

    def __init__(self, payload, count, done):
        self.payload = payload
        self.count = count
        self.done = done
        self.rtts_ns = []
        self.sent_ns = 0

    def connection_made(self, transport):
        self.transport = transport
        self._send()

    def _send(self):
        self.sent_ns = time.perf_counter_ns()
        self.transport.sendto(self.payload)

    def datagram_received(self, data, addr):
        self.rtts_ns.append(time.perf_counter_ns() - self.sent_ns)
        if len(self.rtts_ns) < self.count:
            self._send()
        elif not self.done.done():
            self.done.set_result(None)


def _pin(core):
    if core is not None and core >= 0:
        hw.set_cpu_affinity(core)


def run_echo(busy_poll, core=None, port=0):
    """Echo server for :func:`measure_pingpong`: prints its port, echoes until killed."""
    _pin(core)
    loop = new_event_loop(busy_poll)
    transport, _ = loop.run_until_complete(
        loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", port)))
    sys.stdout.write("%d\n" % transport.get_extra_info("sockname")[1])
    sys.stdout.flush()
    try:
        loop.run_forever()
    finally:
        transport.close()
        loop.close()


def _percentile(sorted_values, fraction):
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def measure_pingpong(busy_poll, count=20000, warmup=2000, payload_bytes=200,
                     client_core=None, echo_core=None, pin=True, timeout_s=60.0):
    """Round trips between this process and an echo child, both in the same loop mode.

    Returns one-way latency (RTT/2) percentiles in ns over ``count`` trips after discarding
    ``warmup`` (PyPy's JIT needs them). With ``pin``, this process and the echo child are
    pinned to two different CPUs (default: the last two allowed), as a deployment would be;
    note that pinning changes this process's affinity for good."""
    allowed = sorted(hw.get_cpu_affinity(0)) if sys.platform.startswith("linux") else []
    if not pin:
        client_core = echo_core = None
    elif client_core is None and len(allowed) >= 2:
        client_core, echo_core = allowed[-1], allowed[-2]
    cmd = [sys.executable, "-m", "hftfeed.runtime.busypoll", "echo"] + (["--busy"] if busy_poll else [])
    if echo_core is not None:
        cmd += ["--core", str(echo_core)]
    if client_core is not None and echo_core is not None:
        # The child inherits our mask, and a previous run may have narrowed it to one core.
        hw._set_affinity(0, {client_core, echo_core})
    echo = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    timed_out = False
    try:
        port = int(echo.stdout.readline())
        _pin(client_core)
        loop = new_event_loop(busy_poll)
        try:
            done = loop.create_future()
            transport, pinger = loop.run_until_complete(loop.create_datagram_endpoint(
                lambda: _Pinger(b"p" * payload_bytes, warmup + count, done),
                remote_addr=("127.0.0.1", port)))
            try:
                loop.run_until_complete(asyncio.wait_for(done, timeout_s))
            except asyncio.TimeoutError:
                # A busy-polling pair on a shared, loaded core waits whole scheduler slices per
                # trip; report what was measured instead of failing.
                timed_out = True
            transport.close()
            loop.run_until_complete(asyncio.sleep(0))  # let the close run: no socket left to GC
        finally:
            loop.close()
    finally:
        echo.terminate()
        echo.wait()
        echo.stdout.close()
    one_way = sorted(rtt // 2 for rtt in pinger.rtts_ns[warmup:]) or [0]
    return {"timed_out": timed_out, "mode": "busy-poll" if busy_poll else "normal", "count": len(one_way),
            "warmup": warmup, "p50_ns": _percentile(one_way, 0.50),
            "p90_ns": _percentile(one_way, 0.90), "p99_ns": _percentile(one_way, 0.99),
            "p99.9_ns": _percentile(one_way, 0.999), "max_ns": one_way[-1],
            "interpreter": sys.implementation.name}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python3 -m hftfeed.runtime.busypoll",
                                     description="measure loopback UDP one-way latency")
    sub = parser.add_subparsers(dest="command")
    ping = sub.add_parser("pingpong", help="measure (default: normal then busy-poll)")
    ping.add_argument("--busy", action="store_true", help="busy-poll mode only")
    ping.add_argument("--normal", action="store_true", help="normal mode only")
    ping.add_argument("--count", type=int, default=20000)
    ping.add_argument("--warmup", type=int, default=2000)
    echo = sub.add_parser("echo", help="(internal) echo server")
    echo.add_argument("--busy", action="store_true")
    echo.add_argument("--core", type=int, default=None)
    args = parser.parse_args(argv)
    if args.command == "echo":
        run_echo(args.busy, args.core)
        return 0
    if args.command != "pingpong":
        parser.print_help()
        return 2
    modes = [False, True]
    if args.busy != args.normal:
        modes = [args.busy]
    # Choose the two cores once: the first run pins this process, which narrows its allowed set.
    allowed = sorted(hw.get_cpu_affinity(0)) if sys.platform.startswith("linux") else []
    client_core, echo_core = (allowed[-1], allowed[-2]) if len(allowed) >= 2 else (None, None)
    for busy in modes:
        r = measure_pingpong(busy, count=args.count, warmup=args.warmup,
                             client_core=client_core, echo_core=echo_core)
        print("%-8s %-9s one-way p50 %7.1f us  p99 %7.1f us  max %8.1f us  (n=%d after %d warm-up%s)"
              % (r["interpreter"], r["mode"], r["p50_ns"] / 1e3, r["p99_ns"] / 1e3,
                 r["max_ns"] / 1e3, r["count"], r["warmup"],
                 ", TIMED OUT: is another process using these cores?" if r["timed_out"] else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
