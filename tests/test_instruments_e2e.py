"""Instrument details through the real path: the daemon (subprocess) loads each venue's
instrument list from the simulator (subprocess), publishes ``D`` messages, and a collector and
the client library receive exactly the simulator's values (tools/sim/instruments.py ``truth``).
A failing or malformed list, or the switch turned off, leaves the books untouched."""

import time

import pytest

from hftfeed.client import Subscriber
from hftfeed.codecs import wire
from hftfeed.tools.sim.instruments import truth
from hftfeed.venues import registry

from e2e import Collector, DaemonProcess, SimProcess, daemon_config

# A REST-snapshot venue, one with three list requests, one with JSON numbers and option
# contracts, one whose list spells Bitcoin XBT, and a futures market with a contract size.
VENUES = ["binance", "okx", "deribit", "kraken", "binance-coinm"]


def start(tmp_path, venue, target, symbols=None, sim_extra=(), **overrides):
    spec = registry.spec(venue)
    symbols = list(symbols or spec.demo_symbols[:2])
    sim = SimProcess(tmp_path, symbols, rate=100, extra=["--venue", venue] + list(sim_extra))
    cfg = daemon_config(sim, target, symbols, feed_venue=venue,
                        feed_ws_url=sim.ws_url + registry.ws_path(venue), **overrides)
    del cfg["feeds"][0]["snapshot_limit"]
    cfg["publisher"]["refresh_interval_s"] = 0.5
    return sim, DaemonProcess(tmp_path, cfg), symbols


def collect_details(collector, count, seconds):
    """{instrument id: DetailsMsg}, {instrument id: symbol}; stops once ``count`` have both."""
    details, symbols, live = {}, {}, set()

    def until(data):
        for msg in wire.decode_packet(data).messages:
            if msg.type == wire.TYPE_DETAILS:
                details[msg.instrument] = msg
            elif msg.type == wire.TYPE_INSTRUMENT:
                symbols[msg.instrument] = msg.symbol
            elif msg.type == wire.TYPE_STATUS and msg.state == wire.STATE_LIVE:
                live.add(msg.instrument)
        return len(details) >= count and len(live) >= count and set(details) <= set(symbols)
    collector.collect(seconds, until=until)
    return details, symbols, live


def run_until_details(tmp_path, venue, seconds, count=None, sim_extra=(), **overrides):
    """Simulator + daemon for ``venue``; collect until ``count`` instruments have a D and are
    live (or ``seconds``), then stop both. Returns what the tests read."""
    collector = Collector()
    sim, daemon, symbols = start(tmp_path, venue, collector.target, sim_extra=sim_extra,
                                 **overrides)
    try:
        details, names, live = collect_details(collector, count or len(symbols), seconds)
        status = sim.status()
    finally:
        code, _ = daemon.stop()
        sim.stop()
        collector.close()
    return {"details": details, "names": names, "live": live, "symbols": symbols, "code": code,
            "log": daemon.log_text(), "status": status, "datagrams": collector.datagrams}


@pytest.mark.parametrize("venue", VENUES)
def test_the_daemon_publishes_the_simulators_tick_lot_min_and_contract_size(tmp_path, venue):
    run = run_until_details(tmp_path, venue, 20.0)
    details, names, live, symbols, log = (run["details"], run["names"], run["live"],
                                          run["symbols"], run["log"])
    assert run["code"] == 0, log[-3000:]
    assert len(details) == len(symbols), log[-3000:]
    for instrument, msg in details.items():
        symbol = names[instrument]
        assert (msg.tick_size, msg.lot_size, msg.min_qty, msg.contract_size, msg.trading) == \
            truth(venue, symbol), symbol
        assert msg.venue == registry.spec(venue).wire_id and msg.recv_ns > 0
    assert len(live) == len(symbols)            # the books are live beside it
    # Every D follows its instrument's I in the same datagram (a consumer has the symbol first).
    for _, data in run["datagrams"]:
        messages = wire.decode_packet(data).messages
        for i, msg in enumerate(messages):
            if msg.type == wire.TYPE_DETAILS:
                assert i > 0 and messages[i - 1].type == wire.TYPE_INSTRUMENT
                assert messages[i - 1].instrument == msg.instrument


def test_the_client_library_exposes_tick_and_lot_per_instrument(tmp_path):
    sub = Subscriber("127.0.0.1:0")
    target = "127.0.0.1:%d" % sub._socks[0].getsockname()[1]
    sim, daemon, symbols = start(tmp_path, "bybit", target)
    events = []
    try:
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and len(sub.details) < len(symbols):
            events.extend(sub.poll(0.05))
    finally:
        daemon.stop()
        sim.stop()
        sub.close()
    assert len(sub.details) == len(symbols), daemon.log_text()[-3000:]
    for key, det in sub.details.items():
        tick, lot, min_qty, contract, trading = truth("bybit", det.symbol)
        assert (det.tick_size, det.lot_size, det.min_qty, det.contract_size) == \
            (tick, lot, min_qty, contract)
        assert det.tick_size_decimal == wire_decimal(tick)
        assert det.lot_size_decimal == wire_decimal(lot)
        assert det.trading_name == "open" and det.symbol in symbols
    assert any(e.kind == "details" for e in events)


def wire_decimal(value):
    from decimal import Decimal
    return Decimal(value).scaleb(-8)


@pytest.mark.parametrize("fault", ["instruments_status:code=500,count=5",
                                   "instruments_malformed:count=5"])
def test_a_failing_instrument_list_is_one_warning_and_the_books_go_live(tmp_path, fault):
    run = run_until_details(tmp_path, "binance", 8.0, sim_extra=["--fault", fault])
    log = run["log"]
    assert run["code"] == 0, log[-3000:]
    assert len(run["live"]) == len(run["symbols"]), log[-3000:]
    assert run["details"] == {}
    warnings = [line for line in log.splitlines() if "instrument metadata not loaded" in line]
    assert len(warnings) == 1, log[-3000:]
    assert "list errors" in log         # the stats line shows the counter


def test_a_symbol_missing_from_the_list_is_a_typo_warning(tmp_path):
    collector = Collector()
    # The simulator lists what it simulates; the daemon also asks for a symbol it does not.
    sim = SimProcess(tmp_path, ["BTCUSDT"], rate=100, extra=["--venue", "bybit"])
    cfg = daemon_config(sim, collector.target, ["BTCUSDT", "BTCUSDX"], feed_venue="bybit",
                        feed_ws_url=sim.ws_url + registry.ws_path("bybit"))
    del cfg["feeds"][0]["snapshot_limit"]
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        details, names, live = collect_details(collector, 1, 8.0)
        time.sleep(0.5)
    finally:
        code, _ = daemon.stop()
        sim.stop()
    log = daemon.log_text()
    assert code == 0, log[-3000:]
    assert [names[i] for i in details] == ["BTCUSDT"]
    assert "not in the venue's instrument list (a typo, or delisted?): BTCUSDX" in log
    collector.close()


def test_instrument_metadata_false_loads_nothing(tmp_path):
    run = run_until_details(tmp_path, "binance", 5.0, feed_instrument_metadata=False)
    assert run["code"] == 0 and len(run["live"]) == len(run["symbols"])
    assert run["details"] == {}
    assert "instrument metadata off" in run["log"]
    # no list was requested: every REST request was a snapshot, but for this /_sim/status
    status = run["status"]
    assert status["rest_requests"] == status["snapshots_served"] + 1
