"""``python -m bluegreen.cli``: the same command as ``bluegreen``."""

import sys

from bluegreen.cli.main import main

sys.exit(main())
