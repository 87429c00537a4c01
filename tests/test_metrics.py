"""Prometheus metrics (app/metrics.py): the exposition text, the bounded HTTP endpoint, and a
real Prometheus server scraping a daemon subprocess on loopback."""

import asyncio
import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from hftfeed.app import metrics
from hftfeed.runtime.stats import LatencyHistogram

from e2e import Collector, DaemonProcess, SimProcess, daemon_config


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(port, path="/metrics", timeout_s=5):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout_s) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode("utf-8")


# -- the text format -------------------------------------------------------------------------

def test_label_values_are_escaped_and_parse_back():
    page = metrics.Page()
    page.one("x_total", "counter", "help", (("symbol", 'a"b\\c\nd'), ("channel", "1")), 5)
    text = page.text()
    assert 'x_total{symbol="a\\"b\\\\c\\nd",channel="1"} 5\n' in text
    assert text.startswith("# HELP x_total help\n# TYPE x_total counter\n")
    assert metrics.parse_exposition(text) == {"x_total": [({"symbol": 'a"b\\c\nd',
                                                             "channel": "1"}, 5.0)]}


def test_histogram_buckets_are_cumulative_and_end_at_the_count():
    hist = LatencyHistogram()
    for ns in (5000, 20000, 20000, 300000, 2000000, 90 * 10 ** 9):
        hist.record(ns)
    counts = metrics.histogram_buckets([hist], metrics.LATENCY_BUCKETS_S)
    by_bound = dict(zip(metrics.LATENCY_BUCKETS_S, counts))
    assert by_bound[0.00001] == 1 and by_bound[0.000025] == 3
    assert by_bound[0.0005] == 4 and by_bound[0.0025] == 5 and by_bound[1.0] == 5
    assert counts == sorted(counts), "cumulative"
    twice = metrics.histogram_buckets([hist, hist], metrics.LATENCY_BUCKETS_S)
    assert twice == [2 * c for c in counts]


def test_values_are_formatted_as_prometheus_reads_them():
    assert metrics.format_value(3) == "3"
    assert metrics.format_value(0.25) == "0.25"
    assert metrics.format_value(float("nan")) == "NaN"
    assert metrics.format_value(float("inf")) == "+Inf"


# -- the endpoint ------------------------------------------------------------------------------

def run_server(coro_fn, monkeypatch=None):
    loop = asyncio.new_event_loop()
    try:
        server = metrics.MetricsServer(lambda: "up 1\n", "127.0.0.1", 0)
        loop.run_until_complete(server.start())
        return loop.run_until_complete(coro_fn(server)), server
    finally:
        loop.run_until_complete(server.close())
        loop.close()


async def raw_request(port, data, read_timeout_s=5.0):
    """Send ``data``, return all the server answers before it closes (b"" if it just closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), read_timeout_s)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def test_endpoint_answers_get_metrics_and_refuses_the_rest():
    async def scenario(server):
        ok = await raw_request(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        other = await raw_request(server.port, b"GET /admin HTTP/1.1\r\n\r\n")
        post = await raw_request(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")
        junk = await raw_request(server.port, b"\x00\x01\x02\r\n\r\n")
        return ok, other, post, junk
    (ok, other, post, junk), server = run_server(scenario)
    assert ok.startswith(b"HTTP/1.1 200 OK\r\n") and ok.endswith(b"\r\n\r\nup 1\n")
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n" in ok
    assert other.startswith(b"HTTP/1.1 404 ") and post.startswith(b"HTTP/1.1 405 ")
    assert junk.startswith(b"HTTP/1.1 400 ")
    assert server.served == 1


def test_an_oversized_request_is_dropped_without_an_answer():
    async def scenario(server):
        return await raw_request(server.port, b"GET /metrics HTTP/1.1\r\nX: " +
                                 b"a" * (2 * metrics.MAX_REQUEST_BYTES) + b"\r\n\r\n")
    answer, server = run_server(scenario)
    assert answer == b"" and server.bad_requests == 1 and server.served == 0


def test_a_silent_client_is_cut_off_at_the_deadline(monkeypatch):
    monkeypatch.setattr(metrics, "REQUEST_DEADLINE_S", 0.3)

    async def scenario(server):
        start = time.monotonic()
        answer = await raw_request(server.port, b"GET /metr", read_timeout_s=5.0)
        return answer, time.monotonic() - start
    (answer, took_s), server = run_server(scenario)
    assert answer == b"" and server.bad_requests == 1
    assert took_s < 4.0, "closed by the server's deadline, not the client's timeout"


def test_connections_beyond_the_limit_are_closed_at_once(monkeypatch):
    monkeypatch.setattr(metrics, "MAX_CONNECTIONS", 2)
    monkeypatch.setattr(metrics, "REQUEST_DEADLINE_S", 3.0)

    async def scenario(server):
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        await asyncio.sleep(0.1)
        extra = await raw_request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.1)
        after = await raw_request(server.port, b"GET /metrics HTTP/1.1\r\n\r\n")
        return extra, after
    (extra, after), server = run_server(scenario)
    assert extra == b"" and server.refused == 1
    assert after.startswith(b"HTTP/1.1 200 ")


# -- a daemon subprocess ----------------------------------------------------------------------

@pytest.fixture
def metered(tmp_path):
    port = free_port()
    sim = SimProcess(tmp_path, ["BTCUSDT", "ETHUSDT"], rate=200)
    col = Collector()
    cfg = daemon_config(sim, col.target, ["BTCUSDT", "ETHUSDT"],
                        metrics={"listen": "127.0.0.1:%d" % port})
    daemon = DaemonProcess(tmp_path, cfg)
    yield daemon, port, col
    if daemon.proc.poll() is None:
        daemon.stop()
    sim.stop()
    col.close()


def scrape_until(port, predicate, timeout_s=15):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = metrics.parse_exposition(http_get(port)[2])
            if predicate(last):
                return last
        except OSError:
            pass
        time.sleep(0.2)
    return last


def test_a_daemon_serves_every_series_with_its_labels(metered):
    daemon, port, col = metered
    page = scrape_until(port, lambda m: all(v == 1 for _, v in m["hftfeed_instrument_live"])
                        and m["hftfeed_trades_total"][0][1] > 0
                        and m["hftfeed_latency_seconds_count"][0][1] > 0)   # a stats line ran
    assert page is not None, daemon.log_text()[-2000:]
    live = {l["symbol"]: v for l, v in page["hftfeed_instrument_live"]}
    assert live == {"BTCUSDT": 1.0, "ETHUSDT": 1.0}
    labels = page["hftfeed_instrument_state"][0][0]
    assert labels == {"channel": "7", "venue": "binance", "symbol": labels["symbol"],
                      "instrument_id": labels["instrument_id"]}
    assert all(v < 5 for _, v in page["hftfeed_instrument_last_update_age_seconds"])
    for name in ("hftfeed_book_updates_total", "hftfeed_quotes_total", "hftfeed_gaps_total",
                 "hftfeed_resyncs_total", "hftfeed_reconnects_total", "hftfeed_connects_total",
                 "hftfeed_bad_messages_total", "hftfeed_udp_packets_sent_total",
                 "hftfeed_udp_sent_bytes_total", "hftfeed_udp_send_errors_total",
                 "hftfeed_udp_socket_drops_total", "process_resident_memory_bytes",
                 "hftfeed_locked_memory_bytes", "hftfeed_pinned_cpu",
                 "hftfeed_latency_seconds_bucket", "hftfeed_latency_seconds_count"):
        assert name in page, name
    assert page["hftfeed_connects_total"][0][1] == 1
    assert 0 < page["hftfeed_metrics_render_seconds"][0][1] < 5    # the previous scrape's cost
    assert page["process_resident_memory_bytes"][0][1] > 10 * 2 ** 20
    buckets = page["hftfeed_latency_seconds_bucket"]
    assert buckets[-1][0]["le"] == "+Inf"
    assert buckets[-1][1] == page["hftfeed_latency_seconds_count"][0][1] > 0
    code, _ = daemon.stop()
    assert code == 0
    assert "metrics: serving http://127.0.0.1:%d/metrics" % port in daemon.log_text()


def test_a_metrics_port_that_is_taken_is_one_error_line_and_exit_2(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    col = Collector()
    cfg = {"feeds": [{"venue": "binance", "ws_url": "ws://127.0.0.1:9/ws",
                      "rest_url": "http://127.0.0.1:9", "symbols": ["BTCUSDT"]}],
           "publisher": {"target": col.target}, "memory_lock": False,
           "metrics": {"listen": "127.0.0.1:%d" % busy.getsockname()[1]}}
    daemon = DaemonProcess(tmp_path, cfg)
    try:
        daemon.proc.wait(20)
    finally:
        busy.close()
        col.close()
    daemon.log.close()
    assert daemon.proc.returncode == 2
    assert daemon.log_text().splitlines()[-1].startswith(
        "hftfeed.py run: error: metrics.listen: cannot listen on 127.0.0.1:")


PROMETHEUS = shutil.which("prometheus")


@pytest.mark.skipif(PROMETHEUS is None, reason="no prometheus binary (tests/run.sh installs "
                                               "Debian's prometheus package as root)")
def test_a_real_prometheus_scrapes_the_daemon(metered, tmp_path):
    daemon, port, col = metered
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                      "scrape_configs:\n  - job_name: hftfeed\n    static_configs:\n"
                      "      - targets: ['127.0.0.1:%d']\n" % port)
    log = open(str(tmp_path / "prometheus.log"), "w")
    prom = subprocess.Popen([PROMETHEUS, "--config.file=%s" % config,
                             "--storage.tsdb.path=%s" % (tmp_path / "tsdb"),
                             "--web.listen-address=127.0.0.1:%d" % prom_port],
                            stdout=log, stderr=log)

    def query(expr):
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (prom_port, urllib.parse.quote(expr))
        with urllib.request.urlopen(url, timeout=5) as r:
            doc = json.loads(r.read().decode("utf-8"))
        assert doc["status"] == "success", doc
        return doc["data"]["result"]

    try:
        deadline = time.monotonic() + 60
        result = []
        while time.monotonic() < deadline:
            try:
                result = query('hftfeed_instrument_live{job="hftfeed"} == 1')
                if len(result) == 2:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        assert len(result) == 2, open(str(tmp_path / "prometheus.log")).read()[-3000:]
        assert sorted(r["metric"]["symbol"] for r in result) == ["BTCUSDT", "ETHUSDT"]
        assert query('up{job="hftfeed"}')[0]["value"][1] == "1"
        health = query('scrape_samples_scraped{job="hftfeed"}')
        assert int(health[0]["value"][1]) > 50
        p99 = query("histogram_quantile(0.99, hftfeed_latency_seconds_bucket)")
        assert p99 and 0 < float(p99[0]["value"][1]) < 10
        assert float(query("hftfeed_book_updates_total")[0]["value"][1]) > 0
    finally:
        prom.terminate()
        try:
            prom.wait(10)
        except subprocess.TimeoutExpired:
            prom.kill()
            prom.wait()
        log.close()
