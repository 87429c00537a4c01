"""Bybit v5 public linear (USDT/USDC perpetuals): in-stream snapshots + deltas (venue id 3).

Facts from Bybit's v5 docs ("Connect", "Orderbook", "Trade", the ping/pong examples):
- public linear endpoint ``wss://stream.bybit.com/v5/public/linear``; topics are requested with
  ``{"op":"subscribe","args":[...]}`` and each request is answered by
  ``{"success":true|false,"ret_msg":..,"conn_id":..,"op":"subscribe"}``;
- heartbeat: the client sends ``{"op":"ping"}``; the answer is
  ``{"success":true,"ret_msg":"pong",..,"op":"ping"}`` (spot answers ``"op":"pong"``); a public
  connection with neither pings nor data is cut after 10 minutes;
- ``orderbook.{depth}.{symbol}``: the first message after subscribing is a ``snapshot``, then
  ``delta``s; "if you receive a new snapshot message, you will have to reset your local
  orderbook"; ``u`` is the update id, consecutive in normal operation, and ``u == 1`` means the
  service restarted: that message carries the whole book and overwrites the local one;
  ``seq`` is the matching engine's cross sequence; a qty of "0" deletes the level;
- ``orderbook.1`` (level 1, 10 ms) only ever pushes snapshots, repeated with the same ``u`` when
  nothing changed for 3 s: it is the BBO stream used for the ``bookTicker`` channel;
- ``publicTrade.{symbol}``: ``data`` is a list; ``S`` is the taker side ("Buy"/"Sell"), ``i``
  the trade id (a UUID string on linear), ``T`` the trade time in ms, ``p``/``v`` price/size.
Not re-verified in the docs at hand (kept from the issue and earlier reading of Bybit's pages):
the 20 s ping interval Bybit recommends; at most 10 args per subscribe request (the spot
limit, applied here to linear too) and 21,000 characters of args per linear connection, which
is why a request carries at most 10 topics and a connection at most 500 (500 topics of <= 40
characters each stay below 21,000).
"""

import hashlib
import json
import logging

from hftfeed.core.sync import SyncRule
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_SUBSCRIBED,
                       Control, DepthUpdate, Quote, Trade)
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.base import (MS_TO_NS, Venue, data_items, levels_flat, loads, req_int, req_price, req_str, taker_side,
                   to_price, to_qty, to_trade_qty)

log = logging.getLogger("hftfeed.exchanges.bybit")

MAX_MS = 2 ** 62 // MS_TO_NS             # event times beyond this are absurd (and overflow u64 ns)
BOOK_DEPTH = 50                          # orderbook.50: 20 ms pushes, more than the 20 published
QUOTE_DEPTH = 1                          # orderbook.1: the BBO stream
MAX_ARGS_PER_REQUEST = 10                # Bybit's documented per-request cap (spot; kept for all)
_U64_MASK = (1 << 64) - 1
_HEX_DIGITS = "0123456789abcdefABCDEF"
_JSON_COMPACT = (",", ":")


class BybitRule(SyncRule):
    """Bybit continuity: every delta's ``u`` is the previous ``u + 1``; snapshots (including the
    ``u == 1`` restart message) replace the book and arrive in-stream."""

    snapshot_in_stream = True

    def stale_before_snapshot(self, snapshot_id, upd):
        return upd.last_id <= snapshot_id

    def bridges(self, snapshot_id, upd):
        return upd.last_id == snapshot_id + 1

    def stale_live(self, book_id, upd):
        return upd.last_id <= book_id     # a delta the book already holds (overlapping links)

    def continues(self, book_id, upd):
        return upd.last_id == book_id + 1                 # "u" consecutive: previous u + 1


def trade_id_to_int(text):
    """Bybit's string trade id -> a deterministic u64 for the wire (same input, same int, in
    every process: no ``hash()``, which is salted per process).

    Decimal ids that fit a u64 are used as they are; a UUID (linear) keeps its low 64 bits (the
    random part of a name-based UUID); anything else is hashed with BLAKE2b to 8 bytes."""
    if text.isdigit() and text.isascii() and len(text) <= 20:
        value = int(text)
        if value <= _U64_MASK:
            return value
    hexed = text.replace("-", "")
    if len(hexed) == 32 and not hexed.strip(_HEX_DIGITS):     # only hex digits: a UUID
        return int(hexed, 16) & _U64_MASK
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


def _time_ns(obj, key, what):
    value = obj.get(key)
    if type(value) is not int or value < 0 or value > MAX_MS:
        raise VenueError("%s: field %r must be a time in ms, got %r" % (what, key, value))
    return value * MS_TO_NS


class Bybit(Venue):
    SPEC = registry.spec("bybit")   # NAME, VENUE_ID, DEFAULT_*_URL come from it (base.py)
    MAX_STREAMS_PER_CONNECTION = 500
    MAX_OUT_MSGS_PER_S = 5.0
    APP_PING_TEXT = '{"op":"ping"}'
    APP_PING_INTERVAL_S = 20.0
    APP_PING_ALWAYS = True
    SUBSCRIBE_ACKS = True
    rule = BybitRule()

    @classmethod
    def venue_symbol(cls, symbol):
        """Bybit spells symbols upper-case (``BTCUSDT``) in topics and messages."""
        return symbol.upper()

    def streams_for(self, symbol, channels=None):
        sym = self.venue_symbol(symbol)
        names = []
        for channel in (self.channels if channels is None else channels):
            if channel == "depth":
                names.append("orderbook.%d.%s" % (BOOK_DEPTH, sym))
            elif channel == "trade":
                names.append("publicTrade." + sym)
            elif channel == "bookTicker":
                names.append("orderbook.%d.%s" % (QUOTE_DEPTH, sym))
        return names

    def connection_path(self, streams):
        return ""       # the URL is fixed; topics are subscribed with messages

    def subscribe_messages(self, streams):
        return [_request("subscribe", streams[i:i + MAX_ARGS_PER_REQUEST])
                for i in range(0, len(streams), MAX_ARGS_PER_REQUEST)]

    def resubscribe_messages(self, symbol):
        """Unsubscribe + subscribe the book topic: Bybit answers a subscription with a fresh
        snapshot ("after subscribing you receive a snapshot"), which replaces the stale book."""
        if "depth" not in self.channels:
            return []
        topic = "orderbook.%d.%s" % (BOOK_DEPTH, self.venue_symbol(symbol))
        return [_request("unsubscribe", [topic]), _request("subscribe", [topic])]

    # -- stream messages ------------------------------------------------------------------------

    def parse(self, text):
        msg = loads(text)
        if type(msg) is not dict:
            raise VenueError("expected a JSON object, got %s" % type(msg).__name__)
        topic = msg.get("topic")
        if topic is not None:
            if type(topic) is not str:
                raise VenueError("topic must be a string, got %r" % (topic,))
            if topic.startswith("orderbook."):
                return [parse_orderbook(msg, topic)]
            if topic.startswith("publicTrade."):
                return parse_trades(msg)
            return [Control(CTRL_IGNORED, topic)]
        op = msg.get("op")
        if type(op) is str:
            return [_op_reply(msg, op)]
        raise VenueError("neither a topic message nor an op reply: %.80s" % text)


def _request(op, args):
    return json.dumps({"op": op, "args": list(args)}, separators=_JSON_COMPACT)


def _op_reply(msg, op):
    """Replies to our own requests: subscribe acks, pongs, errors."""
    success = msg.get("success")
    if op == "pong" or (op == "ping" and success is not False):
        return Control(CTRL_PONG, str(msg.get("ret_msg", "")))
    if success is False:
        return Control(CTRL_ERROR, "%s: %s" % (op, msg.get("ret_msg", "")))
    if success is not True:
        raise VenueError("%s reply without a boolean 'success'" % op)
    if op == "subscribe":
        return Control(CTRL_SUBSCRIBED, str(msg.get("conn_id", "")))
    return Control(CTRL_IGNORED, op)          # unsubscribe acks and other ops


def parse_orderbook(msg, topic):
    """``orderbook.{depth}.{symbol}`` -> DepthUpdate (``orderbook.1``: Quote)."""
    what = topic
    data = msg.get("data")
    if type(data) is not dict:
        raise VenueError("%s: data must be an object" % what)
    kind = msg.get("type")
    if kind != "snapshot" and kind != "delta":
        raise VenueError("%s: type must be snapshot or delta, got %r" % (what, kind))
    symbol = req_str(data, "s", what)
    update_id = req_int(data, "u", what)
    if update_id == 0:
        raise VenueError("%s: update id 0" % what)
    exch_ns = _time_ns(msg, "ts", what)
    if topic.startswith("orderbook.1."):
        return _quote(data, symbol, kind, update_id, exch_ns, what)
    # A snapshot replaces the book; so does u == 1 (the service restarted), whatever its type.
    return DepthUpdate(symbol, update_id, update_id, -1, exch_ns,
                       levels_flat(data.get("b"), what), levels_flat(data.get("a"), what),
                       kind == "snapshot" or update_id == 1)


def _quote(data, symbol, kind, update_id, exch_ns, what):
    """Level-1 book -> Quote. Level 1 only sends snapshots (docs), so an empty side is empty.

    The quote id is ``seq`` (the matching engine's cross sequence) when present: the supervisor
    drops quotes whose id does not grow, and ``u`` restarts at 1 with the market-data service
    while ``seq`` keeps growing. (Inferred from the field's meaning; not stated in the docs.)"""
    if kind != "snapshot" and update_id != 1:
        raise VenueError("%s: level-1 books only send snapshots, got a delta" % what)
    bid_px, bid_qty = _top_level(data.get("b"), what)
    ask_px, ask_qty = _top_level(data.get("a"), what)
    seq = data.get("seq")
    quote_id = seq if type(seq) is int and 0 < seq <= 0x7FFFFFFFFFFFFFFF else update_id
    return Quote(symbol, quote_id, bid_px, bid_qty, ask_px, ask_qty, exch_ns)


def _top_level(levels, what):
    if type(levels) is not list or len(levels) > 1:
        raise VenueError("%s: a level-1 side must be a list of at most one level" % what)
    if not levels:
        return 0, 0
    level = levels[0]
    if type(level) is not list or len(level) < 2 or type(level[0]) is not str \
            or type(level[1]) is not str:
        raise VenueError("%s: level %r is not [\"price\", \"qty\"]" % (what, level))
    return to_price(level[0], what), to_qty(level[1], what)


def parse_trades(msg):
    """``publicTrade.{symbol}`` -> [Trade] (one message may carry several trades)."""
    what = "publicTrade"
    out = []
    for item in data_items(msg, what):
        aggressor = taker_side(item.get("S"), "Buy", "Sell", what)   # S: the taker's side
        trade_id = req_str(item, "i", what)
        if not trade_id:
            raise VenueError("publicTrade: empty trade id")
        out.append(Trade(req_str(item, "s", what), trade_id_to_int(trade_id),
                         req_price(item, "p", what), to_trade_qty(req_str(item, "v", what), what),
                         aggressor, _time_ns(item, "T", what)))
    return out


class BybitSpot(Bybit):
    """Bybit v5 spot (``/v5/public/spot``): the linear protocol and rule. What differs is
    handled by the shared parser: a ping is answered with ``"op":"pong"`` and trade ids are
    decimal strings (kept as they are on the wire, see :func:`trade_id_to_int`)."""

    SPEC = registry.spec("bybit-spot")


class BybitInverse(Bybit):
    """Bybit v5 inverse (coin-margined contracts, ``/v5/public/inverse``): the linear protocol,
    depths and rule unchanged."""

    SPEC = registry.spec("bybit-inverse")
