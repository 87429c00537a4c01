"""Specification of hftfeed/codecs/fixed.py: exact decimal <-> int scaled by 10**8.

``decimal.Decimal`` is the oracle for values; the accepted grammar has its own small oracle
below (written with str methods, independently of the module's regex).
"""

import random
from decimal import Decimal, localcontext

import pytest

from hftfeed.codecs import fixed
from hftfeed.errors import FixedPointError
from hftfeed.codecs.fixed import (INT64_MAX, INT64_MIN, format_fixed, parse_decimal, parse_fixed8,
                           parse_price, rescale)

PARSERS = [parse_decimal, parse_fixed8, parse_price]


def test_constants():
    assert fixed.SCALE == 100_000_000 and fixed.PRECISION == 8
    assert (INT64_MIN, INT64_MAX) == (-2 ** 63, 2 ** 63 - 1)


# --- accepted inputs --------------------------------------------------------------------------

GOLDEN = [
    ("37000.01000000", 3700001000000),
    ("0.35130000", 35130000),
    ("6195.00000000", 619500000000),
    ("0.00000001", 1),
    ("7.6110", 761100000),
    ("0.5", 50000000),
    ("5", 500000000),
    ("0", 0),
    ("-0", 0),
    ("-0.00000000", 0),
    ("-1.5", -150000000),
    ("+1.5", 150000000),
    ("1e-05", 1000),
    ("1E+3", 100000000000),
    ("1.5e2", 15000000000),
    ("12300E-10", 123),
    ("0.000000010000", 1),          # more than 8 decimals, the extra ones all zero
    ("1.0000000000000000000000", 100000000),
    ("000000000000000000000042", 4200000000),
    ("0e999999", 0),
    ("0.0e-999999", 0),
    ("92233720368.54775807", INT64_MAX),
    ("-92233720368.54775808", INT64_MIN),
]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("text, expected", GOLDEN)
def test_golden_values(parse, text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize("parse", PARSERS)
def test_ascii_bytes_are_accepted(parse):
    assert parse(b"37000.01000000") == 3700001000000
    assert parse(b"0.5") == 50000000
    assert parse(bytearray(b"-2")) == -200000000


# --- rejected inputs --------------------------------------------------------------------------

REJECTED = [
    "", "abc", "1.2.3", "nan", "NaN", "inf", "-inf", "Infinity", ".5", "5.", "-.5", "+", "-",
    "e5", "1e", "1e+", "1.e5", "--1", "+-1", "1-", "0x10", "1,5",
    " 1", "1 ", "\t1.5", "1.5\n", " 37000.01000000", "37000.01000000 ", "1 000",
    "1_000", "1_000.00000000", "37000.0100_000",
    "\u0661.00000000", "\uff11.00000000", "\u0661", "1\u00b2", "\u0661\u0662.5",
    "0.000000001", "1e-9", "-0.000000015", "1.123456789",     # finer than 1e-8
    "92233720368.54775808", "-92233720368.54775809",           # one past int64
    "99999999999.99999999", "1e11", "1e999999", "-1e999999", "1e-999999",
    "1" + "0" * 5000, "1e" + "9" * 5000, "1e-" + "9" * 5000,
]


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("text", REJECTED)
def test_rejected_inputs_raise_fixed_point_error(parse, text):
    with pytest.raises(FixedPointError):
        parse(text)


@pytest.mark.parametrize("parse", PARSERS)
@pytest.mark.parametrize("value", [None, 5, 1.5, ["1", ".", "0"], object(), b"\xff1.0"])
def test_non_strings_raise_fixed_point_error(parse, value):
    with pytest.raises(FixedPointError):
        parse(value)


def test_error_names_the_input_and_stays_short():
    with pytest.raises(FixedPointError, match="1.2.3"):
        parse_decimal("1.2.3")
    with pytest.raises(FixedPointError) as info:
        parse_decimal("x" * 100000)
    assert len(str(info.value)) < 200


def test_long_zero_padding_is_decided_without_big_ints():
    assert parse_decimal("0" * 5000 + "1") == 100000000
    assert parse_decimal("1." + "0" * 5000) == 100000000
    assert parse_decimal("0." + "0" * 5000) == 0
    assert parse_price("0" * 30 + "2.50000000") == 250000000


# --- the fast-path guards ---------------------------------------------------------------------

@pytest.mark.parametrize("text", ["+1.00000000", " 1.00000000", "1 .00000000", "1_0.00000000",
                                  "\u0661\u0662.00000000", "\uff11.00000000", "1.2.00000000",
                                  "-.00000000", "1.0000000\n", "12.0000_000", "1.-0000000",
                                  "\u0661.5", "+2", " 2", "2_0", "\u0662", "1.-5", "+1.5"])
def test_fast_paths_agree_with_the_general_parser_on_tricky_input(text):
    try:
        expected = parse_decimal(text)
    except FixedPointError:
        for parse in (parse_fixed8, parse_price):
            with pytest.raises(FixedPointError):
                parse(text)
    else:
        assert parse_fixed8(text) == parse_price(text) == expected


@pytest.mark.parametrize("use_replace", [False, True])
def test_both_interpreter_variants_of_the_fast_path(monkeypatch, use_replace):
    monkeypatch.setattr(fixed, "_USE_REPLACE", use_replace)
    rng = random.Random(8)
    for _ in range(3000):
        text = "%d.%08d" % (rng.randrange(10 ** rng.randrange(1, 11)), rng.randrange(10 ** 8))
        assert parse_fixed8(text) == int(Decimal(text) * 100000000)
    for text in ("1.2.00000000", " 1.00000000", "1_0.00000000", "\u0661.00000000",
                 "99999999999.99999999"):
        with pytest.raises(FixedPointError):
            parse_fixed8(text)
    assert parse_fixed8("92233720368.54775807") == INT64_MAX
    assert parse_fixed8("+1.00000000") == 100000000         # signs leave the fast path
    assert parse_fixed8("-1.00000000") == -100000000


# --- property tests against Decimal -----------------------------------------------------------

def grammar_accepts(text):
    """Oracle for the documented grammar, written without regular expressions."""
    if not text or not text.isascii():
        return False
    mantissa, exponent = text, None
    for marker in "eE":
        if marker in text:
            mantissa, _, exponent = text.partition(marker)
            break
    if exponent is not None:
        digits = exponent[1:] if exponent[:1] in ("+", "-") else exponent
        if not digits.isdigit():
            return False
    if mantissa[:1] in ("+", "-"):
        mantissa = mantissa[1:]
    whole, dot, frac = mantissa.partition(".")
    return whole.isdigit() and (not dot or frac.isdigit())


def oracle(text):
    """Expected scaled int, or None when the input must be rejected."""
    if not grammar_accepts(text):
        return None
    number = Decimal(text)
    if number.is_zero():
        return 0
    if abs(number.adjusted()) > 100:        # far outside int64 or far below 1e-8
        return None
    with localcontext() as ctx:
        ctx.prec = 10000
        scaled = number.scaleb(8)
    if scaled != scaled.to_integral_value():
        return None
    value = int(scaled)
    return value if INT64_MIN <= value <= INT64_MAX else None


def random_number_text(rng):
    sign = rng.choice(["", "", "", "-", "+"])
    whole = "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 13)))
    text = sign + whole
    if rng.random() < 0.8:
        text += "." + "".join(rng.choice("0123456789") for _ in range(rng.randrange(1, 11)))
        if rng.random() < 0.3:
            text += "0" * rng.randrange(1, 6)
    if rng.random() < 0.25:
        text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randrange(0, 25))
    return text


def random_garbage_text(rng):
    return "".join(rng.choice("0123456789.-+eE _x\u0661") for _ in range(rng.randrange(0, 14)))


def test_random_numbers_match_the_decimal_oracle():
    rng = random.Random(1234)
    accepted = rejected = 0
    for _ in range(8000):
        text = random_number_text(rng) if rng.random() < 0.8 else random_garbage_text(rng)
        expected = oracle(text)
        for parse in PARSERS:
            if expected is None:
                with pytest.raises(FixedPointError):
                    parse(text)
            else:
                assert parse(text) == expected, (parse.__name__, text)
        accepted += expected is not None
        rejected += expected is None
    assert accepted > 2000 and rejected > 800


def test_random_exchange_format_strings():
    rng = random.Random(99)
    for _ in range(8000):
        decimals = rng.randrange(0, 9)
        text = str(rng.randrange(10 ** rng.randrange(1, 11)))
        if decimals:
            text += "." + "".join(rng.choice("0123456789") for _ in range(decimals))
        expected = int(Decimal(text) * 100000000)
        assert parse_price(text) == parse_fixed8(text) == parse_decimal(text) == expected


# --- int64 edges ------------------------------------------------------------------------------

@pytest.mark.parametrize("parse", PARSERS)
def test_int64_edges_exactly_and_one_past(parse):
    assert parse(format_fixed(INT64_MAX)) == INT64_MAX
    assert parse(format_fixed(INT64_MIN)) == INT64_MIN
    assert parse("922337203685477580.7e-7") == INT64_MAX
    with pytest.raises(FixedPointError):
        parse("92233720368.54775808")
    with pytest.raises(FixedPointError):
        parse("-92233720368.54775809")
    with pytest.raises(FixedPointError):
        parse("9223372036854775808e-8")


# --- rescale ----------------------------------------------------------------------------------

def test_rescale_identity_at_precision_8():
    assert rescale(123, 8) == 123
    assert rescale(INT64_MAX, 8) == INT64_MAX and rescale(INT64_MIN, 8) == INT64_MIN


def test_rescale_multiplies_below_8():
    assert rescale(76110, 4) == 761100000          # "7.6110" as 76110 at 4 decimals
    assert rescale(5, 0) == 500000000
    assert rescale(-5, 0) == -500000000
    assert rescale(3, -2) == 30000000000           # 300 given in hundreds


def test_rescale_divides_exactly_above_8():
    assert rescale(1000, 11) == 1
    assert rescale(-37000010000000000, 12) == -3700001000000
    with pytest.raises(FixedPointError):
        rescale(1001, 11)                          # a remainder is never truncated
    with pytest.raises(FixedPointError):
        rescale(-1, 9)


def test_rescale_checks_int64_range():
    assert rescale(INT64_MAX // 10, 7) == INT64_MAX // 10 * 10
    with pytest.raises(FixedPointError):
        rescale(INT64_MAX // 10 + 1, 7)
    with pytest.raises(FixedPointError):
        rescale(INT64_MAX + 1, 8)
    with pytest.raises(FixedPointError):
        rescale(INT64_MIN - 1, 8)
    with pytest.raises(FixedPointError):
        rescale(1, -30)
    assert rescale(0, -15) == 0


@pytest.mark.parametrize("value, precision", [(1.5, 8), ("5", 8), (5, 8.0), (5, 1000)])
def test_rescale_rejects_non_int_values_and_absurd_precisions(value, precision):
    with pytest.raises(FixedPointError):
        rescale(value, precision)


def test_rescale_matches_decimal_oracle():
    rng = random.Random(3)
    for _ in range(5000):
        precision = rng.randrange(-5, 20)
        value = rng.randrange(-10 ** 20, 10 ** 20)
        exact = Decimal(value).scaleb(8 - precision)
        if exact == exact.to_integral_value() and INT64_MIN <= int(exact) <= INT64_MAX:
            assert rescale(value, precision) == int(exact)
        else:
            with pytest.raises(FixedPointError):
                rescale(value, precision)


# --- format_fixed -----------------------------------------------------------------------------

@pytest.mark.parametrize("value, text", [
    (3700001000000, "37000.01"), (50000000, "0.5"), (-1, "-0.00000001"), (0, "0"),
    (500000000, "5"), (-150000000, "-1.5"), (1, "0.00000001"), (100000000000, "1000"),
    (INT64_MAX, "92233720368.54775807"), (INT64_MIN, "-92233720368.54775808"),
])
def test_format_fixed_gives_the_shortest_exact_string(value, text):
    assert format_fixed(value) == text


def test_format_then_parse_round_trips():
    rng = random.Random(42)
    values = [INT64_MIN, INT64_MIN + 1, -1, 0, 1, INT64_MAX - 1, INT64_MAX]
    values += [rng.randrange(INT64_MIN, INT64_MAX + 1) for _ in range(5000)]
    values += [rng.randrange(-10 ** 10, 10 ** 10) * 10 ** rng.randrange(0, 8) for _ in range(5000)]
    for value in values:
        text = format_fixed(value)
        assert Decimal(text) == Decimal(value) / 100000000
        for parse in PARSERS:
            assert parse(text) == value


def test_parse_then_format_is_canonical():
    assert format_fixed(parse_fixed8("37000.01000000")) == "37000.01"
    assert format_fixed(parse_decimal("+001.50e1")) == "15"
    assert format_fixed(parse_decimal("-0.0")) == "0"
