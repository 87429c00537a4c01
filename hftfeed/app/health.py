"""``hftfeed.py health``: one verdict for scripts, load balancers and alerting.

Exit 0 when every configured instrument is live and fresh (its book, trades or quote changed
within ``--max-age-s``), 1 otherwise with one line per reason, 2 for bad usage. It reads the
daemon's metrics endpoint (app/metrics.py), so it judges the running process, not the config
file alone: a daemon that is down, wedged or serving another config is unhealthy.

:class:`Freshness` is the daemon side: sampled on the housekeeping tick (every 0.1 s), it notes
when each instrument's state last moved, so the hot path needs no timestamp of its own.
"""

import http.client
import logging
import time

from hftfeed.app.cli import OneLineParser
from hftfeed.app.config import load_config
from hftfeed.app.metrics import parse_exposition
from hftfeed.errors import ConfigError

log = logging.getLogger("hftfeed.health")

MAX_RESPONSE_BYTES = 16 * 2 ** 20
DEFAULT_MAX_AGE_S = 10.0


class Freshness(object):
    """When each instrument last changed, from a cheap signature sampled off the hot path:
    the book's update id, the last quote id and the newest trade id."""

    def __init__(self, start_mono_ns=None):
        self.start_mono_ns = time.monotonic_ns() if start_mono_ns is None else start_mono_ns
        self._seen = {}     # (venue_id, instrument_id) -> (signature, last change ns)

    def sample(self, feeds, now_mono_ns):
        seen = self._seen
        current = {}
        for feed in feeds:
            for inst in feed.instruments.values():
                key = (inst.venue_id, inst.instrument_id)
                order = inst.recent_trade_order
                sig = (inst.book.update_id, inst.last_quote_id, order[-1] if order else None)
                prev = seen.get(key)
                if prev is None:
                    changed_ns = now_mono_ns if sig != (0, -1, None) else None
                elif prev[0] != sig:
                    changed_ns = now_mono_ns
                else:
                    changed_ns = prev[1]
                current[key] = (sig, changed_ns)
        self._seen = current

    def age_s(self, inst, now_mono_ns):
        """Seconds since ``inst`` last changed (since start when it never has)."""
        entry = self._seen.get((inst.venue_id, inst.instrument_id))
        changed_ns = entry[1] if entry is not None and entry[1] is not None \
            else self.start_mono_ns
        return max(0.0, (now_mono_ns - changed_ns) / 1e9)


def live_counts(feeds):
    """(live, total) instruments: the ``live n/m`` of the stats line and sd_notify STATUS."""
    total = live = 0
    for feed in feeds:
        for inst in feed.instruments.values():
            total += 1
            if inst.state == 1:
                live += 1
    return live, total


def verdict(metrics, expected_ids=None, max_age_s=DEFAULT_MAX_AGE_S):
    """Parsed metrics -> (healthy, lines). ``expected_ids``: instrument ids the config lists
    (None: whatever the daemon serves)."""
    states = {}
    ages = {}
    for labels, value in metrics.get("hftfeed_instrument_state", ()):
        states[labels.get("instrument_id")] = (labels, int(value))
    for labels, value in metrics.get("hftfeed_instrument_last_update_age_seconds", ()):
        ages[labels.get("instrument_id")] = value
    reasons = []
    names = {1: "live", 2: "resyncing", 3: "disconnected", 0: "not started"}
    for inst_id, (labels, state) in sorted(states.items(), key=lambda kv: int(kv[0] or 0)):
        what = "%s %s (id %s)" % (labels.get("venue"), labels.get("symbol"), inst_id)
        if state != 1:
            reasons.append("%s is %s" % (what, names.get(state, "in state %d" % state)))
        elif ages.get(inst_id, 0.0) > max_age_s:
            reasons.append("%s has not changed for %.1f s (max %.1f s)"
                           % (what, ages[inst_id], max_age_s))
    if expected_ids is not None:
        served = set(int(i) for i in states if i is not None)
        for inst_id in sorted(set(expected_ids) - served):
            reasons.append("instrument id %d is configured but the daemon does not serve it "
                           "(reload or restart it)" % inst_id)
    if not states and not reasons:
        reasons.append("the daemon serves no instruments")
    live = sum(1 for _, state in states.values() if state == 1)
    if reasons:
        return False, ["unhealthy: %d/%d instruments live; %d problem(s):"
                       % (live, len(states), len(reasons))] + ["  " + r for r in reasons]
    oldest = max(ages.values()) if ages else 0.0
    return True, ["healthy: %d/%d instruments live, oldest update %.1f s ago"
                  % (live, len(states), oldest)]


def fetch(host, port, timeout_s):
    """GET /metrics -> text. Raises OSError/HTTPException with the reason."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read(MAX_RESPONSE_BYTES)
        if resp.status != 200:
            raise http.client.HTTPException("HTTP %d" % resp.status)
        return body.decode("utf-8")
    finally:
        conn.close()


def build_parser():
    parser = OneLineParser(prog="hftfeed.py health",
                           description="Exit 0 if every configured instrument is live and fresh, "
                                       "1 (with reasons) otherwise. Reads the daemon's metrics "
                                       "endpoint (config key metrics.listen).")
    parser.add_argument("--config", metavar="FILE", help="the daemon's config (for the metrics "
                        "address and the instruments it must serve)")
    parser.add_argument("--url", metavar="HOST:PORT", help="metrics address, if not from --config")
    parser.add_argument("--max-age-s", type=float, default=DEFAULT_MAX_AGE_S,
                        help="an instrument unchanged for longer is stale (default %(default)s)")
    parser.add_argument("--timeout-s", type=float, default=2.0,
                        help="deadline for the metrics request (default %(default)s)")
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    if not args.max_age_s > 0 or not args.timeout_s > 0:
        raise ConfigError("--max-age-s and --timeout-s must be > 0")
    expected = None
    address = None
    if args.config:
        cfg = load_config(args.config)
        expected = [inst.instrument_id for inst in cfg.instruments]
        address = cfg.metrics.listen
    if args.url:
        from hftfeed.app.config import parse_host_port
        address = parse_host_port(args.url, "--url")
    if address is None:
        raise ConfigError("no metrics address: set metrics.listen in the config or pass --url")
    host, port = address
    try:
        text = fetch(host, port, args.timeout_s)
        metrics = parse_exposition(text)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        print("unhealthy: cannot read metrics at %s:%d: %s" % (host, port, exc))
        return 1
    healthy, lines = verdict(metrics, expected, args.max_age_s)
    print("\n".join(lines))
    return 0 if healthy else 1
