"""The one table of venues: every fact about a venue that more than one module needs.

Pure data on purpose. It imports no adapter (the adapter and the simulator dialect are named by
dotted path and loaded on first use), so the simulator (``hftfeed/tools/sim``), which must never
import the daemon's adapters or core, can read the same ids, names, URLs paths and symbol syntax
the daemon uses, and the monitor can name a venue id without loading any venue code.

Adding a venue = its adapter module, its simulator dialect, one :class:`VenueSpec` below (and the
next free wire id: PROTOCOL.md "Venue ids"; ids are never reused). ``tests/test_venue_registry.py``
fails while any of those, the demo entry or the docs rows (README.md, docs/config.md: generated
by :func:`doc_table`) is missing.
"""

import importlib
import re
from collections import namedtuple
from urllib.parse import urlsplit

VenueSpec = namedtuple("VenueSpec", (
    "wire_id",          # u8 venue id on the wire (PROTOCOL.md "Venue ids"); never reused
    "name",             # the config's "venue" value and the simulator's --venue
    "display_name",     # for humans: docs, the monitor
    "adapter",          # "module:Class" of the daemon's adapter (hftfeed/venues/)
    "sim_dialect",      # module of the simulator's dialect (hftfeed/tools/sim/)
    "ws_url",           # production WebSocket endpoint (the config default)
    "rest_url",         # production REST endpoint (the config default)
    "symbol_re",        # compiled regex a configured symbol must match (case-insensitive)
    "symbol_example",   # what a symbol looks like, for error messages and docs
    "demo_symbols",     # what `hftfeed.py demo` subscribes by default
    "book_sync",        # docs: how the book is synchronised
    "notes",            # docs: streams and keepalive
    "instruments",      # InstrumentsEndpoint (tick/lot/... at start), or a str: why there is none
))

#: A venue's public instruments endpoint: ``paths`` (each GET on rest_url; the lists are merged)
#: and ``parser`` ("module:function", bytes -> [RawInstrument]; hftfeed/venues/instruments.py).
InstrumentsEndpoint = namedtuple("InstrumentsEndpoint", ("paths", "parser"))
_INSTRUMENTS = "hftfeed.venues.instruments:"

# Exchange symbols are short upper-case alphanumerics; OKX instrument ids add dash-separated
# parts (BTC-USDT, BTC-USDT-SWAP, BTC-USD-250627). Anything else (BTC#USDT, BTC/USDT, spaces) is
# refused at start-up instead of producing a subscription the venue rejects at run time.
_PLAIN_SYMBOL = re.compile(r"\A[A-Z0-9]{2,20}\Z", re.IGNORECASE)
_DASHED_SYMBOL = re.compile(r"\A[A-Z0-9]{1,12}(-[A-Z0-9]{1,12}){1,3}\Z", re.IGNORECASE)
# Binance COIN-M contracts: the pair, "_", then PERP or the delivery date (BTCUSD_PERP,
# BTCUSD_261225).
# Deribit instruments: currency (BTC, BTC_USDC), then PERPETUAL or an expiry (27DEC26), then for
# options the strike and C/P (BTC-PERPETUAL, BTC-27DEC26, BTC-27DEC26-100000-C, XRP_USDC-...-1d5-P).
_DERIBIT_SYMBOL = re.compile(r"\A[A-Z0-9]{2,10}(_[A-Z0-9]{2,10})?-(PERPETUAL|[0-9]{1,2}[A-Z]{3}[0-9]{2})"
                             r"(-[0-9]+(D[0-9]+)?-[CP])?\Z", re.IGNORECASE)
_COINM_SYMBOL = re.compile(r"\A[A-Z0-9]{2,16}_(PERP|[0-9]{6})\Z", re.IGNORECASE)

# Kraken v2 pairs: base/quote (BTC/USD).
_SLASHED_SYMBOL = re.compile(r"\A[A-Z0-9]{1,12}/[A-Z0-9]{1,12}\Z", re.IGNORECASE)

VENUES = (
    VenueSpec(
        wire_id=1, name="binance", display_name="Binance spot",
        adapter="hftfeed.venues.binance:BinanceSpot", sim_dialect="hftfeed.tools.sim.binance",
        ws_url="wss://stream.binance.com:9443", rest_url="https://api.binance.com",
        symbol_re=_PLAIN_SYMBOL, symbol_example="BTCUSDT",
        demo_symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
        book_sync="REST snapshot + `U`/`u` diffs",
        notes="`@depth@100ms`, `@trade`, `@bookTicker`",
        instruments=InstrumentsEndpoint(
            ("/api/v3/exchangeInfo?showPermissionSets=false",), _INSTRUMENTS + "parse_binance")),
    VenueSpec(
        wire_id=2, name="binance-usdm", display_name="Binance USD-M futures",
        adapter="hftfeed.venues.binance_usdm:BinanceUsdm",
        sim_dialect="hftfeed.tools.sim.binance_usdm",
        ws_url="wss://fstream.binance.com", rest_url="https://fapi.binance.com",
        symbol_re=_PLAIN_SYMBOL, symbol_example="BTCUSDT", demo_symbols=("BTCUSDT", "ETHUSDT"),
        book_sync="REST snapshot + `pu` chain",
        notes="`/public` (depth, bookTicker) and `/market` (aggTrade) connections",
        instruments=InstrumentsEndpoint(
            ("/fapi/v1/exchangeInfo",), _INSTRUMENTS + "parse_binance")),
    VenueSpec(
        wire_id=3, name="bybit", display_name="Bybit v5 linear",
        adapter="hftfeed.venues.bybit:Bybit", sim_dialect="hftfeed.tools.sim.bybit",
        ws_url="wss://stream.bybit.com/v5/public/linear", rest_url="https://api.bybit.com",
        symbol_re=_PLAIN_SYMBOL, symbol_example="BTCUSDT", demo_symbols=("BTCUSDT", "ETHUSDT"),
        book_sync="in-stream snapshot + `u`+1 deltas",
        notes="`u == 1` restart snapshot; `{\"op\":\"ping\"}` keepalive",
        instruments=InstrumentsEndpoint(
            ("/v5/market/instruments-info?category=linear&limit=1000",),
            _INSTRUMENTS + "parse_bybit")),
    VenueSpec(
        wire_id=4, name="okx", display_name="OKX v5 public",
        adapter="hftfeed.venues.okx:Okx", sim_dialect="hftfeed.tools.sim.okx",
        ws_url="wss://ws.okx.com:8443/ws/v5/public", rest_url="https://www.okx.com",
        symbol_re=_DASHED_SYMBOL, symbol_example="BTC-USDT-SWAP",
        demo_symbols=("BTC-USDT-SWAP", "ETH-USDT-SWAP"),
        book_sync="in-stream snapshot + `seqId`/`prevSeqId`",
        notes="CRC32 checksum of the top 25 verified when non-zero; text `ping`; spot "
              "(`BTC-USDT`), swaps and futures on the one endpoint",
        instruments=InstrumentsEndpoint(
            ("/api/v5/public/instruments?instType=SPOT",
             "/api/v5/public/instruments?instType=SWAP",
             "/api/v5/public/instruments?instType=FUTURES"), _INSTRUMENTS + "parse_okx")),
    VenueSpec(
        wire_id=5, name="coinbase", display_name="Coinbase Advanced Trade",
        adapter="hftfeed.venues.coinbase:Coinbase", sim_dialect="hftfeed.tools.sim.coinbase",
        ws_url="wss://advanced-trade-ws.coinbase.com", rest_url="https://api.coinbase.com",
        symbol_re=_DASHED_SYMBOL, symbol_example="BTC-USD", demo_symbols=("BTC-USD", "ETH-USD"),
        book_sync="in-stream `level2` snapshot; `sequence_num` per connection (a gap resyncs "
                  "the connection's instruments)",
        notes="`level2`, `market_trades`, `ticker`; `heartbeats` keep it open",
        instruments=InstrumentsEndpoint(
            ("/api/v3/brokerage/market/products",), _INSTRUMENTS + "parse_coinbase")),
    VenueSpec(
        wire_id=6, name="kraken", display_name="Kraken spot (WebSocket v2)",
        adapter="hftfeed.venues.kraken:Kraken", sim_dialect="hftfeed.tools.sim.kraken",
        ws_url="wss://ws.kraken.com/v2", rest_url="https://api.kraken.com",
        symbol_re=_SLASHED_SYMBOL, symbol_example="BTC/USD", demo_symbols=("BTC/USD", "ETH/USD"),
        book_sync="in-stream `book` snapshot; CRC32 of the top 10 is the only guard (no ids)",
        notes="`book` (depth 25), `trade`, `ticker` (bbo); `instrument` for precisions",
        instruments=InstrumentsEndpoint(
            ("/0/public/AssetPairs",), _INSTRUMENTS + "parse_kraken")),
    # More markets of the venues above (docs/venues.md "Markets"): a market with its own
    # endpoint is its own entry and wire id (symbols repeat across markets: BTCUSDT is a Bybit
    # spot pair and a linear perpetual with different books), sharing the venue's adapter and
    # simulator dialect, which read the per-market facts from their own market tables.
    VenueSpec(
        wire_id=7, name="binance-coinm", display_name="Binance COIN-M futures",
        adapter="hftfeed.venues.binance_usdm:BinanceCoinm",
        sim_dialect="hftfeed.tools.sim.binance_usdm",
        ws_url="wss://dstream.binance.com", rest_url="https://dapi.binance.com",
        symbol_re=_COINM_SYMBOL, symbol_example="BTCUSD_PERP",
        demo_symbols=("BTCUSD_PERP", "ETHUSD_PERP"),
        book_sync="REST snapshot + `pu` chain",
        notes="one combined-stream connection (no URL split); `ps` pair field",
        instruments=InstrumentsEndpoint(
            ("/dapi/v1/exchangeInfo",), _INSTRUMENTS + "parse_binance")),
    VenueSpec(
        wire_id=8, name="bybit-spot", display_name="Bybit v5 spot",
        adapter="hftfeed.venues.bybit:BybitSpot", sim_dialect="hftfeed.tools.sim.bybit",
        ws_url="wss://stream.bybit.com/v5/public/spot", rest_url="https://api.bybit.com",
        symbol_re=_PLAIN_SYMBOL, symbol_example="BTCUSDT", demo_symbols=("BTCUSDT", "ETHUSDT"),
        book_sync="in-stream snapshot + `u`+1 deltas",
        notes="as linear; pong is `\"op\":\"pong\"`, trade ids are decimal",
        instruments=InstrumentsEndpoint(
            ("/v5/market/instruments-info?category=spot",), _INSTRUMENTS + "parse_bybit")),
    VenueSpec(
        wire_id=9, name="bybit-inverse", display_name="Bybit v5 inverse",
        adapter="hftfeed.venues.bybit:BybitInverse", sim_dialect="hftfeed.tools.sim.bybit",
        ws_url="wss://stream.bybit.com/v5/public/inverse", rest_url="https://api.bybit.com",
        symbol_re=_PLAIN_SYMBOL, symbol_example="BTCUSD", demo_symbols=("BTCUSD", "ETHUSD"),
        book_sync="in-stream snapshot + `u`+1 deltas",
        notes="as linear (coin-margined contracts)",
        instruments=InstrumentsEndpoint(
            ("/v5/market/instruments-info?category=inverse&limit=1000",),
            _INSTRUMENTS + "parse_bybit")),
    VenueSpec(
        wire_id=10, name="deribit", display_name="Deribit",
        adapter="hftfeed.venues.deribit:Deribit", sim_dialect="hftfeed.tools.sim.deribit",
        ws_url="wss://www.deribit.com/ws/api/v2", rest_url="https://www.deribit.com",
        symbol_re=_DERIBIT_SYMBOL, symbol_example="BTC-27DEC26-100000-C",
        demo_symbols=("BTC-PERPETUAL", "BTC-27DEC26-100000-C", "ETH-27DEC26"),
        book_sync="in-stream snapshot + `change_id`/`prev_change_id` chain",
        notes="JSON-RPC; `public/set_heartbeat`, `test_request` answered with `public/test`; "
              "futures, perpetuals, options",
        instruments=InstrumentsEndpoint(
            ("/api/v2/public/get_instruments?currency=any&kind=future",
             "/api/v2/public/get_instruments?currency=any&kind=option"),
            _INSTRUMENTS + "parse_deribit")),
    VenueSpec(
        wire_id=11, name="bitget", display_name="Bitget v2 spot",
        adapter="hftfeed.venues.bitget:Bitget", sim_dialect="hftfeed.tools.sim.bitget",
        ws_url="wss://ws.bitget.com/v2/ws/public", rest_url="https://api.bitget.com",
        symbol_re=_PLAIN_SYMBOL, symbol_example="BTCUSDT", demo_symbols=("BTCUSDT", "ETHUSDT"),
        book_sync="in-stream snapshot + `seq`/`pseq` chain",
        notes="CRC32 checksum of the top 25 verified when non-zero; text `ping`",
        instruments=InstrumentsEndpoint(
            ("/api/v2/spot/public/symbols",), _INSTRUMENTS + "parse_bitget_spot")),
    VenueSpec(
        wire_id=12, name="bitget-futures", display_name="Bitget v2 USDT-M futures",
        adapter="hftfeed.venues.bitget:BitgetFutures", sim_dialect="hftfeed.tools.sim.bitget",
        ws_url="wss://ws.bitget.com/v2/ws/public", rest_url="https://api.bitget.com",
        symbol_re=_PLAIN_SYMBOL, symbol_example="BTCUSDT", demo_symbols=("BTCUSDT", "ETHUSDT"),
        book_sync="in-stream snapshot + `seq`/`pseq` chain",
        notes="as spot with `instType` USDT-FUTURES",
        instruments=InstrumentsEndpoint(
            ("/api/v2/mix/market/contracts?productType=USDT-FUTURES",),
            _INSTRUMENTS + "parse_bitget_futures")),
)

#: Wire ids that are assigned but have no adapter here (PROTOCOL.md lists them too) -> the name
#: a receiver shows for them.
RESERVED_WIRE_IDS = {255: "sim"}
WIRE_ID_SIM = 255       # the monitor's self-test and a simulator speaking no real venue's protocol

BY_NAME = {spec.name: spec for spec in VENUES}
BY_WIRE_ID = {spec.wire_id: spec for spec in VENUES}
NAMES = tuple(spec.name for spec in VENUES)


def spec(name: str) -> VenueSpec:
    """The entry for a config "venue" value; KeyError when there is none."""
    return BY_NAME[name]


def wire_name(wire_id: int) -> str:
    """A receiver's name for a wire venue id ("binance", "coinbase", "sim"), or None if unknown."""
    entry = BY_WIRE_ID.get(wire_id)
    return entry.name if entry is not None else RESERVED_WIRE_IDS.get(wire_id)


def ws_path(name: str) -> str:
    """The path of the venue's WebSocket endpoint ("/ws/v5/public", "" for Binance): the
    simulator serves the same path under its own host, so a feed's ws_url is base + this."""
    return urlsplit(BY_NAME[name].ws_url).path


def _load(dotted):
    module_name, _, attr = dotted.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr) if attr else module


_adapters = {}


def adapter(name: str):
    """The adapter class of a venue, imported on first use (KeyError for an unknown name)."""
    cls = _adapters.get(name)
    if cls is None:
        cls = _adapters[name] = _load(BY_NAME[name].adapter)
    return cls


def sim_dialect(name: str):
    """The simulator's dialect module of a venue (imported on first use)."""
    return _load(BY_NAME[name].sim_dialect)


def instruments_parser(name: str):
    """The parser of the venue's instrument list (bytes -> [RawInstrument]), imported on first
    use; KeyError for an unknown name, TypeError for a venue without an instruments endpoint."""
    endpoint = BY_NAME[name].instruments
    if isinstance(endpoint, str):
        raise TypeError("%s has no instruments endpoint: %s" % (name, endpoint))
    return _load(endpoint.parser)


def symbol_error(name: str, symbol: str) -> str:
    """None when ``symbol`` is valid for the venue, else what is wrong and what it should look like."""
    entry = BY_NAME[name]
    if entry.symbol_re.match(symbol) is None:
        return ("%r is not a %s symbol (expected something like %s)"
                % (symbol, entry.display_name, entry.symbol_example))
    return None


def doc_table() -> str:
    """The Markdown venue table of README.md and docs/config.md (a test keeps both equal to it)."""
    lines = ["| venue | id | book sync | notes | symbols look like |", "|---|---|---|---|---|"]
    for entry in VENUES:
        lines.append("| `%s` (%s) | %d | %s | %s | `%s` |" % (
            entry.name, entry.display_name, entry.wire_id, entry.book_sync, entry.notes,
            entry.symbol_example))
    return "\n".join(lines)
