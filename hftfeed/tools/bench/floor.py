"""The latency floor: a two-process UDP ping-pong on loopback, measured in the same run.

Every end-to-end latency is printed as a ratio to this floor, so a figure says how far the code
is from what the kernel and the interpreter allow on *this* machine. One-way latency is the
round trip / 2 (``busypoll.measure_pingpong``); a wire-to-wire path (simulator -> daemon ->
receiver) crosses two such hops, so its floor is twice the one-way figure.

Both modes: blocking (each side sleeps in epoll_wait, as the daemon does by default) and
busy-polling (``busy_poll``: each side spins on a zero-timeout poll, on its own pinned core).

Runs in its own process (``python -m hftfeed.tools.bench.floor``) because measure_pingpong pins the
calling process to a core for good, and bench.py's later children would inherit that.
"""

import argparse
import json
import sys

from hftfeed.runtime.busypoll import measure_pingpong

SIZES = {"full": (20000, 5000, 15.0), "quick": (2000, 500, 4.0)}   # trips, warm-up, timeout


def measure(quick=False):
    count, warmup, timeout_s = SIZES["quick" if quick else "full"]
    result = {"method": "asyncio UDP ping-pong between two processes pinned to two cores, "
                        "200-byte payload, one-way = RTT/2",
              "trips": count, "warmup_trips_discarded": warmup}
    for name, busy in (("blocking", False), ("busy_poll", True)):
        one_way = measure_pingpong(busy, count=count, warmup=warmup, timeout_s=timeout_s)
        one_way.pop("interpreter", None)
        result[name] = one_way
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hftfeed.tools.bench.floor")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
