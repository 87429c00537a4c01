"""``python3 -m hftfeed.tools.monitor ...`` is ``python3 hftfeed.py monitor ...``."""

import sys

from hftfeed.tools.monitor.cli import main

if __name__ == "__main__":      # importing the module (e.g. pkgutil.walk_packages) runs nothing
    sys.exit(main(sys.argv[1:]))
