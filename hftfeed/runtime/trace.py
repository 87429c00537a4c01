"""Sampling trace of the live hot path: where a message's microseconds go inside the daemon.

Why: the micro-benchmarks (``bench.py sections``) time each stage on messages fed in a loop, but
the live daemon receives bursts (several frames in one socket read) and sends one datagram per
frame, so a message can wait behind the parsing, packing and ``sendto`` of the messages that
arrived with it. Only stamps taken inside the running daemon show that waiting.

Off by default (config ``trace.sample_every`` = 0): nothing is installed and the hot path is the
plain one, not even a flag test. On, :class:`Trace` replaces a few bound methods by thin wrappers
(instance attributes: the classes are untouched) -- the connection's ``data_received`` and its
frame decoder, the router's ``handle`` and venue ``parse``, the publisher's pack calls and its
``_send`` -- and every ``sample_every``-th socket read is sampled: each message of that read is
stamped with ``time.perf_counter_ns()`` at every stage. An unsampled read costs one counter
decrement plus one flag test per wrapped call.

Stages (each a :class:`~hftfeed.runtime.stats.LatencyHistogram` of the time between two stamps of
one message):

====== ======================================================================================
decode socket read handed to the protocol -> every frame of the read decoded (one decoder pass
       per read, so all messages of a read share it; over TLS the read is the decrypted chunk)
queue  decoded -> this message's turn: the time it waited behind earlier messages of the read
parse  its turn -> venue message parsed into events
sync   parsed -> first publish call: sync engine and book applied (or trade/quote checks)
pack   first publish call -> last of its messages packed into the datagram buffer
send   packed -> the ``sendto`` that carried it returned (with ``publisher.flush`` "read" this
       includes waiting for the rest of the read)
total  socket read -> sent
====== ======================================================================================

Per sampled read it also counts the frames (messages) delivered and the datagrams sent
(``sendto`` calls, one per target), and times every ``sendto``. A message that publishes
nothing (buffered during a resync, a control message) has only decode, queue and parse.
"""

import json
import time

from hftfeed.runtime.stats import LatencyHistogram, format_ns

__all__ = ["STAGES", "Trace"]

STAGES = ("decode", "queue", "parse", "sync", "pack", "send", "total")
COUNTS = ("sendto_ns", "frames_per_read", "datagrams_per_read")
# Buckets 1/8 of an octave wide (percentiles at most 12.5 % high): coarse enough that one
# histogram's non-zero buckets fit one log line (app/logs.py bounds lines to 2048 characters).
SUB_BUCKET_BITS = 3


class Trace(object):
    """Per-stage histograms of sampled messages; see the module docstring.

    ``clock_ns`` is injectable for tests (default ``time.perf_counter_ns``: monotonic, the
    finest clock the interpreter has)."""

    def __init__(self, sample_every, clock_ns=time.perf_counter_ns):
        if int(sample_every) < 1:
            raise ValueError("sample_every must be >= 1, got %r" % (sample_every,))
        self.sample_every = int(sample_every)
        self._clock = clock_ns
        self.stages = {name: LatencyHistogram(sub_bucket_bits=SUB_BUCKET_BITS) for name in STAGES}
        self.sendto_ns = LatencyHistogram(sub_bucket_bits=SUB_BUCKET_BITS)
        self.frames_per_read = LatencyHistogram()       # values are counts (exact below 64)
        self.datagrams_per_read = LatencyHistogram()    # values are counts, not ns
        self.reads = 0
        self.sampled_reads = 0
        self._countdown = self.sample_every
        self.active = False          # inside a sampled read
        self._read_ns = 0
        self._decoded_ns = 0
        self._frames = 0
        self._datagrams = 0
        self._targets = 1            # sendto calls per datagram (A/B feeds: 2)
        # the message being handled
        self._msg_parsed_ns = 0
        self._msg_first_pub_ns = 0
        self._msg_packed_ns = 0
        self._msg_slot = -1          # its index in _pending, -1 when not pending
        self._msg_sent = False
        self._pending = []           # packed_ns of messages packed but not yet sent

    # -- installing ------------------------------------------------------------------------------

    def attach_publisher(self, publisher):
        """Wrap the publisher's pack calls and its send (before any message flows)."""
        self._targets = max(1, len(getattr(publisher, "targets", ())) or 1)
        for name in ("book", "trade", "quote", "status"):
            setattr(publisher, name, self._wrap_pack(getattr(publisher, name)))
        publisher._send = self._wrap_send(publisher._send)

    def attach_router(self, router):
        """Wrap a feed router's ``handle`` and venue parser (before its connections open: a
        connection binds ``router.handle`` when it is created)."""
        router.handle = self._wrap_handle(router.handle)
        router._parse = self._wrap_parse(router._parse)
        router.trace = self

    def attach_ws(self, client):
        """Wrap one WebSocket client's ``data_received`` and frame decoder."""
        client.data_received = self._wrap_read(client.data_received)
        conn = client._conn
        conn.receive_data = self._wrap_decode(conn.receive_data)

    # -- wrappers --------------------------------------------------------------------------------

    def _wrap_read(self, data_received):
        clock = self._clock

        def traced_data_received(data):
            self.reads += 1
            self._countdown -= 1
            if self._countdown > 0:
                return data_received(data)
            self._countdown = self.sample_every
            self.active = True
            self._frames = 0
            self._datagrams = 0
            del self._pending[:]
            self._read_ns = self._decoded_ns = clock()
            try:
                return data_received(data)
            finally:
                self.active = False
                if self._frames:
                    self.sampled_reads += 1
                    self.frames_per_read.record(self._frames)
                    self.datagrams_per_read.record(self._datagrams)
        return traced_data_received

    def _wrap_decode(self, receive_data):
        clock = self._clock

        def traced_receive_data(data):
            events = receive_data(data)
            if self.active:
                self._decoded_ns = now = clock()
                self.stages["decode"].record(now - self._read_ns)
            return events
        return traced_receive_data

    def _wrap_handle(self, handle):
        clock = self._clock
        stages = self.stages

        def traced_handle(link, text, recv_ns):
            if not self.active:
                return handle(link, text, recv_ns)
            start_ns = clock()
            self._frames += 1
            stages["queue"].record(start_ns - self._decoded_ns)
            self._msg_parsed_ns = 0
            self._msg_first_pub_ns = 0
            self._msg_slot = -1
            self._msg_sent = False
            try:
                return handle(link, text, recv_ns)
            finally:
                parsed_ns = self._msg_parsed_ns
                if parsed_ns:
                    stages["parse"].record(parsed_ns - start_ns)
                    first_ns = self._msg_first_pub_ns
                    if first_ns:
                        stages["sync"].record(first_ns - parsed_ns)
                        stages["pack"].record(self._msg_packed_ns - first_ns)
        return traced_handle

    def _wrap_parse(self, parse):
        clock = self._clock

        def traced_parse(text):
            events = parse(text)
            if self.active:
                self._msg_parsed_ns = clock()
            return events
        return traced_parse

    def _wrap_pack(self, pack):
        clock = self._clock
        pending = self._pending

        def traced_pack(*args):
            if not self.active or not self._msg_parsed_ns:
                return pack(*args)      # outside a sampled message (status on a timer, ...)
            if not self._msg_first_pub_ns:
                self._msg_first_pub_ns = clock()
            pack(*args)
            self._msg_packed_ns = now = clock()
            if self._msg_slot >= 0:
                pending[self._msg_slot] = now
            elif not self._msg_sent:
                self._msg_slot = len(pending)
                pending.append(now)
        return traced_pack

    def _wrap_send(self, send):
        clock = self._clock
        stages = self.stages
        pending = self._pending

        def traced_send(length, send_ns):
            if not self.active:
                return send(length, send_ns)
            before_ns = clock()
            send(length, send_ns)
            sent_ns = clock()
            self._datagrams += self._targets
            self.sendto_ns.record((sent_ns - before_ns) // self._targets)
            if pending:
                read_ns = self._read_ns
                for packed_ns in pending:
                    stages["send"].record(sent_ns - packed_ns)
                    stages["total"].record(sent_ns - read_ns)
                del pending[:]
                if self._msg_slot >= 0:
                    self._msg_slot = -1
                    self._msg_sent = True
        return traced_send

    # -- reporting -------------------------------------------------------------------------------

    def summary(self):
        """JSON-ready figures of the interval: stage percentiles (ns) and per-read counts."""
        return merge_exports([self.export()])

    def export(self):
        """Every sample of the interval (histograms exported bucket by bucket), so a reader
        such as ``bench.py`` can merge intervals exactly (:func:`merge_exports`)."""
        out = {"sample_every": self.sample_every, "reads": self.reads,
               "sampled_reads": self.sampled_reads,
               "stages": {name: self.stages[name].export() for name in STAGES},
               "sendto_ns": self.sendto_ns.export(),
               "frames_per_read": self.frames_per_read.export(),
               "datagrams_per_read": self.datagrams_per_read.export()}
        return out

    def export_lines(self, t_unix_ns):
        """:meth:`export` as ``[(key, json text)]``, one histogram a line (a log line is
        bounded; the whole export is not): key ``reads`` carries the counters, the others a
        histogram each; every line carries ``t_unix_ns`` so a reader can regroup them
        (:func:`parse_export_lines`)."""
        doc = self.export()
        lines = [("reads", {"sample_every": doc["sample_every"], "reads": doc["reads"],
                            "sampled_reads": doc["sampled_reads"]})]
        lines += [(name, doc["stages"][name]) for name in STAGES]
        lines += [(name, doc[name]) for name in COUNTS]
        return [(key, json.dumps(dict(data, t_unix_ns=t_unix_ns), separators=(",", ":")))
                for key, data in lines]

    def line(self):
        """The short stats-line part: sampled reads, frames and sendto calls per read, and the
        p50/p99 of the stages that matter most."""
        st = self.stages
        return ("trace %d reads: %.1f frames/read, %.1f sendto/read, queue p50 %s, send p50 %s, "
                "read->sent p50 %s p99 %s"
                % (self.sampled_reads, self.frames_per_read.mean_ns,
                   self.datagrams_per_read.mean_ns, format_ns(st["queue"].percentile(50)),
                   format_ns(st["send"].percentile(50)), format_ns(st["total"].percentile(50)),
                   format_ns(st["total"].percentile(99))))

    def reset(self):
        """Start a new interval (after each stats line)."""
        for hist in self.stages.values():
            hist.reset()
        for hist in (self.sendto_ns, self.frames_per_read, self.datagrams_per_read):
            hist.reset()
        self.reads = 0
        self.sampled_reads = 0


def parse_export_lines(pairs):
    """``[(key, json text)]`` written by :meth:`Trace.export_lines` (several intervals, in any
    order) -> ``[(t_unix_ns, export dict)]`` of the intervals that arrived whole."""
    by_time = {}
    for key, text in pairs:
        try:
            data = json.loads(text)
            t_unix_ns = data.pop("t_unix_ns")
        except (ValueError, KeyError):
            continue        # a line cut by the log's length bound: its interval is incomplete
        by_time.setdefault(t_unix_ns, {})[key] = data
    out = []
    for t_unix_ns in sorted(by_time):
        parts = by_time[t_unix_ns]
        if "reads" not in parts or any(k not in parts for k in STAGES + COUNTS):
            continue
        doc = dict(parts["reads"])
        doc["stages"] = {name: parts[name] for name in STAGES}
        for name in COUNTS:
            doc[name] = parts[name]
        out.append((t_unix_ns, doc))
    return out


def merge_exports(exports):
    """Merge :meth:`Trace.export` dicts (several stats intervals) into one :meth:`summary`-
    shaped dict; None when there is nothing to merge."""
    if not exports:
        return None
    merged = {}
    reads = sampled = 0
    for doc in exports:
        reads += doc["reads"]
        sampled += doc["sampled_reads"]
        items = [("stage:" + k, v) for k, v in doc["stages"].items()] + [
            (k, doc[k]) for k in ("sendto_ns", "frames_per_read", "datagrams_per_read")]
        for key, data in items:
            hist = LatencyHistogram.from_export(data)
            if key in merged:
                merged[key].merge(hist)
            else:
                merged[key] = hist
    out = {"sample_every": exports[-1]["sample_every"], "reads": reads, "sampled_reads": sampled,
           "stages": {name: merged["stage:" + name].snapshot((50, 99)) for name in STAGES
                      if "stage:" + name in merged},
           "sendto_ns": merged["sendto_ns"].snapshot((50, 99))}
    for name in ("frames_per_read", "datagrams_per_read"):
        hist = merged[name]
        out[name] = {"count": hist.count, "mean": round(hist.mean_ns, 2),
                     "p50": hist.percentile(50), "p99": hist.percentile(99), "max": hist.max_ns}
    return out
