"""The end-to-end benchmark's UDP receiver, run as its own process.

``python -m hftfeed.tools.bench.receiver --out FILE`` binds a loopback UDP port, prints
``READY port=N``, then ``LIVE k`` each time the number of instruments in state live (``S``
state 1, PROTOCOL.md) changes. It reads commands on stdin, one a line:

- ``start``: open the measurement window (everything before it is warm-up and only counted);
- ``stop``: close it, write the window's book receipts to ``--out`` and print one JSON line
  with the window's counters and the daemon-internal latency histogram, then exit.

Per ``B`` message inside the window it keeps ``(instrument, update_id, recv_ns)`` in an
``array('q')`` (the parent matches them against the simulator's journal for the wire-to-wire
latency: send_ns of the depth event -> ``recv_ns`` of the datagram carrying the book it caused),
and records ``packet send_ns - message recv_ns`` (the daemon's own frame-read-to-send time) in a
LatencyHistogram. Books flagged as the first after a (re)synchronisation are counted apart and
kept out of both latencies: they wait for a REST snapshot by design.

Loss is read from the sequence numbers (messages, PROTOCOL.md "Packet"), and the kernel's own
count of datagrams dropped on this socket during the window (``/proc/net/udp`` "drops") tells a
receiver that fell behind from a publisher that did not send.

Why not monitor.FeedMonitor: it keeps the latest book per instrument rather than every book's
receive time, which is what the wire-to-wire match needs.
"""

import argparse
import json
import logging
import selectors
import socket
import sys
import time
from array import array

from hftfeed.codecs import wire
from hftfeed.errors import WireError
from hftfeed.runtime.stats import LatencyHistogram

log = logging.getLogger("hftfeed.bench.receiver")

_MSG_HEADER = wire.MSG_HEADER                    # PROTOCOL.md "Message header", its one home
_TYPE_B = wire.TYPE_BOOK
_TYPE_S = wire.TYPE_STATUS
_TYPE_I = wire.TYPE_INSTRUMENT
_SNAPSHOT_FLAG = wire.BOOK_FLAG_SNAPSHOT
_REFRESH_FLAG = wire.BOOK_FLAG_REFRESH
PERCENTILES = (50, 90, 99, 99.9)
MAX_DATAGRAMS_PER_DRAIN = 4096


class Receiver(object):
    """Accounts datagrams; ``recording`` switches the window on and off."""

    def __init__(self, sock, port=0):
        self.sock = sock
        self.port = port
        self.drops_at_start = None
        self.buf = bytearray(65536)              # preallocated: recv_into never allocates
        self.recording = False
        self.stopped = False                     # after the window nothing is counted
        self.receipts = array("q")               # instrument, update_id, recv_ns per book
        self.latency_daemon = LatencyHistogram()
        self.symbols = {}
        self.states = {}
        self.live = 0
        self.live_changed = False
        self.session = None
        self.next_seq = 0
        self.window = dict.fromkeys(("packets", "bytes", "messages", "books", "snapshot_books",
                                     "refresh_books", "gaps", "lost_messages",
                                     "resync_status_msgs",
                                     "decode_errors"), 0)
        self.before = {"packets": 0, "books": 0}
        self.window_start_ns = 0
        self.window_end_ns = 0

    def drain(self, limit=MAX_DATAGRAMS_PER_DRAIN):
        """Read the datagrams waiting on the (non-blocking) socket, at most ``limit`` (so that
        commands on stdin are still read under a flood); returns how many."""
        recv_into = self.sock.recv_into
        buf = self.buf
        clock = time.time_ns
        handled = 0
        while handled < limit:
            try:
                nbytes = recv_into(buf)
            except BlockingIOError:
                break
            self.handle(nbytes, clock())
            handled += 1
        return handled

    def handle(self, nbytes, recv_ns):
        if self.stopped:
            return
        buf = self.buf
        try:
            # the project's one validation function: after it, every length below is sound
            _flags, _chan, count, session, seq, send_ns = wire.check_datagram(buf, nbytes)
        except WireError:
            self.window["decode_errors"] += 1
            return
        recording = self.recording
        if session != self.session:              # first packet, or a publisher restart
            self.session = session
            self.next_seq = seq
        if seq > self.next_seq and recording:    # PROTOCOL.md: seq counts messages
            self.window["gaps"] += 1
            self.window["lost_messages"] += seq - self.next_seq
        if seq + count > self.next_seq:
            self.next_seq = seq + count
        if recording:
            self.window["packets"] += 1
            self.window["bytes"] += nbytes
            self.window["messages"] += count
        else:
            self.before["packets"] += 1
        off = wire.HEADER_SIZE
        for _ in range(count):
            length, mtype, _venue, instrument, flags, _exch, msg_recv_ns, update_id = \
                _MSG_HEADER.unpack_from(buf, off)
            if mtype == _TYPE_B:
                if self.states.get(instrument) != wire.STATE_LIVE:
                    # PROTOCOL.md: a book is published only while synchronised, so a B proves
                    # live even when the S that announced it was lost (UDP at max rate)
                    self._status(instrument, wire.STATE_LIVE)
                if not recording:
                    self.before["books"] += 1
                elif flags & _SNAPSHOT_FLAG:
                    self.window["snapshot_books"] += 1
                elif flags & _REFRESH_FLAG:
                    # the refresh cycle re-sent an unchanged book: no new update to time
                    self.window["refresh_books"] += 1
                else:
                    self.window["books"] += 1
                    self.latency_daemon.record(send_ns - msg_recv_ns)
                    receipts = self.receipts
                    receipts.append(instrument)
                    receipts.append(update_id)
                    receipts.append(recv_ns)
            elif mtype == _TYPE_S:
                self._status(instrument, buf[off + wire.MSG_HEADER_SIZE])
            elif mtype == _TYPE_I:
                raw = bytes(buf[off + 32:off + 56])
                self.symbols[instrument] = raw.rstrip(b"\0").decode("ascii", "replace")
            off += length

    def _status(self, instrument, state):
        if self.states.get(instrument) == state:
            return
        self.states[instrument] = state
        if state == wire.STATE_RESYNC and self.recording:
            self.window["resync_status_msgs"] += 1
        live = sum(1 for s in self.states.values() if s == wire.STATE_LIVE)
        if live != self.live:
            self.live = live
            self.live_changed = True

    def start(self):
        self.window_start_ns = time.time_ns()
        self.drops_at_start = udp_drops(self.port) if self.port else None
        self.recording = True

    def stop(self):
        self.recording = False
        self.stopped = True
        self.window_end_ns = time.time_ns()

    def result(self):
        result = dict(self.window)
        result["window_s"] = (self.window_end_ns - self.window_start_ns) / 1e9
        result["window_start_ns"] = self.window_start_ns
        result["window_end_ns"] = self.window_end_ns
        result["before_window"] = dict(self.before)
        result["latency_daemon"] = self.latency_daemon.snapshot(PERCENTILES)
        result["symbols"] = {str(k): v for k, v in self.symbols.items()}
        drops = udp_drops(self.port) if self.port else None
        known = drops is not None and self.drops_at_start is not None
        result["kernel_drops"] = drops - self.drops_at_start if known else None
        result["rcvbuf_bytes"] = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        return result


def udp_drops(port):
    """The kernel's drop counter of the IPv4 UDP socket bound to ``port`` (None if not found)."""
    try:
        with open("/proc/net/udp") as f:
            next(f)
            for line in f:
                fields = line.split()
                if int(fields[1].split(":")[1], 16) == port:
                    return int(fields[-1])
    except (OSError, ValueError, IndexError, StopIteration) as exc:
        log.warning("cannot read /proc/net/udp: %s", exc)
    return None


def serve(args):
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, args.rcvbuf_bytes)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    port = sock.getsockname()[1]
    receiver = Receiver(sock, port)
    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ, "udp")
    selector.register(sys.stdin, selectors.EVENT_READ, "cmd")
    out = sys.stdout
    out.write("READY port=%d\n" % port)
    out.flush()
    while True:
        flooded = receiver.drain() == MAX_DATAGRAMS_PER_DRAIN
        if receiver.live_changed:
            receiver.live_changed = False
            out.write("LIVE %d\n" % receiver.live)
            out.flush()
        for key, _ in selector.select(0 if flooded else 0.2):
            if key.data != "cmd":
                continue
            line = sys.stdin.readline()
            command = line.strip()
            if command == "start":
                receiver.start()
            elif command == "stop" or not line:    # EOF: the parent is gone
                receiver.stop()
                with open(args.out, "wb") as f:
                    receiver.receipts.tofile(f)
                out.write(json.dumps(receiver.result()) + "\n")
                out.flush()
                sock.close()
                return 0
            else:
                log.warning("unknown command %r", command)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hftfeed.tools.bench.receiver")
    parser.add_argument("--out", required=True, help="file for the window's book receipts")
    parser.add_argument("--rcvbuf-bytes", type=int, default=4 * 2 ** 20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return serve(args)


if __name__ == "__main__":
    sys.exit(main())
