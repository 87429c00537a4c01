"""Specification of the simulator's settings (hftfeed/tools/sim/config.py): each venue's own limits as
defaults, explicit values kept, impossible combinations refused with a clear ConfigError."""

import pytest

from hftfeed.errors import ConfigError
from hftfeed.tools.sim.cli import build_parser, config_from_args
from hftfeed.tools.sim.config import SimConfig


def cfg(**kw):
    return SimConfig(**kw).validate()


def test_each_venue_gets_its_own_keepalive_and_limits():
    spot = cfg()
    assert (spot.ping_interval_s, spot.pong_timeout_s, spot.max_incoming_per_s) == (20.0, 60.0, 5)
    assert spot.weight_limit == 6000 and spot.depth_levels == 200 and spot.idle_timeout_s is None
    usdm = cfg(venue="binance-usdm")
    assert (usdm.ping_interval_s, usdm.pong_timeout_s, usdm.max_incoming_per_s) == (180.0, 600.0,
                                                                                   10)
    assert usdm.weight_limit == 2400 and usdm.lifetime_s == 86400.0
    bybit = cfg(venue="bybit")
    assert bybit.ping_interval_s is None and bybit.idle_timeout_s == 600.0
    assert bybit.depth_levels == 50 and bybit.quote_resend_s == 3.0
    okx = cfg(venue="okx", symbols=["BTC-USDT-SWAP"])
    assert okx.ping_interval_s is None and okx.idle_timeout_s == 30.0
    assert okx.max_incoming_per_s == 3 and okx.checksum == "real" and okx.book_keepalive_s == 20.0


def test_explicit_values_win_over_venue_defaults():
    c = cfg(venue="binance-usdm", ping_interval_s=0.5, pong_timeout_s=2.0, weight_limit=10)
    assert (c.ping_interval_s, c.pong_timeout_s, c.weight_limit) == (0.5, 2.0, 10)


@pytest.mark.parametrize("kwargs, words", [
    ({"venue": "nyse"}, "unsupported venue"),
    ({"venue": "bybit", "depth_levels": 200}, "at most 50"),
    ({"venue": "okx", "depth_levels": 500, "symbols": ["BTC-USDT"]}, "at most 400"),
    ({"venue": "okx", "checksum": "maybe", "symbols": ["BTC-USDT"]}, "checksum"),
    ({"venue": "bybit", "ping_interval_s": 1.0}, "go together"),
    ({"venue": "okx", "idle_timeout_s": 0, "symbols": ["BTC-USDT"]}, "idle_timeout_s"),
    ({"venue": "binance", "symbols": ["BTC-USDT"]}, "bad symbol"),
    ({"venue": "okx", "symbols": ["-BTC"]}, "bad symbol"),
    ({"venue": "okx", "replay_capture": "x.ws", "symbols": ["BTC-USDT"]}, "Binance spot"),
])
def test_impossible_settings_are_refused_with_a_reason(kwargs, words):
    with pytest.raises(ConfigError) as err:
        cfg(**kwargs)
    assert words in str(err.value)


def test_dashed_okx_instruments_are_accepted():
    assert cfg(venue="okx", symbols=["btc-usdt-swap", "ETH-USDT"]).symbols == \
        ["BTC-USDT-SWAP", "ETH-USDT"]


def test_command_line_selects_the_venue_and_its_options():
    ns = build_parser().parse_args(["--venue", "okx", "--symbols", "BTC-USDT-SWAP",
                                    "--checksum", "zero", "--idle-timeout-s", "5",
                                    "--book-keepalive-s", "1"])
    c = config_from_args(ns)
    assert (c.venue, c.checksum, c.idle_timeout_s, c.book_keepalive_s) == ("okx", "zero", 5.0, 1.0)
    assert c.ping_interval_s is None
    with pytest.raises(ConfigError):
        config_from_args(build_parser().parse_args(["--venue", "nasdaq"]))
