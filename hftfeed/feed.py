"""Connection supervision, shared by every venue: connect, subscribe, snapshot, resync, reconnect.

Data flow for one inbound WebSocket message (the hot path, inline in ``data_received``):
``ws.py`` -> :meth:`Supervisor.handle` -> venue ``parse`` -> :class:`~hftfeed.sync.InstrumentSync`
-> :class:`~hftfeed.publisher.Publisher` (packed in place) -> ``flush`` (one ``sendto``).

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
import logging
import random
import time

from . import sync as sync_mod
from . import ws, wire
from .book import Book
from .errors import (EXIT, RETRY, ConfigError, HftfeedError, HttpStatusError, VenueError,
                     recovery_for)
from .rest import HttpClient
from .updates import (CTRL_ERROR, CTRL_SERVER_SHUTDOWN, Control, DepthUpdate, Quote, Trade)

log = logging.getLogger("hftfeed.feed")

APPLIED = sync_mod.APPLIED
SYNCED = sync_mod.SYNCED
GAP = sync_mod.GAP
BUFFERED = sync_mod.BUFFERED


def backoff_delay_s(attempt, initial_s, max_s, rng=random):
    """Capped exponential backoff with "equal jitter": half fixed, half random, so a fleet of
    daemons reconnecting after a venue outage does not arrive in lock-step."""
    base = min(max_s, initial_s * (2 ** min(attempt, 30)))
    return base / 2.0 + rng.random() * base / 2.0


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

    def as_dict(self):
        return dict(self.__dict__)


class Instrument(object):
    """One configured instrument: its book, sync state and where its data currently comes from."""

    __slots__ = ("symbol", "instrument_id", "venue_id", "sync", "book", "link", "state",
                 "last_trade_id", "last_quote_id", "snapshot_task", "supervisor")

    def __init__(self, symbol, instrument_id, venue_id, rule, capacity_levels, max_buffered):
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.venue_id = venue_id
        self.book = Book(capacity_levels)
        self.sync = sync_mod.InstrumentSync(rule, self.book, max_buffered)
        self.link = None
        self.state = 0                 # last state published in an S message (0 = none yet)
        self.last_trade_id = -1
        self.last_quote_id = -1
        self.snapshot_task = None
        self.supervisor = None


class Link(object):
    """One WebSocket connection of a supervisor (two exist during a make-before-break)."""

    __slots__ = ("supervisor", "client", "number", "opened_ns", "retiring")

    def __init__(self, supervisor, number):
        self.supervisor = supervisor
        self.client = None
        self.number = number
        self.opened_ns = time.monotonic_ns()
        self.retiring = False

    def on_message(self, text, recv_ns):
        self.supervisor.handle(self, text, recv_ns)


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
        self.instruments = {}
        for inst_cfg in feed_cfg.instruments:
            symbol = self.venue.venue_symbol(inst_cfg.symbol)
            self.instruments[symbol] = Instrument(symbol, inst_cfg.instrument_id, self.venue_id,
                                                  self.venue.rule, capacity_levels,
                                                  feed_cfg.max_buffered_updates)
        self.capacity_levels = capacity_levels
        self.budget = WeightBudget(feed_cfg.rest_weight_per_min)
        self.http = None
        self.supervisors = [Supervisor(self, n, chunk) for n, chunk in enumerate(self._chunks())]
        self.tasks = []

    def _chunks(self, instruments=None):
        """Split instruments so no connection carries more streams than the venue allows."""
        chunks, current, streams = [], [], 0
        limit = self.cfg.max_streams_per_connection
        for inst in (self.instruments.values() if instruments is None else instruments):
            n = len(self.venue.streams_for(inst.symbol))
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

    def apply_symbols(self, new_cfg, loop_started=True):
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
            if inst.supervisor is not None:
                inst.supervisor.remove_instrument(inst)
            inst.sync.disconnect()
            self.set_state(inst, wire.STATE_DISCONNECTED, now_ns)
        added = []
        for sym, inst_cfg in wanted.items():
            if sym not in self.instruments:
                inst = Instrument(sym, inst_cfg.instrument_id, self.venue_id, self.venue.rule,
                                  self.capacity_levels, self.cfg.max_buffered_updates)
                self.instruments[sym] = inst
                added.append(inst)
        self.venue.symbols = list(self.instruments)
        self.cfg.instruments = list(new_cfg.instruments)
        for chunk in self._chunks(added):
            sup = Supervisor(self, len(self.supervisors), chunk)
            self.supervisors.append(sup)
            if loop_started:
                self.tasks.append(asyncio.ensure_future(sup.run()))
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

    # -- shared publishing helpers ----------------------------------------------------------------

    def set_state(self, inst, state, now_ns=None):
        """Publish an S message when the instrument's state changes (and only then)."""
        if inst.state == state:
            return
        inst.state = state
        self.publisher.status(inst.venue_id, inst.instrument_id, now_ns or time.time_ns(), state)

    def publish_synced(self, inst, exch_ns, recv_ns):
        """Live again: status 1, then the whole top-N flagged as the first book after a sync."""
        self.set_state(inst, wire.STATE_LIVE, recv_ns)
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
        link = inst.link
        if link is not None and link.client is not None:
            for text in self.venue.resubscribe_messages(inst.symbol):
                link.client.send_text(text)

    def request_snapshot(self, inst):
        """REST venues: fetch a snapshot for ``inst`` unless one is already on its way."""
        if inst.snapshot_task is None or inst.snapshot_task.done():
            inst.snapshot_task = asyncio.ensure_future(self._snapshot_loop(inst))

    async def _snapshot_loop(self, inst):
        path, weight = self.venue.snapshot_request(inst.symbol, self.cfg.snapshot_limit)
        attempt = 0
        while inst.sync.state == sync_mod.RESYNCING and inst.sync.book.update_id == 0:
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
                log.info("%s %s: live from snapshot %d", self.venue.NAME, inst.symbol, snap.last_id)
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


class Supervisor(object):
    """Keeps one WebSocket connection (a chunk of instruments) alive and feeds its messages on."""

    def __init__(self, feed, number, instruments):
        self.feed = feed
        self.number = number
        self.instruments = list(instruments)
        for inst in self.instruments:
            inst.supervisor = self
        self.streams = []
        self.url = ""
        self._build_url()
        self.link = None
        self.links = []
        self.link_counter = 0
        self.stopping = False
        self.wakeup = asyncio.Event()
        self.rollover_requested = False
        self.name = "%s#%d" % (feed.venue.NAME, number)
        # hot-path locals
        self._parse = feed.venue.parse
        self._by_symbol = feed.instruments
        self._stats = feed.stats
        self._publisher = feed.publisher
        self._monotonic_trades = getattr(feed.venue, "MONOTONIC_TRADE_IDS", True)

    def _build_url(self):
        """Streams and URL from the current instruments (re-read on every connect, so a reload
        that removed an instrument takes effect at the next reconnect or rollover)."""
        venue = self.feed.venue
        self.streams = [s for inst in self.instruments for s in venue.streams_for(inst.symbol)]
        self.url = self.feed.cfg.ws_url + venue.connection_path(self.streams)

    def remove_instrument(self, inst):
        if inst in self.instruments:
            self.instruments.remove(inst)
        self._build_url()

    # -- the hot path ---------------------------------------------------------------------------

    def handle(self, link, text, recv_ns):
        """One venue message: parse, sync, publish, flush. Never raises into the transport."""
        stats = self._stats
        stats.messages_in += 1
        try:
            events = self._parse(text)
        except VenueError as exc:
            stats.bad_messages += 1
            if stats.bad_messages <= 10 or stats.bad_messages % 1000 == 0:
                log.warning("%s: dropped a bad message (%d so far): %s", self.name,
                            stats.bad_messages, exc)
            return
        try:
            for event in events:
                kind = type(event)
                if kind is DepthUpdate:
                    self._on_depth(link, event, recv_ns)
                elif kind is Trade:
                    self._on_trade(link, event, recv_ns)
                elif kind is Quote:
                    self._on_quote(link, event, recv_ns)
                else:
                    self._on_control(link, event)
        except HftfeedError as exc:
            # e.g. a BookError from absurd levels: that instrument's book cannot be trusted
            stats.handler_errors += 1
            log.warning("%s: %s while handling a message (%s)", self.name, exc,
                        recovery_for(exc))
            self._resync_symbol_of(events, recv_ns)
        except Exception:   # noqa: BLE001 -- a bug: log the traceback, distrust the book, go on
            stats.handler_errors += 1
            log.exception("%s: unexpected error while handling a message; resyncing its "
                          "instrument", self.name)
            self._resync_symbol_of(events, recv_ns)
        self._publisher.flush()

    def _on_depth(self, link, upd, recv_ns):
        inst = self._by_symbol.get(upd.symbol)
        if inst is None:
            self._stats.unknown_symbols += 1
            return
        if link is not inst.link and not self._adopt_from(inst, link, upd):
            return
        result = inst.sync.on_update(upd)
        if result == APPLIED:
            self._stats.book_updates += 1
            self._stats.levels_applied += (len(upd.bids) + len(upd.asks)) >> 1
            self._publisher.book(inst.venue_id, inst.instrument_id, 0, upd.exch_ns, recv_ns,
                                 inst.book)
        elif result == SYNCED:
            self._stats.book_updates += 1
            self.feed.publish_synced(inst, upd.exch_ns, recv_ns)
        elif result == BUFFERED:
            if not self.feed.venue.rule.snapshot_in_stream:
                self.feed.request_snapshot(inst)
        elif result == GAP:
            self.feed.on_gap(inst, recv_ns)

    def _adopt_from(self, inst, link, upd):
        """A diff from a link that is not the instrument's current source (make-before-break).

        Both connections carry the same stream, so the newer link takes over as soon as it is
        proven level with the book: it delivers the diff the book ended on (u == book id) or the
        one that continues it. Until then its diffs are ignored; an older link's diff is applied
        only if it continues the book. Either way the overlap never causes a gap."""
        if link.retiring or inst.link is None:
            return False
        sync = inst.sync
        if sync.state != sync_mod.LIVE:
            if link.number > inst.link.number:
                inst.link = link    # not live anyway: take the new connection's stream now
                sync.start_resync()
                return True
            return False
        book_id = inst.book.update_id
        continues = sync.rule.continues(book_id, upd) and not sync.rule.stale_live(book_id, upd)
        if link.number > inst.link.number and (continues or upd.last_id == book_id):
            inst.link = link
        return continues

    def _on_trade(self, link, trade, recv_ns):
        inst = self._by_symbol.get(trade.symbol)
        if inst is None:
            self._stats.unknown_symbols += 1
            return
        if self._monotonic_trades:
            if trade.trade_id <= inst.last_trade_id:   # duplicate across overlapping connections
                return
        elif link is not inst.link:
            return
        inst.last_trade_id = trade.trade_id
        self._stats.trades += 1
        self._publisher.trade(inst.venue_id, inst.instrument_id, trade.exch_ns, recv_ns,
                              trade.trade_id, trade.price, trade.qty, trade.side)

    def _on_quote(self, link, quote, recv_ns):
        inst = self._by_symbol.get(quote.symbol)
        if inst is None:
            self._stats.unknown_symbols += 1
            return
        if quote.update_id < inst.last_quote_id or (link is not inst.link
                                                    and quote.update_id == inst.last_quote_id):
            return
        inst.last_quote_id = quote.update_id
        self._stats.quotes += 1
        self._publisher.quote(inst.venue_id, inst.instrument_id, quote.exch_ns, recv_ns,
                              quote.update_id, quote.bid_px, quote.bid_qty, quote.ask_px,
                              quote.ask_qty)

    def _on_control(self, link, event):
        if type(event) is not Control:
            return
        if event.kind == CTRL_SERVER_SHUTDOWN:
            if link.retiring or link is not self.link:
                return      # the connection being replaced anyway
            log.warning("%s: venue announced a server shutdown; reconnecting (make-before-break)",
                        self.name)
            self.request_rollover()
        elif event.kind == CTRL_ERROR:
            log.warning("%s: venue error: %s", self.name, event.detail)
        else:
            self._stats.ignored_events += 1

    def _resync_symbol_of(self, events, now_ns):
        for event in events:
            inst = self._by_symbol.get(getattr(event, "symbol", None))
            if inst is not None and inst.sync.state != sync_mod.DISCONNECTED:
                inst.sync.start_resync()
                inst.sync.last_gap = "book error"
                self.feed.on_gap(inst, now_ns)

    # -- connection lifecycle -------------------------------------------------------------------

    def request_rollover(self):
        self.rollover_requested = True
        self.wakeup.set()

    async def run(self):
        """Run the connection loop; a crash inside it (a bug, not a venue fault) is logged with
        its traceback and the loop starts again after a backoff: it never dies silently."""
        crashes = 0
        while not self.stopping:
            try:
                await self._connection_loop()
            except asyncio.CancelledError:
                raise
            except Exception:   # noqa: BLE001 -- last line of defence, logged with traceback
                crashes += 1
                self.feed.stats.feed_crashes += 1
                log.exception("%s: feed task crashed (%d so far); restarting it", self.name,
                              crashes)
                for link in list(self.links):
                    link.client.abort()
                    self._forget(link)
                if self.link is not None:
                    self._disconnected(self.link)
                await self._sleep(backoff_delay_s(crashes, self.feed.cfg.reconnect_backoff_initial_s,
                                                  self.feed.cfg.reconnect_backoff_max_s))

    async def _connection_loop(self):
        """Connect, serve, and reconnect forever (until stopped)."""
        attempt = 0
        while not self.stopping:
            link = await self._open_link(attempt)
            if link is None:
                attempt += 1
                await self._sleep(backoff_delay_s(attempt, self.feed.cfg.reconnect_backoff_initial_s,
                                                  self.feed.cfg.reconnect_backoff_max_s))
                continue
            attempt = 0
            self._adopt_all(link)
            await self._serve(link)
            if self.stopping:
                break
            self._disconnected(link)
            await self._sleep(backoff_delay_s(0, self.feed.cfg.reconnect_backoff_initial_s,
                                              self.feed.cfg.reconnect_backoff_max_s))

    async def _sleep(self, seconds):
        if not self.stopping:
            await asyncio.sleep(seconds)

    async def _open_link(self, attempt):
        cfg = self.feed.cfg
        self._build_url()
        self.link_counter += 1
        link = Link(self, self.link_counter)
        try:
            link.client = await ws.connect(
                self.url, link.on_message, ssl_context=self.feed.ssl_context,
                connect_timeout_s=cfg.connect_timeout_s, max_message_bytes=cfg.max_message_bytes,
                rcvbuf_bytes=self.feed.rcvbuf_bytes, max_out_msgs_per_s=cfg.max_out_msgs_per_s)
        except (HftfeedError, OSError) as exc:
            self.feed.stats.connect_failures += 1
            action = recovery_for(exc)
            log.warning("%s: connect attempt %d to %s failed: %s: %s (%s)", self.name, attempt + 1,
                        _short(self.url), type(exc).__name__, exc, action)
            if action == EXIT and isinstance(exc, ConfigError):
                raise
            return None
        self.feed.stats.connects += 1
        for text in self.feed.venue.subscribe_messages(self.streams):
            link.client.send_text(text)
        self.links.append(link)
        log.info("%s: connected to %s (%d streams)", self.name, _short(self.url), len(self.streams))
        return link

    def _adopt_all(self, link):
        """A fresh connection after a disconnect: every instrument resyncs from it."""
        self.link = link
        now_ns = time.time_ns()
        for inst in self.instruments:
            inst.link = link
            inst.sync.start_resync()
            self.feed.set_state(inst, wire.STATE_RESYNC, now_ns)
        self._publisher.flush()

    def _disconnected(self, link):
        self.feed.stats.reconnects += 1
        now_ns = time.time_ns()
        for inst in self.instruments:
            if inst.link is link or inst.link is None:
                inst.sync.disconnect()
                inst.link = None
                self.feed.set_state(inst, wire.STATE_DISCONNECTED, now_ns)
        self._publisher.flush()
        if self.link is link:
            self.link = None

    async def _serve(self, link):
        """Watch ``link`` until it dies; replace it proactively before the venue's lifetime."""
        cfg = self.feed.cfg
        silence_ns = int(cfg.silence_timeout_s * 1e9)
        lifetime_ns = int(cfg.connection_lifetime_s * 1e9)
        while not self.stopping:
            self.wakeup.clear()
            closed = link.client.closed
            waiter = asyncio.ensure_future(self.wakeup.wait())
            try:
                await asyncio.wait([closed, waiter], timeout=1.0,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
            if closed.done():
                self._log_close(link)
                return
            now = time.time_ns()
            if now - link.client.last_recv_ns > silence_ns:
                self.feed.stats.silent_disconnects += 1
                log.warning("%s: nothing received for %.1f s (half-open or silent); reconnecting",
                            self.name, (now - link.client.last_recv_ns) / 1e9)
                link.client.abort()
                self._forget(link)
                return
            if self.rollover_requested or time.monotonic_ns() - link.opened_ns > lifetime_ns:
                link = await self._rollover(link)

    async def _rollover(self, old):
        """Make-before-break: open a new connection, move instruments over, close the old one."""
        self.rollover_requested = False
        new = await self._open_link(0)
        if new is None:
            return old      # keep the old one; lifetime check retries on the next tick
        self.feed.stats.rollovers += 1
        self.link = new
        deadline = time.monotonic() + self.feed.cfg.overlap_s
        while time.monotonic() < deadline and not self.stopping:
            if all(inst.link is new for inst in self.instruments):
                break
            if old.client.closed.done() or new.client.closed.done():
                break
            await asyncio.sleep(0.05)
        old.retiring = True
        now_ns = time.time_ns()
        moved = 0
        for inst in self.instruments:
            if inst.link is new:
                moved += 1
            else:   # quiet instrument, or no chaining point seen: take the new stream as is
                inst.link = new
                if inst.sync.state != sync_mod.LIVE:
                    inst.sync.start_resync()
                    self.feed.set_state(inst, wire.STATE_RESYNC, now_ns)
        self._publisher.flush()
        log.info("%s: rolled over to a new connection; %d/%d instruments switched seamlessly",
                 self.name, moved, len(self.instruments))
        await self._close_link(old)
        return new

    def _log_close(self, link):
        exc = link.client.closed.exception() if not link.client.closed.cancelled() else None
        if exc is not None:
            log.warning("%s: connection lost: %s: %s; reconnecting", self.name,
                        type(exc).__name__, exc)
        else:
            code, reason = link.client.closed.result()
            log.warning("%s: venue closed the connection (%s %s); reconnecting", self.name, code,
                        reason)
        self._forget(link)

    def _forget(self, link):
        if link in self.links:
            self.links.remove(link)

    async def _close_link(self, link):
        self._forget(link)
        try:
            await link.client.close(1000, "", timeout_s=2.0)
        except (HftfeedError, OSError) as exc:
            log.info("%s: closing an old connection: %s", self.name, exc)
            link.client.abort()

    async def close_links(self):
        for link in list(self.links):
            await self._close_link(link)


def feed_identity(feed_cfg):
    """Feeds are matched across a reload by venue, endpoints and channels; everything else
    about a feed (limits, timeouts) only changes with a restart."""
    return (feed_cfg.venue, feed_cfg.ws_url, feed_cfg.rest_url, feed_cfg.channels,
            feed_cfg.depth_speed)


def _short(url, limit=120):
    return url if len(url) <= limit else url[:limit] + "..."
