"""``hftfeed.py run``: the feed-handler daemon (foreground; systemd runs it as Type=notify).

Start-up order matters: Phase 1 controls (affinity, mlockall, scheduler, GC) come before the
books and packet buffers are allocated, so MCL_FUTURE covers them and the pre-fault touches them
from the pinned core; ``gc.freeze()`` comes after everything long-lived exists.
"""

import asyncio
import json
import logging
import os
import signal
import ssl
import sys
import time

from hftfeed.runtime import gctune
from hftfeed.runtime import hw
from hftfeed.codecs import wire
from hftfeed.app.cli import OneLineParser
from hftfeed.app.config import default_config_path, human_bytes, load_config
from hftfeed.venues import registry
from hftfeed.errors import ConfigError
from hftfeed.pipeline.feed import Feed, FeedStats, feed_identity
from hftfeed.pipeline.publisher import Publisher
from hftfeed.pipeline.retransmit import RetransmitServer
from hftfeed.runtime.sdnotify import Notifier
from hftfeed.runtime.stats import LatencyHistogram, format_ns
from hftfeed.runtime.trace import Trace
from hftfeed.transport.ws import trust_store_description

log = logging.getLogger("hftfeed.daemon")

LOG_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "warning": logging.WARNING,
              "info": logging.INFO, "debug": logging.DEBUG, "trace": logging.DEBUG}
HOUSEKEEPING_INTERVAL_S = 0.1   # heartbeats, instrument defs, watchdog, stats: off the hot path
STOP_TIMEOUT_S = 1.5            # SIGTERM to exit must stay under 2 s


def setup_logging(config_level=None):
    """Log level from HFTFEED_LOG (RUST_LOG-style: error/warn/info/debug), else the config."""
    text = os.environ.get("HFTFEED_LOG") or os.environ.get("RUST_LOG") or config_level or "info"
    level = LOG_LEVELS.get(text.strip().lower().split(",")[0].split("=")[-1], logging.INFO)
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return level


class Daemon(object):
    """Owns the publisher, the feeds and the housekeeping timer of one daemon process."""

    def __init__(self, cfg, notifier=None, config_path=None):
        self.cfg = cfg
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.stats = FeedStats()
        self.latency = LatencyHistogram()
        self.publisher = None
        self.retransmit = None          # pipeline.retransmit.RetransmitServer when configured
        self.feeds = []
        self.stop_requested = None
        self.ready_sent = False
        self.gc_scheduler = None
        self.gc_pauses = gctune.GcPauseMonitor()   # every collection, for the stats line
        self.ssl_context = None
        self.trace = None               # runtime.trace.Trace when config trace.sample_every > 0
        self.last_stats_ns = 0
        self.last_counts = (0, 0, 0)
        self.last_watchdog_ns = 0
        self.watchdog_interval_ns = 0
        self.exit_code = 0

    def build(self):
        """Allocate everything long-lived (called inside the running loop)."""
        cfg = self.cfg
        pub = cfg.publisher
        self.publisher = Publisher(
            pub.target_host, pub.target_port, channel=pub.channel, depth=pub.depth,
            max_payload=pub.max_payload, multicast_ttl=pub.multicast_ttl,
            multicast_interface=pub.multicast_interface, multicast_loop=pub.multicast_loop,
            heartbeat_interval_s=pub.heartbeat_interval_s,
            instrument_interval_s=pub.instrument_interval_s,
            sndbuf_bytes=cfg.socket_buffers.sndbuf_bytes,
            rcvbuf_bytes=cfg.socket_buffers.rcvbuf_bytes, source_host=pub.source_host, latency=self.latency,
            flush_policy=pub.flush, extra_targets=pub.extra_targets,
            refresh_interval_s=pub.refresh_interval_s,
            history_datagrams=pub.retransmit_history_datagrams if pub.retransmit_listen else 0)
        report = self.publisher.open()
        log.info("publisher: channel %d to %s:%d, session %d, depth %d; %s", pub.channel,
                 pub.target_host, pub.target_port, self.publisher.session, pub.depth,
                 report.message if report is not None else "")
        self.ssl_context = ssl.create_default_context()
        log.info("TLS trust store: %s", trust_store_description(self.ssl_context))
        for feed_cfg in cfg.feeds:
            feed = Feed(feed_cfg, registry.adapter(feed_cfg.venue), self.publisher, self.stats,
                        cfg.book.capacity_levels, ssl_context=self.ssl_context,
                        rcvbuf_bytes=cfg.socket_buffers.rcvbuf_bytes)
            self.feeds.append(feed)
        if cfg.trace.sample_every:
            self.trace = Trace(cfg.trace.sample_every)
            self.trace.attach_publisher(self.publisher)
            for feed in self.feeds:
                self.trace.attach_router(feed.router)
            log.info("trace: on, every %d socket read(s) sampled", cfg.trace.sample_every)
        self.publisher.set_instruments([d for f in self.feeds for d in f.instrument_defs()])
        if cfg.prefault:
            buffers = [self.publisher.buf]
            for feed in self.feeds:
                for inst in feed.instruments.values():
                    buffers.extend(inst.book.buffers())
            hw.prefault(buffers)

    async def run(self):
        loop = asyncio.get_event_loop()
        self.stop_requested = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        if self.config_path is not None:
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        self.build()
        if self.cfg.publisher.retransmit_listen:
            host, port = self.cfg.publisher.retransmit_listen
            self.retransmit = RetransmitServer(self.publisher, host, port)
            await self.retransmit.start()
        self.publisher.send_instruments()
        for feed in self.feeds:
            feed.start()
        if self.cfg.gc.collect_interval_s > 0:
            self.gc_scheduler = gctune.GcScheduler(self.cfg.gc.collect_interval_s)
            self.gc_scheduler.start(loop)
        gctune.gc_after_startup(self.cfg.gc.freeze_after_start)
        if not self.gc_pauses.install():
            log.info("gc: this interpreter has no collection hooks; the stats line omits gc")
        self.watchdog_interval_ns = int((self.notifier.watchdog_interval_s() or 0) * 1e9) \
            if self.cfg.watchdog else 0
        self.last_stats_ns = time.monotonic_ns()
        log.info("running: %d feed(s), %d instrument(s)", len(self.feeds),
                 sum(len(f.instruments) for f in self.feeds))
        while not self.stop_requested.is_set():
            try:
                await asyncio.wait_for(self.stop_requested.wait(), HOUSEKEEPING_INTERVAL_S)
            except asyncio.TimeoutError:
                self.housekeeping()
        await self.shutdown()
        return self.exit_code

    def reload(self):
        """SIGHUP: re-read the config file and add/remove symbols without dropping the others.

        Only the symbol lists are applied live; any other change (publisher, Phase 1 switches,
        feed limits) is reported as needing a restart. A reload that would renumber an
        instrument that keeps running, or that is invalid, is refused as a whole."""
        log.info("SIGHUP: reloading %s", self.config_path)
        try:
            new = load_config(self.config_path)
            plan = plan_reload(self.cfg, new, self.feeds)
        except ConfigError as exc:
            log.error("reload refused, still running the old config: %s", exc)
            return
        for feed, feed_cfg in plan["changed"]:
            added, removed = feed.apply_symbols(feed_cfg)
            log.info("reload: %s feed: added %s, removed %s", feed.venue.NAME,
                     added or "nothing", removed or "nothing")
        for feed_cfg in plan["new"]:
            feed = Feed(feed_cfg, registry.adapter(feed_cfg.venue), self.publisher, self.stats,
                        self.cfg.book.capacity_levels, ssl_context=self.ssl_context,
                        rcvbuf_bytes=self.cfg.socket_buffers.rcvbuf_bytes)
            self.feeds.append(feed)
            if self.trace is not None:
                self.trace.attach_router(feed.router)
            feed.start()
            log.info("reload: new %s feed with %d instrument(s)", feed_cfg.venue,
                     len(feed.instruments))
        for feed in plan["gone"]:
            self.feeds.remove(feed)
            feed.apply_symbols(_EmptyFeed())
            asyncio.ensure_future(feed.stop())
            log.info("reload: %s feed removed", feed.venue.NAME)
        for note in plan["restart_needed"]:
            log.warning("reload: %s changed; takes effect after a restart", note)
        self.publisher.set_instruments([d for f in self.feeds for d in f.instrument_defs()])
        self.publisher.send_instruments()

    def request_stop(self, signum=None):
        if signum is not None:
            log.info("received %s: stopping", signal.Signals(signum).name)
        self.stop_requested.set()

    def housekeeping(self):
        now_ns = time.time_ns()
        self.publisher.tick(now_ns)
        if not self.ready_sent and all(f.connected for f in self.feeds):
            self.ready_sent = True
            self.notifier.ready("feeds connected")
            log.info("all feeds connected")
        mono_ns = time.monotonic_ns()
        if self.watchdog_interval_ns and mono_ns - self.last_watchdog_ns >= self.watchdog_interval_ns:
            self.last_watchdog_ns = mono_ns
            self.notifier.watchdog()
        if mono_ns - self.last_stats_ns >= self.cfg.stats_interval_s * 1e9:
            self.stats_line(mono_ns)

    def stats_line(self, mono_ns):
        s = self.stats
        elapsed_s = (mono_ns - self.last_stats_ns) / 1e9
        counts = (s.book_updates, s.messages_in, s.levels_applied)
        rates = [(now - before) / elapsed_s for now, before in zip(counts, self.last_counts)]
        self.last_counts = counts
        self.last_stats_ns = mono_ns
        lat = self.latency
        insts = [inst for feed in self.feeds for inst in feed.instruments.values()]
        live = sum(1 for inst in insts if inst.state == wire.STATE_LIVE)
        gc_text = ""
        if self.gc_pauses.installed:
            pauses, pause_ns, pause_max_ns = self.gc_pauses.take_interval()
            gc_text = " | gc %d pauses %s (max %s)" % (pauses, format_ns(pause_ns),
                                                       format_ns(pause_max_ns))
        log.info("HFT OrderBook: %d updates/sec | %d msgs/sec | %d levels/sec | live %d/%d | "
                 "packets %d | resyncs %d | reconnects %d | bad msgs %d | latency p50 %s p99 %s "
                 "p99.9 %s (recv->send, %d samples)%s",
                 rates[0], rates[1], rates[2], live, len(insts), self.publisher.packets_sent,
                 s.resyncs, s.reconnects, s.bad_messages, format_ns(lat.percentile(50)),
                 format_ns(lat.percentile(99)), format_ns(lat.percentile(99.9)), lat.count,
                 gc_text + ("" if self.trace is None else " | " + self.trace.line()))
        lat.reset()
        if self.trace is not None:
            # machine-readable: every sample of the interval (bench.py merges these lines)
            log.info("trace %s", json.dumps(dict(self.trace.export(), t_unix_ns=time.time_ns()),
                                            separators=(",", ":")))
            self.trace.reset()

    async def shutdown(self):
        """Stop the feeds, send end-of-session, flush, close (bounded by STOP_TIMEOUT_S)."""
        self.notifier.stopping()
        self.stats_line(time.monotonic_ns())      # the last, partial interval too
        try:
            await asyncio.wait_for(asyncio.gather(*(f.stop() for f in self.feeds)),
                                   STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("feeds did not stop within %.1f s; closing anyway", STOP_TIMEOUT_S)
        if self.gc_scheduler is not None:
            self.gc_scheduler.stop()
        self.gc_pauses.uninstall()
        self.publisher.end_session()
        if self.retransmit is not None:
            await self.retransmit.close()
        log.info("stopped: %s", self.publisher.counters())
        self.publisher.close()


class _EmptyFeed(object):
    """A feed entry with no symbols: what a feed removed by a reload is reduced to."""
    instruments = ()


def plan_reload(old, new, feeds):
    """Decide what a reload changes. Raises ConfigError if it would renumber a running
    instrument or give a new one an id that is taken."""
    running = {}
    for feed in feeds:
        for inst in feed.instruments.values():
            running[(feed.identity(), inst.symbol)] = inst.instrument_id
    by_identity = {feed.identity(): feed for feed in feeds}
    plan = {"changed": [], "new": [], "gone": [], "restart_needed": []}
    wanted_ids = {}
    for feed_cfg in new.feeds:
        ident = feed_identity(feed_cfg)
        venue = registry.adapter(feed_cfg.venue)
        for inst in feed_cfg.instruments:
            key = (ident, venue.venue_symbol(inst.symbol))
            wanted_ids[key] = inst.instrument_id
        if ident in by_identity:
            plan["changed"].append((by_identity.pop(ident), feed_cfg))
        else:
            plan["new"].append(feed_cfg)
    plan["gone"] = list(by_identity.values())
    for key, inst_id in wanted_ids.items():
        if key in running and running[key] != inst_id:
            raise ConfigError("instrument id of %s would change from %d to %d; restart to renumber"
                              % (key[1], running[key], inst_id))
    kept_ids = {v: k for k, v in running.items() if k in wanted_ids}
    for key, inst_id in wanted_ids.items():
        if key not in running and inst_id in kept_ids:
            raise ConfigError("new instrument %s would take id %d, still used by %s"
                              % (key[1], inst_id, kept_ids[inst_id][1]))
    for name in ("publisher", "book", "memory_lock", "prefault", "cpu_affinity", "scheduler",
                 "socket_buffers", "gc", "busy_poll", "trace"):
        if getattr(old, name) != getattr(new, name):      # sections compare by value
            plan["restart_needed"].append(name)
    return plan


def run_config(cfg, config_path=None):
    """Apply Phase 1 controls, then run the daemon until SIGTERM/SIGINT; returns the exit code."""
    for result in hw.apply_startup(cfg):
        log.debug("startup: %r", result)
    from hftfeed.runtime.busypoll import new_event_loop
    loop = new_event_loop(cfg.busy_poll)
    asyncio.set_event_loop(loop)
    daemon = Daemon(cfg, config_path=config_path)
    try:
        return loop.run_until_complete(daemon.run())
    finally:
        loop.close()


def build_parser():
    parser = OneLineParser(prog="hftfeed.py run",
                           description="Run the feed handler in the foreground.")
    parser.add_argument("--config", metavar="FILE",
                        help="JSON config (default: etc/hftfeed.json, or etc/hftfeed.limited.json "
                             "when HFTFEED_LIMITED=1)")
    parser.add_argument("--check", action="store_true",
                        help="validate the config and exit (0 = valid, 2 = invalid)")
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = args.config or default_config_path(root)
    cfg = load_config(path)
    setup_logging(cfg.log_level)
    if cfg.cpu_affinity.core >= 0:
        hw.validate_cpu_core(cfg.cpu_affinity.core)
    if args.check:
        print("config %s is valid: %d feed(s), %d instrument(s); books pre-allocate %s"
              % (path, len(cfg.feeds), len(cfg.instruments), human_bytes(cfg.book_memory_bytes)))
        physical = hw.physical_memory_bytes()
        if physical and cfg.book_memory_bytes > physical // 2:
            print("warning: the books alone need more than half of this machine's %s of memory"
                  % human_bytes(physical))
        return 0
    return run_config(cfg, config_path=path)

