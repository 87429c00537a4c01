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


# -- escape_text: the one helper for venue-supplied strings in log lines -------------------------

def test_escape_text_makes_newlines_and_escape_sequences_visible():
    assert errors.escape_text("a\nFORGED\x1b[31m\r") == "a\\nFORGED\\x1b[31m\\r"


def test_escape_text_bounds_the_length_and_says_how_much_was_left_out():
    out = errors.escape_text("x" * 2000000, 100)
    assert out == "x" * 100 + "...[1999900 more chars]"


def test_escape_text_accepts_bytes_and_decodes_them_with_replacement():
    assert errors.escape_text(b"ok\xff\n") == "ok\ufffd\\n"
    assert errors.escape_text(b"y" * 1000, 10).startswith("y" * 10 + "...[")


def test_escape_text_bounds_after_escaping_too():
    assert len(errors.escape_text("\x00" * 1000, 50)) <= 50 + len("...[950 more chars]")


def test_error_messages_are_bounded_as_well_as_escaped():
    text = str(VenueError("field " + "z" * 2000000))
    assert len(text) < 1100 and text.endswith("more chars]")


# -- the call sites: no log call formats a venue-supplied string without escape_text -------------

import ast
import os

HFTFEED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hftfeed")
# Where venue bytes are handled (tools/ has its own terminal sanitising).
VENUE_FACING = ["pipeline", "transport", "venues", "core", "codecs/http_proto.py",
                "codecs/ws_proto.py"]
# Names that hold what a venue chose: close reasons, error messages, bodies, raw messages.
VENUE_STRINGS = {"reason", "detail", "text", "body", "msg", "payload", "data", "raw",
                 "last_gap", "close_reason", "ret_msg"}
LOG_METHODS = {"debug", "info", "warning", "error", "exception", "critical"}


def _venue_facing_files():
    for entry in VENUE_FACING:
        path = os.path.join(HFTFEED, entry)
        if path.endswith(".py"):
            yield path
            continue
        for name in sorted(os.listdir(path)):
            if name.endswith(".py"):
                yield os.path.join(path, name)


def _unescaped_venue_strings(node):
    """Names from VENUE_STRINGS used in ``node`` outside an escape_text(...) call."""
    if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("escape_text", "len"):
        return []
    found = []
    if isinstance(node, ast.Name) and node.id in VENUE_STRINGS:
        found.append(node.id)
    if isinstance(node, ast.Attribute) and node.attr in VENUE_STRINGS:
        found.append(node.attr)
    for child in ast.iter_child_nodes(node):
        found += _unescaped_venue_strings(child)
    return found


def test_every_log_call_escapes_venue_supplied_strings():
    offenders = []
    files = list(_venue_facing_files())
    assert len(files) > 15
    for path in files:
        with open(path) as f:
            tree = ast.parse(f.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                    and node.func.attr in LOG_METHODS \
                    and getattr(node.func.value, "id", None) == "log":
                for arg in node.args[1:]:
                    for name in _unescaped_venue_strings(arg):
                        offenders.append("%s:%d %s" % (os.path.relpath(path, HFTFEED),
                                                       node.lineno, name))
    assert not offenders, offenders


def test_the_call_site_check_catches_an_unescaped_close_reason():
    call = ast.parse('log.warning("closed (%s %s)", code, reason)').body[0].value
    assert [n for a in call.args[1:] for n in _unescaped_venue_strings(a)] == ["reason"]
    call = ast.parse('log.warning("closed (%s)", escape_text(reason, 123))').body[0].value
    assert not [n for a in call.args[1:] for n in _unescaped_venue_strings(a)]
