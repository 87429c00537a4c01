"""The simulator bench (``hftfeed/tools/sim/bench.py``): every registered venue can be measured,
each with its own symbol syntax and its dialect's own book request, through a real simulator
process on loopback. Rates are not asserted (a loaded 2-core box); that frames flowed is."""

import pytest

from hftfeed.tools.sim import bench
from hftfeed.venues import registry


def test_the_venue_choice_is_every_registered_venue():
    action = next(a for a in bench.build_parser()._actions if a.dest == "venue")
    assert tuple(action.choices) == registry.NAMES


@pytest.mark.parametrize("venue", registry.NAMES)
def test_bench_symbols_follow_the_venue_syntax(venue):
    symbols = bench.bench_symbols(venue, 12)
    assert len(set(symbols)) == 12
    assert [registry.symbol_error(venue, s) for s in symbols] == [None] * 12


@pytest.mark.parametrize("venue", registry.NAMES)
def test_each_venue_runs_briefly_and_streams_books(venue, capsys):
    result = bench.run(["--venue", venue, "--symbols", "2", "--rate", "500", "--seconds", "0.6",
                        "--warmup-s", "0.6"])
    assert result["venue"] == venue
    assert result["msgs_per_s_per_conn"] > 0, result
    assert result["sim_generated_per_s"] > 0, result
    assert not result["disconnects"], result
    assert '"venue": "%s"' % venue in capsys.readouterr().out
