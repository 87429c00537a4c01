"""The soak's own instruments: the datagram spool, the streaming journal reader and the one-pass
checker. They decide whether a long run passes, so they are specified here like product code."""

import json
import socket

import pytest

from hftfeed.codecs import wire
from hftfeed.core.book import Book
from hftfeed.runtime.stats import LatencyHistogram

from simtruth import JournalStream, load_journal
from soak import SpoolCollector, check_stream, p99_creep, read_spool

P = 10 ** 8


def _write_journal(path, lines):
    with open(str(path), "w", encoding="ascii") as f:
        for rec in lines:
            f.write((rec if isinstance(rec, str) else json.dumps(rec)) + "\n")


def _small_journal(path):
    _write_journal(path, [
        {"kind": "start", "seed": 1, "venue": "binance", "symbols": ["AAA", "BBB"]},
        {"kind": "book", "symbol": "AAA", "update_id": 10, "bids": [[100 * P, P]],
         "asks": [[101 * P, P]]},
        {"kind": "book", "symbol": "BBB", "update_id": 50, "bids": [[7 * P, 2 * P]],
         "asks": [[8 * P, 3 * P]]},
        {"kind": "depth", "symbol": "AAA", "U": 11, "u": 12, "b": [[99 * P, 5 * P]], "a": [],
         "send_ns": 1, "delivered": True},
        {"kind": "trade", "symbol": "AAA", "id": 1, "price": 100 * P, "qty": P, "side": 1,
         "send_ns": 2},
        {"kind": "depth", "symbol": "BBB", "U": 51, "u": 51, "b": [], "a": [[8 * P, 0]],
         "send_ns": 3, "delivered": False},
        {"kind": "depth", "symbol": "AAA", "U": 13, "u": 15, "b": [[100 * P, 0]],
         "a": [[102 * P, P]], "send_ns": 4, "delivered": True},
        '{"kind":"depth","symbol":"AAA","U":16,',            # a writer killed mid-line
    ])


def test_journal_stream_answers_like_the_loaded_truth_for_every_event(tmp_path):
    path = tmp_path / "j.jsonl"
    _small_journal(path)
    truth = load_journal(path)
    stream = JournalStream(path)
    for symbol, u in (("AAA", 12), ("BBB", 51), ("AAA", 15)):
        assert stream.top(symbol, u, 20) == truth.book_at(symbol, u).top(20)
    assert stream.top("AAA", 15, 20) == ([(99 * P, 5 * P)], [(101 * P, P), (102 * P, P)])
    assert stream.bad_lines == 1 and stream.events_read == 3
    stream.close()


def test_journal_stream_knows_a_book_still_at_its_initial_id(tmp_path):
    path = tmp_path / "j.jsonl"
    _small_journal(path)
    stream = JournalStream(path)
    assert stream.top("BBB", 50, 20) == ([(7 * P, 2 * P)], [(8 * P, 3 * P)])
    stream.close()


@pytest.mark.parametrize("symbol, u", [("AAA", 13), ("AAA", 99), ("CCC", 1)])
def test_journal_stream_rejects_an_id_no_event_ended_at(tmp_path, symbol, u):
    path = tmp_path / "j.jsonl"
    _small_journal(path)
    stream = JournalStream(path)
    with pytest.raises(KeyError):
        stream.top(symbol, u, 20)
    stream.close()


def test_journal_stream_rejects_a_book_older_than_one_already_checked(tmp_path):
    path = tmp_path / "j.jsonl"
    _small_journal(path)
    stream = JournalStream(path)
    stream.top("AAA", 15, 20)
    with pytest.raises(KeyError):
        stream.top("AAA", 12, 20)
    stream.close()


def test_spool_keeps_every_datagram_with_its_receive_time_in_order(tmp_path):
    col = SpoolCollector(tmp_path / "spool.bin")
    port = int(col.target.rsplit(":", 1)[1])
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payloads = [b"x" * n for n in (1, 1472, 0, 9000)]
    for data in payloads:
        tx.sendto(data, ("127.0.0.1", port))
    tx.close()
    col.collect(0.3)
    col.close()
    got = list(read_spool(col.path))
    assert [d for _, d in got] == payloads and col.count == 4
    assert all(ns > 0 for ns, _ in got) and [ns for ns, _ in got] == sorted(ns for ns, _ in got)


def test_spool_reader_drops_a_record_cut_short_at_the_end(tmp_path):
    col = SpoolCollector(tmp_path / "spool.bin")
    col.close()
    with open(col.path, "ab") as f:
        f.write(b"\x01" * 8 + b"\x05\x00\x00\x00" + b"abc")     # says 5 bytes, holds 3
    assert list(read_spool(col.path)) == []


# -- the one-pass checker ----------------------------------------------------------------------

def _book(bids, asks, update_id):
    book = Book(capacity_levels=64)
    flat = lambda levels: [x for level in levels for x in level]
    book.load_snapshot(flat(bids), flat(asks), update_id)
    return book


def _datagram(seq, messages, send_ns=1000):
    buf = bytearray(1472)
    off = wire.HEADER_SIZE
    for write in messages:
        off = write(buf, off)
    wire.pack_packet_header(buf, 0, 7, len(messages), 1, seq, send_ns)
    return bytes(buf[:off])


def _b(instrument, book, recv_ns=900):
    return lambda buf, off: wire.pack_book(buf, off, 1, instrument, 0, 0, recv_ns, book, 20)


def test_check_stream_counts_right_wrong_and_undefined_books_holes_and_junk(tmp_path):
    journal = tmp_path / "j.jsonl"
    _small_journal(journal)
    right = _book([(99 * P, 5 * P), (100 * P, P)], [(101 * P, P)], 12)
    wrong = _book([(99 * P, 5 * P)], [(101 * P, P)], 12)
    missing = _book([(99 * P, 5 * P)], [(101 * P, P)], 13)           # no event ended at 13
    datagrams = [
        (10, _datagram(1, [lambda b, o: wire.pack_instrument(b, o, 1, 1, "AAA"),
                           lambda b, o: wire.pack_status(b, o, 1, 1, 5, wire.STATE_LIVE)])),
        (20, _datagram(3, [_b(1, right)])),
        (30, _datagram(4, [_b(1, wrong), _b(1, missing), _b(2, right)])),
        (40, b"junk"),
    ]
    out = check_stream(iter(datagrams), journal)
    assert out["datagrams"] == 4 and out["decode_errors"] == 1
    assert out["sequence_holes"] == 0
    assert (out["books_checked"], out["wrong_books"]) == (3, 2)
    assert out["books_of_unknown_instruments"] == 1
    assert out["ids"] == {1: "AAA"} and out["status_events"] == [(10, 1, wire.STATE_LIVE)]
    assert sum(h.count for h in out["per_second"].values()) == 3


def test_check_stream_sees_a_sequence_hole(tmp_path):
    journal = tmp_path / "j.jsonl"
    _small_journal(journal)
    inst = lambda b, o: wire.pack_instrument(b, o, 1, 1, "AAA")
    out = check_stream(iter([(1, _datagram(5, [inst])), (2, _datagram(7, [inst]))]), journal)
    assert out["sequence_holes"] == 1


def test_check_stream_counts_seconds_from_the_given_origin(tmp_path):
    journal = tmp_path / "j.jsonl"
    _small_journal(journal)
    book = _book([(99 * P, 5 * P), (100 * P, P)], [(101 * P, P)], 12)
    inst = lambda b, o: wire.pack_instrument(b, o, 1, 1, "AAA")
    second = 10 ** 9
    out = check_stream(iter([(7 * second, _datagram(1, [inst])),
                             (9 * second + 5, _datagram(2, [_b(1, book)]))]), journal,
                       origin_ns=2 * second)
    assert list(out["per_second"]) == [7]


# -- the p99 creep verdict (60 s run: windows of 18 s at 5, 42 and 60 s) ------------------------

def _seconds(p99_of_second, until_s=80):
    """{second: histogram whose p99 is p99_of_second(second)} over a whole 60 s run."""
    out = {}
    for t in range(until_s):
        hist = LatencyHistogram()
        for _ in range(100):
            hist.record(p99_of_second(t))
        out[t] = hist
    return out


def test_creep_verdict_passes_a_flat_latency():
    v = p99_creep(_seconds(lambda t: 500000), 60)
    assert v["latency_window_s"] == 18
    assert not v["p99_crept"] and not v["p99_transient_rise"]


def test_creep_verdict_fails_a_latency_that_keeps_rising():
    v = p99_creep(_seconds(lambda t: 300000 + 20000 * t), 60)
    assert v["p99_crept"]
    assert v["p99_first_ns"] < v["p99_last_ns"] < v["p99_confirm_ns"]


def test_creep_verdict_fails_a_rise_that_stays():
    v = p99_creep(_seconds(lambda t: 500000 if t < 40 else 2000000), 60)
    assert v["p99_crept"]


def test_creep_verdict_notes_but_passes_a_rise_gone_in_the_confirmation_window():
    v = p99_creep(_seconds(lambda t: 3800000 if 42 <= t < 60 else 1300000), 60)
    assert not v["p99_crept"] and v["p99_transient_rise"]
    assert v["p99_last_ns"] > 2 * v["p99_first_ns"]


def test_creep_verdict_ignores_spikes_in_a_minority_of_seconds():
    v = p99_creep(_seconds(lambda t: 5000000 if t % 3 == 0 else 500000), 60)
    assert not v["p99_crept"] and not v["p99_transient_rise"]


def test_creep_verdict_ignores_rises_below_the_noise_slack():
    v = p99_creep(_seconds(lambda t: 40000 if t < 40 else 120000), 60)
    assert not v["p99_crept"]
