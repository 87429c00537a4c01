"""The OKX v5 public dialect of the simulator (pure, no I/O: the server does the sockets).

Facts implemented (OKX v5 docs: "WebSocket: Connect", "Order book channel", "Trades channel",
"Best bid/offer channel", the 2026-05-21 checksum notice; the 2022 capture
capture (OKX.ws.1.0); see also ``hftfeed/venues/okx.py``):

* one path, ``/ws/v5/public``; ``{"op":"subscribe","args":[{"channel":..,"instId":..},..]}``;
  every arg is answered on its own, ``{"event":"subscribe","arg":{..},"connId":..}``, or
  ``{"event":"error","code":"60018","msg":..,"connId":..}`` for a channel/instrument that does
  not exist (``60012`` for a request that is not valid JSON or has no known ``op``);
  ``unsubscribe`` likewise; subscribe/unsubscribe requests are limited to 3 a second;
* keepalive: the client sends the text ``ping``, the server answers the text ``pong``; the
  connection is closed when no subscription was made, or nothing was pushed, for 30 s
  (``idle_timeout_s``; close code 4004);
* ``books`` (400 levels): ``action`` ``snapshot`` on subscribe (``prevSeqId`` -1), then
  ``update``s whose ``prevSeqId`` is the previous message's ``seqId``; levels are
  ``[px, sz, "0", orders]`` with the shortest decimal strings; size "0" deletes. After a quiet
  spell an empty update with ``prevSeqId == seqId`` (``book_keepalive_s``) keeps the chain
  alive. After maintenance (fault ``okx_seq_reset``) ``seqId`` goes *down* while ``prevSeqId``
  still names the previous message;
* ``checksum``: CRC32 (signed 32-bit) of ``bid1px:bid1sz:ask1px:ask1sz:...`` over the best 25
  levels a side, from the strings sent; ``checksum`` "zero" sends 0 as OKX does since
  23 June 2026 (production); fault ``bad_checksum`` sends a wrong value once;
* ``trades``: ``tradeId`` a decimal string, ``side`` the taker's, ``ts`` ms as a string;
  ``bbo-tbt``: best bid/offer as one-level ``asks``/``bids`` with the book's ``seqId``;
* notice ``{"event":"notice","code":"64008",..}`` before a server-side close (fault
  ``server_shutdown``).

Not reproduced: OKX announced (2026-02) that the initial snapshot and ``checksum`` would leave
the order book channels in production in August 2026 (then: REST snapshot + seqId rules); this
dialect still sends the in-stream snapshot, as the current adapter expects.
"""

import json
import logging
import zlib

from hftfeed.tools.sim.decimals import shortest
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SIDE_BUY
from hftfeed.tools.sim.mirror import MirrorBook
from hftfeed.tools.sim.session import JsonSession, MessageDialect, RequestError

log = logging.getLogger("hftfeed.sim.okx")

VENUE = "okx"
CHECKSUM_LEVELS = 25
BOOK_LEVELS = 400
MAX_ARGS_PER_CONNECTION = 1024
CHANNELS = {"books": EV_DEPTH, "trades": EV_TRADE, "bbo-tbt": EV_QUOTE}
CODE_INVALID_REQUEST = "60012"
CODE_NO_SUCH_CHANNEL = "60018"
NOTICE_UPGRADE = "64008"
_JSON = (",", ":")


OkxRequestError = RequestError      # the shared class (session.py), by its old name


def stream_key(channel, inst_id):
    """The simulator's name for one subscription (OKX has no stream names)."""
    return "%s:%s" % (channel, inst_id)


def level_text(price, qty):
    """One level as it enters the checksum string: ``"px:sz"`` in OKX's decimal strings."""
    return shortest(price) + ":" + shortest(qty)


def crc32_signed(text):
    value = zlib.crc32(text.encode("ascii"))
    return value - 0x100000000 if value >= 0x80000000 else value


def book_checksum(bids, asks):
    """Checksum of flat best-first sides (at most 25 levels each used), from scratch."""
    parts = []
    nb = min(CHECKSUM_LEVELS, len(bids) // 2)
    na = min(CHECKSUM_LEVELS, len(asks) // 2)
    for i in range(max(nb, na)):
        if i < nb:
            parts.append(level_text(bids[2 * i], bids[2 * i + 1]))
        if i < na:
            parts.append(level_text(asks[2 * i], asks[2 * i + 1]))
    return crc32_signed(":".join(parts))


def _orders(qty):
    """The deprecated/"orders" fourth field: 0 for a deleted level, else a small count."""
    return 0 if qty == 0 else 1 + qty % 4


def format_side(flat, price_text):
    """One side of an event, formatted once: ``(json pieces joined, ["px:sz", ...] per level)``.
    ``price_text`` caches the price strings (prices repeat far more than sizes do)."""
    pieces = []
    texts = []
    for i in range(0, len(flat), 2):
        p = flat[i]
        q = flat[i + 1]
        ps = price_text.get(p)
        if ps is None:
            ps = shortest(p)
            if len(price_text) > 20000:     # bounded: a long random walk visits many prices
                price_text.clear()
            price_text[p] = ps
        qs = shortest(q)
        pieces.append('["%s","%s","0","%d"]' % (ps, qs, 0 if q == 0 else 1 + q % 4))
        texts.append(ps + ":" + qs)
    return ",".join(pieces), texts


def levels(flat):
    n = len(flat)
    if n == 0:
        return ""
    if n == 2:
        q = flat[1]
        return '["%s","%s","0","%d"]' % (shortest(flat[0]), shortest(q), _orders(q))
    return ",".join(['["%s","%s","0","%d"]' % (shortest(flat[i]), shortest(flat[i + 1]),
                                               _orders(flat[i + 1])) for i in range(0, n, 2)])


def books_message(inst_id, action, bids, asks, ts_ms, checksum, prev_seq, seq, extra=""):
    return books_json(inst_id, action, levels(bids), levels(asks), ts_ms, checksum, prev_seq, seq,
                      extra)


def books_json(inst_id, action, bids_json, asks_json, ts_ms, checksum, prev_seq, seq, extra=""):
    """A books push from already formatted sides."""
    return ('{"arg":{"channel":"books","instId":"%s"},"action":"%s","data":[{"asks":[%s],'
            '"bids":[%s],"ts":"%d","checksum":%d,"prevSeqId":%d,"seqId":%d}]%s}'
            % (inst_id, action, asks_json, bids_json, ts_ms, checksum, prev_seq, seq, extra))


def trades_message(inst_id, trade_id, price, qty, side, ts_ms):
    return ('{"arg":{"channel":"trades","instId":"%s"},"data":[{"instId":"%s","tradeId":"%d",'
            '"px":"%s","sz":"%s","side":"%s","ts":"%d","count":"1"}]}'
            % (inst_id, inst_id, trade_id, shortest(price), shortest(qty),
               "buy" if side == SIDE_BUY else "sell", ts_ms))


def bbo_message(inst_id, seq, bid_px, bid_qty, ask_px, ask_qty, ts_ms):
    return ('{"arg":{"channel":"bbo-tbt","instId":"%s"},"data":[{"asks":[["%s","%s","0","%d"]],'
            '"bids":[["%s","%s","0","%d"]],"ts":"%d","seqId":%d}]}'
            % (inst_id, shortest(ask_px), shortest(ask_qty), _orders(ask_qty), shortest(bid_px),
               shortest(bid_qty), _orders(bid_qty), ts_ms, seq))


def event(name, conn_id, **fields):
    out = {"event": name}
    out.update(fields)
    out["connId"] = conn_id
    return json.dumps(out, separators=_JSON)


def error_body(code, msg):
    return json.dumps({"code": "50000" if code == -1 else str(code), "msg": msg, "data": []},
                      separators=_JSON).encode("utf-8")


class OkxSession(JsonSession):
    """One connection's subscriptions and request handling (answers + snapshots to send)."""

    PING_TEXT = "ping"      # OKX limits subscribe/unsubscribe requests (3 a second), not pings
    PONG_TEXT = "pong"

    def __init__(self, dialect, conn_id, max_args=MAX_ARGS_PER_CONNECTION):
        JsonSession.__init__(self, dialect, max_args)
        self.conn_id = conn_id
        self.ever_subscribed = False

    def refuse(self, text, why):
        return [event("error", self.conn_id, code=CODE_INVALID_REQUEST,
                      msg="Invalid request: %s" % text[:200])]

    def handle_request(self, req, text):
        op = req.get("op")
        args = req.get("args")
        if op not in ("subscribe", "unsubscribe") or not isinstance(args, list) or not args:
            return self.refuse(text, None)
        out = []
        for arg in args:
            channel = arg.get("channel") if isinstance(arg, dict) else None
            inst = arg.get("instId") if isinstance(arg, dict) else None
            if channel not in CHANNELS or inst not in self.dialect.known:
                out.append(event("error", self.conn_id, code=CODE_NO_SUCH_CHANNEL,
                                 msg="Wrong URL or channel:%s,instId:%s doesn't exist. Please use "
                                     "the correct URL, channel and parameters referring to API "
                                     "document." % (channel, inst)))
                continue
            key = stream_key(channel, inst)
            echo = {"channel": channel, "instId": inst}
            if op == "subscribe":
                if key not in self.streams:
                    if not self.has_room(1):
                        out.append(event("error", self.conn_id, code=CODE_INVALID_REQUEST,
                                         msg="Invalid request: too many subscriptions"))
                        continue
                    self.streams.append(key)
                self.ever_subscribed = True
                out.append(event("subscribe", self.conn_id, arg=echo))
                if channel == "books":      # the snapshot follows the acknowledgement
                    out.append(self.dialect.snapshot_message(inst))
            else:
                if key in self.streams:
                    self.streams.remove(key)
                out.append(event("unsubscribe", self.conn_id, arg=echo))
        return out


def restart_ids(server, spec, fault):
    """Make the synthetic engines of ``spec``'s symbol (all when none) number their next
    event ``spec["to"]``, below where they are (a venue whose ids restart lower: OKX after
    maintenance, Bitget after a release). Returns the symbols; ValueError if ``to`` is not
    lower or the source is not the synthetic one."""
    syms = [spec["symbol"]] if spec.get("symbol") else list(server.symbols)
    engines = getattr(server.source, "by_symbol", None)
    if engines is None:
        raise ValueError("%s needs the synthetic source" % fault)
    for sym in syms:
        if spec["to"] >= engines[sym].last_update_id:
            raise ValueError("%s: 'to' (%d) must be below the current id %d"
                             % (fault, spec["to"], engines[sym].last_update_id))
    for sym in syms:
        engines[sym].last_update_id = spec["to"] - 1
    return syms


def book_request(market, symbols):
    """``(path after the venue's WebSocket path, [texts to send])`` of a client reading every
    symbol's book stream (the simulator bench, ``hftfeed/tools/sim/bench.py``)."""
    return "", [json.dumps({"op": "subscribe",
                            "args": [{"channel": "books", "instId": s} for s in symbols]})]


class Dialect(MessageDialect):
    """Per-server OKX state: mirror books (for checksums), the last ``seqId`` of each book, the
    quiet-time clock of the keepalive updates, armed bad checksums."""

    VENUE = VENUE
    MAX_STREAMS_PER_CONNECTION = MAX_ARGS_PER_CONNECTION
    MAX_DEPTH_LIMIT = BOOK_LEVELS
    IDLE_RULE = "push"              # closed when nothing was pushed for idle_timeout_s
    IDLE_CLOSE = (4004, "No data received in 30s")
    error_body = staticmethod(error_body)

    def __init__(self, server):
        self.server = server
        self.known = frozenset(server.symbols)
        self.real_checksum = server.config.checksum != "zero"
        text = level_text if self.real_checksum else None
        self.mirrors = {}
        self.price_text = {}        # symbol -> {price: shortest string}
        self.last_seq = {}
        self.book_pushed_s = {}
        self.bad_checksums = {}     # symbol (or None = any) -> remaining count
        self.seq_resets = 0
        self.keepalives_sent = 0
        self._next_conn = 0
        for sym, uid, bids, asks in server.source.initial_books():
            self.mirrors[sym] = MirrorBook(bids, asks, level_text=text)
            self.last_seq[sym] = uid
        for sym in server.symbols:
            self.mirrors.setdefault(sym, MirrorBook(level_text=text))
            self.last_seq.setdefault(sym, 0)
            self.price_text[sym] = {}

    # ------------------------------------------------------------------ connections
    def open_session(self, target, max_streams):
        self.check_ws_path(target)
        self._next_conn += 1
        return OkxSession(self, "%08x" % zlib.crc32(b"okx-conn-%d" % self._next_conn),
                          max_streams)

    @staticmethod
    def stream_table(inst_id):
        return {EV_DEPTH: [(stream_key("books", inst_id), "books")],
                EV_TRADE: [(stream_key("trades", inst_id), "trades")],
                EV_QUOTE: [(stream_key("bbo-tbt", inst_id), "bbo")]}


    # ------------------------------------------------------------------ event bookkeeping
    def checksum_now(self, sym):
        """The checksum of ``sym``'s mirror as it stands (0 in "zero" mode)."""
        if not self.real_checksum:
            return 0
        return crc32_signed(self.mirrors[sym].interleaved_text(CHECKSUM_LEVELS))

    def observe_depth(self, ev):
        """``(EV_DEPTH, sym, U, seqId, bids, asks, prevSeqId, checksum, bids_json, asks_json)``:
        each level is formatted here once, for the message and for the checksum string."""
        sym = ev[1]
        mirror = self.mirrors[sym]
        prices = self.price_text[sym]
        bids_json, bid_texts = format_side(ev[4], prices)
        asks_json, ask_texts = format_side(ev[5], prices)
        if self.real_checksum:
            mirror.apply_with_text(ev[4], ev[5], bid_texts, ask_texts)
        else:
            mirror.apply(ev[4], ev[5])
        prev = self.last_seq[sym]
        self.last_seq[sym] = ev[3]
        self.book_pushed_s[sym] = self.server.tick_now_s
        # The CRC costs a join over 50 cached strings: only when someone reads this book.
        checksum = 0
        if self.real_checksum and self.server.has_subscribers(sym, EV_DEPTH):
            checksum = crc32_signed(mirror.interleaved_text(CHECKSUM_LEVELS))
        if self.bad_checksums:
            checksum = self._maybe_corrupt(sym, checksum, ev[3])
        return (EV_DEPTH, sym, ev[2], ev[3], ev[4], ev[5], prev, checksum, bids_json, asks_json)

    def _maybe_corrupt(self, sym, checksum, seq):
        for key in (sym, None):
            left = self.bad_checksums.get(key)
            if left:
                if left <= 1:
                    del self.bad_checksums[key]
                else:
                    self.bad_checksums[key] = left - 1
                real = checksum or crc32_signed(":".join(
                    _interleave(self.mirrors[sym].top(CHECKSUM_LEVELS))))
                wrong = real ^ 0x5A5A5A5A or 1
                self.server.note_fault("bad_checksum", {"symbol": sym, "seqId": seq,
                                                        "checksum": wrong, "correct": real})
                return wrong
        return checksum

    # ------------------------------------------------------------------ formatting
    def formatter(self, suffix):
        return {"books": self._books, "trades": self._trades, "bbo": self._bbo}[suffix]

    def _books(self, ev, event_ms, extra):
        if len(ev) > 9:
            return books_json(ev[1], "update", ev[8], ev[9], event_ms, ev[7], ev[6], ev[3], extra)
        # an event that bypassed observe_depth (cannot happen on the live path)
        return books_message(ev[1], "update", ev[4], ev[5], event_ms, 0, ev[2] - 1, ev[3], extra)

    def _trades(self, ev, event_ms, extra):
        return trades_message(ev[1], ev[2], ev[3], ev[4], ev[5], event_ms)

    def _bbo(self, ev, event_ms, extra):
        return bbo_message(ev[1], ev[2], ev[3], ev[4], ev[5], ev[6], event_ms)

    def snapshot_message(self, inst_id):
        bids, asks = self.mirrors[inst_id].top(BOOK_LEVELS)
        return books_message(inst_id, "snapshot", bids, asks, self.server.now_ms(),
                             self.checksum_now(inst_id), -1, self.last_seq[inst_id])

    def keepalive_message(self, inst_id):
        """The empty update sent after a quiet spell: ``prevSeqId == seqId``."""
        seq = self.last_seq[inst_id]
        return books_message(inst_id, "update", [], [], self.server.now_ms(),
                             self.checksum_now(inst_id), seq, seq)

    def on_timer(self, now_s):
        every_s = self.server.config.book_keepalive_s
        if not every_s:
            return
        for sym in self.server.symbols:
            last = self.book_pushed_s.get(sym)
            if last is None:
                self.book_pushed_s[sym] = now_s
            elif now_s - last >= every_s:
                self.book_pushed_s[sym] = now_s
                self.keepalives_sent += 1
                self.server.send_to_stream(stream_key("books", sym), self.keepalive_message(sym))

    # ------------------------------------------------------------------ faults
    def fault_okx_seq_reset(self, spec):
        """Maintenance: the next books message's ``seqId`` restarts at ``to`` (lower), while its
        ``prevSeqId`` still names the previous message."""
        restart_ids(self.server, spec, "okx_seq_reset")
        self.seq_resets += 1

    def fault_bad_checksum(self, spec):
        key = spec.get("symbol")
        self.bad_checksums[key] = self.bad_checksums.get(key, 0) + spec["count"]

    def server_shutdown_payload(self, event_ms):
        return json.dumps({"event": "notice", "code": NOTICE_UPGRADE,
                           "msg": "The connection will soon be closed for a service upgrade. "
                                  "Please reconnect."}, separators=_JSON)

    def malformed_payload(self, symbol, event_ms):
        return '{"arg":{"channel":"books","instId":"%s"},"action":"update","data":[{"asks":[[' % (
            symbol,)

    def unknown_event_payload(self, symbol, event_ms):
        return ('{"arg":{"channel":"sim-unknown","instId":"%s"},"data":[{"x":[1,2,3],'
                '"ts":"%d"}]}' % (symbol, event_ms))

    def absurd_depth_payload(self, symbol, update_id, event_ms):
        """Absurd levels chained after the last ``seqId`` without consuming it: a client that
        drops the message sees the next real update continue the chain."""
        last = self.last_seq[symbol]
        return ('{"arg":{"channel":"books","instId":"%s"},"action":"update","data":[{"asks":'
                '[["2","NaN","0","1"]],"bids":[["1","1234567890123456789012345678901234567890",'
                '"0","1"],["-5","1","0","1"]],"ts":"%d","checksum":0,"prevSeqId":%d,'
                '"seqId":%d}]}' % (symbol, event_ms, last, last + 1))

    def status(self):
        return {"seqId": dict(self.last_seq), "seq_resets": self.seq_resets,
                "keepalives_sent": self.keepalives_sent,
                "bad_checksums_armed": {str(k): v for k, v in self.bad_checksums.items()},
                "checksum": "real" if self.real_checksum else "zero"}


def _interleave(sides):
    bids, asks = sides
    parts = []
    nb = len(bids) // 2
    na = len(asks) // 2
    for i in range(max(nb, na)):
        if i < nb:
            parts.append(level_text(bids[2 * i], bids[2 * i + 1]))
        if i < na:
            parts.append(level_text(asks[2 * i], asks[2 * i + 1]))
    return parts
