"""A configured feed, shared by every venue: instruments, their books and sync state, REST
snapshots under the venue's request-weight budget, status publishing, and the connection
supervisors (``connection.py``) that carry the instruments' streams.

Recovery policy (decided by ``errors.recovery_for`` and the sync result codes):
- a gap or inconsistency resyncs *that instrument only*: status 2, fresh snapshot (REST) or a
  re-subscription (in-stream snapshot venues), replay of the buffered diffs, status 1;
- a dead, half-open or silent connection (nothing received, not even a ping, for
  ``silence_timeout_s``) is aborted and replaced; reconnects back off exponentially with jitter,
  capped, forever; every instrument on it is announced with status 3 meanwhile;
- snapshot requests go through a per-feed request-weight budget and honour HTTP 429/418
  ``Retry-After``;
- before the venue's forced connection lifetime, or when it announces a shutdown, a second
  connection is opened and each instrument switches to it at a point where its update-id chain
  continues (make-before-break), so nothing is lost across the switch.
"""

import asyncio
import collections
import logging
import time

from hftfeed.core import sync as sync_mod
from hftfeed.codecs import wire
from hftfeed.core.book import Book
from hftfeed.pipeline.connection import Supervisor, backoff_delay_s
from hftfeed.errors import HftfeedError, HttpStatusError
from hftfeed.transport.rest import HttpClient

log = logging.getLogger("hftfeed.feed")

SYNCED = sync_mod.SYNCED
GAP = sync_mod.GAP
RECENT_TRADES = 512      # per instrument; far more than two connections can be apart
RESUBSCRIBE_MIN_S = 1.0  # in-stream snapshot venues: spacing of book re-subscriptions...
RESUBSCRIBE_MAX_S = 60.0  # ...doubling while gaps keep coming, up to this


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
        self.rollovers = 0
        self.snapshots = 0
        self.snapshot_errors = 0
        self.rate_limited = 0
        self.handler_errors = 0
        self.feed_crashes = 0
        self.venue_errors = 0
        self.app_pings = 0

    def as_dict(self):
        return dict(self.__dict__)


class Instrument(object):
    """One configured instrument: its book, sync state and where its data currently comes from."""

    __slots__ = ("symbol", "instrument_id", "venue_id", "sync", "book", "link", "state",
                 "recent_trades", "recent_trade_order", "last_quote_id", "snapshot_task",
                 "supervisors", "resub_allowed_at", "resub_interval_s")

    def __init__(self, symbol, instrument_id, venue_id, rule, capacity_levels, max_buffered):
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.venue_id = venue_id
        self.book = Book(capacity_levels)
        self.sync = sync_mod.InstrumentSync(rule, self.book, max_buffered)
        self.link = None
        self.state = 0                 # last state published in an S message (0 = none yet)
        self.recent_trades = set()     # trade ids seen lately: duplicates across overlapping
        self.recent_trade_order = collections.deque()   # connections are dropped, any id type
        self.last_quote_id = -1
        self.snapshot_task = None
        self.supervisors = []
        self.resub_allowed_at = 0.0
        self.resub_interval_s = RESUBSCRIBE_MIN_S

    def trade_is_new(self, trade_id):
        """True once per trade id (bounded memory: the last RECENT_TRADES ids)."""
        recent = self.recent_trades
        if trade_id in recent:
            return False
        recent.add(trade_id)
        order = self.recent_trade_order
        order.append(trade_id)
        if len(order) > RECENT_TRADES:
            recent.discard(order.popleft())
        return True


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
                 rcvbuf_bytes=None):
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
            self.set_state(inst, wire.STATE_DISCONNECTED, now_ns)
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
                                   timeout_s=self.cfg.snapshot_timeout_s)
        self.tasks = [asyncio.ensure_future(s.run()) for s in self.supervisors]
        return self.tasks

    async def stop(self):
        for sup in self.supervisors:
            sup.stopping = True
        for inst in self.instruments.values():
            if inst.snapshot_task is not None:
                inst.snapshot_task.cancel()
        for sup in self.supervisors:
            await sup.close_links()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            try:
                await task
            except asyncio.CancelledError:
                log.debug("supervisor task cancelled")
        if self.http is not None:
            await self.http.close()

    @property
    def connected(self):
        return all(s.link is not None for s in self.supervisors)

    @property
    def has_depth(self):
        return "depth" in self.cfg.channels

    # -- shared publishing helpers ----------------------------------------------------------------

    def set_state(self, inst, state, now_ns=None):
        """Publish an S message when the instrument's state changes (and only then)."""
        if inst.state == state:
            return
        inst.state = state
        self.publisher.status(inst.venue_id, inst.instrument_id, now_ns or time.time_ns(), state)

    def publish_synced(self, inst, exch_ns, recv_ns):
        """Live again: status 1, then the whole top-N flagged as the first book after a sync.
        Logged here (not per path) so every way back to live leaves one line: a snapshot that
        syncs at once, or a buffered diff that bridges it later."""
        self.set_state(inst, wire.STATE_LIVE, recv_ns)
        log.info("%s %s: live (book at update id %d)", self.venue.NAME, inst.symbol,
                 inst.book.update_id)
        self.publisher.book(inst.venue_id, inst.instrument_id, wire.BOOK_FLAG_SNAPSHOT, exch_ns,
                            recv_ns, inst.book)

    def on_gap(self, inst, now_ns):
        self.stats.gaps += 1
        self.stats.resyncs += 1
        log.warning("%s %s: %s; resynchronising this instrument", self.venue.NAME, inst.symbol,
                    inst.sync.last_gap)
        self.set_state(inst, wire.STATE_RESYNC, now_ns)
        if self.venue.rule.snapshot_in_stream:
            self.request_stream_snapshot(inst)
        # REST venues: the next buffered diff triggers the snapshot (Binance: buffer first)

    def request_stream_snapshot(self, inst):
        """In-stream snapshot venues: re-subscribe the book (the venue answers with a fresh
        snapshot), at most once per instrument at a time and with a growing interval when gaps
        repeat, because venues cap subscription requests (OKX counts them per hour)."""
        if inst.snapshot_task is not None and not inst.snapshot_task.done():
            return
        delay_s = max(0.0, inst.resub_allowed_at - time.monotonic())
        inst.snapshot_task = asyncio.ensure_future(self._resubscribe(inst, delay_s))

    async def _resubscribe(self, inst, delay_s):
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        link = inst.link
        if inst.sync.state != sync_mod.RESYNCING or link is None or link.client is None:
            return
        for text in self.venue.resubscribe_messages(inst.symbol):
            link.client.send_text(text)
        now = time.monotonic()
        repeated = now - inst.resub_allowed_at < 10 * inst.resub_interval_s
        inst.resub_interval_s = min(RESUBSCRIBE_MAX_S, inst.resub_interval_s * 2) if repeated \
            else RESUBSCRIBE_MIN_S
        inst.resub_allowed_at = now + inst.resub_interval_s

    def request_snapshot(self, inst):
        """REST venues: fetch a snapshot for ``inst`` unless one is already on its way."""
        if inst.snapshot_task is None or inst.snapshot_task.done():
            inst.snapshot_task = asyncio.ensure_future(self._snapshot_loop(inst))

    async def _snapshot_loop(self, inst):
        path, weight = self.venue.snapshot_request(inst.symbol, self.cfg.snapshot_limit)
        attempt = 0
        while inst.sync.state == sync_mod.RESYNCING and not inst.sync.loaded:
            await self.budget.acquire(weight)
            try:
                response = await self.http.get(path)
                snap = self.venue.parse_snapshot(inst.symbol, response.body)
            except HftfeedError as exc:
                attempt += 1
                delay_s = self._snapshot_error(inst, exc, attempt)
                await asyncio.sleep(delay_s)
                continue
            self.stats.snapshots += 1
            result = inst.sync.on_snapshot(snap)
            now_ns = time.time_ns()
            if result == SYNCED:
                self.publish_synced(inst, 0, now_ns)
                self.publisher.flush()
                return
            if result == sync_mod.SNAPSHOT_TOO_OLD:
                log.info("%s %s: snapshot %d older than the first buffered diff; fetching again",
                         self.venue.NAME, inst.symbol, snap.last_id)
                await asyncio.sleep(0.05)
                continue
            if result == GAP:
                self.stats.gaps += 1
                log.warning("%s %s: %s; fetching a new snapshot", self.venue.NAME, inst.symbol,
                            inst.sync.last_gap)
            return   # WAITING_BRIDGE: the next diff bridges; GAP/IGNORED: the next buffer retries

    def _snapshot_error(self, inst, exc, attempt):
        self.stats.snapshot_errors += 1
        delay_s = backoff_delay_s(attempt, self.cfg.reconnect_backoff_initial_s,
                                  self.cfg.reconnect_backoff_max_s)
        if isinstance(exc, HttpStatusError) and exc.status in (418, 429):
            self.stats.rate_limited += 1
            wait_s = exc.retry_after_s if exc.retry_after_s is not None else 60.0
            self.budget.pause(wait_s)
            delay_s = 0.0
            log.warning("%s %s: snapshot rate limited (HTTP %d); pausing snapshots %.1f s",
                        self.venue.NAME, inst.symbol, exc.status, wait_s)
        else:
            log.warning("%s %s: snapshot failed (%s: %s); retry %d in %.2f s", self.venue.NAME,
                        inst.symbol, type(exc).__name__, exc, attempt, delay_s)
        return delay_s


def feed_identity(feed_cfg):
    """Feeds are matched across a reload by venue, endpoints and channels; everything else
    about a feed (limits, timeouts) only changes with a restart."""
    return (feed_cfg.venue, feed_cfg.ws_url, feed_cfg.rest_url, feed_cfg.channels,
            feed_cfg.depth_speed)


