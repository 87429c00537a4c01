"""Where a message's time goes inside the daemon: the hot path timed section by section.

PyPy 7.3.11 has no vmprof in Debian's package and cProfile disables most of its JIT's benefit,
so the profile that works on both interpreters is this one: the daemon's own hot-path objects
fed the simulator's own messages (``hftfeed.tools.sim`` engine + Binance dialect, what the daemon
sees end to end), one stage per pass, each pass repeated with warm-up repetitions discarded:

- ``ws_frames``: RFC 6455 frame parsing of the frames (``ws_proto.Connection.receive_data``,
  5 frames per read as the simulator's 1 ms tick at 5k msgs/s delivers them);
- ``parse``: ``BinanceSpot.parse`` (fast scanner) -> DepthUpdate with scaled ints;
- ``sync_book``: ``InstrumentSync.on_update`` (continuity rule + ``Book.apply_levels``);
- ``pack``: ``wire.pack_book`` of the top 20 a side (of the book the stream leaves behind:
  the cost does not depend on which levels changed);
- ``send``: packet header + ``sendto`` of a 712-byte datagram to a loopback socket that nobody
  waits on (so without the receiver's wake-up, which e2e's system CPU shows);
- ``pipeline``: all of the above per message in one loop, to compare with the sum.

``python -m hftfeed.tools.bench.sections [--quick]`` prints one JSON line (ns per message).
"""

import argparse
import json
import socket
import sys
import time

from hftfeed.codecs import wire
from hftfeed.codecs import ws_proto
from hftfeed.tools.bench.common import median
from hftfeed.core.book import Book
from hftfeed.venues.binance import BinanceSpot
from hftfeed.tools.sim import binance as sim_binance
from hftfeed.tools.sim.market import EV_DEPTH, MarketEngine
from hftfeed.tools.sim.server import text_frame
from hftfeed.core.sync import APPLIED, SYNCED, InstrumentSync
from hftfeed.core.updates import Snapshot

SYMBOL = "BTCUSDT"
FRAMES_PER_READ = 5
SIZES = {"full": (10000, 5, 2), "quick": (4000, 3, 1)}   # messages, reps, warm-up reps discarded


def sim_messages(count, seed=4242, max_steps=3):
    """(snapshot, texts): the engine's initial book and ``count`` combined-stream depth texts."""
    engine = MarketEngine(SYMBOL, seed=seed)
    last_id, bids, asks = engine.snapshot(1000)
    snapshot = Snapshot(SYMBOL, last_id, bids, asks)
    prefix = sim_binance.combined_prefix(SYMBOL.lower() + "@depth@100ms")
    texts = []
    event_ms = 1700000000000
    while len(texts) < count:
        out = []
        engine.generate(engine.draw_steps(max_steps), out)
        for ev in out:
            if ev[0] == EV_DEPTH:
                texts.append(prefix + sim_binance.event_payload(ev, "depth@100ms", event_ms) + "}")
        event_ms += 1
    return snapshot, texts


class _Rig(object):
    """The daemon's hot-path objects for one instrument, fresh from the snapshot."""

    def __init__(self, snapshot):
        self.venue = BinanceSpot([SYMBOL], ("depth",))
        self.book = Book(5000)
        self.sync = InstrumentSync(self.venue.rule, self.book)
        self.sync.start_resync()
        self.sync.on_snapshot(snapshot)


def _time(fn):
    start = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - start


def measure(quick=False):
    count, reps, warmup_reps = SIZES["quick" if quick else "full"]
    snapshot, texts = sim_messages(count)
    frames = [text_frame(t.encode("ascii")) for t in texts]
    reads = [b"".join(frames[i:i + FRAMES_PER_READ])
             for i in range(0, len(frames), FRAMES_PER_READ)]
    updates = BinanceSpot([SYMBOL], ("depth",)).parse
    parsed = [updates(t)[0] for t in texts]
    check = _Rig(snapshot)
    if any(check.sync.on_update(upd) not in (APPLIED, SYNCED) for upd in parsed):
        raise RuntimeError("the simulated stream does not apply cleanly to its own snapshot")
    buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
    view = memoryview(buf)
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target = rx.getsockname()
    length = wire.book_len(20, 20) + wire.HEADER_SIZE

    def ws_frames():
        conn = ws_proto.Connection(ws_proto.CLIENT)
        feed = conn.receive_data
        for data in reads:
            feed(data)

    def parse():
        p = BinanceSpot([SYMBOL], ("depth",)).parse
        for text in texts:
            p(text)

    def sync_book():
        rig = _Rig(snapshot)
        on_update = rig.sync.on_update
        for upd in parsed:
            on_update(upd)

    packed_book = check.book          # the book as the stream left it: 200 levels a side

    def pack():
        pack_book = wire.pack_book
        for i in range(len(texts)):
            pack_book(buf, 32, 1, 1, 0, i, 1, packed_book, 20)

    def send():
        header = wire.pack_packet_header
        sendto = tx.sendto
        for i in range(len(texts)):
            header(buf, 0, 1, 1, 1, i + 1, i)
            sendto(view[:length], target)

    def pipeline():
        rig = _Rig(snapshot)
        p = rig.venue.parse
        on_update = rig.sync.on_update
        book = rig.book
        pack = wire.pack_book
        header = wire.pack_packet_header
        sendto = tx.sendto
        seq = 1
        for text in texts:
            upd = p(text)[0]
            on_update(upd)
            end = pack(buf, 32, 1, 1, 0, upd.exch_ns, 1, book, 20)
            header(buf, 0, 1, 1, 1, seq, seq)
            sendto(view[:end], target)
            seq += 1

    passes = (("ws_frames", ws_frames), ("parse", parse), ("sync_book", sync_book),
              ("pack", pack), ("send", send), ("pipeline", pipeline))
    per_msg = {}
    discarded = {}
    try:
        for name, fn in passes:
            times = [_time(fn) / float(len(texts)) for _ in range(warmup_reps + reps)]
            per_msg[name] = times[warmup_reps:]
            discarded[name] = [round(t, 1) for t in times[:warmup_reps]]
    finally:
        tx.close()
        rx.close()
    med = {name: median(values) for name, values in per_msg.items()}
    sections = {name: med[name] for name in ("ws_frames", "parse", "sync_book", "pack", "send")}
    total = sum(sections.values())
    return {
        "unit": "ns per message (median of reps)",
        "messages": len(texts),
        "mean_levels_per_msg": round(sum(len(u.bids) + len(u.asks) for u in parsed)
                                     / 2.0 / len(parsed), 2),
        "sections_ns": {k: round(v, 1) for k, v in sections.items()},
        "share_pct": {k: round(100.0 * v / total, 1) for k, v in sections.items()},
        "sum_ns": round(total, 1),
        "pipeline_ns": round(med["pipeline"], 1),
        "reps": reps,
        "warmup": {"reps_discarded": warmup_reps, "discarded_ns_per_msg": discarded},
        "spread_ns": {k: [round(min(v), 1), round(max(v), 1)] for k, v in per_msg.items()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hftfeed.tools.bench.sections")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
