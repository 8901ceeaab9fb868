"""The report of bench/compare.sh, one module per section (see cli.USAGE).

The spread and verdict helpers are re-exported here for bench/copy_relay.py
(`from report import fmt, fmt_spread, spread, spread_doc, verdict`).
"""

from .stats import fmt, fmt_spread, spread, spread_doc, table, verdict  # noqa: F401
