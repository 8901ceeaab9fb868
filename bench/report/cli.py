"""report.py's commands."""

import json
import os
import sys

from . import collect, document, plot, summaries
from .procstate import proc_state

USAGE = """Helpers and the final report of bench/compare.sh (standard library only).

  report.py iperf-summary FILE CPU_BEFORE CPU_AFTER CLK_TCK   one line for the log
  report.py connect-summary FILE                              one line for the log
  report.py keepalive-summary FILE CPU_BEFORE CPU_AFTER CLK_TCK one line for the log
  report.py syscalls-summary JSON                             one line for the log
  report.py idle-summary HOLD_JSON STATE_JSON                 one line for the log
  report.py proc-state NAME PID METRICS_PORT HAPROXY_SOCK     JSON: RSS, fds, pipes, pool counters
  report.py report RUN_DIR OUT_JSON                           table on stdout, JSON, RUN_DIR/plot.dat
  report.py rerender COMPARE_JSON [OUT_JSON]                  the same tables from a report's JSON
                                                              (e.g. bench/results/compare-*.json)

Units: Gbit/s = 1e9 bit/s as iperf3 reports it; GB = 1e9 bytes; CPU seconds
are the proxy process's utime+stime (all threads) from /proc/PID/stat.

The code: bench/report/, one module per section of the report (figures,
syscall_counts, ratios, fresh, features, pool), collect (a run directory or
a JSON -> the figures), document (the sections in order, the JSON).
"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    cmd, a = (argv[0], argv[1:]) if argv else ("", [])
    if cmd in summaries.COMMANDS:
        summaries.COMMANDS[cmd](a)
    elif cmd == "proc-state" and len(a) == 4:
        print(json.dumps(proc_state(a[0], a[1], a[2], a[3])))
    elif cmd == "report" and len(a) == 2:
        d = collect.from_run(a[0])
        out, doc = document.render(d)
        print("\n".join(out))
        document.write_json(doc, a[1])
        plot.write(d, os.path.join(a[0], "plot.dat"))
    elif cmd == "rerender" and len(a) in (1, 2):
        out, doc = document.render(collect.from_json(a[0]))
        print("\n".join(out))
        if len(a) == 2:
            document.write_json(doc, a[1])
    else:
        sys.exit(USAGE)
