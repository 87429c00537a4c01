"""The router against a hostile exchange on loopback: stale or wrong data is never presented as
good, every waiting state has a way out, and venue-supplied strings never forge log lines.

Each test runs a real :class:`~hftfeed.pipeline.feed.Feed` (real WebSocket and HTTP clients)
against ``hostile.HostileExchange`` and checks what would have been published."""

import asyncio
import logging

from hftfeed.codecs import wire
from hftfeed.core import sync as sync_mod

from hostile import (BYBIT_ACK, HostileExchange, binance_depth, binance_snapshot, binance_ticker,
                     bybit_book, frame, http_response, make_feed, run, wait_for)

LIVE, RESYNC, DISC = wire.STATE_LIVE, wire.STATE_RESYNC, wire.STATE_DISCONNECTED
BTC = 1


class Chain(object):
    """A Binance-like diff stream: ids 1, 2, 3, ... with a sane book (bid 100 < ask 101)."""

    def __init__(self):
        self.last_id = 0

    def diff(self):
        self.last_id += 1
        return binance_depth(self.last_id, self.last_id, bids=((100, self.last_id % 7 + 1),))

    def snapshot(self):
        return binance_snapshot(self.last_id)


def streaming(chain, interval_s=0.02, then=None):
    """A ws_script: diffs for ever (or until ``then(conn)`` returns True after a diff)."""

    async def script(conn):
        while True:
            conn.send_text(chain.diff())
            if then is not None and await then(conn):
                return
            await asyncio.sleep(interval_s)
    return script


def no_crossed_or_absurd_books(recorder):
    for _inst, _flags, bid, ask, update_id in recorder.books:
        assert bid is None or ask is None or bid[0] < ask[0]
        assert update_id <= sync_mod.MAX_SANE_ID


# -- liveness means progress -------------------------------------------------------------------

def test_a_trickling_frame_is_silence_the_book_is_taken_down_within_the_timeout(caplog):
    """The venue announces a 1000-byte text frame and sends it one byte at a time: no complete
    message, so the silence timeout fires and the instrument stops being live."""
    chain = Chain()
    trickling = []

    async def trickle(conn):
        if chain.last_id < 30 or conn.number > 0:
            return False
        trickling.append(asyncio.get_running_loop().time())
        conn.send_raw(b"\x81\x7e" + (1000).to_bytes(2, "big"))
        for _ in range(1000):
            conn.send_raw(b" ")
            await asyncio.sleep(0.1)
        return True

    async def scenario():
        ex = await HostileExchange(streaming(chain, then=trickle),
                                   lambda path: http_response(200, chain.snapshot())).start()
        feed, rec = make_feed("binance", ex, silence_timeout_s=1.0)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE and trickling)
            assert await wait_for(lambda: feed.stats.silent_disconnects >= 1, 6.0)
            assert DISC in [s for _i, s in rec.statuses[-3:]]
        finally:
            await feed.stop()
            await ex.stop()

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert "nothing received for" in caplog.text


def test_pings_without_market_data_do_not_keep_a_frozen_book_live(caplog):
    """The venue stops sending diffs but keeps pinging (frame-level pings every 0.1 s, so the
    silence timeout never fires): after data_silence_timeout_s the link is dropped, the book
    leaves LIVE, and a new connection (which streams again) brings it back."""
    chain = Chain()
    froze = []

    async def freeze(conn):
        if chain.last_id < 30 or conn.number > 0:
            return False
        froze.append(True)
        while True:                     # keepalives only, for ever
            conn.send_raw(frame(0x9, b"k"))
            await asyncio.sleep(0.1)

    async def scenario():
        ex = await HostileExchange(streaming(chain, then=freeze),
                                   lambda path: http_response(200, chain.snapshot())).start()
        feed, rec = make_feed("binance", ex, silence_timeout_s=1.0, data_silence_timeout_s=1.5)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE and froze)
            assert await wait_for(lambda: feed.stats.data_silent_disconnects >= 1, 6.0)
            assert feed.stats.silent_disconnects == 0      # pings did arrive all along
            assert DISC in [s for _i, s in rec.statuses]
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE, 6.0)   # the next link streams
        finally:
            await feed.stop()
            await ex.stop()

    with caplog.at_level(logging.WARNING):
        run(scenario())
    assert "no market data for" in caplog.text


def test_data_silence_timeout_zero_turns_the_rule_off():
    from hftfeed.app.config import load_config_dict
    cfg = load_config_dict({"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"],
                                       "data_silence_timeout_s": 0}]})
    assert cfg.feeds[0].data_silence_timeout_s == 0
    assert load_config_dict({"feeds": [{"venue": "binance", "symbols": ["BTCUSDT"]}]}) \
        .feeds[0].data_silence_timeout_s == 60.0


# -- one checked path for every book load ------------------------------------------------------

def test_a_crossed_in_stream_snapshot_is_never_published_and_the_next_good_one_is():
    async def script(conn):
        await wait_for(lambda: conn.texts)          # the subscription, then its ack
        conn.send_text(BYBIT_ACK)
        conn.send_text(bybit_book("snapshot", 10, bids=((30001, 1),), asks=((30000.5, 1),)))
        await wait_for(lambda: any('"subscribe"' in t for t in conn.texts[1:]), 5.0)
        conn.send_text(bybit_book("snapshot", 20, bids=((29999, 1),), asks=((30000.5, 1),)))
        conn.send_text(bybit_book("delta", 21, bids=((29999, 2),)))
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("bybit", ex)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE)
            assert await wait_for(lambda: len(rec.books) >= 2)
        finally:
            await feed.stop()
            await ex.stop()
        return feed, rec

    feed, rec = run(scenario())
    no_crossed_or_absurd_books(rec)
    assert [s for _i, s in rec.statuses][:2] == [RESYNC, LIVE]     # never live on the crossed one
    assert rec.books[0][1] == wire.BOOK_FLAG_SNAPSHOT and rec.books[0][4] == 20
    assert feed.stats.gaps == 1


def test_a_crossed_rest_snapshot_is_refused_and_fetched_again():
    chain = Chain()
    answers = [binance_snapshot(10 ** 6, bids=((200, 1),), asks=((101, 1),))]

    def http(path):
        return http_response(200, answers.pop(0) if answers else chain.snapshot())

    async def scenario():
        ex = await HostileExchange(streaming(chain), http).start()
        feed, rec = make_feed("binance", ex)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE)
            assert await wait_for(lambda: len(rec.books) > 5)
        finally:
            await feed.stop()
            await ex.stop()
        return ex, rec

    ex, rec = run(scenario())
    no_crossed_or_absurd_books(rec)
    assert len(ex.requests) >= 2


# -- absurd ids and deadlines -------------------------------------------------------------------

def test_a_rest_snapshot_id_of_2_63_minus_1_does_not_wedge_the_instrument(caplog):
    chain = Chain()
    answers = [binance_snapshot(2 ** 63 - 1)]

    def http(path):
        return http_response(200, answers.pop(0) if answers else chain.snapshot())

    async def scenario():
        ex = await HostileExchange(streaming(chain), http).start()
        feed, rec = make_feed("binance", ex)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE), rec.statuses
            assert await wait_for(lambda: len(rec.books) > 5)
        finally:
            await feed.stop()
            await ex.stop()
        return feed, rec

    with caplog.at_level(logging.WARNING):
        feed, rec = run(scenario())
    no_crossed_or_absurd_books(rec)
    assert "outside the stream" in caplog.text
    assert feed.stats.snapshot_errors >= 1


def test_a_book_ticker_id_of_2_63_minus_1_does_not_silence_later_quotes():
    ids = [100, 2 ** 63 - 1, 101, 102, 2 ** 50, 103, 104]

    async def script(conn):
        for update_id in ids:
            conn.send_text(binance_ticker(update_id))
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("binance", ex, channels=["bookTicker"])
        feed.start()
        try:
            assert await wait_for(lambda: len(rec.quotes) >= 5), rec.quotes
        finally:
            await feed.stop()
            await ex.stop()
        return feed, rec

    feed, rec = run(scenario())
    assert [q for _i, q in rec.quotes] == [100, 101, 102, 103, 104]
    assert feed.stats.bad_ids == 2


def test_quote_ids_that_go_back_for_good_are_followed_after_a_few():
    ids = [5000] + list(range(10, 60))

    async def script(conn):
        for update_id in ids:
            conn.send_text(binance_ticker(update_id))
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("binance", ex, channels=["bookTicker"])
        feed.start()
        try:
            assert await wait_for(lambda: rec.quotes and rec.quotes[-1][1] == 59)
        finally:
            await feed.stop()
            await ex.stop()
        return rec

    rec = run(scenario())
    published = [q for _i, q in rec.quotes]
    assert published[0] == 5000 and published[-1] == 59 and len(published) < len(ids)


def test_a_resync_that_never_gets_its_snapshot_starts_over_after_the_deadline(caplog):
    """Bybit acks the subscription but never sends a snapshot, only deltas; the instrument
    waits in resync until the deadline, then starts over (re-subscribes); the venue answers
    that with a snapshot and the book goes live."""
    async def script(conn):
        await wait_for(lambda: conn.texts)          # the subscription, then its ack
        conn.send_text(BYBIT_ACK)
        update_id = 100
        while not any('"unsubscribe"' in t for t in conn.texts):
            update_id += 1
            conn.send_text(bybit_book("delta", update_id, bids=((99, 1),)))
            await asyncio.sleep(0.05)
        conn.send_text(bybit_book("snapshot", update_id + 1, bids=((99, 1),), asks=((100, 1),)))
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        # deadline: max(2, 3 * snapshot_timeout_s + reconnect_backoff_max_s) = 2 s
        feed, rec = make_feed("bybit", ex, snapshot_timeout_s=0.5)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE, 10.0)
        finally:
            await feed.stop()
            await ex.stop()
        return feed

    with caplog.at_level(logging.WARNING):
        feed = run(scenario())
    assert feed.stats.resync_timeouts >= 1
    assert "still not live" in caplog.text


# -- Retry-After --------------------------------------------------------------------------------

def test_a_429_with_a_400_digit_retry_after_pauses_snapshots_for_the_cap_and_is_not_ignored():
    chain = Chain()

    def http(path):
        return http_response(429, "slow down", [("Retry-After", "9" * 400)])

    async def scenario():
        ex = await HostileExchange(streaming(chain), http).start()
        feed, rec = make_feed("binance", ex)
        feed.start()
        try:
            assert await wait_for(lambda: feed.stats.rate_limited >= 1)
            await asyncio.sleep(0.5)
            paused_s = feed.budget.paused_until - asyncio.get_running_loop().time()
        finally:
            await feed.stop()
            await ex.stop()
        return feed, ex, paused_s

    from hftfeed.codecs.http_proto import MAX_RETRY_AFTER_S
    feed, ex, paused_s = run(scenario())
    assert len(ex.requests) == 1             # the 429 was honoured: no second request
    assert feed.stats.rate_limited == 1 and feed.stats.handler_errors == 0
    assert MAX_RETRY_AFTER_S - 60 < paused_s <= MAX_RETRY_AFTER_S


# -- memory-true limits -------------------------------------------------------------------------

def test_buffered_diffs_are_capped_by_bytes_and_overflow_resyncs(monkeypatch, caplog):
    """REST keeps failing while big diffs arrive: the buffer never holds more than the byte cap
    (here 200 kB); overflowing it drops the buffer and resyncs, with a log line."""
    monkeypatch.setattr(sync_mod, "MAX_BUFFERED_BYTES_PER_INSTRUMENT", 200000)
    chain = Chain()
    seen = []

    async def script(conn):
        while True:
            chain.last_id += 1
            conn.send_text(binance_depth(chain.last_id, chain.last_id,
                                         bids=[(100 + i, 1) for i in range(500)]))
            await asyncio.sleep(0.005)

    async def scenario():
        ex = await HostileExchange(script, lambda path: http_response(500, "down")).start()
        feed, rec = make_feed("binance", ex, reconnect_backoff_max_s=5.0)
        feed.start()
        inst = feed.instruments["BTCUSDT"]
        try:
            for _ in range(200):
                seen.append(inst.sync.buffered_bytes)
                await asyncio.sleep(0.01)
                if inst.sync.buffer_overflows >= 2:
                    break
        finally:
            await feed.stop()
            await ex.stop()
        return feed, inst

    with caplog.at_level(logging.WARNING):
        feed, inst = run(scenario())
    assert inst.sync.buffer_overflows >= 2
    assert max(seen) <= 200000
    assert "buffered diffs over 200000 bytes" in caplog.text


def test_a_snapshot_far_larger_than_requested_is_refused_before_parsing(monkeypatch):
    """A 900k-level answer to a limit=100 request is cut off while the body streams in (it
    would take seconds of event-loop time to parse); the next, sane snapshot is used."""
    chain = Chain()
    huge = binance_snapshot(10, bids=[(1 + i, 1) for i in range(900000)])
    answers = [huge]
    parsed_sizes = []

    def http(path):
        return http_response(200, answers.pop(0) if answers else chain.snapshot())

    async def scenario():
        ex = await HostileExchange(streaming(chain), http).start()
        feed, rec = make_feed("binance", ex, snapshot_limit=100)
        real_parse = feed.venue.parse_snapshot
        monkeypatch.setattr(feed.venue, "parse_snapshot",
                            lambda symbol, body: parsed_sizes.append(len(body))
                            or real_parse(symbol, body))
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE, 15.0)
        finally:
            await feed.stop()
            await ex.stop()
        return feed

    feed = run(scenario())
    assert len(huge) > 10 * 2 ** 20
    assert parsed_sizes and max(parsed_sizes) < 2 ** 20
    assert feed.stats.snapshot_errors >= 1


# -- untrusted strings in logs ------------------------------------------------------------------

FORGED = "\nFORGED 2026-01-01 00:00:00,000 ERROR hftfeed.daemon: fake\x1b[31m" + "x" * 5000


def _assert_no_forged_lines(caplog):
    for record in caplog.records:
        text = record.getMessage()
        assert "\n" not in text and "\x1b" not in text and len(text) < 2000, text[:300]
    assert "FORGED" in caplog.text      # it was logged, escaped


def test_a_forged_close_reason_is_escaped_and_bounded_in_the_log(caplog):
    async def script(conn):
        conn.close(4000, FORGED[:120])
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("binance", ex, channels=["trade"])
        feed.start()
        try:
            assert await wait_for(lambda: "venue closed" in caplog.text)
        finally:
            await feed.stop()
            await ex.stop()

    with caplog.at_level(logging.INFO):
        run(scenario())
    _assert_no_forged_lines(caplog)


def test_a_forged_venue_error_message_and_bad_message_are_escaped_and_bounded(caplog):
    async def script(conn):
        conn.send_text('{"code": 2, "msg": %s}' % __import__("json").dumps(FORGED))
        conn.send_text('{"stream": "x", "data": 5, "junk": %s}' % __import__("json").dumps(FORGED))
        conn.send_text(FORGED)
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("binance", ex, channels=["trade"])
        feed.start()
        try:
            assert await wait_for(lambda: feed.stats.venue_errors == 1
                                  and feed.stats.bad_messages == 2)
        finally:
            await feed.stop()
            await ex.stop()

    with caplog.at_level(logging.INFO):
        run(scenario())
    _assert_no_forged_lines(caplog)


def test_closes_we_initiate_at_a_clean_stop_are_logged_at_info_not_warning(caplog):
    chain = Chain()

    async def scenario():
        ex = await HostileExchange(streaming(chain),
                                   lambda path: http_response(200, chain.snapshot())).start()
        feed, rec = make_feed("binance", ex)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE)
        finally:
            await feed.stop()
            await asyncio.sleep(0.2)
            await ex.stop()
        return ex

    with caplog.at_level(logging.INFO):
        ex = run(scenario())
    assert ex.conns[0].closed_by_client == (1000, "")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                and r.name.startswith("hftfeed")], caplog.text
    assert "connection closed by us (1000 )" in caplog.text


# -- smaller ------------------------------------------------------------------------------------

def test_binary_frames_are_parsed_as_utf8_text_by_every_parser_path(caplog):
    """PyPy's fast scanner used to meet bytes and raise TypeError per frame; binary frames are
    now decoded once in the router, so both parser paths see text. Not UTF-8: a bad message."""
    chain = Chain()

    async def script(conn):
        while True:
            conn.send_binary(chain.diff().encode())
            conn.send_raw(frame(0x2, b"\xff\xfe not utf-8"))
            await asyncio.sleep(0.02)

    async def scenario():
        ex = await HostileExchange(script, lambda path: http_response(200, chain.snapshot())).start()
        feed, rec = make_feed("binance", ex)
        feed.venue.fast_scanner = True        # the PyPy path, on every interpreter
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE and len(rec.books) > 5)
        finally:
            await feed.stop()
            await ex.stop()
        return feed

    with caplog.at_level(logging.WARNING):
        feed = run(scenario())
    assert feed.stats.handler_errors == 0 and feed.stats.bad_messages >= 1
    assert "Traceback" not in caplog.text and "TypeError" not in caplog.text


def test_an_instrument_that_never_connects_is_announced_disconnected():
    async def scenario():
        ex = await HostileExchange().start()
        await ex.stop()              # nothing listens on that port any more
        feed, rec = make_feed("binance", ex)
        feed.start()
        try:
            assert await wait_for(lambda: feed.stats.connect_failures >= 1)
            assert await wait_for(lambda: rec.statuses == [(BTC, DISC)])
            assert await wait_for(lambda: feed.stats.connect_failures >= 2)
        finally:
            await feed.stop()
        return rec

    rec = run(scenario())
    assert rec.statuses == [(BTC, DISC)]      # once, not once per attempt


def test_a_quiet_rest_instrument_waiting_for_its_first_diff_is_not_restarted_by_the_deadline(caplog):
    """No diff at all since the resync began (an illiquid symbol): nothing to start over."""
    async def script(conn):
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("binance", ex, snapshot_timeout_s=0.3, silence_timeout_s=30.0)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == RESYNC)
            await asyncio.sleep(3.5)           # the deadline (2 s) passes, more than once
        finally:
            await feed.stop()
            await ex.stop()
        return feed, ex

    with caplog.at_level(logging.WARNING):
        feed, ex = run(scenario())
    assert feed.stats.resync_timeouts == 0 and not ex.requests
    assert "still not live" not in caplog.text


def test_a_multi_megabyte_in_stream_snapshot_is_dropped_before_parsing(monkeypatch):
    """Bybit sends a 100k-level snapshot (several MB): parsing it would stall every feed on the
    loop for seconds, so it is dropped unparsed and counted; the next, real snapshot is used."""
    from hftfeed.pipeline import router
    huge = bybit_book("snapshot", 10, bids=[(1 + i, 1) for i in range(100000)], asks=((200000, 1),))
    parsed_sizes = []

    async def script(conn):
        await wait_for(lambda: conn.texts)
        conn.send_text(BYBIT_ACK)
        conn.send_text(huge)
        await wait_for(lambda: any('"unsubscribe"' in t for t in conn.texts), 10.0)
        conn.send_text(bybit_book("snapshot", 20, bids=((99, 1),), asks=((100, 1),)))
        await asyncio.sleep(30)

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("bybit", ex, snapshot_timeout_s=0.5)
        real_parse = feed.router._parse
        feed.router._parse = lambda text: parsed_sizes.append(len(text)) or real_parse(text)
        feed.start()
        try:
            assert await wait_for(lambda: rec.state_of(BTC) == LIVE, 10.0)
        finally:
            await feed.stop()
            await ex.stop()
        return feed

    feed = run(scenario())
    assert len(huge) > router.MAX_PARSE_CHARS
    assert max(parsed_sizes) < router.MAX_PARSE_CHARS and feed.stats.bad_messages == 1


def test_a_subscription_never_acknowledged_is_a_reconnect_with_a_counter(caplog):
    async def script(conn):
        await asyncio.sleep(30)             # Bybit that never answers the subscribe

    async def scenario():
        ex = await HostileExchange(script).start()
        feed, rec = make_feed("bybit", ex, connect_timeout_s=0.5)
        feed.start()
        try:
            assert await wait_for(lambda: len(ex.conns) >= 2, 10.0)
        finally:
            await feed.stop()
            await ex.stop()
        return feed

    with caplog.at_level(logging.WARNING):
        feed = run(scenario())
    assert feed.stats.ack_timeouts >= 1
    assert "not acknowledged within 0.5 s" in caplog.text
