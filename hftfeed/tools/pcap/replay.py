"""``hftfeed.py replay FILE.pcap --target ADDR [--speed X | --max]``: send a recording again.

Each UDP payload of the file is sent to ``--target`` unchanged (same sequence numbers and
sessions: a receiver sees the original stream), keeping the recorded gaps between datagrams
divided by ``--speed`` (default 1: real time), or as fast as possible with ``--max``.
``--port P`` replays only datagrams that were sent to port P (one feed of an A/B capture).
"""

import socket
import sys
import time

from hftfeed.app.cli import OneLineParser
from hftfeed.client.net import parse_listen
from hftfeed.client.pcap import PcapError, PcapReader
from hftfeed.errors import ConfigError


def build_parser():
    parser = OneLineParser(prog="hftfeed.py replay",
                           description="Send the datagrams of a pcap recording to an address.")
    parser.add_argument("file", metavar="FILE.pcap")
    parser.add_argument("--target", required=True, metavar="ADDR:PORT")
    parser.add_argument("--port", type=int, default=None, help="only datagrams sent to PORT")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--speed", type=float, default=1.0, metavar="X",
                       help="replay X times faster than recorded (default 1)")
    group.add_argument("--max", action="store_true", help="as fast as possible")
    parser.add_argument("--multicast-ttl", type=int, default=1, metavar="N")
    return parser


def replay(path, target, speed=1.0, as_fast_as_possible=False, port=None, ttl=1,
           sleep=time.sleep, monotonic=time.monotonic):
    """Send the recording; returns the number of datagrams sent."""
    family = socket.AF_INET6 if ":" in target[0] else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sent = 0
    try:
        if family == socket.AF_INET:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, ttl)
        else:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, ttl)
        first_ns = None
        start = monotonic()
        with PcapReader(path) as reader:
            for ts_ns, _src, dst, payload in reader:
                if port is not None and dst[1] != port:
                    continue
                if first_ns is None:
                    first_ns = ts_ns
                if not as_fast_as_possible:
                    due = start + (ts_ns - first_ns) / 1e9 / speed
                    wait = due - monotonic()
                    if wait > 0:
                        sleep(wait)
                sock.sendto(payload, target)
                sent += 1
    finally:
        sock.close()
    return sent


def main(argv=None):
    args = build_parser().parse_args(argv)
    target = parse_listen(args.target)
    if not args.speed > 0 or args.speed == float("inf"):
        raise ConfigError("--speed must be a positive finite number")
    try:
        sent = replay(args.file, target, args.speed, args.max, args.port, args.multicast_ttl)
    except (OSError, PcapError) as exc:
        sys.stderr.write("hftfeed.py replay: error: %s\n" % (exc,))
        return 1
    sys.stderr.write("replayed %d datagrams to %s:%d\n" % (sent, target[0], target[1]))
    return 0
