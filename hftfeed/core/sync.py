"""The shared book-synchronisation engine: snapshot + diff stream, update-id continuity, resync.

Pure (no asyncio, no socket). One :class:`InstrumentSync` per instrument owns the instrument's
:class:`~hftfeed.core.book.Book`. The venue supplies only its continuity rule (a :class:`SyncRule`
subclass in ``hftfeed/venues/<venue>.py``); buffering, bridging, replay, gap detection and
the live/resync state machine are written once, here.

The procedure (Binance's "How to manage a local order book correctly", generalised):
  1. While no snapshot is loaded, buffer every diff (bounded) and remember the first one.
  2. A snapshot arrives (REST, or in-stream for venues that send one on subscribe).
     If it is older than the first buffered diff, it cannot be bridged: fetch another.
  3. Drop buffered diffs the snapshot already contains (``rule.stale_before_snapshot``).
  4. The first remaining diff must straddle the snapshot id (``rule.bridges``); if none is
     buffered yet, the next diff to arrive must.
  5. From then on every diff must continue the previous one (``rule.continues``); a diff the
     book already contains is ignored (``rule.stale_live``). Anything else is a gap: the book is
     stale, the caller publishes status 2 and starts again at step 1 for this instrument only.
"""


import enum

from hftfeed.codecs.wire import STATE_DISCONNECTED, STATE_LIVE, STATE_RESYNC
from hftfeed.errors import BookError, SyncError

# Instrument states: PROTOCOL.md's S-message states, defined once in ``codecs/wire.py``.
LIVE = STATE_LIVE                  # synchronised: books may be published
RESYNCING = STATE_RESYNC           # waiting for a snapshot / a bridging diff: nothing is published
DISCONNECTED = STATE_DISCONNECTED  # no connection carries this instrument


class SyncResult(enum.IntEnum):
    """Results of on_update / on_snapshot: what the caller must do next. The meaning of each
    one for the pipeline (publish, request a snapshot, resync) lives in ``pipeline/router.py``."""

    APPLIED = 1           # the book changed and is live: publish it
    IGNORED = 2           # duplicate or stale diff: nothing changed
    BUFFERED = 3          # kept until the snapshot arrives
    SYNCED = 4            # just became live (snapshot + replay): publish with the snapshot flag
    GAP = 5               # continuity broken (or bad data): publish status 2 and resync
    SNAPSHOT_TOO_OLD = 6  # the snapshot predates the buffered diffs: fetch another one
    WAITING_BRIDGE = 7    # snapshot loaded, no diff to bridge it yet: keep waiting (not live)


# Ids far outside any real stream are bad data, not a position to wait for: a snapshot id of
# 2**63-1 would otherwise make every later diff "already contained" and wedge the instrument.
MAX_SANE_ID = 2 ** 62             # venue update ids are ~1e10 today; anything above is absurd
MAX_SNAPSHOT_LEAD_IDS = 2 ** 32   # a snapshot may lead the newest buffered diff by at most this
MAX_SEQ_JUMP = 2 ** 32            # a connection's message count jumping further is bad data
MAX_STALE_RUN = 20                # this many "old" connection numbers in a row: follow them

# Buffered diffs are capped by an estimate of the memory they hold, not only their count: one
# diff can carry thousands of levels. The estimate follows CPython's object sizes (a small int
# is 28 bytes plus an 8-byte list slot; the event object and its lists about 300 bytes).
UPDATE_OVERHEAD_BYTES = 300
LEVEL_VALUE_BYTES = 36
MAX_BUFFERED_BYTES_PER_INSTRUMENT = 32 * 2 ** 20
MAX_BUFFERED_BYTES_TOTAL = 256 * 2 ** 20


def update_bytes(upd):
    """Estimated memory held by a buffered DepthUpdate (see LEVEL_VALUE_BYTES)."""
    return UPDATE_OVERHEAD_BYTES + LEVEL_VALUE_BYTES * (len(upd.bids) + len(upd.asks))


class BufferPool(object):
    """Bytes of buffered diffs held by every instrument sharing this pool (one per process by
    default), so that many instruments resyncing at once stay within one total."""

    __slots__ = ("max_bytes", "used_bytes")

    def __init__(self, max_bytes=MAX_BUFFERED_BYTES_TOTAL):
        self.max_bytes = max_bytes
        self.used_bytes = 0


SHARED_POOL = BufferPool()


APPLIED = SyncResult.APPLIED
IGNORED = SyncResult.IGNORED
BUFFERED = SyncResult.BUFFERED
SYNCED = SyncResult.SYNCED
GAP = SyncResult.GAP
SNAPSHOT_TOO_OLD = SyncResult.SNAPSHOT_TOO_OLD
WAITING_BRIDGE = SyncResult.WAITING_BRIDGE


class SyncRule(object):
    """A venue's update-id rule. Subclasses override the predicates; all take ints/updates.

    ``snapshot_in_stream``: the venue sends the snapshot on the WebSocket (Bybit, OKX) rather
    than over REST (Binance); resync then means re-subscribing, which the feed handles.
    """

    snapshot_in_stream = False

    def snapshot_too_old(self, snapshot_id, first_buffered):
        """Step 2: the snapshot cannot be bridged to the first buffered diff."""
        return snapshot_id < first_buffered.first_id

    def stale_before_snapshot(self, snapshot_id, upd):
        """Step 3: the snapshot already contains this diff."""
        raise NotImplementedError

    def bridges(self, snapshot_id, upd):
        """Step 4: this diff is the first one to apply on top of the snapshot."""
        raise NotImplementedError

    def stale_live(self, book_id, upd):
        """Step 5: the live book already contains this diff (a duplicate or a replay)."""
        raise NotImplementedError

    def continues(self, book_id, upd):
        """Step 5: this diff follows the last applied one without a hole."""
        raise NotImplementedError

    def verify(self, book, upd):
        """After applying ``upd``: check a venue checksum if it carries one (OKX). True = ok."""
        return True


class PrevIdChainRule(SyncRule):
    """A venue-neutral change-id chain: every update names the id it follows (``prev_id``) and
    continues the book exactly when that is the last applied id; snapshots arrive in-stream and
    carry the id the chain goes on from. Ids only grow (an update whose ``last_id`` the book
    already reached is a duplicate). Deribit's ``change_id``/``prev_change_id`` is this model."""

    snapshot_in_stream = True

    def snapshot_too_old(self, snapshot_id, first_buffered):
        return False        # in-stream snapshots: the chain itself says what follows them

    def stale_before_snapshot(self, snapshot_id, upd):
        return upd.last_id <= snapshot_id

    def bridges(self, snapshot_id, upd):
        return upd.prev_id == snapshot_id

    def stale_live(self, book_id, upd):
        return upd.last_id <= book_id

    def continues(self, book_id, upd):
        return upd.prev_id == book_id


class InstrumentSync(object):
    """Synchronisation state of one instrument's book. Not thread-safe; one event loop drives it."""

    __slots__ = ("rule", "book", "state", "buffer", "max_buffered", "gaps", "resyncs",
                 "applied", "ignored", "buffer_overflows", "snapshots", "last_gap", "loaded",
                 "buffered_bytes", "max_buffered_bytes", "pool", "bad_ids")

    def __init__(self, rule, book, max_buffered=10000, max_buffered_bytes=None, buffer_pool=None):
        self.rule = rule
        self.book = book
        self.state = DISCONNECTED
        self.buffer = []
        self.max_buffered = max_buffered
        self.buffered_bytes = 0
        self.max_buffered_bytes = max_buffered_bytes or MAX_BUFFERED_BYTES_PER_INSTRUMENT
        self.pool = buffer_pool if buffer_pool is not None else SHARED_POOL
        self.bad_ids = 0        # events and snapshots rejected for absurd ids
        self.gaps = 0
        self.resyncs = 0
        self.applied = 0
        self.ignored = 0
        self.buffer_overflows = 0
        self.snapshots = 0
        self.last_gap = ""
        self.loaded = False     # a snapshot is in the book (ids can be 0 on some venues)

    # -- state changes driven by the connection supervisor -----------------------------------

    def start_resync(self):
        """Forget the book and start buffering (connection (re)opened, or after a gap)."""
        self.state = RESYNCING
        self._drop_buffer()
        self.book.clear()
        self.book.update_id = 0
        self.loaded = False
        self.resyncs += 1

    def disconnect(self):
        """The connection carrying this instrument is gone: the book can no longer be trusted."""
        self.state = DISCONNECTED
        self._drop_buffer()
        self.book.clear()
        self.book.update_id = 0
        self.loaded = False

    # -- market data -------------------------------------------------------------------------

    def _drop_buffer(self):
        self.pool.used_bytes -= self.buffered_bytes
        self.buffered_bytes = 0
        self.buffer = []

    def on_update(self, upd):
        """Feed one DepthUpdate (diff or in-stream snapshot); returns one of the result codes."""
        if upd.last_id > MAX_SANE_ID or upd.first_id < 0 or upd.first_id > MAX_SANE_ID:
            return self._bad_id("update ids %d..%d" % (upd.first_id, upd.last_id))
        if upd.is_snapshot:
            return self._load_stream_snapshot(upd)
        state = self.state
        if state == LIVE:
            return self._apply_live(upd)
        if state == DISCONNECTED:
            return IGNORED
        if self.loaded:                         # snapshot loaded, waiting for the bridge
            return self._try_bridge(upd)
        return self._buffer(upd)

    def _apply_live(self, upd):
        rule = self.rule
        book = self.book
        if rule.stale_live(book.update_id, upd):
            self.ignored += 1
            return IGNORED
        if not rule.continues(book.update_id, upd):
            return self._gap("update %d..%d (prev %d) does not continue book id %d"
                             % (upd.first_id, upd.last_id, upd.prev_id, book.update_id))
        book.apply_levels(upd.bids, upd.asks)
        book.update_id = upd.last_id
        self.applied += 1
        if upd.checksum is not None and not rule.verify(book, upd):
            return self._gap("checksum mismatch after update %d" % upd.last_id)
        if book.is_crossed():       # a crossed L2 book is wrong whatever the ids say
            return self._gap("book crossed after update %d" % upd.last_id)
        return APPLIED

    def _buffer(self, upd):
        """Keep ``upd`` until the snapshot comes. Over the count cap the oldest diff goes (a
        fresh snapshot makes it stale anyway; if the snapshot turns out older than what we
        kept, step 2 asks for another one). Over the byte cap (this instrument's, or the pool
        shared with the others) everything goes and the caller resyncs: GAP."""
        size = update_bytes(upd)
        pool = self.pool
        if self.buffered_bytes + size > self.max_buffered_bytes or \
                pool.used_bytes + size > pool.max_bytes:
            self.buffer_overflows += 1
            why = "buffered diffs over %d bytes (this instrument %d, all %d)" % (
                self.max_buffered_bytes if self.buffered_bytes + size > self.max_buffered_bytes
                else pool.max_bytes, self.buffered_bytes, pool.used_bytes)
            return self._gap(why)
        if len(self.buffer) >= self.max_buffered:
            old = self.buffer.pop(0)
            old_size = update_bytes(old)
            self.buffered_bytes -= old_size
            pool.used_bytes -= old_size
            self.buffer_overflows += 1
        self.buffer.append(upd)
        self.buffered_bytes += size
        pool.used_bytes += size
        return BUFFERED

    def _bad_id(self, what):
        """Ids outside any real stream: bad data, counted and dropped. A live book cannot vouch
        for itself after one (GAP: resync); a resync under way just goes on."""
        self.bad_ids += 1
        self.last_gap = "absurd %s" % what
        if self.state == LIVE:
            return self._gap(self.last_gap)
        return IGNORED

    def _gap(self, why):
        self.gaps += 1
        self.last_gap = why
        self.start_resync()
        return GAP

    # -- snapshots ---------------------------------------------------------------------------

    def on_snapshot(self, snap):
        """Apply a REST snapshot (steps 2-4) and replay the buffer. Returns SYNCED,
        WAITING_BRIDGE, SNAPSHOT_TOO_OLD or GAP (then the caller fetches another snapshot)."""
        if self.state != RESYNCING:
            return IGNORED
        rule = self.rule
        buffered = self.buffer
        if buffered and rule.snapshot_too_old(snap.last_id, buffered[0]):
            return SNAPSHOT_TOO_OLD
        newest = buffered[-1].last_id if buffered else None
        if snap.last_id < 0 or snap.last_id > MAX_SANE_ID or \
                (newest is not None and snap.last_id - newest > MAX_SNAPSHOT_LEAD_IDS):
            self.bad_ids += 1
            raise SyncError("snapshot id %d is outside the stream (newest buffered diff %s)"
                            % (snap.last_id, newest))
        self._load_checked(snap.bids, snap.asks, snap.last_id, "snapshot")
        self.snapshots += 1
        buffered = self.buffer
        self._drop_buffer()
        result = WAITING_BRIDGE
        for upd in buffered:
            result = self._try_bridge(upd) if result == WAITING_BRIDGE else self._replay(upd)
            if result == GAP:
                return GAP
        return SYNCED if self.state == LIVE else WAITING_BRIDGE

    def _load_checked(self, bids, asks, last_id, what):
        """Every book-loading path (REST snapshot, in-stream snapshot) goes through here: the
        same sanity checks before anything can be published. Raises SyncError (the book is
        left empty and not loaded) for levels the book refuses or a crossed book."""
        book = self.book
        try:
            book.load_snapshot(bids, asks, last_id)
        except BookError as exc:
            book.clear()
            self.loaded = False
            raise SyncError("%s %d rejected: %s" % (what, last_id, exc)) from None
        if book.is_crossed():
            bid, ask = book.best_bid(), book.best_ask()
            book.clear()
            self.loaded = False
            raise SyncError("%s %d is crossed (best bid %s >= best ask %s)"
                            % (what, last_id, bid, ask))
        book.update_id = last_id
        self.loaded = True

    def _try_bridge(self, upd):
        rule = self.rule
        book = self.book
        snapshot_id = book.update_id
        if rule.stale_before_snapshot(snapshot_id, upd):
            self.ignored += 1
            return WAITING_BRIDGE
        if not rule.bridges(snapshot_id, upd):
            return self._gap("first update %d..%d does not bridge snapshot %d"
                             % (upd.first_id, upd.last_id, snapshot_id))
        book.apply_levels(upd.bids, upd.asks)
        book.update_id = upd.last_id
        self.applied += 1
        if upd.checksum is not None and not rule.verify(book, upd):
            return self._gap("checksum mismatch after bridging update %d" % upd.last_id)
        if book.is_crossed():
            return self._gap("book crossed after bridging update %d" % upd.last_id)
        self.state = LIVE
        return SYNCED

    def _replay(self, upd):
        result = self._apply_live(upd)
        return SYNCED if result in (APPLIED, IGNORED) else result

    def _load_stream_snapshot(self, upd):
        """Venues that send the full book in-stream (Bybit, OKX): it replaces the book."""
        if self.state == DISCONNECTED:
            return IGNORED
        try:
            self._load_checked(upd.bids, upd.asks, upd.last_id, "in-stream snapshot")
        except SyncError as exc:
            return self._gap(str(exc))
        self.snapshots += 1
        self._drop_buffer()
        if upd.checksum is not None and not self.rule.verify(self.book, upd):
            return self._gap("checksum mismatch on snapshot %d" % upd.last_id)
        self.state = LIVE
        return SYNCED


# -- continuity models besides the per-instrument id chain --------------------------------------
#
# Two venue-neutral models for venues whose messages carry no per-instrument chain:
#
# * a sequence per *connection* (Coinbase ``sequence_num``): every message on the connection,
#   whatever its channel or instrument, takes the next number, so a hole means "some message of
#   this connection is lost" and no instrument on it can vouch for its book. The connection-level
#   check is :class:`ConnectionSequence` (one per connection, driven by the router); the
#   instruments then only need their ids to grow (:class:`ConnectionSequenceRule`);
# * checksum-only (Kraken v2 ``book``): no id at all; after every message the venue's checksum
#   of the top of the book is the only guard (:class:`ChecksumOnlyRule`).

SEQ_OK = 1          # the next number (or the first one seen on this connection)
SEQ_STALE = 2       # at or below the last one: a late or repeated message; drop all of it
SEQ_GAP = 3         # numbers were skipped: messages of this connection are lost


class ConnectionSequence(object):
    """Per-connection message sequence: pure bookkeeping, one per open connection.

    The first number seen is taken as the start (a venue may number from 0 or from wherever the
    connection joined). A number more than one above the last is a gap; the sequence then
    continues from the new number, so one loss is reported once. Absurd numbers (negative,
    above MAX_SANE_ID, or more than MAX_SEQ_JUMP ahead of the last) are gaps too, and the count
    starts again from the next sane number: one forged number must not make every later real
    message look old. For the same reason, when MAX_STALE_RUN messages in a row are "older"
    than the last accepted one, the stream is followed from where it is (a gap)."""

    __slots__ = ("last", "gaps", "stale", "lost", "stale_run")

    def __init__(self):
        self.last = -1          # last number accepted (-1: nothing seen yet)
        self.gaps = 0
        self.stale = 0
        self.lost = 0           # messages known lost (sum of the holes)
        self.stale_run = 0      # consecutive stale numbers

    def observe(self, seq):
        """Classify message number ``seq``: SEQ_OK, SEQ_STALE or SEQ_GAP."""
        last = self.last
        if last < 0 or seq == last + 1:
            if seq < 0 or seq > MAX_SANE_ID:
                return self._absurd(seq)
            self.last = seq
            self.stale_run = 0
            return SEQ_OK
        if 0 <= seq <= last:
            self.stale += 1
            self.stale_run += 1
            if self.stale_run < MAX_STALE_RUN:
                return SEQ_STALE
            self.stale_run = 0  # the venue's count went back for good: follow it
            self.gaps += 1
            self.last = seq
            return SEQ_GAP
        if seq > MAX_SANE_ID or seq - last > MAX_SEQ_JUMP:
            return self._absurd(seq)
        self.gaps += 1
        self.lost += seq - last - 1
        self.last = seq
        self.stale_run = 0
        return SEQ_GAP

    def _absurd(self, seq):
        self.gaps += 1
        self.last = -1          # start again from the next sane number
        self.stale_run = 0
        return SEQ_GAP


class ConnectionSequenceRule(SyncRule):
    """Instruments on a connection-sequenced venue: the router has already checked that no
    message of the connection is missing (ConnectionSequence), so a book only needs the ids it
    receives (the connection's numbers, with other instruments' messages in between) to grow.
    Snapshots come in-stream (re-subscribing fetches one). Ids restart with every connection,
    so a second connection's ids say nothing about this one's (``ids_span_links``)."""

    snapshot_in_stream = True
    ids_span_links = False

    def stale_before_snapshot(self, snapshot_id, upd):
        return upd.last_id <= snapshot_id

    def bridges(self, snapshot_id, upd):
        return upd.last_id > snapshot_id

    def stale_live(self, book_id, upd):
        return upd.last_id <= book_id

    def continues(self, book_id, upd):
        return upd.last_id > book_id


class ChecksumOnlyRule(SyncRule):
    """Venues with no update id: every diff continues the book by definition, and the venue's
    checksum (``upd.checksum``, compared with :meth:`book_checksum` after the diff is applied)
    is what finds a lost or corrupted message. The venue subclass supplies ``book_checksum``
    and, when the venue only maintains the top of its book, ``max_levels``: after every message
    the book is cut to that many levels a side, because such a venue never sends deletions for
    levels that merely fall out of its depth. Ids are the adapter's own message count."""

    snapshot_in_stream = True
    ids_span_links = False
    max_levels = 0          # 0: keep every level; N: keep the best N a side after each message

    def stale_before_snapshot(self, snapshot_id, upd):
        return False

    def bridges(self, snapshot_id, upd):
        return True

    def stale_live(self, book_id, upd):
        return False

    def continues(self, book_id, upd):
        return True

    def book_checksum(self, book, upd):
        """The venue's checksum of ``book`` as it stands (an unsigned 32-bit int)."""
        raise NotImplementedError

    def verify(self, book, upd):
        if self.max_levels:
            book.truncate(self.max_levels)
        return self.book_checksum(book, upd) == upd.checksum
