"""Specification of the simulator's book engine (hftfeed/tools/sim/market.py)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from refbook import RefBook  # noqa: E402

from hftfeed.tools.sim.market import (EV_DEPTH, EV_QUOTE, EV_TRADE, SCALE, SIDE_BUY, SIDE_SELL,  # noqa: E402
                                MarketEngine, spec_for)


def run_engine(engine, n_msgs, max_steps=3):
    out = []
    for _ in range(n_msgs):
        engine.generate(engine.draw_steps(max_steps), out)
    return out


def test_same_seed_and_symbol_give_identical_event_sequences():
    a = run_engine(MarketEngine("BTCUSDT", seed=42), 500)
    b = run_engine(MarketEngine("BTCUSDT", seed=42), 500)
    assert a == b


def test_different_seed_or_symbol_gives_different_sequences():
    base = run_engine(MarketEngine("BTCUSDT", seed=42), 100)
    assert run_engine(MarketEngine("BTCUSDT", seed=43), 100) != base
    other = MarketEngine("ETHUSDT", seed=42)
    assert run_engine(other, 100) != base


def test_seeded_first_update_id_is_stable_across_runs_and_interpreters():
    # A regression anchor: the engine draws only Random.random(), whose output is fixed by the seed.
    e = MarketEngine("BTCUSDT", seed=1)
    assert e.last_update_id == 197724585
    assert e.snapshot(1)[1][0] == 37000 * SCALE


def test_book_is_never_crossed_and_keeps_its_depth():
    e = MarketEngine("BTCUSDT", seed=3, depth_levels=50)
    for _ in range(3000):
        e.generate(e.draw_steps(3), [])
        assert not e.is_crossed()
        assert len(e.bid_px) == 50 and len(e.ask_px) == 50
    # The spread stays tight (a wide spread is refilled) while the mid moves.
    bid, _bq, ask, _aq = e.best()
    assert 0 < ask - bid <= 20 * e.spec.tick_scaled


def test_depth_events_cover_contiguous_update_id_ranges():
    e = MarketEngine("ETHUSDT", seed=5)
    first = e.last_update_id + 1
    prev_u = first - 1
    for ev in run_engine(e, 400):
        if ev[0] != EV_DEPTH:
            continue
        U, u = ev[2], ev[3]
        assert U == prev_u + 1
        assert u >= U
        prev_u = u
    assert prev_u == e.last_update_id


def test_applying_every_depth_event_to_the_initial_book_reproduces_the_engine_book():
    e = MarketEngine("BTCUSDT", seed=9, depth_levels=40)
    uid, bids, asks = e.snapshot(1000)
    ref = RefBook()
    ref.load_snapshot(bids, asks, uid)
    for ev in run_engine(e, 1500):
        if ev[0] == EV_DEPTH:
            ref.apply_levels(ev[4], ev[5])
    uid2, bids2, asks2 = e.snapshot(1000)
    top_b, top_a = ref.top(1000)
    assert [x for pq in top_b for x in pq] == bids2
    assert [x for pq in top_a for x in pq] == asks2


def test_depth_event_levels_are_sorted_best_first_with_zero_meaning_removed():
    e = MarketEngine("BTCUSDT", seed=11)
    seen_delete = False
    for ev in run_engine(e, 500):
        if ev[0] != EV_DEPTH:
            continue
        bid_prices = ev[4][0::2]
        ask_prices = ev[5][0::2]
        assert bid_prices == sorted(bid_prices, reverse=True)
        assert ask_prices == sorted(ask_prices)
        assert len(set(bid_prices)) == len(bid_prices)
        seen_delete = seen_delete or 0 in ev[4][1::2] or 0 in ev[5][1::2]
        assert all(q >= 0 for q in ev[4][1::2] + ev[5][1::2])
    assert seen_delete


def test_trades_take_liquidity_from_the_opposite_top_level():
    e = MarketEngine("BTCUSDT", seed=13, trade_prob=0.5)
    sides = set()
    for _ in range(300):
        before_bid, before_bq, before_ask, before_aq = e.best()
        out = []
        e.generate(1, out)
        trades = [ev for ev in out if ev[0] == EV_TRADE]
        for t in trades:
            sides.add(t[5])
            assert t[4] > 0
            if t[5] == SIDE_BUY:
                assert t[3] == before_ask and t[4] <= before_aq
            else:
                assert t[5] == SIDE_SELL
                assert t[3] == before_bid and t[4] <= before_bq
    assert sides == {SIDE_BUY, SIDE_SELL}


def test_trade_ids_increase_by_one():
    e = MarketEngine("BTCUSDT", seed=17, trade_prob=0.3)
    ids = [ev[2] for ev in run_engine(e, 500) if ev[0] == EV_TRADE]
    assert len(ids) > 10
    assert ids == list(range(ids[0], ids[0] + len(ids)))


def test_quotes_report_the_new_best_bid_and_offer_at_their_update_id():
    e = MarketEngine("BTCUSDT", seed=19)
    last_quote = None
    for _ in range(300):
        out = []
        e.step(out)
        quotes = [ev for ev in out if ev[0] == EV_QUOTE]
        if quotes:
            q = quotes[-1]
            assert q[2] == e.last_update_id
            assert q[3:] == e.best()
            last_quote = q
        elif last_quote is not None:
            assert last_quote[3:] == e.best()  # no quote event means the BBO did not change
    e.take_depth(0)


def test_snapshot_is_the_top_levels_best_first_in_scaled_ints():
    e = MarketEngine("ETHUSDT", seed=23, depth_levels=30)
    uid, bids, asks = e.snapshot(10)
    assert uid == e.last_update_id
    assert len(bids) == 20 and len(asks) == 20
    assert bids[0::2] == sorted(bids[0::2], reverse=True)
    assert asks[0::2] == sorted(asks[0::2])
    assert bids[0] < asks[0]
    tick = spec_for("ETHUSDT").tick_scaled
    assert all(p % tick == 0 for p in bids[0::2] + asks[0::2])
    assert len(e.snapshot(5000)[1]) == 60


def test_generic_symbols_get_a_plausible_stable_spec():
    s1 = spec_for("FOOBAR")
    s2 = spec_for("FOOBAR")
    assert (s1.tick_scaled, s1.lot_scaled, s1.start_px_scaled) == \
        (s2.tick_scaled, s2.lot_scaled, s2.start_px_scaled)
    assert s1.start_px_scaled % s1.tick_scaled == 0 and s1.start_px_scaled > 0


def test_too_few_levels_is_refused():
    with pytest.raises(ValueError):
        MarketEngine("BTCUSDT", depth_levels=2)
