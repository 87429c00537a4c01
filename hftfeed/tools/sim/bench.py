"""Measure the message rate the simulator sustains: ``python3 -m hftfeed.tools.sim.bench``.

Starts the simulator as a separate process (``--sim-python`` picks its interpreter, ``--venue``
its dialect), connects one or more counting clients in this process (subscribed to every
symbol's book stream with the request the dialect names, ``book_request``), and reports
depth messages received per second after a warm-up (PyPy's JIT needs a few seconds). The clients
only walk frame headers (server frames are unmasked, RFC 6455 §5.2), so the client side is not
what is being measured.
"""

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time

from hftfeed.tools.sim import rawclient
from hftfeed.venues import registry     # pure data: imports no adapter and nothing of the core
from hftfeed.codecs.ws_proto import (CLIENT, Connection, build_client_request, make_client_key,
                              parse_http_head)


def cpu_seconds(pid):
    """user + system CPU time of a process (Linux /proc), or None elsewhere.

    Why: on a shared machine wall-clock rates depend on the neighbours; messages per CPU-second
    of the simulator is what one dedicated core would sustain.
    """
    try:
        with open("/proc/%d/stat" % pid) as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class FrameCounter(object):
    """Counts complete frames in a byte stream without decoding payloads."""

    def __init__(self):
        self.buf = b""
        self.frames = 0
        self.bytes = 0

    def feed(self, data):
        buf = self.buf + data if self.buf else data
        n = len(buf)
        i = 0
        frames = 0
        while i + 2 <= n:
            ln = buf[i + 1] & 0x7F
            hdr = 2
            if ln == 126:
                if i + 4 > n:
                    break
                ln = (buf[i + 2] << 8) | buf[i + 3]
                hdr = 4
            elif ln == 127:
                if i + 10 > n:
                    break
                ln = int.from_bytes(buf[i + 2:i + 10], "big")
                hdr = 10
            if i + hdr + ln > n:
                break
            i += hdr + ln
            frames += 1
        self.buf = buf[i:]
        self.frames += frames
        self.bytes += len(data)


def venue_client(venue, symbols):
    """``(target, [subscribe texts])`` of a client reading every symbol's book stream: the
    venue's path (registry) and its dialect's own book request."""
    suffix, texts = registry.sim_dialect(venue).book_request(venue, symbols)
    return (registry.ws_path(venue) + suffix) or "/", texts


def bench_symbols(venue, n):
    """``n`` synthetic symbols in the venue's own syntax: its first demo symbol with the base
    currency renamed (``BTC-USDT-SWAP`` -> ``S0-USDT-SWAP``, ``BTC/USD`` -> ``S0/USD``)."""
    model = registry.spec(venue).demo_symbols[0]
    base = "BTC" if model.startswith("BTC") else model[:3]
    return [model.replace(base, "S%d" % i, 1) for i in range(n)]


async def count_client(host, port, target, counter, stop, texts=()):
    reader, writer = await asyncio.open_connection(host, port)
    key = make_client_key(os.urandom)
    writer.write(build_client_request("%s:%d" % (host, port), target, key))
    if texts:
        conn = Connection(CLIENT)       # masks the client's frames (RFC 6455 §5.3)
        for text in texts:
            conn.send_text(text)
        writer.write(conn.data_to_send())
    buf = b""
    while parse_http_head(buf) is None:
        buf += await reader.read(65536)
    _head, consumed = parse_http_head(buf)
    counter.feed(buf[consumed:])
    while not stop.is_set():
        data = await reader.read(1 << 20)
        if not data:
            break
        counter.feed(data)
    writer.close()


async def bench(ns):
    symbols = bench_symbols(ns.venue, ns.symbols)
    cmd = [ns.sim_python, "-m", "hftfeed.tools.sim", "--venue", ns.venue, "--symbols", ",".join(symbols),
           "--rate", str(ns.rate), "--steps-per-msg", str(ns.steps_per_msg), "--log-level", "warn"]
    if ns.record:
        cmd += ["--record", ns.record]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        line = proc.stdout.readline().decode()
        port = int(line.rsplit(":", 1)[1])
        target, texts = venue_client(ns.venue, symbols)
        stop = asyncio.Event()
        counters = [FrameCounter() for _ in range(ns.conns)]
        tasks = [asyncio.get_running_loop().create_task(
            count_client("127.0.0.1", port, target, c, stop, texts)) for c in counters]
        await asyncio.sleep(ns.warmup_s)
        _s, st0 = await rawclient.get_json("127.0.0.1", port, "/_sim/status")
        cpu0 = cpu_seconds(proc.pid)
        f0 = sum(c.frames for c in counters)
        b0 = sum(c.bytes for c in counters)
        t0 = time.monotonic()
        await asyncio.sleep(ns.seconds)
        f1 = sum(c.frames for c in counters)
        b1 = sum(c.bytes for c in counters)
        dt = time.monotonic() - t0
        cpu1 = cpu_seconds(proc.pid)
        _s, st = await rawclient.get_json("127.0.0.1", port, "/_sim/status")
        stop.set()
        for t in tasks:
            t.cancel()
        result = {
            "venue": ns.venue, "sim_python": ns.sim_python, "target_rate": ns.rate,
            "symbols": ns.symbols,
            "conns": ns.conns, "steps_per_msg": ns.steps_per_msg, "record": bool(ns.record),
            "warmup_s": ns.warmup_s, "measured_s": round(dt, 2),
            "msgs_per_s_per_conn": round((f1 - f0) / dt / ns.conns),
            "mbytes_per_s_total": round((b1 - b0) / dt / 1e6, 1),
            "sim_generated_per_s": round((sum(st["messages_generated"].values())
                                          - sum(st0["messages_generated"].values())) / dt),
            "sim_behind_msgs": st["behind_msgs"] - st0["behind_msgs"],
            "sim_cpu_share": round((cpu1 - cpu0) / dt, 2) if cpu0 is not None else None,
            "sim_msgs_per_cpu_s": (round((f1 - f0) / ns.conns / (cpu1 - cpu0))
                                   if cpu0 is not None and cpu1 > cpu0 else None),
            "disconnects": st["disconnects"],
        }
        print(json.dumps(result))
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def build_parser():
    p = argparse.ArgumentParser(prog="python3 -m hftfeed.tools.sim.bench")
    p.add_argument("--venue", default="binance", choices=registry.NAMES)
    p.add_argument("--rate", type=float, default=100000)
    p.add_argument("--symbols", type=int, default=10)
    p.add_argument("--conns", type=int, default=1)
    p.add_argument("--steps-per-msg", type=int, default=1)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--warmup-s", type=float, default=None,
                   help="default 20 s for a PyPy simulator (JIT warm-up), else 3 s")
    p.add_argument("--record", default=None)
    p.add_argument("--sim-python", default=sys.executable)
    return p


def run(argv=None):
    """Parse ``argv``, measure, print the JSON line and return its dict."""
    ns = build_parser().parse_args(argv)
    if ns.warmup_s is None:
        ns.warmup_s = 20.0 if "pypy" in os.path.basename(ns.sim_python) else 3.0
    return asyncio.run(bench(ns))


def main(argv=None):
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
