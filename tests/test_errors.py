"""Specification of hftfeed.errors: one hierarchy, one recovery table, log-safe messages."""

import pytest

from hftfeed import errors
from hftfeed.errors import (DROP, EXIT, RECONNECT, RESYNC, RETRY, ConfigError, HftfeedError,
                            HttpStatusError, MessageTooBig, SyncError, VenueError, recovery_for)
from hftfeed.venues.binance import BinanceSpot


@pytest.mark.parametrize("exc, action", [
    (VenueError("x"), DROP), (SyncError("x"), RESYNC), (MessageTooBig("x"), RECONNECT),
    (ConnectionResetError(), RECONNECT), (HttpStatusError("x", 503), RETRY),
    (ConfigError("x"), EXIT), (RuntimeError("a bug"), RECONNECT),
])
def test_each_error_class_has_exactly_one_recovery(exc, action):
    assert recovery_for(exc) == action


def test_every_error_class_descends_from_the_root():
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert classes and all(issubclass(c, HftfeedError) for c in classes)


def test_message_with_control_characters_is_escaped_so_it_cannot_forge_log_lines():
    exc = VenueError("bad value '\x00' then\nFAKE LOG LINE\x1b[31m")
    assert str(exc) == "bad value '\\x00' then\\nFAKE LOG LINE\\x1b[31m"
    assert str(exc).isprintable()


def test_printable_messages_are_left_alone_including_non_ascii():
    assert str(VenueError("symbol 'BTC-USDT' at 37000.01 µs ü")) == \
        "symbol 'BTC-USDT' at 37000.01 µs ü"
    assert MessageTooBig("too big").close_code == 1009


def test_an_adapter_error_about_a_nul_byte_is_log_safe():
    venue = BinanceSpot(["BTCUSDT"], ("depth",))
    with pytest.raises(VenueError) as info:
        venue.parse('{"stream":"btcusdt@depth@100ms","data":{"e":"depthUpdate",\x00}}')
    assert str(info.value).isprintable()
