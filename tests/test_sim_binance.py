"""Specification of the simulator's Binance spot dialect (hftfeed/tools/sim/binance.py).

Shapes checked against Binance's spot docs ("WebSocket Streams": Diff. Depth, Trade, Aggregate
Trade, Individual Symbol Book Ticker, live subscribing; "Market data endpoints": Order book) and
against the real capture in shared/data/captures.
"""

import json
import re

import pytest

from hftfeed.tools.sim import binance
from hftfeed.tools.sim.market import EV_DEPTH, EV_QUOTE, EV_TRADE, SIDE_BUY, SIDE_SELL

DEC8 = re.compile(r"^-?[0-9]+\.[0-9]{8}$")
P = 3700001000000      # 37000.01
Q = 123000000          # 1.23


def test_depth_update_has_exactly_binance_keys_and_types():
    ev = (EV_DEPTH, "BTCUSDT", 101, 103, [P, Q, P - 1000000, 0], [P + 1000000, 5])
    msg = json.loads(binance.event_payload(ev, "depth@100ms", 1700000000123))
    assert list(msg) == ["e", "E", "s", "U", "u", "b", "a"]
    assert msg["e"] == "depthUpdate" and msg["E"] == 1700000000123 and msg["s"] == "BTCUSDT"
    assert (msg["U"], msg["u"]) == (101, 103)
    assert msg["b"] == [["37000.01000000", "1.23000000"], ["37000.00000000", "0.00000000"]]
    assert msg["a"] == [["37000.02000000", "0.00000005"]]
    for level in msg["b"] + msg["a"]:
        assert all(isinstance(x, str) and DEC8.match(x) for x in level)


def test_depth_update_with_no_changes_on_a_side_sends_an_empty_list():
    ev = (EV_DEPTH, "ETHUSDT", 5, 5, [], [P, Q])
    msg = json.loads(binance.event_payload(ev, "depth", 1))
    assert msg["b"] == [] and msg["a"] == [["37000.01000000", "1.23000000"]]


def test_trade_has_binance_keys_and_m_means_the_buyer_was_the_maker():
    sell = json.loads(binance.event_payload((EV_TRADE, "BTCUSDT", 77, P, Q, SIDE_SELL), "trade", 9))
    buy = json.loads(binance.event_payload((EV_TRADE, "BTCUSDT", 78, P, Q, SIDE_BUY), "trade", 9))
    assert list(sell) == ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
    assert sell["e"] == "trade" and sell["t"] == 77 and sell["T"] == 9 and sell["M"] is True
    assert (sell["p"], sell["q"]) == ("37000.01000000", "1.23000000")
    assert sell["m"] is True    # an aggressive sell hits a resting buy: the buyer is the maker
    assert buy["m"] is False


def test_aggtrade_matches_the_capture_shape():
    msg = json.loads(binance.event_payload((EV_TRADE, "NKNUSDT", 5, P, Q, SIDE_BUY), "aggTrade", 3))
    assert list(msg) == ["e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "M"]
    assert msg["a"] == msg["f"] == msg["l"] == 5 and msg["m"] is False


def test_bookticker_has_no_event_type_and_carries_the_book_update_id():
    msg = json.loads(binance.event_payload((EV_QUOTE, "BNBUSDT", 400900217, P, Q, P + 1, 7),
                                           "bookTicker", 0))
    assert list(msg) == ["u", "s", "b", "B", "a", "A"]
    assert msg["u"] == 400900217 and msg["s"] == "BNBUSDT"
    assert msg["b"] == "37000.01000000" and msg["a"] == "37000.01000001" and msg["A"] == "0.00000007"


def test_combined_wrapper_is_stream_then_data():
    text = binance.combined("btcusdt@trade", '{"x":1}')
    assert text == '{"stream":"btcusdt@trade","data":{"x":1}}'
    assert json.loads(text) == {"stream": "btcusdt@trade", "data": {"x": 1}}


@pytest.mark.parametrize("levels, text", [
    ([0, 1], '["0.00000000","0.00000001"]'),
    ([9223372036854775807, 150000000], '["92233720368.54775807","1.50000000"]'),
    ([1, 2, 3, 4], '["0.00000001","0.00000002"],["0.00000003","0.00000004"]'),
])
def test_depth_levels_are_exact_eight_decimal_strings(levels, text):
    payload = binance.depth_payload("BTCUSDT", 1, 2, levels, [], 0)
    assert '"b":[%s]' % text in payload and json.loads(payload)["a"] == []


def test_server_shutdown_event():
    assert json.loads(binance.server_shutdown_payload(12)) == {"e": "serverShutdown", "E": 12}


def test_fault_payloads_are_what_they_claim():
    with pytest.raises(ValueError):
        json.loads(binance.malformed_payload("BTCUSDT", 1))
    unknown = json.loads(binance.unknown_event_payload("BTCUSDT", 1))
    assert unknown["e"] not in ("depthUpdate", "trade", "aggTrade")
    absurd = json.loads(binance.absurd_depth_payload("BTCUSDT", 55, 1))
    assert (absurd["U"], absurd["u"]) == (55, 55)
    assert len(absurd["b"][0][1]) == 40 and absurd["b"][1][0].startswith("-")
    assert absurd["a"][0][1] == "NaN"
    extra = json.loads(binance.depth_payload("BTCUSDT", 1, 2, [], [], 3,
                                             binance.UNKNOWN_DEPTH_FIELDS))
    assert extra["e"] == "depthUpdate" and len(extra) > 7


# ---------------------------------------------------------------------- stream names and paths
@pytest.mark.parametrize("name,kind", [
    ("btcusdt@depth@100ms", binance.KIND_DEPTH),
    ("btcusdt@depth", binance.KIND_DEPTH),
    ("btcusdt@trade", binance.KIND_TRADE),
    ("btcusdt@aggTrade", binance.KIND_AGGTRADE),
    ("btcusdt@bookTicker", binance.KIND_BOOKTICKER),
    ("btcusdt@kline_1m", binance.KIND_OTHER),
    ("BTCUSDT@trade", binance.KIND_OTHER),   # stream names are lowercase: this one stays silent
])
def test_stream_names(name, kind):
    assert binance.parse_stream_name(name)[1] == kind


@pytest.mark.parametrize("bad", ["", "btcusdt", "@trade", "btcusdt@", "btc usdt@trade", 5])
def test_malformed_stream_names_are_refused(bad):
    with pytest.raises(ValueError):
        binance.parse_stream_name(bad)


def test_ws_targets():
    assert binance.parse_ws_target("/ws/btcusdt@trade") == (False, ["btcusdt@trade"])
    assert binance.parse_ws_target("/ws") == (False, [])
    assert binance.parse_ws_target("/stream?streams=a1@trade/b2@depth@100ms") == \
        (True, ["a1@trade", "b2@depth@100ms"])
    assert binance.parse_ws_target("/stream") == (True, [])
    with pytest.raises(ValueError):
        binance.parse_ws_target("/other")
    with pytest.raises(ValueError):
        binance.parse_ws_target("/stream?streams=nonsense")
    assert binance.is_ws_path("/stream?streams=x@trade") and not binance.is_ws_path("/api/v3/depth")


# ---------------------------------------------------------------------- live requests
def test_subscribe_unsubscribe_and_list_answer_like_binance():
    s = binance.StreamSession(True, ["btcusdt@trade"])
    reply = json.loads(s.handle_text('{"method":"SUBSCRIBE","params":["ethusdt@depth"],"id":1}'))
    assert reply == {"result": None, "id": 1}
    assert s.streams == ["btcusdt@trade", "ethusdt@depth"]
    reply = json.loads(s.handle_text('{"method":"LIST_SUBSCRIPTIONS","id":3}'))
    assert reply == {"result": ["btcusdt@trade", "ethusdt@depth"], "id": 3}
    reply = json.loads(s.handle_text('{"method":"UNSUBSCRIBE","params":["btcusdt@trade"],"id":312}'))
    assert reply == {"result": None, "id": 312}
    assert s.streams == ["ethusdt@depth"]


def test_combined_property_can_be_read_and_set():
    s = binance.StreamSession(False, [])
    assert json.loads(s.handle_text('{"method":"GET_PROPERTY","params":["combined"],"id":2}')) == \
        {"result": False, "id": 2}
    assert json.loads(s.handle_text('{"method":"SET_PROPERTY","params":["combined",true],"id":5}')) \
        == {"result": None, "id": 5}
    assert s.combined is True


@pytest.mark.parametrize("text,code", [
    ("{not json", 3),
    ('{"method":"NOPE","id":1}', 2),
    ('{"params":[],"id":1}', 2),
    ('{"method":"SUBSCRIBE","params":["bad"],"id":1}', 2),
    ('{"method":"SET_PROPERTY","params":["combined","yes"],"id":1}', 1),
    ('{"method":"GET_PROPERTY","params":["other"],"id":1}', 0),
    ('{"method":"LIST_SUBSCRIPTIONS","id":true}', 2),
])
def test_bad_requests_get_an_error_reply_not_an_exception(text, code):
    reply = json.loads(binance.StreamSession(True, []).handle_text(text))
    assert reply["error"]["code"] == code
    assert isinstance(reply["error"]["msg"], str)


def test_more_than_1024_streams_are_refused():
    names = ["s%d@trade" % i for i in range(1025)]
    with pytest.raises(binance.BinanceRequestError):
        binance.StreamSession(True, names)
    s = binance.StreamSession(True, names[:1024])
    reply = json.loads(s.handle_text(json.dumps({"method": "SUBSCRIBE", "params": ["x@trade"],
                                                  "id": 9})))
    assert "error" in reply and len(s.streams) == 1024


# ---------------------------------------------------------------------- REST
KNOWN = frozenset(["BTCUSDT"])


def test_depth_query_defaults_and_truncation():
    assert binance.parse_depth_query("symbol=BTCUSDT", KNOWN) == ("BTCUSDT", 100)
    assert binance.parse_depth_query("symbol=BTCUSDT&limit=7", KNOWN) == ("BTCUSDT", 7)
    assert binance.parse_depth_query("symbol=BTCUSDT&limit=99999", KNOWN) == ("BTCUSDT", 5000)


@pytest.mark.parametrize("query,code", [
    ("symbol=NOPE", -1121), ("symbol=btcusdt", -1121), ("", -1102), ("limit=5", -1102),
    ("symbol=BTCUSDT&limit=abc", -1100), ("symbol=BTCUSDT&limit=-5", -1100),
    ("symbol=BTCUSDT&limit=0", -1100),
])
def test_depth_query_errors_carry_binance_codes(query, code):
    with pytest.raises(binance.BinanceRequestError) as info:
        binance.parse_depth_query(query, KNOWN)
    assert info.value.code == code
    body = json.loads(binance.error_body(info.value.code, info.value.msg))
    assert list(body) == ["code", "msg"]


def test_invalid_symbol_body_is_exactly_binances():
    assert binance.error_body(-1121, "Invalid symbol.") == b'{"code":-1121,"msg":"Invalid symbol."}'


@pytest.mark.parametrize("limit,weight", [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50),
                                          (1000, 50), (1001, 250), (5000, 250)])
def test_depth_weight_by_limit(limit, weight):
    assert binance.depth_weight(limit) == weight


def test_snapshot_body_shape():
    body = json.loads(binance.snapshot_body(42, [P, Q], [P + 1000000, Q]))
    assert list(body) == ["lastUpdateId", "bids", "asks"]
    assert body == {"lastUpdateId": 42, "bids": [["37000.01000000", "1.23000000"]],
                    "asks": [["37000.02000000", "1.23000000"]]}


def test_weight_limiter_429_then_418_ban_then_recovery():
    lim = binance.WeightLimiter(weight_limit=50, window_s=60, ban_after=2, ban_s=120)
    for i in range(10):
        assert lim.check("1.2.3.4", 5, 0.0 + i) == (200, 5 * (i + 1), 0)
    status, used, retry = lim.check("1.2.3.4", 5, 10.0)
    assert (status, used) == (429, 50) and retry == 50   # until the window opened at t=0 ends
    assert lim.check("9.9.9.9", 5, 10.0)[0] == 200       # budgets are per IP
    assert lim.check("1.2.3.4", 5, 11.0)[0] == 429
    assert lim.check("1.2.3.4", 5, 12.0)[0] == 429
    status, _used, retry = lim.check("1.2.3.4", 5, 13.0)  # third request after the 429: banned
    assert status == 418 and retry == 120
    assert lim.check("1.2.3.4", 5, 100.0)[0] == 418       # still banned in the next window
    assert lim.check("1.2.3.4", 5, 134.0) == (200, 5, 0)  # ban over, fresh window


def test_weight_window_resets_usage():
    lim = binance.WeightLimiter(weight_limit=10, window_s=1.0)
    assert lim.check("a", 10, 0.0)[0] == 200
    assert lim.check("a", 5, 0.5)[0] == 429
    assert lim.used("a", 0.5) == 10
    assert lim.check("a", 5, 1.0) == (200, 5, 0)


def test_rate_limit_bodies_use_code_minus_1003():
    assert json.loads(binance.rate_limit_body(429, 6000))["code"] == -1003
    assert "banned" in json.loads(binance.rate_limit_body(418, 6000, 5))["msg"]


def test_per_stream_formatters_match_event_payload():
    evs = [(EV_DEPTH, "BTCUSDT", 1, 2, [P, Q], []), (EV_TRADE, "BTCUSDT", 3, P, Q, SIDE_BUY),
           (EV_QUOTE, "BTCUSDT", 4, P, Q, P + 1, Q)]
    for ev, suffixes in zip(evs, (binance.DEPTH_SUFFIXES, binance.TRADE_SUFFIXES,
                                  binance.QUOTE_SUFFIXES)):
        for suffix in suffixes:
            assert binance.formatter(suffix)(ev, 7, "") == binance.event_payload(ev, suffix, 7)
