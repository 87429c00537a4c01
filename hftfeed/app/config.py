"""Load and validate the JSON configuration (the contract other tools generate against).

Every key is parsed, validated and defaulted here, once, into typed sections: ``cfg.publisher``,
``cfg.book``, ``cfg.cpu_affinity``, ``cfg.scheduler``, ``cfg.socket_buffers``, ``cfg.gc`` and one
:class:`FeedConfig` per entry of ``cfg.feeds``. Mistakes raise :class:`ConfigError` with the
key's path ("feeds[0].symbols[2]: ..."), which the CLI prints as one line before exiting with
code 2. The rest of the program (daemon, hw, gctune, doctor, pipeline) reads these attributes
and never re-parses or re-defaults them. docs/config.md documents every key and its default.

Adding a key is a one-place change: one ``Key(...)`` line in its section's ``KEYS`` below (name,
reader, default), plus its row in docs/config.md (``tests/test_config.py`` fails while a key has
no row). Checks that involve two keys go in the section's ``_check``; a new section is a
:class:`Section` subclass and one ``Key`` in :class:`Config` that reads it.
"""

import ipaddress
from array import array
import json
import os
from urllib.parse import urlsplit

from hftfeed.codecs import wire
from hftfeed.core.book import storage_slots
from hftfeed.errors import ConfigError
from hftfeed.venues import registry

MAX_INSTRUMENT_ID = 65535          # u16 on the wire (PROTOCOL.md message header)
MAX_CHANNEL = 65535                # u16 on the wire (PROTOCOL.md packet header)
MAX_DEPTH = 255                    # bid_n / ask_n are u8 on the wire
MIN_PAYLOAD = wire.book_packet_bytes(1)   # a packet header plus a one-level book must fit
MAX_PAYLOAD = 65507                # largest UDP payload over IPv4
MAX_CONFIG_BYTES = 16 * 2 ** 20    # a config is a few KB; refuse to parse anything absurd
MAX_JSON_NESTING = 32              # the schema nests 4 deep; deeper is a broken or hostile file
CHANNELS = ("depth", "trade", "bookTicker")
LOG_LEVELS = ("error", "warn", "warning", "info", "debug")
# Books that would pre-allocate more than this in total are refused: no machine this daemon is
# meant for has the memory, and the OOM killer (or a failed mlockall) would end the daemon long
# before it published anything. Below it, `run --check` prints the estimate and warns when it
# exceeds half of this machine's physical memory (docs/config.md#book).
MAX_BOOK_MEMORY_BYTES = 64 * 2 ** 30


# ---------------------------------------------------------------------------------------------
# readers: each takes (obj, key, path, ctx) and returns the validated value; "ctx" is what a
# default or a bound may depend on (the venue's adapter class for a feed's keys)

def _type_name(value):
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "an object", type(None): "null"}.get(type(value), type(value).__name__)


def _check_keys(obj, allowed, path):
    if not isinstance(obj, dict):
        raise ConfigError("%s: expected an object, got %s" % (path, _type_name(obj)))
    for key in obj:
        if key not in allowed:
            raise ConfigError("%s: unknown key %r (allowed: %s)"
                              % (path, key, ", ".join(sorted(allowed))))


def _resolve(value, ctx):
    """A default or bound is a value, or a function of the context (e.g. a venue's own limit)."""
    return value(ctx) if callable(value) else value


def _get_bool(obj, key, default, path):
    value = obj.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError("%s.%s: expected true or false, got %s" % (path, key, _type_name(value)))
    return value


def _get_int(obj, key, default, path, lo=None, hi=None):
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError("%s.%s: expected an integer, got %s" % (path, key, _type_name(value)))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError("%s.%s: %d is out of range [%s, %s]" % (path, key, value, lo, hi))
    return value


def _get_number(obj, key, default, path, lo=None, hi=None):
    value = obj.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError("%s.%s: expected a number, got %s" % (path, key, _type_name(value)))
    if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ConfigError("%s.%s: %r is out of range [%s, %s]" % (path, key, value, lo, hi))
    return float(value)


def _get_str(obj, key, default, path, choices=None):
    value = obj.get(key, default)
    if not isinstance(value, str):
        raise ConfigError("%s.%s: expected a string, got %s" % (path, key, _type_name(value)))
    if choices is not None and value not in choices:
        raise ConfigError("%s.%s: %r is not one of %s" % (path, key, value, ", ".join(choices)))
    return value


def Bool(default):
    return lambda obj, key, path, ctx: _get_bool(obj, key, _resolve(default, ctx), path)


def Int(default, lo, hi):
    return lambda obj, key, path, ctx: _get_int(obj, key, _resolve(default, ctx), path,
                                                _resolve(lo, ctx), _resolve(hi, ctx))


def Number(default, lo, hi):
    return lambda obj, key, path, ctx: _get_number(obj, key, _resolve(default, ctx), path,
                                                   _resolve(lo, ctx), _resolve(hi, ctx))


def Choice(default, choices):
    return lambda obj, key, path, ctx: _get_str(obj, key, default, path, choices)


def OptionalStr(check=None):
    """null/absent -> None; otherwise a string, checked by ``check(value, path)`` if given."""
    def read(obj, key, path, ctx):
        if obj.get(key) is None:
            return None
        value = _get_str(obj, key, None, path)
        return check(value, "%s.%s" % (path, key)) if check is not None else value
    return read


def SubSection(cls):
    """A nested object parsed by its own Section class (absent = all its defaults)."""
    def read(obj, key, path, ctx):
        value = obj.get(key, {})
        if not isinstance(value, dict):
            raise ConfigError("%s.%s: expected an object, got %s" % (path, key, _type_name(value)))
        return cls.parse(value, key if path == "config" else "%s.%s" % (path, key), ctx)
    return read


class Key(object):
    """One config key: its JSON name, the attribute it becomes, and its reader."""

    __slots__ = ("name", "attr", "read")

    def __init__(self, name, read, attr=None):
        self.name = name
        self.read = read
        self.attr = attr or name


class Section(object):
    """Base of the typed sections: ``KEYS`` lists the keys, ``__slots__`` their attributes.

    ``parse`` rejects unknown keys, reads each key once, then runs ``_check`` (cross-key rules).
    Sections compare by value, so a reload can tell which ones changed."""

    __slots__ = ()
    KEYS = ()
    EXTRA = ()      # attributes derived in _check, not keys of their own

    @classmethod
    def key_names(cls):
        return tuple(k.name for k in cls.KEYS)

    @classmethod
    def parse(cls, raw, path, ctx=None):
        _check_keys(raw, set(cls.key_names()), path)
        self = cls.__new__(cls)
        for key in cls.KEYS:
            setattr(self, key.attr, key.read(raw, key.name, path, ctx))
        self._check(raw, path, ctx)
        return self

    @classmethod
    def defaults(cls):
        return cls.parse({}, cls.__name__)

    def _check(self, raw, path, ctx):
        """Rules that involve more than one key (override)."""

    def as_dict(self):
        return {name: getattr(self, name) for name in self.__slots__}

    def __eq__(self, other):
        return type(self) is type(other) and self.as_dict() == other.as_dict()

    def __ne__(self, other):
        return not self == other

    __hash__ = None

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % kv for kv in sorted(self.as_dict().items())))


def _slots(keys, extra=()):
    return tuple(k.attr for k in keys) + tuple(extra)


# ---------------------------------------------------------------------------------------------
# addresses

def parse_host_port(text, path):
    """"239.1.1.1:9002", "127.0.0.1:9002", "[::1]:9002" or "host:port" -> (host, port)."""
    if not isinstance(text, str):
        raise ConfigError("%s: expected \"HOST:PORT\", got %s" % (path, _type_name(text)))
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1:end + 2] != ":":
            raise ConfigError("%s: %r is not [IPv6]:PORT" % (path, text))
        host, port_text = text[1:end], text[end + 2:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ConfigError("%s: %r is not an IPv6 address" % (path, host))
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host or ":" in host:
            raise ConfigError("%s: %r is not HOST:PORT (write IPv6 as [addr]:port)" % (path, text))
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError("%s: port %r must be an integer in 1..65535" % (path, port_text))
    return host, int(port_text)


def check_url(url, schemes, path):
    """An endpoint URL the transports can open as given: one of ``schemes``, a host, a valid
    port, and nothing they would silently drop or send where it does not belong (a fragment, a
    query, user:password@). Returns it without a trailing slash."""
    if not url.isascii() or not url.isprintable() or " " in url:
        raise ConfigError("%s: %r must be printable ASCII without spaces" % (path, url))
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigError("%s: %r has an invalid host or port" % (path, url))
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError("%s: %r must be a %s URL with a host"
                          % (path, url, " or ".join(schemes)))
    if port == 0:
        raise ConfigError("%s: %r has port 0" % (path, url))
    for part, what in ((parts.fragment or "#" in url, "a fragment (#...)"),
                       (parts.query or "?" in url, "a query (?...)"),
                       ("@" in parts.netloc, "user info (user@)")):
        if part:
            raise ConfigError("%s: %r must not contain %s" % (path, url, what))
    return url.rstrip("/")


def _url(schemes, default_attr):
    def read(obj, key, path, venue):
        return check_url(_get_str(obj, key, getattr(registry.spec(venue.NAME), default_attr), path),
                         schemes, "%s.%s" % (path, key))
    return read


def _ip_address(text, path):
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise ConfigError("%s: %r is not an IP address" % (path, text))
    return text


def _source_host(obj, key, path, ctx):
    source = obj.get(key)
    if source is None:
        return None
    return parse_host_port(source if ":" in str(source) else "%s:1" % source,
                           "%s.%s" % (path, key))[0]


def _target(obj, key, path, ctx):
    host, port = parse_host_port(obj.get(key, "239.1.1.1:9002"), "%s.%s" % (path, key))
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError("%s.%s: %r is not an IP address (hostnames are not resolved on the "
                          "hot path)" % (path, key, host))
    return host, port


def _targets(obj, key, path, ctx):
    """``publisher.targets``: A/B destinations, each "ADDR:PORT" or {"target": "ADDR:PORT",
    "multicast_interface": IP, "multicast_ttl": N} -> [(host, port, interface, ttl)]."""
    raw = obj.get(key)
    if raw is None:
        return None
    where = "%s.%s" % (path, key)
    if not isinstance(raw, list):
        raise ConfigError("%s: expected a list of targets, got %s" % (where, _type_name(raw)))
    if not 1 <= len(raw) <= 4:
        raise ConfigError("%s: expected 1 to 4 targets, got %d" % (where, len(raw)))
    result = []
    for index, item in enumerate(raw):
        item_path = "%s[%d]" % (where, index)
        if isinstance(item, str):
            item = {"target": item}
        if not isinstance(item, dict):
            raise ConfigError("%s: expected \"ADDR:PORT\" or an object, got %s"
                              % (item_path, _type_name(item)))
        _check_keys(item, {"target", "multicast_interface", "multicast_ttl"}, item_path)
        if "target" not in item:
            raise ConfigError("%s.target: missing" % item_path)
        host, port = _target(item, "target", item_path, ctx)
        interface = OptionalStr(_ip_address)(item, "multicast_interface", item_path, ctx)
        ttl = _get_int(item, "multicast_ttl", None, item_path, 0, 255) \
            if item.get("multicast_ttl") is not None else None
        result.append((host, port, interface, ttl))
    return result


def _retransmit_listen(obj, key, path, ctx):
    value = obj.get(key)
    if value is None:
        return None
    host, port = parse_host_port(value, "%s.%s" % (path, key))
    _ip_address(host, "%s.%s" % (path, key))
    return host, port


# ---------------------------------------------------------------------------------------------
# sections

class PublisherConfig(Section):
    """``publisher``: where and how the UDP stream is sent (docs/config.md#publisher)."""

    KEYS = (
        Key("target", _target),
        Key("channel", Int(1, 0, MAX_CHANNEL)),
        Key("depth", Int(20, 1, MAX_DEPTH)),
        Key("max_payload", Int(1472, MIN_PAYLOAD, MAX_PAYLOAD)),
        Key("multicast_ttl", Int(1, 0, 255)),
        Key("multicast_interface", OptionalStr(_ip_address)),
        Key("multicast_loop", Bool(True)),
        Key("heartbeat_interval_s", Number(1.0, 0.01, 60.0)),
        Key("instrument_interval_s", Number(5.0, 0.1, 3600.0)),
        Key("source", _source_host, attr="source_host"),
        # "read": one datagram per socket read (default: measured faster on both rigs and both
        # interpreters, docs/benchmarks.md); "frame": one per venue WebSocket frame
        Key("flush", Choice("read", ("frame", "read"))),
        # A/B redundancy, refresh cycle, retransmission (docs/PROTOCOL.md)
        Key("targets", _targets),
        Key("refresh_interval_s", Number(1.0, 0.0, 3600.0)),
        Key("retransmit_listen", _retransmit_listen),
        Key("retransmit_history_datagrams", Int(100000, 16, 10000000)),
    )
    EXTRA = ("target_host", "target_port", "family", "is_multicast", "extra_targets")
    __slots__ = _slots(KEYS, EXTRA)

    def _check(self, raw, path, ctx):
        self.extra_targets = []
        if self.targets is not None:
            if "target" in raw:
                raise ConfigError("%s: give either target or targets, not both" % path)
            host, port, interface, ttl = self.targets[0]
            self.target = (host, port)
            if interface is not None:
                self.multicast_interface = interface
            if ttl is not None:
                self.multicast_ttl = ttl
            self.extra_targets = list(self.targets[1:])
        self.target_host, self.target_port = self.target
        addr = ipaddress.ip_address(self.target_host)
        self.family = 6 if addr.version == 6 else 4
        self.is_multicast = addr.is_multicast
        needed = wire.book_packet_bytes(self.depth)
        if needed > self.max_payload:
            raise ConfigError("%s.depth: a %d-level book (%d bytes) does not fit max_payload %d"
                              % (path, self.depth, needed, self.max_payload))

    @property
    def flush_per_frame(self):
        """True when a datagram is sent after every venue frame (flush "frame")."""
        return self.flush == "frame"


class BookConfig(Section):
    """``book``: per-instrument book storage."""

    KEYS = (Key("capacity_levels", Int(5000, 1, 1000000)),)
    __slots__ = _slots(KEYS)


class CpuAffinityConfig(Section):
    """``cpu_affinity``: pin the daemon to one core; ``core`` is that core or -1 (no pinning)."""

    KEYS = (Key("processor_core", Int(-1, -1, 4095)),
            Key("enabled", lambda obj, key, path, ctx: _get_bool(
                obj, key, obj.get("processor_core", -1) != -1, path)))
    __slots__ = _slots(KEYS)

    def _check(self, raw, path, ctx):
        if self.enabled and self.processor_core < 0:
            raise ConfigError("%s.processor_core: set a core >= 0 when enabled is true "
                              "(-1 disables pinning)" % path)

    @property
    def core(self):
        """The core to pin to, or -1 when pinning is off."""
        return self.processor_core if self.enabled else -1


class SchedulerConfig(Section):
    """``scheduler``: SCHED_OTHER (default) or SCHED_FIFO at ``priority``."""

    KEYS = (Key("policy", Choice("other", ("other", "fifo"))),
            Key("priority", Int(10, 1, 99)))
    __slots__ = _slots(KEYS)


def _buffer_bytes(obj, key, path, ctx):
    """0 leaves the kernel's default size (no setsockopt); otherwise 4 KiB to 1 GiB."""
    value = _get_int(obj, key, 4 * 2 ** 20, path, 0, 1 << 30)
    if 0 < value < 4096:
        raise ConfigError("%s.%s: %d is out of range: 0 (kernel default) or [4096, %d]"
                          % (path, key, value, 1 << 30))
    return value


class SocketBuffersConfig(Section):
    """``socket_buffers``: SO_SNDBUF / SO_RCVBUF asked for every socket (0 = kernel default)."""

    KEYS = (Key("sndbuf_bytes", _buffer_bytes), Key("rcvbuf_bytes", _buffer_bytes))
    __slots__ = _slots(KEYS)


def _thresholds(obj, key, path, ctx):
    value = obj.get(key)
    if value is None:
        return None
    if (not isinstance(value, list) or not 1 <= len(value) <= 3
            or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)):
        raise ConfigError("%s.%s: expected null or a list of 1 to 3 integers >= 0" % (path, key))
    return tuple(value)


class GcConfig(Section):
    """``gc``: garbage-collector tuning applied by runtime/gctune.py."""

    KEYS = (Key("freeze_after_start", Bool(True)),
            Key("disable_automatic", Bool(False)),
            Key("thresholds", _thresholds),
            Key("collect_interval_s", Number(0.0, 0.0, 3600.0)))
    __slots__ = _slots(KEYS)

    def _check(self, raw, path, ctx):
        if self.disable_automatic and self.collect_interval_s == 0.0:
            raise ConfigError("%s.disable_automatic: needs gc.collect_interval_s > 0, or memory "
                              "is never reclaimed" % path)


class JitConfig(Section):
    """``jit``: PyPy JIT parameters, set with ``pypyjit.set_param`` when the daemon starts
    (runtime/jitwatch.py); CPython has no JIT and ignores them. The defaults are lower than
    PyPy's own (threshold 1039, function_threshold 1619, trace_eagerness 200) so that the
    paths live market data takes are compiled within seconds of going live instead of a minute
    (docs/benchmarks.md, "JIT warm-up")."""

    KEYS = (Key("threshold", Int(200, 1, 1000000)),
            Key("function_threshold", Int(300, 1, 1000000)),
            Key("trace_eagerness", Int(20, 1, 1000000)))
    __slots__ = _slots(KEYS)

    def params(self):
        """The ``pypyjit.set_param`` argument: "threshold=200,function_threshold=300,..."."""
        return ",".join("%s=%d" % (key.name, getattr(self, key.name)) for key in self.KEYS)


class TraceConfig(Section):
    """``trace``: the sampling trace of the hot path (runtime/trace.py); 0 = off (nothing
    installed), N = every Nth socket read has its messages stamped stage by stage."""

    KEYS = (Key("sample_every", Int(0, 0, 1000000)),)
    __slots__ = _slots(KEYS)


class InstrumentConfig(object):
    """One instrument: the venue's symbol and the id it is published under."""

    __slots__ = ("symbol", "instrument_id", "feed_index")

    def __init__(self, symbol, instrument_id, feed_index):
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.feed_index = feed_index

    def __repr__(self):
        return "InstrumentConfig(%s, id=%d)" % (self.symbol, self.instrument_id)


def _channels(obj, key, path, ctx):
    channels = obj.get(key, list(CHANNELS))
    if not isinstance(channels, list) or not channels:
        raise ConfigError("%s.%s: expected a non-empty list of %s" % (path, key, ", ".join(CHANNELS)))
    for i, name in enumerate(channels):
        if name not in CHANNELS:
            raise ConfigError("%s.%s[%d]: %r is not one of %s"
                              % (path, key, i, name, ", ".join(CHANNELS)))
    if len(set(channels)) != len(channels):
        raise ConfigError("%s.%s: duplicate entries" % (path, key))
    return tuple(channels)


def _venue(obj, key, path, ctx):
    if key not in obj:
        raise ConfigError("%s.%s: missing (one of %s)" % (path, key, ", ".join(registry.NAMES)))
    return _get_str(obj, key, None, path, choices=registry.NAMES)


class FeedConfig(Section):
    """One entry of ``feeds``: a venue, its endpoints, symbols and connection policy. Defaults
    and upper bounds that are the venue's own come from its adapter class."""

    KEYS = (
        Key("venue", _venue),
        Key("ws_url", _url(("ws", "wss"), "ws_url")),
        Key("rest_url", _url(("http", "https"), "rest_url")),
        Key("symbols", lambda obj, key, path, ctx: None, attr="instruments"),   # see _check
        Key("channels", _channels),
        Key("snapshot_limit", Int(lambda v: v.DEFAULT_SNAPSHOT_LIMIT, 1,
                                  lambda v: v.MAX_SNAPSHOT_LIMIT)),
        Key("max_streams_per_connection", Int(lambda v: v.MAX_STREAMS_PER_CONNECTION, 1,
                                              lambda v: v.MAX_STREAMS_PER_CONNECTION)),
        Key("max_out_msgs_per_s", Number(lambda v: v.MAX_OUT_MSGS_PER_S, 0.1, 1000.0)),
        Key("silence_timeout_s", Number(30.0, 0.1, 3600.0)),
        Key("data_silence_timeout_s", Number(60.0, 0.0, 86400.0)),
        Key("connect_timeout_s", Number(10.0, 0.1, 300.0)),
        Key("snapshot_timeout_s", Number(10.0, 0.1, 300.0)),
        Key("reconnect_backoff_initial_s", Number(0.5, 0.0, 60.0)),
        Key("reconnect_backoff_max_s", Number(30.0, 0.0, 3600.0)),
        Key("connection_lifetime_s", Number(lambda v: v.CONNECTION_LIFETIME_S, 1.0, 7 * 86400.0)),
        Key("overlap_s", Number(5.0, 0.0, 600.0)),
        Key("depth_speed", Choice("100ms", ("100ms", "1000ms"))),
        Key("rest_weight_per_min", Int(lambda v: v.REST_WEIGHT_PER_MIN, 1, 1000000)),
        Key("max_message_bytes", Int(16 * 2 ** 20, 1024, 1 << 30)),
        Key("max_buffered_updates", Int(10000, 1, 10 ** 7)),
        Key("instrument_metadata", Bool(True)),    # D messages (pipeline/instruments.py)
    )
    EXTRA = ("index",)
    __slots__ = _slots(KEYS, EXTRA)

    @classmethod
    def parse(cls, raw, path, ctx=None):
        """``ctx`` is (index, next_id, reserved): the id allocator shared by all feeds."""
        _check_keys(raw, set(cls.key_names()), path)
        venue = registry.adapter(_venue(raw, "venue", path, None))
        self = cls.__new__(cls)
        for key in cls.KEYS:
            setattr(self, key.attr, key.read(raw, key.name, path, venue))
        self.index, next_id, reserved = ctx
        if self.reconnect_backoff_max_s < self.reconnect_backoff_initial_s:
            raise ConfigError("%s.reconnect_backoff_max_s: must be >= reconnect_backoff_initial_s"
                              % path)
        self.instruments = _load_symbols(raw, path, self.venue, self.index, next_id, reserved)
        return self


def _load_symbols(raw, path, venue_name, feed_index, next_id, reserved):
    symbols = raw.get("symbols")
    if not isinstance(symbols, list) or not symbols:
        raise ConfigError("%s.symbols: expected a non-empty list of symbols" % path)
    instruments = []
    seen = set()
    for i, item in enumerate(symbols):
        spath = "%s.symbols[%d]" % (path, i)
        if isinstance(item, str):
            symbol, wanted_id = item, None
        elif isinstance(item, dict):
            _check_keys(item, {"symbol", "id"}, spath)
            if "symbol" not in item:
                raise ConfigError("%s.symbol: missing" % spath)
            symbol = _get_str(item, "symbol", None, spath)
            wanted_id = _get_int(item, "id", None, spath, 1, MAX_INSTRUMENT_ID) \
                if "id" in item else None
        else:
            raise ConfigError("%s: expected a symbol string or {\"symbol\": ..., \"id\": N}, got %s"
                              % (spath, _type_name(item)))
        if not symbol or len(symbol) > wire.SYMBOL_SIZE or not symbol.isascii() \
                or not symbol.isprintable():
            raise ConfigError("%s: %r is not a valid symbol (1..%d printable ASCII characters)"
                              % (spath, symbol, wire.SYMBOL_SIZE))
        problem = registry.symbol_error(venue_name, symbol)
        if problem is not None:
            raise ConfigError("%s: %s" % (spath, problem))
        if symbol.upper() in seen:
            raise ConfigError("%s: %r is listed twice in this feed" % (spath, symbol))
        seen.add(symbol.upper())
        if wanted_id is None:
            # ids start at 1 in order of appearance, skipping ids given explicitly anywhere
            while next_id[0] in reserved:
                next_id[0] += 1
            wanted_id = next_id[0]
            next_id[0] += 1
            if wanted_id > MAX_INSTRUMENT_ID:
                raise ConfigError("%s: no instrument id left (max %d)" % (spath, MAX_INSTRUMENT_ID))
        instruments.append(InstrumentConfig(symbol, wanted_id, feed_index))
    return instruments


def _feeds(obj, key, path, ctx):
    feeds = obj.get(key)
    if ctx == "host-only" and feeds is None:
        return []
    if not isinstance(feeds, list) or not feeds:
        raise ConfigError("feeds: expected a non-empty list of feeds")
    reserved = _explicit_ids(feeds)
    next_id = [1]
    return [FeedConfig.parse(feed, "feeds[%d]" % i, (i, next_id, reserved))
            for i, feed in enumerate(feeds)]


def _log_level(obj, key, path, ctx):
    return None if obj.get(key) is None else _get_str(obj, key, None, path, choices=LOG_LEVELS)


def _listen(obj, key, path, ctx):
    return None if obj.get(key) is None else parse_host_port(obj[key], "%s.%s" % (path, key))


class MetricsConfig(Section):
    """The Prometheus endpoint (app/metrics.py): ``listen`` "HOST:PORT", or null/absent = off."""

    KEYS = (Key("listen", _listen),)
    __slots__ = _slots(KEYS)


class Config(Section):
    """The validated configuration: typed sections and the top-level switches."""

    KEYS = (
        Key("feeds", _feeds),
        Key("publisher", SubSection(PublisherConfig)),
        Key("book", SubSection(BookConfig)),
        Key("memory_lock", Bool(True)),
        Key("prefault", Bool(True)),
        Key("cpu_affinity", SubSection(CpuAffinityConfig)),
        Key("scheduler", SubSection(SchedulerConfig)),
        Key("socket_buffers", SubSection(SocketBuffersConfig)),
        Key("gc", SubSection(GcConfig)),
        Key("jit", SubSection(JitConfig)),
        Key("busy_poll", Bool(False)),
        Key("watchdog", Bool(True)),
        Key("stats_interval_s", Number(10.0, 0.1, 86400.0)),
        Key("trace", SubSection(TraceConfig)),
        Key("log_level", _log_level),
        Key("log_format", Choice("auto", ("auto", "text", "json"))),
        Key("metrics", SubSection(MetricsConfig)),
    )
    EXTRA = ("instruments", "book_memory_bytes")
    __slots__ = _slots(KEYS, EXTRA)

    def _check(self, raw, path, ctx):
        self.instruments = [inst for feed in self.feeds for inst in feed.instruments]
        if self.book.capacity_levels < self.publisher.depth:
            raise ConfigError("book.capacity_levels: %d is below publisher.depth %d"
                              % (self.book.capacity_levels, self.publisher.depth))
        self.book_memory_bytes = book_memory_bytes(self.book.capacity_levels,
                                                   len(self.instruments))
        if self.book_memory_bytes > MAX_BOOK_MEMORY_BYTES:
            raise ConfigError(
                "book.capacity_levels: %d levels x %d instruments pre-allocate about %s of books "
                "(limit %s); lower capacity_levels or split the symbols over several daemons"
                % (self.book.capacity_levels, len(self.instruments),
                   human_bytes(self.book_memory_bytes), human_bytes(MAX_BOOK_MEMORY_BYTES)))


def book_memory_bytes(capacity_levels, instruments):
    """Memory the books pre-allocate: per instrument two sides, each ``storage_slots`` (qty,
    price) pairs of int64 (core/book.py), i.e. about 48 bytes per level of capacity."""
    pair_bytes = 2 * array("q").itemsize
    return instruments * 2 * pair_bytes * storage_slots(capacity_levels)


def human_bytes(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" if unit == "bytes" else "%.1f %s") % (n, unit)
        n /= 1024.0
    return str(n)


def load_config_dict(raw):
    """Validate a parsed JSON document and return a :class:`Config` (raises ConfigError)."""
    return Config.parse(raw, "config")


def host_config(raw=None):
    """A :class:`Config` whose feeds may be absent: the machine-level sections only (the doctor
    without --config uses the defaults of every section)."""
    return Config.parse({} if raw is None else raw, "config", "host-only")


def _explicit_ids(feeds):
    """Ids given as {"symbol": ..., "id": N}; the same id twice is an error naming both places."""
    where = {}
    for i, feed in enumerate(feeds):
        if not isinstance(feed, dict) or not isinstance(feed.get("symbols"), list):
            continue
        for j, item in enumerate(feed["symbols"]):
            if isinstance(item, dict) and type(item.get("id")) is int:
                path = "feeds[%d].symbols[%d].id" % (i, j)
                if item["id"] in where:
                    raise ConfigError("%s: instrument id %d is already used by %s"
                                      % (path, item["id"], where[item["id"]]))
                where[item["id"]] = path
    return set(where)


def _nesting_depth(text):
    """Deepest [ / { nesting of a JSON text, ignoring brackets inside strings. json.loads
    recurses once per level, so a file of 100,000 '[' would otherwise end in RecursionError."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_JSON_NESTING:
                    return deepest
        elif ch in "]}":
            depth -= 1
    return deepest


def parse_json_text(text, where):
    """JSON text -> document, every failure a ConfigError naming ``where``."""
    if _nesting_depth(text) > MAX_JSON_NESTING:
        raise ConfigError("%s is not a hftfeed config: JSON nested deeper than %d levels"
                          % (where, MAX_JSON_NESTING))
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError("%s is not valid JSON: %s" % (where, exc))


def load_config(path):
    """Read and validate the JSON file at ``path``."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError("cannot read config %s: %s" % (path, exc.strerror or exc))
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError("config %s is larger than %d bytes" % (path, MAX_CONFIG_BYTES))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("config %s is not UTF-8" % path)
    return load_config_dict(parse_json_text(text, "config %s" % path))


def default_config_path(project_root):
    """etc/hftfeed.json, or etc/hftfeed.limited.json when HFTFEED_LIMITED / USE_LIMITED_CONFIG is 1."""
    limited = os.environ.get("HFTFEED_LIMITED", os.environ.get("USE_LIMITED_CONFIG", ""))
    name = "hftfeed.limited.json" if limited.strip().lower() in ("1", "true", "yes") \
        else "hftfeed.json"
    return os.path.join(project_root, "etc", name)
