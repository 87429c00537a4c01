"""Binance USD-M futures: combined streams under the /public + /market URL split, REST depth
snapshots (venue id 2).

The JSON is Binance spot's with a few additions, so this adapter subclasses
:class:`~hftfeed.venues.binance.BinanceSpot` and reuses its parsers; only what differs is here.

Facts from Binance's USD-M futures docs ("Websocket Market Streams", "Diff. Book Depth Streams",
"How to manage a local order book correctly", "Order Book" request weights, the 2026-03-06 URL
split announcement):
- base ``wss://fstream.binance.com``; high-frequency public data (``@depth``, ``@bookTicker``)
  lives under ``/public``, regular market data (``@aggTrade``, klines, mark price) under
  ``/market``; a connection on the wrong path receives nothing for that stream, silently;
- combined streams at ``<path>/stream?streams=a/b/c``, events wrapped as ``{"stream","data"}``;
  at most 1024 streams and 10 incoming (client -> server) messages per second per connection;
  a connection lives at most 24 h; the server pings every 3 minutes (ws.py answers);
- ``<symbol>@depth@100ms`` events carry ``T`` (transaction time) and ``pu`` (the previous event's
  ``u``); ``@depth`` alone is 250 ms;
- ``GET /fapi/v1/depth?symbol=&limit=`` with limit in {5, 10, 20, 50, 100, 500, 1000} weighs
  2 (<= 50), 5 (100), 10 (500), 20 (1000); the default IP budget is 2400 weight per minute;
- local book: step 4 "drop any event where u < lastUpdateId"; step 5 "the first processed event
  should have U <= lastUpdateId AND u >= lastUpdateId"; step 6 "each new event's pu should be
  equal to the previous event's u, otherwise initialize the process from step 3".
"""

from hftfeed.core.sync import SyncRule
from hftfeed.venues import registry
from hftfeed.venues.base import tier_weight
from hftfeed.venues.binance import (BinanceSpot, scan_depth_head, scan_digits, scan_levels_tail,
                      scan_symbol)

#: the limits /fapi/v1/depth accepts ("Order Book": valid limits)
SNAPSHOT_LIMITS = (5, 10, 20, 50, 100, 500, 1000)

#: route path prefix -> the channels Binance serves there (the 2026 URL split)
PUBLIC_PATH = "/public"
MARKET_PATH = "/market"
PUBLIC_CHANNELS = ("depth", "bookTicker")
MARKET_CHANNELS = ("trade",)


class BinanceUsdmRule(SyncRule):
    """USD-M continuity: the explicit ``pu`` link, not ``U == previous u + 1`` (futures ids are
    not contiguous between events)."""

    def stale_before_snapshot(self, snapshot_id, upd):
        return upd.last_id < snapshot_id                              # step 4: drop u < lastUpdateId

    def bridges(self, snapshot_id, upd):
        return upd.first_id <= snapshot_id <= upd.last_id             # step 5: U <= id <= u

    def stale_live(self, book_id, upd):
        return upd.last_id <= book_id     # an event the book already holds (overlapping links)

    def continues(self, book_id, upd):
        return upd.prev_id == book_id                                 # step 6: pu == previous u


def snapshot_limit(limit):
    """The smallest limit /fapi/v1/depth accepts that is >= ``limit`` (1000 at most)."""
    for valid in SNAPSHOT_LIMITS:
        if limit <= valid:
            return valid
    return SNAPSHOT_LIMITS[-1]


SNAPSHOT_WEIGHTS = ((50, 2), (100, 5), (500, 10), (1000, 20))


def snapshot_weight(limit):
    """Request weight of GET /fapi/v1/depth for a valid ``limit`` ("Order Book" weight table)."""
    return tier_weight(limit, SNAPSHOT_WEIGHTS)


class BinanceUsdm(BinanceSpot):
    SPEC = registry.spec("binance-usdm")   # NAME, VENUE_ID, DEFAULT_*_URL come from it (base.py)
    MAX_STREAMS_PER_CONNECTION = 1024
    MAX_OUT_MSGS_PER_S = 10.0
    CONNECTION_LIFETIME_S = 23.5 * 3600      # reconnect (make-before-break) before the 24 h cut
    REST_WEIGHT_PER_MIN = 2400
    DEFAULT_SNAPSHOT_LIMIT = 1000
    MAX_SNAPSHOT_LIMIT = 1000
    SNAPSHOT_PATH = "/fapi/v1/depth"
    rule = BinanceUsdmRule()

    def routes(self):
        """/public carries depth and bookTicker, /market carries aggTrade; a route with none of
        the configured channels is left out."""
        out = []
        public = tuple(c for c in self.channels if c in PUBLIC_CHANNELS)
        market = tuple(c for c in self.channels if c in MARKET_CHANNELS)
        if public:
            out.append((PUBLIC_PATH, public))
        if market:
            out.append((MARKET_PATH, market))
        return out

    def streams_for(self, symbol, channels=None):
        lower = symbol.lower()
        names = []
        for channel in (self.channels if channels is None else channels):
            if channel == "depth":
                # "1000ms" has no futures stream; plain @depth (250 ms) is the slow one there.
                names.append(lower + ("@depth@100ms" if self.depth_speed == "100ms" else "@depth"))
            elif channel == "trade":
                names.append(lower + "@aggTrade")      # the futures trade channel is aggTrade
            elif channel == "bookTicker":
                names.append(lower + "@bookTicker")
        return names

    def snapshot_request(self, symbol, limit):
        valid = snapshot_limit(limit)
        return ("%s?symbol=%s&limit=%d" % (self.SNAPSHOT_PATH, self.venue_symbol(symbol), valid),
                snapshot_weight(valid))

    def parse(self, text):
        if self.fast_scanner and text.isascii():   # the scanner's indexes assume 1 byte a char
            upd = fast_depth(text)
            if upd is not None:
                return [upd]
        return BinanceSpot.parse(self, text)


# -- the hot path: a scanner for the exact shape of a futures depthUpdate ------------------------
# Same idea and same guarantee as binance.fast_depth (PERF_NOTES: ~2x json.loads on PyPy):
# anything not in exactly this shape returns None and takes the json path.

def fast_depth(text):
    """A combined-stream futures depthUpdate
    ``{"stream":..,"data":{"e":"depthUpdate","E":..,"T":..,"s":"..","U":..,"u":..,"pu":..,
    "b":[..],"a":[..]}}`` -> DepthUpdate, else None. Precondition: ``text.isascii()``."""
    pos = scan_depth_head(text)
    exch_ms, pos = scan_digits(text, pos, ',"T":', 15)
    _, pos = scan_digits(text, pos, ',"s":"', 15)          # transaction time: not published
    symbol, pos = scan_symbol(text, pos, '","U":')
    first, pos = scan_digits(text, pos, ',"u":', 18)
    last, pos = scan_digits(text, pos, ',"pu":', 18)
    prev, pos = scan_digits(text, pos, ',"b":[', 18)
    if prev is None or exch_ms is None or symbol is None or first is None or last is None:
        return None
    return scan_levels_tail(text, pos, symbol, int(first), int(last), int(prev), int(exch_ms))


class BinanceCoinm(BinanceUsdm):
    """Binance COIN-M futures (``dstream``/``dapi``): USD-M's ``pu`` rule and JSON, with the
    differences of the COIN-M docs ("Websocket Market Streams", "Diff. Book Depth Streams",
    "How to manage a local order book correctly", "Order Book"):

    - no URL split: one combined-stream connection at ``/stream?streams=`` carries depth,
      bookTicker and aggTrade; at most 1024 streams per connection, as on USD-M (the COIN-M
      "Websocket Market Streams" page, read 2026-12-05; the 200 of earlier readings is gone);
    - events carry ``ps`` (the pair, ``BTCUSD``) after ``s`` (the contract, ``BTCUSD_PERP``);
    - snapshots from ``GET /dapi/v1/depth`` with the same limits and weights as USD-M.
    """

    SPEC = registry.spec("binance-coinm")
    SNAPSHOT_PATH = "/dapi/v1/depth"

    def routes(self):
        return [("", self.channels)]

    def parse(self, text):
        if self.fast_scanner and text.isascii():
            upd = fast_depth_coinm(text)
            if upd is not None:
                return [upd]
        return BinanceSpot.parse(self, text)


def fast_depth_coinm(text):
    """:func:`fast_depth` for COIN-M's shape, which has ``"ps":"<pair>"`` after the symbol."""
    pos = scan_depth_head(text)
    exch_ms, pos = scan_digits(text, pos, ',"T":', 15)
    _, pos = scan_digits(text, pos, ',"s":"', 15)
    symbol, pos = scan_symbol(text, pos, '","ps":"')
    _, pos = scan_symbol(text, pos, '","U":')
    first, pos = scan_digits(text, pos, ',"u":', 18)
    last, pos = scan_digits(text, pos, ',"pu":', 18)
    prev, pos = scan_digits(text, pos, ',"b":[', 18)
    if prev is None or exch_ms is None or symbol is None or first is None or last is None:
        return None
    return scan_levels_tail(text, pos, symbol, int(first), int(last), int(prev), int(exch_ms))
