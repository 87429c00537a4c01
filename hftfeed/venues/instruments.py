"""Instrument metadata from each venue's public instruments endpoint: sans-I/O parsers and the
exact checks every value passes before it reaches the wire (``D`` messages, PROTOCOL.md).

Why one module for all venues: each parser is a dozen lines reading the venue's JSON shape
(docs/venues.md "Instrument metadata" names the endpoint and fields of each, with the date they
were read); what is shared, and must be exactly the same for every venue, is the conversion of
decimal text to ints scaled by 10^8 and the refusal of values that cannot be right. The request
paths are venue facts and live in the venue's registry entry (``VenueSpec.instruments``), which
names its parser here by dotted path.

A parser takes the response body (bytes) and returns a list of :class:`RawInstrument` with the
values still as the venue wrote them (text, or an int for a JSON integer); JSON floats are kept
as their literal text (``parse_float=str``), so Deribit's ``"tick_size": 0.5`` is exact too. A
body that is not the venue's documented shape raises :class:`VenueError`; one malformed entry
only loses that entry (it is reported as refused). :func:`build_specs` turns raw entries into
:class:`InstrumentSpec` (ints) for the configured symbols and says what it refused and why.

Pure: no asyncio, no socket, no float.
"""

import json
from collections import namedtuple

from hftfeed.codecs import wire
from hftfeed.codecs.fixed import SCALE, parse_decimal
from hftfeed.errors import FixedPointError, VenueError

#: Any size above this many whole units (a tick of a billion) is taken as a broken list.
MAX_UNITS = 10 ** 9

#: As the venue wrote them: text (or int) per field, None when the venue gives none.
RawInstrument = namedtuple("RawInstrument",
                           "symbol tick_size lot_size min_qty contract_size trading")

#: Exact ints scaled by 10^8 (min_qty/contract_size 0 = the venue states none) and a
#: wire.TRADING_* status: what a ``D`` message carries.
InstrumentSpec = namedtuple("InstrumentSpec",
                            "symbol tick_size lot_size min_qty contract_size trading")


def loads(body):
    """Parse a JSON body keeping every non-integer number as its literal text."""
    try:
        return json.loads(body, parse_float=str)
    except ValueError as exc:       # JSONDecodeError, UnicodeDecodeError
        raise VenueError("instrument list is not JSON: %s" % (exc,)) from None
    except RecursionError:
        raise VenueError("instrument list is not JSON: nested too deeply") from None


def scaled(value, what: str, positive: bool = True) -> int:
    """``value`` (decimal text or int) as an int scaled by 10^8, exactly; VenueError when it is
    not a number, not a whole number of 10^-8, negative, zero where it must be positive, or
    above MAX_UNITS."""
    if type(value) is int:
        value = str(value)
    if type(value) is not str:
        raise VenueError("%s is %r, not a decimal" % (what, value))
    try:
        number = parse_decimal(value)
    except FixedPointError as exc:
        raise VenueError("%s: %s" % (what, exc)) from None
    if number < 0 or (positive and number == 0) or number > MAX_UNITS * SCALE:
        raise VenueError("%s %r is out of range (must be %s and at most %d)"
                         % (what, value, "> 0" if positive else ">= 0", MAX_UNITS))
    return number


def power_of_ten(decimals, what: str) -> str:
    """``"0.0001"`` for 4 decimals: venues that state a precision instead of a step size."""
    if type(decimals) is str and decimals.isdigit():
        decimals = int(decimals)
    if type(decimals) is not int or not 0 <= decimals <= 18:
        raise VenueError("%s is %r, not a number of decimals" % (what, decimals))
    return "1e-%d" % decimals


def build_specs(raws, wanted):
    """(specs, refused, missing) for the configured symbols ``wanted`` (venue spelling).

    ``specs``: symbol -> InstrumentSpec; ``refused``: [(symbol, reason)] for wanted symbols whose
    entry has a value that cannot be right; ``missing``: wanted symbols the list does not name
    (likely a typo in the config, or an instrument the venue has delisted)."""
    wanted = set(wanted)
    specs, refused = {}, []
    for raw in raws:
        if raw.symbol not in wanted or raw.symbol in specs:
            continue
        try:
            specs[raw.symbol] = spec_of(raw)
        except VenueError as exc:
            refused.append((raw.symbol, str(exc)))
    refused_names = {name for name, _ in refused}
    missing = sorted(s for s in wanted if s not in specs and s not in refused_names)
    return specs, refused, missing


def spec_of(raw) -> InstrumentSpec:
    """One RawInstrument checked and converted (VenueError names the bad field)."""
    if raw.tick_size is None or raw.lot_size is None:
        raise VenueError("entry malformed or without a tick or lot size")
    tick = scaled(raw.tick_size, "tick size")
    lot = scaled(raw.lot_size, "lot size")
    min_qty = 0 if raw.min_qty is None else scaled(raw.min_qty, "minimum quantity", False)
    contract = 0 if raw.contract_size is None else scaled(raw.contract_size, "contract size")
    return InstrumentSpec(raw.symbol, tick, lot, min_qty, contract, raw.trading)


def _entries(container, key, what):
    items = container.get(key) if isinstance(container, dict) else None
    if not isinstance(items, list):
        raise VenueError("%s: no %r list in the response" % (what, key))
    return items


def _each(items, read):
    """RawInstrument per entry; an entry of the wrong shape becomes one that fails build_specs
    (so a wanted symbol with a broken entry is reported, not silently missing)."""
    out = []
    for item in items:
        if not isinstance(item, dict):
            continue
        try:
            out.append(read(item))
        except (KeyError, TypeError, AttributeError, VenueError) as exc:
            symbol = item.get("symbol") or item.get("instId") or item.get("product_id") \
                or item.get("instrument_name")
            if isinstance(symbol, str):     # tick None: refused as a malformed entry
                out.append(RawInstrument(symbol, None, None, None, None, wire.TRADING_UNKNOWN))
    return out


def _status(table, value, default=wire.TRADING_RESTRICTED):
    return table.get(value, default) if isinstance(value, str) else wire.TRADING_UNKNOWN


# -- Binance (spot /api/v3, USD-M /fapi/v1, COIN-M /dapi/v1 exchangeInfo) ---------------------

_BINANCE_STATUS = {"TRADING": wire.TRADING_OPEN, "BREAK": wire.TRADING_CLOSED,
                   "END_OF_DAY": wire.TRADING_CLOSED, "DELIVERED": wire.TRADING_CLOSED,
                   "CLOSE": wire.TRADING_CLOSED, "SETTLING": wire.TRADING_CLOSED}


def parse_binance(body) -> list:
    """``symbols[]``: PRICE_FILTER.tickSize, LOT_SIZE.stepSize / minQty, ``status`` (spot,
    USD-M) or ``contractStatus`` and ``contractSize`` (COIN-M)."""
    def read(item):
        filters = {f.get("filterType"): f for f in item["filters"] if isinstance(f, dict)}
        price, lot = filters["PRICE_FILTER"], filters["LOT_SIZE"]
        status = item.get("status", item.get("contractStatus"))
        contract = item.get("contractSize")
        return RawInstrument(item["symbol"], price["tickSize"], lot["stepSize"],
                             lot.get("minQty"), contract, _status(_BINANCE_STATUS, status))
    return _each(_entries(loads(body), "symbols", "Binance exchangeInfo"), read)


# -- Bybit v5 /v5/market/instruments-info ------------------------------------------------------

_BYBIT_STATUS = {"Trading": wire.TRADING_OPEN, "Closed": wire.TRADING_CLOSED}


def parse_bybit(body) -> list:
    """``result.list[]``: priceFilter.tickSize, lotSizeFilter.qtyStep (linear, inverse) or
    .basePrecision (spot), lotSizeFilter.minOrderQty, ``status``."""
    doc = loads(body)
    if not isinstance(doc, dict) or doc.get("retCode") != 0:
        raise VenueError("Bybit instruments-info: retCode %r" % (
            doc.get("retCode") if isinstance(doc, dict) else doc,))

    def read(item):
        lot = item["lotSizeFilter"]
        step = lot.get("qtyStep", lot.get("basePrecision"))
        return RawInstrument(item["symbol"], item["priceFilter"]["tickSize"], step,
                             lot.get("minOrderQty"), None, _status(_BYBIT_STATUS, item["status"]))
    return _each(_entries(doc.get("result"), "list", "Bybit instruments-info"), read)


# -- OKX /api/v5/public/instruments -----------------------------------------------------------

_OKX_STATUS = {"live": wire.TRADING_OPEN, "expired": wire.TRADING_CLOSED}


def parse_okx(body) -> list:
    """``data[]``: tickSz, lotSz, minSz, ctVal x ctMult (swaps and futures; empty on spot),
    ``state``."""
    doc = loads(body)
    if not isinstance(doc, dict) or doc.get("code") != "0":
        raise VenueError("OKX instruments: code %r" % (
            doc.get("code") if isinstance(doc, dict) else doc,))

    def read(item):
        contract = None
        if item.get("ctVal"):
            contract = _product(item["ctVal"], item.get("ctMult") or "1")
        return RawInstrument(item["instId"], item["tickSz"], item["lotSz"], item.get("minSz"),
                             contract, _status(_OKX_STATUS, item["state"]))
    return _each(_entries(doc, "data", "OKX instruments"), read)


def _product(a, b) -> str:
    """a x b of two decimal strings, exactly, as decimal text (ints scaled by 10^8 each)."""
    value = scaled(a, "contract value") * scaled(b, "contract multiplier")
    whole, frac = divmod(value, SCALE * SCALE)
    return "%d.%016d" % (whole, frac)


# -- Coinbase Advanced Trade /api/v3/brokerage/market/products ---------------------------------

def parse_coinbase(body) -> list:
    """``products[]``: price_increment, base_increment, base_min_size,
    future_product_details.contract_size (futures), ``status`` and the trading flags."""
    def read(item):
        details = item.get("future_product_details")
        contract = details.get("contract_size") if isinstance(details, dict) else None
        status = item["status"]
        if not isinstance(status, str) or item.get("is_disabled") is True:
            trading = wire.TRADING_CLOSED if item.get("is_disabled") is True \
                else wire.TRADING_UNKNOWN
        elif status.lower() != "online":
            trading = wire.TRADING_CLOSED
        elif item.get("trading_disabled") or item.get("cancel_only") or \
                item.get("limit_only") or item.get("post_only"):
            trading = wire.TRADING_RESTRICTED
        else:
            trading = wire.TRADING_OPEN
        return RawInstrument(item["product_id"], item["price_increment"],
                             item["base_increment"], item.get("base_min_size"),
                             contract or None, trading)
    return _each(_entries(loads(body), "products", "Coinbase products"), read)


# -- Kraken /0/public/AssetPairs ---------------------------------------------------------------

_KRAKEN_STATUS = {"online": wire.TRADING_OPEN, "delisted": wire.TRADING_CLOSED}
# WebSocket v2 (and so the config) spells Bitcoin BTC and Dogecoin DOGE; AssetPairs' wsname
# keeps the v1 names XBT and XDG.
_KRAKEN_V2_NAMES = {"XBT": "BTC", "XDG": "DOGE"}


def parse_kraken(body) -> list:
    """``result{pair: {...}}``: wsname (as the v2 symbol), tick_size, 10^-lot_decimals,
    ordermin, ``status``."""
    doc = loads(body)
    if not isinstance(doc, dict) or doc.get("error") or not isinstance(doc.get("result"), dict):
        raise VenueError("Kraken AssetPairs: error %r" % (
            doc.get("error") if isinstance(doc, dict) else doc,))

    def read(item):
        base, _, quote = item["wsname"].partition("/")
        symbol = "%s/%s" % (_KRAKEN_V2_NAMES.get(base, base), _KRAKEN_V2_NAMES.get(quote, quote))
        return RawInstrument(symbol, item["tick_size"],
                             power_of_ten(item["lot_decimals"], "lot_decimals"),
                             item.get("ordermin"), None,
                             _status(_KRAKEN_STATUS, item.get("status", "online")))
    return _each([v for v in doc["result"].values() if isinstance(v, dict) and "wsname" in v],
                 read)


# -- Deribit /api/v2/public/get_instruments ----------------------------------------------------

def parse_deribit(body) -> list:
    """``result[]``: instrument_name, tick_size, min_trade_amount (the amount step and minimum),
    contract_size, is_active. Numbers are JSON numbers: kept as their literal text."""
    def read(item):
        active = item["is_active"]
        trading = wire.TRADING_OPEN if active is True else \
            wire.TRADING_RESTRICTED if active is False else wire.TRADING_UNKNOWN
        return RawInstrument(item["instrument_name"], item["tick_size"],
                             item["min_trade_amount"], item["min_trade_amount"],
                             item.get("contract_size"), trading)
    return _each(_entries(loads(body), "result", "Deribit get_instruments"), read)


# -- Bitget v2 /api/v2/spot/public/symbols and /api/v2/mix/market/contracts ----------------------

_BITGET_SPOT_STATUS = {"online": wire.TRADING_OPEN, "offline": wire.TRADING_CLOSED}
_BITGET_MIX_STATUS = {"normal": wire.TRADING_OPEN, "off": wire.TRADING_CLOSED}


def _bitget_data(body, what):
    doc = loads(body)
    if not isinstance(doc, dict) or doc.get("code") != "00000":
        raise VenueError("%s: code %r" % (what, doc.get("code") if isinstance(doc, dict) else doc))
    return _entries(doc, "data", what)


def parse_bitget_spot(body) -> list:
    """``data[]``: 10^-pricePrecision, 10^-quantityPrecision, minTradeAmount, ``status``."""
    def read(item):
        return RawInstrument(item["symbol"], power_of_ten(item["pricePrecision"], "pricePrecision"),
                             power_of_ten(item["quantityPrecision"], "quantityPrecision"),
                             item.get("minTradeAmount"), None,
                             _status(_BITGET_SPOT_STATUS, item["status"]))
    return _each(_bitget_data(body, "Bitget spot symbols"), read)


def parse_bitget_futures(body) -> list:
    """``data[]``: priceEndStep x 10^-pricePlace, sizeMultiplier, minTradeNum, symbolStatus."""
    def read(item):
        tick = _product(item["priceEndStep"], power_of_ten(item["pricePlace"], "pricePlace"))
        return RawInstrument(item["symbol"], tick, item["sizeMultiplier"],
                             item.get("minTradeNum"), None,
                             _status(_BITGET_MIX_STATUS, item["symbolStatus"]))
    return _each(_bitget_data(body, "Bitget contracts"), read)
