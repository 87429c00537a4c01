"""The router with the continuity models that are not per-instrument id chains (core/sync.py):
a sequence per connection (Coinbase) and checksum only (Kraken).

- per connection: a late message is dropped whole; a hole resyncs every instrument of the
  connection, each by its own re-subscription, and fresh snapshots bring them back;
- ids that do not span connections: during a make-before-break the new connection takes an
  instrument over with its own snapshot, never by comparing ids across connections."""

import asyncio
import json

from hftfeed.codecs import wire
from hftfeed.core import sync as sync_mod
from hftfeed.core.book import Book
from hftfeed.core.updates import DepthUpdate, Quote
from hftfeed.pipeline.feed import FeedStats
from hftfeed.pipeline.router import Instrument, Router
from hftfeed.venues.coinbase import Coinbase
from hftfeed.venues.kraken import Kraken, checksum_of

from hostile import HostileExchange, Recorder, make_feed, run, wait_for

LIVE, RESYNC = wire.STATE_LIVE, wire.STATE_RESYNC
P = 100000000


def cb(seq, channel, events):
    return json.dumps({"channel": channel, "client_id": "", "timestamp": "2026-12-05T06:00:00Z",
                       "sequence_num": seq, "events": events})


def l2(seq, kind, product, bid, ask=None):
    updates = [{"side": "bid", "event_time": "2026-12-05T06:00:00Z", "price_level": str(bid[0]),
                "new_quantity": str(bid[1])}]
    if ask is not None:
        updates.append({"side": "offer", "event_time": "2026-12-05T06:00:00Z",
                        "price_level": str(ask[0]), "new_quantity": str(ask[1])})
    return cb(seq, "l2_data", [{"type": kind, "product_id": product, "updates": updates}])


def states(rec, inst):
    return [s for i, s in rec.statuses if i == inst]


def test_coinbase_a_late_message_is_dropped_and_a_hole_resyncs_every_instrument_on_the_connection():
    sent = {}

    async def script(conn):
        assert await wait_for(lambda: any('"level2"' in t for t in conn.texts))
        conn.send_text(cb(0, "subscriptions", [{"subscriptions": {}}]))
        conn.send_text(l2(1, "snapshot", "BTC-USD", (100, 1), (101, 1)))
        conn.send_text(l2(2, "snapshot", "ETH-USD", (10, 1), (11, 1)))
        conn.send_text(l2(3, "update", "BTC-USD", (100, 2)))
        await asyncio.sleep(0.2)
        conn.send_text(l2(2, "update", "BTC-USD", (99, 5)))      # late: must change nothing
        conn.send_text(l2(4, "update", "ETH-USD", (10, 3)))
        await asyncio.sleep(0.2)
        conn.send_text(l2(7, "update", "BTC-USD", (100, 4)))     # 5 and 6 lost
        assert await wait_for(lambda: sum('"unsubscribe"' in t for t in conn.texts) >= 2)
        sent["resubscribed"] = [json.loads(t) for t in conn.texts if '"unsubscribe"' in t]
        conn.send_text(l2(8, "snapshot", "BTC-USD", (100, 9), (101, 1)))
        conn.send_text(l2(9, "snapshot", "ETH-USD", (10, 9), (11, 1)))
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("coinbase", ex, symbols=("BTC-USD", "ETH-USD"))
        feed.start()
        try:
            assert await wait_for(lambda: states(rec, 1)[-3:] == [LIVE, RESYNC, LIVE]
                                  and states(rec, 2)[-3:] == [LIVE, RESYNC, LIVE])
        finally:
            await feed.stop()
            await ex.stop()
        return feed, rec

    feed, rec = run(scenario())
    assert sorted(m["product_ids"][0] for m in sent["resubscribed"]) == ["BTC-USD", "ETH-USD"]
    assert all(m["channel"] == "level2" for m in sent["resubscribed"])
    btc = [b for b in rec.books if b[0] == 1]
    assert all(b[2][0] != 99 * P for b in btc), "the late message was applied"
    assert btc[-1][2] == (100 * P, 9 * P) and btc[-1][1] & wire.BOOK_FLAG_SNAPSHOT
    assert feed.stats.gaps >= 2


class FakeLink(object):
    def __init__(self, number):
        self.number = number
        self.retiring = False
        self.opened_ns = number         # links open in the order of their numbers


def kraken_update(book_after, n, is_snapshot=False, bids=(), asks=()):
    return DepthUpdate("BTC/USD", n, n, -1, 0, list(bids), list(asks), is_snapshot,
                       checksum_of(book_after, 1, 8))


def test_a_new_connection_takes_a_checksum_only_instrument_over_with_its_own_snapshot():
    venue = Kraken(["BTC/USD"], ("depth",))
    venue.precisions["BTC/USD"] = (1, 8)
    rec = Recorder()
    inst = Instrument("BTC/USD", 1, 6, venue.rule, 100, 1000)
    router = Router(venue, {"BTC/USD": inst}, rec, FeedStats(), None, lambda attempt: 0.1)
    old, new = FakeLink(1), FakeLink(2)
    inst.link = old
    inst.sync.start_resync()
    ref = Book(100)
    snap_levels = ([100 * P, P], [101 * P, P])
    ref.load_snapshot(snap_levels[0], snap_levels[1], 0)
    router._on_depth(old, kraken_update(ref, 1, True, *snap_levels), 0)
    assert inst.sync.state == sync_mod.LIVE
    ref.apply_levels([100 * P, 2 * P], [])
    step = kraken_update(ref, 2, bids=[100 * P, 2 * P])
    router._on_depth(new, step, 0)                 # the new link's diff: not compared, ignored
    assert inst.link is old and inst.book.best_bid() == (100 * P, P)
    router._on_depth(old, step, 0)                 # the old link still carries it
    assert inst.book.best_bid() == (100 * P, 2 * P)
    router._on_depth(new, kraken_update(ref, 3, True, [100 * P, 2 * P], [101 * P, P]), 0)
    assert inst.link is new and inst.sync.state == sync_mod.LIVE
    assert rec.books[-1][1] & wire.BOOK_FLAG_SNAPSHOT
    ref.apply_levels([100 * P, 7 * P], [])
    router._on_depth(old, kraken_update(ref, 4, bids=[100 * P, 7 * P]), 0)   # retired stream
    assert inst.book.best_bid() == (100 * P, 2 * P)
    assert sync_mod.LIVE == inst.sync.state and rec.statuses[-1] == (1, LIVE)


def test_coinbase_rollover_without_a_snapshot_on_the_new_connection_resyncs_instead_of_freezing():
    """Make-before-break where the new connection's snapshot never comes within overlap_s: the
    old book's ids are the old connection's numbers, which nothing on the new connection can
    continue. Taking the new stream "as is" would ignore its updates until its numbers overtake
    the old ones and then apply them to a book they never started from; it must resync from the
    new connection's own snapshot instead."""

    async def script(conn):
        seq = [0]

        def send(text_of_seq):
            conn.send_text(text_of_seq(seq[0]))
            seq[0] += 1

        assert await wait_for(lambda: sum('"subscribe"' in t for t in conn.texts) >= 2)
        for _ in range(2):          # heartbeats + level2: one answer each
            send(lambda n: cb(n, "subscriptions", [{"subscriptions": {}}]))
        if conn.number == 0:
            send(lambda n: l2(n, "snapshot", "BTC-USD", (100, 1), (101, 1)))
        answered = 0
        while True:
            unsubs = sum('"unsubscribe"' in t for t in conn.texts)
            if unsubs > answered:
                answered = unsubs
                send(lambda n: l2(n, "snapshot", "BTC-USD", (100, 77), (101, 1)))
            send(lambda n: l2(n, "update", "BTC-USD", (100, n % 5 + 1)))
            await asyncio.sleep(0.05)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("coinbase", ex, symbols=("BTC-USD",), channels=["depth"],
                              connection_lifetime_s=1.5, overlap_s=0.3)
        feed.start()
        try:
            assert await wait_for(lambda: (100 * P, 77 * P) in [b[2] for b in rec.books], 8.0), \
                rec.statuses
        finally:
            await feed.stop()
            await ex.stop()
        return rec

    rec = run(scenario())
    assert RESYNC in states(rec, 1)[1:], "the rollover went through a resync"
    first_new = next(b for b in rec.books if b[2] == (100 * P, 77 * P))
    assert first_new[1] & wire.BOOK_FLAG_SNAPSHOT


def test_coinbase_a_multi_megabyte_level2_snapshot_is_parsed_not_dropped_as_oversized():
    """Coinbase's only book is one in-stream snapshot of every level: several MB for a liquid
    product. The router's guard against huge messages must let it through (the adapter names
    its own maximum, MAX_MESSAGE_CHARS) or the product could never go live."""
    n_levels = 15000
    stamp = "2026-12-05T06:00:00Z"
    updates = []
    for i in range(n_levels):
        updates.append({"side": "bid", "event_time": stamp, "price_level": "%d.01" % (50000 - i),
                        "new_quantity": "1.5"})
        updates.append({"side": "offer", "event_time": stamp,
                        "price_level": "%d.01" % (50001 + i), "new_quantity": "2.5"})
    big = cb(2, "l2_data", [{"type": "snapshot", "product_id": "BTC-USD", "updates": updates}])
    assert len(big) > 2 ** 21

    async def script(conn):
        assert await wait_for(lambda: sum('"subscribe"' in t for t in conn.texts) >= 2)
        conn.send_text(cb(0, "subscriptions", [{"subscriptions": {}}]))
        conn.send_text(cb(1, "subscriptions", [{"subscriptions": {}}]))
        conn.send_text(big)
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("coinbase", ex, symbols=("BTC-USD",), channels=["depth"])
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(1) == LIVE, 10.0)
        finally:
            await feed.stop()
            await ex.stop()
        return feed, rec

    feed, rec = run(scenario())
    assert rec.books[-1][2] == (5000001000000, 150000000)
    assert feed.stats.bad_messages == 0


def quote(symbol, update_id, bid):
    return Quote(symbol, update_id, bid * P, P, (bid + 1) * P, P, 0)


def quote_router(venue_cls, symbol, venue_id):
    """A router of one instrument's quotes: (router, what it published, its stats)."""
    venue = venue_cls([symbol], ("bookTicker",))
    rec, stats = Recorder(), FeedStats()
    inst = Instrument(symbol, 1, venue_id, venue.rule, 100, 1000)
    return Router(venue, {symbol: inst}, rec, stats, None, lambda attempt: 0.1), rec, stats


def test_coinbase_quotes_follow_the_new_connection_at_once_and_never_the_old_one_again():
    """Coinbase's quote ids are the connection's ``sequence_num``: the new connection of a
    make-before-break counts from 0 while the old one is in the thousands. Its quotes must be
    published from the first one (not refused until their ids pass the old connection's), and
    once they are, a quote still arriving on the retiring connection is stale and dropped."""
    router, rec, stats = quote_router(Coinbase, "BTC-USD", 5)
    old, new = FakeLink(1), FakeLink(2)
    router._on_quote(old, quote("BTC-USD", 5000, 100), 0)
    router._on_quote(old, quote("BTC-USD", 5003, 101), 0)
    router._on_quote(new, quote("BTC-USD", 4, 102), 0)      # the new connection's 5th message
    router._on_quote(old, quote("BTC-USD", 5007, 101), 0)   # the old one, now stale
    router._on_quote(new, quote("BTC-USD", 9, 103), 0)
    router._on_quote(new, quote("BTC-USD", 7, 99), 0)       # late on the new connection itself
    assert rec.quotes == [(1, 5000), (1, 5003), (1, 4), (1, 9)]
    assert stats.ignored_events == 1


def test_quotes_without_an_id_are_taken_from_one_connection_at_a_time():
    """Kraken's quotes carry no id (0 on the wire): during an overlap both connections deliver
    every best bid/offer. Publishing both would double every quote and could put the old
    connection's older quote after the new one's; only the newest connection is followed."""
    router, rec, stats = quote_router(Kraken, "BTC/USD", 6)
    old, new = FakeLink(1), FakeLink(2)
    for link, bid in ((old, 100), (old, 101), (new, 101), (old, 102), (new, 102), (new, 103)):
        router._on_quote(link, quote("BTC/USD", 0, bid), 0)
    assert rec.quotes == [(1, 0)] * 5       # the old connection's 102 came after the switch
    assert stats.ignored_events == 1
