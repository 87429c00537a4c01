"""Prometheus metrics: the daemon's counters in the text exposition format (version 0.0.4),
served by a tiny asyncio HTTP endpoint (``"metrics": {"listen": "127.0.0.1:9102"}``).

Why a hand-written endpoint: the daemon is standard library only, and the format is a few lines
of text. Why it cannot hurt the hot path: the page is rendered only when scraped (there is no
per-update work for metrics; every figure is read from counters the daemon keeps anyway), the
server runs on the daemon's event loop between frames, and it is bounded: one request line and
headers of at most ``MAX_REQUEST_BYTES``, ``REQUEST_DEADLINE_S`` to send them and to take the
answer, at most ``MAX_CONNECTIONS`` at once (more are closed at once). docs/operations.md
lists every series and measures a 1 s scrape against the feed's latency.

Naming follows Prometheus conventions: ``hftfeed_`` prefix, ``_total`` on counters, base units
(seconds, bytes) in the name, labels ``channel`` (the publisher's channel, on every series),
``venue``/``symbol``/``instrument_id`` on per-instrument series.
"""

import asyncio
import logging
import os
import platform
import sys
import time

from hftfeed import __version__
from hftfeed.codecs import wire
from hftfeed.runtime import hw

log = logging.getLogger("hftfeed.metrics")

MAX_REQUEST_BYTES = 8192
REQUEST_DEADLINE_S = 2.0
MAX_CONNECTIONS = 8
PROCESS_FACTS_TTL_S = 5.0     # memory, socket drops, pinned core: refreshed at most this often
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds (seconds) of the latency histogram's buckets; the daemon's own log-linear
# histogram is finer, so each Prometheus bucket sums the fine buckets wholly below its bound.
LATENCY_BUCKETS_S = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                     0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LATENCY_LABELS = tuple(repr(b) for b in LATENCY_BUCKETS_S)

# (FeedStats attribute, metric name, help): one row per counter, the only place they are named
FEED_COUNTERS = (
    ("messages_in", "hftfeed_messages_received_total", "Venue messages received."),
    ("book_updates", "hftfeed_book_updates_total", "Depth updates applied to a live book."),
    ("levels_applied", "hftfeed_book_levels_applied_total", "Price levels in those updates."),
    ("trades", "hftfeed_trades_total", "Trades published."),
    ("quotes", "hftfeed_quotes_total", "Best bid/offer quotes published."),
    ("gaps", "hftfeed_gaps_total", "Update-id gaps and checksum mismatches detected."),
    ("resyncs", "hftfeed_resyncs_total", "Instrument resynchronisations started by a gap."),
    ("connects", "hftfeed_connects_total", "WebSocket connections opened."),
    ("connect_failures", "hftfeed_connect_failures_total", "WebSocket connection attempts "
                                                            "that failed."),
    ("reconnects", "hftfeed_reconnects_total", "Connections lost and replaced."),
    ("silent_disconnects", "hftfeed_silent_disconnects_total", "Connections dropped for "
                                                                 "silence."),
    ("data_silent_disconnects", "hftfeed_data_silent_disconnects_total", "Connections dropped "
     "for keepalives without market data."),
    ("bad_ids", "hftfeed_bad_ids_total", "Updates, quotes and snapshots refused for ids outside "
                                         "the stream."),
    ("resync_timeouts", "hftfeed_resync_timeouts_total", "Resyncs started over after their "
                                                         "deadline."),
    ("ack_timeouts", "hftfeed_ack_timeouts_total", "Connections dropped for unacknowledged "
                                                   "subscriptions."),
    ("rollovers", "hftfeed_rollovers_total", "Make-before-break connection switches."),
    ("bad_messages", "hftfeed_bad_messages_total", "Malformed venue messages dropped."),
    ("unknown_symbols", "hftfeed_unknown_symbol_messages_total", "Messages for symbols not "
                                                                 "configured."),
    ("snapshots", "hftfeed_snapshots_total", "REST snapshots loaded."),
    ("snapshot_errors", "hftfeed_snapshot_errors_total", "REST snapshot requests that failed."),
    ("rate_limited", "hftfeed_rate_limited_total", "HTTP 429/418 answers from the venue."),
    ("feed_crashes", "hftfeed_feed_crash_restarts_total", "Feed tasks restarted after a bug."),
    ("venue_errors", "hftfeed_venue_errors_total", "Requests the venue refused."),
    ("instruments_loaded", "hftfeed_instrument_details_loaded_total", "Instrument details (D "
                                                                       "messages) loaded."),
    ("instrument_errors", "hftfeed_instrument_list_errors_total", "Instrument lists that could "
                                                                  "not be loaded."),
    ("instruments_refused", "hftfeed_instrument_details_refused_total", "Instrument details "
                                                                         "refused as absurd."),
    ("instruments_missing", "hftfeed_instruments_missing_total", "Configured symbols missing "
                                                                 "from the venue's list."),
)
PUBLISHER_COUNTERS = (
    ("packets_sent", "hftfeed_udp_packets_sent_total", "UDP datagrams sent."),
    ("messages_sent", "hftfeed_udp_messages_sent_total", "Protocol messages sent."),
    ("bytes_sent", "hftfeed_udp_sent_bytes_total", "UDP payload bytes sent."),
    ("send_errors", "hftfeed_udp_send_errors_total", "UDP sends that failed."),
)


def escape_label(value):
    """A label value as the exposition format wants it: backslash, quote and newline escaped."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_value(value):
    if isinstance(value, float):
        if value != value:
            return "NaN"
        if value in (float("inf"), float("-inf")):
            return "+Inf" if value > 0 else "-Inf"
        return repr(value)
    return str(int(value))


_TEXT_CACHE = {}          # (name, labels) -> "name{labels}" and family headers: built once
_TEXT_CACHE_MAX = 100000  # bounded: cleared if instruments keep changing


def _cached(key, build):
    text = _TEXT_CACHE.get(key)
    if text is None:
        if len(_TEXT_CACHE) >= _TEXT_CACHE_MAX:
            _TEXT_CACHE.clear()
        text = _TEXT_CACHE[key] = build()
    return text


class Page(object):
    """Accumulates families: HELP and TYPE once per name, then its samples. Header lines and
    ``name{labels}`` prefixes are cached across scrapes: a scrape formats only the values."""

    def __init__(self):
        self.lines = []

    def family(self, name, kind, help_text):
        self.lines.append(_cached((name, kind, help_text), lambda: "# HELP %s %s\n# TYPE %s %s"
                                  % (name, help_text, name, kind)))

    def sample(self, name, labels, value):
        head = _cached((name, labels), lambda: "%s{%s}" % (name, ",".join(
            '%s="%s"' % (k, escape_label(v)) for k, v in labels)) if labels else name)
        self.lines.append(head + " " + format_value(value))

    def one(self, name, kind, help_text, labels, value):
        self.family(name, kind, help_text)
        self.sample(name, labels, value)

    def text(self):
        return "\n".join(self.lines) + "\n"


def histogram_buckets(hists, bounds_s):
    """Cumulative counts at each bound (seconds) over one or more stats.LatencyHistogram."""
    bounds_ns = [int(round(b * 1e9)) for b in bounds_s]
    cumulative = [0] * len(bounds_ns)
    for hist in hists:
        for high_ns, n in hist.nonzero_buckets():
            for j, bound in enumerate(bounds_ns):
                if high_ns <= bound:
                    cumulative[j] += n
    return cumulative


def read_vm_bytes(fields):
    """{field: bytes} for ``VmRSS``-style lines of /proc/self/status, in one read."""
    out = dict.fromkeys(fields, 0)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in out:
                    parts = rest.split()
                    if parts and parts[0].isdigit():
                        out[name] = int(parts[0]) * 1024
    except OSError as exc:
        log.debug("cannot read /proc/self/status: %s", exc)
    return out


def pinned_core():
    """The one CPU this process may run on, or -1 when it may run on several."""
    try:
        cpus = hw.get_cpu_affinity(0)
    except OSError:
        return -1
    return next(iter(cpus)) if len(cpus) == 1 else -1


def socket_drops(sock):
    """Kernel drop counter of ``sock`` (the last column of /proc/self/net/udp[6]), or None."""
    if sock is None:
        return None
    try:
        inode = os.fstat(sock.fileno()).st_ino
    except OSError:
        return None
    for name in ("udp", "udp6"):
        try:
            with open("/proc/self/net/" + name) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if len(cols) >= 13 and cols[9] == str(inode):
                return int(cols[-1])
    return None


class DaemonMetrics(object):
    """Renders one daemon's state.

    Why the latency histogram is folded in at each stats line (``absorb_latency``) and not at
    each scrape: re-bucketing the daemon's ~1000 fine buckets costs a scrape about a
    millisecond of event-loop time under PyPy's interpreter; done once per ``stats_interval_s``
    (where the stats line walks the same array for its percentiles) a scrape only prints 17
    numbers. The histogram is therefore as of the last stats line."""

    def __init__(self, daemon, freshness):
        self.daemon = daemon
        self.freshness = freshness
        self.latency_buckets = [0] * len(LATENCY_BUCKETS_S)   # cumulative, per bound
        self.latency_count = 0
        self.latency_sum_ns = 0
        self.started_s = time.time()
        self._facts = None            # (mono ns, RSS/VmLck dict, drops, pinned core)
        self.render_ns_last = 0       # the cost of a scrape to the event loop, for the page
        self.render_ns_max = 0
        self.renders = 0

    def absorb_latency(self, hist):
        """Called before the stats line resets its interval histogram."""
        if not hist.count:
            return
        for j, n in enumerate(histogram_buckets([hist], LATENCY_BUCKETS_S)):
            self.latency_buckets[j] += n
        self.latency_count += hist.count
        self.latency_sum_ns += hist.total_ns

    def render(self, now_mono_ns=None):
        """The whole page; its own duration is on the next page (hftfeed_metrics_render_*)."""
        start_ns = time.perf_counter_ns()
        text = self._render(now_mono_ns)
        elapsed_ns = time.perf_counter_ns() - start_ns
        self.renders += 1
        self.render_ns_last = elapsed_ns
        if elapsed_ns > self.render_ns_max:
            self.render_ns_max = elapsed_ns
        return text

    def _render(self, now_mono_ns):
        d = self.daemon
        now_mono_ns = time.monotonic_ns() if now_mono_ns is None else now_mono_ns
        channel = str(d.publisher.channel) if d.publisher is not None else ""
        ch = (("channel", channel),)
        page = Page()
        page.one("hftfeed_build_info", "gauge", "Version and interpreter (value 1).",
                 ch + (("version", __version__), ("implementation",
                       platform.python_implementation()),
                       ("python", sys.version.split()[0])), 1)
        page.one("process_start_time_seconds", "gauge", "Start time, seconds since the epoch.",
                 ch, float(self.started_s))
        self._instruments(page, ch, now_mono_ns)
        by_venue = sorted(d.stats_by_venue().items())
        for attr, name, help_text in FEED_COUNTERS:
            page.family(name, "counter", help_text)
            for venue, stats in by_venue:
                page.sample(name, ch + (("venue", venue),), getattr(stats, attr))
        if d.publisher is not None:
            counters = d.publisher.counters()
            for attr, name, help_text in PUBLISHER_COUNTERS:
                page.one(name, "counter", help_text, ch, counters[attr])
            drops = self._process_facts(now_mono_ns)[2]
            if drops is not None:
                page.one("hftfeed_udp_socket_drops_total", "counter",
                         "Datagrams the kernel dropped on the publisher socket.", ch, drops)
        self._latency(page, ch)
        gc = d.gc_pauses
        if gc.installed:
            page.one("hftfeed_gc_pauses_total", "counter", "Garbage collections (pauses).", ch,
                     gc.count)
            page.one("hftfeed_gc_pause_seconds_total", "counter", "Time spent in them.", ch,
                     gc.total_ns / 1e9)
            page.one("hftfeed_gc_pause_max_seconds", "gauge", "Longest single pause.", ch,
                     gc.max_ns / 1e9)
        jit = d.jit
        if jit.installed:
            page.one("hftfeed_jit_compiled_total", "counter",
                     "Loops and bridges PyPy's JIT compiled (rises during warm-up).", ch,
                     jit.compiled)
            page.one("hftfeed_jit_aborts_total", "counter", "Traces PyPy's JIT abandoned.", ch,
                     jit.aborts)
        memory = self._process_facts(now_mono_ns)[1]
        page.one("process_resident_memory_bytes", "gauge", "Resident memory (VmRSS).", ch,
                 memory["VmRSS"])
        page.one("hftfeed_locked_memory_bytes", "gauge", "Locked memory (VmLck).", ch,
                 memory["VmLck"])
        page.one("hftfeed_pinned_cpu", "gauge", "The CPU the daemon is pinned to (-1: none).",
                 ch, self._process_facts(now_mono_ns)[3])
        page.one("hftfeed_metrics_render_seconds", "gauge", "How long the previous scrape held "
                 "the event loop.", ch, self.render_ns_last / 1e9)
        page.one("hftfeed_metrics_render_max_seconds", "gauge", "The longest scrape so far.", ch,
                 self.render_ns_max / 1e9)
        return page.text()

    def _process_facts(self, now_mono_ns):
        """/proc and affinity reads cost ~0.2-0.4 ms each under PyPy: read at most every
        PROCESS_FACTS_TTL_S, not at every scrape."""
        facts = self._facts
        if facts is None or now_mono_ns - facts[0] > PROCESS_FACTS_TTL_S * 1e9:
            sock = self.daemon.publisher.sock if self.daemon.publisher is not None else None
            facts = self._facts = (now_mono_ns, read_vm_bytes(("VmRSS", "VmLck")),
                                   socket_drops(sock), pinned_core())
        return facts

    def _instruments(self, page, ch, now_mono_ns):
        rows = []
        for feed in self.daemon.feeds:
            for inst in feed.instruments.values():
                labels = ch + (("venue", feed.venue.NAME), ("symbol", inst.symbol),
                               ("instrument_id", str(inst.instrument_id)))
                rows.append((labels, inst))
        page.family("hftfeed_instrument_state", "gauge",
                    "Published state: 0 none yet, 1 live, 2 resyncing, 3 disconnected.")
        for labels, inst in rows:
            page.sample("hftfeed_instrument_state", labels, inst.state)
        page.family("hftfeed_instrument_live", "gauge", "1 when the instrument is live.")
        for labels, inst in rows:
            page.sample("hftfeed_instrument_live", labels,
                        1 if inst.state == wire.STATE_LIVE else 0)
        page.family("hftfeed_instrument_last_update_age_seconds", "gauge",
                    "Seconds since the instrument's book, trades or quote last changed "
                    "(since start if never; sampled every 0.1 s).")
        for labels, inst in rows:
            page.sample("hftfeed_instrument_last_update_age_seconds", labels,
                        self.freshness.age_s(inst, now_mono_ns))

    def _latency(self, page, ch):
        name = "hftfeed_latency_seconds"
        page.family(name, "histogram", "Exchange frame received to UDP datagram sent (as of "
                    "the last stats line).")
        for label, count in zip(LATENCY_LABELS, self.latency_buckets):
            page.sample(name + "_bucket", ch + (("le", label),), count)
        page.sample(name + "_bucket", ch + (("le", "+Inf"),), self.latency_count)
        page.sample(name + "_sum", ch, self.latency_sum_ns / 1e9)
        page.sample(name + "_count", ch, self.latency_count)


class MetricsServer(object):
    """``GET /metrics`` on one TCP address; every other path 404, every other method 405."""

    def __init__(self, render, host, port):
        self.render = render
        self.host = host
        self.port = port
        self.server = None
        self.active = 0
        self.served = 0
        self.refused = 0
        self.bad_requests = 0
        self._tasks = set()

    async def start(self):
        self.server = await asyncio.start_server(self._handle, self.host, self.port,
                                                 limit=MAX_REQUEST_BYTES)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def close(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        tasks = list(self._tasks)       # requests in progress end with the server
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _handle(self, reader, writer):
        if self.active >= MAX_CONNECTIONS:
            self.refused += 1
            writer.close()
            return
        self.active += 1
        task = asyncio.current_task() if hasattr(asyncio, "current_task") else None
        if task is not None:
            self._tasks.add(task)
        try:
            await asyncio.wait_for(self._serve(reader, writer), REQUEST_DEADLINE_S)
        except (asyncio.TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                ValueError, ConnectionError, OSError) as exc:
            self.bad_requests += 1
            log.debug("metrics: request dropped: %s", type(exc).__name__)
        finally:
            self.active -= 1
            self._tasks.discard(task)
            writer.close()

    async def _serve(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        request_line = head.split(b"\r\n", 1)[0].split()
        if len(request_line) != 3:
            await self._reply(writer, 400, "text/plain", b"bad request\n")
            return
        method, target = request_line[0], request_line[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            await self._reply(writer, 405, "text/plain", b"only GET\n")
            return
        if target != b"/metrics":
            await self._reply(writer, 404, "text/plain", b"see /metrics\n")
            return
        body = self.render().encode("utf-8")
        self.served += 1
        await self._reply(writer, 200, CONTENT_TYPE, body, head_only=method == b"HEAD")

    async def _reply(self, writer, status, content_type, body, head_only=False):
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found",
                  405: "Method Not Allowed"}[status]
        writer.write(("HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
                      "Connection: close\r\n\r\n" % (status, reason, content_type, len(body))
                      ).encode("ascii"))
        if not head_only:
            writer.write(body)
        await writer.drain()


def parse_exposition(text):
    """Text exposition -> {metric name: [(labels dict, float value)]} (for health and tests).
    Handles the subset this module writes: no timestamps, escaped label values."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        labels = {}
        if "{" in line:
            name, rest = line.split("{", 1)
            body, value_text = rest.rsplit("}", 1)
            labels = _parse_labels(body)
        else:
            name, value_text = line.split(" ", 1)
        out.setdefault(name, []).append((labels, float(value_text.strip())))
    return out


def _parse_labels(body):
    labels = {}
    i = 0
    while i < len(body):
        eq = body.index("=", i)
        key = body[i:eq].strip(", ")
        j = eq + 2
        value = []
        while body[j] != '"':
            if body[j] == "\\":
                j += 1
                value.append("\n" if body[j] == "n" else body[j])
            else:
                value.append(body[j])
            j += 1
        labels[key] = "".join(value)
        i = j + 1
    return labels
