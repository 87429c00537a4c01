"""Per-venue parse + sync throughput for the venues whose book arrives in-stream.

For each venue: the simulator's dialect (in this process, on loopback) is subscribed with the
adapter's *own* subscribe messages, a fixed number of its messages are recorded (books, trades,
quotes, control messages, as they come), and then the daemon's per-message work without I/O is
timed over them: ``venue.parse``, the per-connection sequence check where the venue has one,
and the sync engine + book for every depth event. One round = every recorded message once,
with a fresh adapter and fresh books (so the in-stream snapshots are loaded again). REST-snapshot
venues (Binance) are left out: without the REST snapshot their diffs only buffer.

    python -m hftfeed.tools.bench.venues [--venues coinbase,kraken] [--messages 20000] [--quick]

prints one JSON line (msgs/s median, min-max, per venue) after a readable table on stderr.
"""

import argparse
import asyncio
import json
import sys

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.core.updates import ConnSequence, DepthUpdate
from hftfeed.tools.bench.common import interpreter_facts, summarize, timed_reps
from hftfeed.tools.sim import rawclient
from hftfeed.tools.sim.server import start_sim
from hftfeed.venues import registry

CHANNELS = ("depth", "trade", "bookTicker")
TIMING = {"full": (0.5, 5, 2), "quick": (0.1, 3, 1)}   # (s per rep, reps, discarded reps)
SIM_RATE = 20000        # depth messages/s the simulator is asked for while recording
BOOK_LEVELS = 1000


def in_stream_venues():
    return [s.name for s in registry.VENUES if registry.adapter(s.name).rule.snapshot_in_stream]


async def record(name, count):
    """``count`` messages of the venue's simulator, subscribed as the daemon would."""
    spec = registry.spec(name)
    venue = registry.adapter(name)(list(spec.demo_symbols), CHANNELS)
    streams = [s for sym in spec.demo_symbols for s in venue.streams_for(sym)]
    srv = await start_sim(venue=name, symbols=list(spec.demo_symbols), rate=SIM_RATE)
    try:
        path = (registry.ws_path(name) + venue.connection_path(streams)) or "/"
        ws = await rawclient.ws_connect("127.0.0.1", srv.port, path)
        for text in venue.subscribe_messages(streams):
            ws.send_text(text)
        texts = [await ws.recv_message(10.0) for _ in range(count)]
        await ws.close()
    finally:
        await srv.close()
    return list(spec.demo_symbols), texts


def make_round(name, symbols, texts):
    adapter = registry.adapter(name)

    def run_rounds(rounds):
        for _ in range(rounds):
            venue = adapter(symbols, CHANNELS)
            rule = venue.rule
            seq = sync.ConnectionSequence()
            books = {}
            parse = venue.parse
            for text in texts:
                for event in parse(text):
                    kind = type(event)
                    if kind is DepthUpdate:
                        inst = books.get(event.symbol)
                        if inst is None:
                            inst = books[event.symbol] = sync.InstrumentSync(
                                rule, Book(BOOK_LEVELS))
                            inst.start_resync()
                        if inst.on_update(event) == sync.GAP:
                            raise AssertionError("%s: gap in a clean stream: %s"
                                                 % (name, inst.last_gap))
                    elif kind is ConnSequence and seq.observe(event.seq) != sync.SEQ_OK:
                        raise AssertionError("%s: sequence hole in a clean stream" % name)
    return run_rounds


def bench(names, count, quick=False):
    target_s, reps, warmup = TIMING["quick" if quick else "full"]
    results = {}
    for name in names:
        symbols, texts = asyncio.run(record(name, count))
        rates, discarded = timed_reps(make_round(name, symbols, texts), len(texts), reps, warmup,
                                      target_s)
        results[name] = {"parse_sync": summarize(rates, "msgs/s"), "messages": len(texts),
                         "bytes": sum(len(t) for t in texts), "warmup": discarded}
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venues", default=",".join(in_stream_venues()))
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in args.venues.split(",") if n]
    unknown = [n for n in names if n not in in_stream_venues()]
    if unknown or not names or args.messages <= 0:
        parser.error("--venues: in-stream venues only (%s); --messages > 0"
                     % ", ".join(in_stream_venues()))
    results = bench(names, args.messages, args.quick)
    for name, res in results.items():
        ps = res["parse_sync"]
        sys.stderr.write("%-14s %8.0f msgs/s (%.0f-%.0f), %d messages, %.0f bytes each\n"
                         % (name, ps["median"], ps["min"], ps["max"], res["messages"],
                            res["bytes"] / res["messages"]))
    print(json.dumps({"interpreter": interpreter_facts(), "venues": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
