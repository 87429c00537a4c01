"""Deribit JSON-RPC over WebSocket: futures, perpetuals and options (venue id 10).

Facts from Deribit's API docs ("Notifications", "public/subscribe", "public/set_heartbeat",
"public/test", the "book.(instrument_name).(interval)", "trades.(instrument_name).(interval)" and
"quote.(instrument_name)" subscription pages; read 2026-12-05, see docs/venues.md):
- one endpoint, ``wss://www.deribit.com/ws/api/v2``; requests are JSON-RPC 2.0
  ``{"jsonrpc":"2.0","id":..,"method":"public/subscribe","params":{"channels":[..]}}``, answered
  ``{"jsonrpc":"2.0","id":..,"result":[channels]}`` or ``{"id":..,"error":{"code","message"}}``;
- data arrives as notifications ``{"method":"subscription","params":{"channel":..,"data":..}}``;
- ``book.{instrument}.100ms``: the first notification is the whole book (``type`` "snapshot"),
  the next ones changes (``type`` "change") as ``[action, price, amount]`` with action
  ``new``/``change``/``delete``; every notification has ``change_id``, every one but the first
  ``prev_change_id``, and "if prev_change_id equals the change_id of the previous message, no
  messages were missed": a change-id chain (:class:`hftfeed.core.sync.PrevIdChainRule`);
- ``trades.{instrument}.100ms``: ``data`` is a list; ``direction`` is the taker's side,
  ``trade_seq`` an integer sequence per instrument (used as the wire trade id: ``trade_id`` is a
  string), ``amount`` USD for futures and perpetuals, coins for options;
- ``quote.{instrument}``: best bid/ask price and amount, no update id (published with id 0, like
  OKX's bbo-tbt);
- prices and amounts are JSON *numbers*: converted to scaled ints exactly (see :func:`_loads`:
  short literals through ``repr`` of the double, longer ones from their literal text);
- heartbeat: after ``public/set_heartbeat`` (interval >= 10 s) the server sends
  ``{"method":"heartbeat","params":{"type":"heartbeat"|"test_request"}}``; a ``test_request``
  must be answered with a ``public/test`` request or the connection is closed. The answer is a
  :data:`~hftfeed.core.updates.CTRL_REPLY` the connection sends back on the same link.
Request ids say what a response answers: 1 set_heartbeat, 2 public/test, 3 unsubscribe, and
100 upwards subscribe (so a stateless parser can classify every response).
"""

import json
import re
from decimal import Decimal, InvalidOperation

from hftfeed.core.sync import PrevIdChainRule
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_REPLY,
                                  CTRL_SUBSCRIBED, Control, DepthUpdate, Quote, Trade)
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.base import MS_TO_NS, Venue, data_items, taker_side, to_price

MAX_MS = 2 ** 62 // MS_TO_NS
HEARTBEAT_INTERVAL_S = 10                # the smallest interval Deribit accepts
MAX_CHANNELS_PER_REQUEST = 100           # our choice: keeps each request a few KB
ID_HEARTBEAT = 1
ID_TEST = 2
ID_UNSUBSCRIBE = 3
ID_SUBSCRIBE = 100
_LONG_DIGIT_RUN = re.compile(r"[0-9.]{16,}")
_STRIKE_POINT = re.compile(r"(?<=[0-9])D(?=[0-9])")
_ACTIONS = frozenset(("new", "change", "delete"))
_JSON_COMPACT = (",", ":")
# Built once: the answer to every test_request.
TEST_REPLY = json.dumps({"jsonrpc": "2.0", "id": ID_TEST, "method": "public/test", "params": {}},
                        separators=_JSON_COMPACT)


class Deribit(Venue):
    SPEC = registry.spec("deribit")   # id, name, default URLs: venues/registry.py
    MAX_STREAMS_PER_CONNECTION = 500
    MAX_OUT_MSGS_PER_S = 5.0
    SUBSCRIBE_ACKS = True
    rule = PrevIdChainRule()

    @classmethod
    def venue_symbol(cls, symbol):
        """Deribit's spelling: upper-case (``BTC-PERPETUAL``, ``BTC-27DEC26-100000-C``) except
        the ``d`` standing for a decimal point in a strike (``XRP_USDC-27DEC26-1d5-P``)."""
        return _STRIKE_POINT.sub("d", symbol.upper())

    def streams_for(self, symbol, channels=None):
        inst = self.venue_symbol(symbol)
        names = []
        for channel in (self.channels if channels is None else channels):
            if channel == "depth":
                names.append("book.%s.100ms" % inst)
            elif channel == "trade":
                names.append("trades.%s.100ms" % inst)
            elif channel == "bookTicker":
                names.append("quote." + inst)
        return names

    def connection_path(self, streams):
        return ""       # the URL is fixed; channels are subscribed with requests

    def subscribe_messages(self, streams):
        out = [_request(ID_HEARTBEAT, "public/set_heartbeat", {"interval": HEARTBEAT_INTERVAL_S})]
        for i in range(0, len(streams), MAX_CHANNELS_PER_REQUEST):
            out.append(_request(ID_SUBSCRIBE + i // MAX_CHANNELS_PER_REQUEST, "public/subscribe",
                                {"channels": list(streams[i:i + MAX_CHANNELS_PER_REQUEST])}))
        return out

    def resubscribe_messages(self, symbol):
        """Unsubscribe + subscribe the book channel: its first notification is a new snapshot."""
        if "depth" not in self.channels:
            return []
        channel = {"channels": ["book.%s.100ms" % self.venue_symbol(symbol)]}
        return [_request(ID_UNSUBSCRIBE, "public/unsubscribe", channel),
                _request(ID_SUBSCRIBE, "public/subscribe", channel)]

    def parse(self, text):
        msg = _loads(text)
        if type(msg) is not dict:
            raise VenueError("expected a JSON object, got %s" % type(msg).__name__)
        method = msg.get("method")
        if method == "subscription":
            params = msg.get("params")
            if type(params) is not dict:
                raise VenueError("subscription without a params object")
            channel = params.get("channel")
            if type(channel) is not str:
                raise VenueError("subscription channel must be a string, got %r" % (channel,))
            data = params.get("data")
            if channel.startswith("book."):
                return [parse_book(data, channel)]
            if channel.startswith("trades."):
                return parse_trades(params, channel)
            if channel.startswith("quote."):
                return [parse_quote(data, channel)]
            return [Control(CTRL_IGNORED, channel)]
        if method == "heartbeat":
            params = msg.get("params")
            kind = params.get("type") if type(params) is dict else None
            if kind == "test_request":
                return [Control(CTRL_REPLY, TEST_REPLY)]
            if kind == "heartbeat":
                return [Control(CTRL_PONG, "heartbeat")]
            raise VenueError("heartbeat of unknown type %r" % (kind,))
        if "id" in msg:
            return [_response(msg)]
        raise VenueError("neither a notification nor a response: %.80s" % text)


def _request(request_id, method, params):
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params},
                      separators=_JSON_COMPACT)


def _loads(text):
    """JSON whose numbers convert to scaled ints exactly.

    A float literal of at most 15 significant digits round-trips through a binary double:
    ``repr`` gives back the same decimal value (the shortest string naming that double), so
    the plain, fast ``json.loads`` is exact for messages whose digit runs are all shorter than
    16 characters. Any longer run takes ``parse_float=str`` (the literal text itself), which is
    exact for any length but 10x slower on PyPy (its JSON fast path is lost)."""
    try:
        if _LONG_DIGIT_RUN.search(text) is None:
            return json.loads(text)
        return json.loads(text, parse_float=str)
    except ValueError as exc:
        raise VenueError("malformed JSON: %s" % exc)
    except RecursionError:
        raise VenueError("malformed JSON: nested too deeply")


def _response(msg):
    """An answer to one of our requests (its id says which, see the module docstring)."""
    request_id = msg.get("id")
    error = msg.get("error")
    if error is not None:
        if type(error) is not dict:
            raise VenueError("response error must be an object")
        return Control(CTRL_ERROR, "%s %s" % (error.get("code"), error.get("message")))
    if "result" not in msg:
        raise VenueError("response %r without result or error" % (request_id,))
    if request_id == ID_TEST:
        return Control(CTRL_PONG, "public/test")
    if request_id == ID_UNSUBSCRIBE:
        return Control(CTRL_IGNORED, "unsubscribed")
    if request_id == ID_HEARTBEAT or (type(request_id) is int and request_id >= ID_SUBSCRIBE):
        return Control(CTRL_SUBSCRIBED, str(request_id))
    return Control(CTRL_IGNORED, "response %.40r" % (request_id,))


def number(value, what, allow_zero=True):
    """A JSON number from :func:`_loads` (an int, a float of at most 15 significant digits, or
    a longer float's literal text) -> scaled int."""
    if type(value) is int:
        text = str(value)
    elif type(value) is float or type(value) is str:
        text = repr(value) if type(value) is float else value
        if "e" in text or "E" in text:          # 5e-05: rewrite without the exponent
            try:
                text = format(Decimal(text), "f")
            except (InvalidOperation, ValueError):
                raise VenueError("%s: bad number %r" % (what, value))
    else:
        raise VenueError("%s: expected a number, got %r" % (what, value))
    return to_price(text, what, allow_zero)


def _id(obj, key, what, minimum=0):
    value = obj.get(key)
    if type(value) is not int or value < minimum or value > 0x7FFFFFFFFFFFFFFF:
        raise VenueError("%s: %r must be an integer >= %d, got %r" % (what, key, minimum, value))
    return value


def _time_ns(obj, what):
    value = obj.get("timestamp")
    if type(value) is not int or value < 0 or value > MAX_MS:
        raise VenueError("%s: timestamp must be a time in ms, got %r" % (what, value))
    return value * MS_TO_NS


def _levels(levels, what):
    """``[[action, price, amount], ...]`` -> flat ``[p0, q0, ...]``; a delete is quantity 0."""
    if type(levels) is not list:
        raise VenueError("%s: levels must be a list" % what)
    out = []
    for level in levels:
        if type(level) is not list or len(level) != 3 or level[0] not in _ACTIONS:
            raise VenueError("%s: level %.60r is not [action, price, amount]" % (what, level))
        out.append(number(level[1], what, allow_zero=False))
        qty = number(level[2], what)
        out.append(0 if level[0] == "delete" else qty)
    return out


def parse_book(data, channel):
    """``book.{instrument}.{interval}`` -> DepthUpdate (a snapshot replaces the book)."""
    what = channel
    if type(data) is not dict:
        raise VenueError("%s: data must be an object" % what)
    kind = data.get("type")
    if kind != "snapshot" and kind != "change":
        raise VenueError("%s: type must be snapshot or change, got %r" % (what, kind))
    symbol = data.get("instrument_name")
    if type(symbol) is not str or not symbol:
        raise VenueError("%s: instrument_name must be a string" % what)
    change_id = _id(data, "change_id", what, 1)
    prev = -1 if kind == "snapshot" else _id(data, "prev_change_id", what)
    return DepthUpdate(symbol, change_id, change_id, prev, _time_ns(data, what),
                       _levels(data.get("bids"), what), _levels(data.get("asks"), what),
                       kind == "snapshot")


def parse_trades(params, channel):
    """``trades.{instrument}.{interval}`` -> [Trade] (one notification may carry several)."""
    what = channel
    out = []
    for item in data_items(params, what):
        symbol = item.get("instrument_name")
        if type(symbol) is not str or not symbol:
            raise VenueError("%s: instrument_name must be a string" % what)
        out.append(Trade(symbol, _id(item, "trade_seq", what),
                         number(item.get("price"), what, allow_zero=False),
                         number(item.get("amount"), what, allow_zero=False),   # a trade of nothing is bad data
                         taker_side(item.get("direction"), "buy", "sell", what),
                         _time_ns(item, what)))
    return out


def parse_quote(data, channel):
    """``quote.{instrument}`` -> Quote (id 0: the channel has none)."""
    what = channel
    if type(data) is not dict:
        raise VenueError("%s: data must be an object" % what)
    symbol = data.get("instrument_name")
    if type(symbol) is not str or not symbol:
        raise VenueError("%s: instrument_name must be a string" % what)
    return Quote(symbol, 0, _quote_num(data, "best_bid_price", what),
                 _quote_num(data, "best_bid_amount", what),
                 _quote_num(data, "best_ask_price", what),
                 _quote_num(data, "best_ask_amount", what), _time_ns(data, what))


def _quote_num(data, key, what):
    """An empty side is 0 (or null, as options without a bid show it)."""
    value = data.get(key)
    return 0 if value is None else number(value, what)
