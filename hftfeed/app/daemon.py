"""``hftfeed.py run``: the feed-handler daemon (foreground; systemd runs it as Type=notify).

Start-up order matters: Phase 1 controls (affinity, mlockall, scheduler, GC) come before the
books and packet buffers are allocated, so MCL_FUTURE covers them and the pre-fault touches them
from the pinned core; ``gc.freeze()`` comes after everything long-lived exists.
"""

import asyncio
import gc
import logging
import os
import signal
import ssl
import time

from hftfeed.runtime import gctune
from hftfeed.runtime import hw
from hftfeed.codecs import wire
from hftfeed.app import logs
from hftfeed.app import reload as reload_mod
from hftfeed.app.cli import OneLineParser
from hftfeed.app.config import default_config_path, human_bytes, load_config
from hftfeed.app.health import Freshness, live_counts
from hftfeed.app.metrics import DaemonMetrics, MetricsServer
from hftfeed.venues import registry
from hftfeed.errors import ConfigError
from hftfeed.pipeline.feed import Feed, FeedStats
from hftfeed.pipeline.instruments import load_details
from hftfeed.pipeline.publisher import Publisher
from hftfeed.pipeline.retransmit import RetransmitServer
from hftfeed.runtime.sdnotify import Notifier
from hftfeed.runtime.stats import LatencyHistogram, format_ns
from hftfeed.runtime.jitwatch import JitMonitor, apply_params as apply_jit_params
from hftfeed.runtime.trace import Trace
from hftfeed.transport.ws import trust_store_description

log = logging.getLogger("hftfeed.daemon")

HOUSEKEEPING_INTERVAL_S = 0.1   # heartbeats, instrument defs, watchdog, stats: off the hot path
STOP_TIMEOUT_S = 1.5            # SIGTERM to exit must stay under 2 s


def setup_logging(config_level=None, log_format="auto"):
    """Level from HFTFEED_LOG / RUST_LOG, else the config; format per app/logs.py."""
    return logs.setup_logging(config_level, log_format)[0]


class Daemon(object):
    """Owns the publisher, the feeds and the housekeeping timer of one daemon process."""

    def __init__(self, cfg, notifier=None, config_path=None):
        self.cfg = cfg
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        # Each feed counts into its own FeedStats (metrics label them by venue); the counts of
        # feeds a reload removed are kept here per venue, so totals never go backwards.
        self.retired_stats = {}         # venue name -> FeedStats
        self.latency = LatencyHistogram()
        self.publisher = None
        self.retransmit = None          # pipeline.retransmit.RetransmitServer when configured
        self.feeds = []
        self.stop_requested = None
        self.ready_sent = False
        self.gc_scheduler = None
        self.gc_pauses = gctune.GcPauseMonitor()   # every collection, for the stats line
        self.jit = JitMonitor()                     # PyPy's compilations: is the JIT warm yet?
        self.ssl_context = None
        self.trace = None               # runtime.trace.Trace when config trace.sample_every > 0
        self.last_stats_ns = 0
        self.last_counts = (0, 0, 0)
        self.last_watchdog_ns = 0
        self.watchdog_interval_ns = 0
        self.exit_code = 0
        self.started_mono_ns = time.monotonic_ns()
        self.freshness = Freshness(self.started_mono_ns)
        self.metrics = DaemonMetrics(self, self.freshness)
        self.metrics_server = None
        self.last_status = None

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
            extra_targets=pub.extra_targets,
            refresh_interval_s=pub.refresh_interval_s,
            history_datagrams=pub.retransmit_history_datagrams if pub.retransmit_listen else 0)
        report = self.publisher.open()
        log.info("publisher: channel %d to %s:%d, session %d, depth %d; %s", pub.channel,
                 pub.target_host, pub.target_port, self.publisher.session, pub.depth,
                 report.message if report is not None else "")
        self.ssl_context = ssl.create_default_context()
        log.info("TLS trust store: %s", trust_store_description(self.ssl_context))
        for feed_cfg in cfg.feeds:
            feed = Feed(feed_cfg, registry.adapter(feed_cfg.venue), self.publisher, FeedStats(),
                        cfg.book.capacity_levels, ssl_context=self.ssl_context,
                        rcvbuf_bytes=cfg.socket_buffers.rcvbuf_bytes,
                        flush_per_frame=cfg.publisher.flush_per_frame)
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
        jit_params = apply_jit_params(self.cfg.jit.params())   # before any market data
        if jit_params:
            log.info("jit: %s", jit_params)
        self.build()
        if self.cfg.publisher.retransmit_listen:
            host, port = self.cfg.publisher.retransmit_listen
            self.retransmit = RetransmitServer(self.publisher, host, port)
            await self.retransmit.start()
        await self.start_metrics(self.cfg.metrics.listen)
        self.publisher.send_instruments()
        for feed in self.feeds:
            feed.start()
        if self.cfg.gc.collect_interval_s > 0:
            self.gc_scheduler = gctune.GcScheduler(self.cfg.gc.collect_interval_s)
            self.gc_scheduler.start(loop)
        gctune.gc_after_startup(self.cfg.gc.freeze_after_start)
        if not self.gc_pauses.install():
            log.info("gc: this interpreter has no collection hooks; the stats line omits gc")
        self.jit.install()
        self.watchdog_interval_ns = int((self.notifier.watchdog_interval_s() or 0) * 1e9) \
            if self.cfg.watchdog else 0
        self.last_stats_ns = time.monotonic_ns()
        log.info("running: %d feed(s), %d instrument(s)", len(self.feeds),
                 sum(len(f.instruments) for f in self.feeds))
        # Housekeeping runs from one loop timer, not from ``wait_for(event.wait(), 0.1)``: that
        # built a task, a coroutine, a future and a CancelledError with its traceback ten times
        # a second, and under PyPy every one of them was allocation (minor collections) and
        # another path through asyncio's cancellation code for the JIT to compile.
        self._loop = loop
        self._tick_at = loop.time()
        self._tick_error = None
        self._tick_handle = loop.call_soon(self._tick)
        try:
            await self.stop_requested.wait()
        finally:
            self._tick_handle.cancel()
        if self._tick_error is not None:
            raise self._tick_error
        await self.shutdown()
        return self.exit_code

    def _tick(self):
        """One housekeeping round every HOUSEKEEPING_INTERVAL_S, on a fixed grid (a slow
        round does not push the next ones back; missed rounds are skipped, not bunched)."""
        loop = self._loop
        now = loop.time()
        self._tick_at += HOUSEKEEPING_INTERVAL_S
        if self._tick_at < now:
            self._tick_at = now + HOUSEKEEPING_INTERVAL_S
        self._tick_handle = loop.call_at(self._tick_at, self._tick)
        try:
            self.housekeeping()
        except Exception as exc:
            # as before this timer existed: a housekeeping bug ends run() with that exception
            self._tick_handle.cancel()
            self._tick_error = exc
            self.stop_requested.set()

    def reload(self):
        """SIGHUP: re-read the config file, compare all of it with the running one
        (app/reload.py), apply live what can be, name in one warning what needs a restart.
        An invalid config, or one that would renumber a running instrument, is refused as a
        whole and the daemon keeps running on the old one."""
        log.info("SIGHUP: reloading %s", self.config_path)
        try:
            new = load_config(self.config_path)
            plan = reload_mod.plan(self.cfg, new, self.feeds)
        except ConfigError as exc:
            log.error("reload refused, still running the old config: %s", exc)
            return
        for feed, feed_cfg in plan.changed:
            added, removed = feed.apply_symbols(feed_cfg)
            if added or removed:
                log.info("reload: %s feed: added %s, removed %s", feed.venue.NAME,
                         added or "nothing", removed or "nothing")
            if added:       # their D messages: read the venue's list again (advisory task)
                feed.tasks.append(asyncio.ensure_future(load_details(feed)))
        for feed_cfg in plan.new:
            feed = Feed(feed_cfg, registry.adapter(feed_cfg.venue), self.publisher, FeedStats(),
                        self.cfg.book.capacity_levels, ssl_context=self.ssl_context,
                        rcvbuf_bytes=self.cfg.socket_buffers.rcvbuf_bytes,
                        flush_per_frame=self.cfg.publisher.flush_per_frame)
            self.feeds.append(feed)
            if self.trace is not None:
                self.trace.attach_router(feed.router)
            feed.start()
            log.info("reload: new %s feed with %d instrument(s)", feed_cfg.venue,
                     len(feed.instruments))
        for feed in plan.gone:
            self.feeds.remove(feed)
            self.retired_stats.setdefault(feed.venue.NAME, FeedStats()).add(feed.stats)
            feed.apply_symbols(_EmptyFeed())
            asyncio.ensure_future(feed.stop())
            log.info("reload: %s feed removed", feed.venue.NAME)
        for feed, feed_cfg, keys in plan.feed_limits:
            reload_mod.apply_feed_limits(feed, feed_cfg, keys)
        old = self.cfg
        self.cfg = plan.effective
        if plan.live:       # before applying: a new log level may hide this line
            log.info("reload: applied live: %s", ", ".join(plan.live))
        self.apply_live(old, plan.effective, plan.live)
        if plan.restart:
            log.warning("reload: needs a restart to take effect (still running the old value): "
                        "%s", ", ".join(plan.restart))
        if not (plan.live or plan.restart or plan.new or plan.gone):
            log.info("reload: no setting changed besides the symbols (if any)")
        self.publisher.set_instruments([d for f in self.feeds for d in f.instrument_defs()])
        self.publisher.send_instruments()

    def apply_live(self, old, new, names):
        """The top-level keys of app/reload.LIVE_KEYS (per-feed limits are applied there)."""
        if "log_format" in names:
            logs.setup_logging(new.log_level, new.log_format)
        elif "log_level" in names:
            logs.set_level(new.log_level)
        if ("log_level" in names or "log_format" in names) and \
                (os.environ.get("HFTFEED_LOG") or os.environ.get("RUST_LOG")):
            log.warning("reload: the level in HFTFEED_LOG/RUST_LOG wins over log_level")
        if "watchdog" in names:
            self.watchdog_interval_ns = int((self.notifier.watchdog_interval_s() or 0) * 1e9) \
                if new.watchdog else 0
        if any(n.startswith("gc.") for n in names):
            self.apply_gc(new.gc)
        if any(n.startswith("jit.") for n in names):
            jit_params = apply_jit_params(new.jit.params())   # for code compiled from now on
            if jit_params:
                log.info("jit: %s", jit_params)
        pub = self.publisher
        pub.heartbeat_interval_ns = int(new.publisher.heartbeat_interval_s * 1e9)
        pub.instrument_interval_ns = int(new.publisher.instrument_interval_s * 1e9)
        if "metrics.listen" in names:
            asyncio.ensure_future(self.move_metrics(old.metrics, new.metrics.listen))

    def apply_gc(self, gc_cfg):
        """New thresholds / automatic collection / collection schedule, from the event loop."""
        if gc_cfg.thresholds is None and reload_mod.DEFAULT_GC_THRESHOLDS is not None:
            gc.set_threshold(*reload_mod.DEFAULT_GC_THRESHOLDS)
        if not gc_cfg.disable_automatic:
            gc.enable()
        report = gctune.tune_gc(gc_cfg)
        log.info("reload: gc: %s", report.message)
        if self.gc_scheduler is not None:
            self.gc_scheduler.stop()
            self.gc_scheduler = None
        if gc_cfg.collect_interval_s > 0:
            self.gc_scheduler = gctune.GcScheduler(gc_cfg.collect_interval_s)
            self.gc_scheduler.start(asyncio.get_event_loop())

    async def move_metrics(self, old_metrics, listen):
        """Reload of metrics.listen: bind the new address first, then close the old one; if the
        new one cannot be bound, the old endpoint stays (and so does its config)."""
        previous = self.metrics_server
        self.metrics_server = None
        try:
            await self.start_metrics(listen)
        except ConfigError as exc:
            self.metrics_server = previous
            self.cfg.metrics = old_metrics
            log.error("reload: %s; the metrics endpoint stays as it was", exc)
            return
        if previous is not None:
            await previous.close()
        if listen is None:
            log.info("metrics: endpoint closed")

    def request_stop(self, signum=None):
        if signum is not None:
            log.info("received %s: stopping", signal.Signals(signum).name)
        self.stop_requested.set()

    def housekeeping(self):
        now_ns = time.time_ns()
        self.publisher.tick(now_ns)
        if not self.ready_sent and all(f.connected for f in self.feeds):
            self.ready_sent = True
            self.notifier.ready("feeds connected; live %d/%d" % live_counts(self.feeds))
            log.info("all feeds connected")
        mono_ns = time.monotonic_ns()
        if self.watchdog_interval_ns and mono_ns - self.last_watchdog_ns >= self.watchdog_interval_ns:
            self.last_watchdog_ns = mono_ns
            self.notifier.watchdog()
        if mono_ns - self.last_stats_ns >= self.cfg.stats_interval_s * 1e9:
            self.stats_line(mono_ns)
        self.ops_tick(mono_ns)

    def ops_tick(self, mono_ns):
        """Freshness for metrics/health, and ``live n/m`` in systemctl status when it changes."""
        self.freshness.sample(self.feeds, mono_ns)
        live, total = live_counts(self.feeds)
        status = "live %d/%d" % (live, total)
        if status != self.last_status:
            self.last_status = status
            self.notifier.status(status + ("" if live == total else " (not all live)"))

    async def start_metrics(self, listen):
        """The metrics endpoint (None: off). A port that cannot be bound is a config error."""
        if listen is None or self.metrics_server is not None:
            return
        server = MetricsServer(self.metrics.render, listen[0], listen[1])
        try:
            port = await server.start()
        except OSError as exc:
            raise ConfigError("metrics.listen: cannot listen on %s:%d: %s"
                              % (listen[0], listen[1], exc.strerror or exc))
        self.metrics_server = server
        log.info("metrics: serving http://%s:%d/metrics", _url_host(listen[0]), port)

    async def stop_metrics(self):
        if self.metrics_server is not None:
            await self.metrics_server.close()
            self.metrics_server = None

    def stats_by_venue(self):
        """venue name -> FeedStats: the running feeds' counts plus those of removed feeds."""
        out = {}
        for name, retired in self.retired_stats.items():
            out[name] = FeedStats().add(retired)
        for feed in self.feeds:
            out.setdefault(feed.venue.NAME, FeedStats()).add(feed.stats)
        return out

    @property
    def stats(self):
        """The daemon's totals over every feed (the stats line, the stop summary)."""
        total = FeedStats()
        for venue_stats in self.stats_by_venue().values():
            total.add(venue_stats)
        return total

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
        if self.jit.installed:
            loops, bridges, aborts = self.jit.take_interval()
            gc_text += " | jit %d loops %d bridges %d aborts" % (loops, bridges, aborts)
        log.info("HFT OrderBook: %d updates/sec | %d msgs/sec | %d levels/sec | live %d/%d | "
                 "packets %d | resyncs %d | connects %d, failed %d, dropped %d | bad msgs %d | "
                 "latency p50 %s p99 %s p99.9 %s (recv->send, %d samples)%s",
                 rates[0], rates[1], rates[2], live, len(insts), self.publisher.packets_sent,
                 s.resyncs, s.connects, s.connect_failures, s.reconnects, s.bad_messages,
                 format_ns(lat.percentile(50)),
                 format_ns(lat.percentile(99)), format_ns(lat.percentile(99.9)), lat.count,
                 gc_text + instruments_text(s)
                 + ("" if self.trace is None else " | " + self.trace.line()))
        self.metrics.absorb_latency(lat)
        lat.reset()
        if self.trace is not None:
            # machine-readable: every sample of the interval (bench.py merges these lines)
            for key, text in self.trace.export_lines(time.time_ns()):
                log.info("trace %s %s", key, text)
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
        await self.stop_metrics()
        if self.gc_scheduler is not None:
            self.gc_scheduler.stop()
        self.gc_pauses.uninstall()
        self.jit.uninstall()
        self.publisher.end_session()
        if self.retransmit is not None:
            await self.retransmit.close()
        log.info("%s", stop_summary(self.stats, self.publisher.counters(), self.started_mono_ns))
        self.publisher.close()


def instruments_text(stats):
    """The stats line's instrument-metadata part: only when a list failed or was incomplete."""
    if not (stats.instrument_errors or stats.instruments_refused or stats.instruments_missing):
        return ""
    return " | instrument info: %d loaded, %d list errors, %d refused, %d not listed" % (
        stats.instruments_loaded, stats.instrument_errors, stats.instruments_refused,
        stats.instruments_missing)


def stop_summary(stats, counters, started_mono_ns):
    """The last log line of a clean stop: what this run did, readable by a person."""
    up_s = (time.monotonic_ns() - started_mono_ns) / 1e9 if started_mono_ns else 0.0
    return ("stopped after %.1f s: %d messages in, %d book updates, %d trades, %d quotes; "
            "%d connects, %d failed connect attempts, %d connections dropped, %d resyncs, "
            "%d bad messages; sent %d packets (%d messages, %d bytes, %d send errors), "
            "session %d ended at seq %d"
            % (up_s, stats.messages_in, stats.book_updates, stats.trades, stats.quotes,
               stats.connects, stats.connect_failures, stats.reconnects, stats.resyncs,
               stats.bad_messages, counters["packets_sent"], counters["messages_sent"],
               counters["bytes_sent"], counters["send_errors"], counters["session"],
               counters["next_seq"]))


def _url_host(host):
    return "[%s]" % host if ":" in host else host


class _EmptyFeed(object):
    """A feed entry with no symbols: what a feed removed by a reload is reduced to."""
    instruments = ()


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
    setup_logging(cfg.log_level, cfg.log_format)
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

