#!/usr/bin/env python3
"""The entry point of bench/report/ (the report of bench/compare.sh):
`python3 bench/report.py` with no arguments prints the commands."""

import sys

sys.dont_write_bytecode = True  # no bench/report/__pycache__

from report.cli import main  # noqa: E402  (the package bench/report/ beside this file)

if __name__ == "__main__":
    main()
