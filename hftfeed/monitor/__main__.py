"""``python3 -m hftfeed.monitor ...`` is ``python3 hftfeed.py monitor ...``."""

import sys

from .cli import main

sys.exit(main(sys.argv[1:]))
