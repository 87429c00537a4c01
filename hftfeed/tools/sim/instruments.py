"""The simulator's instruments endpoints: each venue's instrument list in that venue's JSON shape.

The values are the simulator's own (:func:`truth`: the engine's tick and lot of each symbol, a
minimum quantity and, for derivatives, a contract size), written the way the venue writes them
(decimal strings, precisions, Deribit's JSON numbers, Kraken's ``XBT`` for Bitcoin), so a test
can compare what the daemon publishes in ``D`` messages with :func:`truth`. The paths come from
the venue's registry entry; the shapes are written here from the venues' documentation, never
from the daemon's parsers (hftfeed/venues/instruments.py), which this module must not import.

Faults (``faults.py``): ``instruments_status`` answers with an HTTP error, ``instruments_malformed``
with a 200 whose body is not JSON.
"""

import json
import re
import time

from hftfeed.tools.sim import decimals
from hftfeed.tools.sim.market import spec_for

SCALE = decimals.SCALE
OPEN = 1                    # wire.TRADING_OPEN (the sim imports nothing of the daemon's codecs)
RESTRICTED = 2
HALTED_SYMBOL = {"kraken": "ZZZ/USD", "okx": "ZZZ-USDT", "coinbase": "ZZZ-USD",
                 "deribit": "ZZZ-PERPETUAL"}   # an extra, not-trading entry (others: "ZZZUSDT")
_NUMBER = re.compile(r'"#(-?[0-9.]+)"')


def truth(venue, symbol):
    """(tick, lot, min_qty, contract_size, trading) of ``symbol`` as the simulator lists it, as
    ints scaled by 10^8 (0 = not stated): what a ``D`` message must carry."""
    spec = spec_for(symbol)
    tick, lot = spec.tick_scaled, spec.lot_scaled
    min_qty = lot if venue == "deribit" else 2 * lot
    return tick, lot, min_qty, _contract(venue, symbol), OPEN


def _contract(venue, symbol):
    if venue == "binance-coinm":
        return (100 if symbol.startswith("BTC") else 10) * SCALE
    if venue == "okx" and _okx_type(symbol) != "SPOT":
        return SCALE // 100                                 # ctVal 0.01 x ctMult 1
    if venue == "deribit":
        return SCALE if _deribit_kind(symbol) == "option" else 10 * SCALE
    return 0


def _okx_type(symbol):
    parts = symbol.split("-")
    if parts[-1] == "SWAP":
        return "SWAP"
    return "FUTURES" if len(parts) == 3 else "SPOT"


def _deribit_kind(symbol):
    return "option" if symbol.endswith(("-C", "-P")) else "future"


def _query(text):
    out = {}
    for part in text.split("&"):
        key, _, value = part.partition("=")
        out[key] = value
    return out


def body(venue, symbols, query):
    """The response body of the venue's instruments endpoint for ``symbols`` (plus one extra
    instrument that is not trading, as real lists have), filtered by ``query`` like the venue."""
    args = _query(query)
    d = decimals.shortest
    rows = []
    extra = HALTED_SYMBOL.get(venue, "ZZZUSDT")
    for symbol in list(symbols) + [extra]:
        tick, lot, min_qty, contract, _ = truth(venue, symbol)
        rows.append((symbol, tick, lot, min_qty, contract, symbol != extra))
    if venue in ("binance", "binance-usdm", "binance-coinm"):
        out = []
        for symbol, tick, lot, min_qty, contract, live in rows:
            item = {"symbol": symbol, "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": d(tick), "maxPrice": "1000000",
                 "tickSize": decimals.fixed(8)(tick)},
                {"filterType": "LOT_SIZE", "minQty": d(min_qty), "maxQty": "9000",
                 "stepSize": decimals.fixed(8)(lot)},
                {"filterType": "MIN_NOTIONAL", "notional": "5"}]}
            if venue == "binance-coinm":
                item.update(pair=symbol.split("_")[0], contractType="PERPETUAL",
                            contractStatus="TRADING" if live else "PENDING_TRADING",
                            contractSize="#%d" % (contract // SCALE))
            else:
                item["status"] = "TRADING" if live else "HALT"
            out.append(item)
        doc = {"timezone": "UTC", "serverTime": time.time_ns() // 1000000, "rateLimits": [],
               "exchangeFilters": [], "symbols": out}
    elif venue in ("bybit", "bybit-spot", "bybit-inverse"):
        category = {"bybit": "linear", "bybit-spot": "spot", "bybit-inverse": "inverse"}[venue]
        if args.get("category") != category:
            return 200, _dumps({"retCode": 10001, "retMsg": "Illegal category", "result": {},
                                "retExtInfo": {}, "time": time.time_ns() // 1000000})
        out = []
        for symbol, tick, lot, min_qty, contract, live in rows:
            size = {"minOrderQty": d(min_qty), "maxOrderQty": "1000"}
            size["basePrecision" if category == "spot" else "qtyStep"] = d(lot)
            out.append({"symbol": symbol, "status": "Trading" if live else "PreLaunch",
                        "priceFilter": {"minPrice": d(tick), "maxPrice": "199999",
                                        "tickSize": d(tick)}, "lotSizeFilter": size})
        doc = {"retCode": 0, "retMsg": "OK", "result": {"category": category, "list": out,
                                                        "nextPageCursor": ""},
               "retExtInfo": {}, "time": time.time_ns() // 1000000}
    elif venue == "okx":
        out = []
        for symbol, tick, lot, min_qty, contract, live in rows:
            kind = _okx_type(symbol)
            if args.get("instType") != kind:
                continue
            out.append({"instType": kind, "instId": symbol, "tickSz": d(tick), "lotSz": d(lot),
                        "minSz": d(min_qty), "ctVal": d(contract) if contract else "",
                        "ctMult": "1" if contract else "", "state": "live" if live else "suspend"})
        doc = {"code": "0", "msg": "", "data": out}
    elif venue == "coinbase":
        doc = {"products": [
            {"product_id": symbol, "price_increment": d(tick), "base_increment": d(lot),
             "base_min_size": d(min_qty), "status": "online", "trading_disabled": not live,
             "cancel_only": False, "limit_only": False, "post_only": False,
             "is_disabled": False, "product_type": "SPOT"}
            for symbol, tick, lot, min_qty, contract, live in rows], "num_products": len(rows)}
    elif venue == "kraken":
        result = {}
        for symbol, tick, lot, min_qty, contract, live in rows:
            base, _, quote = symbol.partition("/")
            base = {"BTC": "XBT", "DOGE": "XDG"}.get(base, base)     # AssetPairs' v1 names
            result[base + quote] = {
                "altname": base + quote, "wsname": "%s/%s" % (base, quote),
                "pair_decimals": decimals.decimals_for(tick),
                "lot_decimals": decimals.decimals_for(lot), "lot_multiplier": 1,
                "ordermin": d(min_qty), "costmin": "0.5", "tick_size": d(tick),
                "status": "online" if live else "cancel_only"}
        doc = {"error": [], "result": result}
    elif venue == "deribit":
        out = []
        for symbol, tick, lot, min_qty, contract, live in rows:
            if _deribit_kind(symbol) != args.get("kind"):
                continue
            out.append({"instrument_name": symbol, "kind": _deribit_kind(symbol),
                        "tick_size": "#" + d(tick), "min_trade_amount": "#" + d(lot),
                        "contract_size": "#" + d(contract), "is_active": live})
        doc = {"jsonrpc": "2.0", "result": out, "usIn": 0, "usOut": 0, "usDiff": 0,
               "testnet": False}
    elif venue == "bitget":
        doc = {"code": "00000", "msg": "success", "requestTime": time.time_ns() // 1000000,
               "data": [{"symbol": symbol, "pricePrecision": str(decimals.decimals_for(tick)),
                         "quantityPrecision": str(decimals.decimals_for(lot)),
                         "minTradeAmount": d(min_qty), "status": "online" if live else "gray"}
                        for symbol, tick, lot, min_qty, contract, live in rows]}
    elif venue == "bitget-futures":
        if args.get("productType") != "USDT-FUTURES":
            return 400, _dumps({"code": "40019", "msg": "Parameter productType error",
                                "requestTime": time.time_ns() // 1000000, "data": None})
        out = []
        for symbol, tick, lot, min_qty, contract, live in rows:
            places = decimals.decimals_for(tick)
            out.append({"symbol": symbol, "pricePlace": str(places),
                        "priceEndStep": str(tick // 10 ** (8 - places)),
                        "volumePlace": str(decimals.decimals_for(lot)),
                        "sizeMultiplier": d(lot), "minTradeNum": d(min_qty),
                        "symbolStatus": "normal" if live else "maintain"})
        doc = {"code": "00000", "msg": "success", "requestTime": time.time_ns() // 1000000,
               "data": out}
    else:
        return 404, _dumps({"error": "no instruments endpoint for %s" % venue})
    return 200, _dumps(doc)


def _dumps(doc):
    """JSON with "#1.5" strings written as the number 1.5 (Deribit's numeric fields)."""
    return _NUMBER.sub(r"\1", json.dumps(doc, separators=(",", ":"))).encode("ascii")
