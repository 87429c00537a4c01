"""OKX's CRC32 book checksum: hand-built strings and values, a corrupted update that must resync,
the canonical-string guard, and the real 2022 capture replayed through the adapter and the engine
(every non-zero checksum in it must verify)."""

import json
import logging
import random
import zlib
from pathlib import Path

import pytest

from hftfeed.core import sync
from hftfeed.core.book import Book
from hftfeed.venues.okx import Okx, OkxRule, book_checksum, checksum_string, crc32_signed
from hftfeed.core.updates import DepthUpdate

P = 100000000
CAPTURE = Path(__file__).resolve().parents[2] / "shared" / "data" / "captures" / "OKX.ws.1.0"


def signed_crc(text):
    """The oracle: zlib's CRC32 of the spelled-out text, as a signed 32-bit int."""
    value = zlib.crc32(text.encode("ascii"))
    return value - (1 << 32) if value >= 1 << 31 else value


def scaled(text):
    """Decimal text -> int * 1e8 without hftfeed.codecs.fixed (test-side conversion)."""
    whole, _, frac = text.partition(".")
    return int(whole) * P + int((frac + "00000000")[:8])


def book_of(bids, asks):
    """A Book from best-first [(price text, qty text)] lists."""
    book = Book(100)
    book.load_snapshot([x for px, qty in bids for x in (scaled(px), scaled(qty))],
                       [x for px, qty in asks for x in (scaled(px), scaled(qty))], 1)
    return book


# -- hand-computed values -----------------------------------------------------------------------

def test_equal_sides_interleave_bid_then_ask():
    book = book_of(bids=[("3366.1", "7"), ("3366", "6")], asks=[("3366.8", "9"), ("3368", "8")])
    text = "3366.1:7:3366.8:9:3366:6:3368:8"
    bids, asks = book.top(25)
    assert checksum_string(bids, asks) == text
    # OKX's own worked example for this book gives -1881014294; zlib agrees.
    assert signed_crc(text) == -1881014294
    assert book_checksum(book) == -1881014294


def test_a_short_side_simply_stops_contributing():
    book = book_of(bids=[("3366.1", "7")], asks=[("3366.8", "9"), ("3368", "8"), ("3372", "8")])
    text = "3366.1:7:3366.8:9:3368:8:3372:8"
    assert checksum_string(*book.top(25)) == text
    assert signed_crc(text) == 831078360 == book_checksum(book)


def test_fractions_are_written_in_their_shortest_exact_form():
    book = book_of(bids=[("0.05", "0.00265859")], asks=[("30243.6", "1.2")])
    assert checksum_string(*book.top(25)) == "0.05:0.00265859:30243.6:1.2"
    assert book_checksum(book) == signed_crc("0.05:0.00265859:30243.6:1.2")


def test_only_the_best_25_levels_a_side_count():
    bids = [("%d" % (1000 - i), "1") for i in range(30)]
    asks = [("%d" % (1001 + i), "2") for i in range(30)]
    book = book_of(bids, asks)
    text = ":".join("%d:1:%d:2" % (1000 - i, 1001 + i) for i in range(25))
    assert checksum_string(*book.top(100)) == text
    assert book_checksum(book) == signed_crc(text)


def test_crc32_signed_maps_the_upper_half_to_negative_ints():
    assert crc32_signed("") == 0
    assert crc32_signed("3366.1:7:3366.8:9:3366:6:3368:8") == -1881014294
    assert crc32_signed("a") == zlib.crc32(b"a") - (1 << 32)      # 0xe8b7be43 >= 2**31


# -- through the adapter and the engine ---------------------------------------------------------

def books_message(action, seq_id, prev_id, bids, asks, checksum):
    return json.dumps({"arg": {"channel": "books", "instId": "BTC-USDT"}, "action": action,
                       "data": [{"asks": [[p, q, "0", "1"] for p, q in asks],
                                 "bids": [[p, q, "0", "1"] for p, q in bids],
                                 "ts": "1652459225464", "checksum": checksum,
                                 "prevSeqId": prev_id, "seqId": seq_id}]})


def synced():
    v = Okx(["BTC-USDT"], ("depth",))
    s = sync.InstrumentSync(v.rule, Book(400))
    s.start_resync()
    (snap,) = v.parse(books_message("snapshot", 10, -1, [("3366.1", "7"), ("3366", "6")],
                                    [("3366.8", "9"), ("3368", "8")], -1881014294))
    assert snap.checksum == -1881014294
    assert s.on_update(snap) == sync.SYNCED
    return v, s


def test_an_update_whose_checksum_matches_the_new_book_applies():
    v, s = synced()
    # bid 3366 removed, ask 3372 x 8 added: the second worked example's book but with bid 3366.1.
    (upd,) = v.parse(books_message("update", 11, 10, [("3366", "0")], [("3372", "8")],
                                   signed_crc("3366.1:7:3366.8:9:3368:8:3372:8")))
    assert s.on_update(upd) == sync.APPLIED
    assert s.gaps == 0


def test_a_corrupted_update_fails_its_checksum_and_the_engine_resyncs():
    v, s = synced()
    good = signed_crc("3366.1:7:3366.8:9:3368:8:3372:8")
    # The venue meant "3372","8" but the update carries size 9: the chain is intact, the book is
    # wrong, and only the checksum can tell.
    (upd,) = v.parse(books_message("update", 11, 10, [("3366", "0")], [("3372", "9")], good))
    assert s.on_update(upd) == sync.GAP
    assert s.state == sync.RESYNCING and "checksum" in s.last_gap


def test_a_snapshot_with_a_wrong_checksum_is_not_trusted():
    v = Okx(["BTC-USDT"], ("depth",))
    s = sync.InstrumentSync(v.rule, Book(400))
    s.start_resync()
    (snap,) = v.parse(books_message("snapshot", 10, -1, [("3366.1", "7")], [("3366.8", "9")],
                                    -1881014294))
    assert s.on_update(snap) == sync.GAP


def test_a_zero_checksum_is_never_verified():
    v, s = synced()
    (upd,) = v.parse(books_message("update", 11, 10, [("3366", "0")], [("3372", "9")], 0))
    assert upd.checksum is None
    assert s.on_update(upd) == sync.APPLIED


def test_non_canonical_decimal_strings_disable_the_checksum_of_that_instrument_once(caplog):
    v, s = synced()
    with caplog.at_level(logging.WARNING, logger="hftfeed.exchanges.okx"):
        (upd,) = v.parse(books_message("update", 11, 10, [("3366.10", "7")], [], 12345))
        (later,) = v.parse(books_message("update", 12, 11, [("3366.1", "8")], [], 12345))
    assert upd.checksum is None and later.checksum is None
    assert sum("canonical" in r.getMessage() for r in caplog.records) == 1
    assert s.on_update(upd) == sync.APPLIED and s.on_update(later) == sync.APPLIED
    # Deleting with a non-canonical qty "0.0" does not count: the level is not in the book.
    w = Okx(["BTC-USDT"], ("depth",))
    (deletion,) = w.parse(books_message("update", 11, 10, [("3366.00", "0.0")], [], 777))
    assert deletion.checksum == 777


# -- the real capture ---------------------------------------------------------------------------

def capture_messages():
    """Received messages of OKX.ws.1.0, with the seqId/prevSeqId fields OKX sends today added to
    each books message (the 2022 capture predates them): snapshots get prevSeqId -1 and every
    update links to its instrument's previous message, so the engine can chain them."""
    out = []
    last_seq = {}
    with open(CAPTURE) as f:
        next(f)                                           # "URL <-> connect_time"
        for line in f:
            head, _, text = line.rstrip("\n").partition(": ")
            if not text or " <- " in head:                # our own subscribe requests
                continue
            msg = json.loads(text)
            if msg.get("arg", {}).get("channel") == "books" and "data" in msg:
                inst = msg["arg"]["instId"]
                for item in msg["data"]:
                    assert "seqId" not in item
                    prev = -1 if msg["action"] == "snapshot" else last_seq[inst]
                    item["prevSeqId"] = prev
                    item["seqId"] = last_seq[inst] = (prev if prev > 0 else 1000) + 3
                text = json.dumps(msg)
            out.append(text)
    return out


@pytest.mark.skipif(not CAPTURE.exists(), reason="../shared/data/captures is not present")
def test_every_non_zero_checksum_in_the_capture_verifies():
    class CountingRule(OkxRule):
        verified = 0
        failed = 0

        def verify(self, book, upd):
            ok = OkxRule.verify(self, book, upd)
            CountingRule.verified += ok
            CountingRule.failed += not ok
            return ok

    venue = Okx(["BTC-USDT", "BTC-USD-220527", "UNI-USD-SWAP"], ("depth", "trade"))
    rule = CountingRule()
    syncs = {}
    non_zero = 0
    results = []
    for text in capture_messages():
        for event in venue.parse(text):
            if type(event) is not DepthUpdate:
                continue
            non_zero += event.checksum is not None
            if event.symbol not in syncs:
                syncs[event.symbol] = sync.InstrumentSync(rule, Book(1000))
                syncs[event.symbol].start_resync()
            results.append(syncs[event.symbol].on_update(event))
    assert non_zero > 200                  # 290 books messages, every one with a checksum
    assert CountingRule.verified == non_zero and CountingRule.failed == 0
    assert results.count(sync.SYNCED) == 3 and sync.GAP not in results
    assert not venue._checksums.untrusted   # OKX's strings were all in canonical form
    for s in syncs.values():
        assert s.state == sync.LIVE and not s.book.is_crossed()


def test_decimal_text_writes_what_format_fixed_writes_for_every_non_negative_value():
    from hftfeed.venues.okx import decimal_text
    from hftfeed.codecs.fixed import format_fixed
    rng = random.Random(7)
    values = [0, 1, 10, 99999999, 100000000, 100000001, 2 ** 63 - 1, 3366 * P, 336610000000]
    values += [rng.randrange(10 ** rng.randint(1, 18)) for _ in range(3000)]
    for value in values:
        assert decimal_text(value) == format_fixed(value), value
