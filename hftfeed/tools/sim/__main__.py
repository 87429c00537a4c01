"""``python3 -m hftfeed.tools.sim ...``: see hftfeed.tools.sim.cli."""

import sys

from hftfeed.tools.sim.cli import main

if __name__ == "__main__":      # importing the package's modules must not start a simulator
    sys.exit(main(sys.argv[1:]))
