"""Settings of one simulator run, with the venue's real values as defaults.

Every Binance limit the simulator enforces is a field here so tests can shrink it (a 0.2 s ping
interval instead of 20 s, a weight budget of 50 instead of 6000) and still exercise the same code.
"""

from hftfeed.errors import ConfigError

_DEFAULTS = (
    ("host", "127.0.0.1"),          # "localhost" listens on 127.0.0.1 and ::1 with the same port
    ("port", 0),                    # 0 = ephemeral
    ("venue", "binance"),
    ("symbols", ("BTCUSDT", "ETHUSDT")),
    ("rate", None),                 # depth messages/s across all symbols; None = 100 per symbol
    ("depth_levels", 200),
    ("seed", 1),
    ("max_steps_per_msg", 3),       # engine steps aggregated into one depth message: 1..this
    ("tick_s", 0.001),              # producer tick
    ("record", None),               # journal path
    ("replay", None),               # journal to re-serve
    ("replay_speed", 1.0),
    ("replay_capture", None),       # real capture (.ws) to re-serve
    ("replay_snapshots", None),     # its .http snapshots
    ("faults", ()),                 # normalized fault dicts applied at start / scheduled
    ("ping_interval_s", 20.0),      # Binance spot: a ping frame every 20 s
    ("pong_timeout_s", 60.0),       # ... and a disconnect without a pong within a minute
    ("max_incoming_per_s", 5),      # incoming messages per second (pings and pongs count)
    ("max_streams", 1024),
    ("lifetime_s", 86400.0),        # a connection is valid for 24 hours
    ("shutdown_notice_s", 600.0),   # serverShutdown this long before the lifetime ends (capped)
    ("weight_limit", 6000),         # REST request weight per window
    ("weight_window_s", 60.0),
    ("ban_after_429", 2),           # further 429s after the first before the next request gets 418
    ("ban_s", 120.0),
    ("duration_s", None),           # stop by itself after this long
    ("max_send_buffer_bytes", 64 * 1024 * 1024),  # slow consumer: disconnect above this backlog
)


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
        if self.venue != "binance":
            raise ConfigError("unsupported venue %r (supported: binance)" % (self.venue,))
        if self.replay and self.replay_capture:
            raise ConfigError("--replay and --replay-capture are exclusive")
        if not (self.replay or self.replay_capture) and not self.symbols:
            raise ConfigError("no symbols")
        for s in self.symbols:
            if not (s.isalnum() and s.isascii()):
                raise ConfigError("bad symbol %r" % (s,))
        if not 0 <= int(self.port) <= 65535:
            raise ConfigError("port out of range: %r" % (self.port,))
        positive = ("depth_levels", "max_steps_per_msg", "tick_s", "ping_interval_s",
                    "pong_timeout_s", "max_incoming_per_s", "max_streams", "lifetime_s",
                    "weight_limit", "weight_window_s", "ban_s", "replay_speed",
                    "max_send_buffer_bytes")
        for key in positive:
            if getattr(self, key) is None or getattr(self, key) <= 0:
                raise ConfigError("%s must be > 0, got %r" % (key, getattr(self, key)))
        if self.depth_levels < 4:
            raise ConfigError("depth_levels must be >= 4")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError("rate must be > 0")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ConfigError("duration_s must be > 0")
        if self.ban_after_429 < 0:
            raise ConfigError("ban_after_429 must be >= 0")
        return self
