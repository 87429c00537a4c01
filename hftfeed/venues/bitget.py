"""Bitget v2 public WebSocket: ``books`` with ``seq``/``pseq`` and a CRC32 checksum, ``trade``,
``ticker`` (venue id 11 spot, 12 USDT-M futures).

Facts (Bitget v2 API docs "Websocket API" overview, "Depth Channel", "Trade Channel", "Tickers
Channel"; sources and dates in docs/venues.md):
- endpoint ``wss://ws.bitget.com/v2/ws/public``; subscribe with
  ``{"op":"subscribe","args":[{"instType":"SPOT","channel":"books","instId":"BTCUSDT"}, ..]}``;
  every arg is acknowledged on its own ``{"event":"subscribe","arg":{..}}``; failures come as
  ``{"event":"error","code":..,"msg":..}``. The market is the ``instType`` (``SPOT``,
  ``USDT-FUTURES``): the same ``BTCUSDT`` names a spot pair and a perpetual, so each market is
  its own registry entry and wire id;
- keepalive: the client sends the text ``ping`` every 30 s and gets the text ``pong``; a
  connection without a ping for 2 minutes is closed; 10 messages a second, ``ping`` included;
- ``books`` (full depth): ``action`` ``snapshot`` after subscribing, then ``update``; levels
  ``[price, size]``, size "0" deletes; ``seq`` numbers the messages of one instrument and
  ``pseq`` names the previous one; after a release or restart the numbers may start again
  lower, the next message "most likely" with ``pseq`` 0. So ids are compared by identity,
  never by size, exactly OKX's ``seqId``/``prevSeqId`` rule (:class:`BitgetRule`: a reset
  breaks the chain and resyncs; a smaller ``seq`` is never "already applied", which froze
  the book until 2026-12-05); ``checksum`` is the signed CRC32 of
  ``bid1px:bid1sz:ask1px:ask1sz:...`` over the best 25 levels a side, built from the strings
  sent (OKX's construction: :func:`hftfeed.venues.okx.book_checksum`); 0 is not verified;
- ``trade``: ``side`` is the taker's, ``tradeId`` a decimal string, ``ts`` ms as a string;
- ``ticker``: best bid/ask as ``bidPr``/``bidSz``/``askPr``/``askSz`` (no id: published as 0).
"""

import json
import logging

from hftfeed.core.updates import (CTRL_ERROR, CTRL_IGNORED, CTRL_PONG, CTRL_SUBSCRIBED, Control,
                                  DepthUpdate, Quote, Trade)
from hftfeed.errors import VenueError
from hftfeed.venues import registry
from hftfeed.venues.base import (Venue, data_items, decimal_id, levels_flat, loads, ms_text_ns,
                                 req_int_at_least, req_price, req_str, split_stream, taker_side,
                                 to_qty, to_trade_qty)
from hftfeed.venues.okx import ChecksumGate, OkxRule

log = logging.getLogger("hftfeed.exchanges.bitget")

MAX_ARGS_PER_REQUEST = 40
_JSON_COMPACT = (",", ":")


class BitgetRule(OkxRule):
    """OKX's rule, unchanged: ``pseq`` must be the ``seq`` the book ended on, ids are compared
    by identity (Bitget's numbers may restart lower after a release, as OKX's after
    maintenance), a non-zero checksum (OKX's construction) must match the book."""


class Bitget(Venue):
    SPEC = registry.spec("bitget")   # id, name, default URLs: venues/registry.py
    INST_TYPE = "SPOT"
    MAX_STREAMS_PER_CONNECTION = 1000
    MAX_OUT_MSGS_PER_S = 5.0
    APP_PING_TEXT = "ping"
    APP_PING_INTERVAL_S = 25.0
    APP_PING_ALWAYS = True          # Bitget wants a ping every 30 s whatever the traffic
    SUBSCRIBE_ACKS = True
    STREAM_CHANNELS = (("depth", "books"), ("trade", "trade"), ("bookTicker", "ticker"))
    rule = BitgetRule()

    def __init__(self, symbols, channels, depth_speed="100ms"):
        Venue.__init__(self, symbols, channels, depth_speed)
        self._checksums = ChecksumGate("bitget", "seq/pseq", log)

    @classmethod
    def venue_symbol(cls, symbol):
        return symbol.upper()

    def subscribe_messages(self, streams):
        """One request per 40 args; only the last arg's ack counts (one per request)."""
        return [self._request("subscribe", streams[i:i + MAX_ARGS_PER_REQUEST])
                for i in range(0, len(streams), MAX_ARGS_PER_REQUEST)]

    def resubscribe_messages(self, symbol):
        """Unsubscribe + subscribe ``books``: a subscription starts with a new snapshot."""
        if "depth" not in self.channels:
            return []
        stream = "books:" + self.venue_symbol(symbol)
        return [self._request("unsubscribe", [stream]), self._request("subscribe", [stream])]

    def _request(self, op, streams):
        args = []
        for stream in streams:
            channel, inst = split_stream(stream)
            args.append({"instType": self.INST_TYPE, "channel": channel, "instId": inst})
        return json.dumps({"op": op, "args": args}, separators=_JSON_COMPACT)

    # -- stream messages ------------------------------------------------------------------------

    def parse(self, text):
        if text == "pong":
            return [Control(CTRL_PONG, "pong")]
        msg = loads(text)
        if type(msg) is not dict:
            raise VenueError("expected a JSON object, got %s" % type(msg).__name__)
        event = msg.get("event")
        if event is not None:
            return [_event(msg, event)]
        arg = msg.get("arg")
        if type(arg) is not dict:
            raise VenueError("push message without an 'arg' object")
        channel = arg.get("channel")
        if channel == "books":
            return self._books(msg, arg)
        if channel == "trade":
            return _trades(msg, arg)
        if channel == "ticker":
            return _tickers(msg)
        return [Control(CTRL_IGNORED, str(channel))]

    def _books(self, msg, arg):
        what = "books"
        inst = req_str(arg, "instId", what)
        action = msg.get("action")
        if action != "snapshot" and action != "update":
            raise VenueError("books %s: action must be snapshot or update, got %r" % (inst, action))
        out = []
        for item in data_items(msg, "books " + inst, non_empty=True):
            raw_bids = item.get("bids")
            raw_asks = item.get("asks")
            bids = levels_flat(raw_bids, what)
            asks = levels_flat(raw_asks, what)
            seq = req_int_at_least(item, "seq", what, 1)
            pseq = -1 if action == "snapshot" else req_int_at_least(item, "pseq", what, 0)
            checksum = self._checksums.checksum(inst, item, raw_bids, raw_asks)
            out.append(DepthUpdate(inst, seq, seq, pseq, ms_text_ns(item.get("ts"), what),
                                   bids, asks, action == "snapshot", checksum))
        return out


class BitgetFutures(Bitget):
    """Bitget USDT-M futures: the same channels and rules with ``instType`` USDT-FUTURES."""

    SPEC = registry.spec("bitget-futures")
    INST_TYPE = "USDT-FUTURES"


def _event(msg, event):
    if event == "subscribe":
        return Control(CTRL_SUBSCRIBED, "subscribe")
    if event == "error":
        return Control(CTRL_ERROR, "%s %s" % (msg.get("code"), msg.get("msg")))
    return Control(CTRL_IGNORED, str(event))


def _trades(msg, arg):
    what = "trade"
    inst = req_str(arg, "instId", what)
    out = []
    for item in data_items(msg, what):
        out.append(Trade(inst, decimal_id(item, "tradeId", what), req_price(item, "price", what),
                         to_trade_qty(req_str(item, "size", what), what),
                         taker_side(item.get("side"), "buy", "sell", what),
                         ms_text_ns(item.get("ts"), what)))
    return out


def _tickers(msg):
    what = "ticker"
    out = []
    for item in data_items(msg, what):
        out.append(Quote(req_str(item, "instId", what), 0,
                         req_price(item, "bidPr", what, allow_zero=True),
                         to_qty(req_str(item, "bidSz", what), what),
                         req_price(item, "askPr", what, allow_zero=True),
                         to_qty(req_str(item, "askSz", what), what),
                         ms_text_ns(item.get("ts"), what)))
    return out
