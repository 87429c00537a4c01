"""bench.py: the pieces that must be right for a benchmark to be honest, and a smoke run.

Nothing here asserts a speed. The smoke test runs ``bench.py --quick`` as CI does and checks
the JSON it writes against the documented schema; the other tests pin the arithmetic (medians,
warm-up discarding, floor ratios), the wire-to-wire matching, the receiver's accounting and the
Phase 1 configurations."""

import json
import os
import socket
import subprocess
import sys
import time
from array import array

import pytest

from hftfeed.codecs import wire
from hftfeed.tools.bench import SCHEMA, cli, common, e2e, micro, report
from hftfeed.tools.bench.receiver import Receiver
from hftfeed.core.book import Book
from hftfeed.app.config import load_config_dict
from hftfeed.venues import binance
from hftfeed.tools.sim.journal import JournalWriter
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -- arithmetic ------------------------------------------------------------------------------------

def test_summarize_reports_median_range_and_count_and_skips_missing_values():
    s = common.summarize([3.0, None, 1.0, 2.0], "msgs/s")
    assert (s["median"], s["min"], s["max"], s["n"], s["missing"]) == (2.0, 1.0, 3.0, 3, 1)
    assert s["unit"] == "msgs/s" and s["values"] == [3.0, 1.0, 2.0]


def test_summarize_of_nothing_measured_has_no_median():
    s = common.summarize([None, None], "ns")
    assert s["median"] is None and s["n"] == 0 and s["missing"] == 2


def test_median_of_an_even_count_is_the_mean_of_the_middle_pair():
    assert common.median([4, 1, 3, 2]) == 2.5
    assert common.median([5]) == 5
    with pytest.raises(ValueError):
        common.median([])


def test_timed_reps_discards_the_warmup_repetitions_and_reports_them():
    ticks = iter(range(0, 10 ** 6, 1))   # a fake clock: every read advances one "second"
    calls = []
    rates, warmup = common.timed_reps(lambda rounds: calls.append(rounds), 10, reps=3,
                                      warmup_reps=2, target_s=4.0, clock=lambda: next(ticks))
    assert len(rates) == 3 and warmup["reps_discarded"] == 2
    assert len(warmup["discarded_rates"]) == 2
    # calibration: 1 round took 1 s (>= target/4), so a repetition is 4 rounds = 40 units / 1 s
    assert calls == [1, 4, 4, 4, 4, 4] and rates == [40.0, 40.0, 40.0]
    assert warmup["units_per_rep"] == 40


def test_ratio_is_none_when_a_side_is_missing_or_zero():
    assert common.ratio(6, 3) == 2.0
    assert common.ratio(None, 3) is None and common.ratio(6, 0) is None


def test_vs_floor_uses_one_hop_for_the_daemon_and_two_for_wire_to_wire():
    agg = {"latency_daemon": {k: {"median": 100} for k in e2e.LATENCY_KEYS},
           "latency_wire_to_wire": {k: {"median": 400} for k in e2e.LATENCY_KEYS}}
    floor = {"blocking": {k: 50 for k in e2e.LATENCY_KEYS},
             "busy_poll": {"timed_out": True, "p50_ns": 5}}
    out = e2e.vs_floor(agg, floor)
    assert out["latency_daemon_vs_blocking"]["p50_ns"] == 2.0
    assert out["latency_wire_to_wire_vs_blocking"]["p99_ns"] == 4.0
    assert out["latency_daemon_vs_busy_poll"]["p50_ns"] is None   # a timed-out floor is no floor


# -- micro benchmark inputs ------------------------------------------------------------------------

def test_naive_book_and_array_book_agree_after_the_benchmark_workload():
    bids, asks, diffs = micro.book_workload(3000, levels=200)
    array_book, naive = Book(5000), micro.NaiveBook()
    for book in (array_book, naive):
        book.load_snapshot(bids, asks, 1)
        for b, a in diffs:
            book.apply_levels(b, a)
    assert array_book.top(20) == naive.top(20)
    out_array, out_naive = bytearray(640), bytearray(640)
    array_book.copy_levels_into(out_array, 0, 20, 20)
    naive.copy_top_into(out_naive, 0, 20)
    assert out_array == out_naive


def test_book_workload_keeps_bids_below_asks_and_mixes_inserts_deletes_and_changes():
    bids, asks, diffs = micro.book_workload(5000, levels=300)
    assert max(bids[0::2]) < min(asks[0::2])
    qtys = [q for b, a in diffs for q in b[1::2] + a[1::2]]
    deletes = qtys.count(0)
    assert 0.01 * len(qtys) < deletes < 0.2 * len(qtys)
    assert sum((len(b) + len(a)) // 2 for b, a in diffs) >= 5000


def test_synthetic_depth_messages_take_the_fast_scanner_path_and_match_the_json_path():
    for text in micro.synthetic_depth_messages(count=5):
        fast = binance.fast_depth(text)
        slow = micro.json_path_parse(text)
        assert fast is not None and len(fast.bids) == 20 and len(fast.asks) == 20
        assert (fast.bids, fast.asks, fast.last_id) == (slow.bids, slow.asks, slow.last_id)


# -- wire to wire matching -------------------------------------------------------------------------

def _journal(tmp_path, rows):
    writer = JournalWriter(tmp_path / "j.jsonl", 1, "binance", ["BTCUSDT", "ETHUSDT"])
    for ev, send_ns in rows:
        writer.write_event(ev, send_ns)
    writer.write_events([((EV_DEPTH, "ETHUSDT", 7, 9, [], [1, 2]), True)], 555)
    writer.close()
    return str(tmp_path / "j.jsonl")


def test_journal_send_ns_indexes_depth_events_by_symbol_and_last_update_id(tmp_path):
    path = _journal(tmp_path, [((EV_DEPTH, "BTCUSDT", 10, 12, [100, 5], []), 1000),
                               ((EV_QUOTE, "BTCUSDT", 12, 1, 2, 3, 4), 1001),
                               ((EV_DEPTH, "BTCUSDT", 13, 13, [], [200, 0]), 2000)])
    assert e2e.journal_send_ns(path) == {("BTCUSDT", 12): 1000, ("BTCUSDT", 13): 2000,
                                         ("ETHUSDT", 9): 555}


def test_journal_lines_in_another_layout_are_read_with_json(tmp_path):
    path = tmp_path / "j.jsonl"
    path.write_text('{"kind":"depth","u":5,"symbol":"X","send_ns":9,"U":5}\n'
                    '{"kind":"start","symbols":["X"]}\n')
    assert e2e.journal_send_ns(str(path)) == {("X", 5): 9}


def test_wire_to_wire_is_receive_time_minus_send_time_of_the_same_symbol_and_update(tmp_path):
    journal = _journal(tmp_path, [((EV_DEPTH, "BTCUSDT", 10, 12, [100, 5], []), 1000)])
    receipts = array("q", [1, 12, 1700, 2, 9, 900, 1, 99, 5000])   # (instrument, u, recv_ns)
    path = str(tmp_path / "r.bin")
    with open(path, "wb") as f:
        receipts.tofile(f)
    hist, unmatched = e2e.wire_to_wire(path, {"1": "BTCUSDT", "2": "ETHUSDT"}, journal)
    assert unmatched == 1                          # BTCUSDT u=99 was never generated
    assert hist.count == 2 and hist.min_ns == 345 and hist.max_ns == 700


# -- the receiver ----------------------------------------------------------------------------------

class _Book(object):
    def __init__(self, update_id):
        self.update_id = update_id
        self.bid_levels = self.ask_levels = 1

    def copy_levels_into(self, buf, off, bid_n, ask_n):
        for i in range(bid_n + ask_n):
            wire._LEVEL.pack_into(buf, off + 16 * i, 100 + i, 1)
        return off + 16 * (bid_n + ask_n)


def _packet(seq, send_ns, writers, session=77):
    buf = bytearray(1472)
    off = wire.HEADER_SIZE
    for write in writers:
        off = write(buf, off)
    wire.pack_packet_header(buf, 0, 1, len(writers), session, seq, send_ns)
    return bytes(buf[:off])


def _book(instrument, update_id, recv_ns, flags=0):
    return lambda buf, off: wire.pack_book(buf, off, 1, instrument, flags, 0, recv_ns,
                                           _Book(update_id), 20)


def _feed(receiver, data, recv_ns):
    receiver.buf[:len(data)] = data
    receiver.handle(len(data), recv_ns)


def test_receiver_records_books_and_gaps_only_inside_the_window():
    rx = Receiver(sock=None)
    _feed(rx, _packet(1, 0, [lambda b, o: wire.pack_instrument(b, o, 1, 3, "BTCUSDT")]), 1)
    _feed(rx, _packet(2, 5000, [_book(3, 41, 1000)]), 6000)        # warm-up: counted apart
    rx.start()
    _feed(rx, _packet(3, 9000, [_book(3, 42, 2000), _book(3, 43, 2500)]), 9500)
    _feed(rx, _packet(8, 9900, [_book(3, 50, 9000, wire.BOOK_FLAG_SNAPSHOT)]), 10000)  # 3 lost
    rx.stop()
    _feed(rx, _packet(9, 0, [_book(3, 51, 0)]), 1)                 # after the window
    assert rx.before == {"packets": 2, "books": 1}
    w = rx.window
    assert (w["packets"], w["messages"], w["books"], w["snapshot_books"]) == (2, 3, 2, 1)
    assert (w["gaps"], w["lost_messages"]) == (1, 3)
    assert list(rx.receipts) == [3, 42, 9500, 3, 43, 9500]
    assert rx.latency_daemon.count == 2 and rx.latency_daemon.max_ns == 7000
    assert rx.symbols == {3: "BTCUSDT"}


def test_receiver_counts_instruments_going_live_and_resyncs_in_the_window():
    rx = Receiver(sock=None)
    status = lambda inst, state: (lambda b, o: wire.pack_status(b, o, 1, inst, 0, state))
    _feed(rx, _packet(1, 0, [status(1, wire.STATE_RESYNC), status(1, wire.STATE_LIVE),
                             status(2, wire.STATE_LIVE)]), 1)
    assert rx.live == 2 and rx.live_changed
    rx.start()
    _feed(rx, _packet(4, 0, [status(2, wire.STATE_RESYNC)]), 1)
    assert rx.live == 1 and rx.window["resync_status_msgs"] == 1


def test_receiver_takes_a_book_as_proof_of_live_when_the_status_packet_was_lost():
    rx = Receiver(sock=None)
    status = lambda inst, state: (lambda b, o: wire.pack_status(b, o, 1, inst, 0, state))
    _feed(rx, _packet(1, 0, [status(1, wire.STATE_RESYNC), status(2, wire.STATE_RESYNC)]), 1)
    # seq 3 (instrument 1's S=1) never arrives; its first book does
    _feed(rx, _packet(4, 0, [_book(1, 42, 0, wire.BOOK_FLAG_SNAPSHOT)]), 1)
    assert rx.live == 1 and rx.states == {1: wire.STATE_LIVE, 2: wire.STATE_RESYNC}
    _feed(rx, _packet(5, 0, [status(1, wire.STATE_RESYNC)]), 1)
    assert rx.live == 0


def test_receiver_process_reports_ready_live_and_a_json_result(tmp_path):
    out = str(tmp_path / "receipts.bin")
    proc = subprocess.Popen([sys.executable, "-m", "hftfeed.tools.bench.receiver", "--out", out],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT,
                            env=common.child_env(), universal_newlines=True)
    try:
        ready = proc.stdout.readline()
        assert ready.startswith("READY port=")
        port = int(ready.split("=")[1])
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        tx.sendto(_packet(1, 0, [lambda b, o: wire.pack_status(b, o, 1, 5, 0, wire.STATE_LIVE)]),
                  ("127.0.0.1", port))
        assert proc.stdout.readline() == "LIVE 1\n"
        proc.stdin.write("start\n")
        proc.stdin.flush()
        time.sleep(0.2)
        now = time.time_ns()
        tx.sendto(_packet(2, now, [_book(5, 10, now - 3000)]), ("127.0.0.1", port))
        time.sleep(0.3)
        tx.close()
        proc.stdin.write("stop\n")
        proc.stdin.flush()
        result = json.loads(proc.stdout.readline())
    finally:
        proc.stdin.close()
        proc.wait(10)
        proc.stdout.close()
    assert proc.returncode == 0
    assert result["books"] == 1 and result["lost_messages"] == 0
    assert result["latency_daemon"]["count"] == 1 and result["latency_daemon"]["max_ns"] == 3000
    assert result["kernel_drops"] == 0 and result["window_s"] > 0
    receipts = array("q")
    with open(out, "rb") as f:
        receipts.frombytes(f.read())
    assert list(receipts[:2]) == [5, 10]


# -- Phase 1 variants ------------------------------------------------------------------------------

def test_variants_are_the_baseline_each_setting_alone_and_all_on():
    table = e2e.variants()
    assert table[0] == ("baseline", ())
    assert [name for name, _ in table[1:-1]] == list(e2e.PHASE1_KEYS)
    assert table[-1] == ("all_on", e2e.PHASE1_KEYS)
    assert e2e.variants(["all_on", "gc"]) == [("all_on", e2e.PHASE1_KEYS), ("gc", ("gc",))]
    with pytest.raises(ValueError):
        e2e.variants(["turbo"])


def test_baseline_turns_every_phase1_setting_off_and_all_on_turns_each_on():
    off = e2e.phase1_settings((), 1)
    on = e2e.phase1_settings(e2e.PHASE1_KEYS, 1)
    assert off["memory_lock"] is False and off["prefault"] is False and off["busy_poll"] is False
    assert off["cpu_affinity"] == {"enabled": False, "processor_core": -1}
    assert off["scheduler"]["policy"] == "other"
    assert off["gc"]["freeze_after_start"] is False and off["gc"]["collect_interval_s"] == 0
    assert on["memory_lock"] and on["prefault"] and on["busy_poll"]
    assert on["cpu_affinity"] == {"enabled": True, "processor_core": 1}
    assert on["scheduler"]["policy"] == "fifo"
    assert on["socket_buffers"] == {"sndbuf_bytes": 4 * 2 ** 20, "rcvbuf_bytes": 4 * 2 ** 20}
    assert off["socket_buffers"] == {"sndbuf_bytes": 0, "rcvbuf_bytes": 0}    # kernel defaults
    assert on["gc"]["disable_automatic"] and on["gc"]["collect_interval_s"] > 0
    alone = e2e.phase1_settings(("prefault",), 1)
    assert alone["prefault"] and not alone["memory_lock"] and not alone["busy_poll"]


@pytest.mark.parametrize("name,keys", e2e.variants())
def test_every_variant_config_is_a_valid_daemon_config(name, keys):
    cfg = e2e.daemon_config("ws://127.0.0.1:1", "http://127.0.0.1:1", 9, ["BTCUSDT", "ETHUSDT"],
                            e2e.phase1_settings(keys, 0))
    loaded = load_config_dict(cfg)
    assert loaded.busy_poll == ("busy_poll" in keys)
    assert [i.symbol for i in loaded.instruments] == ["BTCUSDT", "ETHUSDT"]


# -- reports ---------------------------------------------------------------------------------------

def _doc(label, delivered, p50):
    agg = {"delivered_msgs_per_s": {"median": delivered},
           "latency_daemon": {"p50_ns": {"median": p50}}}
    return {"results": {label: {"e2e": {"modes": ["fixed"], "variants": {
        "baseline": {"on": [], "fixed": agg}}}}}}


def test_compare_pairs_the_only_interpreter_of_each_run_and_gives_b_over_a(capsys):
    rows = report.compare(_doc("python3", 1000.0, 200.0), _doc("pypy3", 3000.0, 100.0),
                          sys.stdout)
    by_name = {r[0]: r for r in rows}
    assert by_name["e2e baseline fixed delivered msgs/s"][3:] == ["3.00x", "better"]
    assert by_name["e2e baseline fixed daemon p50_ns"][3:] == ["0.50x", "better"]
    assert "compare A [python3] -> B [pypy3]" in capsys.readouterr().out


def test_compare_command_reads_two_json_files(tmp_path, capsys):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(_doc("pypy3", 1000.0, 200.0)))
    b.write_text(json.dumps(_doc("pypy3", 1010.0, 400.0)))
    assert cli.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "1.01x" in out and "2.00x  worse" in out


def test_targets_say_met_not_met_or_not_measured():
    result = {"book": {"array_book": {"apply_level_updates_per_s": {"median": 5e6}}},
              "floor": {"blocking": {"p50_ns": 30000}},
              "e2e": {"variants": {"baseline": {"on": [], "fixed": {
                  "latency_daemon": {"p50_ns": {"median": 6000}, "p99_ns": {"median": 40000}},
                  "latency_wire_to_wire": {"p50_ns": {"median": 66000}}}}}}}
    by_name = {t["name"]: t for t in report.targets(result)}
    assert by_name["book level updates/s (one core)"]["met"] is True
    assert by_name["baseline: daemon-internal p50"]["met"] is True
    assert by_name["baseline: daemon-internal p99"]["met"] is False
    w2w = by_name["baseline: wire-to-wire p50 / two-hop blocking floor"]
    assert w2w["measured"] == 1.1 and w2w["met"] is True


def test_proc_readers_see_this_process():
    user_s, system_s = common.cpu_times(os.getpid())
    assert user_s >= 0 and system_s >= 0
    assert common.status_kb(os.getpid(), "VmHWM") > 0
    assert common.cpu_times(2 ** 22 + 12345) is None


# -- the smoke run CI does -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench.py"), "--quick", "--out",
                           str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=ROOT, timeout=600)
    return proc, out


def test_quick_run_exits_zero_prints_tables_and_writes_json(quick_run):
    proc, out = quick_run
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    text = proc.stdout.decode()
    for title in ("== parse", "== book", "== wire", "== floor", "== e2e fixed rate",
                  "== targets"):
        assert title in text
    assert out.is_file()


def _is_summary(s):
    return set(s) >= {"median", "min", "max", "n", "unit", "values"}


def test_quick_run_json_follows_the_schema(quick_run):
    _proc, out = quick_run
    doc = json.loads(out.read_text())
    assert doc["schema"] == SCHEMA and doc["quick"] is True
    for key in ("cpu_model", "cores_online", "kernel", "load_average_start", "git_commit"):
        assert key in doc["machine"]
    [(label, res)] = doc["results"].items()
    assert res["interpreter"]["executable"] and res["interpreter"]["python_version"]
    for dataset in res["parse"]["datasets"].values():
        for path in ("fast_scanner", "json_path"):
            assert _is_summary(dataset[path]["msgs_per_s"])
            assert dataset[path]["warmup"]["reps_discarded"] >= 1
    for book in ("array_book", "naive_dict_sort"):
        assert _is_summary(res["book"][book]["apply_level_updates_per_s"])
    assert isinstance(res["book"]["ratio_cycle_diffs"], float)
    assert _is_summary(res["wire"]["pack_book"]["msgs_per_s"])
    assert set(res["sections"]["sections_ns"]) == {"ws_frames", "parse", "sync_book", "pack",
                                                   "send"}
    for mode in ("blocking", "busy_poll"):
        assert "p50_ns" in res["floor"][mode] and "timed_out" in res["floor"][mode]
    e = res["e2e"]
    assert set(e["variants"]) == {"floor", "baseline", "all_on"}
    assert e["modes"] == ["fixed", "max"]
    for name in ("baseline", "all_on"):
        assert e["variants"][name]["fixed"]["vs_relay"]["latency_daemon"]["p50_ns"]["n"] == 1
    for name, entry in e["variants"].items():
        for mode in ("fixed", "max"):
            agg = entry[mode]
            assert agg["failed"] == 0, agg["errors"]
            for key in ("offered_msgs_per_s", "delivered_msgs_per_s", "lost_messages",
                        "daemon_cpu_pct", "daemon_peak_rss_kb"):
                assert _is_summary(agg[key]) and agg[key]["n"] == 1
            assert _is_summary(agg["latency_daemon"]["p99.9_ns"])
            assert agg["warmup"][0]["books_discarded"] >= 0
            assert "vs_floor" in agg
        assert "latency_wire_to_wire" in entry["fixed"]
    assert [t["name"] for t in doc["targets"][label]][0] == "book level updates/s (one core)"


# -- the burst shape and the relay floor, through bench.py e2e --quick ------------------------------

def test_quick_burst_run_interleaves_the_relay_floor_and_prints_ratios_and_the_trace(tmp_path):
    out = tmp_path / "burst.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "bench.py"), "e2e", "--quick",
                           "--shape", "burst", "--symbols", "3", "--boundaries-per-s", "50",
                           "--modes", "fixed", "--trace", "4", "--out", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, proc.stderr.decode()[-3000:]
    text = proc.stdout.decode()
    assert "burst shape: 3 symbols x 50 boundaries/s with trades and quotes" in text
    for row in ("daemon-internal p50 x relay floor", "wire-to-wire p50 x relay floor",
                "trace total p50 us", "trace queue p50 us", "trace datagrams per read mean",
                "daemon CPU us/msg", "longest GC pause us"):
        assert row in text, row
    doc = json.loads(out.read_text())
    [(label, res)] = doc["results"].items()
    e = res["e2e"]
    assert e["shape"] == "burst" and e["symbols"] == 3 and e["boundaries_per_s"] == 50
    assert e["variants"]["floor"]["relay_floor"] is True
    order = [o.split("/")[0] for o in e["order"]]
    assert sorted(order) == ["all_on", "baseline", "floor"]
    for name in ("floor", "baseline", "all_on"):
        agg = e["variants"][name]["fixed"]
        assert agg["failed"] == 0, agg["errors"]
        [run] = agg["runs"]
        assert run["shape"] == "burst" and run["lost_messages"] == 0
        assert run["latency_daemon"]["count"] > 0 and run["latency_wire_to_wire"]["count"] > 0
    for name in ("baseline", "all_on"):
        agg = e["variants"][name]["fixed"]
        for lat in ("latency_daemon", "latency_wire_to_wire"):
            assert agg["vs_relay"][lat]["p50_ns"]["n"] == 1
        [run] = agg["runs"]
        assert all(run["trace"]["stages"][s]["count"] > 0 for s in
                   ("decode", "queue", "parse", "sync", "pack", "send", "total"))
        assert run["trace"]["frames_per_read"]["count"] > 0
        assert run["daemon_cpu_us_per_msg"] > 0


def test_joined_variants_take_every_part_settings_environment_and_interpreter_options():
    [(name, keys)] = e2e.variants(["nursery_4m+gc+jit_long_traces"])
    assert keys == ("gc",)
    assert e2e.variant_env(name) == {"PYPY_GC_NURSERY": "4M"}
    assert e2e.variant_interpreter_args(name)[0] == "--jit"
    assert e2e.variant_env("baseline") == {} and e2e.variant_interpreter_args("floor") == []
    for bad in (["floor+gc"], ["nursery_4m+nope"]):
        with pytest.raises(ValueError):
            e2e.variants(bad)


def test_client_section_reports_the_decode_rate_of_the_client_path():
    from hftfeed.tools.bench import client as client_bench
    data, messages = client_bench.datagrams(200)
    assert messages > 200 and all(wire_ok(d) for d in data)
    result = client_bench.run(quick=True)
    for name in ("subscriber", "decode_packet"):
        r = result[name]
        assert 0 < r["min"] <= r["messages_per_s"] <= r["max"]


def wire_ok(datagram):
    from hftfeed.codecs import wire
    wire.check_datagram(datagram)
    return True


def test_jit_variant_sets_pypys_own_thresholds_and_baseline_keeps_the_daemons():
    base = load_config_dict(e2e.daemon_config("ws://127.0.0.1:1", "http://127.0.0.1:1", 9,
                                              ["BTCUSDT"], e2e.phase1_settings((), 0)))
    pypy = load_config_dict(e2e.daemon_config(
        "ws://127.0.0.1:1", "http://127.0.0.1:1", 9, ["BTCUSDT"],
        e2e.phase1_settings(dict(e2e.variants(["jit_pypy_defaults"]))["jit_pypy_defaults"], 0)))
    assert base.jit.params() == "threshold=200,function_threshold=300,trace_eagerness=20"
    assert pypy.jit.params() == "threshold=1039,function_threshold=1619,trace_eagerness=200"
