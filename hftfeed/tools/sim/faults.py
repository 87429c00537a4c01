"""Fault injection for the simulator: spec parsing and the stream/REST fault state (pure).

Faults come from ``--fault SPEC`` on the command line (applied at start, or later with
``after_s``, repeated with ``every_s``) or from ``POST /_sim/fault`` with a JSON body. Every fault
is observable in the journal as ``{"kind":"fault",...}`` lines (one when armed, one each time it
takes effect). Spec forms::

    drop_diff                           name only
    drop_diff:symbol=BTCUSDT,count=2    name:key=value,...
    {"fault":"rest_status","code":418}  JSON object

This module knows the names, their parameters and the per-symbol counters the server consults on
its hot path (a single boolean check when nothing is armed); the server performs the effects
that need sockets (closing, half-open, odd frames). ``VENUE_FAULTS`` belong to one dialect each
(its ``fault_<name>`` method): ``bybit_restart``, ``okx_seq_reset``, ``bitget_seq_reset``,
``bad_checksum``; the REST
faults need a venue with a REST snapshot (Binance spot and USD-M).
"""

import json

# name -> {param: (type, default)}; "conn" (connection id) and "symbol" are optional everywhere
# they make sense; after_s / every_s are scheduling options accepted by every fault.
FAULT_PARAMS = {
    "drop_diff": {"symbol": (str, None), "count": (int, 1)},
    "duplicate_diff": {"symbol": (str, None), "count": (int, 1)},
    "reorder_diffs": {"symbol": (str, None)},
    "stale_snapshot": {"symbol": (str, None), "count": (int, 1)},
    "rest_status": {"symbol": (str, None), "count": (int, 1), "code": (int, 429),
                    "retry_after_s": (int, 1)},
    "rest_slow": {"symbol": (str, None), "count": (int, 1), "delay_s": (float, 2.0)},
    "rest_truncated": {"symbol": (str, None), "count": (int, 1)},
    "close_abrupt": {"conn": (int, None), "rst": (bool, False)},
    "close_frame": {"conn": (int, None), "code": (int, 1000), "reason": (str, "")},
    "half_open": {"conn": (int, None), "duration_s": (float, 300.0)},
    "stop_pings": {"conn": (int, None)},
    "ignore_pongs": {"conn": (int, None)},
    "malformed_json": {"conn": (int, None), "symbol": (str, None)},
    "invalid_utf8": {"conn": (int, None)},
    "oversized_frame": {"conn": (int, None), "bytes": (int, 20 * 1024 * 1024)},
    "fragment": {"conn": (int, None), "parts": (int, 3), "count": (int, 1)},
    "unknown_event": {"conn": (int, None), "symbol": (str, None)},
    "server_shutdown": {"conn": (int, None), "after_s": (float, 1.0)},
    "lifetime": {"conn": (int, None), "seconds": (float, 86400.0)},
    "absurd_numbers": {"conn": (int, None), "symbol": (str, None)},
    # the instruments endpoint (tools/sim/instruments.py): an HTTP error, or a body not JSON
    "instruments_status": {"count": (int, 1), "code": (int, 500)},
    "instruments_malformed": {"count": (int, 1)},
    # venue-specific (refused by the other dialects):
    "bybit_restart": {"symbol": (str, None)},           # Bybit: u restarts at 1 (a snapshot)
    "okx_seq_reset": {"symbol": (str, None), "to": (int, 1000)},  # OKX: seqId goes down
    "bitget_seq_reset": {"symbol": (str, None), "to": (int, 1000)},  # Bitget: seq restarts, pseq 0
    "bad_checksum": {"symbol": (str, None), "count": (int, 1)},   # OKX, Kraken: a wrong CRC32
}
# Faults only some dialects can perform (the dialect implements ``fault_<name>``).
VENUE_FAULTS = ("bybit_restart", "okx_seq_reset", "bitget_seq_reset", "bad_checksum")
# server_shutdown's own "after_s" is its close delay; its scheduling delay is "at_s".
_SCHEDULE_KEYS = ("at_s", "every_s")
REST_STATUS_CODES = (418, 429, 500, 502, 503, 504)


class FaultSpecError(ValueError):
    """A fault spec that names no known fault or has a bad parameter."""


def _coerce(value, typ, key):
    if typ is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes"):
            return True
        if str(value).lower() in ("0", "false", "no"):
            return False
        raise FaultSpecError("%s must be a boolean, got %r" % (key, value))
    if typ is str:
        return str(value)
    try:
        if isinstance(value, bool):
            raise ValueError("bool")
        return typ(value)
    except (TypeError, ValueError):
        raise FaultSpecError("%s must be %s, got %r" % (key, typ.__name__, value)) from None


def normalize(spec):
    """Validate a fault dict; return a new dict with every parameter present (defaults filled)."""
    if not isinstance(spec, dict):
        raise FaultSpecError("a fault must be a JSON object")
    name = spec.get("fault")
    params = FAULT_PARAMS.get(name)
    if params is None:
        raise FaultSpecError("unknown fault %r (known: %s)" % (name, ", ".join(sorted(FAULT_PARAMS))))
    out = {"fault": name}
    if name != "server_shutdown" and "after_s" in spec and "at_s" not in spec:
        spec = dict(spec)
        spec["at_s"] = spec.pop("after_s")  # "after_s" schedules every fault but server_shutdown
    for key, value in spec.items():
        if key == "fault":
            continue
        if key in params:
            typ = params[key][0]
            out[key] = None if value is None else _coerce(value, typ, key)
        elif key in _SCHEDULE_KEYS:
            out[key] = _coerce(value, float, key)
        else:
            raise FaultSpecError("fault %s has no parameter %r (has: %s)"
                                 % (name, key, ", ".join(sorted(params))))
    for key, (_typ, default) in params.items():
        out.setdefault(key, default)
    if out.get("count") is not None and out["count"] < 1:
        raise FaultSpecError("count must be >= 1")
    if name == "instruments_status" and not 400 <= out["code"] <= 599:
        raise FaultSpecError("instruments_status code must be 400..599")
    if name == "rest_status" and out["code"] not in REST_STATUS_CODES:
        raise FaultSpecError("rest_status code must be one of %s" % (REST_STATUS_CODES,))
    if name == "fragment" and out["parts"] < 2:
        raise FaultSpecError("fragment parts must be >= 2")
    if name in ("okx_seq_reset", "bitget_seq_reset") and out["to"] < 1:
        raise FaultSpecError("%s 'to' must be >= 1" % name)
    if out.get("symbol") is not None:
        out["symbol"] = out["symbol"].upper()
    return out


def parse_spec(text):
    """Parse a ``--fault`` argument (``name``, ``name:k=v,k=v`` or a JSON object) and normalize it."""
    text = text.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise FaultSpecError("fault spec is not valid JSON: %s" % exc) from None
        return normalize(spec)
    name, _, rest = text.partition(":")
    spec = {"fault": name.strip()}
    if rest.strip():
        for item in rest.split(","):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise FaultSpecError("bad fault parameter %r (want key=value)" % item)
            spec[key.strip()] = value.strip()
    return normalize(spec)


# Actions the server takes for one depth event.
DELIVER = 0
DROP = 1
DUPLICATE = 2
HOLD = 3      # reorder: keep this one back, send it after the next one of the same symbol


class StreamFaults(object):
    """Armed depth-stream and REST faults, as counters per symbol (None = any symbol)."""

    def __init__(self):
        self.depth_armed = False   # hot path: one attribute test per event when nothing is armed
        self._depth = []           # [action, symbol or None, remaining count]
        self._rest = []            # [fault dict, remaining count]
        self._instruments = []     # [fault dict, remaining count]: the instruments endpoint

    def arm_depth(self, action, symbol, count):
        self._depth.append([action, symbol, count])
        self.depth_armed = True

    def depth_action(self, symbol):
        """The action for the next depth event of ``symbol`` (consumes one count)."""
        for i, item in enumerate(self._depth):
            if item[1] is None or item[1] == symbol:
                item[2] -= 1
                if item[2] <= 0:
                    self._depth.pop(i)
                    self.depth_armed = bool(self._depth)
                return item[0]
        return DELIVER

    def arm_rest(self, spec):
        self._rest.append([spec, spec.get("count") or 1])

    def take_rest(self, symbol):
        """The REST fault for the next snapshot request of ``symbol`` (consumes one), or None."""
        for i, item in enumerate(self._rest):
            spec = item[0]
            if spec.get("symbol") is None or spec["symbol"] == symbol:
                item[1] -= 1
                if item[1] <= 0:
                    self._rest.pop(i)
                return spec
        return None

    def arm_instruments(self, spec):
        self._instruments.append([spec, spec.get("count") or 1])

    def take_instruments(self):
        """The fault for the next instruments request (consumes one), or None."""
        if not self._instruments:
            return None
        item = self._instruments[0]
        item[1] -= 1
        if item[1] <= 0:
            self._instruments.pop(0)
        return item[0]

    def pending(self):
        """What is still armed (for /_sim/status)."""
        names = {DROP: "drop_diff", DUPLICATE: "duplicate_diff", HOLD: "reorder_diffs"}
        out = [{"fault": names[a], "symbol": s, "remaining": c} for a, s, c in self._depth]
        out.extend({"fault": spec["fault"], "symbol": spec.get("symbol"), "remaining": c}
                   for spec, c in self._rest + self._instruments)
        return out
