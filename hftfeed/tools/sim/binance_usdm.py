"""The Binance USD-M futures dialect of the simulator: spot's sibling (pure, no I/O).

What differs from spot (``binance.py``), per Binance's USD-M futures docs ("Websocket Market
Streams", "Diff. Book Depth Streams", "Individual Symbol Book Ticker Streams", "Aggregate Trade
Streams", "How to manage a local order book correctly", "Order Book") and the real 2021 capture
(a recorded BINANCE_FUTURES capture):

* the URL split: ``/public/stream?streams=`` (and ``/public/ws/<name>``) carries the high
  frequency book streams ``@depth*`` and ``@bookTicker``; ``/market/...`` carries ``@aggTrade``
  (and klines, mark price ...); a stream asked for on the other path is accepted and stays
  silent. The unsplit ``/stream`` and ``/ws`` still carry everything;
* ``depthUpdate`` has ``T`` (transaction time) and ``pu`` (the previous event's ``u``), in the
  order ``e,E,T,s,U,u,pu,b,a``; futures update ids are not contiguous between events (other
  symbols use the ids in between), so ``U`` may exceed ``pu + 1``: a client must chain on ``pu``;
* ``bookTicker`` has ``e``, ``E`` and ``T``; ``aggTrade`` has no ``M``; there is no ``@trade``;
* prices and quantities carry the instrument's own precision (``"7.6110"``, ``"813"``), not 8
  decimals;
* a ping frame every 3 minutes, a disconnect without a pong within 10 minutes, and unsolicited
  pongs *do* keep a connection alive; 10 incoming messages a second; 1024 streams; 24 h;
* ``GET /fapi/v1/depth``: limit one of 5, 10, 20, 50, 100, 500, 1000 (default 500), weight
  2 / 5 / 10 / 20 for up to 50 / 100 / 500 / 1000, body ``{"lastUpdateId","E","T","bids","asks"}``;
  2400 request weight a minute.

COIN-M futures (``binance-coinm``) is the same dialect with its market's facts (``MARKETS``;
Binance's COIN-M docs, same pages): no URL split (``/public`` and ``/market`` are unknown
paths; ``/stream`` and ``/ws`` carry everything), ``ps`` (the pair, ``BTCUSD``) after ``s`` in
``depthUpdate`` and ``bookTicker``, ``GET /dapi/v1/depth`` answering
``{"lastUpdateId","symbol","pair","E","T","bids","asks"}`` with USD-M's limits and weights.

Update ids: the engine's ids (contiguous per symbol) are the truth; this dialect reports
``U = first id + 1`` when an event spans several ids, so the chain can only be followed through
``pu`` (the rule a futures client must implement). A snapshot's ``lastUpdateId`` is always the
``u`` of the last generated event, i.e. it lies inside the next applicable event's ``[U, u]``.
"""

from collections import namedtuple
from urllib.parse import parse_qs, unquote, urlsplit

from hftfeed.tools.sim import binance
from hftfeed.tools.sim.binance import (KIND_AGGTRADE, KIND_BOOKTICKER, KIND_DEPTH, KIND_OTHER,
                                 BinanceRequestError, StreamSession, WeightLimiter,
                                 error_body, rate_limit_body)
from hftfeed.tools.sim.decimals import decimals_for, fixed, level_list
from hftfeed.tools.sim.market import EV_DEPTH, SIDE_SELL, spec_for

VENUE = "binance-usdm"
MAX_STREAMS_PER_CONNECTION = 1024

_SUFFIX_KIND = {
    "depth@100ms": KIND_DEPTH,
    "depth": KIND_DEPTH,            # 250 ms on the venue; the same diff events here
    "depth@500ms": KIND_DEPTH,
    "aggTrade": KIND_AGGTRADE,
    "bookTicker": KIND_BOOKTICKER,
}
DEPTH_SUFFIXES = ("depth@100ms", "depth", "depth@500ms")
TRADE_SUFFIXES = ("aggTrade",)
QUOTE_SUFFIXES = ("bookTicker",)

ROUTE_PUBLIC = "/public"
ROUTE_MARKET = "/market"
ROUTE_ANY = ""
# Which stream kinds each route delivers (the 2026 URL split); the unsplit paths deliver all.
ROUTE_KINDS = {
    ROUTE_PUBLIC: frozenset((KIND_DEPTH, KIND_BOOKTICKER)),
    ROUTE_MARKET: frozenset((KIND_AGGTRADE,)),
}

RequestError = BinanceRequestError

#: What differs between the Binance futures markets this dialect serves (registry name -> facts).
Market = namedtuple("Market", ("venue", "url_split", "pair_field", "depth_path", "cheap_paths"))
MARKETS = {
    "binance-usdm": Market("binance-usdm", True, False, "/fapi/v1/depth",
                           ("/fapi/v1/ping", "/fapi/v1/time")),
    "binance-coinm": Market("binance-coinm", False, True, "/dapi/v1/depth",
                            ("/dapi/v1/ping", "/dapi/v1/time")),
}


def pair_of(symbol):
    """COIN-M's ``ps``: the contract's pair (``BTCUSD_PERP`` -> ``BTCUSD``)."""
    return symbol.partition("_")[0]


def parse_stream_name(name):
    """``(lowercase symbol, kind)`` of a futures stream name; ValueError if malformed."""
    return binance.parse_stream_name(name, _SUFFIX_KIND)


def parse_ws_target(target, url_split=True):
    """Map a WebSocket target to ``(route, combined, [stream names])``; raise ValueError.

    ``[/public|/market](/ws/<name>|/ws|/stream?streams=a/b|/stream)``; without ``url_split``
    (COIN-M) there is no ``/public`` or ``/market``.
    """
    parts = urlsplit(target)
    path = parts.path
    route = ROUTE_ANY
    for prefix in ((ROUTE_PUBLIC, ROUTE_MARKET) if url_split else ()):
        if path == prefix or path.startswith(prefix + "/"):
            route = prefix
            path = path[len(prefix):]
            break
    if path in ("/ws", "/ws/"):
        return route, False, []
    if path.startswith("/ws/"):
        names = [unquote(n) for n in path[4:].split("/") if n]
        for n in names:
            parse_stream_name(n)
        return route, False, names
    if path in ("/stream", "/stream/"):
        raw = parse_qs(parts.query, keep_blank_values=True).get("streams", [""])[0]
        names = [n for n in raw.split("/") if n]
        for n in names:
            parse_stream_name(n)
        return route, True, names
    raise ValueError("unknown WebSocket path %r" % (parts.path,))


def book_request(market, symbols):
    """``(path after the venue's WebSocket path, [texts to send])`` of a client reading every
    symbol's book stream (the simulator bench, ``hftfeed/tools/sim/bench.py``)."""
    route = ROUTE_PUBLIC if MARKETS[market].url_split else ""
    return route + binance.book_request(market, symbols)[0], []


def is_ws_path(target, url_split=True):
    try:
        parse_ws_target(target, url_split)
    except ValueError:
        return False
    return True


def symbol_of_stream(stream):
    return stream.partition("@")[0].upper()


class FuturesSession(StreamSession):
    """Spot's live request handling, plus the route: streams of the other route stay silent."""

    parse_name = staticmethod(parse_stream_name)

    def __init__(self, route, combined_mode, streams, max_streams=MAX_STREAMS_PER_CONNECTION):
        StreamSession.__init__(self, combined_mode, streams, max_streams)
        self.route = route

    def delivered(self):
        kinds = ROUTE_KINDS.get(self.route)
        if kinds is None:
            return self.streams
        return [s for s in self.streams if parse_stream_name(s)[1] in kinds]


def open_session(target, max_streams, url_split=True):
    route, combined_mode, streams = parse_ws_target(target, url_split)
    return FuturesSession(route, combined_mode, streams, max_streams)


# ---------------------------------------------------------------------- JSON formatting
class SymbolFormat(object):
    """An instrument's price and quantity strings, with its own precision (tick and lot)."""

    __slots__ = ("price", "qty", "levels")

    def __init__(self, symbol):
        spec = spec_for(symbol)
        price_decimals = decimals_for(spec.tick_scaled)
        qty_decimals = decimals_for(spec.lot_scaled)
        self.price = fixed(price_decimals)
        self.qty = fixed(qty_decimals)
        self.levels = level_list(price_decimals, qty_decimals)   # flat list -> JSON pairs


def depth_payload(fmt, symbol, first_id, last_id, prev_id, bids, asks, event_ms, extra="",
                  pair=None):
    """``pair`` (COIN-M): the ``ps`` field after ``s``."""
    sym = symbol if pair is None else '%s","ps":"%s' % (symbol, pair)
    return ('{"e":"depthUpdate","E":%d,"T":%d,"s":"%s","U":%d,"u":%d,"pu":%d,"b":[%s],"a":[%s]%s}'
            % (event_ms, event_ms - 1, sym, first_id, last_id, prev_id, fmt.levels(bids),
               fmt.levels(asks), extra))


def aggtrade_payload(fmt, symbol, trade_id, price, qty, side, event_ms):
    """One simulated trade is one aggregate (a = f = l); ``m``: the buyer was the maker."""
    return ('{"e":"aggTrade","E":%d,"a":%d,"s":"%s","p":"%s","q":"%s","f":%d,"l":%d,"T":%d,'
            '"m":%s}' % (event_ms, trade_id, symbol, fmt.price(price), fmt.qty(qty), trade_id,
                         trade_id, event_ms - 1, "true" if side == SIDE_SELL else "false"))


def bookticker_payload(fmt, symbol, update_id, bid_px, bid_qty, ask_px, ask_qty, event_ms,
                       pair=None):
    sym = symbol if pair is None else '%s","ps":"%s' % (symbol, pair)
    return ('{"e":"bookTicker","u":%d,"s":"%s","b":"%s","B":"%s","a":"%s","A":"%s","T":%d,"E":%d}'
            % (update_id, sym, fmt.price(bid_px), fmt.qty(bid_qty), fmt.price(ask_px),
               fmt.qty(ask_qty), event_ms - 1, event_ms))


def reported_first_id(first_id, last_id):
    """``U`` as reported: one past the engine's first id when the event spans several ids."""
    return first_id + 1 if last_id > first_id else first_id


# ---------------------------------------------------------------------- REST
DEPTH_PATH = "/fapi/v1/depth"
CHEAP_PATHS = ("/fapi/v1/ping", "/fapi/v1/time")
DEFAULT_DEPTH_LIMIT = 500
VALID_DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)
MAX_DEPTH_LIMIT = 1000


def depth_weight(limit):
    """Request weight of GET /fapi/v1/depth ("Order Book": 2 / 5 / 10 / 20)."""
    if limit <= 50:
        return 2
    if limit <= 100:
        return 5
    if limit <= 500:
        return 10
    return 20


def parse_depth_query(query, known_symbols):
    """``(SYMBOL, limit)`` of a depth request; BinanceRequestError for a bad one."""
    q = parse_qs(query, keep_blank_values=True)
    sym = q.get("symbol", [""])[0]
    if not sym:
        raise BinanceRequestError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                         "or malformed.")
    if sym not in known_symbols:
        raise BinanceRequestError(-1121, "Invalid symbol.")
    raw_limit = q.get("limit", [None])[0]
    if raw_limit is None or raw_limit == "":
        return sym, DEFAULT_DEPTH_LIMIT
    if not (raw_limit.isdigit() and raw_limit.isascii()) or int(raw_limit) not in VALID_DEPTH_LIMITS:
        raise BinanceRequestError(-1100, "Illegal characters found in parameter 'limit'; legal "
                                         "range is '5, 10, 20, 50, 100, 500, 1000'.")
    return sym, int(raw_limit)


# ---------------------------------------------------------------------- the dialect object
class Dialect(object):
    """Per-server state of the futures dialect: each symbol's formats and last ``u`` (for
    ``pu``). The server calls :meth:`observe_depth` for every generated depth event, in order,
    delivered or not, and uses the returned event (the original plus ``pu``)."""

    VENUE = VENUE
    MAX_STREAMS_PER_CONNECTION = MAX_STREAMS_PER_CONNECTION
    DEPTH_SUFFIXES = DEPTH_SUFFIXES
    TRADE_SUFFIXES = TRADE_SUFFIXES
    QUOTE_SUFFIXES = QUOTE_SUFFIXES
    DEPTH_PATH = DEPTH_PATH
    CHEAP_PATHS = CHEAP_PATHS
    MAX_DEPTH_LIMIT = MAX_DEPTH_LIMIT
    UNSOLICITED_PONGS_KEEP_ALIVE = True     # "unsolicited pong frames are allowed"
    RequestError = BinanceRequestError
    WeightLimiter = WeightLimiter
    UNKNOWN_DEPTH_FIELDS = binance.UNKNOWN_DEPTH_FIELDS

    error_body = staticmethod(error_body)
    rate_limit_body = staticmethod(rate_limit_body)
    depth_weight = staticmethod(depth_weight)
    parse_depth_query = staticmethod(parse_depth_query)
    is_ws_path = staticmethod(is_ws_path)
    open_session = staticmethod(open_session)
    symbol_of_stream = staticmethod(symbol_of_stream)
    combined = staticmethod(binance.combined)
    combined_prefix = staticmethod(binance.combined_prefix)
    unknown_event_payload = staticmethod(binance.unknown_event_payload)

    def __init__(self, server):
        self.server = server
        config = getattr(server, "config", None)     # None: a bare test server -> VENUE
        market = MARKETS[config.venue if config is not None else VENUE]
        self.market = market
        self.VENUE = market.venue
        self.DEPTH_PATH = market.depth_path
        self.CHEAP_PATHS = market.cheap_paths
        split = market.url_split
        self.is_ws_path = lambda target: is_ws_path(target, split)
        self.open_session = lambda target, max_streams: open_session(target, max_streams, split)
        self.pairs = {s: (pair_of(s) if market.pair_field else None) for s in server.symbols}
        self.formats = {s: SymbolFormat(s) for s in server.symbols}
        self.last_u = {}
        for sym, uid, _bids, _asks in server.source.initial_books():
            self.last_u[sym] = uid
        self._by_suffix = {"depth@100ms": self._depth, "depth": self._depth,
                           "depth@500ms": self._depth, "aggTrade": self._aggtrade,
                           "bookTicker": self._bookticker}

    def observe_depth(self, ev):
        """The event as the venue reports it: ``pu`` (the previous event's ``u``) appended."""
        sym = ev[1]
        prev = self.last_u.get(sym)
        self.last_u[sym] = ev[3]
        return ev[:6] + (ev[2] - 1 if prev is None else prev,)

    def formatter(self, suffix):
        return self._by_suffix[suffix]

    def _depth(self, ev, event_ms, extra):
        prev = ev[6] if len(ev) > 6 else ev[2] - 1
        return depth_payload(self.formats[ev[1]], ev[1], reported_first_id(ev[2], ev[3]), ev[3],
                             prev, ev[4], ev[5], event_ms, extra, self.pairs[ev[1]])

    def _aggtrade(self, ev, event_ms, extra):
        return aggtrade_payload(self.formats[ev[1]], ev[1], ev[2], ev[3], ev[4], ev[5], event_ms)

    def _bookticker(self, ev, event_ms, extra):
        return bookticker_payload(self.formats[ev[1]], ev[1], ev[2], ev[3], ev[4], ev[5], ev[6],
                                  event_ms, self.pairs[ev[1]])

    def snapshot_body(self, last_update_id, bids, asks, symbol=None):
        fmt = self.formats.get(symbol) or SymbolFormat(symbol or "")
        now_ms = self.server.now_ms()
        head = "" if not self.market.pair_field else ',"symbol":"%s","pair":"%s"' % (
            symbol, pair_of(symbol or ""))
        return ('{"lastUpdateId":%d%s,"E":%d,"T":%d,"bids":[%s],"asks":[%s]}'
                % (last_update_id, head, now_ms, now_ms - 1, fmt.levels(bids), fmt.levels(asks))
                ).encode("ascii")

    def server_shutdown_payload(self, event_ms):
        return None     # USD-M documents no serverShutdown event: the connection just closes

    def malformed_payload(self, symbol, event_ms):
        return '{"e":"depthUpdate","E":%d,"T":%d,"s":"%s","U":1,"u":' % (event_ms, event_ms, symbol)

    def absurd_depth_payload(self, symbol, update_id, event_ms):
        """Absurd levels; ``u`` is the next id and ``pu`` the last one, without consuming
        anything: a client that drops it sees the chain continue with the next real event."""
        last = self.last_u.get(symbol, update_id - 1)
        return ('{"e":"depthUpdate","E":%d,"T":%d,"s":"%s","U":%d,"u":%d,"pu":%d,'
                '"b":[["1.0","1234567890123456789012345678901234567890"],["-5.0","1"]],'
                '"a":[["2.0","NaN"]]}' % (event_ms, event_ms, symbol, last + 1, last + 1, last))


__all__ = ["Dialect", "VENUE", "parse_ws_target", "open_session", "depth_payload",
           "aggtrade_payload", "bookticker_payload", "parse_depth_query", "depth_weight",
           "SymbolFormat", "KIND_OTHER", "EV_DEPTH"]
