"""The message router: the one owner of what a sync result means for the pipeline.

For one feed it holds the instruments, turns every venue message into sync results, and acts on
them: publish a book, publish status (``S`` messages), resynchronise one instrument after a gap,
fetch a snapshot (the fetching itself is passed in: REST under the venue's budget, or an
in-stream re-subscription). The connection supervisors (``connection.py``) keep only the
connection lifecycle and hand every message here.

Recovery is decided by :func:`hftfeed.errors.recovery_for` and nowhere else; :meth:`Router.recover`
carries its answer out:
- DROP: count the message as bad, log (rate limited), keep going;
- RESYNC: this instrument only: status 2, fresh snapshot or re-subscription, replay, status 1;
- RECONNECT: the connection is unusable: abort it (the supervisor reconnects, every instrument
  on it resyncs);
- RETRY: a request (REST snapshot) failed: try again after a backoff;
- EXIT: configuration or programming error: raise (the daemon stops with a clear message).
A gap reported by the sync engine becomes a :class:`~hftfeed.errors.SyncError` and goes through
the same table.
"""

import asyncio
import collections
import logging
import time

from hftfeed.codecs import wire
from hftfeed.core import sync as sync_mod
from hftfeed.core.book import Book
from hftfeed.core.updates import ConnSequence, Control, DepthUpdate, Quote, Trade
from hftfeed.errors import (DROP, EXIT, RECONNECT, RESYNC, HftfeedError, SyncError, VenueError,
                            escape_text, recovery_for)

log = logging.getLogger("hftfeed.router")

APPLIED = sync_mod.APPLIED
SYNCED = sync_mod.SYNCED
GAP = sync_mod.GAP
BUFFERED = sync_mod.BUFFERED
SNAPSHOT_TOO_OLD = sync_mod.SNAPSHOT_TOO_OLD

RECENT_TRADES = 512      # per instrument; far more than two connections can be apart
RESUBSCRIBE_MIN_S = 1.0  # in-stream snapshot venues: spacing of book re-subscriptions...
RESUBSCRIBE_MAX_S = 60.0  # ...doubling while gaps keep coming, up to this
BAD_MESSAGE_LOG_FIRST = 10    # log the first bad messages, then one in BAD_MESSAGE_LOG_EVERY
BAD_MESSAGE_LOG_EVERY = 1000
# Quote (bookTicker) ids only grow on a connection. One absurd id must not silence the quotes
# that follow: ids above the sync engine's MAX_SANE_ID, or jumping further than
# MAX_QUOTE_ID_JUMP ahead of the last one, are bad data; and when QUOTE_REGRESS_LIMIT quotes in
# a row are "older" than the last accepted one, the stream is followed from where it is.
MAX_QUOTE_ID_JUMP = 2 ** 32
# No venue message we use comes near this (the largest real ones, OKX 400-level snapshots, are
# ~25 kB); a bigger one is dropped before parsing, because parsing a many-MB book in Python
# would stall every feed on this event loop (and a SIGTERM) for seconds.
MAX_PARSE_CHARS = 2 ** 20
QUOTE_REGRESS_LIMIT = 20


class Instrument(object):
    """One configured instrument: its book, sync state and where its data currently comes from."""

    __slots__ = ("symbol", "instrument_id", "venue_id", "sync", "book", "link", "state",
                 "recent_trades", "recent_trade_order", "last_quote_id", "snapshot_task",
                 "supervisors", "resub_allowed_at", "resub_interval_s", "resync_since",
                 "quote_regress", "quote_link")

    def __init__(self, symbol, instrument_id, venue_id, rule, capacity_levels, max_buffered,
                 max_buffered_bytes=None, buffer_pool=None):
        self.symbol = symbol
        self.instrument_id = instrument_id
        self.venue_id = venue_id
        self.book = Book(capacity_levels)
        self.sync = sync_mod.InstrumentSync(rule, self.book, max_buffered, max_buffered_bytes,
                                            buffer_pool)
        self.link = None
        self.state = 0                 # last state published in an S message (0 = none yet)
        self.recent_trades = set()     # trade ids seen lately: duplicates across overlapping
        self.recent_trade_order = collections.deque()   # connections are dropped, any id type
        self.last_quote_id = -1
        self.snapshot_task = None
        self.supervisors = []
        self.resub_allowed_at = 0.0
        self.resub_interval_s = RESUBSCRIBE_MIN_S
        self.resync_since = 0.0        # monotonic time the current resync began (0 = not waiting)
        self.quote_regress = 0         # quotes in a row with an id below the last accepted one
        self.quote_link = None         # the link whose quotes are published, where quote ids
        #                                cannot order two connections (see Router._quote_from)

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


class Router(object):
    """Routes one feed's venue messages to its instruments and acts on the sync results.

    ``fetch_snapshot(inst)`` is a coroutine returning a parsed REST snapshot, None when the venue
    rate-limited the request (ask again), or raising an :class:`~hftfeed.errors.HftfeedError`;
    it is None itself for venues whose snapshots come in-stream.
    ``retry_delay_s(attempt)`` gives the backoff before the next snapshot attempt.
    ``resync_deadline_s``: an instrument not live this long after its resync began (snapshot
    never usable, bridge never seen, re-subscription never answered) starts the resync over."""

    def __init__(self, venue, instruments, publisher, stats, fetch_snapshot, retry_delay_s,
                 resync_deadline_s=60.0, flush_per_frame=True):
        self.venue = venue
        self.instruments = instruments          # venue symbol -> Instrument (shared with Feed)
        self.publisher = publisher
        self.stats = stats
        self.fetch_snapshot = fetch_snapshot
        self.retry_delay_s = retry_delay_s
        self.resync_deadline_s = resync_deadline_s
        self.in_stream_snapshots = venue.rule.snapshot_in_stream
        # quote ids are the venue's ids: per connection where its book ids are (_quote_from)
        self.quote_ids_span_links = getattr(venue.rule, "ids_span_links", True)
        self._parse = venue.parse
        # a venue whose only snapshot is one big in-stream message (Coinbase level2) says so
        self.max_parse_chars = getattr(venue, "MAX_MESSAGE_CHARS", None) or MAX_PARSE_CHARS
        # publisher.flush "frame": one datagram per inbound frame (PROTOCOL.md); "read": per
        # socket read (the connection flushes after the read); from cfg.publisher.flush_per_frame
        self.flush_per_frame = flush_per_frame
        self.trace = None    # runtime.trace.Trace when tracing (it wraps handle and _parse)

    # -- the hot path ---------------------------------------------------------------------------

    def handle(self, link, text, recv_ns):
        """One venue message: parse, sync, publish, flush. Never raises into the transport."""
        stats = self.stats
        stats.messages_in += 1
        try:
            if type(text) is not str:   # a binary frame: venues speak JSON text, so it must be
                text = _utf8(text)      # UTF-8 (every adapter then sees str, on every interpreter)
            if len(text) > self.max_parse_chars:
                raise VenueError("message of %d characters over the %d-character maximum; "
                                 "not parsed" % (len(text), self.max_parse_chars))
            events = self._parse(text)
        except HftfeedError as exc:
            self.recover(link, None, exc, recv_ns)
            return
        except Exception as exc:    # noqa: BLE001 -- an adapter bug on odd input: count, go on
            stats.handler_errors += 1
            if stats.handler_errors <= BAD_MESSAGE_LOG_FIRST or \
                    stats.handler_errors % BAD_MESSAGE_LOG_EVERY == 0:
                log.error("%s: parser failed on a message (%d so far): %s: %s", link.supervisor.name,
                          stats.handler_errors, type(exc).__name__, escape_text(str(exc), 200))
            return
        try:
            for event in events:
                kind = type(event)
                if kind is DepthUpdate:
                    link.last_data_ns = recv_ns
                    self._on_depth(link, event, recv_ns)
                elif kind is Trade:
                    link.last_data_ns = recv_ns
                    self._on_trade(event, recv_ns)
                elif kind is Quote:
                    link.last_data_ns = recv_ns
                    self._on_quote(link, event, recv_ns)
                elif kind is Control:
                    link.supervisor.on_control(link, event)
                elif kind is ConnSequence:
                    if not self._on_conn_sequence(link, event.seq, recv_ns):
                        break       # a late or repeated message: nothing of it is used
                else:
                    stats.ignored_events += 1
        except HftfeedError as exc:
            # e.g. a BookError from absurd levels: that instrument's book cannot be trusted
            stats.handler_errors += 1
            for inst in self._instruments_of(events):
                self.recover(link, inst, exc, recv_ns)
        except Exception:   # noqa: BLE001 -- a bug: log the traceback, distrust the book, go on
            stats.handler_errors += 1
            log.exception("%s: unexpected error while handling a message; resyncing its "
                          "instrument", link.supervisor.name)
            for inst in self._instruments_of(events):
                self.resync(inst, "book error", recv_ns)
        if self.flush_per_frame:
            self.publisher.flush()

    def _on_depth(self, link, upd, recv_ns):
        inst = self.instruments.get(upd.symbol)
        if inst is None:
            self.stats.unknown_symbols += 1
            return
        if link is not inst.link and not self._adopt_from(inst, link, upd):
            return
        result = inst.sync.on_update(upd)
        if result is APPLIED:
            self.stats.book_updates += 1
            self.stats.levels_applied += (len(upd.bids) + len(upd.asks)) >> 1
            self.publisher.book(inst.venue_id, inst.instrument_id, 0, upd.exch_ns, recv_ns,
                                inst.book)
        elif result is SYNCED:
            self.stats.book_updates += 1
            self.publish_synced(inst, upd.exch_ns, recv_ns)
        elif result is BUFFERED:
            if not self.in_stream_snapshots:
                self.request_snapshot(inst)
        elif result is GAP:
            self.recover(link, inst, SyncError(inst.sync.last_gap), recv_ns)

    def _on_conn_sequence(self, link, seq, recv_ns):
        """A venue numbering every message of a connection (sync.ConnectionSequence): a hole
        means a lost message of unknown content, so every instrument this connection carries
        resyncs (its own in-stream snapshot: the venue's re-subscription). Returns False for a
        late or repeated message, which is dropped whole."""
        result = link.conn_seq.observe(seq)
        if result == sync_mod.SEQ_OK:
            return True
        if result == sync_mod.SEQ_STALE:
            self.stats.ignored_events += 1
            return False
        carried = [inst for inst in self.instruments.values() if inst.link is link]
        log.warning("%s: connection sequence jumped to %d (%d messages lost so far on this "
                    "connection); resynchronising its %d instruments", link.supervisor.name, seq,
                    link.conn_seq.lost, len(carried))
        for inst in carried:
            self.resync(inst, "connection sequence gap before message %d" % seq, recv_ns)
        return True

    def _adopt_from(self, inst, link, upd):
        """A diff from a link that is not the instrument's current source (make-before-break).

        Both connections carry the same stream, so the newer link takes over as soon as it is
        proven level with the book: it delivers the diff the book ended on (u == book id) or the
        one that continues it. Until then its diffs are ignored; an older link's diff is applied
        only if it continues the book. Either way the overlap never causes a gap."""
        if link.retiring or inst.link is None:
            return False
        sync = inst.sync
        if not getattr(sync.rule, "ids_span_links", True):
            # ids of one connection say nothing about another's (a per-connection sequence,
            # or no id at all): the newer link takes over with its own snapshot, nothing else
            if link.number > inst.link.number and upd.is_snapshot:
                inst.link = link
                return True
            return False
        if sync.state != sync_mod.LIVE:
            if link.number > inst.link.number:
                inst.link = link    # not live anyway: take the new connection's stream now
                sync.start_resync()
                inst.resync_since = time.monotonic()
                return True
            return False
        book_id = inst.book.update_id
        continues = sync.rule.continues(book_id, upd) and not sync.rule.stale_live(book_id, upd)
        if link.number > inst.link.number and (continues or upd.last_id == book_id):
            inst.link = link
        return continues

    def _on_trade(self, trade, recv_ns):
        inst = self.instruments.get(trade.symbol)
        if inst is None:
            self.stats.unknown_symbols += 1
            return
        if not inst.trade_is_new(trade.trade_id):   # duplicate across overlapping connections
            return
        self.stats.trades += 1
        self.publisher.trade(inst.venue_id, inst.instrument_id, trade.exch_ns, recv_ns,
                             trade.trade_id, trade.price, trade.qty, trade.side)

    def _quote_from(self, inst, link, quote):
        """Whether ``link`` may publish ``quote`` of ``inst``, for quotes whose ids say nothing
        across connections: no id at all (0), or ids counted per connection (a venue whose
        rule has ``ids_span_links`` False, such as Coinbase's ``sequence_num``). Two connections
        overlap during a make-before-break rollover; their quotes cannot be put in one order,
        so one connection is followed at a time: the newest that has delivered a quote. Its
        first quote switches over and starts the id check afresh (the new connection counts
        from its own start); the older connection's quotes are dropped from then on, so a
        stale best bid/offer never follows a fresh one."""
        current = inst.quote_link
        if link is current:
            return True
        if current is not None and link.opened_ns < current.opened_ns:
            self.stats.ignored_events += 1      # the retiring connection's copy
            return False
        inst.quote_link = link
        inst.last_quote_id = -1
        inst.quote_regress = 0
        return True

    def _on_quote(self, link, quote, recv_ns):
        inst = self.instruments.get(quote.symbol)
        if inst is None:
            self.stats.unknown_symbols += 1
            return
        update_id = quote.update_id
        if (update_id == 0 or not self.quote_ids_span_links) and \
                not self._quote_from(inst, link, quote):
            return
        last_id = inst.last_quote_id
        if update_id != 0:
            if update_id <= last_id:
                # an equal or lower id is the other connection's copy, or the stream went back
                inst.quote_regress += 1
                if inst.quote_regress < QUOTE_REGRESS_LIMIT:
                    return
                log.warning("%s %s: %d quotes in a row below id %d; following the stream from "
                            "id %d", self.venue.NAME, inst.symbol, inst.quote_regress, last_id,
                            update_id)
            elif update_id > sync_mod.MAX_SANE_ID or \
                    (last_id >= 0 and update_id - last_id > MAX_QUOTE_ID_JUMP):
                self.stats.bad_messages += 1
                self.stats.bad_ids += 1
                if self.stats.bad_ids <= BAD_MESSAGE_LOG_FIRST or \
                        self.stats.bad_ids % BAD_MESSAGE_LOG_EVERY == 0:
                    log.warning("%s %s: dropped a quote with an absurd id %d (last %d)",
                                self.venue.NAME, inst.symbol, update_id, last_id)
                return
        inst.quote_regress = 0
        inst.last_quote_id = update_id
        self.stats.quotes += 1
        self.publisher.quote(inst.venue_id, inst.instrument_id, quote.exch_ns, recv_ns,
                             quote.update_id, quote.bid_px, quote.bid_qty, quote.ask_px,
                             quote.ask_qty)

    def _instruments_of(self, events):
        found = []
        for event in events:
            inst = self.instruments.get(getattr(event, "symbol", None))
            if inst is not None and inst not in found:
                found.append(inst)
        return found

    def check_deadlines(self, instruments, now_s):
        """Called about once a second per connection: every instrument waiting for a book
        (snapshot, bridge, re-subscription answer) has a deadline; past it the resync starts
        over, with a log line and a counter, instead of waiting for ever."""
        deadline_s = self.resync_deadline_s
        for inst in instruments:
            since = inst.resync_since
            if since == 0.0 or inst.sync.state != sync_mod.RESYNCING or now_s - since < deadline_s:
                continue
            idle = not self.in_stream_snapshots and not inst.sync.buffer and \
                not inst.sync.loaded and (inst.snapshot_task is None or inst.snapshot_task.done())
            if idle:
                # REST venue, no diff since the resync began: nothing is stuck, the instrument
                # is quiet (the silence timeout watches the connection). Count from now.
                inst.resync_since = now_s
                continue
            self.stats.resync_timeouts += 1
            log.warning("%s %s: still not live %.1f s after the resync began (%s); starting "
                        "it over", self.venue.NAME, inst.symbol, now_s - since,
                        escape_text(inst.sync.last_gap or "no usable snapshot", 300))
            if inst.snapshot_task is not None and not inst.snapshot_task.done():
                inst.snapshot_task.cancel()
            inst.sync.start_resync()
            inst.resync_since = now_s
            if self.in_stream_snapshots:
                self.request_stream_snapshot(inst)
            # REST venues: the next buffered diff asks for a fresh snapshot

    # -- recovery: the one place that acts on recovery_for ---------------------------------------

    def recover(self, link, inst, exc, now_ns):
        """Carry out ``recovery_for(exc)`` for an error met on ``link`` (about ``inst``, or
        None when the message could not be tied to an instrument). Returns the action."""
        action = recovery_for(exc)
        name = link.supervisor.name if link is not None else self.venue.NAME
        if action == DROP or (action == RESYNC and inst is None):
            stats = self.stats
            stats.bad_messages += 1
            if stats.bad_messages <= BAD_MESSAGE_LOG_FIRST or \
                    stats.bad_messages % BAD_MESSAGE_LOG_EVERY == 0:
                log.warning("%s: dropped a bad message (%d so far): %s", name,
                            stats.bad_messages, exc)
        elif action == RESYNC:
            if isinstance(exc, SyncError):
                self.on_gap(inst, now_ns)
            else:
                log.warning("%s: %s while handling a message (%s)", name, exc, action)
                self.resync(inst, "book error: %s" % escape_text(str(exc), 200), now_ns)
        elif action == RECONNECT and link is not None:
            log.warning("%s: %s: %s (%s)", name, type(exc).__name__, exc, action)
            link.supervisor.drop_link(link)
        elif action == EXIT:
            raise exc
        return action

    def resync(self, inst, why, now_ns):
        """Distrust ``inst``'s book now (whatever its sync state) and fetch a fresh one."""
        if inst.sync.state == sync_mod.DISCONNECTED:
            return
        inst.sync.start_resync()
        inst.sync.last_gap = why
        self.on_gap(inst, now_ns)

    def on_gap(self, inst, now_ns):
        self.stats.gaps += 1
        self.stats.resyncs += 1
        log.warning("%s %s: %s; resynchronising this instrument", self.venue.NAME, inst.symbol,
                    escape_text(inst.sync.last_gap, 300))
        self.set_state(inst, wire.STATE_RESYNC, now_ns)
        inst.resync_since = time.monotonic()
        if self.in_stream_snapshots:
            self.request_stream_snapshot(inst)
        # REST venues: the next buffered diff triggers the snapshot (Binance: buffer first)

    # -- status publishing ----------------------------------------------------------------------

    def set_state(self, inst, state, now_ns=None):
        """Publish an S message when the instrument's state changes (and only then)."""
        if state == wire.STATE_RESYNC and inst.state != wire.STATE_RESYNC:
            inst.resync_since = time.monotonic()
        if inst.state == state:
            return
        inst.state = state
        self.publisher.status(inst.venue_id, inst.instrument_id, now_ns or time.time_ns(), state)

    def publish_synced(self, inst, exch_ns, recv_ns):
        """Live again: status 1, then the whole top-N flagged as the first book after a sync.
        Logged here (not per path) so every way back to live leaves one line: a snapshot that
        syncs at once, or a buffered diff that bridges it later."""
        self.set_state(inst, wire.STATE_LIVE, recv_ns)
        inst.resync_since = 0.0
        log.info("%s %s: live (book at update id %d)", self.venue.NAME, inst.symbol,
                 inst.book.update_id)
        self.publisher.book(inst.venue_id, inst.instrument_id, wire.BOOK_FLAG_SNAPSHOT, exch_ns,
                            recv_ns, inst.book)

    # -- snapshots --------------------------------------------------------------------------------

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
        attempt = 0
        while inst.sync.state == sync_mod.RESYNCING and not inst.sync.loaded:
            try:
                snap = await self.fetch_snapshot(inst)
            except HftfeedError as exc:
                attempt += 1
                self.stats.snapshot_errors += 1
                action = recovery_for(exc)
                if action == EXIT:
                    raise
                # Any other action means "this request failed": the HTTP client has already
                # dropped a broken connection (RECONNECT); try again after a backoff.
                delay_s = self.retry_delay_s(attempt)
                log.warning("%s %s: snapshot failed (%s: %s); retry %d in %.2f s",
                            self.venue.NAME, inst.symbol, type(exc).__name__, exc, attempt,
                            delay_s)
                await asyncio.sleep(delay_s)
                continue
            if snap is None:
                continue    # rate limited: the fetcher's budget waits out the pause
            if inst.sync.state != sync_mod.RESYNCING:
                return      # disconnected (or removed) while the request was in flight
            self.stats.snapshots += 1
            now_ns = time.time_ns()
            try:
                result = inst.sync.on_snapshot(snap)
            except SyncError as exc:        # bad data in the snapshot itself: ask again
                attempt += 1
                self.stats.snapshot_errors += 1
                self.stats.bad_messages += 1
                delay_s = self.retry_delay_s(attempt)
                log.warning("%s %s: snapshot rejected (%s); retry %d in %.2f s",
                            self.venue.NAME, inst.symbol, exc, attempt, delay_s)
                await asyncio.sleep(delay_s)
                continue
            if result is SYNCED:
                self.publish_synced(inst, 0, now_ns)
                self.publisher.flush()
                return
            if result is SNAPSHOT_TOO_OLD:
                log.info("%s %s: snapshot %d older than the first buffered diff; fetching again",
                         self.venue.NAME, inst.symbol, snap.last_id)
                await asyncio.sleep(0.05)
                continue
            if result is GAP:
                self.stats.gaps += 1
                log.warning("%s %s: %s; fetching a new snapshot", self.venue.NAME, inst.symbol,
                            escape_text(inst.sync.last_gap, 300))
            return   # WAITING_BRIDGE: the next diff bridges; GAP/IGNORED: the next buffer retries


def _utf8(data):
    if len(data) > 4 * MAX_PARSE_CHARS:
        raise VenueError("binary frame of %d bytes; not decoded" % len(data))
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise VenueError("binary frame that is not UTF-8 text (%s)" % exc) from None
