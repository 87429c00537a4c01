"""Settings of one simulator run, with the venue's real values as defaults.

Every venue limit the simulator enforces is a field here so tests can shrink it (a 0.2 s ping
interval instead of 20 s, a weight budget of 50 instead of 6000) and still exercise the same code.
Fields left at ``None`` take the venue's own value from :data:`VENUE_DEFAULTS` on ``validate()``
(Binance spot pings every 20 s, USD-M futures every 3 minutes, Bybit and OKX not at all ...).
"""

from hftfeed.errors import ConfigError
from hftfeed.venues import registry     # pure data: imports no adapter and nothing of the core

_DEFAULTS = (
    ("host", "127.0.0.1"),          # "localhost" listens on 127.0.0.1 and ::1 with the same port
    ("port", 0),                    # 0 = ephemeral
    ("venue", "binance"),           # a name of hftfeed/venues/registry.py
    ("symbols", ("BTCUSDT", "ETHUSDT")),
    ("rate", None),                 # depth messages/s across all symbols; None = 100 per symbol
    ("shape", "steady"),            # "steady" (round robin at rate) or "burst" (sources.BurstSource)
    ("boundaries_per_s", 10.0),     # burst: depth boundaries a second (Binance @depth@100ms: 10)
    ("depth_levels", None),         # book levels per side (venue default)
    ("seed", 1),
    ("max_steps_per_msg", 3),       # engine steps aggregated into one depth message: 1..this
    ("tick_s", 0.001),              # producer tick
    ("record", None),               # journal path
    ("replay", None),               # journal to re-serve
    ("replay_speed", 1.0),
    ("replay_capture", None),       # real capture (.ws) to re-serve
    ("replay_snapshots", None),     # its .http snapshots
    ("faults", ()),                 # normalized fault dicts applied at start / scheduled
    ("ping_interval_s", None),      # WebSocket ping frames (Binance); None for Bybit/OKX = none
    ("pong_timeout_s", None),       # ... and a disconnect without a pong within this
    ("max_incoming_per_s", None),   # incoming messages per second before a 1008 close
    ("max_streams", 1024),
    ("lifetime_s", None),           # a connection is closed after this (Binance: 24 hours)
    ("shutdown_notice_s", 600.0),   # serverShutdown this long before the lifetime ends (capped)
    ("weight_limit", None),         # REST request weight per window
    ("weight_window_s", 60.0),
    ("ban_after_429", 2),           # further 429s after the first before the next request gets 418
    ("ban_s", 120.0),
    ("duration_s", None),           # stop by itself after this long
    ("max_send_buffer_bytes", 64 * 1024 * 1024),  # slow consumer: disconnect above this backlog
    ("idle_timeout_s", None),       # Bybit: client silent this long; OKX: nothing pushed this long
    ("book_keepalive_s", None),     # OKX: empty books update after this long without a change
    ("quote_resend_s", None),       # Bybit orderbook.1: snapshot repeated after this long unchanged
    ("checksum", None),             # OKX books checksum: "real" (CRC32) or "zero" (since 2026-06)
    ("test_request_s", None),       # Deribit: test_request this often instead of the client's
                                    # set_heartbeat interval (tests; the venue's minimum is 10 s)
)

_NO_LIMIT_S = 10 * 365 * 86400.0    # "never" for lifetimes a venue does not have

# How each dialect behaves by default: the venue's own values for the fields left at None.
# Sources: binance.py, binance_usdm.py, bybit.py and okx.py docstrings (each venue's "connect"
# documentation). Which venues exist is the registry's business; tests/test_venue_registry.py
# fails when a registered venue has no row here.
VENUE_DEFAULTS = {
    "binance": {"depth_levels": 200, "ping_interval_s": 20.0, "pong_timeout_s": 60.0,
                "max_incoming_per_s": 5, "lifetime_s": 86400.0, "weight_limit": 6000},
    "binance-usdm": {"depth_levels": 200, "ping_interval_s": 180.0, "pong_timeout_s": 600.0,
                     "max_incoming_per_s": 10, "lifetime_s": 86400.0, "weight_limit": 2400},
    "binance-coinm": {"depth_levels": 200, "ping_interval_s": 180.0, "pong_timeout_s": 600.0,
                      "max_incoming_per_s": 10, "lifetime_s": 86400.0, "weight_limit": 2400},
    "bybit": {"depth_levels": 50, "max_incoming_per_s": 100, "lifetime_s": _NO_LIMIT_S,
              "weight_limit": 6000, "idle_timeout_s": 600.0, "quote_resend_s": 3.0},
    "bybit-spot": {"depth_levels": 50, "max_incoming_per_s": 100, "lifetime_s": _NO_LIMIT_S,
                   "weight_limit": 6000, "idle_timeout_s": 600.0, "quote_resend_s": 3.0},
    "bybit-inverse": {"depth_levels": 50, "max_incoming_per_s": 100, "lifetime_s": _NO_LIMIT_S,
                      "weight_limit": 6000, "idle_timeout_s": 600.0, "quote_resend_s": 3.0},
    "deribit": {"depth_levels": 200, "max_incoming_per_s": 20, "lifetime_s": _NO_LIMIT_S,
                "weight_limit": 6000},
    "bitget": {"depth_levels": 200, "max_incoming_per_s": 10, "lifetime_s": _NO_LIMIT_S,
               "weight_limit": 6000, "idle_timeout_s": 120.0, "checksum": "real"},
    "bitget-futures": {"depth_levels": 200, "max_incoming_per_s": 10, "lifetime_s": _NO_LIMIT_S,
                       "weight_limit": 6000, "idle_timeout_s": 120.0, "checksum": "real"},
    "okx": {"depth_levels": 200, "max_incoming_per_s": 3, "lifetime_s": _NO_LIMIT_S,
            "weight_limit": 6000, "idle_timeout_s": 30.0, "book_keepalive_s": 20.0,
            "checksum": "real"},
    "coinbase": {"depth_levels": 100, "max_incoming_per_s": 8, "lifetime_s": _NO_LIMIT_S,
                 "weight_limit": 6000},
    "kraken": {"depth_levels": 100, "max_incoming_per_s": 8, "lifetime_s": _NO_LIMIT_S,
               "weight_limit": 6000},
}
# Largest book each dialect can serve exactly (its stream is the whole simulated book).
MAX_DEPTH_LEVELS = {"binance": 1000000, "binance-usdm": 1000, "binance-coinm": 1000, "bybit": 50,
                    "bybit-spot": 50, "bybit-inverse": 50, "okx": 400, "deribit": 1000,
                    "bitget": 1000, "bitget-futures": 1000, "coinbase": 1000, "kraken": 1000}


class SimConfig(object):
    """Plain settings object; unknown keyword -> TypeError, bad values -> ConfigError on validate()."""

    __slots__ = tuple(k for k, _ in _DEFAULTS)

    def __init__(self, **kwargs):
        for key, default in _DEFAULTS:
            setattr(self, key, kwargs.pop(key, default))
        if kwargs:
            raise TypeError("unknown simulator setting(s): %s" % ", ".join(sorted(kwargs)))
        self.symbols = [s.strip().upper() for s in self.symbols if s.strip()]
        self.faults = list(self.faults)

    def replace(self, **kwargs):
        values = {k: getattr(self, k) for k, _ in _DEFAULTS}
        values.update(kwargs)
        return SimConfig(**values)

    def as_dict(self):
        return {k: getattr(self, k) for k, _ in _DEFAULTS}

    def validate(self):
        """Raise ConfigError for settings that cannot work; returns self."""
        defaults = VENUE_DEFAULTS.get(self.venue) if self.venue in registry.BY_NAME else None
        if defaults is None:
            raise ConfigError("unsupported venue %r (supported: %s)"
                              % (self.venue, ", ".join(registry.NAMES)))
        for key, value in defaults.items():
            if getattr(self, key) is None:
                setattr(self, key, value)
        if self.replay and self.replay_capture:
            raise ConfigError("--replay and --replay-capture are exclusive")
        if self.replay_capture and self.venue != "binance":
            raise ConfigError("--replay-capture re-serves Binance spot captures only")
        if not (self.replay or self.replay_capture):
            # (a replay serves the journal's or capture's own symbols: the default list, in
            # Binance's spelling, must not be checked against another venue's syntax)
            if not self.symbols:
                raise ConfigError("no symbols")
            for s in self.symbols:
                problem = registry.symbol_error(self.venue, s)
                if problem is not None:
                    raise ConfigError("bad symbol: %s" % problem)
        if not 0 <= int(self.port) <= 65535:
            raise ConfigError("port out of range: %r" % (self.port,))
        positive = ("depth_levels", "max_steps_per_msg", "tick_s", "max_incoming_per_s",
                    "max_streams", "lifetime_s", "weight_limit", "weight_window_s", "ban_s",
                    "replay_speed", "max_send_buffer_bytes")
        for key in positive:
            if getattr(self, key) is None or getattr(self, key) <= 0:
                raise ConfigError("%s must be > 0, got %r" % (key, getattr(self, key)))
        optional_positive = ("ping_interval_s", "pong_timeout_s", "idle_timeout_s",
                             "book_keepalive_s", "quote_resend_s", "test_request_s")
        for key in optional_positive:
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise ConfigError("%s must be > 0, got %r" % (key, getattr(self, key)))
        if (self.ping_interval_s is None) != (self.pong_timeout_s is None):
            raise ConfigError("ping_interval_s and pong_timeout_s go together")
        if self.depth_levels < 4:
            raise ConfigError("depth_levels must be >= 4")
        if self.depth_levels > MAX_DEPTH_LEVELS[self.venue]:
            raise ConfigError("depth_levels %d: the %s dialect serves its book streams from the "
                              "whole simulated book, at most %d levels a side"
                              % (self.depth_levels, self.venue, MAX_DEPTH_LEVELS[self.venue]))
        if self.checksum not in (None, "real", "zero"):
            raise ConfigError("checksum must be 'real' or 'zero', got %r" % (self.checksum,))
        if self.rate is not None and self.rate <= 0:
            raise ConfigError("rate must be > 0")
        if self.shape not in ("steady", "burst"):
            raise ConfigError("shape must be 'steady' or 'burst', got %r" % (self.shape,))
        if self.shape == "burst":
            if self.rate is not None:
                raise ConfigError("--rate does not apply to --shape burst: its depth rate is "
                                  "symbols x --boundaries-per-s")
            if self.replay or self.replay_capture:
                raise ConfigError("--shape burst is for synthetic traffic, not replays")
        if not 0 < self.boundaries_per_s <= 1000:
            raise ConfigError("boundaries_per_s must be in (0, 1000], got %r"
                              % (self.boundaries_per_s,))
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError("duration_s must be > 0")
        if self.ban_after_429 < 0:
            raise ConfigError("ban_after_429 must be >= 0")
        return self
