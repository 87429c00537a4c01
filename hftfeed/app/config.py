"""Load and validate the JSON configuration (the contract other tools generate against).

Every key is checked here, once, at start-up: unknown keys, wrong types, bad addresses and duplicate
instrument ids raise :class:`ConfigError` with the key's path in the message ("feeds[0].symbols[2]: ..."),
which the CLI prints as one line before exiting with code 2. The rest of the program reads plain
attributes and never re-validates. docs/config.md documents every key and its default.
"""

import ipaddress
import json
import os
from urllib.parse import urlsplit

from hftfeed.errors import ConfigError
from hftfeed.venues import VENUES

MAX_INSTRUMENT_ID = 65535          # u16 on the wire (PROTOCOL.md message header)
MAX_CHANNEL = 65535                # u16 on the wire (PROTOCOL.md packet header)
MAX_DEPTH = 255                    # bid_n / ask_n are u8 on the wire
MIN_PAYLOAD = 32 + 40 + 16 * 2     # a packet header plus a one-level book must fit
MAX_PAYLOAD = 65507                # largest UDP payload over IPv4
CHANNELS = ("depth", "trade", "bookTicker")
LOG_LEVELS = ("error", "warn", "warning", "info", "debug")


class FeedConfig(object):
    """One venue connection group: a venue, its endpoints, symbols and connection policy."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


class InstrumentConfig(object):
    """One instrument: the venue's symbol and the id it is published under."""

    __slots__ = ("symbol", "instrument_id", "feed_index")

    def __init__(self, symbol, instrument_id, feed_index):
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.feed_index = feed_index

    def __repr__(self):
        return "InstrumentConfig(%s, id=%d)" % (self.symbol, self.instrument_id)


class Config(object):
    """The validated configuration; attributes mirror the JSON keys (see docs/config.md)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


# ---------------------------------------------------------------------------------------------
# small typed getters: each names the key path in its error

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


def _get_buffer_bytes(bufs, key):
    """0 leaves the kernel's default size (no setsockopt); otherwise 4 KiB to 1 GiB."""
    value = _get_int(bufs, key, 4 * 2 ** 20, "socket_buffers", 0, 1 << 30)
    if 0 < value < 4096:
        raise ConfigError("socket_buffers.%s: %d is out of range: 0 (kernel default) or "
                          "[4096, %d]" % (key, value, 1 << 30))
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


def _get_obj(obj, key, path):
    value = obj.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError("%s.%s: expected an object, got %s" % (path, key, _type_name(value)))
    return value


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


def _check_url(url, schemes, path):
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError("%s: %r must be a %s URL with a host" % (path, url, " or ".join(schemes)))
    try:
        parts.port
    except ValueError:
        raise ConfigError("%s: %r has an invalid port" % (path, url))
    return url.rstrip("/")


# ---------------------------------------------------------------------------------------------
# sections

FEED_KEYS = {
    "venue", "ws_url", "rest_url", "symbols", "channels", "snapshot_limit",
    "max_streams_per_connection", "max_out_msgs_per_s", "silence_timeout_s", "connect_timeout_s",
    "snapshot_timeout_s", "reconnect_backoff_initial_s", "reconnect_backoff_max_s",
    "connection_lifetime_s", "overlap_s", "depth_speed", "rest_weight_per_min",
    "max_message_bytes", "max_buffered_updates",
}


def _load_feed(raw, index, next_id, reserved):
    path = "feeds[%d]" % index
    _check_keys(raw, FEED_KEYS, path)
    if "venue" not in raw:
        raise ConfigError("%s.venue: missing (one of %s)" % (path, ", ".join(sorted(VENUES))))
    venue_name = _get_str(raw, "venue", None, path, choices=sorted(VENUES))
    venue = VENUES[venue_name]
    feed = FeedConfig(venue=venue_name, index=index)
    feed.ws_url = _check_url(_get_str(raw, "ws_url", venue.DEFAULT_WS_URL, path),
                             ("ws", "wss"), path + ".ws_url")
    feed.rest_url = _check_url(_get_str(raw, "rest_url", venue.DEFAULT_REST_URL, path),
                               ("http", "https"), path + ".rest_url")
    feed.channels = _load_channels(raw, path)
    feed.snapshot_limit = _get_int(raw, "snapshot_limit", venue.DEFAULT_SNAPSHOT_LIMIT, path,
                                   1, venue.MAX_SNAPSHOT_LIMIT)
    feed.max_streams_per_connection = _get_int(raw, "max_streams_per_connection",
                                               venue.MAX_STREAMS_PER_CONNECTION, path,
                                               1, venue.MAX_STREAMS_PER_CONNECTION)
    feed.max_out_msgs_per_s = _get_number(raw, "max_out_msgs_per_s", venue.MAX_OUT_MSGS_PER_S,
                                          path, 0.1, 1000.0)
    feed.silence_timeout_s = _get_number(raw, "silence_timeout_s", 30.0, path, 0.1, 3600.0)
    feed.connect_timeout_s = _get_number(raw, "connect_timeout_s", 10.0, path, 0.1, 300.0)
    feed.snapshot_timeout_s = _get_number(raw, "snapshot_timeout_s", 10.0, path, 0.1, 300.0)
    feed.reconnect_backoff_initial_s = _get_number(raw, "reconnect_backoff_initial_s", 0.5,
                                                   path, 0.0, 60.0)
    feed.reconnect_backoff_max_s = _get_number(raw, "reconnect_backoff_max_s", 30.0, path,
                                               0.0, 3600.0)
    if feed.reconnect_backoff_max_s < feed.reconnect_backoff_initial_s:
        raise ConfigError("%s.reconnect_backoff_max_s: must be >= reconnect_backoff_initial_s"
                          % path)
    feed.connection_lifetime_s = _get_number(raw, "connection_lifetime_s",
                                             venue.CONNECTION_LIFETIME_S, path, 1.0, 7 * 86400.0)
    feed.overlap_s = _get_number(raw, "overlap_s", 5.0, path, 0.0, 600.0)
    feed.depth_speed = _get_str(raw, "depth_speed", "100ms", path, choices=("100ms", "1000ms"))
    feed.rest_weight_per_min = _get_int(raw, "rest_weight_per_min", venue.REST_WEIGHT_PER_MIN,
                                        path, 1, 1000000)
    feed.max_message_bytes = _get_int(raw, "max_message_bytes", 16 * 2 ** 20, path,
                                      1024, 1 << 30)
    feed.max_buffered_updates = _get_int(raw, "max_buffered_updates", 10000, path, 1, 10 ** 7)
    feed.instruments = _load_symbols(raw, path, index, next_id, reserved)
    return feed


def _load_channels(raw, path):
    channels = raw.get("channels", list(CHANNELS))
    if not isinstance(channels, list) or not channels:
        raise ConfigError("%s.channels: expected a non-empty list of %s" % (path, ", ".join(CHANNELS)))
    for i, name in enumerate(channels):
        if name not in CHANNELS:
            raise ConfigError("%s.channels[%d]: %r is not one of %s"
                              % (path, i, name, ", ".join(CHANNELS)))
    if len(set(channels)) != len(channels):
        raise ConfigError("%s.channels: duplicate entries" % path)
    return tuple(channels)


def _load_symbols(raw, path, feed_index, next_id, reserved):
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
        if not symbol or len(symbol) > 24 or not symbol.isascii() or not symbol.isprintable() \
                or " " in symbol or "/" in symbol:
            raise ConfigError("%s: %r is not a valid symbol (1..24 printable ASCII, no space or '/')"
                              % (spath, symbol))
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


PUBLISHER_KEYS = {"target", "channel", "depth", "max_payload", "multicast_ttl",
                  "multicast_interface", "multicast_loop", "heartbeat_interval_s",
                  "instrument_interval_s", "source", "flush"}


def _load_publisher(raw):
    path = "publisher"
    _check_keys(raw, PUBLISHER_KEYS, path)
    pub = Config()
    pub.target_host, pub.target_port = parse_host_port(raw.get("target", "239.1.1.1:9002"),
                                                       path + ".target")
    try:
        addr = ipaddress.ip_address(pub.target_host)
    except ValueError:
        raise ConfigError("%s.target: %r is not an IP address (hostnames are not resolved on the "
                          "hot path)" % (path, pub.target_host))
    pub.family = 6 if addr.version == 6 else 4
    pub.is_multicast = addr.is_multicast
    pub.channel = _get_int(raw, "channel", 1, path, 0, MAX_CHANNEL)
    pub.depth = _get_int(raw, "depth", 20, path, 1, MAX_DEPTH)
    pub.max_payload = _get_int(raw, "max_payload", 1472, path, MIN_PAYLOAD, MAX_PAYLOAD)
    if 32 + 40 + 32 * pub.depth > pub.max_payload:
        raise ConfigError("%s.depth: a %d-level book (%d bytes) does not fit max_payload %d"
                          % (path, pub.depth, 72 + 32 * pub.depth, pub.max_payload))
    pub.multicast_ttl = _get_int(raw, "multicast_ttl", 1, path, 0, 255)
    interface = raw.get("multicast_interface")
    if interface is not None:
        interface = _get_str(raw, "multicast_interface", None, path)
        try:
            ipaddress.ip_address(interface)
        except ValueError:
            raise ConfigError("%s.multicast_interface: %r is not an IP address" % (path, interface))
    pub.multicast_interface = interface
    pub.multicast_loop = _get_bool(raw, "multicast_loop", True, path)
    pub.flush = _get_str(raw, "flush", "frame", path, choices=("frame", "read"))
    pub.heartbeat_interval_s = _get_number(raw, "heartbeat_interval_s", 1.0, path, 0.01, 60.0)
    pub.instrument_interval_s = _get_number(raw, "instrument_interval_s", 5.0, path, 0.1, 3600.0)
    source = raw.get("source")
    if source is not None:
        source = parse_host_port(source if ":" in str(source) else "%s:1" % source,
                                 path + ".source")[0]
    pub.source_host = source
    return pub


def _load_hw(raw, cfg):
    cfg.memory_lock = _get_bool(raw, "memory_lock", True, "config")
    cfg.prefault = _get_bool(raw, "prefault", True, "config")
    cfg.busy_poll = _get_bool(raw, "busy_poll", False, "config")
    cfg.watchdog = _get_bool(raw, "watchdog", True, "config")

    aff = _get_obj(raw, "cpu_affinity", "config")
    _check_keys(aff, {"enabled", "processor_core"}, "cpu_affinity")
    core = _get_int(aff, "processor_core", -1, "cpu_affinity", -1, 4095)
    enabled = _get_bool(aff, "enabled", core >= 0, "cpu_affinity")
    if enabled and core < 0:
        raise ConfigError("cpu_affinity.processor_core: set a core >= 0 when enabled is true "
                          "(-1 disables pinning)")
    cfg.cpu_core = core if enabled else -1

    sched = _get_obj(raw, "scheduler", "config")
    _check_keys(sched, {"policy", "priority"}, "scheduler")
    cfg.sched_policy = _get_str(sched, "policy", "other", "scheduler", choices=("other", "fifo"))
    cfg.sched_priority = _get_int(sched, "priority", 10, "scheduler", 1, 99)

    bufs = _get_obj(raw, "socket_buffers", "config")
    _check_keys(bufs, {"sndbuf_bytes", "rcvbuf_bytes"}, "socket_buffers")
    cfg.sndbuf_bytes = _get_buffer_bytes(bufs, "sndbuf_bytes")
    cfg.rcvbuf_bytes = _get_buffer_bytes(bufs, "rcvbuf_bytes")

    gc_raw = _get_obj(raw, "gc", "config")
    _check_keys(gc_raw, {"freeze_after_start", "disable_automatic", "thresholds",
                         "collect_interval_s"}, "gc")
    cfg.gc_freeze_after_start = _get_bool(gc_raw, "freeze_after_start", True, "gc")
    cfg.gc_disable_automatic = _get_bool(gc_raw, "disable_automatic", False, "gc")
    thresholds = gc_raw.get("thresholds")
    if thresholds is not None:
        if (not isinstance(thresholds, list) or not 1 <= len(thresholds) <= 3
                or not all(isinstance(t, int) and not isinstance(t, bool) and t >= 0
                           for t in thresholds)):
            raise ConfigError("gc.thresholds: expected null or a list of 1 to 3 integers >= 0")
        thresholds = tuple(thresholds)
    cfg.gc_thresholds = thresholds
    cfg.gc_collect_interval_s = _get_number(gc_raw, "collect_interval_s", 0.0, "gc", 0.0, 3600.0)
    if cfg.gc_disable_automatic and cfg.gc_collect_interval_s == 0.0:
        raise ConfigError("gc.disable_automatic: needs gc.collect_interval_s > 0, or memory "
                          "is never reclaimed")


TOP_KEYS = {"feeds", "publisher", "book", "memory_lock", "prefault", "cpu_affinity", "scheduler",
            "socket_buffers", "gc", "busy_poll", "watchdog", "stats_interval_s", "log_level",
            "log_format", "metrics"}


def _load_ops(raw, cfg):
    """``log_format`` (auto | text | json) and ``metrics`` ({"listen": "HOST:PORT"}; absent or
    {"listen": null} = no endpoint). docs/operations.md describes both."""
    cfg.log_format = _get_str(raw, "log_format", "auto", "config", choices=("auto", "text", "json"))
    metrics = _get_obj(raw, "metrics", "config")
    _check_keys(metrics, {"listen"}, "metrics")
    listen = metrics.get("listen")
    cfg.metrics_listen = None if listen is None else parse_host_port(listen, "metrics.listen")


def load_config_dict(raw):
    """Validate a parsed JSON document and return a :class:`Config` (raises ConfigError)."""
    _check_keys(raw, TOP_KEYS, "config")
    cfg = Config()
    feeds = raw.get("feeds")
    if not isinstance(feeds, list) or not feeds:
        raise ConfigError("feeds: expected a non-empty list of feeds")
    reserved = _explicit_ids(feeds)
    next_id = [1]
    cfg.feeds = [_load_feed(feed, i, next_id, reserved) for i, feed in enumerate(feeds)]
    cfg.instruments = [inst for feed in cfg.feeds for inst in feed.instruments]
    cfg.publisher = _load_publisher(_get_obj(raw, "publisher", "config"))
    book = _get_obj(raw, "book", "config")
    _check_keys(book, {"capacity_levels"}, "book")
    cfg.book_capacity_levels = _get_int(book, "capacity_levels", 5000, "book", 1, 1000000)
    if cfg.book_capacity_levels < cfg.publisher.depth:
        raise ConfigError("book.capacity_levels: %d is below publisher.depth %d"
                          % (cfg.book_capacity_levels, cfg.publisher.depth))
    _load_hw(raw, cfg)
    cfg.stats_interval_s = _get_number(raw, "stats_interval_s", 10.0, "config", 0.1, 86400.0)
    level = raw.get("log_level")
    cfg.log_level = None if level is None else _get_str(raw, "log_level", None, "config",
                                                        choices=LOG_LEVELS)
    _load_ops(raw, cfg)
    return cfg


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


def load_config(path):
    """Read and validate the JSON file at ``path``."""
    try:
        with open(path, "rb") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError("cannot read config %s: %s" % (path, exc.strerror or exc))
    try:
        raw = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("config %s is not UTF-8" % path)
    except ValueError as exc:
        raise ConfigError("config %s is not valid JSON: %s" % (path, exc))
    return load_config_dict(raw)


def default_config_path(project_root):
    """etc/hftfeed.json, or etc/hftfeed.limited.json when HFTFEED_LIMITED / USE_LIMITED_CONFIG is 1."""
    limited = os.environ.get("HFTFEED_LIMITED", os.environ.get("USE_LIMITED_CONFIG", ""))
    name = "hftfeed.limited.json" if limited.strip().lower() in ("1", "true", "yes") \
        else "hftfeed.json"
    return os.path.join(project_root, "etc", name)
