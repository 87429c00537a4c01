"""hftfeed/venues/instruments.py: every venue's instrument list, parsed from a sample in the
venue's documented shape (written here by hand from its docs, with values a venue really uses),
then the exact checks, then the contract every registry entry keeps: it declares its instruments
endpoint (or says why it has none), its parser returns only RawInstruments or raises VenueError,
whatever the body -- fed whole, cut at every length, with trailing bytes, mutated."""

import json
import random

import pytest

import fuzz
from hftfeed.codecs import wire
from hftfeed.errors import VenueError
from hftfeed.venues import instruments, registry
from hftfeed.venues.instruments import InstrumentSpec, RawInstrument

OPEN, RESTRICTED, CLOSED = wire.TRADING_OPEN, wire.TRADING_RESTRICTED, wire.TRADING_CLOSED
E8 = 10 ** 8


def j(doc):
    return json.dumps(doc).encode("utf-8")


BINANCE_SPOT = j({"timezone": "UTC", "serverTime": 1, "rateLimits": [], "exchangeFilters": [],
                  "symbols": [
                      {"symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC",
                       "filters": [{"filterType": "PRICE_FILTER", "minPrice": "0.01000000",
                                    "maxPrice": "1000000.00000000", "tickSize": "0.01000000"},
                                   {"filterType": "LOT_SIZE", "minQty": "0.00001000",
                                    "maxQty": "9000.00000000", "stepSize": "0.00001000"},
                                   {"filterType": "NOTIONAL", "minNotional": "5.00000000"}]},
                      {"symbol": "LUNAUSDT", "status": "BREAK", "filters": [
                          {"filterType": "PRICE_FILTER", "tickSize": "0.00010000"},
                          {"filterType": "LOT_SIZE", "minQty": "0.01", "stepSize": "0.01"}]}]})
BINANCE_COINM = j({"symbols": [
    {"symbol": "BTCUSD_PERP", "pair": "BTCUSD", "contractType": "PERPETUAL",
     "contractStatus": "TRADING", "contractSize": 100,
     "filters": [{"filterType": "PRICE_FILTER", "tickSize": "0.1"},
                 {"filterType": "LOT_SIZE", "stepSize": "1", "minQty": "1"}]}]})
BYBIT_LINEAR = j({"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": [
    {"symbol": "BTCUSDT", "contractType": "LinearPerpetual", "status": "Trading",
     "priceFilter": {"minPrice": "0.10", "maxPrice": "1999999.80", "tickSize": "0.10"},
     "lotSizeFilter": {"maxOrderQty": "1190.000", "minOrderQty": "0.001", "qtyStep": "0.001"}},
    {"symbol": "NEWUSDT", "status": "PreLaunch", "priceFilter": {"tickSize": "0.0001"},
     "lotSizeFilter": {"minOrderQty": "1", "qtyStep": "1"}}], "nextPageCursor": ""},
    "retExtInfo": {}, "time": 1})
BYBIT_SPOT = j({"retCode": 0, "retMsg": "OK", "result": {"category": "spot", "list": [
    {"symbol": "BTCUSDT", "status": "Trading", "priceFilter": {"tickSize": "0.01"},
     "lotSizeFilter": {"basePrecision": "0.000001", "quotePrecision": "0.00000001",
                       "minOrderQty": "0.000048", "maxOrderQty": "71.73956243"}}]}})
OKX = j({"code": "0", "msg": "", "data": [
    {"instType": "SWAP", "instId": "BTC-USDT-SWAP", "ctVal": "0.01", "ctMult": "1",
     "ctValCcy": "BTC", "tickSz": "0.1", "lotSz": "0.01", "minSz": "0.01", "state": "live"},
    {"instType": "SPOT", "instId": "BTC-USDT", "ctVal": "", "ctMult": "", "tickSz": "0.1",
     "lotSz": "0.00000001", "minSz": "0.00001", "state": "live"},
    {"instType": "FUTURES", "instId": "BTC-USD-261225", "ctVal": "100", "ctMult": "1",
     "tickSz": "0.1", "lotSz": "1", "minSz": "1", "state": "suspend"}]})
COINBASE = j({"products": [
    {"product_id": "BTC-USD", "price": "97000.01", "base_increment": "0.00000001",
     "quote_increment": "0.01", "price_increment": "0.01", "base_min_size": "0.00000001",
     "status": "online", "trading_disabled": False, "cancel_only": False, "limit_only": False,
     "post_only": False, "is_disabled": False, "product_type": "SPOT"},
    {"product_id": "BIT-26DEC26-CDE", "price_increment": "5", "base_increment": "1",
     "base_min_size": "1", "status": "online", "trading_disabled": False, "cancel_only": True,
     "product_type": "FUTURE", "future_product_details": {"contract_size": "0.01"}}],
    "num_products": 2})
KRAKEN = j({"error": [], "result": {
    "XXBTZUSD": {"altname": "XBTUSD", "wsname": "XBT/USD", "base": "XXBT", "quote": "ZUSD",
                 "pair_decimals": 1, "cost_decimals": 5, "lot_decimals": 8, "lot_multiplier": 1,
                 "ordermin": "0.00005", "costmin": "0.5", "tick_size": "0.1",
                 "status": "online"},
    "XDGUSD": {"altname": "XDGUSD", "wsname": "XDG/USD", "lot_decimals": 8,
               "ordermin": "20", "tick_size": "0.0000001", "status": "post_only"}}})
# Deribit writes numbers as JSON numbers: they must stay exact (no float on the way).
DERIBIT = (b'{"jsonrpc":"2.0","result":[{"instrument_name":"BTC-PERPETUAL","kind":"future",'
           b'"tick_size":0.5,"min_trade_amount":10,"contract_size":10,"is_active":true},'
           b'{"instrument_name":"BTC-27DEC26-100000-C","kind":"option","tick_size":0.0001,'
           b'"min_trade_amount":0.1,"contract_size":1.0,"is_active":false}],'
           b'"usIn":1,"usOut":2,"usDiff":1,"testnet":false}')
BITGET_SPOT = j({"code": "00000", "msg": "success", "requestTime": 1, "data": [
    {"symbol": "BTCUSDT", "baseCoin": "BTC", "quoteCoin": "USDT", "minTradeAmount": "0",
     "maxTradeAmount": "10000000000", "pricePrecision": "2", "quantityPrecision": "6",
     "quotePrecision": "8", "status": "online"}]})
BITGET_FUTURES = j({"code": "00000", "msg": "success", "requestTime": 1, "data": [
    {"symbol": "BTCUSDT", "pricePlace": "1", "priceEndStep": "1", "volumePlace": "3",
     "sizeMultiplier": "0.001", "minTradeNum": "0.001", "symbolStatus": "normal"},
    {"symbol": "ETHUSDT", "pricePlace": "2", "priceEndStep": "5", "volumePlace": "2",
     "sizeMultiplier": "0.01", "minTradeNum": "0.01", "symbolStatus": "maintain"}]})

# venue -> (sample body, {symbol: the InstrumentSpec it must give})
SAMPLES = {
    "binance": (BINANCE_SPOT, {
        "BTCUSDT": InstrumentSpec("BTCUSDT", 10 ** 6, 1000, 1000, 0, OPEN),
        "LUNAUSDT": InstrumentSpec("LUNAUSDT", 10 ** 4, 10 ** 6, 10 ** 6, 0, CLOSED)}),
    "binance-usdm": (BINANCE_SPOT, {
        "BTCUSDT": InstrumentSpec("BTCUSDT", 10 ** 6, 1000, 1000, 0, OPEN)}),
    "binance-coinm": (BINANCE_COINM, {
        "BTCUSD_PERP": InstrumentSpec("BTCUSD_PERP", 10 ** 7, E8, E8, 100 * E8, OPEN)}),
    "bybit": (BYBIT_LINEAR, {
        "BTCUSDT": InstrumentSpec("BTCUSDT", 10 ** 7, 10 ** 5, 10 ** 5, 0, OPEN),
        "NEWUSDT": InstrumentSpec("NEWUSDT", 10 ** 4, E8, E8, 0, RESTRICTED)}),
    "bybit-spot": (BYBIT_SPOT, {
        "BTCUSDT": InstrumentSpec("BTCUSDT", 10 ** 6, 100, 4800, 0, OPEN)}),
    "bybit-inverse": (BYBIT_LINEAR, {
        "BTCUSDT": InstrumentSpec("BTCUSDT", 10 ** 7, 10 ** 5, 10 ** 5, 0, OPEN)}),
    "okx": (OKX, {
        "BTC-USDT-SWAP": InstrumentSpec("BTC-USDT-SWAP", 10 ** 7, 10 ** 6, 10 ** 6, 10 ** 6,
                                        OPEN),
        "BTC-USDT": InstrumentSpec("BTC-USDT", 10 ** 7, 1, 1000, 0, OPEN),
        "BTC-USD-261225": InstrumentSpec("BTC-USD-261225", 10 ** 7, E8, E8, 100 * E8,
                                         RESTRICTED)}),
    "coinbase": (COINBASE, {
        "BTC-USD": InstrumentSpec("BTC-USD", 10 ** 6, 1, 1, 0, OPEN),
        "BIT-26DEC26-CDE": InstrumentSpec("BIT-26DEC26-CDE", 5 * E8, E8, E8, 10 ** 6,
                                          RESTRICTED)}),
    "kraken": (KRAKEN, {
        "BTC/USD": InstrumentSpec("BTC/USD", 10 ** 7, 1, 5000, 0, OPEN),
        "DOGE/USD": InstrumentSpec("DOGE/USD", 10, 1, 20 * E8, 0, RESTRICTED)}),
    "deribit": (DERIBIT, {
        "BTC-PERPETUAL": InstrumentSpec("BTC-PERPETUAL", E8 // 2, 10 * E8, 10 * E8, 10 * E8,
                                        OPEN),
        "BTC-27DEC26-100000-C": InstrumentSpec("BTC-27DEC26-100000-C", 10 ** 4, 10 ** 7,
                                               10 ** 7, E8, RESTRICTED)}),
    "bitget": (BITGET_SPOT, {
        "BTCUSDT": InstrumentSpec("BTCUSDT", 10 ** 6, 100, 0, 0, OPEN)}),
    "bitget-futures": (BITGET_FUTURES, {
        "BTCUSDT": InstrumentSpec("BTCUSDT", 10 ** 7, 10 ** 5, 10 ** 5, 0, OPEN),
        "ETHUSDT": InstrumentSpec("ETHUSDT", 5 * 10 ** 6, 10 ** 6, 10 ** 6, 0, RESTRICTED)}),
}
NAMES = registry.NAMES


def parse(name, body):
    return registry.instruments_parser(name)(body)


# --- the registry contract -------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_every_registry_entry_declares_its_instruments_endpoint_or_why_it_has_none(name):
    endpoint = registry.spec(name).instruments
    if isinstance(endpoint, str):
        assert len(endpoint) > 10, "%s: say why there is no instruments endpoint" % name
        return
    assert isinstance(endpoint, registry.InstrumentsEndpoint)
    assert endpoint.paths and all(p.startswith("/") for p in endpoint.paths)
    assert callable(registry.instruments_parser(name))


def test_every_registered_venue_has_a_documented_sample():
    assert set(SAMPLES) == set(NAMES)


# --- each venue's shape ------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_the_sample_gives_the_exact_specs(name):
    body, expected = SAMPLES[name]
    specs, refused, missing = instruments.build_specs(parse(name, body), list(expected))
    assert (specs, refused, missing) == (expected, [], [])


def test_only_the_wanted_symbols_are_kept_and_missing_ones_are_named():
    raws = parse("okx", OKX)
    specs, refused, missing = instruments.build_specs(raws, ["BTC-USDT", "BTC-USDT-SWAPP"])
    assert list(specs) == ["BTC-USDT"] and refused == [] and missing == ["BTC-USDT-SWAPP"]


# --- exactness and refusals --------------------------------------------------------------------

@pytest.mark.parametrize("text, scaled", [("0.01", 10 ** 6), ("1e-8", 1), ("0.00000001", 1),
                                          ("100", 100 * E8), (5, 5 * E8), ("1E+3", 1000 * E8),
                                          ("0.100000000", 10 ** 7)])
def test_decimal_text_is_converted_exactly(text, scaled):
    assert instruments.scaled(text, "tick size") == scaled


@pytest.mark.parametrize("text", ["0", "-0.01", "0.000000001", "1e-9", "abc", "", "1e10",
                                  "nan", "inf", True, None, 0.5, [], "1" * 40])
def test_a_value_that_cannot_be_right_is_refused(text):
    with pytest.raises(VenueError):
        instruments.scaled(text, "tick size")


def test_a_minimum_quantity_of_zero_means_none_but_negative_is_refused():
    assert instruments.scaled("0", "minimum quantity", positive=False) == 0
    with pytest.raises(VenueError):
        instruments.scaled("-1", "minimum quantity", positive=False)


@pytest.mark.parametrize("field, value, reason", [
    ("tick_size", "0", "out of range"), ("lot_size", "-0.1", "out of range"),
    ("tick_size", "0.000000001", "tick size"), ("min_qty", "1e99", "minimum quantity"),
    ("contract_size", "0", "contract size"), ("tick_size", None, "malformed")])
def test_one_bad_entry_is_refused_with_a_reason_and_the_others_kept(field, value, reason):
    good = RawInstrument("A", "0.1", "1", "1", None, OPEN)
    bad = good._replace(symbol="B", **{field: value})
    specs, refused, missing = instruments.build_specs([good, bad], ["A", "B"])
    assert list(specs) == ["A"] and missing == []
    assert [s for s, _ in refused] == ["B"] and reason in refused[0][1]


def test_an_entry_of_the_wrong_shape_is_refused_not_silently_missing():
    body = j({"symbols": [{"symbol": "BTCUSDT", "filters": "not a list"}]})
    specs, refused, missing = instruments.build_specs(parse("binance", body), ["BTCUSDT"])
    assert specs == {} and missing == [] and refused[0][0] == "BTCUSDT"


@pytest.mark.parametrize("name, body", [
    ("bybit", j({"retCode": 10001, "retMsg": "params error", "result": {}})),
    ("okx", j({"code": "51001", "msg": "Instrument ID does not exist", "data": []})),
    ("kraken", j({"error": ["EGeneral:Too many requests"]})),
    ("bitget", j({"code": "40034", "msg": "Parameter does not exist"})),
    ("binance", j({"code": -1121, "msg": "Invalid symbol."})),
    ("deribit", j({"jsonrpc": "2.0", "error": {"code": 10001, "message": "error"}})),
    ("coinbase", j({"error": "NOT_FOUND"}))])
def test_a_venue_error_answer_raises_venue_error(name, body):
    with pytest.raises(VenueError):
        parse(name, body)


# --- whatever arrives: VenueError or sane records, never another exception -------------------

GARBAGE = [b"", b"{", b"[]", b"null", b"0", b'"x"', b"\xff\xfe", b"[" * 100000, b"{}",
           b'{"symbols": {}}', b'{"result": {"list": 5}}']


def check(raws):
    assert isinstance(raws, list)
    for raw in raws:
        assert type(raw) is RawInstrument and isinstance(raw.symbol, str)


@pytest.mark.parametrize("name", NAMES)
def test_garbage_raises_venue_error_or_gives_nothing(name):
    for body in GARBAGE:
        try:
            raws = parse(name, body)
        except VenueError:
            continue
        check(raws)
        assert instruments.build_specs(raws, ["BTCUSDT"])[0] == {}


@pytest.mark.parametrize("name", NAMES)
def test_every_truncation_and_trailing_bytes_raise_venue_error(name):
    body = SAMPLES[name][0]
    for n in range(len(body)):          # as if it arrived byte by byte and stopped
        with pytest.raises(VenueError):
            parse(name, body[:n])
    for trailer in (b"x", b"}", b"{}", b"\x00"):
        with pytest.raises(VenueError):
            parse(name, body + trailer)


@pytest.mark.parametrize("name", NAMES)
def test_mutated_samples_give_only_checked_specs_or_venue_error(name):
    rng = random.Random(20261205)
    body, expected = SAMPLES[name]
    seeds = [body.decode("utf-8")]
    parsed = 0
    for _ in range(1500):
        text = fuzz.mutate_text(rng, seeds, '0123456789.,:[]{}"-eE +abtf')
        try:
            raws = parse(name, text.encode("utf-8", "surrogatepass"))
        except VenueError:
            continue
        check(raws)
        specs, _refused, _missing = instruments.build_specs(raws, [r.symbol for r in raws])
        for spec in specs.values():
            assert 0 < spec.tick_size <= instruments.MAX_UNITS * E8
            assert 0 < spec.lot_size <= instruments.MAX_UNITS * E8
            assert 0 <= spec.min_qty and 0 <= spec.contract_size
            assert spec.trading in (0, 1, 2, 3)
            wire.pack_details(bytearray(72), 0, 1, 1, 0, spec.tick_size, spec.lot_size,
                              spec.min_qty, spec.contract_size, spec.trading)
        parsed += 1
    assert parsed > 0
