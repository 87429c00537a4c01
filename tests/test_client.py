"""Specification of hftfeed.client.Subscriber over real loopback sockets."""

import asyncio
import socket
import time
from decimal import Decimal

import pytest

from hftfeed.client import Subscriber
from hftfeed.codecs import wire

from wirebuild import (PX, SESSION, Sender, Stream, book, details, instrument_def, packet, quote,
                       status, trade)


def collect(sub, n_events=None, timeout_s=3.0, until=None):
    events = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        events.extend(sub.poll(0.05))
        if n_events is not None and len(events) >= n_events:
            break
        if until is not None and until(events):
            break
    return events


@pytest.fixture
def sub():
    s = Subscriber("127.0.0.1:0", arbitration_wait_s=0)
    yield s
    s.close()


@pytest.fixture
def tx(sub):
    sender = Sender(sub._socks[0].getsockname()[1])
    yield sender
    sender.close()


def test_events_carry_symbol_key_levels_and_decimal_helpers(sub, tx):
    st = Stream()
    tx.send(st.next([instrument_def(3, "BTCUSDT"), status(3, wire.STATE_LIVE)]))
    tx.send(st.next([book(3, 42, [(100 * PX, 2 * PX), (99 * PX, PX)], [(101 * PX, PX // 2)]),
                     trade(3, trade_id=9, price=100 * PX + 5, qty=PX, side=2),
                     quote(3, update_id=42)]))
    events = collect(sub, 5)
    kinds = [e.kind for e in events]
    assert kinds == ["instrument", "status", "book", "trade", "quote"]
    b = events[2]
    assert b.key == (1, 1, 3) and b.symbol == "BTCUSDT" and b.venue_name == "binance"
    assert b.update_id == 42 and b.trusted and b.session == SESSION
    assert b.best_bid == (100 * PX, 2 * PX) and b.best_ask == (101 * PX, PX // 2)
    assert b.spread == PX and b.mid == Decimal("100.5")
    assert b.levels_decimal("bids") == [(Decimal(100), Decimal(2)), (Decimal(99), Decimal(1))]
    assert b.levels_float("asks") == [(101.0, 0.5)]
    t = events[3]
    assert t.trade_id == 9 and t.price_decimal == Decimal("100.00000005") and t.side == 2
    assert sub.books[(1, 1, 3)] is b and sub.books.get_symbol("BTCUSDT") is b


def test_details_give_tick_lot_min_qty_contract_size_and_status_per_instrument(sub, tx):
    st = Stream()
    tx.send(st.next([instrument_def(3, "BTC-USD-261225"),
                     details(3, PX // 10, PX, 2 * PX, 100 * PX, wire.TRADING_RESTRICTED)]))
    events = collect(sub, 2)
    assert [e.kind for e in events] == ["instrument", "details"]
    det = events[1]
    assert det.symbol == "BTC-USD-261225" and det.key == (1, 1, 3)
    assert (det.tick_size, det.lot_size, det.min_qty, det.contract_size) == \
        (PX // 10, PX, 2 * PX, 100 * PX)
    assert det.tick_size_decimal == Decimal("0.1") and det.lot_size_decimal == Decimal(1)
    assert det.min_qty_decimal == Decimal(2) and det.contract_size_decimal == Decimal(100)
    assert det.trading_name == "restricted" and det.recv_ns == 5
    assert sub.details[(1, 1, 3)] is det
    assert "tick=0.1" in repr(det)


def test_callbacks_per_event_type(sub, tx):
    seen = []
    sub.on_book(lambda e: seen.append(("book", e.update_id)))
    sub.on_trade(lambda e: seen.append(("trade", e.trade_id)))
    st = Stream()
    tx.send(st.next([book(1, 5, [(PX, PX)], [(2 * PX, PX)]), trade(1, trade_id=6)]))
    collect(sub, 2)
    assert seen == [("book", 5), ("trade", 6)]
    with pytest.raises(ValueError):
        sub.on("bogus", print)


def test_async_for_yields_the_same_events(sub, tx):
    st = Stream()

    async def consume():
        got = []
        tx.send(st.next([book(1, 5, [(PX, PX)], [(2 * PX, PX)])]))
        async for event in sub:
            got.append(event)
            if len(got) == 1:
                tx.send(st.next([trade(1, trade_id=8)]))
            if len(got) == 2:
                return got

    got = asyncio.run(asyncio.wait_for(consume(), 5))
    assert [e.kind for e in got] == ["book", "trade"]


def test_iterator_yields_events_until_closed(sub, tx):
    st = Stream()
    tx.send(st.next([trade(1, trade_id=1)]))
    for event in sub:
        assert event.trade_id == 1
        sub.close()
    assert sub._closed


def test_a_gap_is_reported_lost_and_untrusts_the_channel_until_the_next_book(sub, tx):
    st = Stream()
    tx.send(st.next([book(1, 1, [(PX, PX)], [(2 * PX, PX)]), book(2, 1, [(PX, PX)], [])]))
    st.next([trade(1)])                           # lost on the way
    tx.send(st.next([book(1, 2, [(PX, PX)], [(3 * PX, PX)])]))
    events = collect(sub, 4)
    notices = [e for e in events if e.kind == "notice"]
    assert [(n.what, n.first_seq, n.count) for n in notices] == [("lost", 3, 1)]
    assert sub.books[(1, 1, 1)].trusted               # healed by its own B after the gap
    assert not sub.books[(1, 1, 2)].trusted           # no B since the gap
    assert sub.stats()["lost_messages"] == 1


def test_status_not_live_untrusts_the_book(sub, tx):
    st = Stream()
    tx.send(st.next([book(1, 1, [(PX, PX)], [(2 * PX, PX)])]))
    tx.send(st.next([status(1, wire.STATE_RESYNC)]))
    collect(sub, 2)
    assert not sub.books[(1, 1, 1)].trusted and sub.states[(1, 1, 1)] == wire.STATE_RESYNC


def test_two_shards_with_the_same_instrument_ids_are_kept_apart_and_reported(sub, tx):
    a, b = Stream(channel=1), Stream(channel=2)
    tx.send(a.next([instrument_def(1, "BTCUSDT")]))
    tx.send(b.next([instrument_def(1, "SOLUSDT")]))
    tx.send(a.next([book(1, 10, [(30000 * PX, PX)], [])]))
    tx.send(b.next([book(1, 20, [(150 * PX, PX)], [])]))
    events = collect(sub, 5)
    assert [n.what for n in events if n.kind == "notice"] == ["collision"]
    assert sub.books[(1, 1, 1)].symbol == "BTCUSDT" and sub.books[(1, 1, 1)].update_id == 10
    assert sub.books[(2, 1, 1)].symbol == "SOLUSDT" and sub.books[(2, 1, 1)].update_id == 20
    assert sub.stats()["gaps"] == 0


def test_forged_symbol_is_sanitised(sub, tx):
    tx.send(packet([instrument_def(1, b"\x1b[2J\x1b[31mPWNED\r")]))
    (event,) = collect(sub, 1)
    assert "\x1b" not in event.symbol and "\r" not in event.symbol
    assert event.symbol == "\\x1b[2J\\x1b[31mPWNED\\x0d"
    assert event.raw_symbol == "\x1b[2J\x1b[31mPWNED\r"


def test_a_spoofed_heartbeat_does_not_blind_the_subscriber(sub, tx):
    st = Stream()
    for n in range(4):
        tx.send(st.next([book(1, n, [(PX, PX)], [])]))
    tx.send(packet([], seq=1, session=0xFFFFFFFF))
    tx.send(packet([], seq=2 ** 63))
    for n in range(4, 8):
        tx.send(st.next([book(1, n, [(PX, PX)], [])]))
    events = collect(sub, 8)
    assert [e.update_id for e in events if e.kind == "book"] == list(range(8))
    stats = sub.stats()
    assert stats["gaps"] == 0 and stats["restarts"] == 0 and stats["missing_messages"] == 0


def test_a_publisher_restart_is_reported_and_its_first_packets_are_kept(sub, tx):
    old, new = Stream(session=SESSION), Stream(session=SESSION + 7)
    for n in range(3):
        tx.send(old.next([trade(1, trade_id=n)]))
    for n in range(3):
        tx.send(new.next([trade(1, trade_id=100 + n)]))
    events = collect(sub, 7)
    assert [e.what for e in events if e.kind == "notice"] == ["restart"]
    assert [e.trade_id for e in events if e.kind == "trade"] == [0, 1, 2, 100, 101, 102]


def test_source_address_filter(tx):
    with Subscriber("127.0.0.1:0", sources=["127.0.0.2"]) as s:
        sender = Sender(s._socks[0].getsockname()[1])
        sender.send(packet([trade(1)]))
        assert collect(s, 1, timeout_s=0.5) == []
        assert s.stats()["filtered_source"] == 1
        sender.close()


def test_malformed_datagrams_are_counted_not_raised(sub, tx):
    tx.send(b"HF\x01garbage")
    tx.send(packet([trade(1)]) + b"\0" * 8)
    tx.send(packet([trade(1, trade_id=3)]))
    events = collect(sub, 1)
    assert [e.trade_id for e in events] == [3]
    assert sub.stats()["decode_errors"] == 2


def test_ab_feeds_first_copy_wins_and_a_loss_on_one_path_is_no_gap():
    with Subscriber(["127.0.0.1:0", "127.0.0.1:0"], arbitration_wait_s=0.5) as s:
        ports = [sock.getsockname()[1] for sock in s._socks]
        a, b = Sender(ports[0]), Sender(ports[1])
        st = Stream()
        datagrams = [st.next([book(1, n, [(n * PX, PX)], [])]) for n in range(1, 41)]
        for index, data in enumerate(datagrams):
            if index % 4 != 1:          # path A loses every 4th datagram,
                a.send(data)
            if index % 4 != 3:          # path B loses other ones
                b.send(data)
        events = collect(s, 40)
        assert [e.update_id for e in events if e.kind == "book"] == list(range(1, 41))
        stats = s.stats()
        assert stats["gaps"] == 0 and stats["lost_messages"] == 0 and stats["duplicates"] > 0
        a.close()
        b.close()


def test_ipv6_unicast():
    with Subscriber("[::1]:0") as s:
        sender = Sender(s._socks[0].getsockname()[1], "::1")
        sender.send(packet([trade(1, trade_id=4)]))
        assert [e.trade_id for e in collect(s, 1)] == [4]
        sender.close()


def test_a_retransmission_service_that_is_down_reports_the_gap_lost_without_hanging():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()                       # nothing listens there now
    with Subscriber("127.0.0.1:0", retransmit="127.0.0.1:%d" % port,
                    retransmit_timeout_s=0.5) as s:
        tx = Sender(s._socks[0].getsockname()[1])
        st = Stream()
        tx.send(st.next([trade(1, trade_id=1)]))
        st.next([trade(1, trade_id=2)])           # lost
        tx.send(st.next([trade(1, trade_id=3)]))
        started = time.monotonic()
        events = collect(s, 3)
        assert time.monotonic() - started < 3.0
        assert [e.what for e in events if e.kind == "notice"] == ["lost"]
        stats = s.stats()
        assert stats["retransmit_requests"] == 1 and stats["retransmit_failures"] == 1
        tx.close()


def test_forged_datagrams_naming_ever_new_instruments_cannot_grow_the_state(sub, tx):
    from hftfeed.client import subscriber as submod
    limit = submod.MAX_INSTRUMENT_KEYS
    submod.MAX_INSTRUMENT_KEYS = 5
    try:
        st = Stream()
        for n in range(1, 11):
            tx.send(st.next([book(n, 1, [(PX, PX)], [])]))
        collect(sub, 5, timeout_s=1.0)
        assert len(sub.books) == 5 and sub.stats()["dropped_instruments"] == 5
    finally:
        submod.MAX_INSTRUMENT_KEYS = limit
