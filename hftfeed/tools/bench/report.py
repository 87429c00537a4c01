"""Tables for the terminal, the issue's targets, and ``bench.py compare A.json B.json``.

Every cell is ``median (min-max)`` over the measured repetitions; columns are interpreters (and
variants) side by side; latencies are also given as a multiple of the floor measured in the
same run.
"""

from hftfeed.tools.bench.common import ratio

LAT_KEYS = ("p50_ns", "p90_ns", "p99_ns", "p99.9_ns", "max_ns")
TRACE_STAGES = ("decode", "queue", "parse", "sync", "pack", "send", "total")   # runtime/trace.py


# -- formatting ------------------------------------------------------------------------------------

def si(value):
    """12345678 -> "12.3M", 1234 -> "1.23k", 12.5 -> "12.5"."""
    if value is None:
        return "-"
    v = float(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= limit:
            return "%.3g%s" % (v / limit, suffix)
    return "%.3g" % v


def us(ns):
    """ns -> microseconds text: 3 significant digits below 1000 us, whole microseconds above."""
    if ns is None:
        return "-"
    value = ns / 1000.0
    return "%.3g" % value if value < 1000 else "%.0f" % value


def cell(summary, fmt=si):
    """A summarize() dict -> "median (min-max)"; a single repetition shows the value only."""
    if not summary or summary.get("median") is None:
        return "-"
    if summary.get("n", 0) <= 1 or summary["min"] == summary["max"]:
        return fmt(summary["median"])
    return "%s (%s-%s)" % (fmt(summary["median"]), fmt(summary["min"]), fmt(summary["max"]))


def times(x):
    return "-" if x is None else "%.2fx" % x


def table(title, header, rows, out):
    """Print a plain-text table with aligned columns."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    out.write("\n== %s ==\n" % title)
    line = "  ".join(h.ljust(widths[i]) for i, h in enumerate(header))
    out.write(line.rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in rows:
        out.write("  ".join(text.ljust(widths[i]) for i, text in enumerate(row)).rstrip() + "\n")


def _get(d, *path):
    for key in path:
        if not isinstance(d, dict) or key not in d:
            return None
        d = d[key]
    return d


# -- sections --------------------------------------------------------------------------------------

def print_micro(results, labels, out):
    rows = []
    for label in labels:
        parse = _get(results, label, "parse", "datasets") or {}
        for dataset, figures in parse.items():
            for path in ("fast_scanner", "json_path"):
                rows.append(("parse %s %s msgs/s" % (dataset, path), label,
                             cell(_get(figures, path, "msgs_per_s")),
                             cell(_get(figures, path, "levels_per_s"))))
    if rows:
        _side_by_side("parse: Binance depth JSON -> scaled-int levels (msgs/s | levels/s)",
                      rows, labels, out, two=True)
    rows = []
    for label in labels:
        book = _get(results, label, "book")
        if not book:
            continue
        for name in ("array_book", "naive_dict_sort"):
            rows.append(("%s apply level updates/s" % name, label,
                         cell(_get(book, name, "apply_level_updates_per_s"))))
            rows.append(("%s diffs/s (apply + top-20 out)" % name, label,
                         cell(_get(book, name, "cycle_diffs_per_s"))))
            rows.append(("%s snapshot loads/s" % name, label,
                         cell(_get(book, name, "snapshot_loads_per_s"))))
        rows.append(("ratio array/naive: apply | cycle | snapshot", label,
                     "%s | %s | %s" % (times(book.get("ratio_apply_level_updates")),
                                       times(book.get("ratio_cycle_diffs")),
                                       times(book.get("ratio_snapshot_loads")))))
    if rows:
        _side_by_side("book: realistic mix, array book vs naive dict+sort book (same run)",
                      rows, labels, out)
    rows = []
    for label in labels:
        w = _get(results, label, "wire")
        if w:
            rows.append(("pack_book 20+20 levels, B msgs/s", label,
                         cell(_get(w, "pack_book", "msgs_per_s"))))
            rows.append(("packet header + B, msgs/s", label,
                         cell(_get(w, "header_plus_book", "msgs_per_s"))))
    if rows:
        _side_by_side("wire: B messages packed into a preallocated buffer", rows, labels, out)


def _side_by_side(title, rows, labels, out, two=False):
    names = []
    cells = {}
    for row in rows:
        if row[0] not in names:
            names.append(row[0])
        cells[(row[0], row[1])] = " | ".join(row[2:]) if two else row[2]
    header = ["figure"] + list(labels)
    table(title, header, [[n] + [cells.get((n, l), "-") for l in labels] for n in names], out)


def print_floor(results, labels, out):
    rows = []
    for mode in ("blocking", "busy_poll"):
        for key in LAT_KEYS:
            row = ["%s one-way %s us" % (mode, key[:-3])]
            for label in labels:
                f = _get(results, label, "floor", mode)
                measured = bool(f) and bool(f.get("p50_ns"))
                text = us(f.get(key)) if measured else "-"
                if f and f.get("timed_out"):
                    text += (" (timed out after %d trips: cores busy)" % f.get("count", 0)
                             if measured else " (timed out: cores busy)")
                row.append(text)
            rows.append(row)
    if any(_get(results, l, "floor") for l in labels):
        table("floor: two-process UDP ping-pong on loopback, one way = RTT/2 (same run)",
              ["figure"] + list(labels), rows, out)


E2E_ROWS = (
    ("offered msgs/s", "offered_msgs_per_s", si),
    ("delivered msgs/s", "delivered_msgs_per_s", si),
    ("lost msgs (seq gaps)", "lost_messages", si),
    ("resyncs", "resyncs", si),
    ("daemon CPU %", "daemon_cpu_pct", si),
    ("  of which system %", "daemon_cpu_system_pct", si),
    ("daemon peak RSS MB", "daemon_peak_rss_kb", lambda kb: si(kb / 1024.0)),
    ("daemon CPU us/msg", "daemon_cpu_us_per_msg", si),
    ("longest GC pause us", "daemon_gc_max_pause_ns", us),
    ("JIT compilations in window", "daemon_jit_compiled", si),
)
# (row text, latency, percentile) of the ratios to the relay floor of the same repetition
RELAY_ROWS = (("daemon-internal p50 x relay floor", "latency_daemon", "p50_ns"),
              ("daemon-internal p99 x relay floor", "latency_daemon", "p99_ns"),
              ("wire-to-wire p50 x relay floor", "latency_wire_to_wire", "p50_ns"),
              ("wire-to-wire p99 x relay floor", "latency_wire_to_wire", "p99_ns"))


def print_e2e(results, labels, key, out, only=None):
    """One table per mode; columns: interpreter x variant."""
    columns = []
    for label in labels:
        e2e = _get(results, label, key)
        if not e2e:
            continue
        for variant in e2e["variants"]:
            if only is None or variant in only:
                columns.append((label, variant))
    if not columns:
        return
    first = _get(results, columns[0][0], key)
    for mode in first["modes"]:
        rows = []
        for name, field, fmt in E2E_ROWS:
            rows.append([name] + [cell(_get(results, l, key, "variants", v, mode, field), fmt)
                                  for l, v in columns])
        for lat, label_text, hops in (("latency_daemon", "daemon-internal", 1),
                                      ("latency_wire_to_wire", "wire-to-wire", 2)):
            for k in LAT_KEYS:
                row = ["%s %s us (x floor)" % (label_text, k[:-3])]
                any_value = False
                for l, v in columns:
                    s = _get(results, l, key, "variants", v, mode, lat, k)
                    if s is None or s.get("median") is None:
                        row.append("-")
                        continue
                    any_value = True
                    floor = _get(results, l, "floor", _floor_mode(results, l, key, v))
                    f = floor.get(k) if floor and not floor.get("timed_out") else None
                    r = ratio(s["median"], hops * f if f else None)
                    row.append("%s (%s)" % (cell(s, us), times(r)))
                if any_value:
                    rows.append(row)
        for text, lat, k in RELAY_ROWS:
            row = [text] + [cell(_get(results, l, key, "variants", v, mode, "vs_relay", lat, k),
                                 times) for l, v in columns]
            if any(c != "-" for c in row[1:]):
                rows.append(row)
        for stage in TRACE_STAGES:
            for k in ("p50_ns", "p99_ns"):
                row = ["trace %s %s us" % (stage, k[:-3])] + [
                    cell(_get(results, l, key, "variants", v, mode, "trace", "stages", stage, k),
                         us) for l, v in columns]
                if any(c != "-" for c in row[1:]):
                    rows.append(row)
        for name in ("frames_per_read_mean", "datagrams_per_read_mean"):
            row = ["trace %s" % name.replace("_", " ")] + [
                cell(_get(results, l, key, "variants", v, mode, "trace", name), si)
                for l, v in columns]
            if any(c != "-" for c in row[1:]):
                rows.append(row)
        rate = first["rates"][mode]
        shape = ""
        if first.get("shape") == "burst" and mode == "fixed":
            shape = (", burst shape: %d symbols x %g boundaries/s with trades and quotes"
                     % (first["symbols"], first["boundaries_per_s"]))
            rate = first["symbols"] * first["boundaries_per_s"]
        title = ("e2e %s rate (simulator asked for %s depth msgs/s%s): sim -> daemon -> UDP -> "
                 "receiver, %d rep(s), %g s windows after %g s warm-up"
                 % (mode, si(rate), shape, first["reps"], first["seconds"], first["warmup_s"]))
        table(title, ["figure"] + ["%s %s" % c for c in columns], rows, out)


def _floor_mode(results, label, key, variant):
    """The floor a variant is compared with: busy-poll when the daemon busy-polls."""
    on = _get(results, label, key, "variants", variant, "on") or []
    return "busy_poll" if "busy_poll" in on else "blocking"


def _mb(kb):
    return si(kb / 1024.0)


# (header, mode, path in the aggregate, formatter): throughput from max rate, the rest fixed
PHASE1_COLUMNS = (
    ("max msgs/s", "max", ("delivered_msgs_per_s",), si),
    ("p50 us", "fixed", ("latency_daemon", "p50_ns"), us),
    ("p99 us", "fixed", ("latency_daemon", "p99_ns"), us),
    ("p99.9 us", "fixed", ("latency_daemon", "p99.9_ns"), us),
    ("w2w p50 us", "fixed", ("latency_wire_to_wire", "p50_ns"), us),
    ("CPU %", "fixed", ("daemon_cpu_pct",), si),
    ("RSS MB", "fixed", ("daemon_peak_rss_kb",), _mb),
)


def _band(summary):
    """The baseline's own spread as ratios to its median: a variant whose ratio falls inside
    it is not distinguishable from the baseline on this machine."""
    if not summary or not summary.get("median"):
        return "-"
    return "%.2f-%.2fx" % (summary["min"] / summary["median"], summary["max"] / summary["median"])


def print_phase1(results, labels, out, key="phase1"):
    for label in labels:
        p = _get(results, label, key)
        if not p:
            continue
        base = p["variants"].get("baseline")
        rows = []
        for name, entry in p["variants"].items():
            row = [name]
            for _header, mode, path, fmt in PHASE1_COLUMNS:
                s = _get(entry, mode, *path)
                b = _get(base, mode, *path) if base else None
                if s is None or s.get("median") is None:
                    row.append("-")
                    continue
                r = ratio(s["median"], b["median"] if b else None)
                row.append("%s %s" % (fmt(s["median"]), times(r) if name != "baseline" else ""))
            rows.append(row)
        if base:
            rows.append(["(baseline min-max)"] + [_band(_get(base, mode, *path))
                                                  for _h, mode, path, _f in PHASE1_COLUMNS])
        table("Phase 1 A/B under %s (medians of %d interleaved reps; x = ratio vs baseline)"
              % (label, p["reps"]), ["variant"] + [c[0] for c in PHASE1_COLUMNS], rows, out)


# -- targets ---------------------------------------------------------------------------------------

def targets(result, key="e2e"):
    """The issue's targets for one interpreter's results: [{name, target, measured, met, note}]."""
    out = []
    apply = _get(result, "book", "array_book", "apply_level_updates_per_s", "median")
    out.append(_target("book level updates/s (one core)", ">= 4,000,000", apply,
                       None if apply is None else apply >= 4e6, ""))
    e2e = result.get(key) or result.get("phase1") or result.get("e2e")
    if e2e:
        for variant in ("baseline", "all_on"):
            entry = e2e["variants"].get(variant)
            if not entry:
                continue
            m = entry.get("max")
            if m:
                delivered = _get(m, "delivered_msgs_per_s", "median")
                lost = _get(m, "lost_messages", "max")
                offered = _get(m, "offered_msgs_per_s", "median")
                met = None if delivered is None else (delivered >= 1e5 and not lost)
                out.append(_target("%s: inbound depth msgs/s end to end, no loss" % variant,
                                   ">= 100,000", delivered, met,
                                   "simulator offered %s msgs/s; lost %s" % (si(offered), lost)))
            f = entry.get("fixed")
            if f:
                p50 = _get(f, "latency_daemon", "p50_ns", "median")
                p99 = _get(f, "latency_daemon", "p99_ns", "median")
                out.append(_target("%s: daemon-internal p50" % variant, "<= 7 us", p50,
                                   None if p50 is None else p50 <= 7000, "ns"))
                out.append(_target("%s: daemon-internal p99" % variant, "<= 30 us", p99,
                                   None if p99 is None else p99 <= 30000, "ns"))
                w2w = _get(f, "latency_wire_to_wire", "p50_ns", "median")
                floor_mode = "busy_poll" if "busy_poll" in entry.get("on", []) else "blocking"
                floor = _get(result, "floor", floor_mode, "p50_ns")
                timed_out = _get(result, "floor", floor_mode, "timed_out")
                r = None if timed_out else ratio(w2w, 2 * floor if floor else None)
                note = "w2w p50 %s us, floor one-way p50 %s us%s" % (
                    us(w2w), us(floor), " (floor run timed out: cores busy)" if timed_out else "")
                out.append(_target("%s: wire-to-wire p50 / two-hop %s floor"
                                   % (variant, floor_mode), "<= 1.2x", r,
                                   None if r is None else r <= 1.2, note))
                for text, lat, k, goal in (("daemon-internal p50", "latency_daemon", "p50_ns", 1.5),
                                           ("daemon-internal p99", "latency_daemon", "p99_ns", 2.0),
                                           ("wire-to-wire p50", "latency_wire_to_wire", "p50_ns",
                                            1.3)):
                    r = _get(f, "vs_relay", lat, k, "median")
                    out.append(_target("%s: %s / relay floor (same rep)" % (variant, text),
                                       "<= %.1fx" % goal, r, None if r is None else r <= goal,
                                       "median of per-rep ratios"))
                gc_ns = _get(f, "daemon_gc_max_pause_ns", "max")
                out.append(_target("%s: longest GC pause in the windows" % variant, "<= 1 ms",
                                   gc_ns, None if gc_ns is None else gc_ns <= 1e6, "ns"))
    return out


def _target(name, target, measured, met, note):
    return {"name": name, "target": target,
            "measured": None if measured is None else round(measured, 2), "met": met,
            "note": note}


def print_targets(all_targets, out):
    for label, items in all_targets.items():
        rows = []
        for t in items:
            m = t["measured"]
            if t["note"] == "ns":
                text, note = us(m) + " us", ""
            elif isinstance(m, float) and m < 100:
                text, note = times(m), t["note"]
            else:
                text, note = si(m), t["note"]
            rows.append([t["name"], t["target"], text,
                         {True: "met", False: "NOT met", None: "not measured"}[t["met"]], note])
        table("targets under %s (measured, never asserted)" % label,
              ["target", "goal", "measured", "", "note"], rows, out)


# -- compare ---------------------------------------------------------------------------------------

def key_figures(result):
    """Ordered [(name, median, better)] of the headline figures of one interpreter's results."""
    figs = []

    def add(name, value, better):
        if value is not None:
            figs.append((name, value, better))

    for dataset, d in (_get(result, "parse", "datasets") or {}).items():
        for path in ("fast_scanner", "json_path"):
            add("parse %s %s msgs/s" % (dataset, path), _get(d, path, "msgs_per_s", "median"),
                "higher")
    for name in ("array_book", "naive_dict_sort"):
        add("book %s apply level updates/s" % name,
            _get(result, "book", name, "apply_level_updates_per_s", "median"), "higher")
        add("book %s diffs/s (apply+top20)" % name,
            _get(result, "book", name, "cycle_diffs_per_s", "median"), "higher")
    add("wire pack_book msgs/s", _get(result, "wire", "pack_book", "msgs_per_s", "median"),
        "higher")
    for mode in ("blocking", "busy_poll"):
        if not _get(result, "floor", mode, "timed_out"):
            add("floor %s one-way p50 ns" % mode, _get(result, "floor", mode, "p50_ns"), "lower")
    for key in ("e2e", "phase1"):
        e2e = result.get(key)
        if not e2e:
            continue
        for variant, entry in e2e["variants"].items():
            for mode in e2e["modes"]:
                m = entry.get(mode) or {}
                prefix = "%s %s %s" % (key, variant, mode)
                add(prefix + " delivered msgs/s", _get(m, "delivered_msgs_per_s", "median"),
                    "higher")
                for k in ("p50_ns", "p99_ns", "p99.9_ns"):
                    add("%s daemon %s" % (prefix, k), _get(m, "latency_daemon", k, "median"),
                        "lower")
                add(prefix + " w2w p50_ns", _get(m, "latency_wire_to_wire", "p50_ns", "median"),
                    "lower")
                add(prefix + " daemon CPU %", _get(m, "daemon_cpu_pct", "median"), "lower")
                add(prefix + " daemon peak RSS kB", _get(m, "daemon_peak_rss_kb", "median"),
                    "lower")
    s = _get(result, "sections", "pipeline_ns")
    add("hot-path pipeline ns/msg", s, "lower")
    return figs


def pair_labels(a, b):
    """Which interpreter of run A to compare with which of run B: same labels, else the only
    one of each."""
    la, lb = list(a["results"]), list(b["results"])
    common = [l for l in la if l in lb]
    if common:
        return [(l, l) for l in common]
    if len(la) == 1 and len(lb) == 1:
        return [(la[0], lb[0])]
    return []


def compare(a, b, out, name_a="A", name_b="B"):
    """Print B against A for every headline figure both runs have; returns the rows."""
    pairs = pair_labels(a, b)
    if not pairs:
        out.write("no interpreter in common between %s (%s) and %s (%s)\n"
                  % (name_a, ", ".join(a["results"]), name_b, ", ".join(b["results"])))
        return []
    all_rows = []
    for la, lb in pairs:
        fa = {n: (v, better) for n, v, better in key_figures(a["results"][la])}
        rows = []
        for n, vb, better in key_figures(b["results"][lb]):
            if n not in fa:
                continue
            va = fa[n][0]
            r = ratio(vb, va)
            verdict = ""
            if r is not None and abs(r - 1) >= 0.05:
                verdict = "better" if (r > 1) == (better == "higher") else "worse"
            rows.append([n, si(va), si(vb), times(r), verdict])
        all_rows.extend(rows)
        table("compare %s [%s] -> %s [%s] (B/A of medians; +-5%% counts as the same)"
              % (name_a, la, name_b, lb), ["figure", "A", "B", "B/A", ""], rows, out)
    return all_rows
