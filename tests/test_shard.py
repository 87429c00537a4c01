"""``hftfeed.py shard`` (app/shard.py): a balanced, consistent split, and two shard daemons
against one simulator whose union is every instrument exactly once with exact books."""

import json
import subprocess
import sys

import pytest

from hftfeed.app import shard
from hftfeed.app.config import load_config_dict
from hftfeed.codecs import wire
from hftfeed.errors import ConfigError

from e2e import (ENTRY, Collector, DaemonProcess, SimProcess, check_books_against_truth,
                 check_sequence, daemon_config)
from simtruth import load_journal


def whole(symbols, **extra):
    cfg = {"feeds": [{"venue": "binance", "symbols": list(symbols)}],
           "publisher": {"target": "239.1.1.1:9002", "channel": 5}, "memory_lock": False}
    cfg.update(extra)
    return cfg


def test_cores_are_parsed_strictly():
    assert shard.parse_cores("2,3,6-8") == [2, 3, 6, 7, 8]
    for bad in ("", "2,,3", "a", "2,2", "3-x"):
        with pytest.raises(ConfigError):
            shard.parse_cores(bad)


def test_balance_puts_the_largest_first_onto_the_least_loaded_core():
    shards, loads = shard.balance([("a", 10), ("b", 6), ("c", 5), ("d", 4), ("e", 1)], 2)
    assert shards == [["a", "d"], ["b", "c", "e"]] and loads == [14, 12]


def test_split_keeps_ids_unique_and_gives_each_shard_its_channel_core_and_group():
    raw = whole(["BTCUSDT", "ETHUSDT", "SOLUSDT", {"symbol": "XRPUSDT", "id": 40}, "ADAUSDT"],
                metrics={"listen": "127.0.0.1:9102"})
    rates = {"BTCUSDT": 100, "BINANCE:ETHUSDT": 90, "SOLUSDT": 10, "XRPUSDT": 5}
    out = shard.split(raw, [2, 3], rates, groups=["239.1.1.1:9002", "239.1.1.2:9002"])
    ids = {}
    for index, (core, cfg, rate) in enumerate(out):
        loaded = load_config_dict(cfg)
        assert loaded.cpu_affinity.core == core and loaded.publisher.channel == 5 + index
        assert loaded.publisher.target_host == "239.1.1.%d" % (index + 1)
        assert loaded.metrics.listen == ("127.0.0.1", 9102 + index)
        for inst in loaded.instruments:
            assert inst.symbol not in ids
            ids[inst.symbol] = inst.instrument_id
    assert ids == {"BTCUSDT": 1, "ETHUSDT": 2, "SOLUSDT": 3, "XRPUSDT": 40, "ADAUSDT": 4}
    # ADAUSDT has no figure: it weighs the median of the given ones (50)
    assert [sorted(i["symbol"] for i in cfg["feeds"][0]["symbols"]) for _, cfg, _ in out] == \
        [["BTCUSDT", "SOLUSDT", "XRPUSDT"], ["ADAUSDT", "ETHUSDT"]]
    assert [rate for _, _, rate in out] == [115.0, 140.0]
    assert raw["feeds"][0]["symbols"][0] == "BTCUSDT", "the input is not modified"


def test_split_refuses_what_cannot_work():
    with pytest.raises(ConfigError, match="cannot fill"):
        shard.split(whole(["BTCUSDT"]), [2, 3], {})
    with pytest.raises(ConfigError, match="one per core"):
        shard.split(whole(["BTCUSDT", "ETHUSDT"]), [2, 3], {}, groups=["239.1.1.1:1"])
    with pytest.raises(ConfigError, match="not a multicast group"):
        shard.parse_groups("10.0.0.1", 9002)
    assert shard.parse_groups("239.1.1.1,239.1.1.2:7000,ff15::1", 9002) == \
        ["239.1.1.1:9002", "239.1.1.2:7000", "[ff15::1]:9002"]


def test_the_command_writes_one_file_per_core(tmp_path):
    src = tmp_path / "all.json"
    src.write_text(json.dumps(whole(["BTCUSDT", "ETHUSDT", "SOLUSDT"])))
    proc = subprocess.run([sys.executable, ENTRY, "shard", "--config", str(src), "--cores", "2,3",
                           "--out", str(tmp_path / "out")], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["all-core2.json",
                                                                     "all-core3.json"]
    assert "hftfeed@all-core2" in proc.stdout
    bad = subprocess.run([sys.executable, ENTRY, "shard", "--config", str(src), "--cores", "2",
                          "--out", str(tmp_path / "o2"), "--rates", str(src)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         universal_newlines=True, timeout=30)
    assert bad.returncode == 2 and len(bad.stderr.splitlines()) == 1


def test_two_shards_together_publish_every_instrument_exactly_once_with_exact_books(tmp_path):
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    sim = SimProcess(tmp_path, symbols, rate=200)
    col = Collector()
    raw = daemon_config(sim, col.target, symbols)
    out = shard.split(raw, [0, 0 + 1], {"BTCUSDT": 50, "ETHUSDT": 40, "SOLUSDT": 30,
                                       "XRPUSDT": 20})
    daemons = []
    try:
        for core, cfg, _ in out:
            cfg["cpu_affinity"] = {"enabled": False}      # the CI box may have one core
            d_dir = tmp_path / ("core%d" % core)
            d_dir.mkdir()
            daemons.append(DaemonProcess(d_dir, cfg))
        live = set()

        def all_live(data):
            for m in wire.decode_packet(data).messages:
                if m.type == wire.TYPE_STATUS and m.state == wire.STATE_LIVE:
                    live.add(m.instrument)
            return len(live) == 4
        assert col.collect(20, until=all_live), [d.log_text()[-1500:] for d in daemons]
        col.collect(2.0)
    finally:
        codes = [d.stop()[0] for d in daemons]
        col.collect(0.3)
        sim.stop()
        col.close()
    assert codes == [0, 0]
    by_channel = {}
    for pkt in col.packets():
        by_channel.setdefault(pkt.channel, []).append(pkt)
    assert sorted(by_channel) == [7, 8]
    truth = load_journal(sim.journal)
    owner = {}
    for channel, packets in by_channel.items():
        check_sequence(packets)
        ids = {m.instrument: m.symbol for p in packets for m in p.messages
               if m.type == wire.TYPE_INSTRUMENT}
        for inst_id, symbol in ids.items():
            assert inst_id not in owner, "instrument %d on two channels" % inst_id
            owner[inst_id] = (channel, symbol)
        assert check_books_against_truth(packets, truth, ids) > 0
        seen = {m.instrument for p in packets for m in p.messages if m.type == wire.TYPE_BOOK}
        assert seen == set(ids), "a shard publishes books only for its own instruments"
    assert sorted(symbol for _, symbol in owner.values()) == sorted(symbols)
    assert sorted(owner) == [1, 2, 3, 4]
