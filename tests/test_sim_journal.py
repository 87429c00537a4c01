"""Specification of the simulator journal (hftfeed/tools/sim/journal.py) and tests/simtruth.py."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import simtruth  # noqa: E402

from hftfeed.tools.sim.journal import JournalWriter, format_event, read_journal  # noqa: E402
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, MarketEngine  # noqa: E402


def record_engines(path, symbols, n_msgs, seed=7, drop_every=0):
    """Drive engines directly into a journal; returns {symbol: {u: engine top-5 at u}}."""
    engines = [MarketEngine(s, seed=seed, depth_levels=30) for s in symbols]
    j = JournalWriter(path, seed, "binance", symbols)
    for e in engines:
        j.write_book(e.symbol, *e.snapshot(1000))
    expected = {s: {} for s in symbols}
    send_ns = 1000
    for i in range(n_msgs):
        e = engines[i % len(engines)]
        out = []
        e.generate(e.draw_steps(3), out)
        send_ns += 10
        for ev in out:
            delivered = not (drop_every and ev[0] == EV_DEPTH and i % drop_every == 0)
            j.write_event(ev, send_ns, delivered)
        uid, bids, asks = e.snapshot(5)
        expected[e.symbol][uid] = (bids, asks)
    j.write_fault("drop_diff", send_ns, {"symbol": symbols[0]})
    j.close()
    return expected


def test_header_then_books_then_events(tmp_path):
    path = tmp_path / "j.jsonl"
    record_engines(path, ["BTCUSDT", "ETHUSDT"], 20)
    recs = list(read_journal(path))
    assert recs[0] == {"kind": "start", "seed": 7, "venue": "binance",
                       "symbols": ["BTCUSDT", "ETHUSDT"], "scale": 100000000}
    assert [r["kind"] for r in recs[1:3]] == ["book", "book"]
    assert {r["kind"] for r in recs[3:]} <= {"depth", "trade", "quote", "fault"}
    assert recs[-1]["kind"] == "fault"


def test_event_lines_have_the_documented_fields():
    depth = json.loads(format_event((EV_DEPTH, "BTCUSDT", 1, 3, [10, 20], []), 99, False))
    assert depth == {"kind": "depth", "symbol": "BTCUSDT", "U": 1, "u": 3, "b": [[10, 20]],
                     "a": [], "send_ns": 99, "delivered": False}
    trade = json.loads(format_event((EV_TRADE, "BTCUSDT", 5, 10, 20, 2), 99))
    assert trade == {"kind": "trade", "symbol": "BTCUSDT", "id": 5, "price": 10, "qty": 20,
                     "side": 2, "send_ns": 99}
    quote = json.loads(format_event((EV_QUOTE, "BTCUSDT", 7, 1, 2, 3, 4), 99))
    assert quote == {"kind": "quote", "symbol": "BTCUSDT", "u": 7, "bid_px": 1, "bid_qty": 2,
                     "ask_px": 3, "ask_qty": 4, "send_ns": 99}


def test_truth_rebuilds_the_engine_book_at_every_update_id(tmp_path):
    path = tmp_path / "j.jsonl"
    expected = record_engines(path, ["BTCUSDT", "ETHUSDT"], 400, drop_every=7)
    truth = simtruth.load_journal(path)
    assert truth.symbols == ["BTCUSDT", "ETHUSDT"]
    for sym, by_u in expected.items():
        for u, (bids, asks) in by_u.items():
            top_b, top_a = truth.book_at(sym, u).top(5)
            assert [x for pq in top_b for x in pq] == bids
            assert [x for pq in top_a for x in pq] == asks


def test_truth_book_at_works_backwards_and_returns_independent_copies(tmp_path):
    path = tmp_path / "j.jsonl"
    expected = record_engines(path, ["BTCUSDT"], 60)
    truth = simtruth.load_journal(path)
    ids = sorted(expected["BTCUSDT"])
    late = truth.book_at("BTCUSDT", ids[-1])
    early = truth.book_at("BTCUSDT", ids[3])
    assert late.top(5) != early.top(5) or late.update_id != early.update_id
    b, a = expected["BTCUSDT"][ids[-1]]
    assert [x for pq in late.top(5)[0] for x in pq] == b


def test_truth_raises_keyerror_for_an_id_no_event_ended_at(tmp_path):
    path = tmp_path / "j.jsonl"
    record_engines(path, ["BTCUSDT"], 10)
    truth = simtruth.load_journal(path)
    first_U = truth.depth_events["BTCUSDT"][0][0]
    with pytest.raises(KeyError):
        truth.book_at("BTCUSDT", first_U - 1)
    with pytest.raises(KeyError):
        truth.book_at("NOPE", 1)


def test_truth_indexes_trades_quotes_send_times_and_faults(tmp_path):
    path = tmp_path / "j.jsonl"
    record_engines(path, ["BTCUSDT"], 300, drop_every=5)
    truth = simtruth.load_journal(path)
    recs = list(read_journal(path))
    trades = [r for r in recs if r["kind"] == "trade"]
    quotes = [r for r in recs if r["kind"] == "quote"]
    assert trades and quotes
    t = trades[0]
    assert truth.trades["BTCUSDT"][t["id"]] == (t["price"], t["qty"], t["side"])
    q = quotes[-1]
    assert truth.quotes["BTCUSDT"][q["u"]] == (q["bid_px"], q["bid_qty"], q["ask_px"], q["ask_qty"])
    depth = [r for r in recs if r["kind"] == "depth"]
    assert truth.send_ns_by_update["BTCUSDT"][depth[4]["u"]] == depth[4]["send_ns"]
    assert truth.update_ids("BTCUSDT") == [r["u"] for r in depth]
    assert truth.delivered_update_ids("BTCUSDT") == [r["u"] for r in depth if r["delivered"]]
    assert len(truth.delivered_update_ids("BTCUSDT")) < len(depth)
    assert truth.faults_named("drop_diff")[0]["symbol"] == "BTCUSDT"


def test_a_truncated_last_line_is_ignored(tmp_path):
    path = tmp_path / "j.jsonl"
    record_engines(path, ["BTCUSDT"], 30)
    with open(str(path), "a") as fh:
        fh.write('{"kind":"depth","symbol":"BTC')
    truth = simtruth.load_journal(path)
    assert len(truth.depth_events["BTCUSDT"]) == 30
    assert truth.bad_lines == 1
    assert len([r for r in read_journal(path) if r["kind"] == "depth"]) == 30


def test_writes_are_batched_until_flush(tmp_path):
    path = tmp_path / "j.jsonl"
    j = JournalWriter(path, 1, "binance", ["BTCUSDT"])
    j.write_event((EV_TRADE, "BTCUSDT", 1, 2, 3, 1), 5)
    assert path.read_text() == ""        # nothing hits the file per event
    j.flush()
    assert len(path.read_text().splitlines()) == 2
    j.close()
    j.close()                            # closing twice is harmless


def test_batch_writes_produce_the_same_lines_as_single_writes(tmp_path):
    evs = [(EV_DEPTH, "BTCUSDT", 1, 3, [10, 20, 9, 0], [11, 5]), (EV_TRADE, "BTCUSDT", 5, 10, 20, 2),
           (EV_QUOTE, "BTCUSDT", 3, 10, 20, 11, 5), (EV_DEPTH, "BTCUSDT", 4, 4, [], [])]
    a = JournalWriter(tmp_path / "a.jsonl", 1, "binance", ["BTCUSDT"])
    for i, ev in enumerate(evs):
        a.write_event(ev, 77, i != 3)
    a.close()
    b = JournalWriter(tmp_path / "b.jsonl", 1, "binance", ["BTCUSDT"])
    b.write_events([(ev, i != 3) for i, ev in enumerate(evs)], 77)
    b.close()
    assert (tmp_path / "a.jsonl").read_text() == (tmp_path / "b.jsonl").read_text()
