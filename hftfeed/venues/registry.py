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

VenueSpec = namedtuple("VenueSpec", (
    "wire_id",          # u8 venue id on the wire (PROTOCOL.md "Venue ids"); never reused
    "name",             # the config's "venue" value and the simulator's --venue
    "display_name",     # for humans: docs, the monitor
    "adapter",          # "module:Class" of the daemon's adapter (hftfeed/venues/)
    "sim_dialect",      # module of the simulator's dialect (hftfeed/tools/sim/)
    "ws_url",           # production WebSocket endpoint (the config default)
    "rest_url",         # production REST endpoint (the config default)
    "sim_ws_path",      # path of the WebSocket endpoint under a simulator's base URL
    "symbol_re",        # compiled regex a configured symbol must match (case-insensitive)
    "symbol_example",   # what a symbol looks like, for error messages and docs
    "demo_symbols",     # what `hftfeed.py demo` subscribes by default
    "book_sync",        # docs: how the book is synchronised
    "notes",            # docs: streams and keepalive
))

# Exchange symbols are short upper-case alphanumerics; OKX instrument ids add dash-separated
# parts (BTC-USDT, BTC-USDT-SWAP, BTC-USD-250627). Anything else (BTC#USDT, BTC/USDT, spaces) is
# refused at start-up instead of producing a subscription the venue rejects at run time.
_PLAIN_SYMBOL = re.compile(r"\A[A-Z0-9]{2,20}\Z", re.IGNORECASE)
_DASHED_SYMBOL = re.compile(r"\A[A-Z0-9]{1,12}(-[A-Z0-9]{1,12}){1,3}\Z", re.IGNORECASE)

VENUES = (
    VenueSpec(1, "binance", "Binance spot", "hftfeed.venues.binance:BinanceSpot",
              "hftfeed.tools.sim.binance", "wss://stream.binance.com:9443",
              "https://api.binance.com", "", _PLAIN_SYMBOL, "BTCUSDT",
              ("BTCUSDT", "ETHUSDT", "SOLUSDT"), "REST snapshot + `U`/`u` diffs",
              "`@depth@100ms`, `@trade`, `@bookTicker`"),
    VenueSpec(2, "binance-usdm", "Binance USD-M futures",
              "hftfeed.venues.binance_usdm:BinanceUsdm", "hftfeed.tools.sim.binance_usdm",
              "wss://fstream.binance.com", "https://fapi.binance.com", "", _PLAIN_SYMBOL,
              "BTCUSDT", ("BTCUSDT", "ETHUSDT"), "REST snapshot + `pu` chain",
              "`/public` (depth, bookTicker) and `/market` (aggTrade) connections"),
    VenueSpec(3, "bybit", "Bybit v5 linear", "hftfeed.venues.bybit:Bybit",
              "hftfeed.tools.sim.bybit", "wss://stream.bybit.com/v5/public/linear",
              "https://api.bybit.com", "/v5/public/linear", _PLAIN_SYMBOL, "BTCUSDT",
              ("BTCUSDT", "ETHUSDT"), "in-stream snapshot + `u`+1 deltas",
              "`u == 1` restart snapshot; `{\"op\":\"ping\"}` keepalive"),
    VenueSpec(4, "okx", "OKX v5 public", "hftfeed.venues.okx:Okx",
              "hftfeed.tools.sim.okx", "wss://ws.okx.com:8443/ws/v5/public",
              "https://www.okx.com", "/ws/v5/public", _DASHED_SYMBOL, "BTC-USDT-SWAP",
              ("BTC-USDT-SWAP", "ETH-USDT-SWAP"), "in-stream snapshot + `seqId`/`prevSeqId`",
              "CRC32 checksum of the top 25 verified when non-zero; text `ping`"),
)

#: Wire ids that are assigned but have no adapter here (PROTOCOL.md lists them too), so a
#: receiver can still name them.
RESERVED_WIRE_IDS = {5: "Coinbase Exchange", 255: "simulator"}
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
    if entry is not None:
        return entry.name
    reserved = RESERVED_WIRE_IDS.get(wire_id)
    return None if reserved is None else reserved.split()[0].lower()


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
