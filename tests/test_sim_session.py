"""The simulator's message-subscribed session base (hftfeed/tools/sim/session.py), through the
dialects that use it: a bare-text keepalive is answered without decoding, anything that is not
a JSON object gets the venue's own refusal (never an exception: a simulator must survive any
client), and the stream limit is counted in one place."""

import json

import pytest

from hftfeed.tools.sim import bitget, bybit, coinbase, deribit, kraken, okx
from hftfeed.tools.sim.session import JsonSession, MessageDialect
from hftfeed.venues import registry

SESSIONS = {
    "okx": lambda: okx.OkxSession(None, "c1", 4),
    "bitget": lambda: bitget.BitgetSession(None, 4),
    "bybit": lambda: bybit.BybitSession(None, "c1", 4),
    "kraken": lambda: kraken.KrakenSession(None, 4),
    "coinbase": lambda: coinbase.CoinbaseSession(None, 4),
    "deribit": lambda: deribit.DeribitSession(None, 4),
}
DEEP = "[" * 100000 + "]" * 100000


@pytest.mark.parametrize("venue", sorted(SESSIONS))
def test_non_objects_are_refused_in_the_venues_words_and_never_raise(venue):
    session = SESSIONS[venue]()
    assert isinstance(session, JsonSession) and session.combined is False
    for text in ("{not json", "[1, 2]", '"text"', DEEP, "\ud800"):
        out = session.handle_text(text)
        assert len(out) == 1 and isinstance(out[0], str), (text[:20], out)
        json.loads(out[0])      # the refusal is itself valid JSON
    assert session.streams == [] and session.delivered() is session.streams


def test_bare_text_pings_are_answered_and_only_okx_leaves_them_out_of_its_limit():
    okx_session, bitget_session = SESSIONS["okx"](), SESSIONS["bitget"]()
    assert okx_session.handle_text("ping") == ["pong"]
    assert bitget_session.handle_text("ping") == ["pong"]
    assert okx_session.counts_toward_limit("ping") is False
    assert okx_session.counts_toward_limit('{"op":"subscribe"}') is True
    # Bitget's 10 messages a second include the string "ping" (its WebSocket overview)
    assert bitget_session.counts_toward_limit("ping") is True
    assert SESSIONS["kraken"]().counts_toward_limit('{"method":"ping"}') is True


def test_the_stream_limit_is_counted_against_what_the_connection_has():
    session = SESSIONS["kraken"]()
    session.streams.extend(["book10:A/B", "book10:C/D", "trade:A/B"])
    assert session.has_room(1) and not session.has_room(2)


@pytest.mark.parametrize("name", [n for n in registry.NAMES
                                  if issubclass(getattr(registry.sim_dialect(n), "Dialect",
                                                        object), MessageDialect)])
def test_the_dialects_serve_the_registrys_path_and_refuse_others(name):
    dialect = registry.sim_dialect(name).Dialect.__new__(registry.sim_dialect(name).Dialect)
    dialect.VENUE = name
    path = registry.ws_path(name)
    assert dialect.is_ws_path(path) and dialect.is_ws_path(path + "/?x=1")
    with pytest.raises(ValueError):
        dialect.check_ws_path(path + "/elsewhere")
