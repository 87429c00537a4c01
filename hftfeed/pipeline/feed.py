"""A configured feed, shared by every venue: its instruments, REST snapshots under the venue's
request-weight budget, the message router (``router.py``: what a sync result means, status
publishing, resync) and the connection supervisors (``connection.py``) that carry the streams.

Recovery policy (decided by ``errors.recovery_for``, carried out by ``router.Router.recover``):
- a gap or inconsistency resyncs *that instrument only*: status 2, fresh snapshot (REST) or a
  re-subscription (in-stream snapshot venues), replay of the buffered diffs, status 1;
- a dead, half-open or silent connection (no complete frame, not even a ping, for
  ``silence_timeout_s``) is aborted and replaced; reconnects back off exponentially with jitter,
  capped, forever; every instrument on it is announced with status 3 meanwhile;
- snapshot requests go through a per-feed request-weight budget and honour HTTP 429/418
  ``Retry-After``;
- before the venue's forced connection lifetime, or when it announces a shutdown, a second
  connection is opened and each instrument switches to it at a point where its update-id chain
  continues (make-before-break), so nothing is lost across the switch.
"""

import asyncio
import logging
import time

from hftfeed.codecs import wire
from hftfeed.errors import HttpStatusError
from hftfeed.pipeline.connection import Supervisor, backoff_delay_s
from hftfeed.pipeline.instruments import load_details
from hftfeed.pipeline.router import Instrument, Router
from hftfeed.transport.rest import HttpClient

log = logging.getLogger("hftfeed.feed")

RATE_LIMIT_DEFAULT_PAUSE_S = 60.0   # a 418/429 without a usable Retry-After pauses this long
SNAPSHOT_BYTES_PER_LEVEL = 96       # ["123456.12345678","123456.12345678"], with room to spare
SNAPSHOT_BODY_MARGIN_BYTES = 64 * 1024


class FeedStats(object):
    """Counters for the stats line and tests (plain ints: incremented on the hot path)."""

    def __init__(self):
        self.messages_in = 0
        self.book_updates = 0      # depth events applied to a live book
        self.levels_applied = 0    # price levels inside those events
        self.trades = 0
        self.quotes = 0
        self.bad_messages = 0      # malformed / absurd venue messages (dropped, counted)
        self.unknown_symbols = 0
        self.ignored_events = 0    # well-formed events we do not use (kline, acks, ...)
        self.gaps = 0
        self.resyncs = 0
        self.reconnects = 0
        self.connects = 0
        self.connect_failures = 0
        self.silent_disconnects = 0
        self.data_silent_disconnects = 0   # links with keepalives but no market data
        self.rollovers = 0
        self.snapshots = 0
        self.snapshot_errors = 0
        self.rate_limited = 0
        self.handler_errors = 0
        self.feed_crashes = 0
        self.venue_errors = 0
        self.app_pings = 0
        self.bad_ids = 0           # quotes/updates/snapshots with ids outside the stream
        self.resync_timeouts = 0   # resyncs started over after their deadline
        self.ack_timeouts = 0      # connections dropped for unacknowledged subscriptions
        self.instruments_loaded = 0    # instrument details (D) loaded from the venue's list
        self.instrument_errors = 0     # instrument lists that could not be loaded
        self.instruments_refused = 0   # details refused (a value that cannot be right)
        self.instruments_missing = 0   # configured symbols the venue's list does not name

    def as_dict(self):
        return dict(self.__dict__)

    def add(self, other):
        """Add ``other``'s counts to these (a daemon's totals over its feeds)."""
        mine = self.__dict__
        for key, value in other.__dict__.items():
            mine[key] = mine.get(key, 0) + value
        return self


class WeightBudget(object):
    """The venue's REST request-weight budget per minute (token bucket) plus Retry-After pauses."""

    def __init__(self, weight_per_min):
        self.capacity = float(weight_per_min)
        self.tokens = float(weight_per_min)
        self.rate_per_s = weight_per_min / 60.0
        self.updated = time.monotonic()
        self.paused_until = 0.0

    def pause(self, seconds):
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    async def acquire(self, weight):
        weight = min(float(weight), self.capacity)
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate_per_s)
            self.updated = now
            if now < self.paused_until:
                await asyncio.sleep(self.paused_until - now)
                continue
            if self.tokens >= weight:
                self.tokens -= weight
                return
            await asyncio.sleep((weight - self.tokens) / self.rate_per_s)


class Feed(object):
    """One configured feed: a venue adapter, its instruments and the supervisors carrying them."""

    def __init__(self, feed_cfg, venue_cls, publisher, stats, capacity_levels, ssl_context=None,
                 rcvbuf_bytes=None, flush_per_frame=True):
        self.cfg = feed_cfg
        self.publisher = publisher
        self.stats = stats
        self.venue = venue_cls([i.symbol for i in feed_cfg.instruments], feed_cfg.channels,
                               feed_cfg.depth_speed)
        self.venue_id = venue_cls.VENUE_ID
        self.ssl_context = ssl_context
        self.rcvbuf_bytes = rcvbuf_bytes
        self.capacity_levels = capacity_levels
        self.instruments = {}
        for inst_cfg in feed_cfg.instruments:
            self._new_instrument(inst_cfg)
        self.budget = WeightBudget(feed_cfg.rest_weight_per_min)
        self.http = None
        self.router = Router(self.venue, self.instruments, publisher, stats,
                             None if self.venue.rule.snapshot_in_stream else self.fetch_snapshot,
                             self.snapshot_retry_delay_s, resync_deadline_s(feed_cfg),
                             flush_per_frame=flush_per_frame)
        self.routes = self.venue.routes()
        self.supervisors = []
        self.tasks = []
        self._add_supervisors(list(self.instruments.values()))

    def _new_instrument(self, inst_cfg):
        symbol = self.venue.venue_symbol(inst_cfg.symbol)
        inst = Instrument(symbol, inst_cfg.instrument_id, self.venue_id, self.venue.rule,
                          self.capacity_levels, self.cfg.max_buffered_updates)
        self.instruments[symbol] = inst
        return inst

    def _add_supervisors(self, instruments):
        """Connections for ``instruments``: per route, chunks within the stream limit. Their
        tasks start at once when the feed is already running (a reload), else in start()."""
        for prefix, channels in self.routes:
            for chunk in self._chunks(channels, instruments):
                sup = Supervisor(self, len(self.supervisors), chunk, prefix, channels)
                self.supervisors.append(sup)
                if self.tasks:
                    self.tasks.append(asyncio.ensure_future(sup.run()))

    def _chunks(self, channels, instruments):
        """Split instruments so no connection carries more streams than the venue allows."""
        chunks, current, streams = [], [], 0
        limit = self.cfg.max_streams_per_connection
        for inst in instruments:
            n = len(self.venue.streams_for(inst.symbol, channels))
            if current and streams + n > limit:
                chunks.append(current)
                current, streams = [], 0
            current.append(inst)
            streams += n
        if current:
            chunks.append(current)
        return chunks

    def identity(self):
        """What must match for a reloaded feed entry to be this feed (else: a new feed)."""
        return feed_identity(self.cfg)

    def apply_symbols(self, new_cfg):
        """SIGHUP reload: add and remove instruments without touching the others.

        Removed instruments stop being routed at once (their streams leave the connection at
        its next reconnect or rollover) and are announced as disconnected; added ones get a
        connection of their own. Returns (added symbols, removed symbols)."""
        wanted = {self.venue.venue_symbol(i.symbol): i for i in new_cfg.instruments}
        removed = [inst for sym, inst in self.instruments.items() if sym not in wanted]
        now_ns = time.time_ns()
        for inst in removed:
            del self.instruments[inst.symbol]
            if inst.snapshot_task is not None:
                inst.snapshot_task.cancel()
            for sup in inst.supervisors:
                sup.remove_instrument(inst)
            inst.sync.disconnect()
            self.router.set_state(inst, wire.STATE_DISCONNECTED, now_ns)
        added = [self._new_instrument(inst_cfg) for sym, inst_cfg in wanted.items()
                 if sym not in self.instruments]
        self.venue.symbols = list(self.instruments)
        self.cfg.instruments = list(new_cfg.instruments)
        self._add_supervisors(added)
        for sup in [s for s in self.supervisors if not s.instruments]:
            self.supervisors.remove(sup)
            sup.stopping = True
            asyncio.ensure_future(sup.close_links())    # its connection carries nothing now
        self.publisher.flush()
        return [i.symbol for i in added], [i.symbol for i in removed]

    def instrument_defs(self):
        return [(i.venue_id, i.instrument_id, i.symbol) for i in self.instruments.values()]

    def start(self):
        if not self.venue.rule.snapshot_in_stream:
            self.http = HttpClient(self.cfg.rest_url, ssl_context=self.ssl_context,
                                   timeout_s=self.cfg.snapshot_timeout_s,
                                   max_body_bytes=snapshot_body_limit_bytes(
                                       self.cfg.snapshot_limit))
        self.tasks = [asyncio.ensure_future(s.run()) for s in self.supervisors]
        self.tasks.append(asyncio.ensure_future(load_details(self)))    # advisory, never waited on
        return self.tasks

    async def stop(self):
        for sup in self.supervisors:
            sup.stopping = True
        snapshots = [inst.snapshot_task for inst in self.instruments.values()
                     if inst.snapshot_task is not None and not inst.snapshot_task.done()]
        for task in snapshots:
            task.cancel()
        for sup in self.supervisors:
            await sup.close_links()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except asyncio.CancelledError:
                log.debug("supervisor task cancelled")
        # Let the cancelled snapshot loops finish here, so none is left pending when the loop
        # closes (the daemon's shutdown bounds this whole stop with its own deadline).
        for task in snapshots:
            try:
                await task
            except asyncio.CancelledError:
                log.debug("snapshot task cancelled")
            except Exception as exc:          # it failed before the cancel reached it
                log.warning("%s: a snapshot task had failed at stop: %s", self.venue.NAME,
                            type(exc).__name__)
        if self.http is not None:
            await self.http.close()

    @property
    def connected(self):
        return all(s.link is not None for s in self.supervisors)

    @property
    def has_depth(self):
        return "depth" in self.cfg.channels

    # -- snapshots (passed to the router) ---------------------------------------------------------

    def snapshot_retry_delay_s(self, attempt):
        return backoff_delay_s(attempt, self.cfg.reconnect_backoff_initial_s,
                               self.cfg.reconnect_backoff_max_s)

    async def fetch_snapshot(self, inst):
        """One parsed REST snapshot for ``inst`` under the request-weight budget, or None when
        the venue rate-limited the request (ask again: the budget then waits out the pause).

        A 418/429 is never ignored: it pauses every snapshot of this feed for the venue's
        Retry-After (capped by the HTTP codec; RATE_LIMIT_DEFAULT_PAUSE_S when absent or
        unusable). Other failures raise."""
        path, weight = self.venue.snapshot_request(inst.symbol, self.cfg.snapshot_limit)
        await self.budget.acquire(weight)
        try:
            response = await self.http.get(path)
        except HttpStatusError as exc:
            if exc.status not in (418, 429):
                raise
            self.stats.rate_limited += 1
            wait_s = exc.retry_after_s if exc.retry_after_s is not None \
                else RATE_LIMIT_DEFAULT_PAUSE_S
            self.budget.pause(wait_s)
            log.warning("%s %s: snapshot rate limited (HTTP %d); pausing snapshots %.1f s",
                        self.venue.NAME, inst.symbol, exc.status, wait_s)
            return None
        return self.venue.parse_snapshot(inst.symbol, response.body)


def resync_deadline_s(feed_cfg):
    """How long an instrument may wait for a usable book after its resync began: three
    snapshot timeouts plus the longest backoff (a slow venue gets several tries), at least 2 s."""
    return max(2.0, 3 * feed_cfg.snapshot_timeout_s + feed_cfg.reconnect_backoff_max_s)


def snapshot_body_limit_bytes(snapshot_limit):
    """The largest REST snapshot body accepted: what ``snapshot_limit`` levels a side can take
    as JSON (SNAPSHOT_BYTES_PER_LEVEL each) plus a margin. A venue answering with far more than
    was asked for (a 58 MB, 900k-level book) is refused while the body streams in, before any
    parsing could block the event loop and the other feeds."""
    return 2 * snapshot_limit * SNAPSHOT_BYTES_PER_LEVEL + SNAPSHOT_BODY_MARGIN_BYTES


def feed_identity(feed_cfg):
    """Feeds are matched across a reload by venue, endpoints and channels; everything else
    about a feed (limits, timeouts) only changes with a restart."""
    return (feed_cfg.venue, feed_cfg.ws_url, feed_cfg.rest_url, feed_cfg.channels,
            feed_cfg.depth_speed)


