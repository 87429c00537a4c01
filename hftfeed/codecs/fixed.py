"""Exchange decimal strings -> ints scaled by 10**8, exactly (never through a float).

Why exact: a float cannot hold 0.1 or most 8-decimal prices, and a book keyed by prices that
differ in the last bit loses levels. Every price and quantity in hftfeed is ``round(x * 1e8)``
done in integer arithmetic, and a value that is not a whole number of 1e-8 units, or that does
not fit a signed int64 once scaled, raises :class:`FixedPointError` naming the input: nothing
is ever rounded, truncated or wrapped silently.

Entry points, fastest first:
- :func:`parse_fixed8` for the common exchange format with exactly 8 decimals
  ("37000.01000000", Binance): a cheap format guard, then one ``int()`` call.
- :func:`parse_price` for any decimal string (what venue adapters call): the 8-decimal path,
  then a path for plain "7.6110" / "2" with at most 8 decimals, then the general parser.
- :func:`parse_decimal`, the general parser: sign, exponent, extra zero decimals.

Accepted grammar (ASCII only, no surrounding whitespace, no "_" separators)::

    [+|-] digits [ "." digits ] [ (e|E) [+|-] digits ]

so "5", "-1.5", "+1.5", "1e-05", "1E+3", "0.000000001000" (extra decimals that are zero)
and "-0" (-> 0) are accepted; "", ".5", "5.", "1.2.3", "nan", "inf", "1_000", " 5" are
rejected. ".5" and "5." are rejected on purpose: no venue sends them, JSON numbers forbid
them, and a string that ends in "." is more likely a truncated field than a number.
Huge exponents ("1e999999") are decided from the digit counts, without building big ints.

Pure: no asyncio, no socket, no float, no ``decimal`` (that module is the tests' oracle).
"""

import platform
import re

from hftfeed.errors import FixedPointError

PRECISION = 8
SCALE = 10 ** PRECISION                    # 100_000_000
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
_INT64_DIGITS = 19                         # 10**19 > INT64_MAX: more digits cannot fit
_MAX_EXPONENT_DIGITS = 9                   # larger exponents are decided without int()
_POW10 = tuple(10 ** k for k in range(_INT64_DIGITS + 1))   # no pow() call per parse

_NUMBER = re.compile(r"([+-]?)([0-9]+)(?:\.([0-9]+))?(?:[eE]([+-]?)([0-9]+))?")

# PERF_NOTES: CPython is fastest with str.replace, PyPy with the slice form (its JIT fuses the
# slices and the concatenation); the guard below makes both safe, so pick per interpreter.
_USE_REPLACE = platform.python_implementation() == "CPython"


def _describe(text):
    """repr of the input for error messages, bounded so a huge input cannot flood the log."""
    shown = repr(text)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def parse_decimal(text) -> int:
    """Parse any accepted decimal string (or ASCII bytes) into an int scaled by 10**8."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise FixedPointError("not an ASCII decimal: %s" % _describe(text)) from None
    elif not isinstance(text, str):
        raise FixedPointError("expected a decimal string, got %s" % _describe(text))
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise FixedPointError("not a decimal number: %s" % _describe(text))
    sign, int_digits, frac_digits, exp_sign, exp_digits = match.groups()
    frac_digits = frac_digits or ""
    # value = coefficient * 10**exponent, with the coefficient's trailing zeros moved into
    # the exponent so that a negative scaled exponent means "finer than 1e-8".
    coefficient = (int_digits + frac_digits).lstrip("0")
    if not coefficient:
        return 0                            # "0", "-0", "0.000", "0e999999"
    stripped = coefficient.rstrip("0")
    exponent = len(coefficient) - len(stripped) - len(frac_digits) + PRECISION
    if exp_digits is not None:
        exp_digits = exp_digits.lstrip("0")
        if len(exp_digits) > _MAX_EXPONENT_DIGITS:
            exp_value = 10 ** _MAX_EXPONENT_DIGITS     # beyond any string's length: decisive
        else:
            exp_value = int(exp_digits or "0")
        exponent += -exp_value if exp_sign == "-" else exp_value
    if exponent < 0:
        raise FixedPointError("%s is not a whole number of 1e-%d units (no rounding)"
                              % (_describe(text), PRECISION))
    if len(stripped) + exponent > _INT64_DIGITS:
        raise FixedPointError("%s does not fit a signed int64 once scaled by 10**%d"
                              % (_describe(text), PRECISION))
    value = int(stripped) * _POW10[exponent]
    if sign == "-":
        value = -value
    if value < INT64_MIN or value > INT64_MAX:
        raise FixedPointError("%s does not fit a signed int64 once scaled by 10**%d"
                              % (_describe(text), PRECISION))
    return value


def parse_fixed8(text: str) -> int:
    """Fast path for unsigned decimals with exactly 8 decimals ("37000.01000000").

    The guard lets only ASCII digits reach ``int()``, which would otherwise also accept
    " 12", "+1", "1_000" and non-ASCII digits. Anything else goes to :func:`parse_decimal`.
    Cost of the guard (PERF_NOTES VM): CPython ~300 -> ~590 ns, PyPy ~25 -> ~65 ns a call.
    """
    try:
        # 9 < len <= 20: "d.dddddddd" with up to 19 digits (more cannot fit int64, and CPython
        # 3.11's int() refuses > 4300 digits); longer legal strings take the general path.
        if 9 < len(text) <= 20 and text[-9] == "." and text.isascii():
            if _USE_REPLACE:
                digits = text.replace(".", "")
                # One dot only (replace drops them all), and nothing but 0-9 left.
                if len(digits) == len(text) - 1 and digits.isdigit():
                    value = int(digits)
                    if value <= INT64_MAX:
                        return value
            else:
                digits = text[:-9] + text[-8:]
                if digits.isdigit():        # a second dot or a sign fails here
                    value = int(digits)
                    if value <= INT64_MAX:
                        return value
    except (TypeError, AttributeError):
        return parse_decimal(text)          # not a str: parse_decimal raises FixedPointError
    return parse_decimal(text)


def parse_price(text: str) -> int:
    """Any venue decimal string -> scaled int, via the fastest path that applies.

    Exactly 8 decimals: :func:`parse_fixed8`'s path. Up to 8 decimals or none ("7.6110",
    "2"): one ``int()`` and a multiplication. Everything else: :func:`parse_decimal`.
    """
    try:
        length = len(text)
        if 9 < length <= 20 and text[-9] == ".":
            return parse_fixed8(text)
        if length <= 19 and text.isascii() and isinstance(text, str):
            dot = text.find(".")
            if dot < 0:
                if text.isdigit():
                    value = int(text) * SCALE
                    if value <= INT64_MAX:
                        return value
            elif 0 < dot < length - 1 and length - dot <= PRECISION + 1:
                digits = text[:dot] + text[dot + 1:]
                if digits.isdigit():
                    value = int(digits) * _POW10[PRECISION + 1 - length + dot]
                    if value <= INT64_MAX:
                        return value
    except (TypeError, AttributeError):
        return parse_decimal(text)          # not a str: parse_decimal raises FixedPointError
    return parse_decimal(text)


def rescale(value: int, precision: int) -> int:
    """An int scaled by 10**precision -> the same value scaled by 10**8, exactly.

    precision 8 is the identity (the common case); below 8 multiplies; above 8 divides and a
    remainder raises FixedPointError (never a silent truncation). The result is range-checked.
    """
    if not isinstance(value, int) or not isinstance(precision, int):
        raise FixedPointError("rescale needs ints, got %s at precision %s"
                              % (_describe(value), _describe(precision)))
    if precision == PRECISION:
        result = value
    elif not -_INT64_DIGITS <= precision <= 60:
        raise FixedPointError("precision %r out of the supported range" % (precision,))
    elif precision < PRECISION:
        if value and PRECISION - precision > _INT64_DIGITS:
            raise FixedPointError("%r at precision %d overflows int64 at precision %d"
                                  % (value, precision, PRECISION))
        result = value * 10 ** (PRECISION - precision)
    else:
        quotient, remainder = divmod(value, 10 ** (precision - PRECISION))
        if remainder:
            raise FixedPointError("%r at precision %d is finer than 1e-%d"
                                  % (value, precision, PRECISION))
        result = quotient
    if result < INT64_MIN or result > INT64_MAX:
        raise FixedPointError("%r at precision %d does not fit int64 at precision %d"
                              % (value, precision, PRECISION))
    return result


def format_fixed(value: int) -> str:
    """Scaled int -> the shortest exact decimal string: 3700001000000 -> "37000.01"."""
    sign = "-" if value < 0 else ""
    units, fraction = divmod(-value if value < 0 else value, SCALE)
    if not fraction:
        return "%s%d" % (sign, units)
    return "%s%d.%s" % (sign, units, ("%08d" % fraction).rstrip("0"))
