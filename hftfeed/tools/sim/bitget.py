"""The Bitget v2 public dialect of the simulator (pure, no I/O), for spot (``bitget``) and
USDT-M futures (``bitget-futures``): the same JSON, the ``instType`` says which.

Facts implemented (Bitget v2 docs "WebSocket: Connect", "Depth Channel", "Trade Channel",
"Tickers Channel"; see also ``hftfeed/venues/bitget.py`` and docs/venues.md):

* one path, ``/v2/ws/public``; ``{"op":"subscribe","args":[{"instType":..,"channel":..,
  "instId":..},..]}``; every arg is answered on its own, ``{"event":"subscribe","arg":{..}}``,
  or ``{"event":"error","arg":{..},"code":30001,"msg":..,"op":"subscribe"}`` for an
  instrument, channel or instType this server does not have (30002 for a bad request);
* keepalive: the text ``ping`` is answered with the text ``pong``; a client that sent nothing
  for ``idle_timeout_s`` (2 minutes) is closed;
* ``books``: a ``snapshot`` right after subscribing, then ``update``s; ``seq`` is the message's
  id (the engine's update id) and ``pseq`` the previous message's ``seq``; levels
  ``["price","size"]`` in shortest decimal form, size "0" deletes; ``checksum`` the signed
  CRC32 of ``bid1px:bid1sz:ask1px:ask1sz:...`` over the best 25 levels a side after the
  message (``checksum`` "zero" sends 0);
* ``trade``: ``tradeId`` decimal, ``side`` the taker's; ``ticker``: ``bidPr``/``bidSz``/
  ``askPr``/``askSz`` of the best levels.
"""

import json
import logging

from hftfeed.tools.sim.decimals import shortest
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SIDE_BUY
from hftfeed.tools.sim.mirror import MirrorBook
from hftfeed.tools.sim.session import JsonSession, MessageDialect, RequestError
from hftfeed.tools.sim.okx import CHECKSUM_LEVELS, crc32_signed, level_text, restart_ids

log = logging.getLogger("hftfeed.sim.bitget")

VENUE = "bitget"
MARKETS = {"bitget": "SPOT", "bitget-futures": "USDT-FUTURES"}    # registry name -> instType
CHANNELS = ("books", "trade", "ticker")
MAX_ARGS_PER_CONNECTION = 1000
CODE_NOT_EXIST = 30001
CODE_BAD_REQUEST = 30002
_JSON = (",", ":")


BitgetRequestError = RequestError      # the shared class (session.py), by its old name


def levels(flat):
    return ",".join('["%s","%s"]' % (shortest(flat[i]), shortest(flat[i + 1]))
                    for i in range(0, len(flat), 2))


def push(inst_type, channel, inst, action, data_json, ts_ms):
    return ('{"action":"%s","arg":{"instType":"%s","channel":"%s","instId":"%s"},"data":[%s],'
            '"ts":%d}' % (action, inst_type, channel, inst, data_json, ts_ms))


def books_data(bids, asks, checksum, seq, pseq, ts_ms, extra=""):
    return ('{"asks":[%s],"bids":[%s],"checksum":%d,"pseq":%d,"seq":%d,"ts":"%d"%s}'
            % (levels(asks), levels(bids), checksum, pseq, seq, ts_ms, extra))


def error_body(code, msg):
    return json.dumps({"code": str(code), "msg": msg, "data": None},
                      separators=_JSON).encode("utf-8")


class BitgetSession(JsonSession):
    PING_TEXT = "ping"      # answered "pong"
    PONG_TEXT = "pong"

    def __init__(self, dialect, max_args=MAX_ARGS_PER_CONNECTION):
        JsonSession.__init__(self, dialect, max_args)

    def counts_toward_limit(self, text):
        """Bitget's 10 messages a second include the string "ping" (its WebSocket overview:
        the limit counts "ping" and JSON requests alike)."""
        return True

    def refuse(self, text, why):
        return [json.dumps({"event": "error", "code": CODE_BAD_REQUEST, "msg": "illegal request"},
                           separators=_JSON)]

    def handle_request(self, req, text):
        op = req.get("op")
        args = req.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args:
            return self.refuse(text, None)
        out = []
        dialect = self.dialect
        for arg in args:
            arg = arg if isinstance(arg, dict) else {}
            channel = arg.get("channel")
            inst = arg.get("instId")
            echo = {"instType": arg.get("instType"), "channel": channel, "instId": inst}
            if arg.get("instType") != dialect.inst_type or channel not in CHANNELS \
                    or inst not in dialect.known:
                out.append(json.dumps({"event": "error", "arg": echo, "code": CODE_NOT_EXIST,
                                       "msg": "instType:%s,channel:%s,instId:%s doesn't exist"
                                              % (echo["instType"], channel, inst),
                                       "op": op}, separators=_JSON))
                continue
            key = "%s:%s" % (channel, inst)
            if op == "subscribe":
                if key not in self.streams:
                    if not self.has_room(1):
                        out.append(json.dumps({"event": "error", "arg": echo,
                                               "code": CODE_BAD_REQUEST,
                                               "msg": "too many subscriptions"},
                                              separators=_JSON))
                        continue
                    self.streams.append(key)
                out.append(json.dumps({"event": "subscribe", "arg": echo}, separators=_JSON))
                if channel == "books":
                    out.append(dialect.snapshot_message(inst))
            else:
                if key in self.streams:
                    self.streams.remove(key)
                out.append(json.dumps({"event": "unsubscribe", "arg": echo}, separators=_JSON))
        return out


def book_request(market, symbols):
    """``(path after the venue's WebSocket path, [texts to send])`` of a client reading every
    symbol's book stream (the simulator bench, ``hftfeed/tools/sim/bench.py``)."""
    return "", [json.dumps({"op": "subscribe", "args": [
        {"instType": MARKETS[market], "channel": "books", "instId": s} for s in symbols]})]


class Dialect(MessageDialect):
    """Per-server Bitget state: mirror books (snapshots, checksums) and each book's last seq."""

    MAX_STREAMS_PER_CONNECTION = MAX_ARGS_PER_CONNECTION
    IDLE_RULE = "client"            # no ping for idle_timeout_s: closed
    IDLE_CLOSE = (1000, "no ping received")
    error_body = staticmethod(error_body)

    def __init__(self, server):
        config = getattr(server, "config", None)
        self.VENUE = config.venue if config is not None else VENUE
        self.inst_type = MARKETS[self.VENUE]
        self.real_checksum = config is None or config.checksum != "zero"
        self.server = server
        self.known = frozenset(server.symbols)
        self.mirrors = {}
        self.last_seq = {}
        self.seq_resets = 0
        # each level's checksum text kept with it (OKX's construction, OKX's code): the
        # checksum of every message is then one join, not 50 decimal formattings
        text = level_text if self.real_checksum else None
        for sym, uid, bids, asks in server.source.initial_books():
            self.mirrors[sym] = MirrorBook(bids, asks, level_text=text)
            self.last_seq[sym] = uid
        for sym in server.symbols:
            self.mirrors.setdefault(sym, MirrorBook(level_text=text))
            self.last_seq.setdefault(sym, 1)

    def open_session(self, target, max_streams):
        self.check_ws_path(target)
        return BitgetSession(self, max_streams)

    @staticmethod
    def stream_table(inst):
        return {EV_DEPTH: [("books:" + inst, "books")], EV_TRADE: [("trade:" + inst, "trade")],
                EV_QUOTE: [("ticker:" + inst, "ticker")]}


    def checksum_now(self, sym):
        if not self.real_checksum:
            return 0
        return crc32_signed(self.mirrors[sym].interleaved_text(CHECKSUM_LEVELS))

    def observe_depth(self, ev):
        """``(EV_DEPTH, sym, U, seq, bids, asks, pseq, checksum)``."""
        sym = ev[1]
        self.mirrors[sym].apply(ev[4], ev[5])
        pseq = self.last_seq[sym]
        self.last_seq[sym] = ev[3]
        return ev[:6] + (pseq, self.checksum_now(sym))

    def formatter(self, suffix):
        return {"books": self._books, "trade": self._trade, "ticker": self._ticker}[suffix]

    def _books(self, ev, event_ms, extra):
        return push(self.inst_type, "books", ev[1], "update",
                    books_data(ev[4], ev[5], ev[7], ev[3], ev[6], event_ms, extra), event_ms)

    def _trade(self, ev, event_ms, extra):
        return push(self.inst_type, "trade", ev[1], "update",
                    '{"ts":"%d","price":"%s","size":"%s","side":"%s","tradeId":"%d"}'
                    % (event_ms, shortest(ev[3]), shortest(ev[4]),
                       "buy" if ev[5] == SIDE_BUY else "sell", ev[2]), event_ms)

    def _ticker(self, ev, event_ms, extra):
        return push(self.inst_type, "ticker", ev[1], "snapshot",
                    '{"instId":"%s","lastPr":"%s","bidPr":"%s","askPr":"%s","bidSz":"%s",'
                    '"askSz":"%s","ts":"%d"}' % (ev[1], shortest(ev[3]), shortest(ev[3]),
                                                 shortest(ev[5]), shortest(ev[4]),
                                                 shortest(ev[6]), event_ms), event_ms)

    def fault_bitget_seq_reset(self, spec):
        """A release or service restart (Bitget's order-book channel docs): the numbers start
        again at ``to`` (lower) and the next books message has ``pseq`` 0 ("most likely": the
        docs promise no more), so nothing chains across the reset."""
        for sym in restart_ids(self.server, spec, "bitget_seq_reset"):
            self.last_seq[sym] = 0
        self.seq_resets += 1

    def snapshot_message(self, inst):
        bids, asks = self.mirrors[inst].top(1 << 30)
        now_ms = self.server.now_ms()
        return push(self.inst_type, "books", inst, "snapshot",
                    books_data(bids, asks, self.checksum_now(inst), self.last_seq[inst], 0,
                               now_ms), now_ms)

    def server_shutdown_payload(self, event_ms):
        return None

    def malformed_payload(self, symbol, event_ms):
        return ('{"action":"update","arg":{"instType":"%s","channel":"books","instId":"%s"},'
                '"data":[{"asks":[[' % (self.inst_type, symbol))

    def unknown_event_payload(self, symbol, event_ms):
        return push(self.inst_type, "sim-unknown", symbol, "update", '{"x":[1,2,3]}', event_ms)

    def absurd_depth_payload(self, symbol, update_id, event_ms):
        last = self.last_seq[symbol]
        return push(self.inst_type, "books", symbol, "update",
                    '{"asks":[["2","NaN"]],"bids":[["1","1234567890123456789012345678901234567890"],'
                    '["-5","1"]],"checksum":0,"pseq":%d,"seq":%d,"ts":"%d"}'
                    % (last, last + 1, event_ms), event_ms)

    def status(self):
        return {"seq": dict(self.last_seq), "seq_resets": self.seq_resets,
                "instType": self.inst_type,
                "checksum": "real" if self.real_checksum else "zero"}
