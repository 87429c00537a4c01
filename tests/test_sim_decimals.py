"""Specification of the venues' decimal strings (hftfeed/tools/sim/decimals.py)."""

import pytest

from hftfeed.tools.sim.decimals import decimals_for, fixed, level_list, shortest


def test_decimals_follow_the_step_size():
    assert decimals_for(1000000) == 2          # tick 0.01
    assert decimals_for(100000) == 3           # lot 0.001
    assert decimals_for(100000000) == 0        # lot 1
    assert decimals_for(1) == 8
    assert decimals_for(2500000) == 3          # 0.025: multiples need 3 decimals


def test_fixed_width_matches_the_futures_capture_strings():
    assert fixed(4)(761100000) == "7.6110"
    assert fixed(0)(81300000000) == "813"
    assert fixed(5)(1737000) == "0.01737"
    assert fixed(2)(1744000000000) == "17440.00"


def test_fixed_width_falls_back_to_exact_digits_rather_than_losing_them():
    assert fixed(2)(123456789) == "1.23456789"
    assert fixed(0)(150000000) == "1.5"


def test_shortest_form_is_what_okx_sends():
    assert shortest(3031600000000) == "30316"
    assert shortest(3031610000000) == "30316.1"
    assert shortest(5900000) == "0.059"
    assert shortest(0) == "0"
    assert shortest(1) == "0.00000001"
    assert shortest(-150000000) == "-1.5"


def test_level_list_formats_pairs_like_the_capture_and_handles_zero_decimals():
    fmt = level_list(4, 0)
    assert fmt([]) == ""
    assert fmt([761100000, 81300000000]) == '["7.6110","813"]'
    assert fmt([761100000, 0, 760900000, 200000000]) == '["7.6110","0"],["7.6090","2"]'
    assert level_list(2, 3)([3700001000000, 123000000]) == '["37000.01","1.230"]'


def test_level_list_never_truncates_an_off_step_value():
    assert level_list(4, 0)([1, 5]) == '["0.00000001","0.00000005"]'


def test_fixed_refuses_more_than_eight_decimals():
    with pytest.raises(ValueError):
        fixed(9)
