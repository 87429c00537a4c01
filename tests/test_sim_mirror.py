"""Specification of the mirror book (hftfeed/tools/sim/mirror.py): it must stay equal to the engine's
book event by event, and give OKX's interleaved checksum string."""

from hftfeed.tools.sim.market import EV_DEPTH, MarketEngine
from hftfeed.tools.sim.mirror import MirrorBook


def text(p, q):
    return "%d:%d" % (p, q)


def test_mirror_follows_the_engine_event_by_event():
    engine = MarketEngine("BTCUSDT", seed=5, depth_levels=60)
    uid, bids, asks = engine.snapshot(1000)
    mirror = MirrorBook(bids, asks)
    for _ in range(400):
        out = []
        engine.generate(1 + engine.draw_steps(3), out)
        for ev in out:
            if ev[0] == EV_DEPTH:
                mirror.apply(ev[4], ev[5])
        _uid, bids, asks = engine.snapshot(1000)
        assert mirror.top(1000) == (bids, asks)


def test_text_kept_per_level_matches_a_fresh_format_after_updates_and_deletes():
    mirror = MirrorBook([300, 1, 200, 2], [400, 4], level_text=text)
    mirror.apply([300, 0, 250, 7], [400, 9, 450, 3])
    mirror.apply_with_text([100, 5], [450, 0], ["100:5"], ["450:0"])
    assert mirror.top(10) == ([250, 7, 200, 2, 100, 5], [400, 9])
    assert mirror.interleaved_text(25) == "250:7:400:9:200:2:100:5"


def test_interleaving_alternates_bid_ask_and_a_short_side_stops_contributing():
    mirror = MirrorBook([300, 1, 200, 2, 100, 3], [400, 4, 500, 5], level_text=text)
    assert mirror.interleaved_text(25) == "300:1:400:4:200:2:500:5:100:3"
    assert mirror.interleaved_text(1) == "300:1:400:4"
    assert MirrorBook([300, 1], [400, 4, 500, 5], level_text=text).interleaved_text(25) == \
        "300:1:400:4:500:5"
    assert MirrorBook(level_text=text).interleaved_text(25) == ""


def test_removing_a_level_that_is_not_there_is_harmless():
    mirror = MirrorBook([300, 1], [400, 4])
    mirror.apply([123, 0], [999, 0])
    assert mirror.top(5) == ([300, 1], [400, 4])
