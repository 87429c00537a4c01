"""The simulator's asyncio server: REST and WebSocket on one port, one shared event stream.

One producer task pulls events from the source every tick (``tick_s``), fans each one out to the
connections subscribed to its stream (the JSON and the frame are built once per stream and shared
by every connection), writes each connection's frames with one ``transport.write`` per tick, and
journals the events with the ``send_ns`` taken right before those writes. Every connection sees
the same global stream filtered by its subscriptions, so two connections see identical data (the
daemon's make-before-break reconnect relies on it). A housekeeping task sends pings, enforces the
pong timeout and the connection lifetime, runs scheduled faults and flushes the journal.

``await start_sim(config)`` returns a started :class:`SimServer` (``.port``, ``.close()``).
"""

import asyncio
import logging
import struct
import time

from hftfeed.tools.sim import faultexec, faults, protocol, rest
from hftfeed.tools.sim.config import SimConfig
from hftfeed.tools.sim.journal import JournalWriter
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE
from hftfeed.tools.sim.sources import (EV_RAW, BurstSource, CaptureSource, JournalSource,
                                      SyntheticSource)
from hftfeed.tools.sim.wsconn import WsConn
from hftfeed.venues import registry     # pure data: imports no adapter and nothing of the core

log = logging.getLogger("hftfeed.sim.server")

# Venue dialects: JSON shapes, paths, limits, REST rules. Binance spot is a stateless module;
# the others define a ``Dialect`` class (one per server: per-symbol ids, mirror books) with the
# same names plus optional hooks: observe_depth / observe_other (every generated event, in
# order), stream_table (stream names per symbol), on_timer (housekeeping), fault_<name>.

_HDR16 = struct.Struct("!BBH").pack
_HDR64 = struct.Struct("!BBQ").pack


def text_frame(data):
    """One unmasked FIN text frame (RFC 6455 §5.2): ws_proto.encode_frame minus its generality,
    because it runs once per event and stream on the hot path."""
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return _HDR16(0x81, 126, n) + data
    return _HDR64(0x81, 127, n) + data


def make_source(cfg):
    """The event source the config asks for (journal replay, capture replay or synthetic)."""
    if cfg.replay:
        return JournalSource(cfg.replay, cfg.replay_speed)
    if cfg.replay_capture:
        return CaptureSource(cfg.replay_capture, cfg.replay_snapshots, cfg.replay_speed)
    if cfg.shape == "burst":
        return BurstSource(cfg.symbols, seed=cfg.seed, boundaries_per_s=cfg.boundaries_per_s,
                           depth_levels=cfg.depth_levels, steps_per_boundary=cfg.max_steps_per_msg,
                           id_mode="message" if cfg.venue == "bybit" else "steps")
    return SyntheticSource(cfg.symbols, seed=cfg.seed, rate=cfg.rate,
                           depth_levels=cfg.depth_levels,
                           max_steps_per_msg=cfg.max_steps_per_msg,
                           id_mode=getattr(registry.sim_dialect(cfg.venue), "ID_MODE", "steps"))


class SimServer(object):
    """A running simulator (see the module docstring). Create it with :func:`start_sim`."""

    def __init__(self, config):
        self.config = config
        self.source = make_source(config)
        self.symbols = list(self.source.symbols)
        self.known_symbols = frozenset(self.symbols)
        self.tick_now_s = time.monotonic()  # monotonic time of the batch being dispatched
        module = registry.sim_dialect(config.venue)    # the venue's dialect, by registry name
        self.dialect = module.Dialect(self) if hasattr(module, "Dialect") else module
        self._observe_depth = getattr(self.dialect, "observe_depth", None)
        self._observe_other = getattr(self.dialect, "observe_other", None)
        self._dialect_timer = getattr(self.dialect, "on_timer", None)
        self.limiter = self.dialect.WeightLimiter(config.weight_limit, config.weight_window_s,
                                                  config.ban_after_429, config.ban_s)
        self.stream_faults = faults.StreamFaults()
        self.journal = None
        self.port = None
        self.host = config.host
        self._servers = []
        self._tasks = []
        self.conns = {}                 # id -> WsConn (open or closing)
        self._next_conn_id = 0
        self.subs = {}                  # stream name -> (combined conns, raw conns)
        self._live = {}                 # symbol -> [_, depth, trade, quote] subscribed streams
        self._names = {}                # symbol -> {event kind: [(stream, suffix)]}
        self._held = {}                 # symbol -> depth event held back by reorder_diffs
        self._depth_extra = ""          # unknown_event: extra fields in the next depth event
        self._scheduled = []            # [due monotonic s, spec, every_s]
        self._had_client = False
        self._closing = False
        self.stopped = None             # asyncio.Event set when the server stops by itself
        self.started_s = None
        # Counters reported by /_sim/status.
        self.generated = {s: 0 for s in self.symbols}
        self.sent = {s: 0 for s in self.symbols}
        self.events_generated = 0
        self.snapshots_served = 0
        self.rest_requests = 0
        self.pings_sent = 0
        self.pongs_received = 0
        self.disconnects = {}
        self.faults_applied = []
        self.connections_total = 0
        table = getattr(self.dialect, "stream_table", None)
        for s in self.symbols:
            if table is not None:
                self._names[s] = table(s)
                continue
            lo = s.lower()
            self._names[s] = {
                EV_DEPTH: [(lo + "@" + x, x) for x in self.dialect.DEPTH_SUFFIXES],
                EV_TRADE: [(lo + "@" + x, x) for x in self.dialect.TRADE_SUFFIXES],
                EV_QUOTE: [(lo + "@" + x, x) for x in self.dialect.QUOTE_SUFFIXES],
            }
        self.stream_names = frozenset(name for by_kind in self._names.values()
                                      for streams in by_kind.values() for name, _ in streams)
        self._rebuild_subs()

    # ------------------------------------------------------------------ lifecycle
    async def start(self):
        cfg = self.config
        loop = asyncio.get_running_loop()
        self.stopped = asyncio.Event()
        if cfg.record:
            self.journal = JournalWriter(cfg.record, cfg.seed, self.dialect.VENUE, self.symbols,
                                         extra={"rate": getattr(self.source, "rate", None),
                                                "depth_levels": cfg.depth_levels})
            for sym, uid, bids, asks in self.source.initial_books():
                self.journal.write_book(sym, uid, bids, asks)
            self.journal.flush()
        hosts = ["127.0.0.1", "::1"] if cfg.host in ("localhost", "loopback") else [cfg.host]
        port = cfg.port
        for i, host in enumerate(hosts):
            try:
                srv = await loop.create_server(lambda: protocol.SimProtocol(self), host, port,
                                               reuse_address=True, backlog=512)
            except OSError as exc:
                if i == 0:
                    raise
                log.warning("could not also listen on %s port %d: %s", host, port, exc)
                continue
            if port == 0:
                port = srv.sockets[0].getsockname()[1]
            self._servers.append(srv)
        self.port = port
        self.host = hosts[0]
        self.started_s = time.monotonic()
        for spec in cfg.faults:
            self._schedule(spec)
        self._tasks.append(loop.create_task(self._produce()))
        self._tasks.append(loop.create_task(self._housekeeping()))
        log.info("simulator listening on %s port %d, %d symbols, source %s",
                 ",".join(hosts), port, len(self.symbols), type(self.source).__name__)
        return self

    @property
    def ws_url(self):
        return "ws://%s:%d" % (_url_host(self.host), self.port)

    @property
    def rest_url(self):
        return "http://%s:%d" % (_url_host(self.host), self.port)

    async def close(self, close_code=1001):
        """Stop producing, close every connection with ``close_code``, flush the journal."""
        if self._closing:
            return
        self._closing = True
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except asyncio.CancelledError:
                log.debug("task stopped")
        for srv in self._servers:
            srv.close()
        for c in list(self.conns.values()):
            if c.half_open:
                c.drop("server stopping", abort=True)
            else:
                c.close_with(close_code, "Server stopping")
        deadline = time.monotonic() + 1.0
        while self.conns and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for c in list(self.conns.values()):
            c.drop("server stopped", abort=True)
        for srv in self._servers:
            try:
                await asyncio.wait_for(srv.wait_closed(), 1.0)
            except asyncio.TimeoutError:
                log.warning("listening socket did not close within 1 s")
        if self.journal is not None:
            self.journal.close()
        if self.stopped is not None:
            self.stopped.set()
        log.info("simulator stopped")

    # ------------------------------------------------------------------ producing
    async def _produce(self):
        cfg = self.config
        tick_s = cfg.tick_s
        source = self.source
        start_s = None
        out = []
        reported_done = False
        max_batch = getattr(source, "max_batch", 0)
        pause_s = tick_s
        while True:
            await asyncio.sleep(pause_s)
            if start_s is None:
                if source.start_on_connect and not self._had_client:
                    continue
                start_s = time.monotonic()
            n = source.pull(time.monotonic() - start_s, out)
            # A full batch means we are behind the rate: only yield to the loop (readers,
            # pings, REST) instead of idling a whole tick.
            pause_s = 0 if max_batch and n >= max_batch else tick_s
            if out:
                self._dispatch(out)
                out = []
            if source.finished and not reported_done:
                reported_done = True
                log.info("replay finished: %d events served", self.events_generated)

    def _dispatch(self, events):
        """Fan ``events`` out to subscribers, write every connection once, then journal."""
        now_ms = time.time_ns() // 1000000
        self.tick_now_s = time.monotonic()
        live = self._live
        sf = self.stream_faults
        generated = self.generated
        fan = self._fan
        observe_depth = self._observe_depth   # None for Binance spot: one test per event
        observe_other = self._observe_other
        record = self.journal is not None
        journal_rows = [] if record else None
        n_events = 0
        for ev in events:
            kind = ev[0]
            if kind == EV_RAW:
                self._fan_raw(ev)
                continue
            sym = ev[1]
            n_events += 1
            if kind == EV_DEPTH:
                generated[sym] += 1
                if observe_depth is not None:
                    ev = observe_depth(ev)  # the venue's view of it (prev ids, checksum, ...)
                action = sf.depth_action(sym) if sf.depth_armed else faults.DELIVER
                if record:
                    journal_rows.append((ev, action != faults.DROP))
                if action == faults.DELIVER:
                    targets = live[sym][EV_DEPTH]
                    if targets:
                        fan(ev, targets, now_ms)
                    if self._held:
                        held = self._held.pop(sym, None)
                        if held is not None and targets:
                            fan(held, targets, now_ms)
                else:
                    self._depth_fault(action, ev, now_ms)
            else:
                if observe_other is not None:
                    ev = observe_other(ev)
                if record:
                    journal_rows.append((ev, True))
                targets = live[sym][kind]
                if targets:  # most quotes and trades have no subscriber: skip the call
                    fan(ev, targets, now_ms)
        self.events_generated += n_events
        send_ns = time.time_ns()  # right before the frames go to the transports
        for c in self.conns.values():
            if c.out:
                c.flush()
        if record:
            self.journal.write_events(journal_rows, send_ns)

    def _depth_fault(self, action, ev, now_ms):
        sym = ev[1]
        targets = self._live[sym][EV_DEPTH]
        detail = {"symbol": sym, "U": ev[2], "u": ev[3]}
        if action == faults.DROP:
            self.note_fault("drop_diff", detail)
            lost = getattr(self.dialect, "on_lost", None)
            if lost is not None and targets:    # lost in transit: a per-connection count moves on
                lost(targets)
        elif action == faults.DUPLICATE:
            self.note_fault("duplicate_diff", detail)
            if targets:
                self._fan(ev, targets, now_ms)
                self._fan(ev, targets, now_ms)
        elif action == faults.HOLD:
            self.note_fault("reorder_diffs", detail)
            prev = self._held.pop(sym, None)
            if prev is not None and targets:
                self._fan(prev, targets, now_ms)
            self._held[sym] = ev

    def _fan(self, ev, targets, now_ms):
        """Build the payload once per subscribed stream and queue the frame on each subscriber.

        ``targets`` is ``[(formatter, combined prefix, combined conns, raw conns)]`` for the
        streams of this event that have subscribers (see :meth:`_rebuild_subs`).
        """
        extra = ""
        if self._depth_extra and ev[0] == EV_DEPTH:
            extra = self._depth_extra
            self._depth_extra = ""
        delivered = 0
        for fmt, prefix, comb, raw in targets:
            payload = fmt(ev, now_ms, extra)
            if comb:
                text = (prefix + payload + "}").encode("ascii")  # dialect.combined(), inlined
                n = len(text)
                # text_frame(), inlined: this line runs for every event and stream
                frame = (bytes((0x81, n)) + text) if n < 126 else text_frame(text)
                for c in comb:
                    if c.special:
                        c.push_special(text)
                    else:
                        c.out.append(frame)
                delivered += len(comb)
            if raw:
                text = payload.encode("ascii")
                frame = text_frame(text)
                for c in raw:
                    if c.special:
                        c.push_special(text)
                    else:
                        c.out.append(frame)
                delivered += len(raw)
        if ev[0] == EV_DEPTH:
            self.sent[ev[1]] += delivered

    def _fan_raw(self, ev):
        """A captured message: the exact recorded text, wrapped or raw as the connection wants."""
        pair = self.subs.get(ev[1])
        self.events_generated += 1
        if pair is None:
            return
        comb, raw = pair
        for conns, text in ((comb, ev[2]), (raw, ev[3])):
            if not conns:
                continue
            data = text.encode("utf-8")
            frame = text_frame(data)
            for c in conns:
                if c.special:
                    c.push_special(data)
                else:
                    c.out.append(frame)

    # ------------------------------------------------------------------ housekeeping
    async def _housekeeping(self):
        cfg = self.config
        periods = [0.5]
        for value in (cfg.ping_interval_s, cfg.pong_timeout_s, cfg.idle_timeout_s,
                      cfg.book_keepalive_s, cfg.quote_resend_s):
            if value:
                periods.append(value / 10.0)
        interval_s = max(0.005, min(0.05, min(periods)))
        last_flush_s = time.monotonic()
        while True:
            await asyncio.sleep(interval_s)
            now = time.monotonic()
            if self._dialect_timer is not None:
                self._dialect_timer(now)
            for c in list(self.conns.values()):
                c.on_timer(now)
                unsent = c.backlog_bytes + (0 if c.closed else c.transport.get_write_buffer_size())
                if not c.closed and unsent > cfg.max_send_buffer_bytes:
                    log.warning("conn %d: %d bytes unsent (slow consumer): disconnecting",
                                c.id, unsent)
                    self.count_disconnect("slow_consumer")
                    c.drop("slow consumer", abort=True)
            if self._scheduled:
                self._run_scheduled(now)
            if self.journal is not None and now - last_flush_s >= 1.0:
                last_flush_s = now
                self.journal.flush()
            if cfg.duration_s and now - self.started_s >= cfg.duration_s:
                log.info("duration of %.1f s reached: stopping", cfg.duration_s)
                asyncio.get_running_loop().create_task(self.close())
                return

    def _schedule(self, spec):
        now = time.monotonic()
        at_s = spec.get("at_s")
        if not at_s:
            self.apply_fault(spec)
            if spec.get("every_s"):
                self._scheduled.append([now + spec["every_s"], spec, spec["every_s"]])
            return
        self._scheduled.append([now + at_s, spec, spec.get("every_s")])

    def _run_scheduled(self, now):
        keep = []
        for item in self._scheduled:
            if now >= item[0]:
                try:
                    self.apply_fault(item[1])
                except faults.FaultSpecError as exc:
                    log.warning("scheduled fault %s failed: %s", item[1].get("fault"), exc)
                if item[2]:
                    item[0] = now + item[2]
                    keep.append(item)
            else:
                keep.append(item)
        self._scheduled = keep

    # ------------------------------------------------------------------ connections
    def register(self, transport, session, peer):
        conn = WsConn(self, self._next_conn_id, transport, session, peer, time.monotonic())
        self._next_conn_id += 1
        self.connections_total += 1
        self.conns[conn.id] = conn
        self._had_client = True
        self._rebuild_subs()
        return conn

    def resubscribe(self, conn):
        self._rebuild_subs()

    def forget(self, conn):
        conn.closed = True
        if self.conns.pop(conn.id, None) is not None:
            self._rebuild_subs()

    def count_disconnect(self, reason):
        self.disconnects[reason] = self.disconnects.get(reason, 0) + 1

    def _rebuild_subs(self):
        """Stream -> subscribers index, and per symbol and event kind the streams that have
        subscribers; rebuilt on every (rare) subscription change so the hot path only indexes."""
        subs = {}
        for c in self.conns.values():
            if c.closed or c.closing or c.half_open:
                continue
            slot = 0 if c.session.combined else 1
            for s in c.session.delivered():
                pair = subs.get(s)
                if pair is None:
                    pair = ([], [])
                    subs[s] = pair
                pair[slot].append(c)
        live = {}
        for sym, by_kind in self._names.items():
            row = [None, [], [], []]       # indexed by EV_DEPTH, EV_TRADE, EV_QUOTE
            for kind, streams in by_kind.items():
                for stream, suffix in streams:
                    pair = subs.get(stream)
                    if pair is not None:
                        row[kind].append((self.dialect.formatter(suffix),
                                          self.dialect.combined_prefix(stream),
                                          pair[0], pair[1]))
            live[sym] = row
        self.subs = subs
        self._live = live

    def has_subscribers(self, symbol, kind):
        """True if some connection receives ``symbol``'s events of ``kind`` (EV_DEPTH, ...)."""
        row = self._live.get(symbol)
        return bool(row and row[kind])

    def send_to_stream(self, stream, text):
        """Send one text message now to every connection subscribed to ``stream`` (raw form:
        used by Bybit/OKX dialects for repeats and keepalives, which have no envelope)."""
        pair = self.subs.get(stream)
        if not pair:
            return 0
        data = text.encode("utf-8")
        frame = text_frame(data)
        sent = 0
        for conns in pair:
            for c in conns:
                if c.closed or c.closing or c.half_open:
                    continue
                if c.special:
                    c.push_special(data)
                else:
                    c.out.append(frame)
                c.flush()
                sent += 1
        return sent

    @staticmethod
    def now_ms():
        return time.time_ns() // 1000000

    def targets(self, conn_id):
        if conn_id is None:
            return [c for c in self.conns.values() if not c.closed]
        c = self.conns.get(conn_id)
        if c is None:
            raise faults.FaultSpecError("no open connection with id %r" % (conn_id,))
        return [c]

    # ------------------------------------------------------------------ faults
    def note_fault(self, name, detail):
        rec = {"fault": name}
        rec.update(detail)
        self.faults_applied.append(rec)
        if len(self.faults_applied) > 1000:
            del self.faults_applied[:500]
        if self.journal is not None:
            self.journal.write_fault(name, time.time_ns(), detail)

    def arm_depth_extra(self, extra_fields):
        """The next depth event carries these extra (unknown) JSON fields (unknown_event fault)."""
        self._depth_extra = extra_fields

    def apply_fault(self, spec):
        """Arm or perform one normalized fault (see ``faults.FAULT_PARAMS``)."""
        faultexec.execute(self, spec)

    # ------------------------------------------------------------------ status
    def status(self):
        return {
            "venue": self.dialect.VENUE,
            "symbols": self.symbols,
            "uptime_s": round(time.monotonic() - self.started_s, 3) if self.started_s else 0,
            "connections_open": len([c for c in self.conns.values() if not c.closed]),
            "connections_total": self.connections_total,
            "connections": [c.describe() for c in self.conns.values()],
            "messages_generated": dict(self.generated),
            "messages_sent": dict(self.sent),
            "events_generated": self.events_generated,
            "update_ids": {s: self.source.last_update_id(s) for s in self.symbols},
            "rate": getattr(self.source, "rate", None),
            "behind_msgs": getattr(self.source, "behind_msgs", 0),
            "replay_finished": self.source.finished,
            "faults_applied": list(self.faults_applied),
            "faults_pending": self.stream_faults.pending(),
            "snapshots_served": self.snapshots_served,
            "rest_requests": self.rest_requests,
            "pings_sent": self.pings_sent,
            "pongs_received": self.pongs_received,
            "disconnects": dict(self.disconnects),
            "venue_state": self.dialect.status() if hasattr(self.dialect, "status") else {},
        }

    # ------------------------------------------------------------------ HTTP
    def handle_upgrade(self, proto, req):
        """Validate the upgrade; answer 101 and return the new WsConn, or reject and return None."""
        return protocol.upgrade(self, proto, req)

    def handle_rest(self, proto, req):
        self.rest_requests += 1
        rest.handle(self, proto, req)


def _url_host(host):
    return "[%s]" % host if ":" in host else host


async def start_sim(config=None, **overrides):
    """Start a simulator in the running loop: ``SimConfig`` or keyword overrides of its fields."""
    if config is None:
        config = SimConfig(**overrides)
    elif overrides:
        config = config.replace(**overrides)
    config.validate()
    server = SimServer(config)
    return await server.start()
