"""End to end for the venues without a per-instrument update id, as real processes on loopback:
simulator (``--venue coinbase | kraken``) -> daemon -> UDP -> decoder.

These venues give a book no id the simulator's journal could be indexed by (Coinbase numbers
the messages of a *connection*; Kraken numbers nothing), so exactness is checked by content:
every B message must equal the simulator's own top 20 at some point of its history, and the
points must never go backwards. A book that missed a message matches no point of that history
and fails. Trades must be the simulator's trades (by id where the venue has one), quotes its
best bids/offers.

Gap handling, each venue's own model:
- Coinbase: a message lost in transit (``drop_diff``) is a hole in the connection's
  ``sequence_num``: *every* instrument on that connection goes through status 2 back to 1;
- Kraken: a corrupted checksum resyncs that instrument only.
"""

import re
import time

import pytest

from hftfeed.codecs import wire

from e2e import (Collector, DaemonProcess, SimProcess, check_sequence, daemon_config, messages_of,
                 states_of)
from simtruth import load_journal

from hftfeed.venues import registry




def live_for(instrument_ids):
    seen = set()

    def test(data):
        for m in wire.decode_packet(data).messages:
            if m.type == wire.TYPE_STATUS and m.state == wire.STATE_LIVE:
                seen.add(m.instrument)
        return seen >= set(instrument_ids)
    return test


def lives_of(instrument, count):
    seen = [0]

    def test(data):
        for m in wire.decode_packet(data).messages:
            if m.type == wire.TYPE_STATUS and m.instrument == instrument \
                    and m.state == wire.STATE_LIVE:
                seen[0] += 1
        return seen[0] >= count
    return test


class Rig(object):
    def __init__(self, tmp_path, venue, extra=(), **overrides):
        registry.adapter(venue)         # a registered venue without its adapter fails here
        spec = registry.spec(venue)
        self.venue = venue
        self.symbols = list(spec.demo_symbols[:2])
        self.sim = SimProcess(tmp_path, self.symbols, rate=300,
                              extra=["--venue", venue] + list(extra))
        self.collector = Collector()
        cfg = daemon_config(self.sim, self.collector.target, self.symbols, feed_venue=venue,
                            feed_ws_url=self.sim.ws_url + registry.ws_path(venue), **overrides)
        del cfg["feeds"][0]["snapshot_limit"]
        self.daemon = DaemonProcess(tmp_path, cfg)

    def wait_live(self, timeout_s=10.0):
        assert self.collector.collect(timeout_s, until=live_for(range(1, len(self.symbols) + 1))), \
            self.daemon.log_text()[-3000:]

    def finish(self):
        code, _took_s = self.daemon.stop()
        self.collector.collect(0.3)
        self.sim.stop()
        assert code == 0, self.daemon.log_text()[-3000:]

    def close(self):
        if self.daemon.proc.poll() is None:
            self.daemon.stop()
        self.sim.stop()
        self.collector.close()


@pytest.fixture
def rigs(tmp_path):
    made = []

    def make(venue, extra=(), **overrides):
        rig = Rig(tmp_path, venue, extra, **overrides)
        made.append(rig)
        return rig
    yield make
    for rig in made:
        rig.close()


def truth_tops(truth, symbol, depth=20):
    """The simulator's top ``depth`` of ``symbol`` after each of its depth events, in order
    (the initial book first)."""
    ids = [truth.initial_books[symbol][0]] + [ev[1] for ev in truth.depth_events[symbol]]
    for update_id in ids:
        yield truth.book_at(symbol, update_id).top(depth)


def check_books_by_content(packets, truth, symbols_by_id, depth=20):
    """Every B message equals the simulator's top ``depth`` at some point, never going back."""
    cursors = {inst: truth_tops(truth, sym, depth) for inst, sym in symbols_by_id.items()}
    current = {}
    checked = 0
    for msg in messages_of(packets, wire.TYPE_BOOK):
        got = (msg.bids, msg.asks)
        tops = cursors[msg.instrument]
        top = current.get(msg.instrument)
        while top != got:
            top = next(tops, None)
            assert top is not None, "book %d of %s is no book the venue had (or went back)" % (
                msg.update_id, symbols_by_id[msg.instrument])
        current[msg.instrument] = top
        checked += 1
    return checked


def check_trades_and_quotes(packets, truth, ids, trade_ids_known=True):
    trades = messages_of(packets, wire.TYPE_TRADE)
    assert trades, "no trade published"
    for t in trades:
        by_id = truth.trades[ids[t.instrument]]
        if trade_ids_known:
            assert by_id[t.update_id] == (t.price, t.qty, t.side)
        else:
            assert (t.price, t.qty, t.side) in set(by_id.values())
    quotes = messages_of(packets, wire.TYPE_QUOTE)
    assert quotes, "no quote published"
    for q in quotes:
        assert (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty) in set(truth.quotes[ids[q.instrument]].values())


def run_clean(rig):
    rig.wait_live()
    rig.collector.collect(2.5)
    rig.finish()
    packets = rig.collector.packets()
    assert packets[-1].flags & wire.PACKET_FLAG_END_OF_SESSION
    check_sequence(packets)
    truth = load_journal(rig.sim.journal, initial_book_ids=True)
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    assert sorted(ids.values()) == sorted(rig.symbols)
    return packets, truth, ids


def test_coinbase_every_published_message_matches_the_simulator(rigs):
    rig = rigs("coinbase")
    packets, truth, ids = run_clean(rig)
    assert check_books_by_content(packets, truth, ids) > 100
    check_trades_and_quotes(packets, truth, ids)
    books = messages_of(packets, wire.TYPE_BOOK)
    assert {m.venue for m in books} == {registry.spec("coinbase").wire_id}
    for inst in ids:
        assert states_of(packets, inst) == [wire.STATE_RESYNC, wire.STATE_LIVE]
        ups = [m.update_id for m in books if m.instrument == inst]
        assert ups == sorted(ups), "book ids are the connection's growing sequence_num"
    assert "connection sequence jumped" not in rig.daemon.log_text()


def test_coinbase_a_message_lost_on_the_connection_resyncs_every_instrument_on_it(rigs):
    rig = rigs("coinbase")
    rig.wait_live()
    rig.collector.collect(0.7)
    rig.sim.fault(fault="drop_diff", symbol=rig.symbols[0])
    assert rig.collector.collect(8.0, until=lives_of(2, 1)), rig.daemon.log_text()[-3000:]
    rig.collector.collect(1.0)
    rig.finish()
    packets = rig.collector.packets()
    check_sequence(packets)
    truth = load_journal(rig.sim.journal, initial_book_ids=True)
    assert truth.faults_named("drop_diff")
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    log = rig.daemon.log_text()
    assert "connection sequence jumped" in log and "resynchronising its 2 instruments" in log
    for inst in ids:    # both: the lost message could have been anyone's
        assert states_of(packets, inst) == [wire.STATE_RESYNC, wire.STATE_LIVE] * 2, log[-3000:]
        flagged = [m for m in messages_of(packets, wire.TYPE_BOOK)
                   if m.instrument == inst and m.flags & wire.BOOK_FLAG_SNAPSHOT]
        assert len(flagged) == 2
    assert check_books_by_content(packets, truth, ids) > 50


def test_kraken_every_published_message_matches_the_simulator(rigs):
    rig = rigs("kraken")
    packets, truth, ids = run_clean(rig)
    assert check_books_by_content(packets, truth, ids) > 100
    check_trades_and_quotes(packets, truth, ids)
    books = messages_of(packets, wire.TYPE_BOOK)
    assert {m.venue for m in books} == {registry.spec("kraken").wire_id}
    for inst in ids:
        assert states_of(packets, inst) == [wire.STATE_RESYNC, wire.STATE_LIVE]
        assert max(m.bid_count if hasattr(m, "bid_count") else len(m.bids) for m in books
                   if m.instrument == inst) == 20       # the top 20 of the 25 kept
    assert "checksum mismatch" not in rig.daemon.log_text()


def test_kraken_a_checksum_mismatch_resyncs_that_instrument_only(rigs):
    rig = rigs("kraken")
    symbol = rig.symbols[0]
    rig.wait_live()
    rig.collector.collect(0.7)
    rig.sim.fault(fault="bad_checksum", symbol=symbol)
    assert rig.collector.collect(8.0, until=lives_of(1, 1)), rig.daemon.log_text()[-3000:]
    rig.collector.collect(1.0)
    rig.finish()
    packets = rig.collector.packets()
    check_sequence(packets)
    truth = load_journal(rig.sim.journal, initial_book_ids=True)
    assert [f for f in truth.faults_named("bad_checksum") if "correct" in f]
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    by_symbol = {s: i for i, s in ids.items()}
    log = rig.daemon.log_text()
    assert "checksum mismatch" in log
    assert states_of(packets, by_symbol[symbol]) == [wire.STATE_RESYNC, wire.STATE_LIVE] * 2, \
        log[-3000:]
    assert states_of(packets, by_symbol[rig.symbols[1]]) == [wire.STATE_RESYNC, wire.STATE_LIVE]
    assert check_books_by_content(packets, truth, ids) > 50


def check_no_quote_lost_across_rollovers(rig, venue):
    """Run through several make-before-break rollovers; every quote the simulator sent while
    the feed was live must be published (by content: the ids start again with each connection
    on these venues), and the quote ids of one connection must not hold back the next one's."""
    rig.wait_live()
    start_ns = time.time_ns()
    rig.collector.collect(6.0)
    end_ns = time.time_ns()
    rig.finish()
    packets = rig.collector.packets()
    check_sequence(packets)
    log = rig.daemon.log_text()
    assert len(re.findall(r"rolled over to a new connection", log)) >= 2, log[-3000:]
    truth = load_journal(rig.sim.journal, initial_book_ids=True)
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    published = {}
    repeats = 0     # a quote published again right after itself: both connections' copies
    previous = {}
    for q in messages_of(packets, wire.TYPE_QUOTE):
        content = (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)
        published.setdefault(ids[q.instrument], set()).add(content)
        repeats += previous.get(q.instrument) == content
        previous[q.instrument] = content
    connections = log.count("rolled over to a new connection") + 1
    # at most one per new connection and instrument: its subscription's current best bid/offer
    assert repeats <= connections * len(ids), "%d quotes published twice in a row" % repeats
    missing = []
    sent = 0
    for symbol in rig.symbols:
        for u, quote in truth.quotes[symbol].items():
            send_ns = truth.quote_send_ns[symbol][u]
            if start_ns + 300000000 <= send_ns <= end_ns - 500000000:
                sent += 1
                if quote not in published.get(symbol, ()):
                    missing.append((symbol, u, send_ns))
    assert sent > 50, "the simulator sent too few quotes to tell"
    assert not missing, "%d of %d quotes sent while live were never published: %s" % (
        len(missing), sent, missing[:5])
    assert "quotes in a row below id" not in log
    assert check_books_by_content(packets, truth, ids) > 100


@pytest.mark.parametrize("venue", ["coinbase", "kraken"])
def test_no_quote_is_lost_or_held_back_at_a_connection_rollover(rigs, venue):
    """Coinbase's quote ids are the connection's ``sequence_num`` (starting again on every
    connection), Kraken's quotes have none: at a rollover the new connection's quotes must be
    published at once, and the retiring connection's must not be published after them."""
    rig = rigs(venue, feed_connection_lifetime_s=2.0, feed_overlap_s=1.0)
    check_no_quote_lost_across_rollovers(rig, venue)
