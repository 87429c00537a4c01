"""How fast the consumer library decodes: ``bench.py client`` (``python -m
hftfeed.tools.bench.client [--quick]`` prints one JSON line).

A realistic mix of datagrams (built with wire's encoders: books of 20 levels a side, 1-4
messages per datagram, trades and quotes in between, as the publisher packs them) is fed to
``Subscriber.datagram`` (validation, sequencing, decode, event objects, the Books view: the
whole client path except the socket) and, for comparison, to ``wire.decode_packet`` alone.
Figures are messages per second, median (min-max) of repetitions after discarded warm-up ones
(PyPy needs them to compile the path).
"""

import argparse
import json
import random
import time

from hftfeed.client import Subscriber
from hftfeed.codecs import wire
from hftfeed.tools.bench.common import median

SIZES = {"full": (20000, 7, 3), "quick": (4000, 3, 1)}   # datagrams, reps, warm-up discarded
PX = 100000000


class _Levels(object):
    def __init__(self, update_id, bids, asks):
        self.update_id = update_id
        self.bids = bids
        self.asks = asks
        self.bid_levels = len(bids)
        self.ask_levels = len(asks)

    def copy_levels_into(self, buf, off, bid_n, ask_n):
        for price, qty in self.bids[:bid_n] + self.asks[:ask_n]:
            wire.LEVEL.pack_into(buf, off, price, qty)
            off += wire.LEVEL_SIZE


def datagrams(count, seed=7):
    """(list of datagram bytes, messages in them): seq numbers continue across datagrams."""
    rng = random.Random(seed)
    out = []
    seq = 1
    messages = 0
    buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
    for index in range(count):
        off = wire.HEADER_SIZE
        n = 0
        if index % 50 == 0:      # definitions now and then, in a datagram of their own
            for inst in range(1, 5):
                off = wire.pack_instrument(buf, off, 1, inst, "SYM%d" % inst)
                n += 1
        for _ in range(0 if n else rng.randint(1, 2)):
            inst = rng.randint(1, 4)
            mid = 37000 * PX + rng.randint(-10 ** 9, 10 ** 9)
            book = _Levels(index, [(mid - k * 10 ** 6, rng.randint(1, 10 ** 9)) for k in range(20)],
                           [(mid + (k + 1) * 10 ** 6, rng.randint(1, 10 ** 9)) for k in range(20)])
            off = wire.pack_book(buf, off, 1, inst, 0, 1, 2, book, 20)
            n += 1
        if not index % 50 == 0 and rng.random() < 0.5:
            off = wire.pack_trade(buf, off, 1, 1, 1, 2, index, 37000 * PX, PX, 1)
            n += 1
        wire.pack_packet_header(buf, 0, 1, n, 1700000000, seq, 3)
        out.append(bytes(buf[:off]))
        seq += n
        messages += n
    return out, messages


def _time_subscriber(data, clock=time.perf_counter):
    sub = Subscriber()           # no sockets: datagram() is the receive path's entry point
    feed = sub.datagram
    poll = sub.poll
    start = clock()
    for index, datagram in enumerate(data):
        feed(datagram, 0, None)
        if index & 63 == 63:
            poll(0)              # hand the events over, as a consumer's loop does
    poll(0)
    elapsed = clock() - start
    sub.close()
    return elapsed


def _time_decoder(data, clock=time.perf_counter):
    decode = wire.decode_packet
    start = clock()
    for datagram in data:
        decode(datagram)
    return clock() - start


def run(quick=False):
    count, reps, warmup = SIZES["quick" if quick else "full"]
    data, messages = datagrams(count)
    result = {"datagrams": count, "messages": messages, "reps": reps, "warmup": warmup}
    for name, timer in (("subscriber", _time_subscriber), ("decode_packet", _time_decoder)):
        rates = []
        for rep in range(reps + warmup):
            elapsed = timer(data)
            if rep >= warmup:
                rates.append(messages / elapsed)
        result[name] = {"messages_per_s": median(rates), "min": min(rates), "max": max(rates)}
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(json.dumps(run(args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
