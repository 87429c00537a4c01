"""``python3 -m hftfeed.sim ...``: see hftfeed.sim.cli."""

import sys

from hftfeed.sim.cli import main

if __name__ == "__main__":      # importing the package's modules must not start a simulator
    sys.exit(main(sys.argv[1:]))
