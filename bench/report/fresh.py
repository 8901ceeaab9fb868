"""Section: the pool at the proxy level: spliced-splice-tN (pooled pipes)
against spliced-fresh-tN (a fresh pipe per burst)."""

import re

from .ratios import compare
from .stats import fmt_spread, table


def render(d, out):
    rows = []
    for c in d.configs:
        m = re.match(r"spliced-fresh-t(\d+)$", c)
        pooled = f"spliced-splice-t{m.group(1)}" if m else None
        if not pooled or pooled not in d.configs:
            continue
        for metric, label in [(f"connect{n}_cpu_us_per_conn", f"CPU us per short connection (x{n})") for n in d.clients] + \
                             [("ka_cpu_us_per_req", "CPU us per keep-alive request"),
                              ("sys_per_short_conn", "syscalls per short connection"),
                              ("sys_per_ka_req", "syscalls per keep-alive request"),
                              ("bulk1_cpu_s_per_gb", "bulk 1 stream CPU s/GB")]:
            cmp = compare(d, pooled, c, metric, metric.startswith("sys_"))
            if cmp is None:
                continue
            rows.append([label, fmt_spread(d.get(pooled, metric), 3), fmt_spread(d.get(c, metric), 3),
                         f"{cmp['ratio']:.2f}x", cmp["verdict"]])
    if rows:
        out.append(table(["figure", "pooled pipes", "fresh pipe per burst", "pooled / fresh", "verdict (pooled)"],
                         rows, "The pool at the proxy level: spliced with its pool vs a fresh pipe per burst "
                               "(SPLICED_BENCH_FRESH_PIPES=1: no idle pipe kept)"))
        out.append("")
