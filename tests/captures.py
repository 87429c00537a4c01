"""Readers for the real exchange captures in ../shared/data/captures (cryptofeed sample data).

Tests that use them skip cleanly when the folder is absent (CI may run without it):
``pytestmark = captures.require("BINANCE.ws.1.0", ...)``. Decimal conversion here is deliberately
independent of hftfeed.codecs.fixed (decimal.Decimal), so the references built from it are too.
"""

from decimal import Decimal
from pathlib import Path

import pytest

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "captures"


def require(*names):
    """A skip marker unless every named capture file exists."""
    missing = [n for n in names if not (CAPTURES / n).exists()]
    return pytest.mark.skipif(bool(missing), reason="../shared/data/captures lacks %s" % missing)


def read_ws(name):
    """[(receive_time, raw_json_text)] for every received message of a ``.ws`` file (its first
    line is ``URL <-> connect_time``; lines with ``<-`` are what the client sent)."""
    out = []
    with open(str(CAPTURES / name)) as f:
        next(f)
        for line in f:
            stamp, _, text = line.rstrip("\n").partition(": ")
            if text and " <- " not in stamp:
                out.append((float(stamp), text))
    return out


def read_snapshots(name):
    """{SYMBOL: (receive_time, body_text)} from a ``.http`` file (``URL -> time: body`` lines)."""
    out = {}
    with open(str(CAPTURES / name)) as f:
        for line in f:
            url, _, rest = line.rstrip("\n").partition(" -> ")
            if not rest:
                continue
            stamp, _, body = rest.partition(": ")
            out[url.split("symbol=")[1].split("&")[0]] = (float(stamp), body)
    return out


def to_int(text):
    """Exchange decimal string -> int scaled by 1e8, via Decimal (the test's own oracle)."""
    value = Decimal(text) * 100000000
    assert value == value.to_integral_value(), text
    return int(value)


def flat(levels):
    """[["price", "qty", ...], ...] -> [p0, q0, p1, q1, ...] scaled by 1e8."""
    return [x for level in levels for x in (to_int(level[0]), to_int(level[1]))]
