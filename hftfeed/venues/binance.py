"""Binance spot: combined WebSocket streams + REST depth snapshots (venue id 1).

Facts from Binance's spot API docs ("WebSocket Streams", "How to manage a local order book
correctly", "Market data endpoints"):
- combined streams at ``/stream?streams=a/b/c``, events wrapped as ``{"stream":..,"data":..}``,
  stream names lower-case: ``<symbol>@depth@100ms`` (or ``@depth`` = 1000 ms), ``@trade``,
  ``@bookTicker``; at most 1024 streams and 5 incoming messages per second per connection;
- the server pings every 20 s and expects a pong echoing the payload within a minute (ws.py);
- a connection lives at most 24 h; ``serverShutdown`` announces a restart;
- ``GET /api/v3/depth?symbol=&limit=`` weighs 5 (limit <= 100), 25 (<= 500), 50 (<= 1000),
  250 (<= 5000) against the IP's per-minute budget;
- local book (the spot page as rewritten in 2024, re-read 2026-12-05): refetch a snapshot whose
  ``lastUpdateId`` is below the first buffered ``U``; drop diffs with ``u <= lastUpdateId``; the
  first applied diff has ``U <= lastUpdateId + 1 <= u``; then, for every diff, ``u <=`` the
  book's id: ignore it; ``U >`` the book's id + 1: something was lost, start again; otherwise
  apply it. So a diff that *overlaps* the book (``U <= id < u``) is applied, not a gap: levels
  are absolute quantities, and normally ``U`` is exactly the previous ``u + 1``.
"""

from hftfeed.errors import FixedPointError, VenueError
from hftfeed.codecs.fixed import parse_price
from hftfeed.core.sync import SyncRule
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_SERVER_SHUTDOWN, CTRL_SUBSCRIBED,
                       SIDE_BUY, SIDE_SELL, Control, DepthUpdate, Quote, Snapshot, Trade)
from hftfeed.venues import registry
from hftfeed.venues.base import MS_TO_NS, Venue, levels_flat, loads, req_int, req_price, req_str, tier_weight, to_qty, to_trade_qty



class BinanceSpotRule(SyncRule):
    """Spot continuity: ``U``/``u`` only (no ``pu`` field on spot)."""

    def stale_before_snapshot(self, snapshot_id, upd):
        return upd.last_id <= snapshot_id                       # doc step: drop u <= lastUpdateId

    def bridges(self, snapshot_id, upd):
        return upd.first_id <= snapshot_id + 1 <= upd.last_id   # U <= lastUpdateId+1 <= u

    def stale_live(self, book_id, upd):
        return upd.last_id <= book_id                           # "u < local id: ignore" (+ duplicates)

    def continues(self, book_id, upd):
        # "U > local id + 1: something went wrong"; stale_live already dropped u <= id, so an
        # overlapping diff (U <= id < u) continues the book (absolute quantities re-applied).
        return upd.first_id <= book_id + 1


SNAPSHOT_WEIGHTS = ((100, 5), (500, 25), (1000, 50), (5000, 250))


def snapshot_weight(limit):
    """Request weight of GET /api/v3/depth for ``limit`` (Binance spot market-data docs)."""
    return tier_weight(limit, SNAPSHOT_WEIGHTS)


class BinanceSpot(Venue):
    SPEC = registry.spec("binance")   # NAME, VENUE_ID, DEFAULT_*_URL come from it (base.py)
    MAX_STREAMS_PER_CONNECTION = 1024
    MAX_OUT_MSGS_PER_S = 5.0
    CONNECTION_LIFETIME_S = 23.5 * 3600      # reconnect (make-before-break) before the 24 h cut
    REST_WEIGHT_PER_MIN = 6000
    DEFAULT_SNAPSHOT_LIMIT = 1000
    MAX_SNAPSHOT_LIMIT = 5000
    SNAPSHOT_PATH = "/api/v3/depth"
    rule = BinanceSpotRule()

    @classmethod
    def venue_symbol(cls, symbol):
        """Binance spells symbols upper-case in events and REST (streams are lower-case)."""
        return symbol.upper()

    def streams_for(self, symbol, channels=None):
        lower = symbol.lower()
        names = []
        for channel in (self.channels if channels is None else channels):
            if channel == "depth":
                names.append(lower + ("@depth@100ms" if self.depth_speed == "100ms" else "@depth"))
            elif channel == "trade":
                names.append(lower + "@trade")
            elif channel == "bookTicker":
                names.append(lower + "@bookTicker")
        return names

    def connection_path(self, streams):
        return "/stream?streams=" + "/".join(streams)

    def snapshot_request(self, symbol, limit):
        return ("%s?symbol=%s&limit=%d" % (self.SNAPSHOT_PATH, self.venue_symbol(symbol), limit),
                snapshot_weight(limit))

    def parse_snapshot(self, symbol, body):
        msg = loads(body)
        what = "depth snapshot " + symbol
        if type(msg) is not dict:
            raise VenueError("%s: expected an object" % what)
        return Snapshot(self.venue_symbol(symbol), req_int(msg, "lastUpdateId", what),
                        levels_flat(msg.get("bids"), what), levels_flat(msg.get("asks"), what))

    # -- stream messages ------------------------------------------------------------------------

    def parse(self, text):
        if self.fast_scanner and text.isascii():   # the scanner's indexes assume 1 byte a char
            upd = fast_depth(text)
            if upd is not None:
                return [upd]
        msg = loads(text)
        if type(msg) is not dict:
            raise VenueError("expected a JSON object, got %s" % type(msg).__name__)
        data = msg.get("data")
        if "stream" in msg:
            if type(data) is not dict:
                raise VenueError("combined stream message without a data object")
            return [self._event(data)]
        if "result" in msg and "id" in msg:                 # SUBSCRIBE / UNSUBSCRIBE answer
            return [Control(CTRL_SUBSCRIBED, str(msg.get("id")))]
        if "code" in msg and "msg" in msg:                  # request error
            return [Control(CTRL_ERROR, "%s %s" % (msg.get("code"), msg.get("msg")))]
        event = msg.get("event")
        if type(event) is dict and event.get("e") == "serverShutdown":
            return [Control(CTRL_SERVER_SHUTDOWN, str(event.get("E", "")))]
        return [self._event(msg)]                            # raw /ws/<stream> form

    def _event(self, data):
        kind = data.get("e")
        if kind == "depthUpdate":
            return parse_depth(data)
        if kind == "trade" or kind == "aggTrade":
            return parse_trade(data, "t" if kind == "trade" else "a")
        if kind is None and "u" in data and "A" in data:   # spot bookTicker carries no "e"
            return parse_book_ticker(data)
        if kind == "bookTicker":                            # futures-style bookTicker
            return parse_book_ticker(data)
        if kind == "serverShutdown":
            return Control(CTRL_SERVER_SHUTDOWN, str(data.get("E", "")))
        return Control(CTRL_IGNORED, str(kind))


def parse_depth(data):
    what = "depthUpdate"
    symbol = req_str(data, "s", what)
    first_id = req_int(data, "U", what)
    last_id = req_int(data, "u", what)
    if first_id > last_id:
        raise VenueError("depthUpdate %s: U %d > u %d" % (symbol, first_id, last_id))
    prev_id = data.get("pu", -1)
    if type(prev_id) is not int or prev_id < -1 or prev_id > 0x7FFFFFFFFFFFFFFF:
        # -1 is "no pu" (spot); anything else must be an id the stream could have sent
        raise VenueError("depthUpdate %s: pu must be an id, got %r" % (symbol, prev_id))
    exch_ms = data.get("E", 0)
    if type(exch_ms) is not int or exch_ms < 0 or exch_ms > 2 ** 62 // MS_TO_NS:
        raise VenueError("depthUpdate %s: bad event time %r" % (symbol, exch_ms))
    return DepthUpdate(symbol, first_id, last_id, prev_id, exch_ms * MS_TO_NS,
                       levels_flat(data.get("b"), what), levels_flat(data.get("a"), what))


def parse_trade(data, id_key):
    what = "trade"
    symbol = req_str(data, "s", what)
    maker = data.get("m")
    if type(maker) is not bool:
        raise VenueError("trade %s: field 'm' must be a boolean" % symbol)
    trade_ms = data.get("T", data.get("E", 0))
    if type(trade_ms) is not int or trade_ms < 0 or trade_ms > 2 ** 62 // MS_TO_NS:
        raise VenueError("trade %s: bad trade time %r" % (symbol, trade_ms))
    # "m": the buyer is the maker, so the aggressor (taker) sold.
    return Trade(symbol, req_int(data, id_key, what), req_price(data, "p", what),
                 to_trade_qty(req_str(data, "q", what), what), SIDE_SELL if maker else SIDE_BUY,
                 trade_ms * MS_TO_NS)


def parse_book_ticker(data):
    what = "bookTicker"
    symbol = req_str(data, "s", what)
    exch_ms = data.get("E", 0)
    if type(exch_ms) is not int or exch_ms < 0 or exch_ms > 2 ** 62 // MS_TO_NS:
        raise VenueError("bookTicker %s: bad event time %r" % (symbol, exch_ms))
    return Quote(symbol, req_int(data, "u", what),
                 req_price(data, "b", what, allow_zero=True), to_qty(req_str(data, "B", what), what),
                 req_price(data, "a", what, allow_zero=True), to_qty(req_str(data, "A", what), what),
                 exch_ms * MS_TO_NS)


# -- the hot path: a scanner for the exact shape Binance sends -----------------------------------
# PERF_NOTES: json.loads + conversion runs 190-225k msg/s on PyPy, a str.find scanner 425k.
# Anything that does not match the expected shape *exactly* returns None and takes the json path,
# so the scanner can only be faster, never more permissive.

_STREAM_PREFIX = '{"stream":"'
_DEPTH_HEAD = '","data":{"e":"depthUpdate","E":'


def fast_depth(text):
    """A combined-stream depthUpdate in Binance's compact form -> DepthUpdate, else None.

    Precondition: ``text.isascii()`` (so ``str.isdigit`` means ASCII digits only)."""
    pos = scan_depth_head(text)
    exch_ms, pos = scan_digits(text, pos, ',"s":"', 15)
    symbol, pos = scan_symbol(text, pos, '","U":')
    first, pos = scan_digits(text, pos, ',"u":', 18)
    last, pos = scan_digits(text, pos, ',"b":[', 18)
    if last is None or exch_ms is None or symbol is None or first is None:
        return None
    return scan_levels_tail(text, pos, symbol, int(first), int(last), -1, int(exch_ms))


# Small scanning steps shared by the spot and futures scanners. Each returns (value, position
# after the marker), or (None, -1) when the shape differs; a -1 position makes every later step
# fail too, so a scanner checks once at the end.

def scan_depth_head(text):
    """Position after ``{"stream":"<name>","data":{"e":"depthUpdate","E":`` or -1."""
    if not text.startswith(_STREAM_PREFIX):
        return -1
    pos = text.find('"', 11)
    if pos < 0 or not text.startswith(_DEPTH_HEAD, pos):
        return -1
    return pos + len(_DEPTH_HEAD)


def scan_digits(text, pos, marker, max_len):
    """ASCII digits from ``pos`` up to ``marker`` (at most ``max_len`` of them)."""
    if pos < 0:
        return None, -1
    end = text.find(marker, pos)
    digits = text[pos:end]
    if end < 0 or not digits.isdigit() or len(digits) > max_len:
        return None, -1
    return digits, end + len(marker)


def scan_symbol(text, pos, marker):
    """A symbol string from ``pos`` up to ``marker`` (no quote or escape inside)."""
    if pos < 0:
        return None, -1
    end = text.find(marker, pos)
    symbol = text[pos:end]
    if end < 0 or '"' in symbol or "\\" in symbol or not symbol:
        return None, -1
    return symbol, end + len(marker)


def scan_levels_tail(text, pos, symbol, first_id, last_id, prev_id, exch_ms):
    """``<bids>],"a":[<asks>]}}`` from ``pos`` to the end -> the DepthUpdate, else None."""
    bids = []
    pos = _fast_levels(text, pos, bids)
    if pos < 0 or not text.startswith(',"a":[', pos):
        return None
    asks = []
    pos = _fast_levels(text, pos + 6, asks)
    if pos < 0 or pos + 2 != len(text) or not text.endswith("}}") or first_id > last_id:
        return None
    return DepthUpdate(symbol, first_id, last_id, prev_id, exch_ms * MS_TO_NS, bids, asks)


def _fast_levels(text, pos, out):
    """Scan ``["p","q"],["p","q"]]`` from ``pos`` into ``out``; return the index after ``]``
    or -1 when the shape differs (then the caller falls back to json)."""
    if text.startswith("]", pos):
        return pos + 1
    while True:
        if not text.startswith('["', pos):
            return -1
        mid = text.find('","', pos + 2)
        if mid < 0:
            return -1
        end = text.find('"]', mid + 3)
        if end < 0:
            return -1
        try:
            price = parse_price(text[pos + 2:mid])
            qty = parse_price(text[mid + 3:end])
        except FixedPointError:
            return -1
        if price <= 0 or qty < 0:
            return -1
        out.append(price)
        out.append(qty)
        pos = end + 2
        if text.startswith(",", pos):
            pos += 1
        elif text.startswith("]", pos):
            return pos + 1
        else:
            return -1
