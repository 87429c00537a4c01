"""``python3 hftfeed.py monitor``: options, the receive loop and its output (text or JSON
lines); bad input is one error line and exit code 2."""

import argparse
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import time

from hftfeed.app.cli import OneLineParser
from hftfeed.errors import ConfigError

from hftfeed.tools.monitor.receiver import IS_PYPY, FeedMonitor, warm_up_jit
from hftfeed.tools.monitor.report import render_report
from hftfeed.client.net import DEFAULT_RCVBUF_BYTES, parse_listen

log = logging.getLogger("hftfeed.monitor")

def _int_range(low, high):
    def convert(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError("%r is not an integer" % (text,)) from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError("%d is outside %d..%d" % (value, low, high))
        return value
    return convert


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % (text,)) from None
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError("%r must be a positive finite number" % (text,))
    return value


def build_parser():
    parser = OneLineParser(
        prog="hftfeed monitor",
        description="Receive hftfeed UDP packets (PROTOCOL.md): rates, sequence gaps, publisher "
                    "restarts, latency percentiles and a top-of-book view.")
    parser.add_argument("--listen", required=True, metavar="ADDR:PORT",
                        help="unicast address to bind, or a multicast group to join; IPv6 as "
                             "[ADDR]:PORT; port 0 = any free port")
    parser.add_argument("--interface", default=None, metavar="IP",
                        help="local interface for a multicast join (IPv4: address or name; "
                             "IPv6: name or index); default: any")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per line (start, each interval, summary)")
    parser.add_argument("--interval-s", type=_positive_float, default=1.0, metavar="S",
                        help="report interval in seconds (default 1)")
    parser.add_argument("--duration-s", type=_positive_float, default=None, metavar="S",
                        help="exit after S seconds (default: until SIGINT/SIGTERM)")
    parser.add_argument("--rcvbuf-bytes", type=_int_range(1, 2 ** 31 - 1),
                        default=DEFAULT_RCVBUF_BYTES, metavar="N",
                        help="SO_RCVBUF to request (default 4 MiB)")
    parser.add_argument("--channel", type=_int_range(0, 65535), default=None, metavar="N",
                        help="only account packets of this channel")
    parser.add_argument("--depth", type=_int_range(1, 255), default=1, metavar="N",
                        help="book levels shown per instrument (default 1: one compact line)")
    parser.add_argument("--no-book", action="store_true", help="no book view (less work)")
    parser.add_argument("--expect-packets", type=_int_range(0, 2 ** 63 - 1), default=None,
                        metavar="N", help="exit with code 3 if fewer than N packets arrived "
                        "(for scripts and alerting: the stream is absent)")
    parser.add_argument("--max-gaps", type=_int_range(0, 2 ** 63 - 1), default=None,
                        metavar="N", help="exit with code 3 if more than N sequence gaps were "
                        "seen (the stream is lossy)")
    parser.add_argument("--no-warm-up", action="store_true",
                        help="PyPy: skip compiling the receive path on synthetic traffic "
                             "before listening (about 0.5 s)")
    return parser


def _configure_logging():
    """stderr logging for the standalone command, unless the caller configured logging."""
    if logging.getLogger().handlers:
        return
    level_name = os.environ.get("HFTFEED_LOG", "warning").strip().upper()
    level = {"WARN": logging.WARNING}.get(level_name, getattr(logging, level_name, None))
    if not isinstance(level, int):
        level = logging.WARNING
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(name)s: %(levelname)s: %(message)s")


class _Output(object):
    """Where reports go: JSON lines, a redrawn screen (TTY), or plain text lines."""

    def __init__(self, stream, as_json, depth):
        self.stream = stream
        self.as_json = as_json
        self.depth = depth
        isatty = getattr(stream, "isatty", None)
        self.redraw = not as_json and isatty is not None and isatty()

    def emit(self, record, lines=None):
        if self.as_json:
            text = json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
        else:
            if lines is None:
                lines = render_report(record, self.depth)
            text = "\n".join(lines) + "\n"
            if self.redraw and record.get("type") == "interval":
                text = "\x1b[H\x1b[2J" + text   # cursor home + clear screen: redraw in place
        self.stream.write(text)
        self.stream.flush()


def main(argv=None):
    """``hftfeed monitor``: returns 0 on a clean stop, 2 on bad arguments, 1 if it cannot
    listen, 3 if a --expect-packets / --max-gaps check failed."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        host, port = parse_listen(args.listen)
    except ConfigError as exc:
        sys.stderr.write("hftfeed monitor: error: %s\n" % (exc,))
        return 2
    _configure_logging()
    if IS_PYPY and not args.no_warm_up:   # before binding: nothing queues while it runs
        started = time.monotonic()
        handled = warm_up_jit()
        log.info("JIT warm-up: %d synthetic datagrams in %.2f s", handled,
                 time.monotonic() - started)
    try:
        monitor = FeedMonitor(host, port, interface=args.interface,
                              rcvbuf_bytes=args.rcvbuf_bytes, channel=args.channel,
                              book_view=not args.no_book)
    except ConfigError as exc:
        sys.stderr.write("hftfeed monitor: error: %s\n" % (exc,))
        return 2
    except OSError as exc:
        sys.stderr.write("hftfeed monitor: error: cannot listen on %s: %s\n" % (args.listen, exc))
        return 1
    output = _Output(sys.stdout, args.json, args.depth)
    try:
        return _run(monitor, args, output, host)
    finally:
        monitor.close()


def _run(monitor, args, output, host):
    stop = []
    previous_handlers = {}

    def on_signal(signum, _frame):
        stop.append(signum)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous_handlers[signum] = signal.signal(signum, on_signal)
    try:
        start = {"type": "start", "listen": host, "port": monitor.port,
                 "multicast": ipaddress.ip_address(host).is_multicast,
                 "channel": args.channel, "pid": os.getpid(),
                 "rcvbuf_bytes_requested": monitor.rcvbuf_bytes_requested,
                 "rcvbuf_bytes_actual": monitor.rcvbuf_bytes_actual,
                 "rcvbuf_capped": monitor.rcvbuf_capped}
        shown = "[%s]" % host if ":" in host else host
        output.emit(start, ["listening on %s:%d (SO_RCVBUF %d bytes)"
                            % (shown, monitor.port, monitor.rcvbuf_bytes_actual)])
        _receive_loop(monitor, args, output, stop)
        for _ in range(16):   # take what is already queued before the summary
            if not monitor.poll(0):
                break
        summary = monitor.summary(args.depth)
        output.emit(summary)
    except BrokenPipeError as exc:
        log.info("stdout closed (%s): stopping", exc)
        return 0
    finally:
        for signum, handler in previous_handlers.items():
            signal.signal(signum, handler)
    return _check(summary, args)


CHECK_FAILED = 3


def _check(summary, args):
    """--expect-packets / --max-gaps: one line on stderr per failed check, exit code 3."""
    failures = []
    if args.expect_packets is not None and summary["packets"] < args.expect_packets:
        failures.append("received %d packets, expected at least %d"
                        % (summary["packets"], args.expect_packets))
    if args.max_gaps is not None and summary["gaps"] > args.max_gaps:
        failures.append("saw %d sequence gaps (%d messages missing), at most %d allowed"
                        % (summary["gaps"], summary["missing_messages"], args.max_gaps))
    for failure in failures:
        sys.stderr.write("hftfeed monitor: check failed: %s\n" % failure)
    return CHECK_FAILED if failures else 0


def _receive_loop(monitor, args, output, stop):
    interval_s = args.interval_s
    started = time.monotonic()
    next_report = started + interval_s
    deadline = started + args.duration_s if args.duration_s else None
    while not stop:
        now = time.monotonic()
        if now >= next_report:
            output.emit(monitor.interval_report(args.depth))
            next_report += interval_s
            if next_report <= now:   # a stall longer than an interval: do not burst reports
                next_report = now + interval_s
        if deadline is not None and now >= deadline:
            break
        wake = next_report if deadline is None else min(next_report, deadline)
        # at most 0.2 s asleep so a signal is noticed quickly (select resumes after handlers)
        monitor.poll(min(max(wake - now, 0.0), 0.2))
