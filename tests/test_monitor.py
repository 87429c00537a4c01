"""Specification of hftfeed.tools.monitor: the UDP receiver (FeedMonitor) and the monitor command.

Packets are built with wire's encoders (book messages by hand from PROTOCOL.md's table, so these
tests do not depend on book.py) and sent over real loopback UDP sockets.
"""

import json
import logging
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hftfeed.codecs import wire
from hftfeed.errors import ConfigError, WireError
from hftfeed.venues import registry
from hftfeed.tools.monitor import (FeedMonitor, decode_single_message, format_scaled, main,
                             parse_listen, render_report, warm_up_jit)

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SESSION = 1700000000
PX = 100000000          # 1.0 scaled by 10**8

BINANCE_ID = registry.spec("binance").wire_id


# ------------------------------------------------------------------ packet building helpers

def trade(instrument=1, recv_ns=0, trade_id=1, price=37000 * PX, qty=PX // 2, side=1):
    return lambda buf, off: wire.pack_trade(buf, off, BINANCE_ID, instrument, 0, recv_ns,
                                            trade_id, price, qty, side)


def quote(instrument=1, recv_ns=0):
    return lambda buf, off: wire.pack_quote(buf, off, BINANCE_ID, instrument, 0, recv_ns,
                                            7, 100 * PX, PX, 101 * PX, 2 * PX)


def status(instrument, state, recv_ns=0):
    return lambda buf, off: wire.pack_status(buf, off, BINANCE_ID, instrument, recv_ns,
                                             state)


def instrument_def(instrument, symbol, venue=BINANCE_ID):
    return lambda buf, off: wire.pack_instrument(buf, off, venue, instrument, symbol)


def book(instrument, update_id, bids, asks, recv_ns=0, flags=0, venue=BINANCE_ID):
    """A ``B`` message spelled out from PROTOCOL.md: 32-byte header, bid_n, ask_n, 6 reserved,
    then (i64 price, i64 qty) levels, bids first."""
    def write(buf, off):
        length = 40 + 16 * (len(bids) + len(asks))
        struct.pack_into("<HBBHHQQQBB6x", buf, off, length, ord("B"), venue, instrument, flags,
                         0, recv_ns, update_id, len(bids), len(asks))
        pos = off + 40
        for price, qty in list(bids) + list(asks):
            struct.pack_into("<qq", buf, pos, price, qty)
            pos += 16
        return off + length
    return write


def packet(messages=(), seq=1, session=SESSION, channel=1, flags=0, send_ns=None):
    """One datagram: wire packet header + the given message writers."""
    buf = bytearray(wire.DEFAULT_MAX_PAYLOAD)
    off = wire.HEADER_SIZE
    for write in messages:
        off = write(buf, off)
    wire.pack_packet_header(buf, flags, channel, len(messages), session, seq,
                            time.time_ns() if send_ns is None else send_ns)
    return bytes(buf[:off])


class Sender(object):
    """A loopback UDP socket aimed at a monitor's port."""

    def __init__(self, port, host="127.0.0.1"):
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.address = (host, port)
        self.sent = 0

    def send(self, data):
        self.sock.sendto(data, self.address)
        self.sent += 1

    def close(self):
        self.sock.close()


def pump(monitor, datagrams, timeout_s=3.0):
    """Poll until ``datagrams`` have been handled (loopback delivery is immediate)."""
    handled = 0
    deadline = time.monotonic() + timeout_s
    while handled < datagrams and time.monotonic() < deadline:
        handled += monitor.poll(0.05)
    return handled


@pytest.fixture
def monitor():
    mon = FeedMonitor("127.0.0.1", 0)
    yield mon
    mon.close()


@pytest.fixture
def sender(monitor):
    snd = Sender(monitor.port)
    yield snd
    snd.close()


def send_all(monitor, sender, datagrams):
    for data in datagrams:
        sender.send(data)
    assert pump(monitor, len(datagrams)) == len(datagrams)


# ------------------------------------------------------------------ counting and sequencing

def test_counts_packets_messages_and_types(monitor, sender):
    send_all(monitor, sender, [
        packet([instrument_def(1, "BTCUSDT"), status(1, wire.STATE_LIVE)], seq=1),
        packet([trade(), trade(), quote()], seq=3),
        packet([book(1, 10, [(100 * PX, PX)], [(101 * PX, PX)])], seq=6),
    ])
    report = monitor.interval_report()
    assert report["packets"] == 3
    assert report["messages"] == 6
    assert report["by_type"] == {"I": 1, "S": 1, "T": 2, "Q": 1, "B": 1}
    assert report["gaps"] == report["duplicates"] == report["decode_errors"] == 0
    assert report["bytes"] == sum(len(d) for d in [
        packet([instrument_def(1, "BTCUSDT"), status(1, 1)]), packet([trade(), trade(), quote()]),
        packet([book(1, 10, [(100 * PX, PX)], [(101 * PX, PX)])])])


def test_jump_in_seq_is_a_gap_counting_missing_messages(monitor, sender):
    send_all(monitor, sender, [
        packet([trade(), trade()], seq=1),       # messages 1, 2
        packet([trade()], seq=6),                # 3, 4, 5 lost
        packet([trade()], seq=7),
        packet([trade()], seq=10),               # 8, 9 lost
    ])
    report = monitor.interval_report()
    assert report["gaps"] == 2
    assert report["missing_messages"] == 5
    assert report["duplicates"] == report["out_of_order"] == 0
    assert monitor.channels[1].next_seq == 11


def test_first_packet_seen_on_a_channel_is_not_a_gap(monitor, sender):
    send_all(monitor, sender, [packet([trade()], seq=5000), packet([trade()], seq=5001)])
    assert monitor.interval_report()["gaps"] == 0


def test_new_session_restarting_at_seq_1_is_a_restart_not_a_gap(monitor, sender):
    send_all(monitor, sender, [
        packet([trade()] * 3, seq=1),
        packet([], seq=4, flags=wire.PACKET_FLAG_END_OF_SESSION),
        packet([instrument_def(1, "ETHUSDT")], seq=1, session=SESSION + 60),
        packet([trade()], seq=2, session=SESSION + 60),
    ])
    report = monitor.interval_report()
    assert report["restarts"] == 1
    assert report["gaps"] == 0 and report["duplicates"] == 0
    assert report["end_of_session"] == 1
    assert monitor.channels[1].session == SESSION + 60
    assert monitor.channels[1].ended is False


def test_new_session_whose_first_messages_were_lost_is_a_restart_and_a_gap(monitor, sender):
    # no end-of-session seen (SIGKILL): the new session counts once 3 packets confirm it
    send_all(monitor, sender, [packet([trade()], seq=1),
                               packet([trade()], seq=4, session=SESSION + 1),
                               packet([trade()], seq=5, session=SESSION + 1),
                               packet([trade()], seq=6, session=SESSION + 1)])
    report = monitor.interval_report()
    assert (report["restarts"], report["gaps"], report["missing_messages"]) == (1, 1, 3)
    assert report["messages"] == 4 and report["held_packets"] == 2


def test_one_spoofed_datagram_moves_nothing(monitor, sender):
    """A forged heartbeat with a huge session, or with the real session and seq 2**63, is
    held and counted; the real stream goes on with no gap, no restart, nothing stale."""
    real = [packet([trade()], seq=n) for n in range(1, 9)]
    send_all(monitor, sender, real[:4] + [packet([], seq=1, session=0xFFFFFFFF),
                                          packet([], seq=2 ** 63)] + real[4:])
    report = monitor.interval_report()
    assert report["held_packets"] == 2 and report["messages"] == 8
    assert (report["gaps"], report["restarts"], report["missing_messages"],
            report["stale_session_packets"]) == (0, 0, 0, 0)


def test_packet_from_an_older_session_is_stale_not_a_restart(monitor, sender):
    send_all(monitor, sender, [packet([trade()], seq=n, session=SESSION + 10) for n in (1, 2, 3)]
             + [packet([trade()], seq=1, session=SESSION),
                packet([trade()], seq=4, session=SESSION + 10)])
    report = monitor.interval_report()
    assert report["stale_session_packets"] == 1
    assert report["restarts"] == 0 and report["gaps"] == 0
    assert report["messages"] == 4


def test_duplicate_packet_is_counted_and_not_counted_as_messages_again(monitor, sender):
    first = packet([book(1, 10, [(100 * PX, PX)], [(101 * PX, PX)])], seq=1)
    second = packet([book(1, 11, [(100 * PX, 2 * PX)], [(101 * PX, PX)])], seq=2)
    send_all(monitor, sender, [first, second, first])
    report = monitor.interval_report()
    assert report["duplicates"] == 1
    assert report["messages"] == 2
    assert report["gaps"] == 0 and report["out_of_order"] == 0
    assert monitor.books[(1, BINANCE_ID, 1)].update_id == 11   # the repeated old book did not overwrite the view


def test_late_packet_filling_a_gap_is_out_of_order_and_recovers_its_messages(monitor, sender):
    send_all(monitor, sender, [
        packet([trade()], seq=1),
        packet([book(1, 30, [(100 * PX, PX)], [(101 * PX, PX)])], seq=4),   # 2, 3 missing
        packet([book(1, 20, [(99 * PX, PX)], [(101 * PX, PX)]), trade()], seq=2),  # late
        packet([trade()], seq=2),                                          # now a duplicate
    ])
    report = monitor.interval_report()
    assert report["gaps"] == 1 and report["missing_messages"] == 2
    assert report["out_of_order"] == 1 and report["recovered_messages"] == 2
    assert report["duplicates"] == 1
    assert report["messages"] == 4
    assert monitor.books[(1, BINANCE_ID, 1)].update_id == 30   # the late (older) book does not replace the newer


def test_heartbeat_is_counted_and_carries_the_next_seq(monitor, sender):
    send_all(monitor, sender, [packet([trade()], seq=1), packet([], seq=2), packet([], seq=2),
                               packet([trade()], seq=2)])
    report = monitor.interval_report()
    assert report["heartbeats"] == 2
    assert report["gaps"] == 0 and report["duplicates"] == 0
    assert report["messages"] == 2


def test_heartbeat_with_higher_seq_reveals_lost_trailing_messages(monitor, sender):
    send_all(monitor, sender, [packet([trade()], seq=1), packet([], seq=4)])
    report = monitor.interval_report()
    assert (report["heartbeats"], report["gaps"], report["missing_messages"]) == (1, 1, 2)


def test_end_of_session_is_counted_and_marks_the_channel(monitor, sender):
    send_all(monitor, sender, [packet([trade()], seq=1),
                               packet([], seq=2, flags=wire.PACKET_FLAG_END_OF_SESSION)])
    report = monitor.interval_report()
    assert report["end_of_session"] == 1
    assert report["heartbeats"] == 0
    assert monitor.channels[1].ended is True
    assert monitor.summary()["channels"]["1"]["ended"] is True


def test_channels_are_sequenced_independently(monitor, sender):
    send_all(monitor, sender, [packet([trade()], seq=1, channel=1),
                               packet([trade()], seq=100, channel=2),
                               packet([trade()], seq=2, channel=1),
                               packet([trade()], seq=101, channel=2)])
    assert monitor.interval_report()["gaps"] == 0
    assert sorted(monitor.channels) == [1, 2]


def test_channel_filter_ignores_other_channels():
    with FeedMonitor("127.0.0.1", 0, channel=2) as mon:
        snd = Sender(mon.port)
        try:
            send_all(mon, snd, [packet([trade()], seq=1, channel=1),
                                packet([trade()], seq=1, channel=2),
                                packet([trade()], seq=9, channel=1)])
        finally:
            snd.close()
        report = mon.interval_report()
    assert report["filtered_packets"] == 2
    assert report["packets"] == 1 and report["gaps"] == 0
    assert list(mon.channels) == [2]


# ------------------------------------------------------------------ malformed datagrams

def malformed_datagrams():
    good = packet([trade(), book(1, 5, [(PX, PX)], [])], seq=1)
    bad_book = bytearray(packet([book(1, 5, [(PX, PX)], [])]))
    bad_book[wire.HEADER_SIZE + 32] = 2      # bid_n says 2, length holds 1 level
    bad_symbol = bytearray(packet([instrument_def(1, "BTC")]))
    bad_symbol[wire.HEADER_SIZE + 32] = 0xC3  # non-ASCII symbol byte
    return {
        "empty": b"",
        "short": good[:31],
        "bad_magic": b"XX" + good[2:],
        "bad_version": good[:2] + b"\x02" + good[3:],
        "truncated_message": good[:-8],
        "trailing_garbage": good + b"\0" * 8,
        "count_too_high": good[:6] + struct.pack("<H", 3) + good[8:],
        "length_not_multiple_of_8": good[:32] + struct.pack("<H", 60) + good[34:],
        "length_below_32": good[:32] + struct.pack("<H", 24) + good[34:],
        "book_level_count_mismatch": bytes(bad_book),
        # shorter than defined (longer is allowed: PROTOCOL.md "Compatibility")
        "trade_shorter_than_defined": packet([lambda buf, off: struct.pack_into(
            "<HBB", buf, off, 48, ord("T"), 1) or off + 48]),
        "symbol_not_ascii": bytes(bad_symbol),
    }


@pytest.mark.parametrize("name", sorted(malformed_datagrams()))
def test_malformed_datagram_is_counted_and_the_next_one_still_works(monitor, sender, name):
    data = malformed_datagrams()[name]
    with pytest.raises(WireError):
        wire.decode_packet(data)      # the reference decoder agrees it is malformed
    send_all(monitor, sender, [data, packet([trade()], seq=1)])
    report = monitor.interval_report()
    assert report["decode_errors"] == 1
    assert report["last_decode_error"]
    assert report["packets"] == 1 and report["messages"] == 1


def test_unknown_message_type_is_skipped_by_length_and_counted(monitor, sender):
    def unknown(buf, off):
        struct.pack_into("<HBBH", buf, off, 48, ord("Z"), 1, 3)
        return off + 48
    send_all(monitor, sender, [packet([unknown, trade()], seq=1)])
    report = monitor.interval_report()
    assert report["decode_errors"] == 0
    assert report["by_type"] == {"Z": 1, "T": 1}


def test_validation_agrees_with_the_reference_decoder_on_random_mutations(monitor):
    rng = random.Random(20240601)
    seeds = [
        packet([trade(), quote(), status(1, 2)]),
        packet([book(3, 9, [(PX, PX), (PX - 1, 3)], [(PX + 1, 5)]), instrument_def(3, "XRPUSDT")]),
        packet([]),
    ]
    accepted = rejected = 0
    for _ in range(3000):
        data = bytearray(rng.choice(seeds))
        action = rng.random()
        if action < 0.6:
            for _ in range(rng.randint(1, 3)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif action < 0.8:
            del data[rng.randrange(len(data) + 1):]
        else:
            data += bytes(rng.randrange(256) for _ in range(rng.choice((1, 8, 16, 40))))
        before = monitor.decode_errors
        monitor.handle_datagram(bytes(data))
        monitor_rejected = monitor.decode_errors > before
        try:
            wire.decode_packet(bytes(data))
            reference_rejected = False
        except WireError:
            reference_rejected = True
        assert monitor_rejected == reference_rejected, bytes(data).hex()
        accepted += not monitor_rejected
        rejected += monitor_rejected
    assert accepted > 100 and rejected > 100   # both outcomes were exercised


def test_decode_errors_log_a_warning_then_only_count(monitor, caplog):
    with caplog.at_level(logging.WARNING, logger="hftfeed.monitor"):
        for _ in range(25):
            monitor.handle_datagram(b"junk")
    assert monitor.decode_errors == 25
    warnings = [r for r in caplog.records if "malformed" in r.getMessage()]
    assert 1 <= len(warnings) <= 10


# ------------------------------------------------------------------ views: symbols, states, books

def test_symbol_is_learned_from_instrument_messages(monitor, sender):
    send_all(monitor, sender, [packet([book(7, 1, [(PX, PX)], [(2 * PX, PX)])], seq=1)])
    assert "#7" in "\n".join(render_report(monitor.interval_report()))
    send_all(monitor, sender, [packet([instrument_def(7, "SOLUSDT")], seq=2)])
    assert monitor.symbols == {(1, BINANCE_ID, 7): "SOLUSDT"}
    text = "\n".join(render_report(monitor.interval_report()))
    assert "SOLUSDT" in text and "#7" not in text


def test_tick_and_lot_are_shown_from_details_messages(monitor, sender):
    details = lambda buf, off: wire.pack_details(buf, off, BINANCE_ID, 7, 0, PX // 100, PX // 1000)
    send_all(monitor, sender, [packet([details], seq=1)])     # before its I: not kept
    assert monitor.details == {}
    send_all(monitor, sender, [packet([instrument_def(7, "SOLUSDT"), details], seq=2)])
    assert monitor.details == {(1, BINANCE_ID, 7): (PX // 100, PX // 1000)}
    row = monitor.interval_report()["instruments"][0]
    assert (row["tick_size"], row["lot_size"]) == (PX // 100, PX // 1000)
    assert "tick 0.01 lot 0.001" in "\n".join(render_report(monitor.interval_report()))


def test_state_is_taken_from_status_messages(monitor, sender):
    send_all(monitor, sender, [packet([status(4, wire.STATE_RESYNC)], seq=1)])
    assert monitor.states == {(1, BINANCE_ID, 4): wire.STATE_RESYNC}
    row = monitor.interval_report()["instruments"][0]
    assert (row["instrument"], row["state_name"]) == (4, "resync")
    send_all(monitor, sender, [packet([status(4, wire.STATE_LIVE)], seq=2)])
    assert monitor.states == {(1, BINANCE_ID, 4): wire.STATE_LIVE}
    assert "live" in "\n".join(render_report(monitor.interval_report()))


def test_a_book_marks_its_instrument_live_when_the_status_message_was_lost(monitor, sender):
    send_all(monitor, sender, [packet([status(4, wire.STATE_RESYNC)], seq=1)])
    # seq 2 (S live) is lost; the first book after the resync arrives
    send_all(monitor, sender, [packet([book(4, 9, [(PX, PX)], [(2 * PX, PX)])], seq=3)])
    assert monitor.states == {(1, BINANCE_ID, 4): wire.STATE_LIVE}
    send_all(monitor, sender, [packet([status(4, wire.STATE_DISCONNECTED)], seq=4)])
    assert monitor.states == {(1, BINANCE_ID, 4): wire.STATE_DISCONNECTED}


def test_book_view_keeps_the_latest_book_of_each_instrument(monitor, sender):
    send_all(monitor, sender, [
        packet([instrument_def(1, "BTCUSDT"), status(1, wire.STATE_LIVE),
                book(1, 100, [(3700001000000, 150000000)], [(3700002000000, 75000000)])], seq=1),
        packet([book(2, 5, [(PX, PX)], [(2 * PX, PX)]),
                book(1, 101, [(3700001000000, 250000000), (3700000000000, PX)],
                     [(3700002000000, 75000000)])], seq=4),
    ])
    books = monitor.books
    key = (1, BINANCE_ID, 1)     # (channel, venue, instrument)
    assert sorted(books) == [key, (1, BINANCE_ID, 2)]
    assert isinstance(books[key], wire.BookMsg)
    assert books[key].update_id == 101
    assert books[key].bids == [(3700001000000, 250000000), (3700000000000, PX)]
    report = monitor.interval_report(depth=1)
    row = report["instruments"][0]
    assert (row["symbol"], row["venue_name"], row["state_name"]) == ("BTCUSDT", "binance", "live")
    assert row["books"] == 2
    assert row["bids"] == [[3700001000000, 250000000]]
    line = [l for l in render_report(report) if "BTCUSDT" in l][0]
    assert "2.5@37000.01 / 37000.02@0.75" in line
    assert "upd 101" in line


def test_book_view_shows_the_latest_quote_and_trade_of_each_instrument(monitor, sender):
    send_all(monitor, sender, [
        packet([instrument_def(1, "BTCUSDT"), trade(1, trade_id=5, side=2),
                book(1, 100, [(99 * PX, PX)], [(102 * PX, PX)])], seq=1),
        packet([quote(1), trade(1, trade_id=6, price=100 * PX, qty=3 * PX, side=1)], seq=4),
    ])
    row = monitor.interval_report(depth=1)["instruments"][0]
    assert row["quote"] == {"update_id": 7, "bid_px": 100 * PX, "bid_qty": PX,
                            "ask_px": 101 * PX, "ask_qty": 2 * PX}
    assert row["last_trade"] == {"trade_id": 6, "price": 100 * PX, "qty": 3 * PX, "side": 1}
    line = [l for l in render_report(monitor.interval_report(depth=1)) if "BTCUSDT" in l][0]
    assert "bbo 1@100 / 101@2" in line and "last 100 x3 buy" in line
    deep = render_report(monitor.interval_report(depth=5), depth=5)
    assert any("bbo 1@100 / 101@2" in l for l in deep)


def test_an_instrument_seen_only_through_trades_has_a_row_without_a_book(monitor, sender):
    send_all(monitor, sender, [packet([trade(3, trade_id=1)], seq=1)])
    row = monitor.interval_report(depth=1)["instruments"][0]
    assert row["instrument"] == 3 and row["bids"] == [] and row["quote"] is None
    assert row["last_trade"]["trade_id"] == 1


def test_deeper_book_view_lists_levels(monitor, sender):
    send_all(monitor, sender, [packet([book(1, 9, [(10 * PX, PX), (9 * PX, 2 * PX)],
                                            [(11 * PX, 3 * PX)])], seq=1)])
    report = monitor.interval_report(depth=5)
    assert report["instruments"][0]["bids"] == [[10 * PX, PX], [9 * PX, 2 * PX]]
    lines = render_report(report, depth=5)
    level_lines = [l for l in lines if "|" in l]
    assert len(level_lines) == 2
    assert level_lines[0].split() == ["1", "10", "|", "11", "3"]
    assert level_lines[1].split() == ["2", "9", "|"]


def test_no_book_mode_keeps_no_books_but_still_counts():
    with FeedMonitor("127.0.0.1", 0, book_view=False) as mon:
        snd = Sender(mon.port)
        try:
            send_all(mon, snd, [packet([book(1, 9, [(PX, PX)], [])], seq=1)])
        finally:
            snd.close()
        report = mon.interval_report()
    assert report["by_type"] == {"B": 1}
    assert mon.books == {}
    assert "instruments" not in report


def test_book_encoded_by_the_real_book_and_wire_encoder_is_shown(monitor, sender):
    bookmod = pytest.importorskip("hftfeed.core.book")
    real = bookmod.Book(capacity_levels=16)
    real.load_snapshot([100 * PX, PX, 99 * PX, 2 * PX], [101 * PX, 3 * PX], 77)

    def write(buf, off):
        return wire.pack_book(buf, off, BINANCE_ID, 3, 0, 0, time.time_ns(), real, 20)
    send_all(monitor, sender, [packet([write], seq=1)])
    got = monitor.books[(1, BINANCE_ID, 3)]
    assert (got.update_id, got.bids, got.asks) == (77, [(100 * PX, PX), (99 * PX, 2 * PX)],
                                                   [(101 * PX, 3 * PX)])


def test_decode_single_message_uses_the_reference_decoder():
    buf = bytearray(64)
    end = wire.pack_status(buf, 0, registry.WIRE_ID_SIM, 9, 123, wire.STATE_DISCONNECTED)
    msg = decode_single_message(buf[:end])
    assert isinstance(msg, wire.StatusMsg) and msg.state == wire.STATE_DISCONNECTED


# ------------------------------------------------------------------ latency

def assert_latency_sane(snap):
    assert snap["count"] > 0
    assert 0 <= snap["min_ns"] <= snap["p50_ns"] <= snap["p99_ns"] <= snap["p99.9_ns"] \
        <= snap["max_ns"]


def test_latency_over_loopback_is_present_non_negative_and_ordered(monitor, sender):
    datagrams = []
    for seq in range(1, 201):
        now = time.time_ns()
        datagrams.append(packet([trade(recv_ns=now - 2000), book(1, seq, [(PX, PX)], [],
                                                                  recv_ns=now - 5000)],
                                seq=2 * seq - 1, send_ns=now))
    send_all(monitor, sender, datagrams)
    report = monitor.interval_report()
    assert_latency_sane(report["latency_net"])
    assert report["latency_net"]["negative"] == 0
    assert report["latency_net"]["count"] == 200
    daemon = report["latency_daemon"]
    assert_latency_sane(daemon)
    assert daemon["count"] == 400
    assert 2000 <= daemon["min_ns"] <= daemon["max_ns"] <= 5000 * 1.04


def test_latencies_are_exact_differences_of_the_timestamps(monitor):
    send_ns = 1700000000000000000
    data = packet([trade(recv_ns=send_ns - 150000), quote(recv_ns=send_ns - 150000),
                   status(1, 1, recv_ns=send_ns - 999999999)], send_ns=send_ns)
    monitor.handle_datagram(data, recv_ns=send_ns + 40000)
    report = monitor.interval_report()
    assert report["latency_net"]["min_ns"] == report["latency_net"]["max_ns"] == 40000
    # status messages are not market data: only T and Q count, and only with a recv_ns
    assert report["latency_daemon"]["count"] == 2
    assert report["latency_daemon"]["max_ns"] == 150000


def test_messages_without_recv_ns_have_no_daemon_latency(monitor):
    monitor.handle_datagram(packet([trade(recv_ns=0), instrument_def(1, "A")]))
    assert monitor.interval_report()["latency_daemon"]["count"] == 0


def test_clock_skew_shows_as_negative_count(monitor):
    send_ns = 1700000000000000000
    monitor.handle_datagram(packet([trade()], send_ns=send_ns), recv_ns=send_ns - 1000)
    snap = monitor.interval_report()["latency_net"]
    assert snap["negative"] == 1 and snap["max_ns"] == 0


# ------------------------------------------------------------------ reports

def test_interval_report_resets_and_summary_accumulates(monitor, sender):
    send_all(monitor, sender, [packet([trade()], seq=1), packet([trade()], seq=5)])
    first = monitor.interval_report()
    assert (first["packets"], first["gaps"]) == (2, 1)
    send_all(monitor, sender, [packet([trade(), trade()], seq=6)])
    summary_mid = monitor.summary()     # includes the interval in progress
    second = monitor.interval_report()
    assert (second["packets"], second["messages"], second["gaps"]) == (1, 2, 0)
    assert second["latency_net"]["count"] == 1
    summary = monitor.summary()
    assert summary == dict(summary_mid, time_ns=summary["time_ns"],
                           elapsed_s=summary["elapsed_s"])
    assert (summary["packets"], summary["messages"], summary["gaps"]) == (3, 4, 1)
    assert summary["missing_messages"] == 3
    assert summary["latency_net"]["count"] == 3
    assert summary["by_type"] == {"T": 4}
    assert summary["channels"]["1"]["next_seq"] == 8
    json.dumps(summary)
    json.dumps(second)


def test_rates_are_per_second_of_the_interval(monitor, sender):
    send_all(monitor, sender, [packet([trade()] * 4, seq=1)])
    time.sleep(0.05)
    report = monitor.interval_report()
    assert report["interval_s"] > 0
    assert report["packets_per_s"] == pytest.approx(1 / report["interval_s"])
    assert report["messages_per_s"] == pytest.approx(4 / report["interval_s"])


def test_poll_returns_zero_after_timeout_when_idle(monitor):
    started = time.monotonic()
    assert monitor.poll(0.05) == 0
    assert time.monotonic() - started >= 0.04


# ------------------------------------------------------------------ sockets

def test_rcvbuf_cap_is_reported_and_warned_naming_rmem_max(caplog):
    with caplog.at_level(logging.WARNING, logger="hftfeed.monitor"):
        mon = FeedMonitor("127.0.0.1", 0, rcvbuf_bytes=2 ** 30)
    try:
        if not mon.rcvbuf_capped:
            pytest.skip("this kernel grants a 1 GiB SO_RCVBUF (rmem_max is huge)")
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "net.core.rmem_max" in warnings[0]
        assert "sysctl -w net.core.rmem_max=1073741824" in warnings[0]
        assert mon.rcvbuf_bytes_actual < 2 ** 31
    finally:
        mon.close()


def test_default_rcvbuf_request_is_read_back(monitor):
    assert monitor.rcvbuf_bytes_requested == 4 * 2 ** 20
    assert monitor.rcvbuf_bytes_actual > 0


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        mon = FeedMonitor("::1", 0)
    except OSError as exc:
        pytest.skip("cannot bind [::1]: %s" % exc)
    snd = Sender(mon.port, "::1")
    try:
        send_all(mon, snd, [packet([trade()], seq=1), packet([trade()], seq=3)])
        report = mon.interval_report()
        assert (report["packets"], report["gaps"]) == (2, 1)
    finally:
        snd.close()
        mon.close()


MULTICAST_GROUP = "239.255.42.99"


def multicast_loopback_works():
    """Probe with plain sockets: can this host loop a 239.x datagram back over 127.0.0.1?"""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rx.bind((MULTICAST_GROUP, 0))
        rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                      socket.inet_aton(MULTICAST_GROUP) + socket.inet_aton("127.0.0.1"))
        configure_multicast_sender(tx)
        tx.sendto(b"probe", (MULTICAST_GROUP, rx.getsockname()[1]))
        rx.settimeout(1.0)
        return rx.recv(16) == b"probe"
    except OSError:
        return False
    finally:
        rx.close()
        tx.close()


def configure_multicast_sender(sock):
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)   # never leaves this host


@pytest.mark.parametrize("interface", ["127.0.0.1", "lo"])   # by address, by name (ip_mreqn)
def test_multicast_group_is_joined_on_the_given_interface(interface):
    if not multicast_loopback_works():
        pytest.skip("no multicast loopback over 127.0.0.1 on this machine")
    if interface == "lo" and not os.path.exists("/sys/class/net/lo"):
        pytest.skip("no interface named lo")
    with FeedMonitor(MULTICAST_GROUP, 0, interface=interface) as mon:
        snd = Sender(mon.port, MULTICAST_GROUP)
        configure_multicast_sender(snd.sock)
        try:
            send_all(mon, snd, [packet([instrument_def(1, "BTCUSDT")], seq=1),
                                packet([trade()], seq=2)])
        finally:
            snd.close()
        report = mon.interval_report()
    assert (report["packets"], report["messages"], report["gaps"]) == (2, 2, 0)
    assert mon.symbols == {(1, BINANCE_ID, 1): "BTCUSDT"}


def test_ipv6_group_with_an_address_as_interface_is_refused():
    with pytest.raises(ConfigError):
        FeedMonitor("ff15::1234", 0, interface="::1")


def test_unknown_interface_name_is_refused():
    with pytest.raises(ConfigError):
        FeedMonitor(MULTICAST_GROUP, 0, interface="no-such-if0")


def test_from_socket_reads_an_existing_datagram_socket():
    tx, rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    mon = FeedMonitor.from_socket(rx)
    try:
        tx.send(packet([trade()], seq=1))
        tx.send(packet([trade()], seq=3))
        assert pump(mon, 2) == 2
        assert mon.interval_report()["gaps"] == 1
    finally:
        mon.close()
        tx.close()


def test_jit_warm_up_runs_synthetic_traffic_and_leaves_no_trace(monitor, sender):
    assert warm_up_jit(datagrams=300) >= 300
    send_all(monitor, sender, [packet([trade()], seq=1)])
    report = monitor.interval_report()       # an existing monitor saw nothing of it
    assert (report["packets"], report["gaps"]) == (1, 0)


# ------------------------------------------------------------------ command line

@pytest.mark.parametrize("text, expected", [
    ("127.0.0.1:9000", ("127.0.0.1", 9000)),
    ("0.0.0.0:0", ("0.0.0.0", 0)),
    ("239.1.2.3:31337", ("239.1.2.3", 31337)),
    ("[::1]:9000", ("::1", 9000)),
    ("[ff15::1]:65535", ("ff15::1", 65535)),
])
def test_parse_listen_accepts_ip_literals(text, expected):
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "9000", ":9000", "127.0.0.1", "127.0.0.1:", "localhost:9000",
                                  "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:9x", "::1:9000",
                                  "[::1]9000", "[::1]:", "300.1.1.1:1"])
def test_parse_listen_rejects_everything_else(text):
    with pytest.raises(ConfigError):
        parse_listen(text)


@pytest.mark.parametrize("argv", [
    [],
    ["--listen", "nonsense"],
    ["--listen", "127.0.0.1:9000", "--interval-s", "0"],
    ["--listen", "127.0.0.1:9000", "--duration-s", "-1"],
    ["--listen", "127.0.0.1:9000", "--channel", "70000"],
    ["--listen", "127.0.0.1:9000", "--depth", "0"],
    ["--listen", "127.0.0.1:9000", "--rcvbuf-bytes", "lots"],
    ["--listen", "127.0.0.1:9000", "--bogus"],
])
def test_bad_arguments_print_one_error_line_and_return_2(argv, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("hftfeed monitor: error: ")


def test_address_that_cannot_be_bound_returns_1(capsys):
    # 192.0.2.254 (TEST-NET-1) is not an address of this host: bind fails
    assert main(["--listen", "192.0.2.254:9", "--duration-s", "0.1", "--no-warm-up"]) == 1
    err = capsys.readouterr()[1]
    assert err.count("\n") == 1 and "cannot listen" in err


def start_monitor_process(*args):
    env = dict(os.environ, PYTHONPATH=str(PROJECT_ROOT), HFTFEED_LOG="warning")
    code = "import sys; from hftfeed.tools.monitor import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen([sys.executable, "-c", code] + list(args), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=str(PROJECT_ROOT))


def test_json_mode_subprocess_reports_intervals_and_a_summary():
    proc = start_monitor_process("--listen", "127.0.0.1:0", "--json", "--interval-s", "0.25",
                                 "--duration-s", "0.8")
    try:
        start = json.loads(proc.stdout.readline())
        assert start["type"] == "start" and start["port"] > 0
        snd = Sender(start["port"])
        try:
            for data in [
                packet([instrument_def(1, "BTCUSDT"), status(1, wire.STATE_LIVE)], seq=1),
                packet([book(1, 42, [(37000 * PX, PX)], [(37001 * PX, 2 * PX)],
                             recv_ns=time.time_ns())], seq=3),
                packet([trade()], seq=9),                        # gap: 4..8
                packet([trade()], seq=9),                        # duplicate
                packet([], seq=10),                              # heartbeat
                b"not a packet",                                 # decode error
                packet([trade()], seq=1, session=SESSION + 5),   # restart, confirmed by
                packet([trade()], seq=2, session=SESSION + 5),   # the next two packets
                packet([], seq=3, session=SESSION + 5, flags=wire.PACKET_FLAG_END_OF_SESSION),
            ]:
                snd.send(data)
        finally:
            snd.close()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    records = [json.loads(line) for line in out.decode().splitlines()]
    intervals = [r for r in records if r["type"] == "interval"]
    assert len(intervals) >= 2
    summary = records[-1]
    assert summary["type"] == "summary"
    assert summary["packets"] == 8
    assert (summary["gaps"], summary["missing_messages"]) == (1, 5)
    assert (summary["duplicates"], summary["heartbeats"], summary["decode_errors"]) == (1, 1, 1)
    assert (summary["restarts"], summary["end_of_session"]) == (1, 1)
    assert summary["by_type"] == {"I": 1, "S": 1, "B": 1, "T": 3}
    assert sum(r["packets"] for r in intervals) <= 8
    assert_latency_sane(summary["latency_net"])
    assert_latency_sane(summary["latency_daemon"])
    row = summary["instruments"][0]
    assert (row["symbol"], row["state_name"], row["update_id"]) == ("BTCUSDT", "live", 42)
    assert row["asks"] == [[37001 * PX, 2 * PX]]


def test_sigterm_stops_the_monitor_with_a_summary_and_exit_0():
    proc = start_monitor_process("--listen", "127.0.0.1:0", "--json", "--interval-s", "5",
                                 "--no-warm-up")
    try:
        start = json.loads(proc.stdout.readline())
        snd = Sender(start["port"])
        try:
            snd.send(packet([trade(), trade()], seq=1))
            snd.send(packet([trade()], seq=3))
        finally:
            snd.close()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    summary = json.loads(out.decode().splitlines()[-1])
    assert summary["type"] == "summary"
    assert (summary["packets"], summary["messages"], summary["gaps"]) == (2, 3, 0)


def test_human_mode_without_a_tty_prints_plain_lines():
    proc = start_monitor_process("--listen", "127.0.0.1:0", "--interval-s", "0.2",
                                 "--duration-s", "0.5", "--no-warm-up")
    try:
        first = proc.stdout.readline().decode()
        assert first.startswith("listening on 127.0.0.1:")
        snd = Sender(int(first.split(":")[1].split()[0]))
        try:
            snd.send(packet([instrument_def(2, "ETHUSDT"),
                             book(2, 8, [(2000 * PX, PX)], [(2001 * PX, PX // 4)])], seq=1))
        finally:
            snd.close()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.decode()
    assert proc.returncode == 0, err
    assert "\x1b[" not in text           # no cursor control when stdout is not a terminal
    assert "pkt/s" in text and "summary after" in text
    assert "ETHUSDT" in text and "1@2000 / 2001@0.25" in text


# ------------------------------------------------------------------ formatting

@pytest.mark.parametrize("value, text", [
    (0, "0"), (3700001000000, "37000.01"), (50000000, "0.5"), (-1, "-0.00000001"),
    (PX, "1"), (-150000000, "-1.5"), (2 ** 63 - 1, "92233720368.54775807"),
])
def test_format_scaled_is_exact(value, text):
    assert format_scaled(value) == text


# ------------------------------------------------------------------ checks for scripts, shards, escapes

def _run_checked(sends, *check_args):
    proc = start_monitor_process("--listen", "127.0.0.1:0", "--json", "--interval-s", "0.2",
                                 "--duration-s", "0.6", *check_args)
    try:
        start = json.loads(proc.stdout.readline())
        snd = Sender(start["port"])
        for data in sends:
            snd.send(data)
        snd.close()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode()


def test_expect_packets_fails_with_code_3_when_the_stream_is_absent():
    code, err = _run_checked([], "--expect-packets", "1")
    assert code == 3 and "received 0 packets, expected at least 1" in err


def test_max_gaps_fails_with_code_3_when_the_stream_is_lossy():
    sends = [packet([trade()], seq=1), packet([trade()], seq=5)]
    code, err = _run_checked(sends, "--expect-packets", "2", "--max-gaps", "0")
    assert code == 3 and "saw 1 sequence gaps (3 messages missing)" in err


def test_checks_pass_with_exit_0_on_a_clean_stream():
    sends = [packet([trade()], seq=n) for n in range(1, 4)]
    code, err = _run_checked(sends, "--expect-packets", "3", "--max-gaps", "0")
    assert code == 0, err


def test_two_shards_on_one_group_are_shown_apart(monitor, sender):
    send_all(monitor, sender, [
        packet([instrument_def(1, "BTCUSDT"), book(1, 5, [(PX, PX)], [])], seq=1, channel=1),
        packet([instrument_def(1, "SOLUSDT"), book(1, 9, [(2 * PX, PX)], [])], seq=1, channel=2),
    ])
    rows = monitor.interval_report()["instruments"]
    assert [(r["channel"], r["symbol"], r["update_id"]) for r in rows] == [
        (1, "BTCUSDT", 5), (2, "SOLUSDT", 9)]


def test_a_forged_symbol_is_escaped_before_display(monitor, sender):
    send_all(monitor, sender, [packet([instrument_def(1, b"\x1b[2J\x1b[31mPWNED\r")], seq=1)])
    text = "\n".join(render_report(monitor.interval_report()))
    assert "\x1b" not in text and "\r" not in text and "\\x1b[2J" in text


def test_a_real_stream_far_below_a_forged_first_packet_takes_over(monitor, sender):
    """The first datagram ever seen is forged (seq 2**62): the real stream, far below it,
    is held until it confirms itself, then accounted in full."""
    send_all(monitor, sender, [packet([], seq=2 ** 62)] + [packet([trade()], seq=n)
                                                             for n in range(1, 5)])
    report = monitor.interval_report()
    assert report["messages"] == 4 and report["held_packets"] == 2
    assert monitor.channels[1].next_seq == 5 and report["gaps"] == 0


def test_forged_instrument_ids_cannot_grow_the_view_without_bound(monitor, sender):
    from hftfeed.tools.monitor import receiver
    limit = receiver.MAX_VIEW_KEYS
    receiver.MAX_VIEW_KEYS = 4
    try:
        send_all(monitor, sender, [packet([book(n, 1, [(PX, PX)], [])], seq=n)
                                   for n in range(1, 9)])
        assert len(monitor.books) <= 4 and monitor.interval_report()["messages"] == 8
    finally:
        receiver.MAX_VIEW_KEYS = limit
