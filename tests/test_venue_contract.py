"""The contract every venue adapter keeps, checked for each venue of the registry
(hftfeed/venues/registry.py): whatever a venue sends, ``parse`` returns only the shared update
types with sane values, or raises :class:`VenueError` -- never another exception, never a
half-parsed event. Fed whole, truncated at every length, with trailing bytes, and mutated.

The sample messages are tests/fuzz.py's VENUE_SEEDS (one table for the fuzz harness and these
tests); a registered venue without samples fails here. What is particular to one venue (its
message shapes, continuity rule, subscribe protocol) stays in tests/test_<venue>.py."""

import random

import pytest

import fuzz
from hftfeed.core.updates import DepthUpdate, Snapshot
from hftfeed.errors import VenueError
from hftfeed.venues import registry

NAMES = registry.NAMES
CHANNELS = ("depth", "trade", "bookTicker")

# Inputs no venue sends as a valid message. ("{}" is not here: Binance answers unknown objects
# with an ignored Control, which the contract allows.)
GARBAGE = [
    "", " ", "{", "}", "[]", "null", "true", "0", '"x"', "\x00", "\ufeff{}",
    "[" * 100000, "{" * 100000, '{"a":' * 50000, "1" * 100000, '"' + "\\u0000" * 1000 + '"',
]


def adapter(name, fast_scanner):
    venue = registry.adapter(name)([s for s in registry.spec(name).demo_symbols], CHANNELS)
    venue.fast_scanner = fast_scanner
    return venue


def samples(name):
    return fuzz.VENUE_SEEDS[name]


def data_samples(name):
    """The JSON samples (not a bare text keepalive such as OKX's "pong")."""
    return [s for s in samples(name) if s.startswith("{")]


check_events = fuzz.check_venue_events
SECONDS_PER_VENUE = 1.5


def test_every_registered_venue_has_samples():
    assert set(fuzz.VENUE_SEEDS) == set(NAMES)
    for name in NAMES:
        assert data_samples(name), name


@pytest.mark.parametrize("fast_scanner", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_samples_parse_into_shared_types_only(name, fast_scanner):
    venue = adapter(name, fast_scanner)
    produced = set()
    for text in samples(name):
        events = venue.parse(text)
        check_events(events)
        produced.update(type(e) for e in events)
    assert DepthUpdate in produced        # every venue's samples include a book message


@pytest.mark.parametrize("fast_scanner", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_garbage_raises_venue_error_only(name, fast_scanner):
    venue = adapter(name, fast_scanner)
    for text in GARBAGE:
        with pytest.raises(VenueError):
            venue.parse(text)


@pytest.mark.parametrize("fast_scanner", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_every_truncation_of_every_sample_is_rejected(name, fast_scanner):
    venue = adapter(name, fast_scanner)
    for text in data_samples(name):
        for end in range(len(text)):
            with pytest.raises(VenueError):
                venue.parse(text[:end])


@pytest.mark.parametrize("fast_scanner", [False, True])
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("trailer", ["}", "]", "x", ",{}", "\x00", '{"a":1}'])
def test_trailing_bytes_after_a_message_are_rejected(name, fast_scanner, trailer):
    venue = adapter(name, fast_scanner)
    for text in data_samples(name):
        with pytest.raises(VenueError):
            venue.parse(text + trailer)


@pytest.mark.parametrize("fast_scanner", [False, True])
@pytest.mark.parametrize("name", NAMES)
def test_mutated_samples_parse_into_sane_events_or_raise_venue_error(name, fast_scanner):
    """Mutations that keep the JSON shape (digits, signs, quotes swapped in): many stay valid,
    so the value checks run, not only the error path."""
    rng = random.Random(20261205)
    venue = adapter(name, fast_scanner)
    alphabet = '0123456789.,:[]{}"-eE abpqsSuU'
    parsed = 0
    for _ in range(1500):
        text = fuzz.mutate_text(rng, samples(name), alphabet)
        try:
            events = venue.parse(text)
        except VenueError:
            continue
        check_events(events)
        parsed += 1
    assert parsed > 0


@pytest.mark.parametrize("name", NAMES)
def test_the_fuzz_harness_finds_no_escaping_exception(name):
    cases, crash = fuzz.fuzz("venue-" + name, SECONDS_PER_VENUE, seed=20261124)
    assert crash is None, "%s failed on %r: %r" % (name, crash[0][:300], crash[1])
    assert cases > 100


@pytest.mark.parametrize("name", NAMES)
def test_a_snapshot_body_that_is_not_a_snapshot_raises_venue_error(name):
    venue = adapter(name, False)
    if registry.spec(name).book_sync.startswith("in-stream"):
        pytest.skip("%s sends its book in the stream; it has no REST snapshot" % name)
    symbol = registry.spec(name).demo_symbols[0]
    for body in [b"", b"{", b"[]", b"null", b'{"lastUpdateId":-1,"bids":[],"asks":[]}',
                 b'{"lastUpdateId":1,"bids":[["1"]],"asks":[]}', b"[" * 100000]:
        with pytest.raises(VenueError):
            venue.parse_snapshot(symbol, body)
    snap = venue.parse_snapshot(symbol, b'{"lastUpdateId":5,"bids":[["1.5","2"]],"asks":[]}')
    assert type(snap) is Snapshot and snap.last_id == 5


MESSAGE_SUBSCRIBED = [n for n in NAMES if registry.adapter(n).STREAM_CHANNELS is not None]


def test_the_message_subscribed_venues_name_their_channels_in_one_table():
    assert {"okx", "bitget", "bitget-futures", "coinbase", "kraken"} <= set(MESSAGE_SUBSCRIBED)


@pytest.mark.parametrize("name", MESSAGE_SUBSCRIBED)
def test_streams_are_channel_instrument_keys_grouped_in_table_order(name):
    """Venues subscribing by message on one URL (Venue.STREAM_CHANNELS): one stream per
    configured channel, ``<venue channel>:<instrument>``, in the table's order whatever the
    config's; grouped per channel for the requests; no URL part."""
    cls = registry.adapter(name)
    table = cls.STREAM_CHANNELS
    symbols = list(registry.spec(name).demo_symbols[:2])
    venue = cls(symbols, tuple(reversed(CHANNELS)))
    inst = cls.venue_symbol(symbols[0])
    assert venue.streams_for(symbols[0]) == [theirs + ":" + inst for _ours, theirs in table]
    assert venue.streams_for(symbols[0], ("trade",)) == [dict(table)["trade"] + ":" + inst]
    streams = [s for sym in reversed(symbols) for s in venue.streams_for(sym)]
    grouped = venue.streams_by_channel(streams)
    assert [channel for channel, _ in grouped] == [theirs for _ours, theirs in table]
    assert all(insts == [cls.venue_symbol(s) for s in reversed(symbols)] for _, insts in grouped)
    assert venue.connection_path(streams) == ""
