"""In-process micro-benchmarks: parse, book and wire (``bench.py parse|book|wire``).

Each runs ``warmup_reps`` discarded repetitions then ``reps`` measured ones over the same data
and reports the median with min-max (common.summarize) plus the discarded rates. The inputs are
built before any timing, from a fixed seed, so two runs measure the same work.

- parse: Binance ``depthUpdate`` text -> DepthUpdate with scaled-int levels, through the fast
  scanner (``BinanceSpot.parse``, what the daemon runs) and through the JSON path
  (``json.loads`` + ``parse_depth``, the fallback), on the real 2021 capture in
  capture when one is available (tiny diffs, ~2 levels) and on synthetic 10+10-level messages.
- book: the array book against a naive dict+sort reference book, same diffs, same run. Two
  figures: *apply* (level updates/s, the issue's target) and *cycle* (apply a diff, then write
  the top 20 levels a side in wire order, which is what the daemon does per message: a dict
  book has to sort for that). The final top 20 of both books must agree, or the run fails.
- wire: ``wire.pack_book`` of a 20+20-level book into a preallocated buffer (B messages/s), and
  with the packet header the publisher writes per flush.

``python -m hftfeed.tools.bench.micro parse book wire [--quick]`` prints the results as one JSON line
(bench.py runs it under each interpreter it compares).
"""

import argparse
import json
import random
import struct
import sys
from pathlib import Path

from hftfeed.codecs import wire
from hftfeed.tools.bench.common import ROOT, summarize, timed_reps
from hftfeed.core.book import Book
from hftfeed.venues import binance
from hftfeed.venues.base import loads

CAPTURE = Path(ROOT).parent / "shared" / "data" / "captures" / "BINANCE.ws.1.0"
TOP_N = 20
_LEVEL = struct.Struct("<qq")   # PROTOCOL.md level, for the naive book's wire output

# (seconds per repetition, measured reps, discarded warm-up reps); the book workload's size
BOOK_LEVEL_UPDATES = 40000
TIMING = {"full": (0.4, 5, 2), "quick": (0.1, 3, 1)}


def _timing(quick):
    return TIMING["quick" if quick else "full"]


# -- parse -----------------------------------------------------------------------------------------

def capture_depth_messages(path=CAPTURE):
    """The depthUpdate texts of the Binance spot capture (``receive_time: <json>`` lines)."""
    texts = []
    with open(str(path), encoding="utf-8") as f:
        f.readline()                                   # "URL <-> connect_time"
        for line in f:
            text = line[line.find(": ") + 2:].rstrip("\n")
            if '"depthUpdate"' in text:
                texts.append(text)
    return texts


def synthetic_depth_messages(count=64, levels=10, seed=7):
    """Combined-stream depthUpdate texts in Binance's compact form, ``levels`` a side, 8-decimal
    strings (the PERF_NOTES shape: ~760 bytes for 10+10)."""
    rng = random.Random(seed)
    texts = []
    update_id = 1000000
    for _ in range(count):
        mid = rng.randrange(2000000, 6000000)           # cents
        bids = ",".join('["%d.%02d000000","%d.%08d"]' % ((mid - k) // 100, (mid - k) % 100,
                                                          rng.randrange(10), rng.randrange(10 ** 8))
                        for k in range(1, levels + 1))
        asks = ",".join('["%d.%02d000000","%d.%08d"]' % ((mid + k) // 100, (mid + k) % 100,
                                                          rng.randrange(10), rng.randrange(10 ** 8))
                        for k in range(1, levels + 1))
        texts.append('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate","E":%d,'
                     '"s":"BTCUSDT","U":%d,"u":%d,"b":[%s],"a":[%s]}}'
                     % (1700000000000 + update_id, update_id + 1, update_id + 5, bids, asks))
        update_id += 5
    return texts


def json_path_parse(text):
    """The fallback path of BinanceSpot.parse for a combined depth message."""
    return binance.parse_depth(loads(text)["data"])


def _fields(upd):
    return (upd.symbol, upd.first_id, upd.last_id, upd.exch_ns, upd.bids, upd.asks)


def _parse_dataset(texts, quick):
    venue = binance.BinanceSpot(["BTCUSDT"], ("depth",))
    venue.fast_scanner = True      # measure the scanner on every interpreter, whatever the default
    fast = venue.parse
    levels = 0
    for text in texts:
        events = fast(text)
        if len(events) != 1 or binance.fast_depth(text) is None:
            raise RuntimeError("a benchmark message does not take the fast scanner path")
        if _fields(events[0]) != _fields(json_path_parse(text)):
            raise RuntimeError("fast scanner and JSON path disagree on a benchmark message")
        levels += (len(events[0].bids) + len(events[0].asks)) // 2
    levels_per_msg = levels / float(len(texts))

    def run_fast(rounds):
        for _ in range(rounds):
            for text in texts:
                fast(text)

    def run_json(rounds):
        for _ in range(rounds):
            for text in texts:
                json_path_parse(text)

    result = {"messages": len(texts), "mean_levels_per_msg": round(levels_per_msg, 2),
              "mean_bytes_per_msg": round(sum(len(t) for t in texts) / float(len(texts)), 1)}
    for name, fn in (("fast_scanner", run_fast), ("json_path", run_json)):
        target_s, reps, warmup_reps = _timing(quick)
        rates, warmup = timed_reps(fn, len(texts), reps, warmup_reps, target_s)
        result[name] = {
            "msgs_per_s": summarize(rates, "msgs/s"),
            "levels_per_s": summarize([r * levels_per_msg for r in rates], "levels/s"),
            "warmup": warmup,
        }
    result["fast_vs_json"] = round(result["fast_scanner"]["msgs_per_s"]["median"]
                                   / result["json_path"]["msgs_per_s"]["median"], 2)
    return result


def bench_parse(quick=False):
    result = {"datasets": {}}
    if CAPTURE.is_file():
        result["datasets"]["capture"] = _parse_dataset(capture_depth_messages(), quick)
    else:
        result["capture_missing"] = str(CAPTURE)
    result["datasets"]["synthetic_10x10"] = _parse_dataset(synthetic_depth_messages(), quick)
    return result


# -- book ------------------------------------------------------------------------------------------

class NaiveBook(object):
    """The reference: a dict price -> qty per side, sorted whenever the top is needed."""

    def __init__(self):
        self.bids = {}
        self.asks = {}
        self.update_id = 0

    def load_snapshot(self, bids_flat, asks_flat, update_id):
        self.bids = {bids_flat[i]: bids_flat[i + 1] for i in range(0, len(bids_flat), 2)
                     if bids_flat[i + 1]}
        self.asks = {asks_flat[i]: asks_flat[i + 1] for i in range(0, len(asks_flat), 2)
                     if asks_flat[i + 1]}
        self.update_id = update_id

    def apply_levels(self, bids_flat, asks_flat):
        for side, flat in ((self.bids, bids_flat), (self.asks, asks_flat)):
            for i in range(0, len(flat), 2):
                if flat[i + 1]:
                    side[flat[i]] = flat[i + 1]
                else:
                    side.pop(flat[i], None)

    def top(self, n):
        bids = [(p, self.bids[p]) for p in sorted(self.bids, reverse=True)[:n]]
        asks = [(p, self.asks[p]) for p in sorted(self.asks)[:n]]
        return bids, asks

    def copy_top_into(self, buf, off, n):
        """The top ``n`` a side as PROTOCOL.md levels (what the daemon publishes per update)."""
        bids, asks = self.top(n)
        pack = _LEVEL.pack_into
        for price, qty in bids:
            pack(buf, off, price, qty)
            off += 16
        for price, qty in asks:
            pack(buf, off, price, qty)
            off += 16
        return off


def book_workload(level_updates, seed=1, levels=1000):
    """(snapshot_bids, snapshot_asks, diffs): a ``levels``-a-side snapshot and diffs totalling
    ``level_updates`` level changes.

    The mix follows the captures (book.py's docstring): the rank from the best is exponential
    with mean 12 levels, 1 % of changes anywhere in the book (deep), ~5 % inserts and ~5 %
    deletes, the rest quantity changes; 1-20 levels a side per diff."""
    rng = random.Random(seed)
    gap = 1 << 20                                       # room to insert between two levels
    top = (levels + 1) * gap
    base = 10 ** 13
    sides = []
    snapshot = []
    for sign in (-1, 1):                                # bids below base, asks above
        live = [gap * k for k in range(1, levels + 1)]  # distance below "top", worst first
        flat = []
        for t in live:
            flat.extend((base + sign * (top - t), rng.randrange(1, 10 ** 12)))
        snapshot.append(flat)
        sides.append((sign, live))
    diffs = []
    done = 0
    while done < level_updates:
        diff = []
        for sign, live in sides:
            flat = []
            for _ in range(rng.randint(1, 20)):
                rank = min(int(rng.expovariate(1 / 12.0)), len(live) - 1)
                if rng.random() < 0.01:
                    rank = rng.randrange(len(live))
                idx = len(live) - 1 - rank
                roll = rng.random()
                if roll < 0.05 and len(live) > levels // 2:          # delete
                    tick, qty = live.pop(idx), 0
                elif roll < 0.10:                                    # insert just below idx
                    tick = (live[idx - 1] + live[idx]) // 2 if idx > 0 else live[0] // 2
                    if tick in (0, live[idx]) or (idx > 0 and tick == live[idx - 1]):
                        tick, qty = live[idx], rng.randrange(1, 10 ** 12)
                    else:
                        live.insert(idx, tick)
                        qty = rng.randrange(1, 10 ** 12)
                else:                                                # quantity change
                    tick, qty = live[idx], rng.randrange(1, 10 ** 12)
                flat.extend((base + sign * (top - tick), qty))
            diff.append(flat)
            done += len(flat) // 2
        diffs.append((diff[0], diff[1]))
    return snapshot[0], snapshot[1], diffs


def bench_book(quick=False):
    target_s, reps, warmup_reps = _timing(quick)
    snap_bids, snap_asks, diffs = book_workload(BOOK_LEVEL_UPDATES)
    updates = sum((len(b) + len(a)) // 2 for b, a in diffs)
    buf = bytearray(16 * 2 * TOP_N)

    def apply_run(book):
        def run(rounds):
            for _ in range(rounds):
                book.load_snapshot(snap_bids, snap_asks, 1)   # the mix includes a snapshot load
                apply = book.apply_levels
                for bids, asks in diffs:
                    apply(bids, asks)
        return run

    def cycle_array(book):
        def run(rounds):
            for _ in range(rounds):
                book.load_snapshot(snap_bids, snap_asks, 1)
                apply = book.apply_levels
                copy = book.copy_levels_into
                for bids, asks in diffs:
                    apply(bids, asks)
                    copy(buf, 0, min(TOP_N, book.bid_levels), min(TOP_N, book.ask_levels))
        return run

    def cycle_naive(book):
        def run(rounds):
            for _ in range(rounds):
                book.load_snapshot(snap_bids, snap_asks, 1)
                apply = book.apply_levels
                copy = book.copy_top_into
                for bids, asks in diffs:
                    apply(bids, asks)
                    copy(buf, 0, TOP_N)
        return run

    def snapshot_run(book):
        def run(rounds):
            for _ in range(rounds):
                book.load_snapshot(snap_bids, snap_asks, 1)
        return run

    result = {"snapshot_levels_per_side": len(snap_bids) // 2, "diffs": len(diffs),
              "level_updates": updates, "mean_levels_per_diff": round(updates / len(diffs), 2),
              "top_n": TOP_N}
    books = (("array_book", Book(5000), cycle_array), ("naive_dict_sort", NaiveBook(), cycle_naive))
    for name, book, cycle in books:
        apply_rates, apply_warm = timed_reps(apply_run(book), updates, reps, warmup_reps, target_s)
        cycle_rates, cycle_warm = timed_reps(cycle(book), len(diffs), reps, warmup_reps, target_s)
        snap_rates, snap_warm = timed_reps(snapshot_run(book), 1, reps, warmup_reps, target_s)
        result[name] = {
            "apply_level_updates_per_s": summarize(apply_rates, "level updates/s"),
            "cycle_diffs_per_s": summarize(cycle_rates, "diffs/s (apply + top-20 to wire)"),
            "snapshot_loads_per_s": summarize(snap_rates, "snapshots/s"),
            "warmup": {"apply": apply_warm, "cycle": cycle_warm, "snapshot": snap_warm},
        }
    array_book, naive = books[0][1], books[1][1]
    if array_book.top(TOP_N) != naive.top(TOP_N):
        raise RuntimeError("array book and naive book disagree after the workload")
    for key in ("apply_level_updates_per_s", "cycle_diffs_per_s", "snapshot_loads_per_s"):
        result["ratio_" + key.replace("_per_s", "")] = round(
            result["array_book"][key]["median"] / result["naive_dict_sort"][key]["median"], 2)
    return result


# -- wire ------------------------------------------------------------------------------------------

def bench_wire(quick=False):
    target_s, reps, warmup_reps = _timing(quick)
    rng = random.Random(3)
    book = Book(5000)
    base = 10 ** 13
    bids = [x for k in range(1, 101) for x in (base - k * 10 ** 6, rng.randrange(1, 10 ** 12))]
    asks = [x for k in range(1, 101) for x in (base + k * 10 ** 6, rng.randrange(1, 10 ** 12))]
    book.load_snapshot(bids, asks, 42)
    buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)          # preallocated, as the publisher's
    pack_book = wire.pack_book
    pack_header = wire.pack_packet_header
    off = wire.HEADER_SIZE
    exch_ns = 1700000000000000000
    per_round = 1000

    def run_book(rounds):
        for i in range(rounds * per_round):
            pack_book(buf, off, 1, 7, 0, exch_ns, exch_ns + i, book, TOP_N)

    def run_packet(rounds):
        end = 0
        for i in range(rounds * per_round):
            end = pack_book(buf, off, 1, 7, 0, exch_ns, exch_ns + i, book, TOP_N)
            pack_header(buf, 0, 1, 1, 1, i + 1, exch_ns + i)
        return end

    end = run_packet(1)
    packet = wire.decode_packet(bytes(buf[:end]))
    if (packet.messages[0].bids, packet.messages[0].asks) != book.top(TOP_N):
        raise RuntimeError("packed book does not decode to the book's top levels")
    result = {"levels_per_side": TOP_N, "message_bytes": wire.book_len(TOP_N, TOP_N)}
    for name, fn in (("pack_book", run_book), ("header_plus_book", run_packet)):
        rates, warmup = timed_reps(fn, per_round, reps, warmup_reps, target_s)
        result[name] = {"msgs_per_s": summarize(rates, "B msgs/s"), "warmup": warmup}
    return result


BENCHES = {"parse": bench_parse, "book": bench_book, "wire": bench_wire}


def run(names, quick=False):
    return {name: BENCHES[name](quick) for name in names}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m hftfeed.tools.bench.micro")
    parser.add_argument("names", nargs="+", choices=sorted(BENCHES))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.names, args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
