"""The Binance spot dialect of the simulator: stream names, JSON shapes, paths, REST rules (pure).

Everything venue-specific lives here so the engine (``market``) and the server (``server``) stay
venue-neutral; a later Binance futures / Bybit / OKX dialect is a sibling module with the same
functions. Facts implemented (Binance spot docs, "WebSocket Streams" and "Market data endpoints"):

* raw streams at ``/ws/<streamName>``, combined at ``/stream?streams=<a>/<b>/<c>``, combined events
  wrapped as ``{"stream":"<streamName>","data":<rawPayload>}``; symbols in stream names lowercase;
* a connection may listen to at most 1024 streams;
* live ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` / ``GET_PROPERTY``
  requests, answered ``{"result":null,"id":N}`` (or the list / property value);
* diff depth ``depthUpdate`` with ``U``/``u`` first/last update id, prices and quantities as decimal
  strings with 8 decimals (as real spot sends them); ``trade`` with ``m`` = "is the buyer the market
  maker" (so an aggressive sell has ``m`` true); ``bookTicker`` with the book update id ``u``;
* ``GET /api/v3/depth?symbol=S&limit=N``: default limit 100, above 5000 truncated to 5000, request
  weight 5 / 25 / 50 / 250 for limits up to 100 / 500 / 1000 / 5000; errors as
  ``{"code":-1121,"msg":"Invalid symbol."}``; HTTP 429 with ``Retry-After`` when the per-minute
  weight budget is spent, 418 (IP ban) for clients that keep going after a 429.
"""

import json
from urllib.parse import parse_qs, unquote, urlsplit

from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SCALE, SIDE_SELL

VENUE = "binance"
MAX_STREAMS_PER_CONNECTION = 1024

KIND_DEPTH = "depth"            # <symbol>@depth@100ms and <symbol>@depth (same diff events here)
KIND_TRADE = "trade"
KIND_AGGTRADE = "aggTrade"
KIND_BOOKTICKER = "bookTicker"
KIND_OTHER = "other"            # a well-formed name the simulator does not generate (kline_1m, ...)

_SUFFIX_KIND = {
    "depth@100ms": KIND_DEPTH,
    "depth": KIND_DEPTH,
    "trade": KIND_TRADE,
    "aggTrade": KIND_AGGTRADE,
    "bookTicker": KIND_BOOKTICKER,
}
# Names of the streams that carry each engine event kind, as suffixes after "<symbol>@".
DEPTH_SUFFIXES = ("depth@100ms", "depth")
TRADE_SUFFIXES = ("trade", "aggTrade")
QUOTE_SUFFIXES = ("bookTicker",)


class BinanceRequestError(ValueError):
    """A client request the venue refuses; ``code``/``msg`` are Binance's error fields."""

    def __init__(self, code, msg):
        super().__init__(msg)
        self.code = code
        self.msg = msg


RequestError = BinanceRequestError  # the name every dialect exposes


# ---------------------------------------------------------------------- stream names and paths
def parse_stream_name(name, suffix_kinds=None):
    """Return ``(lowercase symbol, kind)`` for a stream name; raise ValueError if malformed.

    A syntactically valid name for a stream the simulator does not produce (``kline_1m``, an
    uppercase symbol) is accepted with kind ``KIND_OTHER``: like the venue, it just stays silent.
    ``suffix_kinds`` maps the suffixes a dialect produces to their kind (spot's by default).
    """
    if not isinstance(name, str) or "@" not in name:
        raise ValueError("invalid stream name %r" % (name,))
    sym, _, suffix = name.partition("@")
    bare = sym.replace("_", "")        # COIN-M contracts: btcusd_perp, btcusd_261225
    if not bare or not suffix or not (bare.isalnum() and bare.isascii()) or " " in suffix:
        raise ValueError("invalid stream name %r" % (name,))
    kind = (_SUFFIX_KIND if suffix_kinds is None else suffix_kinds).get(suffix, KIND_OTHER)
    if kind != KIND_OTHER and sym != sym.lower():
        kind = KIND_OTHER  # stream names use lowercase symbols; "BTCUSDT@trade" delivers nothing
    return sym, kind


def parse_ws_target(target):
    """Map a WebSocket request target to ``(combined, [stream names])``; raise ValueError.

    ``/ws/<name>`` (raw), ``/ws`` (raw, subscribe later), ``/stream?streams=a/b`` (combined),
    ``/stream`` (combined, subscribe later).
    """
    parts = urlsplit(target)
    path = parts.path
    if path in ("/ws", "/ws/"):
        return False, []
    if path.startswith("/ws/"):
        names = [unquote(n) for n in path[4:].split("/") if n]
        for n in names:
            parse_stream_name(n)
        return False, names
    if path in ("/stream", "/stream/"):
        query = parse_qs(parts.query, keep_blank_values=True)
        raw = query.get("streams", [""])[0]
        names = [n for n in raw.split("/") if n]
        for n in names:
            parse_stream_name(n)
        return True, names
    raise ValueError("unknown WebSocket path %r" % (path,))


def book_request(market, symbols):
    """``(path after the venue's WebSocket path, [texts to send])`` of a client reading every
    symbol's book stream (the simulator bench, ``hftfeed/tools/sim/bench.py``)."""
    return "/stream?streams=" + "/".join(s.lower() + "@depth@100ms" for s in symbols), []


def is_ws_path(target):
    """True if ``target`` is one of the WebSocket stream paths of this venue."""
    path = urlsplit(target).path
    return path == "/ws" or path.startswith("/ws/") or path in ("/stream", "/stream/")


def open_session(target, max_streams):
    """The :class:`StreamSession` for an upgrade request to ``target``; ValueError if refused."""
    combined_mode, streams = parse_ws_target(target)
    return StreamSession(combined_mode, streams, max_streams)


def symbol_of_stream(stream):
    """Upper-case venue symbol a stream name is about (``btcusdt@trade`` -> ``BTCUSDT``)."""
    return stream.partition("@")[0].upper()


# ---------------------------------------------------------------------- JSON formatting (hot path)
def _levels(flat):
    # String formatting, not json.dumps: the simulator must emit >= 100k messages/s. Most diff
    # messages carry 0 or 1 level a side, so those two cases skip the loop and the join.
    n = len(flat)
    if n == 0:
        return ""
    if n == 2:
        p = flat[0]
        q = flat[1]
        return '["%d.%08d","%d.%08d"]' % (p // SCALE, p % SCALE, q // SCALE, q % SCALE)
    parts = []
    for i in range(0, n, 2):
        p = flat[i]
        q = flat[i + 1]
        parts.append('["%d.%08d","%d.%08d"]' % (p // SCALE, p % SCALE, q // SCALE, q % SCALE))
    return ",".join(parts)


def depth_payload(symbol, first_id, last_id, bids, asks, event_ms, extra=""):
    """The raw ``depthUpdate`` event; ``extra`` is appended inside the object (unknown-field fault)."""
    return ('{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,"b":[%s],"a":[%s]%s}'
            % (event_ms, symbol, first_id, last_id, _levels(bids), _levels(asks), extra))


def trade_payload(symbol, trade_id, price, qty, side, event_ms):
    """The raw ``trade`` event; ``m`` true when the buyer was the maker, i.e. the taker sold."""
    return ('{"e":"trade","E":%d,"s":"%s","t":%d,"p":"%d.%08d","q":"%d.%08d","T":%d,"m":%s,"M":true}'
            % (event_ms, symbol, trade_id, price // SCALE, price % SCALE, qty // SCALE, qty % SCALE,
               event_ms, "true" if side == SIDE_SELL else "false"))


def aggtrade_payload(symbol, trade_id, price, qty, side, event_ms):
    """The raw ``aggTrade`` event: one simulated trade is one aggregate (a = f = l)."""
    return ('{"e":"aggTrade","E":%d,"s":"%s","a":%d,"p":"%d.%08d","q":"%d.%08d","f":%d,"l":%d,'
            '"T":%d,"m":%s,"M":true}'
            % (event_ms, symbol, trade_id, price // SCALE, price % SCALE, qty // SCALE, qty % SCALE,
               trade_id, trade_id, event_ms, "true" if side == SIDE_SELL else "false"))


def bookticker_payload(symbol, update_id, bid_px, bid_qty, ask_px, ask_qty):
    """The raw ``bookTicker`` event (it has no event type or time field on spot)."""
    return ('{"u":%d,"s":"%s","b":"%d.%08d","B":"%d.%08d","a":"%d.%08d","A":"%d.%08d"}'
            % (update_id, symbol, bid_px // SCALE, bid_px % SCALE, bid_qty // SCALE, bid_qty % SCALE,
               ask_px // SCALE, ask_px % SCALE, ask_qty // SCALE, ask_qty % SCALE))


def combined(stream, payload):
    """Wrap a raw payload the way combined streams deliver it."""
    return '{"stream":"%s","data":%s}' % (stream, payload)


def combined_prefix(stream):
    """``combined(stream, p) == combined_prefix(stream) + p + "}"`` (precomputed per stream)."""
    return '{"stream":"%s","data":' % (stream,)


def server_shutdown_payload(event_ms):
    """The ``serverShutdown`` notice sent before the server closes the connection."""
    return '{"e":"serverShutdown","E":%d}' % (event_ms,)


def event_payload(ev, suffix, event_ms, depth_extra=""):
    """Raw JSON text of engine event ``ev`` as carried by the stream ``<symbol>@<suffix>``."""
    kind = ev[0]
    if kind == EV_DEPTH:
        return depth_payload(ev[1], ev[2], ev[3], ev[4], ev[5], event_ms, depth_extra)
    if kind == EV_TRADE:
        if suffix == "aggTrade":
            return aggtrade_payload(ev[1], ev[2], ev[3], ev[4], ev[5], event_ms)
        return trade_payload(ev[1], ev[2], ev[3], ev[4], ev[5], event_ms)
    if kind == EV_QUOTE:
        return bookticker_payload(ev[1], ev[2], ev[3], ev[4], ev[5], ev[6])
    raise ValueError("unknown event kind %r" % (kind,))


def _depth_event(ev, event_ms, extra):
    return ('{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,"b":[%s],"a":[%s]%s}'
            % (event_ms, ev[1], ev[2], ev[3], _levels(ev[4]), _levels(ev[5]), extra))


def _trade_event(ev, event_ms, extra):
    return trade_payload(ev[1], ev[2], ev[3], ev[4], ev[5], event_ms)


def _aggtrade_event(ev, event_ms, extra):
    return aggtrade_payload(ev[1], ev[2], ev[3], ev[4], ev[5], event_ms)


def _bookticker_event(ev, event_ms, extra):
    return bookticker_payload(ev[1], ev[2], ev[3], ev[4], ev[5], ev[6])


_FORMATTERS = {"depth@100ms": _depth_event, "depth": _depth_event, "trade": _trade_event,
               "aggTrade": _aggtrade_event, "bookTicker": _bookticker_event}


def formatter(suffix):
    """``fn(ev, event_ms, extra) -> raw JSON text`` for the stream kind ``suffix``.

    Same result as :func:`event_payload`, resolved once per subscription change instead of
    once per event (the server's fan-out calls it for every event and stream).
    """
    return _FORMATTERS[suffix]


# ---------------------------------------------------------------------- fault payloads
def malformed_payload(symbol, event_ms):
    """A depth event cut short: not parseable JSON."""
    return '{"e":"depthUpdate","E":%d,"s":"%s","U":1,"u":' % (event_ms, symbol)


def unknown_event_payload(symbol, event_ms):
    """A well-formed event of a type the client does not know (it must ignore it)."""
    return ('{"e":"simUnknownEvent","E":%d,"s":"%s","x":[1,2,3],"y":{"z":"0.1"}}'
            % (event_ms, symbol))


UNKNOWN_DEPTH_FIELDS = ',"sim":"extra field","Z":[1,{"k":null}]'


def absurd_depth_payload(symbol, update_id, event_ms):
    """A depth event with a 40-digit quantity, a negative price and a "NaN" quantity.

    It reuses the next update id without consuming it, so a client that drops it as invalid sees
    an unbroken chain with the next real event.
    """
    return ('{"e":"depthUpdate","E":%d,"s":"%s","U":%d,"u":%d,'
            '"b":[["1.00000000","1234567890123456789012345678901234567890"],'
            '["-5.00000000","1.00000000"]],"a":[["2.00000000","NaN"]]}'
            % (event_ms, symbol, update_id, update_id))


# ---------------------------------------------------------------------- live requests on a stream
class StreamSession(object):
    """The per-connection stream state and its JSON request handling (pure).

    Why separate from the server: the request/response rules are venue facts and are tested
    without a socket.
    """

    parse_name = staticmethod(parse_stream_name)   # a sibling dialect swaps in its names

    def __init__(self, combined_mode, streams, max_streams=MAX_STREAMS_PER_CONNECTION):
        self.combined = bool(combined_mode)
        self.max_streams = max_streams
        self.streams = []
        for s in streams:
            if s not in self.streams:
                self.streams.append(s)
        if len(self.streams) > max_streams:
            raise BinanceRequestError(2, "Invalid request: too many streams (max %d)" % max_streams)

    def delivered(self):
        """The subscribed streams this connection is actually sent (all of them on spot)."""
        return self.streams

    def handle_text(self, text):
        """Answer one client text message; returns the reply JSON text (never raises)."""
        try:
            req = json.loads(text)
        except ValueError as exc:
            return json.dumps({"error": {"code": 3, "msg": "Invalid JSON: %s" % exc}, "id": None},
                              separators=(",", ":"))
        if not isinstance(req, dict):
            return _error_reply(2, "Invalid request: expected a JSON object", None)
        rid = req.get("id")
        if isinstance(rid, bool) or (rid is not None and not isinstance(rid, (int, str))):
            return _error_reply(2, "Invalid request: request ID must be an unsigned integer", None)
        method = req.get("method")
        if method is None:
            return _error_reply(2, "Invalid request: missing field `method`", rid)
        params = req.get("params", [])
        try:
            result = self._dispatch(method, params)
        except BinanceRequestError as exc:
            return _error_reply(exc.code, exc.msg, rid)
        return json.dumps({"result": result, "id": rid}, separators=(",", ":"))

    def _dispatch(self, method, params):
        if method == "SUBSCRIBE":
            names = self._names(params)
            merged = list(self.streams)
            for n in names:
                if n not in merged:
                    merged.append(n)
            if len(merged) > self.max_streams:
                raise BinanceRequestError(2, "Invalid request: too many streams (max %d)"
                                          % self.max_streams)
            self.streams = merged
            return None
        if method == "UNSUBSCRIBE":
            names = self._names(params)
            self.streams = [s for s in self.streams if s not in names]
            return None
        if method == "LIST_SUBSCRIPTIONS":
            return list(self.streams)
        if method == "SET_PROPERTY":
            if not isinstance(params, list) or len(params) != 2 or params[0] != "combined":
                raise BinanceRequestError(0, "Unknown property")
            if not isinstance(params[1], bool):
                raise BinanceRequestError(1, "Invalid value type: expected Boolean")
            self.combined = params[1]
            return None
        if method == "GET_PROPERTY":
            if not isinstance(params, list) or params != ["combined"]:
                raise BinanceRequestError(0, "Unknown property")
            return self.combined
        raise BinanceRequestError(2, "Invalid request: unknown variant %s, expected one of "
                                     "`SUBSCRIBE`, `UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, "
                                     "`SET_PROPERTY`, `GET_PROPERTY`" % (method,))

    def _names(self, params):
        if not isinstance(params, list):
            raise BinanceRequestError(2, "Invalid request: params must be a list of stream names")
        for n in params:
            try:
                self.parse_name(n)
            except ValueError:
                raise BinanceRequestError(2, "Invalid request: invalid stream name %r" % (n,))
        return list(params)


def _error_reply(code, msg, rid):
    return json.dumps({"error": {"code": code, "msg": msg}, "id": rid}, separators=(",", ":"))


# ---------------------------------------------------------------------- REST
DEPTH_PATH = "/api/v3/depth"
CHEAP_PATHS = ("/api/v3/ping", "/api/v3/time")    # weight 1 each; health checks use them
DEFAULT_DEPTH_LIMIT = 100
MAX_DEPTH_LIMIT = 5000


def depth_weight(limit):
    """Request weight of GET /api/v3/depth for an (already truncated) limit."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def error_body(code, msg):
    return json.dumps({"code": code, "msg": msg}, separators=(",", ":")).encode("ascii")


def parse_depth_query(query, known_symbols):
    """Validate the depth request's query string; return ``(SYMBOL, limit)``.

    Raises :class:`BinanceRequestError` with Binance's code for a missing or unknown symbol or a
    malformed limit. The limit is truncated to 5000, like the venue does.
    """
    q = parse_qs(query, keep_blank_values=True)
    sym = q.get("symbol", [""])[0]
    if not sym:
        raise BinanceRequestError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                                         "or malformed.")
    if sym not in known_symbols:
        raise BinanceRequestError(-1121, "Invalid symbol.")
    raw_limit = q.get("limit", [None])[0]
    if raw_limit is None or raw_limit == "":
        return sym, DEFAULT_DEPTH_LIMIT
    if not (raw_limit.isdigit() and raw_limit.isascii()) or len(raw_limit) > 20:
        raise BinanceRequestError(-1100, "Illegal characters found in parameter 'limit'; legal "
                                         "range is '^[0-9]{1,20}$'.")
    limit = int(raw_limit)
    if limit < 1:
        raise BinanceRequestError(-1100, "Illegal characters found in parameter 'limit'; legal "
                                         "range is '^[0-9]{1,20}$'.")
    return sym, min(limit, MAX_DEPTH_LIMIT)


def snapshot_body(last_update_id, bids, asks, symbol=None):
    """``{"lastUpdateId":N,"bids":[["p","q"],...],"asks":[...]}`` as bytes (``symbol`` unused:
    spot prints every instrument with 8 decimals)."""
    return ('{"lastUpdateId":%d,"bids":[%s],"asks":[%s]}'
            % (last_update_id, _levels(bids), _levels(asks))).encode("ascii")


class WeightLimiter(object):
    """Binance's request-weight budget per client IP, with the 429 -> 418 escalation.

    A window opens at a client's first request and lasts ``window_s``; weight used in it is
    reported in ``X-MBX-USED-WEIGHT-1M``. A request that would exceed ``weight_limit`` gets 429
    with ``Retry-After`` = seconds until the window ends; the first 429 and ``ban_after`` more
    over-limit requests in that window get 429, the next one bans the IP (418) for ``ban_s``.
    Time is passed in by the caller (monotonic seconds) so the rules are testable without sleeps.
    """

    def __init__(self, weight_limit=6000, window_s=60.0, ban_after=2, ban_s=120.0):
        self.weight_limit = int(weight_limit)
        self.window_s = float(window_s)
        self.ban_after = int(ban_after)
        self.ban_s = float(ban_s)
        self._clients = {}  # ip -> [window_start_s, used, rejected_in_window, banned_until_s]

    def used(self, ip, now_s):
        st = self._clients.get(ip)
        if st is None or now_s - st[0] >= self.window_s:
            return 0
        return st[1]

    def check(self, ip, weight, now_s):
        """Return ``(status, used_weight, retry_after_s)``: status 200, 429 or 418."""
        st = self._clients.get(ip)
        if st is None:
            st = [now_s, 0, 0, 0.0]
            self._clients[ip] = st
        if st[3] > now_s:
            return 418, st[1], max(1, int(st[3] - now_s + 0.999))
        if now_s - st[0] >= self.window_s:
            st[0] = now_s
            st[1] = 0
            st[2] = 0
        retry = max(1, int(st[0] + self.window_s - now_s + 0.999))
        if st[1] + weight > self.weight_limit:
            st[2] += 1
            if st[2] > self.ban_after + 1:
                st[3] = now_s + self.ban_s
                return 418, st[1], max(1, int(self.ban_s + 0.999))
            return 429, st[1], retry
        st[1] += weight
        return 200, st[1], 0


def rate_limit_body(status, weight_limit, banned_until_ms=0):
    """Binance's -1003 body for 429 (too much weight) or 418 (banned)."""
    if status == 418:
        return error_body(-1003, "Way too much request weight used; IP banned until %d. Please use "
                                 "WebSocket Streams for live updates to avoid bans." % banned_until_ms)
    return error_body(-1003, "Too much request weight used; current limit is %d request weight per "
                             "1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                             "polling the API." % weight_limit)
