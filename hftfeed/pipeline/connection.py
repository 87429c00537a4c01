"""Connection lifecycle for one chunk of a feed: connect, subscribe, keepalive, reconnect,
make-before-break rollover. What the messages mean is the router's business (``router.py``).

Data flow for one inbound WebSocket message (inline in ``data_received``):
``ws.py`` -> :meth:`~hftfeed.pipeline.router.Router.handle` -> venue ``parse`` ->
:class:`~hftfeed.core.sync.InstrumentSync` -> :class:`~hftfeed.pipeline.publisher.Publisher`
(packed in place) -> ``flush`` (one ``sendto``).

A dead, half-open or silent connection (no complete frame, not even a ping, for
``silence_timeout_s``) is aborted and replaced; reconnects back off exponentially with jitter,
capped, forever. Before the venue's forced connection lifetime, or when it announces a shutdown,
a second connection is opened and each instrument switches to it at a point where its update-id
chain continues (make-before-break), so nothing is lost across the switch.
"""

import asyncio
import logging
import random
import time

from hftfeed.core import sync as sync_mod
from hftfeed.transport import ws
from hftfeed.codecs import wire
from hftfeed.errors import EXIT, ConfigError, HftfeedError, escape_text, recovery_for
from hftfeed.core.updates import CTRL_ERROR, CTRL_PONG, CTRL_SERVER_SHUTDOWN, CTRL_SUBSCRIBED

log = logging.getLogger("hftfeed.connection")


def backoff_delay_s(attempt, initial_s, max_s, rng=random):
    """Capped exponential backoff with "equal jitter": half fixed, half random, so a fleet of
    daemons reconnecting after a venue outage does not arrive in lock-step."""
    base = min(max_s, initial_s * (2 ** min(attempt, 30)))
    return base / 2.0 + rng.random() * base / 2.0


class Link(object):
    """One WebSocket connection of a supervisor (two exist during a make-before-break)."""

    __slots__ = ("supervisor", "client", "number", "opened_ns", "retiring", "_handle",
                 "last_data_ns")

    def __init__(self, supervisor, number):
        self.supervisor = supervisor
        self.client = None
        self.number = number
        self.opened_ns = time.monotonic_ns()
        self.retiring = False
        # wall-clock ns of the last market-data event (depth, trade, quote) on this link; the
        # router stamps it. Keepalives do not move it: see Supervisor._serve.
        self.last_data_ns = time.time_ns()
        self._handle = supervisor.router.handle

    def on_message(self, text, recv_ns):
        self._handle(self, text, recv_ns)


class Supervisor(object):
    """Keeps one WebSocket connection (a chunk of instruments) alive and feeds its messages on."""

    def __init__(self, feed, number, instruments, prefix="", channels=None):
        self.feed = feed
        self.number = number
        self.prefix = prefix
        self.channels = tuple(channels if channels is not None else feed.cfg.channels)
        # The supervisor carrying depth owns the instruments' state (S messages); with no depth
        # channel at all, the first route does (live = connected).
        self.carries_depth = "depth" in self.channels
        self.owns_state = self.carries_depth or (not feed.has_depth and number == 0)
        self.instruments = list(instruments)
        for inst in self.instruments:
            inst.supervisors.append(self)
        self.streams = []
        self.url = ""
        self._build_url()
        self.link = None
        self.links = []
        self.link_counter = 0
        self.stopping = False
        self.wakeup = asyncio.Event()
        self.rollover_requested = False
        self.name = "%s#%d%s" % (feed.venue.NAME, number, prefix)
        self.acks_pending = 0
        self.last_app_ping_ns = 0
        self.router = feed.router
        self._stats = feed.stats
        self._publisher = feed.publisher
        self._flush_per_frame = self.router.flush_per_frame

    def _build_url(self):
        """Streams and URL from the current instruments (re-read on every connect, so a reload
        that removed an instrument takes effect at the next reconnect or rollover)."""
        venue = self.feed.venue
        self.streams = [s for inst in self.instruments
                        for s in venue.streams_for(inst.symbol, self.channels)]
        self.url = self.feed.cfg.ws_url + self.prefix + venue.connection_path(self.streams)

    def remove_instrument(self, inst):
        if inst in self.instruments:
            self.instruments.remove(inst)
        self._build_url()

    def on_control(self, link, event):
        """A venue control event (ack, shutdown notice, error, pong) routed here by the router."""
        if event.kind == CTRL_SERVER_SHUTDOWN:
            if link.retiring or link is not self.link:
                return      # the connection being replaced anyway
            log.warning("%s: venue announced a server shutdown; reconnecting (make-before-break)",
                        self.name)
            self.request_rollover()
        elif event.kind == CTRL_SUBSCRIBED:
            self.acks_pending = max(0, self.acks_pending - 1)   # resubscribe acks come too
        elif event.kind == CTRL_ERROR:
            self._stats.venue_errors += 1
            log.error("%s: venue refused a request: %s", self.name, escape_text(event.detail, 300))
        elif event.kind == CTRL_PONG:
            return
        else:
            self._stats.ignored_events += 1

    def drop_link(self, link):
        """The router found ``link`` unusable (recovery RECONNECT): abort it; the connection
        loop notices the close and reconnects."""
        if link.client is not None:
            link.client.abort()

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
                        _short(self.url), type(exc).__name__, escape_text(str(exc), 300), action)
            if action == EXIT and isinstance(exc, ConfigError):
                raise
            self._announce_unreachable()
            return None
        self.feed.stats.connects += 1
        if self.router.trace is not None:
            self.router.trace.attach_ws(link.client)
        if not self._flush_per_frame:
            link.client.on_read_end = self._publisher.flush
        messages = self.feed.venue.subscribe_messages(self.streams)
        self.acks_pending = len(messages) if self.feed.venue.SUBSCRIBE_ACKS else 0
        for text in messages:
            link.client.send_text(text)
        self.links.append(link)
        log.info("%s: connected to %s (%d streams)", self.name, _short(self.url), len(self.streams))
        return link

    def _announce_unreachable(self):
        """Instruments that never had a connection get their first S message (disconnected)
        after the first failed attempt, so consumers know they exist and are not live."""
        if not self.owns_state:
            return
        now_ns = time.time_ns()
        announced = False
        for inst in self.instruments:
            if inst.state == 0:
                self.router.set_state(inst, wire.STATE_DISCONNECTED, now_ns)
                announced = True
        if announced:
            self._publisher.flush()

    def _adopt_all(self, link):
        """A fresh connection after a disconnect: every instrument resyncs from it."""
        self.link = link
        now_ns = time.time_ns()
        for inst in self.instruments:
            if "bookTicker" in self.channels:
                inst.last_quote_id = -1     # ids may restart with the venue's new session
            if self.carries_depth:
                inst.link = link
                inst.sync.start_resync()
                self.router.set_state(inst, wire.STATE_RESYNC, now_ns)
            elif self.owns_state:
                self.router.set_state(inst, wire.STATE_LIVE, now_ns)
        self._publisher.flush()

    def _disconnected(self, link):
        self.feed.stats.reconnects += 1
        now_ns = time.time_ns()
        for inst in self.instruments:
            if self.carries_depth and (inst.link is link or inst.link is None):
                inst.sync.disconnect()
                inst.link = None
                self.router.set_state(inst, wire.STATE_DISCONNECTED, now_ns)
            elif self.owns_state:
                self.router.set_state(inst, wire.STATE_DISCONNECTED, now_ns)
        self._publisher.flush()
        if self.link is link:
            self.link = None

    async def _serve(self, link):
        """Watch ``link`` until it dies; replace it proactively before the venue's lifetime."""
        cfg = self.feed.cfg
        silence_ns = int(cfg.silence_timeout_s * 1e9)
        data_silence_ns = int(cfg.data_silence_timeout_s * 1e9)
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
            # Liveness means progress for books too: a venue that keeps answering pings (or
            # sending its own) but no longer sends any market data would otherwise leave every
            # book on this link frozen and LIVE. Quiet instruments are why this has its own,
            # longer timeout (data_silence_timeout_s; 0 turns it off).
            if data_silence_ns and now - link.last_data_ns > data_silence_ns:
                self.feed.stats.data_silent_disconnects += 1
                log.warning("%s: no market data for %.1f s (only keepalives); reconnecting",
                            self.name, (now - link.last_data_ns) / 1e9)
                link.client.abort()
                self._forget(link)
                return
            if self.acks_pending > 0 and time.monotonic_ns() - link.opened_ns > \
                    cfg.connect_timeout_s * 1e9:
                self._stats.ack_timeouts += 1
                log.warning("%s: %d subscription(s) not acknowledged within %.1f s; reconnecting",
                            self.name, self.acks_pending, cfg.connect_timeout_s)
                link.client.abort()
                self._forget(link)
                return
            self._app_ping(link, now)
            if self.carries_depth:
                self.router.check_deadlines(self.instruments, time.monotonic())
            if self.rollover_requested or time.monotonic_ns() - link.opened_ns > lifetime_ns:
                link = await self._rollover(link)

    def _app_ping(self, link, now_ns):
        """Application-level keepalive for venues that want one (Bybit: {"op":"ping"} every
        20 s; OKX: "ping" when nothing arrived for 25 s). Binance pings at the frame level."""
        venue = self.feed.venue
        interval_s = venue.APP_PING_INTERVAL_S
        if not venue.APP_PING_TEXT or not interval_s:
            return
        since_ping_s = (now_ns - self.last_app_ping_ns) / 1e9
        since_recv_s = (now_ns - link.client.last_recv_ns) / 1e9
        idle_s = since_ping_s if venue.APP_PING_ALWAYS else min(since_ping_s, since_recv_s)
        if idle_s >= interval_s:
            self.last_app_ping_ns = now_ns
            self.feed.stats.app_pings += 1
            link.client.send_text(venue.APP_PING_TEXT)

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
            if self.carries_depth and all(inst.link is new for inst in self.instruments):
                break
            if not self.carries_depth and new.client.messages_in > 0:
                break       # trades dedupe by id: the new stream only has to be flowing
            if old.client.closed.done() or new.client.closed.done():
                break
            await asyncio.sleep(0.05)
        old.retiring = True
        now_ns = time.time_ns()
        moved = 0
        for inst in self.instruments:
            if inst.link is new or not self.carries_depth:
                moved += 1
            else:   # quiet instrument, or no chaining point seen: take the new stream as is
                inst.link = new
                if inst.sync.state != sync_mod.LIVE:
                    inst.sync.start_resync()
                    self.router.set_state(inst, wire.STATE_RESYNC, now_ns)
        self._publisher.flush()
        log.info("%s: rolled over to a new connection; %d/%d instruments switched seamlessly",
                 self.name, moved, len(self.instruments))
        await self._close_link(old)
        return new

    def _log_close(self, link):
        """One line per ended connection. A close we asked for (stop, rollover, reload) is
        routine: INFO. The venue's close reason and an error's text are venue-supplied and go
        through escape_text."""
        client = link.client
        exc = client.closed.exception() if not client.closed.cancelled() else None
        if exc is not None:
            log.warning("%s: connection lost: %s: %s; reconnecting", self.name,
                        type(exc).__name__, escape_text(str(exc), 300))
        elif client.close_initiated or self.stopping:
            code, reason = client.closed.result()
            log.info("%s: connection closed by us (%s %s)", self.name, code,
                     escape_text(reason, 123))
        else:
            code, reason = client.closed.result()
            log.warning("%s: venue closed the connection (%s %s); reconnecting", self.name, code,
                        escape_text(reason, 123))
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


def _short(url, limit=120):
    return url if len(url) <= limit else url[:limit] + "..."
