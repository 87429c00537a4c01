"""``hftfeed.py shard``: split one config into per-core daemon configs.

One daemon is one event loop on one core; past what a core can carry, instruments are split
across daemons. This command does the split so that the shards stay consistent:

- balanced by expected message rate (``--rates FILE``: {"SYMBOL" or "venue:SYMBOL": msgs/s};
  an instrument without a figure weighs the median of the given ones, or 1 when none is given),
  greedy largest-first onto the least loaded core, deterministic for the same input;
- every instrument keeps the id the whole config gives it (written out explicitly), so ids are
  unique across shards and a consumer can merge shards by id;
- each shard publishes on its own channel (``--first-channel``, then +1 per shard) and, with
  ``--groups``, to its own multicast group, so a host joins only the groups it needs;
- each shard is pinned to its core (``cpu_affinity``); a ``metrics.listen`` port is offset by
  the shard's index so shards on one host do not collide.

Output: ``DIR/<name>-core<N>.json`` per core (``--name``, default the input file's name), ready
for the template unit ``hftfeed@<name>-core<N>`` (systemd/hftfeed@.service). docs/deployment.md
explains how consumers combine the shards.
"""

import copy
import ipaddress
import json
import os
import statistics

from hftfeed.app.cli import OneLineParser
from hftfeed.app.config import (MAX_CHANNEL, load_config_dict, parse_host_port)
from hftfeed.errors import ConfigError


def parse_cores(text):
    """"2,3,4-5" -> [2, 3, 4, 5] (unique, in the order given)."""
    cores = []
    for part in text.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ConfigError("--cores: %r is not a list of core numbers like 2,3,4-5" % text)
        for core in range(int(lo), int(hi if sep else lo) + 1):
            if core in cores:
                raise ConfigError("--cores: core %d is listed twice" % core)
            cores.append(core)
    if not cores:
        raise ConfigError("--cores: no core given")
    return cores


def load_rates(path):
    if path is None:
        return {}
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, ValueError) as exc:
        raise ConfigError("--rates %s: %s" % (path, exc))
    if not isinstance(raw, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for v in raw.values()):
        raise ConfigError("--rates %s: expected an object of symbol -> messages per second >= 0"
                          % path)
    return {str(k).upper(): float(v) for k, v in raw.items()}


def balance(weights, n_shards):
    """weights: [(key, weight)] -> list of n_shards lists of keys. Largest first onto the
    least loaded shard (ties: lower index); input order breaks ties between equal weights."""
    order = sorted(range(len(weights)), key=lambda i: (-weights[i][1], i))
    shards = [[] for _ in range(n_shards)]
    loads = [0.0] * n_shards
    for i in order:
        target = min(range(n_shards), key=lambda s: (loads[s], s))
        shards[target].append(weights[i][0])
        loads[target] += weights[i][1]
    return shards, loads


def split(raw, cores, rates, first_channel=None, groups=None):
    """The whole config (parsed JSON) -> [(core, shard config dict, expected msgs/s)]."""
    cfg = load_config_dict(copy.deepcopy(raw))      # validates, and assigns the ids
    if groups is not None and len(groups) != len(cores):
        raise ConfigError("--groups: %d group(s) for %d core(s); give one per core"
                          % (len(groups), len(cores)))
    if len(cfg.instruments) < len(cores):
        raise ConfigError("%d instrument(s) cannot fill %d cores; give fewer cores"
                          % (len(cfg.instruments), len(cores)))
    channel0 = cfg.publisher.channel if first_channel is None else first_channel
    if channel0 + len(cores) - 1 > MAX_CHANNEL:
        raise ConfigError("channels %d..%d exceed %d" % (channel0, channel0 + len(cores) - 1,
                                                         MAX_CHANNEL))
    known = [v for v in rates.values()]
    default = statistics.median(known) if known else 1.0
    weights = []
    for feed in cfg.feeds:
        for j, inst in enumerate(feed.instruments):
            key = (feed.index, j)
            rate = rates.get("%s:%s" % (feed.venue.upper(), inst.symbol.upper()),
                             rates.get(inst.symbol.upper(), default))
            weights.append((key, rate))
    rate_of = dict(weights)
    assignment, loads = balance(weights, len(cores))
    out = []
    for index, (core, keys) in enumerate(zip(cores, assignment)):
        mine = set(keys)
        shard = copy.deepcopy(raw)
        feeds = []
        for feed, raw_feed in zip(cfg.feeds, shard["feeds"]):
            symbols = [{"symbol": inst.symbol, "id": inst.instrument_id}
                       for j, inst in enumerate(feed.instruments) if (feed.index, j) in mine]
            if symbols:
                raw_feed["symbols"] = symbols
                feeds.append(raw_feed)
        shard["feeds"] = feeds
        pub = shard.setdefault("publisher", {})
        pub["channel"] = channel0 + index
        if groups is not None:
            pub["target"] = groups[index]
        shard["cpu_affinity"] = {"enabled": True, "processor_core": core}
        if cfg.metrics.listen is not None:
            host, port = cfg.metrics.listen
            if port + index > 65535:
                raise ConfigError("metrics.listen: port %d + %d shards exceeds 65535"
                                  % (port, len(cores)))
            shard["metrics"] = {"listen": ("[%s]:%d" if ":" in host else "%s:%d")
                                % (host, port + index)}
        load_config_dict(copy.deepcopy(shard))        # every shard must itself be valid
        out.append((core, shard, sum(rate_of[k] for k in keys)))
    return out


def parse_groups(text, port):
    groups = []
    for item in text.split(","):
        item = item.strip()
        target = item if (":" in item and not item.count(":") > 1) or item.startswith("[") \
            else ("[%s]:%d" % (item, port) if ":" in item else "%s:%d" % (item, port))
        host, _ = parse_host_port(target, "--groups")
        try:
            if not ipaddress.ip_address(host).is_multicast:
                raise ConfigError("--groups: %s is not a multicast group" % host)
        except ValueError:
            raise ConfigError("--groups: %r is not an IP address" % host)
        groups.append(target)
    return groups


def build_parser():
    parser = OneLineParser(prog="hftfeed.py shard",
                           description="Split a config into one config per core, balanced by "
                                       "expected message rate (docs/deployment.md).")
    parser.add_argument("--config", required=True, metavar="FILE", help="the whole config")
    parser.add_argument("--cores", required=True, metavar="LIST", help="e.g. 2,3,4,5 or 2-5")
    parser.add_argument("--out", required=True, metavar="DIR", help="where to write the shards")
    parser.add_argument("--name", help="shard file prefix (default: the config file's name)")
    parser.add_argument("--rates", metavar="FILE",
                        help="JSON {\"SYMBOL\" or \"venue:SYMBOL\": messages per second}")
    parser.add_argument("--first-channel", type=int, metavar="N",
                        help="channel of the first shard (default: the config's channel)")
    parser.add_argument("--groups", metavar="LIST",
                        help="one multicast group per core, e.g. 239.1.1.1,239.1.1.2 (port: "
                             "the config's, unless given as GROUP:PORT)")
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    cores = parse_cores(args.cores)
    try:
        with open(args.config, "rb") as f:
            raw = json.loads(f.read().decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError("cannot read config %s: %s" % (args.config, exc))
    if not isinstance(raw, dict):
        raise ConfigError("config %s: expected an object" % args.config)
    port = load_config_dict(copy.deepcopy(raw)).publisher.target_port
    groups = parse_groups(args.groups, port) if args.groups else None
    name = args.name or os.path.splitext(os.path.basename(args.config))[0]
    shards = split(raw, cores, load_rates(args.rates), args.first_channel, groups)
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as exc:
        raise ConfigError("--out %s: %s" % (args.out, exc.strerror or exc))
    for core, shard, rate in shards:
        path = os.path.join(args.out, "%s-core%d.json" % (name, core))
        with open(path, "w") as f:
            json.dump(shard, f, indent=2)
            f.write("\n")
        n = sum(len(feed["symbols"]) for feed in shard["feeds"])
        print("%s: core %d, channel %d, target %s, %d instrument(s), ~%.0f msgs/s  "
              "(systemctl enable --now hftfeed@%s-core%d)"
              % (path, core, shard["publisher"]["channel"],
                 shard["publisher"].get("target", "239.1.1.1:9002"), n, rate, name, core))
    return 0
