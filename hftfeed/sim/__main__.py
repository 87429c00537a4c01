"""``python3 -m hftfeed.sim ...``: see hftfeed.sim.cli."""

import sys

from hftfeed.sim.cli import main

sys.exit(main(sys.argv[1:]))
