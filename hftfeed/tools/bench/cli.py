"""``python3 bench.py [COMMAND] [options]`` (also ``pypy3 bench.py``): see ``--help``.

Commands: ``all`` (default: parse, book, wire, sections, floor, e2e), ``parse``, ``book``,
``wire``, ``sections`` (the hot path timed stage by stage), ``floor``, ``e2e`` (baseline and
all Phase 1 settings on), ``phase1`` (baseline, each setting alone, all on), ``profile`` (one
e2e run with the daemon under cProfile), ``client`` (the consumer library's decode rate),
``compare A.json B.json``.

Each interpreter in ``--interpreters`` (default: the one running bench.py) runs the in-process
benchmarks in a child of its own and runs the daemon of the end-to-end benchmarks, so one
command prints CPython and PyPy side by side. The simulator and the receiver run under
``--helper-python`` (default pypy3 when installed: it offers the most messages per second),
the same for every interpreter measured, so only the daemon changes between columns.
"""

import argparse
import datetime
import json
import logging
import os
import platform
import sys
import tempfile
import time

from hftfeed.tools.bench import SCHEMA, e2e, report
from hftfeed.tools.bench.common import (BENCH_ENTRY, default_helper_python, load_average,
                                  machine_facts, ratio, resolve_interpreter, run_child_json)

log = logging.getLogger("hftfeed.bench")

COMMANDS = ("all", "parse", "book", "wire", "sections", "floor", "e2e", "phase1", "profile",
            "client", "compare")
MICRO = ("parse", "book", "wire")
NOISE_NOTE = ("Measured on whatever machine ran this; on the project's 2-vCPU shared VM other "
              "jobs come and go, so read the min-max spreads before any median, and compare "
              "runs only with `bench.py compare` on the same machine.")

# quick / full defaults of the end-to-end runs
E2E_DEFAULTS = {"quick": {"reps": 1, "seconds": 2.0, "warmup_s": 1.5},
                "full": {"reps": 3, "seconds": 5.0, "warmup_s": 15.0}}
# 15 s: under PyPy the JIT compiles most of what live traffic needs in the first ~10 s (the
# report's "JIT compilations in window" row shows what is left); a 5 s warm-up measured warm-up.


def build_parser():
    p = argparse.ArgumentParser(
        prog="bench.py", description="hftfeed benchmarks: parse, book, wire, floor, end to end, "
        "Phase 1 A/B; CPython and PyPy side by side. Figures are medians (min-max) of "
        "repetitions after discarded warm-up; nothing is asserted.")
    p.add_argument("command", nargs="?", default="all", choices=COMMANDS)
    p.add_argument("files", nargs="*", help="compare: two JSON files written with --out")
    p.add_argument("--quick", action="store_true",
                   help="short runs (< 1 minute per interpreter): a smoke test, not figures")
    p.add_argument("--out", metavar="FILE", help="write every figure as JSON to FILE")
    p.add_argument("--interpreters", metavar="LIST",
                   help="comma-separated interpreters to measure side by side, e.g. python3,pypy3 "
                        "(default: the one running bench.py)")
    p.add_argument("--python", metavar="EXE", help="measure this one interpreter")
    p.add_argument("--helper-python", metavar="EXE",
                   help="interpreter of the simulator and the receiver (default: pypy3 if found)")
    p.add_argument("--reps", type=int,
                   help="end-to-end repetitions per variant (default 3; quick 1)")
    p.add_argument("--seconds", type=float,
                   help="end-to-end measurement window (default 5; quick 2)")
    p.add_argument("--warmup-s", type=float,
                   help="live traffic discarded before each window (default 15; quick 1.5)")
    p.add_argument("--rate", type=float, default=2000.0,
                   help="fixed offered rate, depth msgs/s (default 2000)")
    p.add_argument("--max-rate", type=float, default=150000.0,
                   help="rate asked of the simulator in the max-rate runs (default 150000; "
                        "it delivers what it can)")
    p.add_argument("--modes", default="fixed,max", help="end-to-end modes (default fixed,max)")
    p.add_argument("--variants", metavar="LIST",
                   help="Phase 1 variants (e2e default baseline,all_on; phase1 default all: %s)"
                        % ",".join(n for n, _ in e2e.variants()))
    p.add_argument("--shape", choices=e2e.SHAPES, default="steady",
                   help="fixed-rate traffic: steady (depth round robin at --rate) or burst "
                        "(every symbol's diff at the same boundary, trades and quotes between)")
    p.add_argument("--symbols", type=int, default=None,
                   help="symbols subscribed (default 10; burst 3)")
    p.add_argument("--boundaries-per-s", type=float, default=100.0,
                   help="burst: depth boundaries a second (default 100)")
    p.add_argument("--trace", type=int, default=64, metavar="N",
                   help="daemon trace.sample_every (default 64; 0 = off)")
    p.add_argument("--no-pingpong", action="store_true",
                   help="e2e/phase1: skip the UDP ping-pong floor (the relay floor still runs "
                        "when asked as a variant)")
    p.add_argument("--keep", action="store_true", help="keep each run's logs and journal")
    return p


def interpreters(args):
    names = [args.python] if args.python else (
        args.interpreters.split(",") if args.interpreters else [None])
    result = []
    for name in names:
        if name is None:
            result.append(("pypy3" if platform.python_implementation() == "PyPy" else "python3",
                           sys.executable))
            continue
        exe = resolve_interpreter(name.strip())
        if exe is None:
            raise SystemExit("bench.py: interpreter %r not found" % name)
        result.append((os.path.basename(name.strip()), exe))
    return result


def _progress(label):
    def show(rep, variant, mode, r, floor=None):
        if "error" in r:
            text = "FAILED: " + r["error"][:300]
        else:
            lat = r.get("latency_daemon", {})
            w2w = r.get("latency_wire_to_wire", {})
            text = ("delivered %s msgs/s, lost %s, daemon p50 %s us p99 %s us, w2w p50 %s us, "
                    "CPU %s %%" % (report.si(r.get("delivered_msgs_per_s")),
                                   r.get("lost_messages"), report.us(lat.get("p50_ns")),
                                   report.us(lat.get("p99_ns")), report.us(w2w.get("p50_ns")),
                                   report.si(r.get("daemon_cpu_pct"))))
            if floor and "error" not in floor:
                f_lat = floor.get("latency_daemon", {})
                f_w2w = floor.get("latency_wire_to_wire", {})
                text += (" | x relay floor: daemon p50 %s p99 %s, w2w p50 %s"
                         % (report.times(ratio(lat.get("p50_ns"), f_lat.get("p50_ns"))),
                            report.times(ratio(lat.get("p99_ns"), f_lat.get("p99_ns"))),
                            report.times(ratio(w2w.get("p50_ns"), f_w2w.get("p50_ns")))))
        sys.stderr.write("[%s] rep %d %s/%s: %s\n" % (label, rep + 1, variant, mode, text))
        sys.stderr.flush()
    return show


def _child(exe, module, quick, extra=(), timeout_s=900):
    argv = [exe, "-m", module] + list(extra) + (["--quick"] if quick else [])
    return run_child_json(argv, timeout_s)


def run_for(label, exe, command, args, helper):
    """Every benchmark ``command`` asks for, under interpreter ``exe``; a dict of sections."""
    quick = args.quick
    out = {}
    wanted = list(MICRO) + ["sections", "floor", "e2e"] if command == "all" else [command]
    if command in ("e2e", "phase1") and "floor" not in wanted and not args.no_pingpong:
        wanted.insert(0, "floor")     # every e2e latency is printed against the floor
    try:
        out["interpreter"] = run_child_json(
            [exe, "-c", "import json; from hftfeed.tools.bench.common import interpreter_facts; "
                        "print(json.dumps(interpreter_facts()))"], 60)
    except (RuntimeError, OSError, ValueError) as exc:
        out["interpreter"] = {"executable": exe, "error": str(exc)}
    micro = [n for n in wanted if n in MICRO]
    steps = ([("micro", micro)] if micro else []) + [(n, None) for n in wanted if n not in MICRO]
    for name, names in steps:
        sys.stderr.write("[%s] %s ...\n" % (label, name if names is None else ", ".join(names)))
        sys.stderr.flush()
        started = time.monotonic()
        try:
            if name == "micro":
                out.update(_child(exe, "hftfeed.tools.bench.micro", quick, names))
            elif name == "sections":
                out["sections"] = _child(exe, "hftfeed.tools.bench.sections", quick)
            elif name == "floor":
                out["floor"] = _child(exe, "hftfeed.tools.bench.floor", quick)
            elif name == "client":
                out["client"] = _child(exe, "hftfeed.tools.bench.client", quick)
            elif name in ("e2e", "phase1"):
                out[name] = _run_e2e(label, exe, name, args, helper, out.get("floor"))
            elif name == "profile":
                out["profile"] = _run_profile(exe, args, helper)
        except (RuntimeError, OSError, ValueError) as exc:
            log.error("%s %s failed: %s", label, name, exc)
            out[name if names is None else ",".join(names)] = {"error": str(exc)}
        sys.stderr.write("[%s] %s done in %.1f s\n" % (label, name, time.monotonic() - started))
    return out


def _e2e_settings(args):
    d = E2E_DEFAULTS["quick" if args.quick else "full"]
    return (args.reps or d["reps"], args.seconds or d["seconds"],
            d["warmup_s"] if args.warmup_s is None else args.warmup_s)


def _run_e2e(label, exe, name, args, helper, floor):
    reps, seconds, warmup_s = _e2e_settings(args)
    if args.variants:
        names = args.variants.split(",")
    else:
        names = [e2e.FLOOR, "baseline", "all_on"] if name == "e2e" else None
    modes = [m for m in args.modes.split(",") if m]
    for m in modes:
        if m not in ("fixed", "max"):
            raise ValueError("unknown mode %r (fixed, max)" % m)
    rates = {"fixed": args.rate, "max": args.max_rate}
    if args.trace < 0 or (args.symbols is not None and args.symbols < 1) or \
            not 0 < args.boundaries_per_s <= 1000:
        raise ValueError("--trace >= 0, --symbols >= 1, --boundaries-per-s in (0, 1000]")
    count = args.symbols or (3 if args.shape == "burst" else len(e2e.SYMBOLS))
    result = e2e.run_variants(exe, helper, names, modes, reps, rates, seconds, warmup_s,
                              progress=_progress(label), keep=args.keep, shape=args.shape,
                              symbols=e2e.symbols_for(count),
                              boundaries_per_s=args.boundaries_per_s, trace_every=args.trace)
    result["helper_python"] = helper
    for entry in result["variants"].values():
        for mode in modes:
            entry[mode]["vs_floor"] = e2e.vs_floor(entry[mode], floor)
    return result


def _run_profile(exe, args, helper):
    """One fixed-rate run with the daemon under cProfile; top functions by own time."""
    reps, seconds, warmup_s = _e2e_settings(args)
    path = os.path.join(tempfile.mkdtemp(prefix="hftfeed-profile-"), "daemon.prof")
    run = e2e.run_once(exe, helper, (), "fixed", args.rate, seconds, warmup_s,
                       keep=args.keep, profile_path=path)
    top = run_child_json([exe, "-m", "hftfeed.tools.bench.profile", path, "30"], 120)
    top["note"] = ("whole daemon life (start-up included) under cProfile at %s msgs/s; the "
                   "profiler inflates Python-level calls, so read the ranking, not the times"
                   % report.si(args.rate))
    top["run"] = {k: run.get(k) for k in ("delivered_msgs_per_s", "daemon_cpu_pct",
                                          "daemon_cpu_system_pct")}
    top["file"] = path
    return top


def print_report(doc, command, out):
    results = doc["results"]
    labels = list(results)
    m = doc["machine"]
    out.write("\nhftfeed bench (%s) on %s, %s cores online (allowed %s), kernel %s, load %s -> %s\n"
              % (command, m["cpu_model"], m["cores_online"], m["cores_allowed"], m["kernel"],
                 m["load_average_start"], m.get("load_average_end")))
    for label in labels:
        i = results[label].get("interpreter", {})
        pypy = " / PyPy " + i["pypy_version"] if "pypy_version" in i else ""
        out.write("  %s = %s %s%s (%s)\n" % (label, i.get("implementation"),
                                              i.get("python_version"), pypy, i.get("executable")))
    out.write("  %s\n" % NOISE_NOTE)
    report.print_micro(results, labels, out)
    _print_sections(results, labels, out)
    report.print_floor(results, labels, out)
    report.print_e2e(results, labels, "e2e", out)
    report.print_phase1(results, labels, out, "phase1")
    report.print_e2e(results, labels, "phase1", out, only=("baseline", "all_on"))
    _print_profile(results, labels, out)
    _print_client(results, labels, out)
    for label in labels:
        for key in results[label]:
            entry = results[label][key]
            if isinstance(entry, dict) and "error" in entry and key != "interpreter":
                out.write("\n[%s] %s FAILED: %s\n" % (label, key, entry["error"][-600:]))
    if doc.get("targets"):
        report.print_targets(doc["targets"], out)
    out.write("\nWarm-up discarded: micro benchmarks drop their first repetitions (JSON: warmup); "
              "e2e drops start-up until every instrument is live, then --warmup-s of live "
              "traffic (JSON: warmup.books_discarded per run).\n")


def _print_sections(results, labels, out):
    rows = []
    names = ("ws_frames", "parse", "sync_book", "pack", "send")
    for name in names + ("sum", "pipeline"):
        row = [name + " ns/msg"]
        for label in labels:
            s = results[label].get("sections")
            if not s or "sections_ns" not in s:
                row.append("-")
            elif name in names:
                row.append("%s (%s%%)" % (report.si(s["sections_ns"][name]), s["share_pct"][name]))
            else:
                row.append(report.si(s[name + "_ns"]))
        rows.append(row)
    if any(results[l].get("sections") for l in labels):
        report.table("hot path by section (simulator's messages, in process)",
                     ["section"] + labels, rows, out)


def _print_client(results, labels, out):
    if not any("messages_per_s" in results[l].get("client", {}).get("subscriber", {})
               for l in labels):
        return
    rows = []
    for name, text in (("subscriber", "Subscriber.datagram (whole client path) msgs/s"),
                       ("decode_packet", "wire.decode_packet alone msgs/s")):
        row = [text]
        for label in labels:
            r = results[label].get("client", {}).get(name)
            row.append("%s (%s-%s)" % (report.si(r["messages_per_s"]), report.si(r["min"]),
                                       report.si(r["max"])) if r else "-")
        rows.append(row)
    report.table("client decode rate (hftfeed.client, no socket)", ["path"] + labels, rows, out)


def _print_profile(results, labels, out):
    for label in labels:
        p = results[label].get("profile")
        if not p or "top_by_own_time" not in p:
            continue
        rows = [[r["function"][-70:] + (" (idle wait)" if "epoll" in r["function"] else ""),
                 str(r["calls"]), "%.3f" % r["own_s"], "%.3f" % r["cumulative_s"],
                 "%.1f" % (1e6 * r["own_s"] / r["calls"]) if r["calls"] else "-"]
                for r in p["top_by_own_time"][:20]]
        report.table("daemon under cProfile (%s): %s" % (label, p["note"]),
                     ["function", "calls", "own s", "cumulative s", "own us/call"], rows, out)


def main(argv=None):
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command == "compare":
        if len(args.files) != 2:
            sys.stderr.write("bench.py compare: give two JSON files (A.json B.json)\n")
            return 2
        docs = []
        for path in args.files:
            with open(path) as f:
                docs.append(json.load(f))
        report.compare(docs[0], docs[1], sys.stdout, args.files[0], args.files[1])
        return 0
    if args.files:
        sys.stderr.write("bench.py: unexpected arguments %s\n" % " ".join(args.files))
        return 2
    started = time.monotonic()
    doc = {
        "schema": SCHEMA,
        "command": [os.path.basename(BENCH_ENTRY)] + list(sys.argv[1:] if argv is None else argv),
        "quick": args.quick,
        "started_at": datetime.datetime.utcnow().replace(microsecond=0).isoformat() + "Z",
        "machine": machine_facts(),
        "noise_note": NOISE_NOTE,
        "settings": {"rate": args.rate, "max_rate": args.max_rate, "modes": args.modes,
                     "variants": args.variants, "shape": args.shape, "symbols": args.symbols,
                     "boundaries_per_s": args.boundaries_per_s, "trace": args.trace},
        "results": {},
        "targets": {},
    }
    helper = (args.helper_python and resolve_interpreter(args.helper_python)
              or default_helper_python())
    doc["settings"]["helper_python"] = helper
    for label, exe in interpreters(args):
        doc["results"][label] = run_for(label, exe, args.command, args, helper)
        if args.command in ("all", "book", "e2e", "phase1"):
            doc["targets"][label] = report.targets(doc["results"][label],
                                                   "phase1" if args.command == "phase1" else "e2e")
    doc["machine"]["load_average_end"] = load_average()
    doc["duration_s"] = round(time.monotonic() - started, 1)
    print_report(doc, args.command, sys.stdout)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(doc, f, indent=1, sort_keys=False)
            f.write("\n")
        sys.stdout.write("\nJSON written to %s (%.0f s)\n" % (args.out, doc["duration_s"]))
    return 0
