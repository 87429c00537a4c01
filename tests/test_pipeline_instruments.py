"""pipeline/instruments.py against a scripted HTTP server on loopback: what the loader does with
each kind of answer. It never raises, never takes longer than its deadline, retries a rate limit
once after Retry-After, and hands the publisher exactly the checked details."""

import asyncio
import json
import time
from types import SimpleNamespace

from hftfeed.pipeline import instruments as loader
from hftfeed.pipeline.feed import FeedStats

LIST = json.dumps({"retCode": 0, "result": {"list": [
    {"symbol": "BTCUSDT", "status": "Trading", "priceFilter": {"tickSize": "0.10"},
     "lotSizeFilter": {"qtyStep": "0.001", "minOrderQty": "0.001"}},
    {"symbol": "ETHUSDT", "status": "Trading", "priceFilter": {"tickSize": "-1"},
     "lotSizeFilter": {"qtyStep": "0.01", "minOrderQty": "0.01"}}]}}).encode()


class Publisher(object):
    def __init__(self):
        self.details = {}
        self.sent = 0

    def set_details(self, instrument, spec, loaded_ns):
        self.details[instrument] = (spec, loaded_ns)

    def send_instruments(self):
        self.sent += 1


async def serve(answers):
    """An HTTP server answering each request with the next of ``answers``: (status, headers,
    body), or None to never answer. Returns (server, requests seen)."""
    seen = []

    async def handle(reader, writer):
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()          # the client is done (or gave up)
                return
            seen.append(head.split(b" ")[1].decode())
            answer = answers.pop(0) if answers else (404, [], b"{}")
            if answer is None:
                await asyncio.sleep(3600)
            status, headers, body = answer
            extra = "".join("%s: %s\r\n" % h for h in headers)
            writer.write(("HTTP/1.1 %d X\r\nContent-Length: %d\r\n%s\r\n"
                          % (status, len(body), extra)).encode() + body)
            await writer.drain()
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, seen


def run(answers, enabled=True, timeout_s=1.0):
    async def body():
        server, seen = await serve(answers)
        port = server.sockets[0].getsockname()[1]
        cfg = SimpleNamespace(venue="bybit", rest_url="http://127.0.0.1:%d" % port,
                              snapshot_timeout_s=timeout_s, instrument_metadata=enabled)
        feed = SimpleNamespace(cfg=cfg, stats=FeedStats(), publisher=Publisher(),
                               ssl_context=None,
                               instruments={"BTCUSDT": SimpleNamespace(instrument_id=1),
                                            "ETHUSDT": SimpleNamespace(instrument_id=2),
                                            "BTCUSDX": SimpleNamespace(instrument_id=3)})
        start = time.monotonic()
        try:
            specs = await loader.load_details(feed, clock_ns=lambda: 42)
        finally:
            server.close()
        return specs, feed, seen, time.monotonic() - start
    return asyncio.run(body())


def test_checked_details_reach_the_publisher_and_the_rest_is_counted(caplog):
    specs, feed, seen, _ = run([(200, [], LIST)])
    assert seen == ["/v5/market/instruments-info?category=linear&limit=1000"]
    assert list(specs) == ["BTCUSDT"]
    spec, loaded_ns = feed.publisher.details[1]
    assert (spec.tick_size, spec.lot_size, spec.min_qty, loaded_ns) == (10 ** 7, 10 ** 5,
                                                                        10 ** 5, 42)
    assert feed.publisher.sent == 1 and 2 not in feed.publisher.details
    s = feed.stats
    assert (s.instruments_loaded, s.instruments_refused, s.instruments_missing,
            s.instrument_errors) == (1, 1, 1, 0)
    assert "BTCUSDX" in caplog.text and "ETHUSDT" in caplog.text


def test_an_http_error_is_one_warning_and_nothing_is_published(caplog):
    body = b'{"retCode":10016,"retMsg":"\x1b[31mboom\nforged line"}'
    specs, feed, _, _ = run([(500, [], body)])
    assert specs == {} and feed.publisher.details == {} and feed.stats.instrument_errors == 1
    lines = [r.getMessage() for r in caplog.records if "not loaded" in r.getMessage()]
    assert len(lines) == 1 and "500" in lines[0] and "boom" in lines[0]
    assert "\x1b" not in lines[0] and "\n" not in lines[0]         # escaped, one line


def test_a_rate_limit_is_waited_out_once():
    specs, feed, seen, took_s = run([(429, [("Retry-After", "1")], b"{}"), (200, [], LIST)],
                                    timeout_s=2.0)
    assert list(specs) == ["BTCUSDT"] and len(seen) == 2
    assert feed.stats.rate_limited == 1 and took_s >= 1.0


def test_a_venue_that_never_answers_is_given_up_at_the_deadline():
    specs, feed, _, took_s = run([None], timeout_s=0.3)
    assert specs == {} and feed.stats.instrument_errors == 1
    assert took_s < 5.0                     # per-request timeout 0.3 s, deadline 0.9 s


def test_a_body_that_is_not_the_venues_shape_is_an_error_not_a_crash():
    specs, feed, _, _ = run([(200, [], b"<html>captive portal</html>")])
    assert specs == {} and feed.stats.instrument_errors == 1


def test_switched_off_it_asks_nothing():
    specs, feed, seen, _ = run([(200, [], LIST)], enabled=False)
    assert specs == {} and seen == [] and feed.stats.instrument_errors == 0
