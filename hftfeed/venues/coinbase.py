"""Coinbase Advanced Trade market data: in-stream ``level2`` snapshots + updates, one
``sequence_num`` per connection (venue id 5). Facts and their sources: docs/venues.md.

- endpoint ``wss://advanced-trade-ws.coinbase.com``; a request names one channel:
  ``{"type":"subscribe","product_ids":[..],"channel":"level2"}`` (``unsubscribe`` alike); the
  public channels need no authentication; each request is answered by a ``subscriptions``
  message listing everything the connection now receives;
- every message has the envelope ``{"channel":..,"client_id":"","timestamp":"RFC 3339 ns",
  "sequence_num":N,"events":[..]}``; ``sequence_num`` counts the messages of the *connection*,
  all channels together: a number more than one above the last means messages were lost (of
  any channel, so of any instrument), a lower one is late and can be ignored;
- ``level2`` (messages on channel ``l2_data``): an event ``{"type":"snapshot"|"update",
  "product_id":..,"updates":[{"side":"bid"|"offer","event_time":..,"price_level":..,
  "new_quantity":..}]}``; the snapshot is the whole book, an update carries absolute new
  quantities (``"0"`` removes the level). No per-product update id exists;
- ``market_trades``: events of ``{"type":..,"trades":[{"trade_id","product_id","price","size",
  "side","time"}]}``; ``side`` is the *maker's* side, so the taker (aggressor) is the other one;
  the ``snapshot`` event after subscribing (recent history) is not published;
- ``ticker``: events of ``{"type":..,"tickers":[{"product_id","best_bid","best_bid_quantity",
  "best_ask","best_ask_quantity",..}]}``;
- ``heartbeats``: one message a second on a subscribed connection; channels without updates
  close after 60-90 s otherwise, so the adapter always subscribes it.

Gap policy: a ``sequence_num`` hole resyncs every instrument of the connection by
*re-subscribing level2* for each (unsubscribe + subscribe: the venue answers with a fresh
snapshot), not by reconnecting: the trades and tickers of the connection keep flowing, there is
no new TLS handshake, and Coinbase rate-limits connection attempts per IP.
"""

import calendar
import json

from hftfeed.core.sync import ConnectionSequenceRule
from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_SUBSCRIBED, ConnSequence,
                                  Control, DepthUpdate, Quote, Trade)
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.base import (Venue, decimal_id, loads, object_list, req_int, req_str,
                                 taker_side, to_price, to_qty, to_trade_qty)

_JSON_COMPACT = (",", ":")
HEARTBEATS = "heartbeats"
# our channel names -> Coinbase subscription channels
MAX_NS = 2 ** 63 - 1


def rfc3339_ns(text, what):
    """``2023-02-09T20:32:50.714964855Z`` -> ns since the epoch (VenueError when malformed)."""
    if type(text) is not str or len(text) < 20 or len(text) > 40 or text[-1] != "Z" \
            or text[4] != "-" or text[7] != "-" or text[10] != "T" or text[13] != ":" \
            or text[16] != ":":
        raise VenueError("%s: bad timestamp %r" % (what, text))
    try:
        year, month, day = int(text[0:4]), int(text[5:7]), int(text[8:10])
        hour, minute, sec = int(text[11:13]), int(text[14:16]), int(text[17:19])
        frac = text[19:-1]
        if frac:
            digits = frac[1:]
            if frac[0] != "." or not digits.isdigit() or not digits.isascii() or len(digits) > 9:
                raise ValueError(frac)
            frac_ns = int(digits.ljust(9, "0"))
        else:
            frac_ns = 0
        if not (1970 <= year <= 2200 and 1 <= month <= 12 and 1 <= day <= 31 and hour < 24
                and minute < 60 and sec < 61):
            raise ValueError(text)
        secs = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0))
    except ValueError:
        raise VenueError("%s: bad timestamp %r" % (what, text)) from None
    return secs * 1000000000 + frac_ns


class CoinbaseRule(ConnectionSequenceRule):
    """Coinbase: the connection's ``sequence_num`` is the only id; checked per connection by
    the router, per instrument it only has to grow (the venue-neutral model in core/sync.py)."""


class Coinbase(Venue):
    SPEC = registry.spec("coinbase")   # id, name, default URLs: venues/registry.py
    NAME = SPEC.name
    VENUE_ID = SPEC.wire_id
    DEFAULT_WS_URL = SPEC.ws_url
    DEFAULT_REST_URL = SPEC.rest_url
    MAX_STREAMS_PER_CONNECTION = 300
    MAX_OUT_MSGS_PER_S = 5.0          # below the venue's per-IP request budget
    SUBSCRIBE_ACKS = True             # every request is answered by a "subscriptions" message
    STREAM_CHANNELS = (("depth", "level2"), ("trade", "market_trades"), ("bookTicker", "ticker"))
    # level2's snapshot is the whole book in one message: several MB for BTC-USD (tens of
    # thousands of levels at ~100 bytes each), and there is no other way to get a book. Up to
    # the WebSocket transport's own 16 MiB cap it is parsed, not dropped as oversized.
    MAX_MESSAGE_CHARS = 16 * 2 ** 20
    rule = CoinbaseRule()

    @classmethod
    def venue_symbol(cls, symbol):
        """Coinbase product ids are upper-case with a dash (``BTC-USD``)."""
        return symbol.upper()

    def subscribe_messages(self, streams):
        """Heartbeats first (keeps quiet channels open), then one request per channel."""
        out = [_request("subscribe", HEARTBEATS, None)]
        for channel, products in self.streams_by_channel(streams):
            out.append(_request("subscribe", channel, products))
        return out

    def resubscribe_messages(self, symbol):
        """Unsubscribe + subscribe level2: the answer is a fresh snapshot of the product."""
        if "depth" not in self.channels:
            return []
        products = [self.venue_symbol(symbol)]
        return [_request("unsubscribe", "level2", products),
                _request("subscribe", "level2", products)]

    # -- stream messages ------------------------------------------------------------------------

    def parse(self, text):
        msg = loads(text)
        if type(msg) is not dict:
            raise VenueError("expected a JSON object, got %s" % type(msg).__name__)
        channel = msg.get("channel")
        if type(channel) is not str:
            if msg.get("type") == "error":
                return [Control(CTRL_ERROR, str(msg.get("message", "")))]
            raise VenueError("neither a channel message nor an error: %.80s" % text)
        seq = req_int(msg, "sequence_num", channel)
        events = msg.get("events")
        if type(events) is not list:
            raise VenueError("%s: events must be a list" % channel)
        for event in events:
            if type(event) is not dict:
                raise VenueError("%s: events must be objects" % channel)
        out = [ConnSequence(seq)]
        if channel == "l2_data":
            exch_ns = rfc3339_ns(msg.get("timestamp"), channel)
            for event in events:
                out.append(parse_l2_event(event, seq, exch_ns))
        elif channel == "market_trades":
            for event in events:
                parse_trades(event, out)
        elif channel == "ticker":
            exch_ns = rfc3339_ns(msg.get("timestamp"), channel)
            for event in events:
                parse_tickers(event, seq, exch_ns, out)
        elif channel == "subscriptions":
            out.append(Control(CTRL_SUBSCRIBED, ""))
        elif channel != HEARTBEATS:
            out.append(Control(CTRL_IGNORED, channel))
        return out


def _request(kind, channel, products):
    req = {"type": kind}
    if products is not None:
        req["product_ids"] = list(products)
    req["channel"] = channel
    return json.dumps(req, separators=_JSON_COMPACT)


def parse_l2_event(event, seq, exch_ns):
    """One ``l2_data`` event -> DepthUpdate whose ids are the message's ``sequence_num``."""
    what = "l2_data"
    kind = event.get("type")
    if kind != "snapshot" and kind != "update":
        raise VenueError("%s: type must be snapshot or update, got %r" % (what, kind))
    product = req_str(event, "product_id", what)
    bids = []
    asks = []
    for level in object_list(event, "updates", what):
        side = level.get("side")
        if side == "bid":
            target = bids
        elif side == "offer":
            target = asks
        else:
            raise VenueError("%s: side must be bid or offer, got %r" % (what, side))
        target.append(to_price(req_str(level, "price_level", what), what))
        target.append(to_qty(req_str(level, "new_quantity", what), what))
    return DepthUpdate(product, seq, seq, -1, exch_ns, bids, asks, kind == "snapshot")


def parse_trades(event, out):
    """``market_trades`` event -> Trades. ``side`` is the maker's: the aggressor is opposite.

    A ``snapshot`` event (the recent trades Coinbase sends right after subscribing) is checked
    and left out: those trades happened before this connection, and a consumer of the feed
    takes every T message for a live print (the other venues send no trade history either)."""
    what = "market_trades"
    trades = object_list(event, "trades", what)
    kind = event.get("type")
    if kind == "snapshot":
        out = []                        # validated below, then dropped
    elif kind != "update":
        raise VenueError("%s: type must be snapshot or update, got %r" % (what, kind))
    for item in trades:
        # ``side`` is the maker's: the taker (aggressor) bought when the maker sold
        aggressor = taker_side(item.get("side"), "SELL", "BUY", what)
        out.append(Trade(req_str(item, "product_id", what), decimal_id(item, "trade_id", what),
                         to_price(req_str(item, "price", what), what),
                         to_trade_qty(req_str(item, "size", what), what), aggressor,
                         rfc3339_ns(item.get("time"), what)))


def parse_tickers(event, seq, exch_ns, out):
    """``ticker`` event -> Quotes (best bid/offer), id = the message's ``sequence_num``."""
    what = "ticker"
    for item in object_list(event, "tickers", what):
        out.append(Quote(req_str(item, "product_id", what), seq,
                         to_price(req_str(item, "best_bid", what), what, True),
                         to_qty(req_str(item, "best_bid_quantity", what), what),
                         to_price(req_str(item, "best_ask", what), what, True),
                         to_qty(req_str(item, "best_ask_quantity", what), what), exch_ns))
