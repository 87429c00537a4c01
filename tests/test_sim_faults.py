"""Specification of fault specs and stream/REST fault counters (hftfeed/tools/sim/faults.py)."""

import pytest

from hftfeed.tools.sim import faults


def test_name_only_spec_gets_every_default():
    spec = faults.parse_spec("drop_diff")
    assert spec == {"fault": "drop_diff", "symbol": None, "count": 1}


def test_key_value_spec_is_typed_and_symbols_are_uppercased():
    spec = faults.parse_spec("rest_status:code=418,count=2,symbol=btcusdt,retry_after_s=7")
    assert spec == {"fault": "rest_status", "code": 418, "count": 2, "symbol": "BTCUSDT",
                    "retry_after_s": 7}
    assert faults.parse_spec("close_abrupt:rst=true")["rst"] is True
    assert faults.parse_spec("rest_slow:delay_s=0.5")["delay_s"] == 0.5


def test_json_spec_and_scheduling_keys():
    spec = faults.parse_spec('{"fault":"close_frame","code":1011,"after_s":2,"every_s":5}')
    assert spec["code"] == 1011 and spec["at_s"] == 2.0 and spec["every_s"] == 5.0
    # server_shutdown's own after_s is its close delay, not a schedule
    assert faults.parse_spec("server_shutdown:after_s=3")["after_s"] == 3.0


@pytest.mark.parametrize("text", [
    "no_such_fault", "drop_diff:count=0", "drop_diff:count=x", "drop_diff:bogus=1",
    "rest_status:code=200", "fragment:parts=1", "drop_diff:count", "{not json",
    "close_abrupt:rst=maybe", '["drop_diff"]',
])
def test_bad_specs_are_refused_with_a_reason(text):
    with pytest.raises(faults.FaultSpecError) as info:
        faults.parse_spec(text)
    assert str(info.value)


def test_every_documented_fault_is_known():
    for name in ("drop_diff", "duplicate_diff", "reorder_diffs", "stale_snapshot", "rest_status",
                 "rest_slow", "rest_truncated", "close_abrupt", "close_frame", "half_open",
                 "stop_pings", "ignore_pongs", "malformed_json", "invalid_utf8",
                 "oversized_frame", "fragment", "unknown_event", "server_shutdown", "lifetime",
                 "absurd_numbers"):
        assert faults.normalize({"fault": name})["fault"] == name


def test_depth_faults_apply_to_their_symbol_and_count_down():
    sf = faults.StreamFaults()
    assert not sf.depth_armed
    sf.arm_depth(faults.DROP, "BTCUSDT", 2)
    assert sf.depth_armed
    assert sf.depth_action("ETHUSDT") == faults.DELIVER
    assert sf.depth_action("BTCUSDT") == faults.DROP
    assert sf.pending() == [{"fault": "drop_diff", "symbol": "BTCUSDT", "remaining": 1}]
    assert sf.depth_action("BTCUSDT") == faults.DROP
    assert sf.depth_action("BTCUSDT") == faults.DELIVER
    assert not sf.depth_armed


def test_a_fault_without_symbol_hits_the_next_event_of_any_symbol():
    sf = faults.StreamFaults()
    sf.arm_depth(faults.HOLD, None, 1)
    assert sf.depth_action("ETHUSDT") == faults.HOLD
    assert sf.depth_action("ETHUSDT") == faults.DELIVER


def test_rest_faults_are_taken_once_per_count():
    sf = faults.StreamFaults()
    sf.arm_rest(faults.normalize({"fault": "rest_status", "code": 503, "count": 2}))
    assert sf.take_rest("BTCUSDT")["code"] == 503
    assert sf.take_rest("ETHUSDT")["code"] == 503
    assert sf.take_rest("BTCUSDT") is None
