"""Kraken spot WebSocket v2: in-stream ``book`` snapshot + updates guarded only by a CRC32 of
the top 10 levels (venue id 6). Facts and their sources: docs/venues.md "Kraken".

- endpoint ``wss://ws.kraken.com/v2``; requests ``{"method":"subscribe","params":{"channel":..,
  "symbol":[..],..},"req_id":N}``; each symbol of a request is answered on its own:
  ``{"method":"subscribe","result":{..},"success":true|false,["error":..],"req_id":N,..}``;
- ``book`` (depth 10, 25, 100, 500 or 1000): a ``snapshot`` then ``update``s; ``data`` is a
  list of ``{"symbol","bids":[{"price","qty"}],"asks":[..],"checksum"[,"timestamp"]}``; prices
  and quantities are JSON *numbers* (their exact value is kept: see ``_number_text``); qty 0
  removes a level; the venue keeps only the subscribed depth and sends *no* deletion for a level
  pushed out of it, so the client truncates its book to that depth after every message;
- the ``checksum`` (unsigned CRC32) covers the best 10 asks (low to high) then the best 10
  bids (high to low), each level as price then qty, each printed with the pair's precision,
  the decimal point removed and leading zeros stripped. The precisions come from the
  ``instrument`` channel (``price_precision``, ``qty_precision`` per pair), which the adapter
  subscribes before the books;
- no sequence number exists: the checksum is the only continuity guard (the venue-neutral
  checksum-only model of core/sync.py). A mismatch resyncs that instrument by re-subscribing
  its book (the answer is a fresh snapshot);
- ``trade``: ``{"symbol","side","price","qty","ord_type","trade_id","timestamp"}``, ``side`` the
  taker's; ``ticker`` with ``"event_trigger":"bbo"``: one message per best bid/offer change
  (``bid``, ``bid_qty``, ``ask``, ``ask_qty``);
- keepalive: the client may send ``{"method":"ping"}`` (answered ``"method":"pong"``); the
  venue sends ``{"channel":"heartbeat"}`` about once a second when nothing else is sent.
Book ids: Kraken gives none, so a book's id on the wire is this adapter's count of that
symbol's book messages (growing for the life of the feed).
"""

import json
import zlib

from hftfeed.core.sync import ChecksumOnlyRule
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_SUBSCRIBED,
                                  Control, DepthUpdate, Quote, Trade)
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.base import (Venue, data_items, req_int, req_str, taker_side, to_price, to_qty,
                                 to_trade_qty)
from hftfeed.venues.coinbase import rfc3339_ns

BOOK_DEPTH = 25            # subscribed depth: more than the 20 levels published
CHECKSUM_LEVELS = 10
MAX_PRECISION = 8          # our fixed point: 1e-8
_JSON_COMPACT = (",", ":")
_POW10 = [10 ** i for i in range(MAX_PRECISION + 1)]


def level_digits(value, precision):
    """A scaled int printed with ``precision`` decimals, point removed, leading zeros stripped
    (Kraken's checksum form of one price or quantity)."""
    return "%d" % (value // _POW10[MAX_PRECISION - precision])


def checksum_of(book, price_precision, qty_precision):
    """Kraken's CRC32 of the best 10 asks then the best 10 bids of ``book``."""
    bids, asks = book.top(CHECKSUM_LEVELS)
    pdiv = _POW10[MAX_PRECISION - price_precision]
    qdiv = _POW10[MAX_PRECISION - qty_precision]
    parts = ["%d%d" % (p // pdiv, q // qdiv) for p, q in asks]
    parts.extend(["%d%d" % (p // pdiv, q // qdiv) for p, q in bids])
    return zlib.crc32("".join(parts).encode("ascii"))


class KrakenRule(ChecksumOnlyRule):
    """Checksum-only continuity with Kraken's checksum and its subscribed depth."""

    max_levels = BOOK_DEPTH

    def __init__(self, precisions=None):
        self.precisions = precisions if precisions is not None else {}

    def book_checksum(self, book, upd):
        """-1 (never equal to a checksum) while the pair's precision is unknown: the book
        cannot be verified, so it is not trusted."""
        prec = self.precisions.get(upd.symbol)
        if prec is None:
            return -1
        return checksum_of(book, prec[0], prec[1])


class JsonNumber(str):
    """A JSON number with a fraction or exponent, kept as its text (``json`` parse_float):
    exact digits, and still told apart from a JSON string."""

    __slots__ = ()


class _NeedsExactText(Exception):
    """A float the fast path cannot vouch for: parse the message again, keeping digits."""


# Below this a valid Kraken number (at most 8 decimals: finer is refused anyway) has at most
# 15 significant digits, and any decimal of at most 15 significant digits survives
# float -> repr exactly (DBL_DIG). Plain json.loads is ~40x faster under PyPy than a
# parse_float callback, so messages whose numbers all stay below it take that path.
FAST_FLOAT_LIMIT = 1e7


def _reject_constant(name):
    raise ValueError("%s is not a number" % name)


def _decode(text, exact=False):
    """JSON text -> objects; ``exact`` keeps fractional numbers as JsonNumber text."""
    try:
        if exact:
            return json.loads(text, parse_float=JsonNumber, parse_constant=_reject_constant)
        return json.loads(text)
    except ValueError as exc:       # JSONDecodeError, NaN/Infinity (exact pass), bad UTF-8
        raise VenueError("malformed JSON: %s" % exc)
    except RecursionError:
        raise VenueError("malformed JSON: nested too deeply")


def _number_text(value, what):
    """A JSON number (float from the fast path, JsonNumber from the exact one, or int) -> its
    decimal text; a string or anything else is an error."""
    kind = type(value)
    if kind is float:
        if 0.0 <= value < FAST_FLOAT_LIMIT:
            return repr(value)
        raise _NeedsExactText()
    if kind is JsonNumber:
        return value
    if kind is int:
        return "%d" % value
    raise VenueError("%s: expected a number, got %r" % (what, value))


def _levels(levels, what):
    if type(levels) is not list:
        raise VenueError("%s: levels must be a list" % what)
    out = []
    for level in levels:
        if type(level) is not dict:
            raise VenueError("%s: levels must be objects" % what)
        out.append(to_price(_number_text(level.get("price"), what), what))
        out.append(to_qty(_number_text(level.get("qty"), what), what))
    return out


class Kraken(Venue):
    SPEC = registry.spec("kraken")   # id, name, default URLs: venues/registry.py
    NAME = SPEC.name
    VENUE_ID = SPEC.wire_id
    DEFAULT_WS_URL = SPEC.ws_url
    DEFAULT_REST_URL = SPEC.rest_url
    MAX_STREAMS_PER_CONNECTION = 300
    MAX_OUT_MSGS_PER_S = 5.0
    APP_PING_TEXT = '{"method":"ping"}'
    APP_PING_INTERVAL_S = 30.0
    SUBSCRIBE_ACKS = False           # answered per symbol, not per request: not counted
    STREAM_CHANNELS = (("depth", "book"), ("trade", "trade"), ("bookTicker", "ticker"))
    rule = KrakenRule()              # replaced per instance (it holds that feed's precisions)

    def __init__(self, symbols, channels, depth_speed="100ms"):
        super().__init__(symbols, channels, depth_speed)
        self.precisions = {}         # symbol -> (price_precision, qty_precision)
        self.rule = KrakenRule(self.precisions)
        self.book_msgs = {}          # symbol -> book messages seen (the book ids)

    @classmethod
    def venue_symbol(cls, symbol):
        """Kraken v2 pairs are upper-case with a slash (``BTC/USD``)."""
        return symbol.upper()

    def subscribe_messages(self, streams):
        """The instrument channel first (the checksum needs each pair's precision), then one
        request per channel."""
        grouped = self.streams_by_channel(streams)
        out = []
        if any(channel == "book" for channel, _syms in grouped):
            out.append(_request("subscribe", {"channel": "instrument", "snapshot": True}))
        for channel, syms in grouped:
            out.append(_request("subscribe", _params(channel, syms)))
        return out

    def resubscribe_messages(self, symbol):
        if "depth" not in self.channels:
            return []
        params = _params("book", [self.venue_symbol(symbol)])
        return [_request("unsubscribe", {"channel": "book", "symbol": params["symbol"],
                                         "depth": BOOK_DEPTH}),
                _request("subscribe", params)]

    # -- stream messages ------------------------------------------------------------------------

    def parse(self, text):
        try:
            return self._dispatch(_decode(text), text)      # floats: see _number_text
        except _NeedsExactText:
            return self._dispatch(_decode(text, True), text)

    def _dispatch(self, msg, text):
        if type(msg) is not dict:
            raise VenueError("expected a JSON object, got %s" % type(msg).__name__)
        channel = msg.get("channel")
        if channel == "book":
            return self._book(msg)
        if channel == "trade":
            return _trades(msg)
        if channel == "ticker":
            return _tickers(msg)
        if channel == "instrument":
            return self._instruments(msg)
        if type(channel) is str:
            return [Control(CTRL_IGNORED, channel)]     # heartbeat, status, ...
        method = msg.get("method")
        if method == "pong":
            return [Control(CTRL_PONG, "")]
        if method in ("subscribe", "unsubscribe"):
            if msg.get("success") is True:
                return [Control(CTRL_SUBSCRIBED if method == "subscribe" else CTRL_IGNORED, "")]
            return [Control(CTRL_ERROR, "%s: %s" % (method, msg.get("error", "")))]
        raise VenueError("neither a channel message nor a method reply: %.80s" % text)

    def _book(self, msg):
        what = "book"
        kind = msg.get("type")
        if kind != "snapshot" and kind != "update":
            raise VenueError("%s: type must be snapshot or update, got %r" % (what, kind))
        data = msg.get("data")
        if type(data) is not list:
            raise VenueError("%s: data must be a list" % what)
        out = []
        counts = self.book_msgs
        for item in data:
            if type(item) is not dict:
                raise VenueError("%s: data items must be objects" % what)
            symbol = req_str(item, "symbol", what)
            checksum = req_int(item, "checksum", what)
            if checksum > 0xFFFFFFFF:
                raise VenueError("%s: checksum %d is not a CRC32" % (what, checksum))
            stamp = item.get("timestamp")
            exch_ns = rfc3339_ns(stamp, what) if stamp is not None else 0
            bids = _levels(item.get("bids"), what)
            asks = _levels(item.get("asks"), what)
            n = counts.get(symbol, 0) + 1
            if symbol in counts or symbol in self.precisions:
                counts[symbol] = n           # bounded: only symbols the venue told us about
            out.append(DepthUpdate(symbol, n, n, -1, exch_ns, bids, asks, kind == "snapshot",
                                   checksum))
        return out

    def _instruments(self, msg):
        data = msg.get("data")
        if type(data) is not dict:
            raise VenueError("instrument: data must be an object")
        pairs = data.get("pairs", [])
        if type(pairs) is not list:
            raise VenueError("instrument: pairs must be a list")
        wanted = set(self.venue_symbol(s) for s in self.symbols)
        for pair in pairs:
            if type(pair) is not dict:
                raise VenueError("instrument: pairs must be objects")
            symbol = pair.get("symbol")
            if symbol not in wanted:
                continue                        # the whole exchange comes: keep ours only
            price_prec = req_int(pair, "price_precision", "instrument")
            qty_prec = req_int(pair, "qty_precision", "instrument")
            if price_prec > MAX_PRECISION or qty_prec > MAX_PRECISION:
                raise VenueError("instrument %s: precision %d/%d finer than 1e-8"
                                 % (symbol, price_prec, qty_prec))
            self.precisions[symbol] = (price_prec, qty_prec)
            self.book_msgs.setdefault(symbol, 0)
        return [Control(CTRL_IGNORED, "instrument")]


def _params(channel, symbols):
    params = {"channel": channel, "symbol": list(symbols)}
    if channel == "book":
        params["depth"] = BOOK_DEPTH
        params["snapshot"] = True
    elif channel == "ticker":
        params["event_trigger"] = "bbo"
    elif channel == "trade":
        params["snapshot"] = False
    return params


def _request(method, params):
    return json.dumps({"method": method, "params": params}, separators=_JSON_COMPACT)


def _trades(msg):
    what = "trade"
    out = []
    for item in data_items(msg, what):
        aggressor = taker_side(item.get("side"), "buy", "sell", what)     # the taker's side
        out.append(Trade(req_str(item, "symbol", what), req_int(item, "trade_id", what),
                         to_price(_number_text(item.get("price"), what), what),
                         to_trade_qty(_number_text(item.get("qty"), what), what), aggressor,
                         rfc3339_ns(item.get("timestamp"), what)))
    return out


def _tickers(msg):
    what = "ticker"
    out = []
    for item in data_items(msg, what):
        out.append(Quote(req_str(item, "symbol", what), 0,
                         to_price(_number_text(item.get("bid"), what), what, True),
                         to_qty(_number_text(item.get("bid_qty"), what), what),
                         to_price(_number_text(item.get("ask"), what), what, True),
                         to_qty(_number_text(item.get("ask_qty"), what), what), 0))
    return out

