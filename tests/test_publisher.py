"""Specification of pipeline.publisher (A/B targets, refresh cycle, history, session ids) and
pipeline.retransmit (the TCP service), through real loopback sockets."""

import asyncio
import socket
import time

import pytest

from hftfeed.client.retransmit import RetransmitClient
from hftfeed.codecs import wire
from hftfeed.core.book import Book
from hftfeed.pipeline import publisher as pubmod
from hftfeed.pipeline.publisher import History, Publisher, new_session_id
from hftfeed.pipeline.retransmit import RetransmitServer

PX = 100000000
S = 1700000000


def udp_listener(host="127.0.0.1"):
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.settimeout(2.0)
    return sock


def receive(sock, n):
    return [sock.recv(65536) for _ in range(n)]


def make_book(update_id=7):
    book = Book(capacity_levels=16)
    book.load_snapshot([100 * PX, PX, 99 * PX, 2 * PX], [101 * PX, 3 * PX], update_id)
    return book


def publisher(rx, **kw):
    kw.setdefault("session", S)
    pub = Publisher("127.0.0.1", rx.getsockname()[1], channel=3, depth=5, **kw)
    pub.open()
    return pub


def test_every_datagram_goes_to_each_target_with_the_same_bytes():
    a, b = udp_listener(), udp_listener("::1")
    pub = publisher(a, extra_targets=[("::1", b.getsockname()[1], None, 2)])
    try:
        pub.trade(1, 1, 0, 5, 99, 100 * PX, PX, 1)
        pub.flush()
        pub.trade(1, 1, 0, 6, 100, 101 * PX, PX, 2)
        pub.flush()
        got_a, got_b = receive(a, 2), receive(b, 2)
        assert got_a == got_b
        assert [wire.decode_packet(d).seq for d in got_a] == [1, 2]
        assert pub.counters()["packets_sent"] == 2
    finally:
        pub.close()
        a.close()
        b.close()


def test_refresh_cycle_resends_definitions_states_and_quiet_books_spread_over_the_interval():
    rx = udp_listener()
    pub = publisher(rx, refresh_interval_s=1.0)
    try:
        pub.set_instruments([(1, n, "SYM%d" % n) for n in range(1, 11)])
        book = make_book()
        t0 = 10 ** 18
        pub.status(1, 1, t0, wire.STATE_LIVE)
        pub.book(1, 1, wire.BOOK_FLAG_SNAPSHOT, 5, t0, book)
        pub.status(1, 2, t0, wire.STATE_RESYNC)
        pub.flush()
        receive(rx, 1)
        pub.tick(t0)                        # cycle starts: the first slice only
        first = wire.decode_packet(rx.recv(65536))
        assert [m.instrument for m in first.messages if m.type == wire.TYPE_INSTRUMENT] == [1]
        messages = list(first.messages)
        for step in range(1, 10):           # the rest, a tenth of the interval at a time
            pub.tick(t0 + step * 100000000)
            messages += wire.decode_packet(rx.recv(65536)).messages
        defs = [m.instrument for m in messages if m.type == wire.TYPE_INSTRUMENT]
        assert defs == list(range(1, 11))
        states = dict((m.instrument, m.state) for m in messages if m.type == wire.TYPE_STATUS)
        assert states == {1: wire.STATE_LIVE, 2: wire.STATE_RESYNC}
        # the book was sent at t0, so it is not stale yet in the first cycle
        assert [m for m in messages if m.type == wire.TYPE_BOOK] == []
        pub.tick(t0 + 1000000000)           # next cycle: instrument 1 sent no B for 1 s
        refreshed = [m for m in wire.decode_packet(rx.recv(65536)).messages
                     if m.type == wire.TYPE_BOOK]
        assert len(refreshed) == 1 and refreshed[0].is_refresh
        assert (refreshed[0].update_id, refreshed[0].bids, refreshed[0].asks) == (
            7, [(100 * PX, PX), (99 * PX, 2 * PX)], [(101 * PX, 3 * PX)])
    finally:
        pub.close()
        rx.close()


def test_history_finds_the_datagrams_covering_a_range_and_forgets_the_oldest():
    h = History(3)
    for seq, count in ((1, 2), (3, 1), (4, 3), (7, 1)):
        h.add(seq, count, b"d%d" % seq)
    assert len(h) == 3 and h.oldest_seq() == 3 and h.next_seq() == 8
    assert h.covering(3, 1) == [b"d3"]
    assert h.covering(5, 3) == [b"d4", b"d7"]
    assert h.covering(1, 2) is None           # no longer held
    assert h.covering(7, 2) is None           # not yet sent


def test_session_id_is_the_next_whole_second_so_an_immediate_restart_never_reuses_it():
    slept = []
    first = new_session_id(clock=lambda: 1000.2, sleep=slept.append)
    second = new_session_id(clock=lambda: 1001.05, sleep=slept.append)   # restart 0.05 s later
    assert (first, second) == (1001, 1002)
    assert slept[0] == pytest.approx(0.8)


def test_retransmission_serves_original_bytes_and_rejects_what_is_not_held():
    rx = udp_listener()
    pub = publisher(rx, history_datagrams=4)
    sent = []
    for n in range(6):
        pub.trade(1, 1, 0, 5, n, 100 * PX, PX, 1)
        pub.trade(1, 1, 0, 5, n, 100 * PX, PX, 1)
        pub.flush()
        sent.append(rx.recv(65536))
    server = RetransmitServer(pub, "127.0.0.1", 0, max_messages_per_request=6)
    loop = asyncio.new_event_loop()
    try:
        port = loop.run_until_complete(server.start())
        client = RetransmitClient("127.0.0.1", port, timeout_s=3.0)
        results = {}

        def ask(name, *request):
            results[name] = client.fetch(*request)

        async def scenario():
            for name, request in (("held", (3, S, 5, 4)), ("old", (3, S, 1, 2)),
                                  ("future", (3, S, 13, 1)), ("session", (3, S + 1, 5, 1)),
                                  ("too_many", (3, S, 5, 7))):
                await loop.run_in_executor(None, ask, name, *request)
        loop.run_until_complete(asyncio.wait_for(scenario(), 20))
        client.close()
        assert results["held"] == (sent[2:4], wire.RETRANS_DONE)
        assert results["old"] == ([], wire.RETRANS_NOT_HELD)
        assert results["future"] == ([], wire.RETRANS_NOT_HELD)
        assert results["session"] == ([], wire.RETRANS_UNKNOWN_SESSION)
        assert results["too_many"] == ([], wire.RETRANS_BAD_REQUEST)
        assert server.counters()["rejects"] == 4
    finally:
        loop.run_until_complete(server.close())
        loop.close()
        pub.close()
        rx.close()


def test_retransmission_limits_connections_and_requests():
    rx = udp_listener()
    pub = publisher(rx, history_datagrams=4)
    server = RetransmitServer(pub, "127.0.0.1", 0, max_clients=1, max_requests_per_connection=1)
    loop = asyncio.new_event_loop()
    try:
        port = loop.run_until_complete(server.start())

        def two_clients():
            first = socket.create_connection(("127.0.0.1", port), timeout=3)
            time.sleep(0.2)
            second = socket.create_connection(("127.0.0.1", port), timeout=3)
            refused = second.recv(8)
            second.close()
            first.sendall(wire.pack_retrans_request(3, S, 1, 1))
            replies = b""
            while True:
                chunk = first.recv(64)
                if not chunk:
                    break
                replies += chunk
            first.close()
            return refused, replies

        refused, replies = loop.run_until_complete(
            asyncio.wait_for(loop.run_in_executor(None, two_clients), 20))
        assert wire.unpack_retrans_frame(refused) == (wire.RETRANS_LIMIT, 0)
        # the one request allowed (nothing held yet), then the limit frame, then close
        assert [wire.unpack_retrans_frame(replies[i:i + 8]) for i in (0, 8)] == [
            (wire.RETRANS_NOT_HELD, 0), (wire.RETRANS_LIMIT, 0)]
    finally:
        loop.run_until_complete(server.close())
        loop.close()
        pub.close()
        rx.close()


def test_a_datagram_that_cannot_take_another_book_leaves_at_once():
    rx = udp_listener()
    # make_book() packs to book_len(2, 1) bytes; a 5-level book may take book_len(5, 5)
    small, room = wire.book_len(2, 1), wire.book_len(5, 5)
    pub = publisher(rx, max_payload=wire.HEADER_SIZE + small + room + small // 2)
    try:
        book = make_book()
        pub.book(1, 1, 0, 0, 10, book)
        assert pub.packets_sent == 0            # one book: still room, wait for the read's end
        pub.book(1, 2, 0, 0, 11, book)
        assert pub.packets_sent == 1            # two: no third fits, so no reason to wait
        pub.trade(1, 1, 0, 12, 5, 100 * PX, PX, 1)
        pub.flush()
        got = [wire.decode_packet(d) for d in receive(rx, 2)]
        assert [p.count for p in got] == [2, 1] and [p.seq for p in got] == [1, 3]
    finally:
        pub.close()
        rx.close()


def test_details_follow_their_instrument_at_start_and_in_the_refresh_cycle():
    from hftfeed.venues.instruments import InstrumentSpec
    rx = udp_listener()
    pub = publisher(rx, refresh_interval_s=1.0)
    try:
        pub.set_instruments([(1, 1, "AAA"), (1, 2, "BBB")])
        pub.set_details(2, InstrumentSpec("BBB", PX // 100, PX // 1000, 0, 0, 1), 77)
        pub.send_instruments(10 ** 18)
        sent = wire.decode_packet(rx.recv(65536)).messages
        assert [(chr(m.type), m.instrument) for m in sent] == [("I", 1), ("I", 2), ("D", 2)]
        assert (sent[2].tick_size, sent[2].lot_size, sent[2].recv_ns) == \
            (PX // 100, PX // 1000, 77)
        t1 = 2 * 10 ** 18
        pub.tick(t1)                               # the cycle's first slice: instrument 1
        pub.tick(t1 + 10 ** 9 - 1)                 # the rest of the cycle: instrument 2
        cycle = []
        while len(cycle) < 3:                      # (heartbeats carry no message)
            cycle += wire.decode_packet(rx.recv(65536)).messages
        assert [(chr(m.type), m.instrument) for m in cycle] == [("I", 1), ("I", 2), ("D", 2)]
        pub.set_instruments([(1, 1, "AAA")])       # removed: its details go too
        assert pub.details == {}
    finally:
        pub.close()
        rx.close()


def test_a_refresh_with_a_book_as_deep_as_the_datagram_allows_still_sends_everything():
    """depth 40 fills a 1472-byte datagram with one book (1352 bytes): the instrument's I, D and
    S go in one datagram and its refresh book in the next, never past the end of the buffer."""
    rx = udp_listener()
    pub = Publisher("127.0.0.1", rx.getsockname()[1], channel=3, depth=40, session=S,
                    refresh_interval_s=1.0)
    pub.open()
    try:
        from hftfeed.venues.instruments import InstrumentSpec
        book = Book(capacity_levels=128)
        book.load_snapshot([x for i in range(40) for x in ((100 - i) * PX, PX)],
                           [x for i in range(40) for x in ((200 + i) * PX, PX)], 9)
        pub.set_instruments([(1, 1, "AAA")])
        pub.set_details(1, InstrumentSpec("AAA", PX, PX, 0, 0, 1), 1)
        t0 = 10 ** 18
        pub.status(1, 1, t0, wire.STATE_LIVE)
        pub.book(1, 1, 0, 5, t0, book)
        pub.flush()
        receive(rx, 1)
        pub.tick(t0 + 1)                           # first cycle starts (the book is fresh)
        rx.recv(65536)
        pub.tick(t0 + 2 * 10 ** 9)                 # next cycle: the book is stale, refresh it
        got = []
        while len(got) < 2:                        # (heartbeats carry no message)
            msgs = wire.decode_packet(rx.recv(65536)).messages
            if msgs:
                got.append(msgs)
        assert [[chr(m.type) for m in msgs] for msgs in got] == [["I", "D", "S"], ["B"]]
        assert got[1][0].is_refresh and len(got[1][0].bids) == 40
    finally:
        pub.close()
        rx.close()
