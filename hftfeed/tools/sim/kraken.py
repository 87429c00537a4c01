"""The Kraken spot WebSocket v2 dialect of the simulator (pure, no I/O).

Facts implemented (sources and dates: docs/venues.md "Kraken"):

* path ``/v2``; requests ``{"method":"subscribe"|"unsubscribe","params":{"channel":..,
  "symbol":[..],..},"req_id":N}``, answered once per symbol ``{"method":..,"result":{..},
  "success":true,"time_in":..,"time_out":..[,"req_id":N]}`` or ``{"error":..,"method":..,
  "success":false,"symbol":..,..}``; ``{"method":"ping"}`` is answered ``{"method":"pong"}``;
  ``{"channel":"heartbeat"}`` about once a second on a connection with subscriptions that
  was sent nothing else in that second;
* ``instrument``: a snapshot of the pairs with their ``price_precision``/``qty_precision``;
* ``book`` with ``depth`` 10, 25, 100, 500 or 1000: a snapshot of that depth after
  subscribing, then updates of what changed *within* that depth: changed and new levels, qty 0
  for levels deleted from it, and levels that move into it from deeper; a level pushed out by
  an insert gets nothing (the client truncates). Every message carries the CRC32 of the top 10
  (asks low to high, then bids high to low, each price and qty printed at the pair's precision
  without the point and leading zeros). Prices and quantities are JSON numbers;
* ``trade``: the taker's ``side``, ``trade_id``, ``ord_type``; ``ticker`` (``event_trigger``
  ``bbo``): one message per best bid/offer change;
* fault ``bad_checksum``: the next ``count`` book messages carry a wrong checksum.

Simplifications: no ``status`` message on connect; the ticker's statistics are placeholders;
``event_trigger: trades`` is served like ``bbo``; a depth beyond the simulated book serves the
whole book.
"""

import json
import time
import zlib

from hftfeed.tools.sim.decimals import decimals_for, shortest
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SIDE_BUY, spec_for
from hftfeed.tools.sim.mirror import MirrorBook
from hftfeed.tools.sim.session import MALFORMED, JsonSession, MessageDialect

VENUE = "kraken"
DEPTHS = (10, 25, 100, 500, 1000)
CHECKSUM_LEVELS = 10
MAX_STREAMS_PER_CONNECTION = 1024
_JSON = (",", ":")


def rfc3339_us(ns):
    secs, frac = divmod(ns, 1000000000)
    return "%s.%06dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)), frac // 1000)


def number(value):
    """A scaled int as Kraken prints a JSON number (``0.5666``, ``37000.0``)."""
    text = shortest(value)
    return text if "." in text else text + ".0"


def levels_json(flat):
    return ",".join('{"price":%s,"qty":%s}' % (number(flat[i]), number(flat[i + 1]))
                    for i in range(0, len(flat), 2))


def checksum(bids, asks, price_precision, qty_precision):
    """Kraken's CRC32 of flat best-first lists (only their first 10 levels count)."""
    pdiv = 10 ** (8 - price_precision)
    qdiv = 10 ** (8 - qty_precision)
    parts = []
    for flat in (asks, bids):
        for i in range(0, min(len(flat), 2 * CHECKSUM_LEVELS), 2):
            parts.append("%d%d" % (flat[i] // pdiv, flat[i + 1] // qdiv))
    return zlib.crc32("".join(parts).encode("ascii"))




def error_body(code, msg):
    return json.dumps({"error": [msg], "result": {}}, separators=_JSON).encode("utf-8")


def _stamp():
    return rfc3339_us(time.time_ns())


def answer(method, result, req_id, error=None, symbol=None):
    now = _stamp()
    if error is None:
        out = {"method": method, "result": result, "success": True}
    else:
        out = {"error": error, "method": method, "success": False}
        if symbol is not None:
            out["symbol"] = symbol
    out["time_in"] = now
    out["time_out"] = now
    if req_id is not None:
        out["req_id"] = req_id
    return json.dumps(out, separators=_JSON)


class KrakenSession(JsonSession):
    """One connection's subscriptions and request handling."""

    def refuse(self, text, why):
        return [answer("", None, None, "Malformed request" if why == MALFORMED
                       else "Request must be an object")]

    def handle_request(self, req, text):
        method = req.get("method")
        req_id = req.get("req_id")
        if not isinstance(req_id, int) or isinstance(req_id, bool):
            req_id = None
        if method == "ping":
            now = _stamp()
            out = {"method": "pong", "time_in": now, "time_out": now}
            if req_id is not None:
                out["req_id"] = req_id
            return [json.dumps(out, separators=_JSON)]
        if method not in ("subscribe", "unsubscribe"):
            return [answer(str(method)[:40], None, req_id, "Method not supported")]
        params = req.get("params")
        if not isinstance(params, dict):
            return [answer(method, None, req_id, "params must be an object")]
        channel = params.get("channel")
        if channel == "instrument":
            return self._instrument(method, req_id)
        if channel not in ("book", "trade", "ticker"):
            return [answer(method, None, req_id, "Channel not supported")]
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols or \
                not all(isinstance(s, str) for s in symbols):
            return [answer(method, None, req_id, "symbol must be a non-empty list")]
        depth = params.get("depth", 10)
        if channel == "book" and depth not in DEPTHS:
            return [answer(method, None, req_id, "Invalid depth")]
        out = []
        for sym in symbols:
            name = "book%d:%s" % (depth, sym) if channel == "book" else "%s:%s" % (channel, sym)
            result = {"channel": channel, "symbol": sym}
            if channel == "book":
                result["depth"] = depth
                result["snapshot"] = True
            if sym not in self.dialect.formats:
                out.append(answer(method, None, req_id, "Currency pair not supported %s" % sym,
                                  sym))
            elif method == "unsubscribe":
                if name not in self.streams:
                    out.append(answer(method, None, req_id, "Subscription Not Found", sym))
                else:
                    self.streams.remove(name)
                    out.append(answer(method, result, req_id))
            elif name in self.streams:
                out.append(answer(method, None, req_id, "Already subscribed", sym))
            elif not self.has_room(1):
                out.append(answer(method, None, req_id, "Too many subscriptions", sym))
            else:
                self.streams.append(name)
                out.append(answer(method, result, req_id))
                snap = self.dialect.snapshot_message(name)
                if snap is not None:
                    out.append(snap)
        return out

    def _instrument(self, method, req_id):
        out = [answer(method, {"channel": "instrument", "snapshot": True}, req_id)]
        if method == "subscribe":
            out.append(self.dialect.instrument_message())
        return out


def book_request(market, symbols):
    """``(path after the venue's WebSocket path, [texts to send])`` of a client reading every
    symbol's book stream (the simulator bench, ``hftfeed/tools/sim/bench.py``)."""
    return "", [json.dumps({"method": "subscribe", "params": {
        "channel": "book", "symbol": list(symbols), "depth": 25}, "req_id": 1})]


class Dialect(MessageDialect):
    """Per-server Kraken state: mirror books, precisions, armed bad checksums."""

    VENUE = VENUE
    MAX_STREAMS_PER_CONNECTION = MAX_STREAMS_PER_CONNECTION
    error_body = staticmethod(error_body)

    def __init__(self, server):
        self.server = server
        self.formats = {}
        self.precision = {}
        for sym in server.symbols:
            spec = spec_for(sym)
            self.formats[sym] = spec
            self.precision[sym] = (decimals_for(spec.tick_scaled), decimals_for(spec.lot_scaled))
        self.mirrors = {}
        for sym, _uid, bids, asks in server.source.initial_books():
            self.mirrors[sym] = MirrorBook(bids, asks)
        for sym in server.symbols:
            self.mirrors.setdefault(sym, MirrorBook())
        self.last_trade_px = {}
        self.bad_checksums = {}         # symbol or None -> book messages still to corrupt
        self.next_heartbeat_s = 0.0
        self.sent_at_heartbeat = {}     # conn id -> its messages_sent at the last heartbeat tick

    # ------------------------------------------------------------------ connections
    def open_session(self, target, max_streams):
        self.check_ws_path(target)
        return KrakenSession(self, max_streams)

    @staticmethod
    def stream_table(symbol):
        return {EV_DEPTH: [("book%d:%s" % (d, symbol), "book%d" % d) for d in DEPTHS],
                EV_TRADE: [("trade:" + symbol, "trade")],
                EV_QUOTE: [("ticker:" + symbol, "ticker")]}


    # ------------------------------------------------------------------ event bookkeeping
    def observe_depth(self, ev):
        """Apply the event to the mirror; attach what every depth needs to describe it: the
        depth boundaries *before* it, and the top-10 checksum after it."""
        sym = ev[1]
        mirror = self.mirrors[sym]
        bid_px = mirror.bid_px
        ask_px = mirror.ask_px
        nb = len(bid_px)
        na = len(ask_px)
        bounds = tuple((bid_px[nb - d] if nb >= d else None, ask_px[d - 1] if na >= d else None)
                       for d in DEPTHS)
        mirror.apply(ev[4], ev[5])
        bids, asks = mirror.top(CHECKSUM_LEVELS)
        pp, qp = self.precision[sym]
        crc = checksum(bids, asks, pp, qp)
        armed = self.bad_checksums
        if armed:
            key = sym if armed.get(sym) else (None if armed.get(None) else False)
            if key is not False:
                armed[key] -= 1
                if not armed[key]:
                    del armed[key]
                wrong = crc ^ 0x5A5A5A5A
                self.server.note_fault("bad_checksum", {"symbol": sym, "u": ev[3],
                                                        "checksum": wrong, "correct": crc})
                crc = wrong
        return ev[:6] + (bounds, crc)

    def observe_other(self, ev):
        if ev[0] == EV_TRADE:
            self.last_trade_px[ev[1]] = ev[3]
        return ev

    # ------------------------------------------------------------------ formatting
    def formatter(self, suffix):
        if suffix == "trade":
            return self._trade
        if suffix == "ticker":
            return self._ticker
        depth = int(suffix[4:])
        index = DEPTHS.index(depth)

        def fmt_book(ev, event_ms, extra, _depth=depth, _index=index):
            bids, asks = self._visible_changes(ev, _depth, _index)
            return self.book_message(ev[1], "update", bids, asks, ev[7], event_ms, extra)
        return fmt_book

    def _visible_changes(self, ev, depth, index):
        """What a ``depth`` subscriber is told about ``ev`` (see the module docstring)."""
        mirror = self.mirrors[ev[1]]
        bid_bound, ask_bound = ev[6][index]
        top_bids, top_asks = mirror.top(depth)
        out = []
        for flat, top, bound, better in ((ev[4], top_bids, bid_bound, 1),
                                         (ev[5], top_asks, ask_bound, -1)):
            visible = {top[i]: top[i + 1] for i in range(0, len(top), 2)}
            changes = []
            touched = set()
            for i in range(0, len(flat), 2):
                p = flat[i]
                touched.add(p)
                if p in visible:
                    changes.append(p)
                    changes.append(visible[p])
                elif flat[i + 1] == 0 and (bound is None or (p - bound) * better >= 0):
                    changes.append(p)       # deleted from within the depth
                    changes.append(0)
            for i in range(0, len(top), 2):
                p = top[i]
                if p not in touched and bound is not None and (p - bound) * better < 0:
                    changes.append(p)       # moved into the depth from deeper
                    changes.append(top[i + 1])
            out.append(changes)
        return out[0], out[1]

    def book_message(self, sym, kind, bids, asks, crc, event_ms, extra=""):
        return ('{"channel":"book","type":"%s","data":[{"symbol":"%s","bids":[%s],"asks":[%s],'
                '"checksum":%d,"timestamp":"%s"%s}]}'
                % (kind, sym, levels_json(bids), levels_json(asks), crc,
                   rfc3339_us(event_ms * 1000000), extra))

    def _trade(self, ev, event_ms, extra):
        return ('{"channel":"trade","type":"update","data":[{"symbol":"%s","side":"%s",'
                '"price":%s,"qty":%s,"ord_type":"market","trade_id":%d,"timestamp":"%s"}]}'
                % (ev[1], "buy" if ev[5] == SIDE_BUY else "sell", number(ev[3]), number(ev[4]),
                   ev[2], rfc3339_us(event_ms * 1000000)))

    def _ticker(self, ev, event_ms, extra):
        last = number(self.last_trade_px.get(ev[1], ev[3]))
        return ('{"channel":"ticker","type":"update","data":[{"symbol":"%s","bid":%s,'
                '"bid_qty":%s,"ask":%s,"ask_qty":%s,"last":%s,"volume":0.0,"vwap":%s,"low":%s,'
                '"high":%s,"change":0.0,"change_pct":0.0}]}'
                % (ev[1], number(ev[3]), number(ev[4]), number(ev[5]), number(ev[6]), last, last,
                   last, last))

    def instrument_message(self):
        pairs = []
        for sym in self.server.symbols:
            base, _, quote = sym.partition("/")
            pp, qp = self.precision[sym]
            spec = self.formats[sym]
            pairs.append('{"symbol":"%s","base":"%s","quote":"%s","status":"online",'
                         '"qty_precision":%d,"qty_increment":%s,"price_precision":%d,'
                         '"cost_precision":5,"marginable":false,"has_index":true,'
                         '"cost_min":0.5,"tick_size":%s,"price_increment":%s,"qty_min":%s}'
                         % (sym, base, quote, qp, number(spec.lot_scaled), pp,
                            number(spec.tick_scaled), number(spec.tick_scaled),
                            number(spec.lot_scaled)))
        return ('{"channel":"instrument","type":"snapshot","data":{"assets":[],"pairs":[%s]}}'
                % ",".join(pairs))

    def snapshot_message(self, stream):
        if not stream.startswith("book"):
            return None
        depth_text, _, sym = stream.partition(":")
        bids, asks = self.mirrors[sym].top(int(depth_text[4:]))
        pp, qp = self.precision[sym]
        return self.book_message(sym, "snapshot", bids, asks, checksum(bids, asks, pp, qp),
                                 self.server.now_ms())

    def on_timer(self, now_s):
        """``heartbeat``: about once a second to a connection with subscriptions that was sent
        nothing else during that second (Kraken's v2 "Heartbeat" page: "in the absence of any
        other channel updates"); a busy connection gets none."""
        if now_s < self.next_heartbeat_s:
            return
        self.next_heartbeat_s = now_s + 1.0
        before = self.sent_at_heartbeat
        after = {}
        for c in list(self.server.conns.values()):
            if c.session.streams and not (c.closed or c.closing or c.half_open):
                after[c.id] = c.messages_sent
                if before.get(c.id) == c.messages_sent:
                    c.send_raw_text('{"channel":"heartbeat"}')
        self.sent_at_heartbeat = after

    # ------------------------------------------------------------------ faults
    def fault_bad_checksum(self, spec):
        key = spec.get("symbol")
        self.bad_checksums[key] = self.bad_checksums.get(key, 0) + spec["count"]

    def server_shutdown_payload(self, event_ms):
        return None

    def malformed_payload(self, symbol, event_ms):
        return '{"channel":"book","type":"update","data":[{"symbol":"%s","bids":[{' % symbol

    def unknown_event_payload(self, symbol, event_ms):
        return '{"channel":"sim_unknown","type":"update","data":[{"symbol":"%s","x":[1,2]}]}' % (
            symbol)

    def absurd_depth_payload(self, symbol, update_id, event_ms):
        return ('{"channel":"book","type":"update","data":[{"symbol":"%s","bids":[{"price":1.0,'
                '"qty":1234567890123456789012345678901234567890}],"asks":[{"price":-5.0,'
                '"qty":1.0}],"checksum":0,"timestamp":"%s"}]}'
                % (symbol, rfc3339_us(event_ms * 1000000)))

    def status(self):
        return {"bad_checksums_armed": sum(self.bad_checksums.values())}
