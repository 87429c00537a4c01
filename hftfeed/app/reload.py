"""SIGHUP reload: compare the whole old and new config, decide what can change live.

Why a whole-config diff: a reload that applies some keys and silently ignores the rest leaves
an operator believing a change is in effect when it is not. Every key of every section is
compared; each changed key is either in :data:`LIVE_KEYS` / :data:`LIVE_FEED_KEYS` (applied by
the daemon now) or named in one "needs a restart" warning. The running config afterwards is the
new one with every restart-only key kept at its running value, so the next reload warns again
about a change still not in effect.

A new config that is invalid, or would renumber an instrument that keeps running, is refused as
a whole (:class:`~hftfeed.errors.ConfigError`) and nothing is applied. docs/operations.md lists
the classes; tests/test_reload.py exercises one key of each through a daemon subprocess.
"""

import copy
import gc

from hftfeed.app.config import Section
from hftfeed.errors import ConfigError
from hftfeed.pipeline.feed import feed_identity
from hftfeed.venues import registry

# what "gc.thresholds": null means on a reload: the interpreter's own (read before any tuning)
DEFAULT_GC_THRESHOLDS = gc.get_threshold() if hasattr(gc, "get_threshold") else None
# top-level and section keys the daemon applies without a restart
LIVE_KEYS = frozenset((
    "log_level", "log_format", "stats_interval_s", "watchdog", "metrics.listen",
    "gc.thresholds", "gc.disable_automatic", "gc.collect_interval_s",
    "jit.threshold", "jit.function_threshold", "jit.trace_eagerness",
    "publisher.heartbeat_interval_s", "publisher.instrument_interval_s",
))
# per-feed limits: written into the running feed's config, read at their next use (the next
# connection for the connection limits, the next snapshot, backoff or rollover for the others)
LIVE_FEED_KEYS = frozenset((
    "snapshot_limit", "max_out_msgs_per_s", "silence_timeout_s", "data_silence_timeout_s",
    "connect_timeout_s",
    "snapshot_timeout_s", "reconnect_backoff_initial_s", "reconnect_backoff_max_s",
    "connection_lifetime_s", "overlap_s", "rest_weight_per_min", "max_message_bytes",
    "max_buffered_updates",
))
# what makes a feed entry "the same feed" (a change there replaces the feed: applied live)
IDENTITY_KEYS = frozenset(("venue", "ws_url", "rest_url", "channels", "depth_speed"))


def changed_keys(old, new, prefix=""):
    """Dotted names of the keys whose values differ between two sections of the same type
    (``feeds`` and a feed's ``symbols`` are compared by :func:`plan` instead)."""
    out = []
    for key in type(old).KEYS:
        if key.name in ("feeds", "symbols"):
            continue
        a, b = getattr(old, key.attr), getattr(new, key.attr)
        name = prefix + key.name
        if isinstance(a, Section) and type(a) is type(b):
            out.extend(changed_keys(a, b, name + "."))
        elif a != b:
            out.append(name)
    return out


class Plan(object):
    """What a reload does: feeds to change/add/drop, live keys, restart keys, and the config
    the daemon runs on afterwards (``effective``)."""

    def __init__(self):
        self.changed = []        # (running Feed, new FeedConfig)
        self.new = []            # FeedConfig
        self.gone = []           # running Feed
        self.live = []           # dotted keys applied now
        self.feed_limits = []    # (running Feed, new FeedConfig, [key names])
        self.restart = []        # dotted keys that need a restart
        self.effective = None


def plan(old, new, feeds):
    """Decide what a reload changes; raises ConfigError if it would renumber a running
    instrument or give a new one an id that is still taken."""
    p = Plan()
    running = {}
    for feed in feeds:
        for inst in feed.instruments.values():
            running[(feed.identity(), inst.symbol)] = inst.instrument_id
    by_identity = {feed.identity(): feed for feed in feeds}
    wanted_ids = {}
    for index, feed_cfg in enumerate(new.feeds):
        ident = feed_identity(feed_cfg)
        venue = registry.adapter(feed_cfg.venue)
        for inst in feed_cfg.instruments:
            wanted_ids[(ident, venue.venue_symbol(inst.symbol))] = inst.instrument_id
        feed = by_identity.pop(ident, None)
        if feed is None:
            p.new.append(feed_cfg)
            continue
        p.changed.append((feed, feed_cfg))
        diff = [k for k in changed_keys(feed.cfg, feed_cfg) if k not in IDENTITY_KEYS]
        live = [k for k in diff if k in LIVE_FEED_KEYS]
        if live:
            p.feed_limits.append((feed, feed_cfg, live))
            p.live.extend("feeds[%d].%s" % (index, k) for k in live)
        p.restart.extend("feeds[%d].%s" % (index, k) for k in diff if k not in LIVE_FEED_KEYS)
    p.gone = list(by_identity.values())
    for key, inst_id in wanted_ids.items():
        if key in running and running[key] != inst_id:
            raise ConfigError("instrument id of %s would change from %d to %d; restart to renumber"
                              % (key[1], running[key], inst_id))
    kept_ids = {v: k for k, v in running.items() if k in wanted_ids}
    for key, inst_id in wanted_ids.items():
        if key not in running and inst_id in kept_ids:
            raise ConfigError("new instrument %s would take id %d, still used by %s"
                              % (key[1], inst_id, kept_ids[inst_id][1]))
    for name in changed_keys(old, new):
        (p.live if name in LIVE_KEYS else p.restart).append(name)
    p.effective = effective_config(old, new, [n for n in p.restart if not n.startswith("feeds[")])
    return p


def effective_config(old, new, restart_keys):
    """``new`` with each restart-only key put back to its running value (sections copied)."""
    eff = copy.copy(new)
    for name in restart_keys:
        parts = name.split(".")
        if len(parts) == 1:
            setattr(eff, parts[0], getattr(old, parts[0]))
            continue
        section = copy.copy(getattr(eff, parts[0]))
        setattr(section, parts[1], getattr(getattr(old, parts[0]), parts[1]))
        setattr(eff, parts[0], section)
    return eff


def apply_feed_limits(feed, feed_cfg, keys):
    """Write the changed limits into the running feed's config (read there at their next use)
    and into the objects that copied one at start: the REST budget, the HTTP client's timeout,
    each instrument's update buffer bound."""
    for key in keys:
        setattr(feed.cfg, key, getattr(feed_cfg, key))
    if "rest_weight_per_min" in keys:
        budget = feed.budget
        budget.capacity = float(feed_cfg.rest_weight_per_min)
        budget.rate_per_s = feed_cfg.rest_weight_per_min / 60.0
        budget.tokens = min(budget.tokens, budget.capacity)
    if "snapshot_timeout_s" in keys and feed.http is not None:
        feed.http.timeout_s = feed_cfg.snapshot_timeout_s
    if "max_buffered_updates" in keys:
        for inst in feed.instruments.values():
            inst.sync.max_buffered = feed_cfg.max_buffered_updates
