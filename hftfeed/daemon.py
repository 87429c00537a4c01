"""``hftfeed.py run``: the feed-handler daemon (foreground; systemd runs it as Type=notify).

Start-up order matters: Phase 1 controls (affinity, mlockall, scheduler, GC) come before the
books and packet buffers are allocated, so MCL_FUTURE covers them and the pre-fault touches them
from the pinned core; ``gc.freeze()`` comes after everything long-lived exists.
"""

import argparse
import asyncio
import logging
import os
import signal
import ssl
import sys
import time

from . import hw
from .config import default_config_path, load_config
from .exchanges import VENUES
from .feed import Feed, FeedStats
from .publisher import Publisher
from .sdnotify import Notifier
from .stats import LatencyHistogram, format_ns

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


def hw_settings(cfg):
    """The Phase 1 settings as the JSON-shaped dict hw.apply_startup expects."""
    return {"memory_lock": cfg.memory_lock,
            "cpu_affinity": {"enabled": cfg.cpu_core >= 0, "processor_core": cfg.cpu_core},
            "scheduler": {"policy": cfg.sched_policy, "priority": cfg.sched_priority},
            "gc": {"freeze_after_start": cfg.gc_freeze_after_start,
                   "disable_automatic": cfg.gc_disable_automatic,
                   "thresholds": cfg.gc_thresholds,
                   "collect_interval_s": cfg.gc_collect_interval_s}}


class Daemon(object):
    """Owns the publisher, the feeds and the housekeeping timer of one daemon process."""

    def __init__(self, cfg, notifier=None):
        self.cfg = cfg
        self.notifier = notifier or Notifier()
        self.stats = FeedStats()
        self.latency = LatencyHistogram()
        self.publisher = None
        self.feeds = []
        self.stop_requested = None
        self.ready_sent = False
        self.gc_scheduler = None
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
            instrument_interval_s=pub.instrument_interval_s, sndbuf_bytes=cfg.sndbuf_bytes,
            rcvbuf_bytes=cfg.rcvbuf_bytes, source_host=pub.source_host, latency=self.latency)
        report = self.publisher.open()
        log.info("publisher: channel %d to %s:%d, session %d, depth %d; %s", pub.channel,
                 pub.target_host, pub.target_port, self.publisher.session, pub.depth,
                 report.message if report is not None else "")
        ssl_context = ssl.create_default_context()
        for feed_cfg in cfg.feeds:
            feed = Feed(feed_cfg, VENUES[feed_cfg.venue], self.publisher, self.stats,
                        cfg.book_capacity_levels, ssl_context=ssl_context,
                        rcvbuf_bytes=cfg.rcvbuf_bytes)
            self.feeds.append(feed)
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
        self.build()
        self.publisher.send_instruments()
        for feed in self.feeds:
            feed.start()
        if self.cfg.gc_collect_interval_s > 0:
            self.gc_scheduler = hw.GcScheduler(self.cfg.gc_collect_interval_s)
            self.gc_scheduler.start(loop)
        hw.gc_after_startup(self.cfg.gc_freeze_after_start)
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
        log.info("HFT OrderBook: %d updates/sec | %d msgs/sec | %d levels/sec | packets %d | "
                 "resyncs %d | reconnects %d | bad msgs %d | latency p50 %s p99 %s p99.9 %s "
                 "(recv->send, %d samples)",
                 rates[0], rates[1], rates[2], self.publisher.packets_sent, s.resyncs,
                 s.reconnects, s.bad_messages, format_ns(lat.percentile(50)),
                 format_ns(lat.percentile(99)), format_ns(lat.percentile(99.9)), lat.count)
        lat.reset()

    async def shutdown(self):
        """Stop the feeds, send end-of-session, flush, close (bounded by STOP_TIMEOUT_S)."""
        self.notifier.stopping()
        try:
            await asyncio.wait_for(asyncio.gather(*(f.stop() for f in self.feeds)),
                                   STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("feeds did not stop within %.1f s; closing anyway", STOP_TIMEOUT_S)
        if self.gc_scheduler is not None:
            self.gc_scheduler.stop()
        self.publisher.end_session()
        log.info("stopped: %s", self.publisher.counters())
        self.publisher.close()


def run_config(cfg):
    """Apply Phase 1 controls, then run the daemon until SIGTERM/SIGINT; returns the exit code."""
    for result in hw.apply_startup(hw_settings(cfg)):
        log.debug("startup: %r", result)
    from .busypoll import new_event_loop
    loop = new_event_loop(cfg.busy_poll)
    asyncio.set_event_loop(loop)
    daemon = Daemon(cfg)
    try:
        return loop.run_until_complete(daemon.run())
    finally:
        loop.close()


def build_parser():
    parser = argparse.ArgumentParser(prog="hftfeed.py run",
                                     description="Run the feed handler in the foreground.")
    parser.add_argument("--config", metavar="FILE",
                        help="JSON config (default: etc/hftfeed.json, or etc/hftfeed.limited.json "
                             "when HFTFEED_LIMITED=1)")
    parser.add_argument("--check", action="store_true",
                        help="validate the config and exit (0 = valid, 2 = invalid)")
    return parser


def main(argv):
    args = build_parser().parse_args(argv)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = args.config or default_config_path(root)
    cfg = load_config(path)
    setup_logging(cfg.log_level)
    if cfg.cpu_core >= 0:
        hw.validate_cpu_core(cfg.cpu_core)
    if args.check:
        print("config %s is valid: %d feed(s), %d instrument(s)"
              % (path, len(cfg.feeds), len(cfg.instruments)))
        return 0
    return run_config(cfg)

