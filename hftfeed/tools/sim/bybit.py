"""The Bybit v5 public linear dialect of the simulator (pure, no I/O: the server does the sockets).

Facts implemented (Bybit v5 docs: "Connect", "Orderbook", "Trade"; see also
``hftfeed/venues/bybit.py``):

* one path, ``/v5/public/linear``; topics are requested with ``{"op":"subscribe","args":[..],
  "req_id":..}`` and every request is answered ``{"success":..,"ret_msg":..,"conn_id":..,
  ["req_id":..,] "op":..}``; subscribing a topic twice fails with "already subscribed";
* heartbeat: the client sends ``{"op":"ping"}``, linear answers ``{"success":true,"ret_msg":"pong",
  "conn_id":..,"op":"ping"}``; a client that stays silent too long is disconnected
  (``idle_timeout_s``; Bybit asks for a ping every 20 s). The server sends no ping frames;
* ``orderbook.{depth}.{symbol}`` (depth 50, 200 or 1000): a ``snapshot`` right after subscribing
  (so a re-subscription gets a fresh one), then ``delta`` messages whose ``data.u`` is the
  previous ``u + 1`` and ``data.seq`` the matching engine's cross sequence; a level with size
  "0" is gone. After a service restart (fault ``bybit_restart``) ``u`` starts again at 1 and
  that message is a ``snapshot`` carrying the whole book, which replaces the local one;
* ``orderbook.1.{symbol}``: level 1, snapshots only (one per change of the best bid/offer), with
  its own ``u``; repeated unchanged (same ``u``) after ``quote_resend_s`` (3 s) without a change;
* ``publicTrade.{symbol}``: ``data`` is a list of trades: ``T`` time, ``S`` taker side
  Buy/Sell, ``v`` size, ``p`` price, ``L`` tick direction, ``i`` a UUID string, ``BT`` false;
* prices and sizes carry the instrument's precision (``"17440.00"``, ``"40.833"``).

Markets (``MARKETS``): the same dialect serves spot (``bybit-spot``, ``/v5/public/spot``) and
inverse (``bybit-inverse``, ``/v5/public/inverse``) with their own path; spot answers a ping with
``"op":"pong"`` and numbers its trades with decimal strings instead of UUIDs.

Simplifications: the simulated book has at most 50 levels a side (``config.MAX_DEPTH_LEVELS``),
so ``orderbook.50`` is exactly its stream and ``orderbook.200``/``.1000`` carry the same book
(with the same ``u``); no per-connection argument-length limit (21,000 characters) is enforced.
A trade's UUID keeps the engine's trade id in its low 62 bits, under RFC 4122's variant bits
(``trade_uuid``).
"""

import json
import logging
import zlib
from collections import namedtuple

from hftfeed.tools.sim.decimals import decimals_for, fixed, level_list
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SIDE_BUY, spec_for
from hftfeed.tools.sim.mirror import MirrorBook
from hftfeed.tools.sim.session import MALFORMED, JsonSession, MessageDialect, RequestError

log = logging.getLogger("hftfeed.sim.bybit")

VENUE = "bybit"
ID_MODE = "message"                     # "u" counts messages: one id per book push (market.py)
BOOK_DEPTHS = (50, 200, 1000)           # orderbook depths besides level 1 (linear, inverse, spot)

#: What differs between the Bybit markets this dialect serves (registry name -> facts).
Market = namedtuple("Market", ("venue", "pong_op", "uuid_trade_ids"))   # paths: the registry
MARKETS = {
    "bybit": Market("bybit", "ping", True),
    "bybit-inverse": Market("bybit-inverse", "ping", True),
    "bybit-spot": Market("bybit-spot", "pong", False),
}
MAX_TOPICS_PER_CONNECTION = 1024        # generous: Bybit limits argument length, not count
_UUID_VARIANT = 2 << 62                 # RFC 4122 variant bits "10" in the low 64 bits
_JSON = (",", ":")


BybitRequestError = RequestError      # the shared class (session.py), by its old name


def parse_topic(topic):
    """``(kind, depth, symbol)`` for a topic this dialect serves; ValueError otherwise.

    kind is "book" (orderbook.50/200/1000), "l1" (orderbook.1) or "trade" (publicTrade)."""
    if not isinstance(topic, str):
        raise ValueError("topic must be a string")
    parts = topic.split(".")
    if len(parts) == 3 and parts[0] == "orderbook" and parts[1].isdigit():
        depth = int(parts[1])
        if depth == 1:
            return "l1", 1, parts[2]
        if depth in BOOK_DEPTHS:
            return "book", depth, parts[2]
    if len(parts) == 2 and parts[0] == "publicTrade":
        return "trade", 0, parts[1]
    raise ValueError("handler not found")


def trade_uuid(symbol, trade_id):
    """A version-5-looking UUID whose low 64 bits are ``variant | trade_id`` (deterministic)."""
    high = (zlib.crc32(symbol.encode("ascii")) << 32) | (zlib.crc32(b"sim" + symbol.encode("ascii")))
    high = (high & ~0xF000) | 0x5000                       # version nibble 5
    low = _UUID_VARIANT | (trade_id & ((1 << 62) - 1))
    h = "%016x%016x" % (high, low)
    return "%s-%s-%s-%s-%s" % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def trade_id_of_uuid(text):
    """The engine trade id inside :func:`trade_uuid` (for tests and truth lookups)."""
    return int(text.replace("-", ""), 16) & ((1 << 62) - 1)


class SymbolFormat(object):
    """An instrument's price and size strings with its own precision."""

    __slots__ = ("price", "qty", "levels")

    def __init__(self, symbol):
        spec = spec_for(symbol)
        price_decimals = decimals_for(spec.tick_scaled)
        qty_decimals = decimals_for(spec.lot_scaled)
        self.price = fixed(price_decimals)
        self.qty = fixed(qty_decimals)
        self.levels = level_list(price_decimals, qty_decimals)   # flat list -> JSON pairs


def book_message(fmt, topic, kind, symbol, bids, asks, update_id, seq, ts_ms, extra=""):
    """An ``orderbook.N`` push (``kind`` "snapshot" or "delta")."""
    return ('{"topic":"%s","type":"%s","ts":%d,"data":{"s":"%s","b":[%s],"a":[%s],"u":%d,'
            '"seq":%d},"cts":%d%s}' % (topic, kind, ts_ms, symbol, fmt.levels(bids),
                                       fmt.levels(asks), update_id, seq, ts_ms - 1, extra))


def trade_message(fmt, symbol, trade_id, price, qty, side, tick_dir, ts_ms, uuid_ids=True):
    """A ``publicTrade`` push; ``i`` is a UUID (linear, inverse) or the decimal id (spot)."""
    return ('{"topic":"publicTrade.%s","type":"snapshot","ts":%d,"data":[{"T":%d,"s":"%s",'
            '"S":"%s","v":"%s","p":"%s","L":"%s","i":"%s","BT":false}]}'
            % (symbol, ts_ms, ts_ms - 1, symbol, "Buy" if side == SIDE_BUY else "Sell",
               fmt.qty(qty), fmt.price(price), tick_dir,
               trade_uuid(symbol, trade_id) if uuid_ids else "%d" % trade_id))


def reply(op, conn_id, success=True, ret_msg="", req_id=None):
    """The answer to one request, in Bybit's field order."""
    out = {"success": success, "ret_msg": ret_msg, "conn_id": conn_id}
    if req_id is not None:
        out["req_id"] = req_id
    out["op"] = op
    return json.dumps(out, separators=_JSON)


def error_body(code, msg):
    return json.dumps({"retCode": 10001 if code == -1 else code, "retMsg": msg, "result": {},
                       "retExtInfo": {}}, separators=_JSON).encode("utf-8")


class BybitSession(JsonSession):
    """One connection's topics and its request handling (answers + snapshots to send)."""

    def __init__(self, dialect, conn_id, max_topics=MAX_TOPICS_PER_CONNECTION, pong_op="ping"):
        JsonSession.__init__(self, dialect, max_topics)
        self.pong_op = pong_op          # the market's "op" in a ping's answer (MARKETS)
        self.conn_id = conn_id

    def refuse(self, text, why):
        reason = "request not json" if why == MALFORMED else "request must be an object"
        return [reply("", self.conn_id, False, "error:" + reason)]

    def handle_request(self, req, text):
        op = req.get("op")
        req_id = req.get("req_id")
        if req_id is not None and not isinstance(req_id, str):
            req_id = str(req_id)
        if op == "ping":
            return [reply(self.pong_op, self.conn_id, True, "pong", req_id)]
        if op == "subscribe":
            return self._subscribe(req.get("args"), req_id)
        if op == "unsubscribe":
            return self._unsubscribe(req.get("args"), req_id)
        return [reply(op if isinstance(op, str) else "", self.conn_id, False,
                      "error:unsupported op", req_id)]

    def _subscribe(self, args, req_id):
        if not isinstance(args, list) or not args:
            return [reply("subscribe", self.conn_id, False, "error:args must be a list", req_id)]
        errors = []
        added = []
        for topic in args:
            try:
                kind, _depth, symbol = parse_topic(topic)
            except ValueError as exc:
                errors.append("error:%s,topic:%s" % (exc, topic))
                continue
            if topic in self.streams or topic in added:
                errors.append("error:already subscribed,topic:%s" % topic)
                continue
            if symbol not in self.dialect.formats:
                errors.append("error:symbol not found,topic:%s" % topic)
                continue
            added.append(topic)
        if not self.has_room(len(added)):
            return [reply("subscribe", self.conn_id, False, "error:too many topics", req_id)]
        self.streams.extend(added)
        out = [reply("subscribe", self.conn_id, not errors, ";".join(errors), req_id)]
        for topic in added:     # "after subscribing you receive a snapshot", after the answer
            snap = self.dialect.snapshot_message(topic)
            if snap is not None:
                out.append(snap)
        return out

    def _unsubscribe(self, args, req_id):
        if not isinstance(args, list) or not args:
            return [reply("unsubscribe", self.conn_id, False, "error:args must be a list", req_id)]
        missing = [t for t in args if t not in self.streams]
        self.streams = [t for t in self.streams if t not in args]
        if missing:
            return [reply("unsubscribe", self.conn_id, False,
                          ";".join("error:not subscribed,topic:%s" % t for t in missing), req_id)]
        return [reply("unsubscribe", self.conn_id, True, "", req_id)]


def book_request(market, symbols):
    """``(path after the venue's WebSocket path, [texts to send])`` of a client reading every
    symbol's book stream (the simulator bench, ``hftfeed/tools/sim/bench.py``)."""
    return "", [json.dumps({"op": "subscribe", "args": ["orderbook.50." + s for s in symbols]})]


class Dialect(MessageDialect):
    """Per-server Bybit state: each symbol's mirror book, ``u``/``seq``, level-1 ``u`` and tick
    direction. The server calls :meth:`observe_depth` / :meth:`observe_other` for every
    generated event, in order, and formats the events they return."""

    VENUE = VENUE
    MAX_STREAMS_PER_CONNECTION = MAX_TOPICS_PER_CONNECTION
    MAX_DEPTH_LIMIT = 50
    IDLE_RULE = "client"            # disconnect a client that has sent nothing for idle_timeout_s
    IDLE_CLOSE = (1000, "idle: no ping received")
    error_body = staticmethod(error_body)

    def __init__(self, server):
        self.server = server
        config = getattr(server, "config", None)     # None: a bare test server -> VENUE
        self.market = MARKETS[config.venue if config is not None else VENUE]
        self.VENUE = self.market.venue
        self.formats = {s: SymbolFormat(s) for s in server.symbols}
        self.mirrors = {}
        self.last_u = {}
        self.last_seq = {}
        self.l1_u = {}
        self.last_quote = {}        # symbol -> quote event as last pushed (for the 3 s repeat)
        self.quote_sent_s = {}
        self.last_trade_px = {}
        self.tick_dir = {}
        self.restarts = 0
        self._next_conn = 0
        engines = getattr(server.source, "by_symbol", {})
        for sym, uid, bids, asks in server.source.initial_books():
            self.mirrors[sym] = MirrorBook(bids, asks)
            self.last_u[sym] = uid
            engine = engines.get(sym)
            self.last_seq[sym] = engine.seq if engine is not None else uid
        for sym in server.symbols:
            self.mirrors.setdefault(sym, MirrorBook())
            self.last_u.setdefault(sym, 1)
            self.last_seq.setdefault(sym, 1)
            self.l1_u[sym] = 1      # level 1 has its own u; 0 is not a valid id

    # ------------------------------------------------------------------ connections
    def open_session(self, target, max_streams):
        self.check_ws_path(target)
        self._next_conn += 1
        conn_id = "sim%05d-%08x" % (self._next_conn, zlib.crc32(b"%d" % self._next_conn))
        return BybitSession(self, conn_id, max_streams, self.market.pong_op)

    @staticmethod
    def stream_table(symbol):
        return {EV_DEPTH: [("orderbook.%d.%s" % (d, symbol), "book%d" % d) for d in BOOK_DEPTHS],
                EV_TRADE: [("publicTrade." + symbol, "trade")],
                EV_QUOTE: [("orderbook.1." + symbol, "l1")]}

    @staticmethod
    def symbol_of_stream(stream):
        return stream.rsplit(".", 1)[-1]


    # ------------------------------------------------------------------ event bookkeeping
    def observe_depth(self, ev):
        """``(EV_DEPTH, sym, u, u, bids, asks, seq, whole_book_or_None)``: the whole book is
        attached when ``u`` restarted at 1 (Bybit then sends it as a snapshot)."""
        sym = ev[1]
        mirror = self.mirrors[sym]
        mirror.apply(ev[4], ev[5])
        seq = ev[6] if len(ev) > 6 else ev[3]
        self.last_u[sym] = ev[3]
        self.last_seq[sym] = seq
        whole = None
        if ev[3] == 1:
            whole = mirror.top(1 << 30)
            self.server.note_fault("bybit_restart", {"symbol": sym, "phase": "snapshot u=1"})
        return (EV_DEPTH, sym, ev[2], ev[3], ev[4], ev[5], seq, whole)

    def observe_other(self, ev):
        kind = ev[0]
        sym = ev[1]
        if kind == EV_QUOTE:
            u = self.l1_u[sym] + 1
            self.l1_u[sym] = u
            ev = ev + (u,)
            self.last_quote[sym] = ev
            self.quote_sent_s[sym] = self.server.tick_now_s
            return ev
        if kind == EV_TRADE:
            px = ev[3]
            last = self.last_trade_px.get(sym)
            prev_dir = self.tick_dir.get(sym, "ZeroPlusTick")
            if last is None or px == last:
                direction = "ZeroPlusTick" if prev_dir in ("PlusTick", "ZeroPlusTick") \
                    else "ZeroMinusTick"
            else:
                direction = "PlusTick" if px > last else "MinusTick"
            self.last_trade_px[sym] = px
            self.tick_dir[sym] = direction
            return ev + (direction,)
        return ev

    # ------------------------------------------------------------------ formatting
    def formatter(self, suffix):
        if suffix == "trade":
            return self._trade
        if suffix == "l1":
            return self._l1
        depth = int(suffix[4:])
        prefix = "orderbook.%d." % depth

        def fmt_book(ev, event_ms, extra, _prefix=prefix, _depth=depth):
            sym = ev[1]
            whole = ev[7] if len(ev) > 7 else None
            if whole is not None:
                bids, asks = whole
                return book_message(self.formats[sym], _prefix + sym, "snapshot", sym,
                                    bids[:2 * _depth], asks[:2 * _depth], ev[3], ev[6],
                                    event_ms, extra)
            seq = ev[6] if len(ev) > 6 else ev[3]
            return book_message(self.formats[sym], _prefix + sym, "delta", sym, ev[4], ev[5],
                                ev[3], seq, event_ms, extra)
        return fmt_book

    def _l1(self, ev, event_ms, extra):
        sym = ev[1]
        u = ev[7] if len(ev) > 7 else ev[2]
        fmt = self.formats[sym]
        return ('{"topic":"orderbook.1.%s","type":"snapshot","ts":%d,"data":{"s":"%s",'
                '"b":[["%s","%s"]],"a":[["%s","%s"]],"u":%d,"seq":%d},"cts":%d}'
                % (sym, event_ms, sym, fmt.price(ev[3]), fmt.qty(ev[4]), fmt.price(ev[5]),
                   fmt.qty(ev[6]), u, ev[2], event_ms - 1))

    def _trade(self, ev, event_ms, extra):
        sym = ev[1]
        tick_dir = ev[6] if len(ev) > 6 else "ZeroPlusTick"
        return trade_message(self.formats[sym], sym, ev[2], ev[3], ev[4], ev[5], tick_dir,
                             event_ms, self.market.uuid_trade_ids)

    def snapshot_message(self, topic):
        """What a new subscriber to ``topic`` gets first (None for trades)."""
        kind, depth, sym = parse_topic(topic)
        now_ms = self.server.now_ms()
        if kind == "book":
            bids, asks = self.mirrors[sym].top(depth)
            return book_message(self.formats[sym], topic, "snapshot", sym, bids, asks,
                                self.last_u[sym], self.last_seq[sym], now_ms)
        if kind == "l1":
            quote = self.last_quote.get(sym)
            if quote is None:
                bids, asks = self.mirrors[sym].top(1)
                if len(bids) < 2 or len(asks) < 2:
                    return None
                quote = (EV_QUOTE, sym, self.last_seq[sym], bids[0], bids[1], asks[0], asks[1],
                         self.l1_u[sym])
            return self._l1(quote, now_ms, "")
        return None

    def on_timer(self, now_s):
        """orderbook.1: repeat the last snapshot (same ``u``) after ``quote_resend_s`` unchanged."""
        every_s = self.server.config.quote_resend_s
        if not every_s:
            return
        for sym, quote in self.last_quote.items():
            if now_s - self.quote_sent_s.get(sym, now_s) >= every_s:
                self.quote_sent_s[sym] = now_s
                self.server.send_to_stream("orderbook.1." + sym,
                                           self._l1(quote, self.server.now_ms(), ""))

    # ------------------------------------------------------------------ faults
    def fault_bybit_restart(self, spec):
        """The market-data service restarts: ``u`` starts again at 1 for the symbol(s)."""
        syms = [spec["symbol"]] if spec.get("symbol") else list(self.server.symbols)
        engines = getattr(self.server.source, "by_symbol", None)
        if engines is None:
            raise ValueError("bybit_restart needs the synthetic source")
        for sym in syms:
            engines[sym].last_update_id = 0
            self.l1_u[sym] = 0
        self.restarts += 1

    def server_shutdown_payload(self, event_ms):
        return None     # Bybit documents no shutdown notice: the connection just closes

    def malformed_payload(self, symbol, event_ms):
        return '{"topic":"orderbook.50.%s","type":"delta","ts":%d,"data":{"s":"%s","b":[[' % (
            symbol, event_ms, symbol)

    def unknown_event_payload(self, symbol, event_ms):
        return ('{"topic":"simUnknown.%s","type":"snapshot","ts":%d,"data":{"x":[1,2,3],'
                '"y":{"z":"0.1"}}}' % (symbol, event_ms))

    def absurd_depth_payload(self, symbol, update_id, event_ms):
        """Absurd levels with the next ``u`` (not consumed: a client that drops it sees the
        next real delta continue the chain)."""
        return ('{"topic":"orderbook.50.%s","type":"delta","ts":%d,"data":{"s":"%s",'
                '"b":[["1.00","1234567890123456789012345678901234567890"],["-5.00","1.00"]],'
                '"a":[["2.00","NaN"]],"u":%d,"seq":%d},"cts":%d}'
                % (symbol, event_ms, symbol, self.last_u[symbol] + 1, self.last_seq[symbol],
                   event_ms))

    def status(self):
        return {"u": dict(self.last_u), "seq": dict(self.last_seq), "l1_u": dict(self.l1_u),
                "restarts": self.restarts}
