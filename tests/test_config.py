"""config.py: the JSON contract other tools generate against, and its one-line errors."""

import json
import os
import re
import subprocess
import sys

import pytest

from hftfeed.app.config import load_config, load_config_dict, parse_host_port
from hftfeed.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CONTRACT = {
    "feeds": [
        {"venue": "binance", "ws_url": "wss://stream.binance.com:9443",
         "rest_url": "https://api.binance.com",
         "symbols": ["BTCUSDT", "ETHUSDT"], "channels": ["depth", "trade", "bookTicker"]}
    ],
    "publisher": {"target": "239.1.1.1:9002", "channel": 1, "depth": 20},
}


def cfg_with(**changes):
    raw = json.loads(json.dumps(CONTRACT))
    for dotted, value in changes.items():
        node = raw
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node[int(key)] if isinstance(node, list) else node[key]
        last = keys[-1]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return raw


def error_of(raw):
    with pytest.raises(ConfigError) as info:
        load_config_dict(raw)
    return str(info.value)


def test_contract_example_loads_exactly_as_written():
    cfg = load_config_dict(CONTRACT)
    feed = cfg.feeds[0]
    assert feed.venue == "binance"
    assert feed.ws_url == "wss://stream.binance.com:9443"
    assert feed.rest_url == "https://api.binance.com"
    assert feed.channels == ("depth", "trade", "bookTicker")
    assert [(i.symbol, i.instrument_id) for i in cfg.instruments] == [("BTCUSDT", 1), ("ETHUSDT", 2)]
    pub = cfg.publisher
    assert (pub.target_host, pub.target_port, pub.channel, pub.depth) == ("239.1.1.1", 9002, 1, 20)
    assert pub.is_multicast


def test_phase1_contract_keys_work_as_written():
    raw = cfg_with(memory_lock=False, cpu_affinity={"enabled": True, "processor_core": 1},
                   socket_buffers={"sndbuf_bytes": 4194304, "rcvbuf_bytes": 4194304},
                   gc={"freeze_after_start": False}, busy_poll=True)
    cfg = load_config_dict(raw)
    assert cfg.memory_lock is False
    assert cfg.cpu_affinity.core == 1
    assert (cfg.socket_buffers.sndbuf_bytes, cfg.socket_buffers.rcvbuf_bytes) == (4194304, 4194304)
    assert cfg.gc.freeze_after_start is False
    assert cfg.busy_poll is True


def test_socket_buffers_of_zero_mean_the_kernel_default():
    cfg = load_config_dict(cfg_with(socket_buffers={"sndbuf_bytes": 0, "rcvbuf_bytes": 0}))
    assert (cfg.socket_buffers.sndbuf_bytes, cfg.socket_buffers.rcvbuf_bytes) == (0, 0)


def test_processor_core_minus_one_disables_pinning_even_when_enabled_is_absent():
    assert load_config_dict(cfg_with(cpu_affinity={"processor_core": -1})).cpu_affinity.core == -1
    assert load_config_dict(cfg_with(cpu_affinity={"enabled": False, "processor_core": 1})).cpu_affinity.core == -1


def test_defaults_when_only_feeds_are_given():
    cfg = load_config_dict({"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"]}]})
    assert cfg.feeds[0].ws_url == "wss://stream.binance.com:9443"
    assert cfg.feeds[0].rest_url == "https://api.binance.com"
    assert cfg.publisher.depth == 20
    assert cfg.publisher.max_payload == 1472
    assert cfg.book.capacity_levels == 5000
    assert cfg.memory_lock is True and cfg.cpu_affinity.core == -1 and cfg.busy_poll is False
    assert (cfg.socket_buffers.sndbuf_bytes, cfg.socket_buffers.rcvbuf_bytes) == (4 * 2 ** 20, 4 * 2 ** 20)


def test_plain_ws_and_http_urls_are_accepted_for_the_simulator():
    cfg = load_config_dict(cfg_with(feeds__0__ws_url="ws://127.0.0.1:9443",
                                    feeds__0__rest_url="http://127.0.0.1:9443/"))
    assert cfg.feeds[0].ws_url == "ws://127.0.0.1:9443"
    assert cfg.feeds[0].rest_url == "http://127.0.0.1:9443"


def test_explicit_ids_are_kept_and_automatic_ids_skip_them():
    raw = cfg_with(feeds__0__symbols=[{"symbol": "BTCUSDT", "id": 2}, "ETHUSDT", "SOLUSDT"])
    cfg = load_config_dict(raw)
    assert [(i.symbol, i.instrument_id) for i in cfg.instruments] == \
        [("BTCUSDT", 2), ("ETHUSDT", 1), ("SOLUSDT", 3)]


def test_ids_continue_across_feeds_in_order_of_appearance():
    raw = cfg_with()
    raw["feeds"].append({"venue": "binance", "symbols": ["SOLUSDT", {"symbol": "XRPUSDT", "id": 7}]})
    cfg = load_config_dict(raw)
    assert [i.instrument_id for i in cfg.instruments] == [1, 2, 3, 7]


@pytest.mark.parametrize("changes, needle", [
    ({"feeds__0__colour": "red"}, "feeds[0]: unknown key 'colour'"),
    ({"extra": 1}, "config: unknown key 'extra'"),
    ({"publisher__speed": 1}, "publisher: unknown key 'speed'"),
    ({"feeds__0__venue": "nyse"}, "feeds[0].venue: 'nyse' is not one of"),
    ({"feeds__0__symbols": "BTCUSDT"}, "feeds[0].symbols: expected a non-empty list"),
    ({"feeds__0__symbols": []}, "feeds[0].symbols: expected a non-empty list"),
    ({"feeds__0__symbols__1": 5}, "feeds[0].symbols[1]: expected a symbol string"),
    ({"feeds__0__symbols__1": "BTCUSDT"}, "feeds[0].symbols[1]: 'BTCUSDT' is listed twice"),
    ({"feeds__0__channels": ["depth", "kline"]}, "feeds[0].channels[1]: 'kline' is not one of"),
    ({"feeds__0__ws_url": "http://x"}, "feeds[0].ws_url: 'http://x' must be a ws or wss URL"),
    ({"feeds__0__rest_url": "ftp://x"}, "feeds[0].rest_url"),
    ({"feeds__0__snapshot_limit": 0}, "feeds[0].snapshot_limit: 0 is out of range"),
    ({"feeds__0__snapshot_limit": "1000"}, "feeds[0].snapshot_limit: expected an integer, got a string"),
    ({"publisher__target": "239.1.1.1"}, "publisher.target: '239.1.1.1' is not HOST:PORT"),
    ({"publisher__target": "239.1.1.1:70000"}, "publisher.target: port '70000'"),
    ({"publisher__target": "not-an-ip:9002"}, "publisher.target: 'not-an-ip' is not an IP address"),
    ({"publisher__target": "[zz::1]:9002"}, "is not an IPv6 address"),
    ({"publisher__channel": 70000}, "publisher.channel: 70000 is out of range"),
    ({"publisher__depth": True}, "publisher.depth: expected an integer, got a boolean"),
    ({"publisher__depth": 100}, "does not fit max_payload"),
    ({"memory_lock": "yes"}, "config.memory_lock: expected true or false, got a string"),
    ({"cpu_affinity": {"enabled": True}}, "cpu_affinity.processor_core: set a core >= 0"),
    ({"cpu_affinity": {"core": 1}}, "cpu_affinity: unknown key 'core'"),
    ({"gc": {"thresholds": [1, "x"]}}, "gc.thresholds"),
    ({"gc": {"disable_automatic": True}}, "gc.disable_automatic: needs gc.collect_interval_s"),
    ({"socket_buffers": {"sndbuf_bytes": -1}}, "socket_buffers.sndbuf_bytes: -1 is out of range"),
    ({"socket_buffers": {"rcvbuf_bytes": 100}},
     "socket_buffers.rcvbuf_bytes: 100 is out of range: 0 (kernel default) or [4096, "),
])
def test_bad_values_name_the_key(changes, needle):
    assert needle in error_of(cfg_with(**changes))


def test_duplicate_explicit_ids_name_both_places():
    raw = cfg_with(feeds__0__symbols=[{"symbol": "BTCUSDT", "id": 3}, {"symbol": "ETHUSDT", "id": 3}])
    assert error_of(raw) == ("feeds[0].symbols[1].id: instrument id 3 is already used by "
                             "feeds[0].symbols[0].id")


def test_missing_feeds_and_wrong_top_level_type():
    assert "feeds: expected a non-empty list" in error_of({"publisher": {}})
    assert "expected an object" in error_of([1, 2])


def test_host_port_forms():
    assert parse_host_port("127.0.0.1:9002", "x") == ("127.0.0.1", 9002)
    assert parse_host_port("[::1]:9002", "x") == ("::1", 9002)
    with pytest.raises(ConfigError):
        parse_host_port("::1:9002", "x")


def test_unreadable_and_invalid_json_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{\"feeds\": [")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        load_config(str(bad))


def test_shipped_configs_are_valid():
    for name in ("hftfeed.json", "hftfeed.limited.json", "demo.json"):
        load_config(os.path.join(ROOT, "etc", name))


@pytest.mark.parametrize("content, needle", [
    ('{"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"], "bogus": 1}]}', "unknown key 'bogus'"),
    ("not json", "is not valid JSON"),
])
def test_cli_bad_config_is_one_line_and_exit_code_2(tmp_path, content, needle):
    path = tmp_path / "c.json"
    path.write_text(content)
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "hftfeed.py"), "run", "--config",
                           str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_unknown_command_exits_2():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "hftfeed.py"), "fly"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "unknown command 'fly'" in proc.stderr


# ---------------------------------------------------------------------------------------------
# one home for each key: the sections declare them, docs/config.md documents each one

def test_every_key_of_every_section_is_documented():
    from hftfeed.app import config
    with open(os.path.join(ROOT, "docs", "config.md"), encoding="utf-8") as f:
        doc = f.read()
    sections = [cls for cls in vars(config).values()
                if isinstance(cls, type) and issubclass(cls, config.Section)
                and cls is not config.Section]
    assert len(sections) >= 8
    for cls in sections:
        for name in cls.key_names():
            documented = "`%s`" % name in doc or re.search(r"\| `[a-z_]+\.%s` \|" % name, doc)
            assert documented, "%s.%s is not in docs/config.md" % (cls.__name__, name)


def test_sections_compare_by_value_so_a_reload_sees_what_changed():
    a = load_config_dict(CONTRACT)
    b = load_config_dict(cfg_with(socket_buffers={"sndbuf_bytes": 8192}))
    assert a.publisher == b.publisher and a.gc == b.gc
    assert a.socket_buffers != b.socket_buffers


def test_publisher_flush_lives_in_the_publisher_section():
    default = load_config_dict(CONTRACT).publisher
    assert default.flush == "read" and default.flush_per_frame is False
    pub = load_config_dict(cfg_with(publisher={"flush": "frame"})).publisher
    assert pub.flush == "frame" and pub.flush_per_frame is True


# ---------------------------------------------------------------------------------------------
# what run time would reject, --check rejects

@pytest.mark.parametrize("venue, symbol, example", [
    ("binance", "BTC#USDT", "BTCUSDT"),
    ("binance", "BTC USDT", "BTCUSDT"),
    ("bybit", "BTC/USDT", "BTCUSDT"),
    ("okx", "BTC-USDT-", "BTC-USDT-SWAP"),
])
def test_a_symbol_the_venue_cannot_have_is_refused_with_an_example(venue, symbol, example):
    message = error_of({"feeds": [{"venue": venue, "symbols": ["ETHUSDT" if venue != "okx"
                                                                 else "ETH-USDT", symbol]}]})
    assert message.startswith("feeds[0].symbols[1]: %r is not a" % symbol)
    assert "expected something like %s" % example in message


@pytest.mark.parametrize("key, url, needle", [
    ("ws_url", "wss://stream.binance.com:9443/#frag", "must not contain a fragment"),
    ("ws_url", "wss://stream.binance.com:9443/ws?x=1", "must not contain a query"),
    ("ws_url", "wss://user:pw@stream.binance.com:9443", "must not contain user info"),
    ("ws_url", "ftp://stream.binance.com", "must be a ws or wss URL"),
    ("ws_url", "wss://stream.binance.com:99999", "invalid host or port"),
    ("ws_url", "wss://stream.binance.com:9443/\x1b[2J", "printable ASCII"),
    ("rest_url", "https://api.binance.com#x", "must not contain a fragment"),
    ("rest_url", "https://api.binance.com/?", "must not contain a query"),
    ("rest_url", "wss://api.binance.com", "must be a http or https URL"),
])
def test_endpoint_urls_the_transports_cannot_use_are_refused(key, url, needle):
    message = error_of(cfg_with(**{"feeds__0__" + key: url}))
    assert message.startswith("feeds[0].%s: " % key) and needle in message


def test_books_that_cannot_fit_in_memory_are_refused_with_the_estimate():
    symbols = ["S%dUSDT" % i for i in range(10000)]
    message = error_of({"feeds": [{"venue": "binance", "symbols": symbols}],
                        "book": {"capacity_levels": 1000000}})
    assert message.startswith("book.capacity_levels: 1000000 levels x 10000 instruments "
                              "pre-allocate about 447.0 GiB of books (limit 64.0 GiB)")
    cfg = load_config_dict({"feeds": [{"venue": "binance", "symbols": symbols[:100]}]})
    from hftfeed.core.book import Book
    book = Book(cfg.book.capacity_levels)
    per_book = sum(len(b) * b.itemsize for b in book.buffers())
    assert cfg.book_memory_bytes == 100 * per_book


def run_check(path):
    return subprocess.run([sys.executable, os.path.join(ROOT, "hftfeed.py"), "run", "--config",
                           str(path), "--check"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=60)


def test_check_of_a_deeply_nested_file_is_one_line_and_exit_2(tmp_path):
    path = tmp_path / "deep.json"
    path.write_text("[" * 100000)
    proc = run_check(path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "nested deeper than" in proc.stderr


def test_check_refuses_a_symbol_and_a_url_run_time_would_crash_on(tmp_path):
    for feed, needle in (({"venue": "binance", "symbols": ["BTC#USDT"]}, "BTC#USDT"),
                         ({"venue": "okx", "symbols": ["BTC-USDT"],
                           "ws_url": "wss://ws.okx.com:8443/ws/v5/public/#frag"}, "fragment")):
        path = tmp_path / "c.json"
        path.write_text(json.dumps({"feeds": [feed]}))
        proc = run_check(path)
        assert proc.returncode == 2 and needle in proc.stderr, proc.stderr
        assert proc.stderr.count("\n") == 1


def test_check_prints_the_book_memory_estimate(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(CONTRACT))
    proc = run_check(path)
    assert proc.returncode == 0, proc.stderr
    assert "books pre-allocate" in proc.stdout


def test_a_reload_of_a_deeply_nested_file_is_refused_and_the_old_config_kept(tmp_path, caplog):
    from hftfeed.app.daemon import Daemon
    path = tmp_path / "deep.json"
    path.write_text("[" * 100000)
    cfg = load_config_dict(CONTRACT)
    daemon = Daemon(cfg, config_path=str(path))
    with caplog.at_level("ERROR", logger="hftfeed.daemon"):
        daemon.reload()
    assert "reload refused, still running the old config" in caplog.text
    assert "nested deeper than" in caplog.text
    assert daemon.cfg is cfg


def test_check_warns_when_the_books_need_more_than_half_of_the_machines_memory(
        tmp_path, monkeypatch, capsys):
    from hftfeed.app import daemon
    from hftfeed.runtime import hw
    path = tmp_path / "c.json"
    path.write_text(json.dumps(cfg_with(book={"capacity_levels": 100000})))
    needed = load_config_dict(cfg_with(book={"capacity_levels": 100000})).book_memory_bytes
    monkeypatch.setattr(hw, "physical_memory_bytes", lambda: 2 * needed + 2)
    assert daemon.main(["--config", str(path), "--check"]) == 0
    assert "warning" not in capsys.readouterr().out
    monkeypatch.setattr(hw, "physical_memory_bytes", lambda: 2 * needed - 2)
    assert daemon.main(["--config", str(path), "--check"]) == 0
    out = capsys.readouterr().out
    assert "books pre-allocate 9.2 MiB" in out
    assert "warning: the books alone need more than half of this machine's" in out
