"""Performing faults on a running simulator (the effects that need its connections and sockets).

``faults.py`` parses and validates; this module does: it arms the stream and REST counters, or
acts on the target connections at once (all open ones, or ``"conn": id``). Each fault writes a
``{"kind":"fault","phase":"armed",...}`` journal line here; the moment it takes effect on the
stream or a REST request is journaled where that happens.
"""

import logging
import time

from hftfeed.tools.sim import faults
from hftfeed.codecs.ws_proto import OP_TEXT, encode_frame, is_valid_close_code

log = logging.getLogger("hftfeed.sim.faultexec")


def execute(server, spec):
    """Apply normalized fault ``spec`` to ``server``; raises faults.FaultSpecError."""
    name = spec["fault"]
    handler = _HANDLERS.get(name) or _venue_handler(server, name)
    sym = spec.get("symbol")
    if sym is not None and sym not in server.known_symbols:
        raise faults.FaultSpecError("unknown symbol %r" % (sym,))
    detail = {k: v for k, v in spec.items() if k != "fault" and v is not None}
    detail["phase"] = "armed"
    handler(server, spec)
    server.note_fault(name, detail)
    log.info("fault %s: %s", name, detail)


def _venue_handler(server, name):
    """A venue-specific fault is the dialect's ``fault_<name>`` method; other venues refuse it."""
    method = getattr(server.dialect, "fault_" + name, None)
    if method is None:
        raise faults.FaultSpecError("fault %s is not part of the %s dialect"
                                    % (name, server.dialect.VENUE))

    def handler(_server, spec):
        try:
            method(spec)
        except ValueError as exc:
            raise faults.FaultSpecError(str(exc)) from None
    return handler


# ---------------------------------------------------------------------- stream and REST faults
def _drop(server, spec):
    server.stream_faults.arm_depth(faults.DROP, spec["symbol"], spec["count"])


def _duplicate(server, spec):
    server.stream_faults.arm_depth(faults.DUPLICATE, spec["symbol"], spec["count"])


def _reorder(server, spec):
    server.stream_faults.arm_depth(faults.HOLD, spec["symbol"], 1)


def _rest(server, spec):
    if server.dialect.DEPTH_PATH is None:
        raise faults.FaultSpecError("%s has no REST snapshot endpoint" % server.dialect.VENUE)
    server.stream_faults.arm_rest(spec)


def _instruments(server, spec):
    server.stream_faults.arm_instruments(spec)


def _stale(server, spec):
    """Capture the books now: served later, they are older than any diff a new client sees."""
    if server.dialect.DEPTH_PATH is None:
        raise faults.FaultSpecError("%s has no REST snapshot endpoint" % server.dialect.VENUE)
    syms = [spec["symbol"]] if spec["symbol"] else list(server.symbols)
    captured = {}
    for s in syms:
        snap = server.source.snapshot(s, server.dialect.MAX_DEPTH_LIMIT)
        if isinstance(snap, bytes):
            raise faults.FaultSpecError("stale_snapshot needs a synthetic or journal source")
        captured[s] = snap
    armed = dict(spec)
    armed["captured"] = captured
    server.stream_faults.arm_rest(armed)


# ---------------------------------------------------------------------- connection faults
def _close_abrupt(server, spec):
    for c in server.targets(spec["conn"]):
        server.count_disconnect("fault_close_abrupt")
        c.drop("fault close_abrupt", abort=spec["rst"])


def _close_frame(server, spec):
    code = spec["code"]
    if not is_valid_close_code(code):
        raise faults.FaultSpecError("close code %r cannot be sent on the wire" % (code,))
    for c in server.targets(spec["conn"]):
        server.count_disconnect("fault_close_frame")
        c.close_with(code, spec["reason"])
    server.resubscribe(None)


def _half_open(server, spec):
    now = time.monotonic()
    for c in server.targets(spec["conn"]):
        c.half_open = True
        c.out = []
        c.transport.pause_reading()
        c.close_reason = "half-open fault ended"
        c.force_close_at_s = now + spec["duration_s"]
    server.resubscribe(None)


def _stop_pings(server, spec):
    """No more pings; those already out no longer count (the client's own liveness is tested)."""
    for c in server.targets(spec["conn"]):
        c.pings_stopped = True
        c.pending_pings = []


def _ignore_pongs(server, spec):
    for c in server.targets(spec["conn"]):
        c.ignore_pongs = True


def _symbol_for(server, spec, conn):
    if spec.get("symbol"):
        return spec["symbol"]
    for s in conn.session.streams:
        sym = server.dialect.symbol_of_stream(s)
        if sym in server.known_symbols:
            return sym
    return server.symbols[0]


def _send_text_everywhere(server, spec, make_text, wrap):
    """Send one odd message to each target; ``wrap`` puts it in the combined-stream envelope."""
    now_ms = time.time_ns() // 1000000
    for c in server.targets(spec["conn"]):
        if c.half_open or c.closing:
            continue
        sym = _symbol_for(server, spec, c)
        text = make_text(server, sym, now_ms)
        if wrap and c.session.combined:
            text = server.dialect.combined(sym.lower() + "@depth@100ms", text)
        c.send_raw_text(text)


def _malformed(server, spec):
    _send_text_everywhere(server, spec, lambda s, sym, ms: server.dialect.malformed_payload(sym, ms), False)


def _unknown(server, spec):
    _send_text_everywhere(server, spec, lambda s, sym, ms: server.dialect.unknown_event_payload(sym, ms),
                          True)
    server.arm_depth_extra(server.dialect.UNKNOWN_DEPTH_FIELDS)


def _absurd(server, spec):
    def make(s, sym, ms):
        return server.dialect.absurd_depth_payload(sym, s.source.last_update_id(sym) + 1, ms)
    _send_text_everywhere(server, spec, make, True)


def _invalid_utf8(server, spec):
    frame = encode_frame(OP_TEXT, b'{"e":"depthUpdate","s":"\xff\xfe\xfd"}')
    for c in server.targets(spec["conn"]):
        if not (c.half_open or c.closing):
            c.send_frame_bytes(frame)


def _oversized(server, spec):
    """A frame whose header announces ``bytes`` of payload, followed by that much data."""
    n = spec["bytes"]
    prefix = b'{"pad":"'
    payload = prefix + b"x" * max(0, n - len(prefix) - 2) + b'"}'
    frame = encode_frame(OP_TEXT, payload[:n] if n >= len(prefix) + 2 else b"x" * n)
    for c in server.targets(spec["conn"]):
        if not (c.half_open or c.closing):
            c.send_frame_bytes(frame)


def _fragment(server, spec):
    for c in server.targets(spec["conn"]):
        c.fragment_parts = spec["parts"]
        c.fragment_left = spec["count"]
        c.special = True


def _server_shutdown(server, spec):
    for c in server.targets(spec["conn"]):
        if not (c.half_open or c.closing):
            c.send_server_shutdown(spec["after_s"])


def _lifetime(server, spec):
    now = time.monotonic()
    if spec["conn"] is None:
        server.config.lifetime_s = spec["seconds"]  # new connections get it too
    for c in server.targets(spec["conn"]):
        c.shutdown_sent = False
        c.close_at_s = None
        c.set_lifetime(spec["seconds"], now, from_now=True)


_HANDLERS = {
    "drop_diff": _drop,
    "duplicate_diff": _duplicate,
    "reorder_diffs": _reorder,
    "stale_snapshot": _stale,
    "rest_status": _rest,
    "rest_slow": _rest,
    "rest_truncated": _rest,
    "close_abrupt": _close_abrupt,
    "close_frame": _close_frame,
    "half_open": _half_open,
    "stop_pings": _stop_pings,
    "ignore_pongs": _ignore_pongs,
    "malformed_json": _malformed,
    "invalid_utf8": _invalid_utf8,
    "oversized_frame": _oversized,
    "fragment": _fragment,
    "unknown_event": _unknown,
    "server_shutdown": _server_shutdown,
    "lifetime": _lifetime,
    "absurd_numbers": _absurd,
    "instruments_status": _instruments,
    "instruments_malformed": _instruments,
}
