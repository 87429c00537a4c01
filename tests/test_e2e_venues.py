"""End to end for the derivatives and other venues, as real processes on loopback:
simulator (``--venue binance-usdm | bybit | okx``) -> daemon -> UDP -> decoder.

The same specification as ``test_e2e.py`` (Binance spot), once per venue: every B message equals
the simulator's own top-20 at that update id (Binance ``u``, Bybit ``u``, OKX ``seqId``), every T
its trade, every Q its best bid/offer, the sequence numbers have no hole -- also across the
venue events that must *not* resync (a Bybit service restart: a ``u == 1`` snapshot replaces the
book; OKX maintenance: ``seqId`` goes down while ``prevSeqId`` chains); a dropped diff moves
that instrument (only) through status 2 back to 1 with exact books again; for OKX a corrupted
checksum does the same. Each venue's test is skipped while its daemon adapter has not landed.
"""

import pytest

from hftfeed.codecs import wire

from e2e import (Collector, DaemonProcess, SimProcess, check_books_against_truth, check_sequence,
                 daemon_config)
from simtruth import load_journal

from hftfeed.venues import registry

BYBIT_UUID_VARIANT = 2 << 62    # Bybit trade ids are UUIDs; the adapter keeps the low 64 bits

# venue -> its trade id on the wire, given the simulator's trade id (symbols and the WebSocket
# path come from the registry, hftfeed/venues/registry.py)
SETUPS = {
    "binance-usdm": lambda tid: tid,
    "bybit": lambda tid: BYBIT_UUID_VARIANT | tid,
    "okx": lambda tid: tid,
}


# Venue events in the middle of the exactness run that the daemon must ride through without a gap.
MIDWAY = {
    "bybit": {"fault": "bybit_restart", "symbol": "BTCUSDT"},
    "okx": {"fault": "okx_seq_reset", "symbol": "BTC-USDT-SWAP", "to": 1000},
}


def needs_adapter(venue):
    registry.adapter(venue)     # a registered venue without its adapter fails here


def messages_of(packets, type_):
    return [m for p in packets for m in p.messages if m.type == type_]


def states_of(packets, instrument):
    """The state changes of an instrument (the refresh cycle repeats the current state)."""
    changes = []
    for m in messages_of(packets, wire.TYPE_STATUS):
        if m.instrument == instrument and (not changes or changes[-1] != m.state):
            changes.append(m.state)
    return changes


def live_for(instrument_ids):
    """A Collector stop condition: every listed instrument has reported status 1."""
    seen = set()

    def test(data):
        for m in wire.decode_packet(data).messages:
            if m.type == wire.TYPE_STATUS and m.state == wire.STATE_LIVE:
                seen.add(m.instrument)
        return seen >= set(instrument_ids)
    return test


class Rig(object):
    def __init__(self, tmp_path, venue, extra=()):
        needs_adapter(venue)
        self.venue = venue
        spec = registry.spec(venue)
        self.symbols, path = list(spec.demo_symbols[:2]), registry.ws_path(venue)
        self.wire_trade_id = SETUPS[venue]
        self.sim = SimProcess(tmp_path, self.symbols, rate=300,
                              extra=["--venue", venue] + list(extra))
        self.collector = Collector()
        cfg = daemon_config(self.sim, self.collector.target, self.symbols, feed_venue=venue,
                            feed_ws_url=self.sim.ws_url + path)
        self.daemon = DaemonProcess(tmp_path, cfg)

    def wait_live(self, timeout_s=10.0):
        # instrument ids follow the config order from 1
        assert self.collector.collect(timeout_s, until=live_for(range(1, len(self.symbols) + 1))), \
            self.daemon.log_text()[-3000:]

    def finish(self):
        code, took_s = self.daemon.stop()
        self.collector.collect(0.3)
        self.sim.stop()
        assert code == 0, self.daemon.log_text()[-3000:]
        return took_s

    def close(self):
        if self.daemon.proc.poll() is None:
            self.daemon.stop()
        self.sim.stop()
        self.collector.close()


@pytest.fixture
def rigs(tmp_path):
    made = []

    def make(venue, extra=()):
        rig = Rig(tmp_path, venue, extra)
        made.append(rig)
        return rig
    yield make
    for rig in made:
        rig.close()


def check_trades_and_quotes(rig, packets, truth, ids):
    trades = messages_of(packets, wire.TYPE_TRADE)
    assert trades, "no trade published"
    for t in trades:
        expected = {rig.wire_trade_id(tid): v for tid, v in truth.trades[ids[t.instrument]].items()}
        assert expected[t.update_id] == (t.price, t.qty, t.side)
    quotes = messages_of(packets, wire.TYPE_QUOTE)
    assert quotes, "no quote published"
    for q in quotes:
        got = (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)
        by_id = truth.quotes[ids[q.instrument]]
        if q.update_id:     # Binance u, Bybit seq
            assert by_id[q.update_id] == got
        else:               # OKX bbo-tbt quotes carry no id on the wire: match the content
            assert got in set(by_id.values())


@pytest.mark.parametrize("venue", sorted(SETUPS))
def test_every_published_message_matches_the_simulator(rigs, venue):
    rig = rigs(venue)
    rig.wait_live()
    rig.collector.collect(1.0)
    if venue in MIDWAY:
        rig.sim.fault(**MIDWAY[venue])
    rig.collector.collect(1.5)
    took_s = rig.finish()
    assert took_s < 2.0
    packets = rig.collector.packets()
    assert packets[-1].flags & wire.PACKET_FLAG_END_OF_SESSION
    check_sequence(packets)
    assert len({p.session for p in packets}) == 1 and packets[0].channel == 7

    truth = load_journal(rig.sim.journal, initial_book_ids=True)
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    assert sorted(ids.values()) == sorted(rig.symbols)
    assert check_books_against_truth(packets, truth, ids) > 100
    check_trades_and_quotes(rig, packets, truth, ids)
    books = messages_of(packets, wire.TYPE_BOOK)
    assert {m.venue for m in books} == {registry.spec(venue).wire_id}
    for inst in ids:
        # no resync, whatever happened midway
        assert states_of(packets, inst) == [wire.STATE_RESYNC, wire.STATE_LIVE], \
            rig.daemon.log_text()[-3000:]
        first_book = next(m for m in books if m.instrument == inst)
        assert first_book.flags & wire.BOOK_FLAG_SNAPSHOT
    btc = next(i for i, s in ids.items() if s == rig.symbols[0])
    flagged = [m.update_id for m in books if m.instrument == btc and m.flags & wire.BOOK_FLAG_SNAPSHOT]
    if venue == "bybit":        # the restart's u == 1 snapshot replaced the book, flagged
        assert len(flagged) == 2 and flagged[1] == 1
    else:
        assert len(flagged) == 1
    if venue == "okx":          # books published after seqId went down to 1000
        assert any(1000 <= m.update_id < 100000 for m in books if m.instrument == btc)
        assert truth.faults_named("okx_seq_reset")


def lives_of(instrument, count):
    """A Collector stop condition: ``instrument`` has reported status 1 ``count`` times."""
    seen = [0]

    def test(data):
        for m in wire.decode_packet(data).messages:
            if m.type == wire.TYPE_STATUS and m.instrument == instrument \
                    and m.state == wire.STATE_LIVE:
                seen[0] += 1
        return seen[0] >= count
    return test


def resync_after(rig, *faults):
    """Live, then each fault on the first instrument in turn, each time waiting until it is
    live again (plus a little traffic); returns (packets, truth, ids)."""
    rig.wait_live()
    rig.collector.collect(0.7)
    for fault in faults:
        lives = lives_of(1, 1)      # instrument 1 is the first symbol; count from here on
        rig.sim.fault(**fault)
        assert rig.collector.collect(8.0, until=lives), rig.daemon.log_text()[-3000:]
        rig.collector.collect(0.7)
    rig.finish()
    packets = rig.collector.packets()
    check_sequence(packets)
    truth = load_journal(rig.sim.journal, initial_book_ids=True)
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    return packets, truth, ids


def check_resyncs(rig, packets, truth, ids, symbol, resyncs=1):
    by_symbol = {s: i for i, s in ids.items()}
    hit = by_symbol[symbol]
    assert states_of(packets, hit) == [wire.STATE_RESYNC, wire.STATE_LIVE] * (1 + resyncs), \
        rig.daemon.log_text()[-3000:]
    for other in rig.symbols:
        if other != symbol:
            assert states_of(packets, by_symbol[other]) == [wire.STATE_RESYNC, wire.STATE_LIVE], \
                "the other instrument kept going"
    check_books_against_truth(packets, truth, ids)
    flagged = [m for m in messages_of(packets, wire.TYPE_BOOK)
               if m.instrument == hit and m.flags & wire.BOOK_FLAG_SNAPSHOT]
    assert len(flagged) == 1 + resyncs
    after = [m for m in messages_of(packets, wire.TYPE_BOOK) if m.instrument == hit]
    assert after[-1] is not flagged[-1], "books flow again after the last resync"
    assert "resynchronising this instrument" in rig.daemon.log_text()


@pytest.mark.parametrize("venue", ["binance-usdm", "bybit"])
def test_a_dropped_diff_resyncs_that_instrument_only_and_books_are_exact_again(rigs, venue):
    rig = rigs(venue)
    symbol = rig.symbols[0]
    packets, truth, ids = resync_after(rig, {"fault": "drop_diff", "symbol": symbol})
    assert truth.faults_named("drop_diff")
    check_resyncs(rig, packets, truth, ids, symbol)


def test_okx_a_dropped_diff_then_a_corrupted_checksum_each_resync_that_instrument_only(rigs):
    rig = rigs("okx", extra=["--checksum", "real"])
    symbol = rig.symbols[0]
    packets, truth, ids = resync_after(rig, {"fault": "drop_diff", "symbol": symbol},
                                       {"fault": "bad_checksum", "symbol": symbol})
    assert truth.faults_named("drop_diff")
    assert [f for f in truth.faults_named("bad_checksum") if "correct" in f]
    check_resyncs(rig, packets, truth, ids, symbol, resyncs=2)
    assert "checksum mismatch" in rig.daemon.log_text()
