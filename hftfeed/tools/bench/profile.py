"""Read a cProfile file written by the daemon (``bench.py profile``).

Run under the interpreter that wrote the file (``python -m hftfeed.tools.bench.profile FILE``):
pstats files are marshal data, whose format differs between CPython 3.11 and PyPy 3.9.
Prints one JSON line: the functions with the most own time, and the total.
"""

import json
import pstats
import sys


def top_functions(path, count=25):
    stats = pstats.Stats(path)
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():
        rows.append({"function": "%s:%d(%s)" % (filename, line, name), "calls": ncalls,
                     "own_s": round(tottime, 4), "cumulative_s": round(cumtime, 4)})
    rows.sort(key=lambda r: r["own_s"], reverse=True)
    return {"total_s": round(stats.total_tt, 3), "top_by_own_time": rows[:count]}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    print(json.dumps(top_functions(argv[0], int(argv[1]) if len(argv) > 1 else 25)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
