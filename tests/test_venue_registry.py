"""venues/registry.py: one entry per venue, and nothing that lists venues may disagree with it.

Adding a venue = its adapter, its simulator dialect, one registry entry. These tests fail while
any of those, the simulator's defaults, the demo's symbols or the docs rows is missing."""

import os
import re
import subprocess
import sys

import pytest

from hftfeed.app.config import load_config_dict
from hftfeed.tools.sim import config as sim_config
from hftfeed.venues import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECS = registry.VENUES
ids = [s.name for s in SPECS]


def read(*parts):
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
        return f.read()


def test_ids_and_names_are_unique_and_fit_the_wire():
    wire_ids = [s.wire_id for s in SPECS]
    assert len(set(wire_ids)) == len(wire_ids)
    assert all(0 < i < 256 for i in wire_ids)
    assert not set(wire_ids) & set(registry.RESERVED_WIRE_IDS)
    assert len(set(registry.NAMES)) == len(registry.NAMES)


def test_every_wire_id_is_in_the_protocol_table():
    protocol = read("docs", "PROTOCOL.md")
    for wire_id in [s.wire_id for s in SPECS] + sorted(registry.RESERVED_WIRE_IDS):
        assert re.search(r"^\| %d \| " % wire_id, protocol, re.M), wire_id


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_a_registered_venue_has_its_adapter(spec):
    cls = registry.adapter(spec.name)
    assert cls.SPEC is spec
    assert (cls.NAME, cls.VENUE_ID) == (spec.name, spec.wire_id)
    assert (cls.DEFAULT_WS_URL, cls.DEFAULT_REST_URL) == (spec.ws_url, spec.rest_url)
    assert cls.rule is not None


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_a_registered_venue_has_its_simulator_dialect_and_defaults(spec):
    dialect = registry.sim_dialect(spec.name)
    markets = getattr(dialect, "MARKETS", None)     # a dialect serving several markets
    if markets is not None:
        market = markets[spec.name]
        assert getattr(market, "venue", spec.name) == spec.name
    else:
        assert dialect.VENUE == spec.name
    # the WebSocket path is the registry's (the message-subscribed dialects read it there)
    assert not hasattr(dialect, "WS_PATH") or dialect.WS_PATH == registry.ws_path(spec.name)
    assert spec.name in sim_config.VENUE_DEFAULTS
    assert spec.name in sim_config.MAX_DEPTH_LEVELS
    cfg = sim_config.SimConfig(venue=spec.name, symbols=list(spec.demo_symbols)).validate()
    assert cfg.depth_levels > 0


def test_the_simulator_knows_no_venue_the_registry_does_not():
    assert set(sim_config.VENUE_DEFAULTS) == set(registry.NAMES)
    assert set(sim_config.MAX_DEPTH_LEVELS) == set(registry.NAMES)


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_demo_symbols_and_the_example_are_valid_config_symbols(spec):
    symbols = list(spec.demo_symbols) + [spec.symbol_example]
    raw = {"feeds": [{"venue": spec.name, "symbols": sorted(set(symbols))}]}
    cfg = load_config_dict(raw)
    assert cfg.feeds[0].ws_url == spec.ws_url and cfg.feeds[0].rest_url == spec.rest_url


def test_the_demo_runs_every_registered_venue_by_default():
    from hftfeed.app import demo
    assert demo.build_parser().parse_args([]).venues.split(",") == list(registry.NAMES)


@pytest.mark.parametrize("doc", [("README.md",), ("docs", "config.md")])
def test_the_docs_venue_table_is_the_registry_table(doc):
    """Regenerate with: python3 -c 'from hftfeed.venues import registry; print(registry.doc_table())'"""
    assert registry.doc_table() in read(*doc)


def test_monitor_names_every_wire_id():
    for spec in SPECS:
        assert registry.wire_name(spec.wire_id) == spec.name
    assert registry.wire_name(registry.WIRE_ID_SIM) == "sim"
    assert registry.wire_name(200) is None


@pytest.mark.parametrize("name, good, bad", [
    ("binance", "btcusdt", "BTC#USDT"),
    ("binance-usdm", "BTCUSDT", "BTC-USDT"),
    ("bybit", "ETHUSDT", "ETH/USDT"),
    ("okx", "BTC-USD-250627", "BTC--USDT"),
    ("okx", "BTC-USDT", "BTC_USDT"),
    ("binance-coinm", "BTCUSD_PERP", "BTCUSDT"),
    ("binance-coinm", "ethusd_261225", "BTCUSD_PERPETUAL"),
    ("bybit-spot", "BTCUSDT", "BTC-USDT"),
    ("bybit-inverse", "BTCUSD", "BTC USD"),
])
def test_symbol_syntax_says_what_a_symbol_should_look_like(name, good, bad):
    assert registry.symbol_error(name, good) is None
    problem = registry.symbol_error(name, bad)
    assert repr(bad) in problem and registry.spec(name).symbol_example in problem


def test_reading_the_registry_loads_no_adapter_and_the_simulator_no_core():
    code = ("import sys\n"
            "import hftfeed.venues.registry, hftfeed.tools.sim.server, hftfeed.tools.sim.cli\n"
            "from hftfeed.venues import registry\n"
            "[registry.sim_dialect(n) for n in registry.NAMES]\n"
            "bad = sorted(m for m in sys.modules if m.startswith(('hftfeed.core', 'hftfeed.pipeline',"
            " 'hftfeed.transport')) or (m.startswith('hftfeed.venues.') and m != 'hftfeed.venues.registry'))\n"
            "print(bad)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("spec", SPECS, ids=ids)
def test_the_config_reference_lists_each_venues_default_endpoints(spec):
    row = "| `%s` | `%s` | `%s` |" % (spec.name, spec.ws_url, spec.rest_url)
    assert row in read("docs", "config.md")
