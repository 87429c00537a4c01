"""What every venue adapter provides (the contract ``feed.py`` relies on)."""

import json
import platform

from hftfeed.errors import FixedPointError, VenueError
from hftfeed.codecs.fixed import parse_price
from hftfeed.core.updates import SIDE_BUY, SIDE_SELL, Snapshot

# Venue-shaped scanners (Binance depth) beat json.loads under PyPy's JIT (1.6x in bench.py parse)
# but not CPython's C json module (0.75-1.0x there): each interpreter gets its faster path.
FAST_SCANNER = platform.python_implementation() == "PyPy"
MS_TO_NS = 1000000
MAX_MS_DIGITS = 15          # a time in ms with more digits is absurd (beyond year 33658)
MAX_ID_DIGITS = 19          # decimal ids must fit an i64 (the wire's u64 fields, signed-safe)


class Venue(object):
    """Base class of venue adapters. One instance per configured feed.

    Class attributes (overridden per venue): SPEC (the venue's entry in venues/registry.py) and,
    taken from it, NAME (config value), VENUE_ID (PROTOCOL.md venue id), DEFAULT_WS_URL,
    DEFAULT_REST_URL; then the adapter's own facts: MAX_STREAMS_PER_CONNECTION, MAX_OUT_MSGS_PER_S,
    CONNECTION_LIFETIME_S (reconnect proactively before the venue's forced disconnect),
    REST_WEIGHT_PER_MIN, DEFAULT_SNAPSHOT_LIMIT, MAX_SNAPSHOT_LIMIT, APP_PING_TEXT /
    APP_PING_INTERVAL_S (application-level keepalive, None when the venue pings at the
    WebSocket level), and ``rule`` (the venue's SyncRule).
    """

    SPEC = None
    NAME = ""
    VENUE_ID = 0
    DEFAULT_WS_URL = ""
    DEFAULT_REST_URL = ""

    def __init_subclass__(cls, **kwargs):
        """An adapter names its registry entry (``SPEC = registry.spec("okx")``); the facts
        kept there are copied from it here, so no adapter restates its id, name or URLs. A
        market sharing a venue's adapter (Bybit spot, Binance COIN-M) is one registry entry
        plus a subclass with its own SPEC, holding only the facts that differ."""
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("SPEC")
        if spec is not None:
            cls.NAME = spec.name
            cls.VENUE_ID = spec.wire_id
            cls.DEFAULT_WS_URL = spec.ws_url
            cls.DEFAULT_REST_URL = spec.rest_url

    MAX_STREAMS_PER_CONNECTION = 1024
    MAX_OUT_MSGS_PER_S = 5.0
    CONNECTION_LIFETIME_S = 23.5 * 3600
    REST_WEIGHT_PER_MIN = 6000
    DEFAULT_SNAPSHOT_LIMIT = 1000
    MAX_SNAPSHOT_LIMIT = 5000
    APP_PING_TEXT = None
    APP_PING_INTERVAL_S = None
    APP_PING_ALWAYS = False       # True: ping every interval; False: only after that much silence
    SUBSCRIBE_ACKS = False        # each subscribe message is answered (CTRL_SUBSCRIBED / CTRL_ERROR)
    # Venues whose channels are subscribed by messages on one fixed URL (OKX, Bitget, Coinbase,
    # Kraken) name them here, ((config channel, venue channel), ...) in the order requests go
    # out; their streams are then "<venue channel>:<instrument>" keys (streams_for,
    # streams_by_channel) and the URL carries none (connection_path).
    STREAM_CHANNELS = None
    rule = None

    def __init__(self, symbols: list, channels: tuple, depth_speed: str = "100ms") -> None:
        self.symbols = list(symbols)
        self.channels = tuple(channels)
        self.depth_speed = depth_speed
        self.fast_scanner = FAST_SCANNER   # a switch per instance, so tests run both paths

    # -- connection facts (override) -----------------------------------------------------------
    @classmethod
    def venue_symbol(cls, symbol: str) -> str:
        """The venue's own spelling of a configured symbol (what its messages carry)."""
        return symbol

    def routes(self) -> list:
        """[(url path prefix, channels)]: the connections a symbol's channels need. One route
        for most venues; Binance USD-M splits /public (depth, bookTicker) and /market (trades)."""
        return [("", self.channels)]

    def streams_for(self, symbol: str, channels: tuple = None) -> list:
        """The venue's stream / subscription names for one symbol and the given channels
        (default: all configured channels); these count against the per-connection limit."""
        table = self.STREAM_CHANNELS
        if table is None:
            raise NotImplementedError
        inst = self.venue_symbol(symbol)
        wanted = self.channels if channels is None else channels
        return [venue_channel + ":" + inst for ours, venue_channel in table if ours in wanted]

    def streams_by_channel(self, streams: list) -> list:
        """``"<venue channel>:<instrument>"`` streams grouped for subscribe requests:
        ``[(venue channel, [instruments])]`` in STREAM_CHANNELS order."""
        grouped = {}
        for stream in streams:
            channel, inst = split_stream(stream)
            grouped.setdefault(channel, []).append(inst)
        return [(channel, grouped[channel]) for _ours, channel in self.STREAM_CHANNELS
                if channel in grouped]

    def connection_path(self, streams: list) -> str:
        """The URL path (and query) to open for a connection carrying ``streams``."""
        if self.STREAM_CHANNELS is not None:
            return ""       # one fixed URL: the channels are subscribed with messages
        raise NotImplementedError

    def subscribe_messages(self, streams: list) -> list:
        """Text messages to send after connecting (empty when the URL carries the streams)."""
        return []

    def resubscribe_messages(self, symbol: str) -> list:
        """Messages that make the venue send a fresh in-stream snapshot for ``symbol``."""
        return []

    def snapshot_request(self, symbol: str, limit: int) -> tuple:
        """(path_and_query, request_weight) of the REST depth snapshot, for REST-snapshot venues."""
        raise NotImplementedError

    def parse_snapshot(self, symbol: str, body: bytes) -> Snapshot:
        """REST snapshot body (bytes) -> Snapshot; raises VenueError."""
        raise NotImplementedError

    def parse(self, text: str) -> list:
        """One WebSocket text message -> list of DepthUpdate / Trade / Quote / Control.
        Raises VenueError for anything malformed (the caller counts and drops it)."""
        raise NotImplementedError


# -- helpers shared by the JSON adapters ------------------------------------------------------

def split_stream(stream: str) -> tuple:
    """``"<venue channel>:<instrument>"`` -> (venue channel, instrument) (Venue.STREAM_CHANNELS)."""
    channel, _, inst = stream.partition(":")
    return channel, inst


def loads(text: str):
    """json.loads with the venue error type (malformed JSON is a VenueError, not a crash)."""
    try:
        return json.loads(text)
    except ValueError as exc:   # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise VenueError("malformed JSON: %s" % exc)
    except RecursionError:
        raise VenueError("malformed JSON: nested too deeply")


def req_int(obj: dict, key: str, what: str) -> int:
    """A non-negative integer field (ids, times); bools and floats are not ids."""
    value = obj.get(key)
    if type(value) is not int or value < 0 or value > 0x7FFFFFFFFFFFFFFF:
        raise VenueError("%s: field %r must be a non-negative integer, got %r" % (what, key, value))
    return value


def req_int_at_least(obj: dict, key: str, what: str, minimum: int) -> int:
    """An integer field at or above ``minimum`` (sequence ids: -1 marks "none" where a venue
    says so); bools and floats are not ids."""
    value = obj.get(key)
    if type(value) is not int or value < minimum or value > 0x7FFFFFFFFFFFFFFF:
        raise VenueError("%s: %r must be an integer >= %d, got %r" % (what, key, minimum, value))
    return value


def ms_text_ns(text, what: str) -> int:
    """A time given as a decimal string of ms since the epoch ("1652459225464") -> ns."""
    if type(text) is not str or not text.isdigit() or not text.isascii() \
            or len(text) > MAX_MS_DIGITS:
        raise VenueError("%s: ts must be a decimal string of ms, got %.40r" % (what, text))
    return int(text) * MS_TO_NS


def decimal_id(obj: dict, key: str, what: str) -> int:
    """An id sent as a decimal string ("242720720") -> int, within an i64."""
    text = req_str(obj, key, what)
    if not (text.isdigit() and text.isascii()) or len(text) > MAX_ID_DIGITS:
        raise VenueError("%s: %s must be a decimal string, got %.40r" % (what, key, text))
    return int(text)


def req_str(obj: dict, key: str, what: str) -> str:
    value = obj.get(key)
    if type(value) is not str:
        raise VenueError("%s: field %r must be a string, got %r" % (what, key, value))
    return value


def req_price(obj: dict, key: str, what: str, allow_zero: bool = False) -> int:
    return to_price(req_str(obj, key, what), what, allow_zero)


def to_price(text: str, what: str, allow_zero: bool = False) -> int:
    """A price string -> scaled int > 0 (>= 0 with allow_zero: empty sides of a quote)."""
    try:
        value = parse_price(text)
    except FixedPointError as exc:
        raise VenueError("%s: bad price %r: %s" % (what, text, exc))
    if value < 0 or (value == 0 and not allow_zero):
        raise VenueError("%s: price %r must be positive" % (what, text))
    return value


def to_qty(text: str, what: str) -> int:
    """A quantity string -> scaled int >= 0."""
    try:
        value = parse_price(text)
    except FixedPointError as exc:
        raise VenueError("%s: bad quantity %r: %s" % (what, text, exc))
    if value < 0:
        raise VenueError("%s: quantity %r is negative" % (what, text))
    return value


def to_trade_qty(text: str, what: str) -> int:
    """A traded quantity -> scaled int > 0: a trade of nothing did not happen, so a zero is
    bad data (dropped and counted), not a trade to publish."""
    value = to_qty(text, what)
    if value == 0:
        raise VenueError("%s: traded quantity %r is zero" % (what, text))
    return value


def tier_weight(limit: int, tiers: tuple) -> int:
    """A REST weight from a venue's tier table [(max limit, weight), ...] (ascending); limits
    above the last tier cost the last weight."""
    for max_limit, weight in tiers:
        if limit <= max_limit:
            return weight
    return tiers[-1][1]


def object_list(obj: dict, key: str, what: str, non_empty: bool = False) -> list:
    """``obj[key]`` as a list of JSON objects (the arrays of records venues push), or a
    VenueError naming the field."""
    items = obj.get(key)
    if type(items) is not list or (non_empty and not items):
        raise VenueError("%s: %s must be a %slist" % (what, key, "non-empty " if non_empty else ""))
    for item in items:
        if type(item) is not dict:
            raise VenueError("%s: %s items must be objects" % (what, key))
    return items


def data_items(msg: dict, what: str, non_empty: bool = False) -> list:
    """``msg["data"]`` as a list of objects (Bybit, OKX, Bitget, Kraken push arrays of records)."""
    return object_list(msg, "data", what, non_empty)


def taker_side(value, buy_word: str, sell_word: str, what: str) -> int:
    """The venue's word for the taker's side -> SIDE_BUY / SIDE_SELL."""
    if value == buy_word:
        return SIDE_BUY
    if value == sell_word:
        return SIDE_SELL
    raise VenueError("%s: side must be %s or %s, got %r" % (what, buy_word, sell_word, value))


def levels_flat(levels: list, what: str) -> list:
    """[["price", "qty", ...], ...] -> flat [p0, q0, p1, q1, ...] of scaled ints (validated)."""
    if type(levels) is not list:
        raise VenueError("%s: levels must be a list, got %r" % (what, type(levels).__name__))
    out = []
    for level in levels:
        if type(level) is not list or len(level) < 2 or type(level[0]) is not str \
                or type(level[1]) is not str:
            raise VenueError("%s: level %r is not [\"price\", \"qty\"]" % (what, level))
        out.append(to_price(level[0], what))
        out.append(to_qty(level[1], what))
    return out
