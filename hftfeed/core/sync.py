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


class InstrumentSync(object):
    """Synchronisation state of one instrument's book. Not thread-safe; one event loop drives it."""

    __slots__ = ("rule", "book", "state", "buffer", "max_buffered", "gaps", "resyncs",
                 "applied", "ignored", "buffer_overflows", "snapshots", "last_gap", "loaded")

    def __init__(self, rule, book, max_buffered=10000, max_buffered_bytes=None, buffer_pool=None):
        self.rule = rule
        self.book = book
        self.state = DISCONNECTED
        self.buffer = []
        self.max_buffered = max_buffered
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
        self.buffer = []
        self.book.clear()
        self.book.update_id = 0
        self.loaded = False
        self.resyncs += 1

    def disconnect(self):
        """The connection carrying this instrument is gone: the book can no longer be trusted."""
        self.state = DISCONNECTED
        self.buffer = []
        self.book.clear()
        self.book.update_id = 0
        self.loaded = False

    # -- market data -------------------------------------------------------------------------

    def on_update(self, upd):
        """Feed one DepthUpdate (diff or in-stream snapshot); returns one of the result codes."""
        if upd.is_snapshot:
            return self._load_stream_snapshot(upd)
        state = self.state
        if state == LIVE:
            return self._apply_live(upd)
        if state == DISCONNECTED:
            return IGNORED
        if self.loaded:                         # snapshot loaded, waiting for the bridge
            return self._try_bridge(upd)
        self._buffer(upd)
        return BUFFERED

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
        if len(self.buffer) >= self.max_buffered:
            # The oldest diffs are the ones a fresh snapshot makes stale anyway; if the
            # snapshot turns out older than what we kept, step 2 asks for another one.
            del self.buffer[0]
            self.buffer_overflows += 1
        self.buffer.append(upd)

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
        self.snapshots += 1
        self.book.load_snapshot(snap.bids, snap.asks, snap.last_id)
        self.book.update_id = snap.last_id
        self.loaded = True
        self.buffer = []
        result = WAITING_BRIDGE
        for upd in buffered:
            result = self._try_bridge(upd) if result == WAITING_BRIDGE else self._replay(upd)
            if result == GAP:
                return GAP
        return SYNCED if self.state == LIVE else WAITING_BRIDGE

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
        self.snapshots += 1
        self.book.load_snapshot(upd.bids, upd.asks, upd.last_id)
        self.book.update_id = upd.last_id
        self.loaded = True
        self.buffer = []
        if upd.checksum is not None and not self.rule.verify(self.book, upd):
            return self._gap("checksum mismatch on snapshot %d" % upd.last_id)
        self.state = LIVE
        return SYNCED
