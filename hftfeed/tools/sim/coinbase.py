"""The Coinbase Advanced Trade market-data dialect of the simulator (pure, no I/O).

Facts implemented (sources and dates: docs/venues.md "Coinbase"):

* one endpoint (the root path); a request names one channel:
  ``{"type":"subscribe"|"unsubscribe","product_ids":[..],"channel":..}``; ``heartbeats`` takes
  no products. Each request is answered by a ``subscriptions`` message listing every channel
  and product the connection now receives; a bad request gets ``{"type":"error",
  "message":..}`` (no sequence number);
* every other message has the envelope ``{"channel","client_id":"","timestamp","sequence_num",
  "events"}`` and ``sequence_num`` counts the messages of *this connection*, from 0, across all
  channels: each session stamps its own number on each payload as it is queued (``stamp``);
* ``level2`` -> channel ``l2_data``: right after subscribing, a ``snapshot`` event with the
  whole book; then ``update`` events with absolute new quantities (``"0"`` removes a level),
  ``side`` ``bid``/``offer``;
* ``market_trades``: ``side`` is the maker's side (the engine's aggressor, inverted);
* ``ticker``: best bid/offer with quantities, and the last trade price;
* ``heartbeats``: one message a second per subscribed connection, ``heartbeat_counter`` growing.

A ``drop_diff`` fault loses the message *in transit*: every connection that would have
received it skips its number (``on_lost``), which is how a real loss shows on Coinbase.

Simplifications: the ticker is pushed on every best bid/offer change (Coinbase pushes it on
every match, with the same fields); no ``market_trades`` snapshot on subscribe; the venue's
"subscribe within 5 s" and "quiet channels close after 60-90 s" rules are not enforced.
"""

import json
import time

from hftfeed.tools.sim.decimals import decimals_for, fixed
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SIDE_BUY, spec_for
from hftfeed.tools.sim.mirror import MirrorBook
from hftfeed.tools.sim.session import MALFORMED, JsonSession, MessageDialect

VENUE = "coinbase"
HEARTBEATS = "heartbeats"
CHANNELS = ("level2", "market_trades", "ticker")
MAX_STREAMS_PER_CONNECTION = 1024
SEQ_PLACEHOLDER = b'"sequence_num":-1,'
_JSON = (",", ":")


def rfc3339(ns):
    """ns since the epoch -> ``2023-02-09T20:32:50.714964855Z`` (Coinbase's timestamps)."""
    secs, frac = divmod(ns, 1000000000)
    return "%s.%09dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)), frac)


def envelope(channel, ts, events):
    """A channel message with the sequence placeholder the session stamps per connection."""
    return ('{"channel":"%s","client_id":"","timestamp":"%s","sequence_num":-1,"events":[%s]}'
            % (channel, ts, events))


def error_message(text):
    return json.dumps({"type": "error", "message": text}, separators=_JSON)




def error_body(code, msg):
    return json.dumps({"error": "INVALID_ARGUMENT", "message": msg},
                      separators=_JSON).encode("utf-8")


class SymbolFormat(object):
    __slots__ = ("price", "qty")

    def __init__(self, symbol):
        spec = spec_for(symbol)
        self.price = fixed(decimals_for(spec.tick_scaled))
        self.qty = fixed(decimals_for(spec.lot_scaled))


class CoinbaseSession(JsonSession):
    """One connection: its subscriptions and its own ``sequence_num``."""

    def __init__(self, dialect, max_streams):
        JsonSession.__init__(self, dialect, max_streams)
        self.seq = 0            # the number the next stamped message gets

    def stamp(self, payload):
        """Give ``payload`` this connection's next ``sequence_num`` (if it carries one)."""
        if SEQ_PLACEHOLDER not in payload:
            return payload
        seq = self.seq
        self.seq = seq + 1
        return payload.replace(SEQ_PLACEHOLDER, b'"sequence_num":%d,' % seq, 1)

    def refuse(self, text, why):
        return [error_message("malformed request" if why == MALFORMED
                              else "request must be an object")]

    def handle_request(self, req, text):
        """Answer one client message: texts to send, in order (never raises)."""
        kind = req.get("type")
        channel = req.get("channel")
        if kind not in ("subscribe", "unsubscribe"):
            return [error_message("unknown message type %r" % (kind,))[:200]]
        if channel == HEARTBEATS:
            names = [HEARTBEATS]
        elif channel in CHANNELS:
            products = req.get("product_ids")
            if not isinstance(products, list) or not products or \
                    not all(isinstance(p, str) for p in products):
                return [error_message("product_ids must be a non-empty list of strings")]
            unknown = [p for p in products if p not in self.dialect.formats]
            if unknown:
                return [error_message("failure to subscribe: unknown product %s"
                                      % ",".join(unknown)[:100])]
            names = ["%s:%s" % (channel, p) for p in products]
        else:
            return [error_message("unknown channel %r" % (channel,))[:200]]
        if kind == "unsubscribe":
            self.streams = [s for s in self.streams if s not in names]
            return [self.dialect.subscriptions_message(self.streams)]
        added = [n for n in names if n not in self.streams]
        if not self.has_room(len(added)):
            return [error_message("too many subscriptions")]
        self.streams.extend(added)
        out = [self.dialect.subscriptions_message(self.streams)]
        for name in added:
            snap = self.dialect.snapshot_message(name)
            if snap is not None:
                out.append(snap)
        return out


def book_request(market, symbols):
    """``(path after the venue's WebSocket path, [texts to send])`` of a client reading every
    symbol's book stream (the simulator bench, ``hftfeed/tools/sim/bench.py``)."""
    return "", [json.dumps({"type": "subscribe", "product_ids": list(symbols),
                            "channel": "level2"})]


class Dialect(MessageDialect):
    """Per-server Coinbase state: each product's mirror book, last quote and trade price."""

    VENUE = VENUE
    MAX_STREAMS_PER_CONNECTION = MAX_STREAMS_PER_CONNECTION
    error_body = staticmethod(error_body)

    def __init__(self, server):
        self.server = server
        self.formats = {s: SymbolFormat(s) for s in server.symbols}
        self.mirrors = {}
        self.last_quote = {}
        self.last_trade_px = {}
        self.heartbeat_counter = 0
        self.next_heartbeat_s = 0.0
        self.lost = 0
        for sym, _uid, bids, asks in server.source.initial_books():
            self.mirrors[sym] = MirrorBook(bids, asks)
        for sym in server.symbols:
            self.mirrors.setdefault(sym, MirrorBook())

    # ------------------------------------------------------------------ connections
    def open_session(self, target, max_streams):
        self.check_ws_path(target)
        return CoinbaseSession(self, max_streams)

    @staticmethod
    def stream_table(symbol):
        return {EV_DEPTH: [("level2:" + symbol, "l2")],
                EV_TRADE: [("market_trades:" + symbol, "trades")],
                EV_QUOTE: [("ticker:" + symbol, "ticker")]}


    def on_lost(self, targets):
        """A message lost in transit: each receiving connection skips its number."""
        self.lost += 1
        for _fmt, _prefix, comb, raw in targets:
            for conns in (comb, raw):
                for c in conns:
                    c.session.seq += 1

    # ------------------------------------------------------------------ event bookkeeping
    def observe_depth(self, ev):
        self.mirrors[ev[1]].apply(ev[4], ev[5])
        return ev

    def observe_other(self, ev):
        if ev[0] == EV_QUOTE:
            self.last_quote[ev[1]] = ev
        elif ev[0] == EV_TRADE:
            self.last_trade_px[ev[1]] = ev[3]
        return ev

    # ------------------------------------------------------------------ formatting
    def _levels(self, fmt, bids, asks, ts):
        parts = []
        price = fmt.price
        qty = fmt.qty
        for side, flat in (("bid", bids), ("offer", asks)):
            for i in range(0, len(flat), 2):
                parts.append('{"side":"%s","event_time":"%s","price_level":"%s",'
                             '"new_quantity":"%s"}' % (side, ts, price(flat[i]), qty(flat[i + 1])))
        return ",".join(parts)

    def l2_message(self, sym, kind, bids, asks, now_ms, extra=""):
        ts = rfc3339(now_ms * 1000000)
        return envelope("l2_data", ts, '{"type":"%s","product_id":"%s","updates":[%s]%s}'
                        % (kind, sym, self._levels(self.formats[sym], bids, asks, ts), extra))

    def formatter(self, suffix):
        if suffix == "l2":
            return self._l2
        if suffix == "trades":
            return self._trade
        return self._ticker

    def _l2(self, ev, event_ms, extra):
        return self.l2_message(ev[1], "update", ev[4], ev[5], event_ms, extra)

    def _trade(self, ev, event_ms, extra):
        sym = ev[1]
        fmt = self.formats[sym]
        ts = rfc3339(event_ms * 1000000)
        maker = "SELL" if ev[5] == SIDE_BUY else "BUY"      # the taker bought: a sell order made
        return envelope("market_trades", ts,
                        '{"type":"update","trades":[{"trade_id":"%d","product_id":"%s",'
                        '"price":"%s","size":"%s","side":"%s","time":"%s"}]}'
                        % (ev[2], sym, fmt.price(ev[3]), fmt.qty(ev[4]), maker, ts))

    def _ticker(self, ev, event_ms, extra, kind="update"):
        sym = ev[1]
        fmt = self.formats[sym]
        ts = rfc3339(event_ms * 1000000)
        last = self.last_trade_px.get(sym, ev[3])
        return envelope("ticker", ts,
                        '{"type":"%s","tickers":[{"type":"ticker","product_id":"%s","price":"%s",'
                        '"volume_24_h":"0","low_24_h":"%s","high_24_h":"%s","low_52_w":"%s",'
                        '"high_52_w":"%s","price_percent_chg_24_h":"0","best_bid":"%s",'
                        '"best_bid_quantity":"%s","best_ask":"%s","best_ask_quantity":"%s"}]}'
                        % (kind, sym, fmt.price(last), fmt.price(last), fmt.price(last),
                           fmt.price(last), fmt.price(last), fmt.price(ev[3]), fmt.qty(ev[4]),
                           fmt.price(ev[5]), fmt.qty(ev[6])))

    def subscriptions_message(self, streams):
        by_channel = {}
        for stream in streams:
            channel, _, product = stream.partition(":")
            by_channel.setdefault(channel, []).append(product or channel)
        ts = rfc3339(time.time_ns())
        return envelope("subscriptions", ts, '{"subscriptions":%s}'
                        % json.dumps(by_channel, separators=_JSON, sort_keys=True))

    def snapshot_message(self, stream):
        """What a new subscriber to ``stream`` gets first (None when nothing)."""
        channel, _, sym = stream.partition(":")
        now_ms = self.server.now_ms()
        if channel == "level2":
            bids, asks = self.mirrors[sym].top(1 << 30)
            return self.l2_message(sym, "snapshot", bids, asks, now_ms)
        if channel == "ticker" and sym in self.last_quote:
            return self._ticker(self.last_quote[sym], now_ms, "", "snapshot")
        return None

    def on_timer(self, now_s):
        """``heartbeats``: one message a second to every subscribed connection."""
        if now_s < self.next_heartbeat_s:
            return
        self.next_heartbeat_s = now_s + 1.0
        self.heartbeat_counter += 1
        now_ns = time.time_ns()
        secs, frac = divmod(now_ns, 1000000000)
        current = "%s.%09d +0000 UTC" % (time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs)),
                                         frac)
        self.server.send_to_stream(HEARTBEATS, envelope(
            HEARTBEATS, rfc3339(now_ns), '{"current_time":"%s","heartbeat_counter":%d}'
            % (current, self.heartbeat_counter)))

    # ------------------------------------------------------------------ faults
    def server_shutdown_payload(self, event_ms):
        return None     # no shutdown notice documented: the connection just closes

    def malformed_payload(self, symbol, event_ms):
        # cut before the sequence number: it takes none (a message that never was)
        return '{"channel":"l2_data","client_id":"","timestamp":"%s","events":[{"type":' % (
            rfc3339(event_ms * 1000000))

    def unknown_event_payload(self, symbol, event_ms):
        return envelope("sim_unknown", rfc3339(event_ms * 1000000),
                        '{"type":"update","x":[1,2,3],"product_id":"%s"}' % symbol)

    def absurd_depth_payload(self, symbol, update_id, event_ms):
        ts = rfc3339(event_ms * 1000000)
        return envelope("l2_data", ts,
                        '{"type":"update","product_id":"%s","updates":[{"side":"bid",'
                        '"event_time":"%s","price_level":"1.00","new_quantity":'
                        '"1234567890123456789012345678901234567890"},{"side":"offer",'
                        '"event_time":"%s","price_level":"-5","new_quantity":"NaN"}]}'
                        % (symbol, ts, ts))

    def status(self):
        return {"heartbeats": self.heartbeat_counter, "lost": self.lost}
