"""A module that exits when imported: --app must say so in one line."""

import sys

sys.exit(3)
