"""End to end, as real processes on loopback: simulator -> daemon -> UDP -> decoder.

Every B message must equal the simulator's own top-20 at that update id, every T its trade,
every Q its book ticker, and the sequence numbers must have no hole."""

import platform
import re

import pytest

from hftfeed.codecs import wire

from e2e import (Collector, DaemonProcess, SimProcess, check_books_against_truth, check_sequence,
                 daemon_config, messages_of)
from simtruth import load_journal

SYMBOLS = ["BTCUSDT", "ETHUSDT"]


def is_live_status(symbol_id):
    def test(data):
        pkt = wire.decode_packet(data)
        return any(m.type == wire.TYPE_STATUS and m.instrument == symbol_id
                   and m.state == wire.STATE_LIVE for m in pkt.messages)
    return test


@pytest.fixture
def rig(tmp_path):
    sim = SimProcess(tmp_path, SYMBOLS, rate=300)
    collector = Collector()
    daemon = DaemonProcess(tmp_path, daemon_config(sim, collector.target, SYMBOLS))
    yield sim, collector, daemon
    if daemon.proc.poll() is None:
        daemon.stop()
    sim.stop()
    collector.close()



def test_every_published_message_matches_the_simulator(rig):
    sim, collector, daemon = rig
    collector.collect(4.0)
    code, took_s = daemon.stop()
    collector.collect(0.5)
    sim.stop()
    assert code == 0, daemon.log_text()[-3000:]
    assert took_s < 2.0
    packets = collector.packets()
    assert packets, daemon.log_text()[-3000:]
    assert packets[-1].flags & wire.PACKET_FLAG_END_OF_SESSION
    check_sequence(packets)
    assert len({p.session for p in packets}) == 1 and packets[0].channel == 7

    truth = load_journal(sim.journal)
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    assert sorted(ids.values()) == SYMBOLS
    books = check_books_against_truth(packets, truth, ids)
    assert books > 100

    trades = messages_of(packets, wire.TYPE_TRADE)
    assert trades
    for t in trades:
        assert truth.trades[ids[t.instrument]][t.update_id] == (t.price, t.qty, t.side)
    quotes = messages_of(packets, wire.TYPE_QUOTE)
    assert quotes
    for q in quotes:
        assert truth.quotes[ids[q.instrument]][q.update_id] == \
            (q.bid_px, q.bid_qty, q.ask_px, q.ask_qty)

    # states: resync (2) on connect, then live (1); the first book after it is flagged
    for inst in ids:
        states = [m.state for m in messages_of(packets, wire.TYPE_STATUS) if m.instrument == inst]
        assert states[:2] == [wire.STATE_RESYNC, wire.STATE_LIVE]
        first_book = next(m for m in messages_of(packets, wire.TYPE_BOOK) if m.instrument == inst)
        assert first_book.flags & wire.BOOK_FLAG_SNAPSHOT
    stats_lines = [line for line in daemon.log_text().splitlines() if "HFT OrderBook:" in line]
    assert stats_lines and "| live %d/%d |" % (len(ids), len(ids)) in stats_lines[-1]
    assert re.search(r"\| gc \d+ pauses \S+ \(max \S+\)( \| jit \d+ loops \d+ bridges \d+ aborts)?$",
                     stats_lines[-1]), stats_lines[-1]
    # PyPy: the JIT's compilations per interval (warm-up); CPython has no JIT and no field
    jit_counts = [re.search(r"\| jit (\d+) loops (\d+) bridges", line) for line in stats_lines]
    if platform.python_implementation() == "PyPy":
        assert all(jit_counts) and sum(int(m.group(1)) + int(m.group(2)) for m in jit_counts) > 0
    else:
        assert not any(jit_counts)
    for symbol in ids.values():
        assert "%s: live (book at update id" % symbol in daemon.log_text()


def market_messages(packet):
    return sum(1 for m in packet.messages
               if m.type in (wire.TYPE_BOOK, wire.TYPE_TRADE, wire.TYPE_QUOTE))


@pytest.mark.parametrize("flush", [None, "read", "frame"])
def test_flush_policy_decides_how_frames_share_datagrams_and_books_stay_exact(tmp_path, flush):
    """Default (None) is "read": frames of one socket read share datagrams; "frame": one
    inbound frame (one Binance event) -> its own datagram."""
    sim = SimProcess(tmp_path, SYMBOLS, rate=3000)
    collector = Collector()
    cfg = daemon_config(sim, collector.target, SYMBOLS)
    if flush is not None:
        cfg["publisher"]["flush"] = flush
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        collector.collect(4.0)
    finally:
        code, _ = daemon.stop()
        sim.stop()
        collector.close()
    assert code == 0
    packets = collector.packets()
    check_sequence(packets)
    truth = load_journal(sim.journal)
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    assert check_books_against_truth(packets, truth, ids) > 100
    if flush == "frame":
        assert max(market_messages(p) for p in packets) == 1
    else:
        assert max(market_messages(p) for p in packets) >= 2


def state_changes(packets, instrument):
    """The states an instrument went through (the refresh cycle repeats the current one)."""
    changes = []
    for m in messages_of(packets, wire.TYPE_STATUS):
        if m.instrument == instrument and (not changes or changes[-1] != m.state):
            changes.append(m.state)
    return changes


def test_a_dropped_diff_resyncs_that_instrument_only_and_books_are_exact_again(rig):
    sim, collector, daemon = rig
    assert collector.collect(10.0, until=is_live_status(1))
    collector.collect(1.0)
    sim.fault(fault="drop_diff", symbol="BTCUSDT")
    collector.collect(3.0)
    code, _ = daemon.stop()
    sim.stop()
    assert code == 0
    packets = collector.packets()
    check_sequence(packets)
    truth = load_journal(sim.journal)
    assert any(f.get("fault") == "drop_diff" for f in truth.faults)
    ids = {m.instrument: m.symbol for m in messages_of(packets, wire.TYPE_INSTRUMENT)}
    by_symbol = {s: i for i, s in ids.items()}
    btc, eth = by_symbol["BTCUSDT"], by_symbol["ETHUSDT"]
    btc_states = state_changes(packets, btc)
    eth_states = state_changes(packets, eth)
    assert btc_states == [wire.STATE_RESYNC, wire.STATE_LIVE, wire.STATE_RESYNC, wire.STATE_LIVE]
    assert eth_states == [wire.STATE_RESYNC, wire.STATE_LIVE], "the other instrument kept going"
    check_books_against_truth(packets, truth, ids)
    # after the resync BTCUSDT publishes again, flagged as a fresh snapshot
    flagged = [m for m in messages_of(packets, wire.TYPE_BOOK)
               if m.instrument == btc and m.flags & wire.BOOK_FLAG_SNAPSHOT]
    assert len(flagged) == 2
    assert "resynchronising this instrument" in daemon.log_text()
