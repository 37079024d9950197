"""``python -m raftkv.demo [split-brain | fencing] [options]``."""

from __future__ import annotations

import sys

from raftkv.demo.cli import main

sys.exit(main(sys.argv[1:]))
