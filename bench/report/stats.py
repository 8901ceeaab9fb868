"""Formatting, spreads and verdicts: the rules every table follows
(bench/copy_relay.py uses them too)."""

import statistics


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def fmt(v, nd=2):
    if v is None:
        return "-"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, int) or (isinstance(v, float) and abs(v) >= 1000):
        return f"{v:,.0f}"
    return f"{v:.{nd}f}"


def table(headers, rows, title=None):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]
    out = []
    if title:
        out.append(title)
    out.append("  ".join(str(h).rjust(w) if i else str(h).ljust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    out.append("  ".join("-" * w for w in widths))
    for r in rows:
        out.append("  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


# Which way is better, per metric (True: higher is better).
HIGHER_BETTER = ("_gbps", "_conns_per_sec", "_req_per_sec", "idle_held")


def higher_better(metric):
    return metric.endswith(HIGHER_BETTER)


def spread(vals):
    """(min, median, max) of the non-None values, or None."""
    v = [x for x in vals if x is not None]
    if not v:
        return None
    return (min(v), statistics.median(v), max(v))


def fmt_spread(sp, nd=2):
    if sp is None:
        return "-"
    lo, md, hi = sp
    if lo == hi:
        return fmt(md, nd)
    return f"{fmt(md, nd)} ({fmt(lo, nd)}-{fmt(hi, nd)})"


def spread_doc(by_rep):
    """{min, median, max, values (by rep)} of {rep: value}."""
    sp = spread(by_rep.values())
    return {"min": sp[0] if sp else None, "median": sp[1] if sp else None, "max": sp[2] if sp else None,
            "values": [by_rep[r] for r in sorted(by_rep)]}


PARITY_BAND = (0.95, 1.05)


def verdict(metric, a_vals, b_vals, rep_ratios, exact=False):
    """The verdict the data supports, from spliced's side (a).

    ahead / behind: the per-rep ranges of the two do not overlap (or, for
    exact counts, the values differ). parity: the ranges overlap and every
    per-rep ratio lies within 0.95-1.05. Otherwise: parity within noise.
    """
    a = [x for x in a_vals if x is not None]
    b = [x for x in b_vals if x is not None]
    if not a or not b:
        return "-"
    if exact:
        ma, mb = statistics.median(a), statistics.median(b)
        if abs(ma - mb) <= 0.02 * max(abs(mb), 1e-9):
            return "same"  # within 2%: strace's attach and epoll timing, not the data path
        better = ma > mb if higher_better(metric) else ma < mb
        return "ahead" if better else "behind"
    if min(len(a), len(b)) < 3:
        return "n/a (<3 reps)"
    hb = higher_better(metric)
    if min(a) > max(b):
        return "ahead" if hb else "behind"
    if max(a) < min(b):
        return "behind" if hb else "ahead"
    rr = [r for r in rep_ratios if r is not None]
    if rr and PARITY_BAND[0] <= min(rr) and max(rr) <= PARITY_BAND[1]:
        return "parity"
    return "parity within noise"
