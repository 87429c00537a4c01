"""``hftfeed.py record --listen ADDR [--listen ADDR2] --out FILE.pcap``: capture the feed.

Every datagram is written as it was received: the capture time is the wall clock read right
after ``recvfrom`` (ns, exact in the file: the pcap is written with nanosecond timestamps), the
bytes are the payload untouched, inside a real IPv4/IPv6 + UDP header from the sender's address
to the listened address, so tcpdump, Wireshark, tshark and ``Subscriber.from_pcap`` read it.

Rotation (``--rotate-bytes`` / ``--rotate-s``) closes the current file and opens
``STEM.NNN.pcap`` (NNN from 000): each file is a complete pcap on its own. SIGINT/SIGTERM, or
``--duration-s``, end the capture; the file is closed (and so valid) before exit. Exit codes: 0
done, 1 cannot listen or write, 2 bad arguments.
"""

import logging
import os
import selectors
import signal
import sys
import threading
import time

from hftfeed.app.cli import OneLineParser
from hftfeed.client.net import DEFAULT_RCVBUF_BYTES, open_udp_socket, parse_listen
from hftfeed.client.pcap import PcapWriter
from hftfeed.errors import ConfigError

log = logging.getLogger("hftfeed.record")

MAX_DATAGRAMS_PER_WAKE = 4096


def build_parser():
    parser = OneLineParser(prog="hftfeed.py record",
                           description="Capture the hftfeed UDP stream to a pcap file.")
    parser.add_argument("--listen", action="append", required=True, metavar="ADDR:PORT",
                        help="unicast address or multicast group (repeat for A/B feeds)")
    parser.add_argument("--interface", default=None, help="interface for multicast joins")
    parser.add_argument("--out", required=True, metavar="FILE.pcap", help="output file")
    parser.add_argument("--rotate-bytes", type=int, default=0, metavar="N",
                        help="start a new file after N bytes (0: never)")
    parser.add_argument("--rotate-s", type=float, default=0.0, metavar="S",
                        help="start a new file every S seconds (0: never)")
    parser.add_argument("--duration-s", type=float, default=0.0, metavar="S",
                        help="stop after S seconds (0: at SIGINT/SIGTERM)")
    return parser


class Recorder(object):
    """Sockets in, pcap files out (one ``poll`` drains what is queued)."""

    def __init__(self, listen, out, interface=None, rotate_bytes=0, rotate_s=0.0,
                 clock_ns=time.time_ns):
        self.out = out
        self.rotate_bytes = rotate_bytes
        self.rotate_ns = int(rotate_s * 1e9)
        self._clock_ns = clock_ns
        self._selector = selectors.DefaultSelector()
        self._socks = []
        try:
            for host, port in listen:
                sock = open_udp_socket(host, port, interface, DEFAULT_RCVBUF_BYTES)[0]
                self._socks.append((sock, (host, sock.getsockname()[1])))
                self._selector.register(sock, selectors.EVENT_READ)
        except BaseException:
            self.close()
            raise
        self.ports = [dst[1] for _, dst in self._socks]
        self.files = []
        self.datagrams = 0
        self._rotation = 0
        self._writer = None
        self._opened_ns = 0
        self._buf = bytearray(65536)
        self._open()

    def _path(self):
        if not self.rotate_bytes and not self.rotate_ns:
            return self.out
        stem, ext = os.path.splitext(self.out)
        return "%s.%03d%s" % (stem, self._rotation, ext or ".pcap")

    def _open(self):
        path = self._path()
        self._writer = PcapWriter(path)
        self.files.append(path)
        self._rotation += 1
        self._opened_ns = self._clock_ns()

    def _rotate_if_due(self, now_ns):
        writer = self._writer
        if (self.rotate_bytes and writer.bytes_written >= self.rotate_bytes) or (
                self.rotate_ns and now_ns - self._opened_ns >= self.rotate_ns):
            writer.close()
            self._open()

    def poll(self, timeout_s):
        handled = self._drain()
        if not handled and timeout_s > 0 and self._selector.select(timeout_s):
            handled = self._drain()
        self._rotate_if_due(self._clock_ns())
        return handled

    def _drain(self):
        handled = 0
        buf = self._buf
        for sock, dst in self._socks:
            while handled < MAX_DATAGRAMS_PER_WAKE:
                try:
                    nbytes, src = sock.recvfrom_into(buf)
                except BlockingIOError:
                    break
                except OSError as exc:
                    log.warning("recv failed: %s", exc)
                    break
                now_ns = self._clock_ns()
                self._writer.write(now_ns, src[:2], dst, bytes(buf[:nbytes]))
                self.datagrams += 1
                handled += 1
                if self.rotate_bytes and self._writer.bytes_written >= self.rotate_bytes:
                    self._rotate_if_due(now_ns)
        return handled

    def close(self):
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None
        self._selector.close()
        for sock, _ in self._socks:
            sock.close()
        self._socks = []


def main(argv=None):
    args = build_parser().parse_args(argv)
    listen = [parse_listen(text) for text in args.listen]
    for name in ("rotate_bytes", "rotate_s", "duration_s"):
        value = getattr(args, name)
        if not value >= 0 or value == float("inf"):
            raise ConfigError("--%s must be a finite number >= 0" % name.replace("_", "-"))
    try:
        recorder = Recorder(listen, args.out, args.interface, args.rotate_bytes, args.rotate_s)
    except OSError as exc:
        sys.stderr.write("hftfeed.py record: error: %s\n" % (exc,))
        return 1
    stop = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda s, f: stop.append(s))
    sys.stdout.write("RECORDING ports=%s out=%s\n" % (",".join(map(str, recorder.ports)),
                                                      recorder.files[0]))
    sys.stdout.flush()
    deadline = time.monotonic() + args.duration_s if args.duration_s else None
    try:
        while not stop and (deadline is None or time.monotonic() < deadline):
            recorder.poll(0.2)
        recorder.poll(0)
    except OSError as exc:
        sys.stderr.write("hftfeed.py record: error: %s\n" % (exc,))
        return 1
    finally:
        recorder.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    sys.stderr.write("recorded %d datagrams into %s\n" % (recorder.datagrams,
                                                         ", ".join(recorder.files)))
    return 0
