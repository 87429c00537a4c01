"""End to end for the derivatives and other venues, as real processes on loopback:
simulator (``--venue binance-usdm | binance-coinm | bybit | bybit-inverse | bybit-spot | okx``)
-> daemon -> UDP -> decoder (OKX also with spot instruments, which share its endpoint).

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
                 daemon_config, messages_of, states_of)
from simtruth import load_journal

from hftfeed.venues import registry

BYBIT_UUID_VARIANT = 2 << 62    # Bybit trade ids are UUIDs; the adapter keeps the low 64 bits

# venue -> its trade id on the wire, given the simulator's trade id (symbols and the WebSocket
# path come from the registry, hftfeed/venues/registry.py)
SETUPS = {
    "binance-usdm": lambda tid: tid,
    "binance-coinm": lambda tid: tid,
    "bybit": lambda tid: BYBIT_UUID_VARIANT | tid,
    "bybit-inverse": lambda tid: BYBIT_UUID_VARIANT | tid,
    "bybit-spot": lambda tid: tid,          # spot trade ids are decimal strings
    "okx": lambda tid: tid,
    "deribit": lambda tid: tid,             # trade_seq
    "bitget": lambda tid: tid,
    "bitget-futures": lambda tid: tid,
}


# Venue events in the middle of the exactness run that the daemon must ride through without a
# gap (the first demo symbol of the venue is hit).
MIDWAY = {
    "bybit": {"fault": "bybit_restart"},
    "bybit-inverse": {"fault": "bybit_restart"},
    "bybit-spot": {"fault": "bybit_restart"},
    "okx": {"fault": "okx_seq_reset", "to": 1000},
}

# OKX spot shares the swaps' endpoint and adapter (venue id 4): the same run with spot ids.
OKX_SPOT = ["BTC-USDT", "ETH-USDT"]


def needs_adapter(venue):
    registry.adapter(venue)     # a registered venue without its adapter fails here




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
    def __init__(self, tmp_path, venue, extra=(), symbols=None, rate=300):
        needs_adapter(venue)
        self.venue = venue
        spec = registry.spec(venue)
        self.symbols = list(symbols or spec.demo_symbols[:2])
        path = registry.ws_path(venue)
        self.wire_trade_id = SETUPS[venue]
        self.sim = SimProcess(tmp_path, self.symbols, rate=rate,
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

    def make(venue, extra=(), symbols=None, rate=300):
        rig = Rig(tmp_path, venue, extra, symbols, rate)
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
    check_exact_run(rigs(venue))


def test_okx_spot_instruments_are_exact_on_the_shared_endpoint(rigs):
    check_exact_run(rigs("okx", symbols=OKX_SPOT))


def check_exact_run(rig):
    venue = rig.venue
    midway = MIDWAY.get(venue)
    rig.wait_live()
    rig.collector.collect(1.0)
    if midway is not None:
        rig.sim.fault(symbol=rig.symbols[0], **midway)
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
    fault = midway["fault"] if midway else None
    if fault == "bybit_restart":    # the restart's u == 1 snapshot replaced the book, flagged
        assert len(flagged) == 2 and flagged[1] == 1
    else:
        assert len(flagged) == 1
    if fault == "okx_seq_reset":    # books published after seqId went down to 1000
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


@pytest.mark.parametrize("venue", ["binance-usdm", "binance-coinm", "bybit", "bybit-inverse",
                                   "bybit-spot", "deribit", "bitget", "bitget-futures"])
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


def test_okx_with_checksum_zero_the_seq_chain_alone_carries_keepalives_resets_and_gaps(rigs):
    """OKX's production books since mid-2026: checksum 0, so ``seqId``/``prevSeqId`` is the only
    guard. Every documented case of that chain through the simulator, on a quiet market: empty
    keepalive updates (``prevSeqId == seqId``) change nothing and break nothing; a maintenance
    reset (``seqId`` goes down, ``prevSeqId`` still chains) rides through; a lost update is
    caught by the chain alone and resyncs that instrument, with exact books throughout."""
    rig = rigs("okx", extra=["--checksum", "zero", "--book-keepalive-s", "0.05"], rate=20)
    symbol = rig.symbols[0]
    rig.wait_live()
    rig.collector.collect(1.0)
    status = rig.sim.status()
    assert status["venue_state"]["checksum"] == "zero"
    assert status["venue_state"]["keepalives_sent"] > 0
    seq_now = status["venue_state"]["seqId"][symbol]
    rig.sim.fault(fault="okx_seq_reset", symbol=symbol, to=seq_now // 2)
    rig.collector.collect(1.0)
    lives = lives_of(1, 1)
    rig.sim.fault(fault="drop_diff", symbol=symbol)
    assert rig.collector.collect(8.0, until=lives), rig.daemon.log_text()[-3000:]
    rig.collector.collect(0.7)
    rig.finish()
    packets = rig.collector.packets()
    check_sequence(packets)
    truth = load_journal(rig.sim.journal, initial_book_ids=True)
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    assert truth.faults_named("okx_seq_reset") and truth.faults_named("drop_diff")
    check_resyncs(rig, packets, truth, ids, symbol)      # exactly one resync: the lost update
    hit = next(i for i, s in ids.items() if s == symbol)
    after_reset = [m.update_id for m in messages_of(packets, wire.TYPE_BOOK)
                   if m.instrument == hit and m.update_id < seq_now // 2 + 1000]
    assert after_reset, "books published with the lower seqIds after the reset"
    assert "checksum mismatch" not in rig.daemon.log_text()


def test_bitget_a_seq_reset_with_pseq_0_resyncs_that_instrument_and_books_stay_exact(rigs):
    """Bitget may reset its book numbers after a release or restart, the next message "most
    likely" carrying ``pseq`` 0 (docs/venues.md). The book must not freeze (the smaller ``seq``
    are not "already applied") nor chain across the reset: that instrument resyncs from a new
    snapshot, the other keeps going, and every book is exact."""
    rig = rigs("bitget")
    symbol = rig.symbols[0]
    rig.wait_live()
    seq_now = rig.sim.status()["venue_state"]["seq"][symbol]
    packets, truth, ids = resync_after(rig, {"fault": "bitget_seq_reset", "symbol": symbol,
                                             "to": max(1, seq_now // 2)})
    assert truth.faults_named("bitget_seq_reset")
    check_resyncs(rig, packets, truth, ids, symbol)
    hit = next(i for i, s in ids.items() if s == symbol)
    assert [m for m in messages_of(packets, wire.TYPE_BOOK)
            if m.instrument == hit and m.update_id < seq_now], "books go on after the reset"


def test_deribit_test_requests_are_answered_and_the_connection_stays(rigs):
    """After public/set_heartbeat the venue sends test_request and closes a connection that
    leaves one unanswered; the daemon answers each with public/test on the same connection."""
    # 0.5 s: above the 0.2 s spacing of the daemon's 5 requests a second (production: 10 s)
    rig = rigs("deribit", extra=["--test-request-s", "0.5"])
    rig.wait_live()
    rig.collector.collect(2.5)
    state = rig.sim.status()["venue_state"]
    rig.finish()
    assert state["test_requests_sent"] >= 3
    assert state["tests_answered"] >= state["test_requests_sent"] - 1     # the last may be in flight
    assert state["heartbeat_closes"] == 0, (state, rig.daemon.log_text()[-3000:])
    packets = rig.collector.packets()
    for inst in {m.instrument for m in messages_of(packets, wire.TYPE_INSTRUMENT)}:
        assert states_of(packets, inst) == [wire.STATE_RESYNC, wire.STATE_LIVE]
