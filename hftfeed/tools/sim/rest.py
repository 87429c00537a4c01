"""The simulator's REST side: the venue's depth snapshot endpoint and the ``/_sim`` control API.

The dialect's ``DEPTH_PATH`` (``GET /api/v3/depth`` on Binance spot, ``/fapi/v1/depth`` on USD-M
futures; none on Bybit and OKX, whose books arrive in-stream) follows the venue (weights, limits,
429/418 escalation, error bodies) and takes the armed REST faults (``rest_status``,
``rest_slow``, ``rest_truncated``, ``stale_snapshot``). ``POST /_sim/fault`` arms or performs a
fault; ``GET /_sim/status`` reports counters. The dialect's ``CHEAP_PATHS`` (``/api/v3/ping``,
``/fapi/v1/time`` ...) exist because health checks use them.
"""

import asyncio
import json
import logging
import time

from hftfeed.tools.sim import faults, httpd, instruments
from hftfeed.venues import registry     # pure data: imports no adapter and nothing of the core

log = logging.getLogger("hftfeed.sim.rest")

_WEIGHT_HEADER = "X-MBX-USED-WEIGHT-1M"
_STATUS_BODIES = {
    500: (-1000, "An unknown error occurred while processing the request."),
    502: (-1000, "An unknown error occurred while processing the request."),
    503: (-1008, "Server is currently overloaded with other requests. Please try again in a few "
                 "minutes."),
    504: (-1007, "Timeout waiting for response from backend server. Send status unknown; "
                 "execution status unknown."),
}


def respond(proto, req, status, body, headers=(), keep_alive=True):
    """Write a complete JSON response; close afterwards unless keep-alive."""
    keep = keep_alive and req.keep_alive()
    proto.transport.write(httpd.response_head(status, len(body), headers, keep) + body)
    if not keep:
        proto.transport.close()


def handle(server, proto, req):
    path = req.path
    if path == "/_sim/status":
        body = json.dumps(server.status(), separators=(",", ":"), default=str).encode("utf-8")
        respond(proto, req, 200, body)
    elif path == "/_sim/fault":
        _control_fault(server, proto, req)
    elif server.dialect.DEPTH_PATH is not None and path == server.dialect.DEPTH_PATH:
        _depth(server, proto, req)
    elif path in getattr(server.dialect, "CHEAP_PATHS", ()):
        _cheap(server, proto, req)
    elif path in _instruments_paths(server.config.venue):
        _instruments(server, proto, req)
    else:
        respond(proto, req, 404, server.dialect.error_body(-1, "Not found: %s" % path))


def _instruments_paths(venue):
    """The paths (without query) of the venue's instruments endpoint, from its registry entry."""
    endpoint = registry.spec(venue).instruments
    if isinstance(endpoint, str):
        return ()
    return tuple(p.split("?", 1)[0] for p in endpoint.paths)


def _instruments(server, proto, req):
    """The venue's instrument list (tools/sim/instruments.py), or the armed fault."""
    spec = server.stream_faults.take_instruments()
    if spec is not None and spec["fault"] == "instruments_status":
        server.note_fault("instruments_status", {"code": spec["code"]})
        respond(proto, req, spec["code"], server.dialect.error_body(-1, "simulated failure"))
        return
    if spec is not None:
        server.note_fault("instruments_malformed", {})
        respond(proto, req, 200, b'{"symbols":[{"symbol":"BTCUSDT","filters":[')
        return
    status, body = instruments.body(server.config.venue, server.symbols, req.query)
    respond(proto, req, status, body)


def _control_fault(server, proto, req):
    if req.method != "POST":
        respond(proto, req, 405, b'{"ok":false,"error":"use POST"}')
        return
    try:
        spec = json.loads(req.body.decode("utf-8") or "null")
        server.apply_fault(faults.normalize(spec))
    except (ValueError, UnicodeDecodeError) as exc:  # FaultSpecError is a ValueError
        log.info("fault request refused: %s", exc)
        body = json.dumps({"ok": False, "error": str(exc)}).encode("utf-8")
        respond(proto, req, 400, body)
        return
    respond(proto, req, 200, b'{"ok":true}')


def _cheap(server, proto, req):
    status, used, retry = server.limiter.check(proto.peer, 1, time.monotonic())
    if status != 200:
        _rate_limited(server, proto, req, status, used, retry)
        return
    if req.path.endswith("/time"):
        body = ('{"serverTime":%d}' % (time.time_ns() // 1000000)).encode("ascii")
    else:
        body = b"{}"
    respond(proto, req, 200, body, [(_WEIGHT_HEADER, used)])


def _rate_limited(server, proto, req, status, used, retry_s):
    banned_until_ms = time.time_ns() // 1000000 + retry_s * 1000
    body = server.dialect.rate_limit_body(status, server.config.weight_limit, banned_until_ms)
    respond(proto, req, status, body, [(_WEIGHT_HEADER, used), ("Retry-After", retry_s)])


def _depth(server, proto, req):
    if req.method != "GET":
        respond(proto, req, 405, server.dialect.error_body(-1, "Method not allowed"))
        return
    try:
        symbol, limit = server.dialect.parse_depth_query(req.query, server.known_symbols)
    except server.dialect.RequestError as exc:
        respond(proto, req, 400, server.dialect.error_body(exc.code, exc.msg),
                [(_WEIGHT_HEADER, server.limiter.used(proto.peer, time.monotonic()))])
        return
    status, used, retry = server.limiter.check(proto.peer, server.dialect.depth_weight(limit),
                                               time.monotonic())
    if status != 200:
        _rate_limited(server, proto, req, status, used, retry)
        return
    headers = [(_WEIGHT_HEADER, used)]
    spec = server.stream_faults.take_rest(symbol)
    name = spec["fault"] if spec else None
    if name == "rest_status":
        code = spec["code"]
        server.note_fault("rest_status", {"symbol": symbol, "code": code})
        if code in (418, 429):
            _rate_limited(server, proto, req, code, used, spec["retry_after_s"])
            return
        err = _STATUS_BODIES.get(code, (-1000, "error"))
        respond(proto, req, code, server.dialect.error_body(err[0], err[1]),
                headers + [("Retry-After", spec["retry_after_s"])] if code == 503 else headers)
        return
    if name == "stale_snapshot":
        uid, bids, asks = spec["captured"][symbol]
        body = server.dialect.snapshot_body(uid, bids[:2 * limit], asks[:2 * limit], symbol)
        server.note_fault("stale_snapshot", {"symbol": symbol, "lastUpdateId": uid,
                                              "current_update_id": server.source.last_update_id(symbol)})
    else:
        snap = server.source.snapshot(symbol, limit)
        body = snap if isinstance(snap, bytes) else server.dialect.snapshot_body(
            snap[0], snap[1], snap[2], symbol)
    server.snapshots_served += 1
    if server.journal is not None:
        uid = server.source.last_update_id(symbol) if name != "stale_snapshot" else \
            spec["captured"][symbol][0]
        server.journal.write_snapshot(symbol, uid, limit, time.time_ns(), name == "stale_snapshot")
    if name == "rest_truncated":
        server.note_fault("rest_truncated", {"symbol": symbol, "bytes_sent": len(body) // 2})
        proto.transport.write(httpd.response_head(200, len(body), headers, False)
                              + body[:len(body) // 2])
        proto.transport.close()
        return
    if name == "rest_slow":
        delay_s = spec["delay_s"]
        server.note_fault("rest_slow", {"symbol": symbol, "delay_s": delay_s})
        keep = req.keep_alive()
        proto.transport.write(httpd.response_head(200, len(body), headers, keep))
        proto.busy = True
        asyncio.get_running_loop().call_later(delay_s, _finish_slow, proto, body, keep)
        return
    respond(proto, req, 200, body, headers)


def _finish_slow(proto, body, keep):
    proto.busy = False
    if proto.transport is None or proto.transport.is_closing():
        log.info("slow response: client left before the body")
        return
    proto.transport.write(body)
    if not keep:
        proto.transport.close()
        return
    proto.process()
