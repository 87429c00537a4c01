"""The Deribit JSON-RPC dialect of the simulator (pure, no I/O: the server does the sockets).

Facts implemented (Deribit API docs: "Notifications", "public/subscribe", "public/unsubscribe",
"public/set_heartbeat", "public/test", "book.(instrument_name).(interval)",
"trades.(instrument_name).(interval)", "quote.(instrument_name)"; see docs/venues.md):

* one path, ``/ws/api/v2``; JSON-RPC 2.0 requests ``{"jsonrpc":"2.0","id":..,"method":..,
  "params":{..}}`` answered ``{"jsonrpc":"2.0","id":..,"result":..,"usIn":..,"usOut":..,
  "usDiff":..,"testnet":false}`` or with ``"error":{"code":..,"message":..}`` (JSON-RPC codes:
  -32700 parse error, -32601 unknown method, -32602 bad params);
* ``public/subscribe`` answers with the channels it subscribed (unknown instruments and
  ``raw`` intervals, which need authorisation, are left out); a book channel's first
  notification is the whole book (``type`` "snapshot", ``change_id``), then changes (``type``
  "change", ``prev_change_id`` = the previous notification's ``change_id``) as
  ``[action, price, amount]``, action ``new`` (a price the book did not have), ``change`` or
  ``delete`` (amount 0); a re-subscription gets a fresh snapshot;
* ``trades.{instrument}.100ms``: a list of trades with ``trade_seq`` (the engine's trade id),
  ``trade_id`` (its decimal string), ``direction`` (taker side), ``price``, ``amount``;
* ``quote.{instrument}``: best bid/ask price and amount, no id;
* numbers are JSON numbers in their shortest exact decimal form (``43000.5``);
* heartbeat: after ``public/set_heartbeat`` (``interval`` >= 10 s) the server sends
  ``{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}`` every interval
  (``test_request_s`` overrides the interval, for tests) and closes the connection when the
  previous one was not answered by a ``public/test`` request before the next is due.

The random-walk engine sometimes removes a price the book does not have (as Binance documents
for its own streams); those go out as ``delete`` too, which a client's book simply ignores.

Update ids: the engine's ids (``steps`` mode, not contiguous between messages) are the
``change_id``s; ``prev_change_id`` chains them, so a dropped notification breaks the chain.
"""

import json
import logging

from hftfeed.tools.sim.decimals import shortest
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SIDE_BUY
from hftfeed.tools.sim.mirror import MirrorBook
from hftfeed.tools.sim.session import MALFORMED, JsonSession, MessageDialect, RequestError

log = logging.getLogger("hftfeed.sim.deribit")

VENUE = "deribit"
MIN_HEARTBEAT_S = 10
MAX_CHANNELS_PER_CONNECTION = 1024
ERR_PARSE = -32700
ERR_METHOD = -32601
ERR_PARAMS = -32602
_JSON = (",", ":")


DeribitRequestError = RequestError      # the shared class (session.py), by its old name


def parse_channel(channel):
    """``(kind, instrument)`` of a channel this dialect serves; ValueError otherwise. kind is
    "book", "trades" or "quote"; ``raw`` intervals need authorisation and are refused."""
    if not isinstance(channel, str):
        raise ValueError("channel must be a string")
    parts = channel.split(".")
    if len(parts) == 3 and parts[0] in ("book", "trades") and parts[2] == "100ms":
        return parts[0], parts[1]
    if len(parts) == 2 and parts[0] == "quote":
        return "quote", parts[1]
    raise ValueError("unknown channel %r" % channel)


def response(request_id, result=None, error=None):
    out = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        out["error"] = {"code": error[0], "message": error[1]}
    else:
        out["result"] = result
    out.update(usIn=0, usOut=0, usDiff=0, testnet=False)
    return json.dumps(out, separators=_JSON)


def notification(channel, data_json):
    return ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"%s","data":%s}}'
            % (channel, data_json))


TEST_REQUEST = '{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"test_request"}}'


def levels_json(flat, actions):
    """Flat ``[p0, q0, ...]`` + one action per level -> ``["new",p,q],...``."""
    return ",".join('["%s",%s,%s]' % (actions[i >> 1], shortest(flat[i]), shortest(flat[i + 1]))
                    for i in range(0, len(flat), 2))


def book_json(kind, symbol, change_id, prev_id, bids, asks, bid_actions, ask_actions, ts_ms,
              extra=""):
    prev = '"prev_change_id":%d,' % prev_id if kind == "change" else ""
    return ('{"type":"%s","timestamp":%d,%s"instrument_name":"%s","change_id":%d,'
            '"bids":[%s],"asks":[%s]%s}' % (kind, ts_ms, prev, symbol, change_id,
                                            levels_json(bids, bid_actions),
                                            levels_json(asks, ask_actions), extra))


class DeribitSession(JsonSession):
    """One connection's channels, heartbeat state and request handling."""

    def __init__(self, dialect, max_channels=MAX_CHANNELS_PER_CONNECTION):
        JsonSession.__init__(self, dialect, max_channels)
        self.heartbeat_s = None         # set by public/set_heartbeat
        self.next_test_s = None         # when the next test_request is due
        self.test_pending = False       # a test_request awaits its public/test

    def refuse(self, text, why):
        return [response(None, error=(ERR_PARSE, "parse_error" if why == MALFORMED
                                      else "request must be an object"))]

    def handle_request(self, req, text):
        request_id = req.get("id")
        method = req.get("method")
        params = req.get("params")
        if params is None:
            params = {}
        if not isinstance(params, dict):
            return [response(request_id, error=(ERR_PARAMS, "params must be an object"))]
        if method == "public/subscribe":
            return self._subscribe(request_id, params.get("channels"))
        if method == "public/unsubscribe":
            return self._unsubscribe(request_id, params.get("channels"))
        if method == "public/set_heartbeat":
            interval = params.get("interval")
            if type(interval) not in (int, float) or interval < MIN_HEARTBEAT_S:
                return [response(request_id, error=(ERR_PARAMS, "interval must be >= %d"
                                                    % MIN_HEARTBEAT_S))]
            self.heartbeat_s = float(interval)
            self.next_test_s = None     # armed by the dialect's timer
            return [response(request_id, "ok")]
        if method == "public/test":
            if self.test_pending:
                self.dialect.tests_answered += 1
            self.test_pending = False
            return [response(request_id, {"version": "1.2.26"})]
        return [response(request_id, error=(ERR_METHOD, "Method not found"))]

    def _subscribe(self, request_id, channels):
        if not isinstance(channels, list) or not channels:
            return [response(request_id, error=(ERR_PARAMS, "channels must be a list"))]
        added = []
        for channel in channels:
            try:
                _kind, inst = parse_channel(channel)
            except ValueError:
                continue
            if inst in self.dialect.known and channel not in self.streams \
                    and channel not in added:
                added.append(channel)
        if not self.has_room(len(added)):
            return [response(request_id, error=(ERR_PARAMS, "too many channels"))]
        self.streams.extend(added)
        ok = [c for c in channels if c in self.streams]
        out = [response(request_id, ok)]
        for channel in added:           # the book's first notification: the whole book
            snap = self.dialect.snapshot_message(channel)
            if snap is not None:
                out.append(snap)
        return out

    def _unsubscribe(self, request_id, channels):
        if not isinstance(channels, list):
            return [response(request_id, error=(ERR_PARAMS, "channels must be a list"))]
        gone = [c for c in channels if c in self.streams]
        self.streams = [c for c in self.streams if c not in channels]
        return [response(request_id, gone)]


def book_request(market, symbols):
    """``(path after the venue's WebSocket path, [texts to send])`` of a client reading every
    symbol's book stream (the simulator bench, ``hftfeed/tools/sim/bench.py``)."""
    return "", [json.dumps({"jsonrpc": "2.0", "id": 1, "method": "public/subscribe", "params": {
        "channels": ["book.%s.100ms" % s for s in symbols]}})]


class Dialect(MessageDialect):
    """Per-server Deribit state: each instrument's mirror book (for snapshots and the
    new/change action of a level) and last ``change_id`` (for ``prev_change_id``)."""

    VENUE = VENUE
    MAX_STREAMS_PER_CONNECTION = MAX_CHANNELS_PER_CONNECTION

    def __init__(self, server):
        self.server = server
        self.known = frozenset(server.symbols)
        self.mirrors = {}
        self.last_id = {}
        self.test_requests_sent = 0
        self.tests_answered = 0
        self.heartbeat_closes = 0
        for sym, uid, bids, asks in server.source.initial_books():
            self.mirrors[sym] = MirrorBook(bids, asks)
            self.last_id[sym] = uid
        for sym in server.symbols:
            self.mirrors.setdefault(sym, MirrorBook())
            self.last_id.setdefault(sym, 1)

    @staticmethod
    def error_body(code, msg):
        return json.dumps({"jsonrpc": "2.0", "error": {"code": code, "message": msg}},
                          separators=_JSON).encode("utf-8")

    # ------------------------------------------------------------------ connections
    def open_session(self, target, max_streams):
        self.check_ws_path(target)
        return DeribitSession(self, max_streams)

    @staticmethod
    def stream_table(inst):
        return {EV_DEPTH: [("book.%s.100ms" % inst, "book")],
                EV_TRADE: [("trades.%s.100ms" % inst, "trades")],
                EV_QUOTE: [("quote." + inst, "quote")]}

    @staticmethod
    def symbol_of_stream(stream):
        return stream.split(".")[1]


    # ------------------------------------------------------------------ event bookkeeping
    def observe_depth(self, ev):
        """``(EV_DEPTH, sym, U, change_id, bids, asks, prev_change_id, bid_actions,
        ask_actions)``: the actions say whether the venue's book had the price before."""
        sym = ev[1]
        mirror = self.mirrors[sym]
        bid_actions = _actions(ev[4], mirror.bids)
        ask_actions = _actions(ev[5], mirror.asks)
        mirror.apply(ev[4], ev[5])
        prev = self.last_id[sym]
        self.last_id[sym] = ev[3]
        return ev[:6] + (prev, bid_actions, ask_actions)

    # ------------------------------------------------------------------ formatting
    def formatter(self, suffix):
        return {"book": self._book, "trades": self._trades, "quote": self._quote}[suffix]

    def _book(self, ev, event_ms, extra):
        sym = ev[1]
        return notification("book.%s.100ms" % sym, book_json(
            "change", sym, ev[3], ev[6], ev[4], ev[5], ev[7], ev[8], event_ms, extra))

    def _trades(self, ev, event_ms, extra):
        sym = ev[1]
        return notification("trades.%s.100ms" % sym, (
            '[{"trade_seq":%d,"trade_id":"%d","timestamp":%d,"tick_direction":0,"price":%s,'
            '"mark_price":%s,"instrument_name":"%s","index_price":%s,"direction":"%s",'
            '"amount":%s}]' % (ev[2], ev[2], event_ms, shortest(ev[3]), shortest(ev[3]), sym,
                               shortest(ev[3]), "buy" if ev[5] == SIDE_BUY else "sell",
                               shortest(ev[4]))))

    def _quote(self, ev, event_ms, extra):
        sym = ev[1]
        return notification("quote." + sym, (
            '{"timestamp":%d,"instrument_name":"%s","best_bid_price":%s,"best_bid_amount":%s,'
            '"best_ask_price":%s,"best_ask_amount":%s}' % (
                event_ms, sym, shortest(ev[3]), shortest(ev[4]), shortest(ev[5]),
                shortest(ev[6]))))

    def snapshot_message(self, channel):
        """What a new subscriber to ``channel`` gets first (None for trades and quotes)."""
        kind, sym = parse_channel(channel)
        if kind != "book":
            return None
        bids, asks = self.mirrors[sym].top(1 << 30)
        return notification(channel, book_json(
            "snapshot", sym, self.last_id[sym], -1, bids, asks, ["new"] * (len(bids) >> 1),
            ["new"] * (len(asks) >> 1), self.server.now_ms()))

    # ------------------------------------------------------------------ heartbeat
    def on_timer(self, now_s):
        """test_request every heartbeat interval to each connection that set one; a connection
        that left the previous one unanswered is closed."""
        override_s = self.server.config.test_request_s
        for conn in list(self.server.conns.values()):
            session = conn.session
            if conn.closed or conn.closing or not isinstance(session, DeribitSession) \
                    or session.heartbeat_s is None:
                continue
            every_s = override_s or session.heartbeat_s
            if session.next_test_s is None:
                session.next_test_s = now_s + every_s
                continue
            if now_s < session.next_test_s:
                continue
            if session.test_pending:
                log.info("deribit conn %d: test_request not answered: closing", conn.id)
                self.heartbeat_closes += 1
                self.server.count_disconnect("heartbeat")
                conn.close_with(1000, "test_request not answered")
                continue
            session.test_pending = True
            session.next_test_s = now_s + every_s
            self.test_requests_sent += 1
            conn.send_raw_text(TEST_REQUEST)

    # ------------------------------------------------------------------ faults
    def server_shutdown_payload(self, event_ms):
        return None     # no documented notice: the connection just closes

    def malformed_payload(self, symbol, event_ms):
        return ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.%s.100ms",'
                '"data":{"type":"change","bids":[[' % symbol)

    def unknown_event_payload(self, symbol, event_ms):
        return notification("sim_unknown.%s" % symbol, '{"x":[1,2,3],"y":{"z":0.1}}')

    def absurd_depth_payload(self, symbol, update_id, event_ms):
        """Absurd levels chained after the last ``change_id`` without consuming an id: a client
        that drops the message sees the next real change continue the chain."""
        last = self.last_id[symbol]
        return notification("book.%s.100ms" % symbol, (
            '{"type":"change","timestamp":%d,"prev_change_id":%d,"instrument_name":"%s",'
            '"change_id":%d,"bids":[["new",1,1234567890123456789012345678901234567890],'
            '["new",-5,1]],"asks":[["change",2,"NaN"]]}' % (event_ms, last, symbol, last + 1)))

    def status(self):
        return {"change_id": dict(self.last_id), "test_requests_sent": self.test_requests_sent,
                "heartbeat_closes": self.heartbeat_closes, "tests_answered": self.tests_answered}


def _actions(flat, side):
    """Deribit's action for each level of a change, from the book before it."""
    out = []
    for i in range(0, len(flat), 2):
        if not flat[i + 1]:
            out.append("delete")
        elif flat[i] in side:
            out.append("change")
        else:
            out.append("new")
    return out
