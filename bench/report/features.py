"""Section: the feature rows against plain spliced: spliced-sendproxy-tN
(PROXY header v2) and spliced-sni-tN (SNI routes) against spliced-splice-tN,
CPU per connection and system calls: what each feature costs per connection."""

import re

from .stats import fmt, fmt_spread, spread, spread_doc, table

# spliced-<feature>-tN against spliced-splice-tN. The SNI row's load speaks
# plain text: it measures the ClientHello peek (MSG_PEEK sees a first byte
# that is not a TLS handshake) and the default route, not the parse of a
# real ClientHello.
FEATURES = (("sendproxy", "send-proxy v2", "--send-proxy v2 (upstream: spliced bench --serve --echo --accept-proxy)"),
            ("sni", "SNI routes", "two --route NAME=ADDR and the default --upstream; plain-text client, so the "
                                  "ClientHello peek and the default route"))
FEATURE_LIMIT = 1.10


def feature_verdict(rep_ratios):
    """within 10%: every per-rep ratio (feature / plain CPU per connection)
    <= 1.10; over 10%: every one above; else within noise."""
    rr = [r for r in rep_ratios if r is not None]
    if not rr:
        return "-"
    if len(rr) < 3:
        return "n/a (<3 reps)"
    if max(rr) <= FEATURE_LIMIT:
        return "within 10%"
    if min(rr) > FEATURE_LIMIT:
        return "over 10%"
    return "within noise"


def render(d, out):
    """The side-by-side table of the feature rows against plain spliced
    (appended to out) and its JSON: CPU per connection median (min-max),
    the ratio of medians with the per-rep range, the verdict; conn/s; the
    exact system calls per short connection and which calls differ."""
    configs, results, syscalls, clients = d.configs, d.results, d.syscalls, d.clients
    doc = {"rule": "ratio = feature / plain CPU us per connection, per rep (rep i against rep i, run side "
                   "by side); 'within 10%' when every per-rep ratio <= 1.10, 'over 10%' when every one "
                   "> 1.10, else 'within noise'; n/a with fewer than 3 reps",
           "limit": FEATURE_LIMIT, "pairs": []}
    for plain in configs:
        m = re.match(r"spliced-splice-t(\d+)$", plain)
        if not m:
            continue
        present = [(key, short, what, f"spliced-{key}-t{m.group(1)}") for key, short, what in FEATURES
                   if f"spliced-{key}-t{m.group(1)}" in configs]
        if not present:
            continue

        def vals(c, metric):
            return results.get(c, {}).get(metric, {})

        def cell(c, metric, nd):
            return fmt_spread(spread(vals(c, metric).values()), nd)

        def sys_per(c):
            return syscalls.get(c, {}).get("short", {}).get("per")

        for n in clients:
            cpu_m, cps_m = f"connect{n}_cpu_us_per_conn", f"connect{n}_conns_per_sec"
            sp_plain = sys_per(plain)
            rows = [["plain", plain, cell(plain, cpu_m, 1), cell(plain, cps_m, 0), "1.00x", "-", "(reference)",
                     fmt(sp_plain, 2)]]
            for key, short, what, c in present:
                a, b = vals(c, cpu_m), vals(plain, cpu_m)
                per_rep = [a[r] / b[r] for r in sorted(set(a) & set(b)) if a[r] is not None and b[r] not in (None, 0)]
                sa, sb = spread(a.values()), spread(b.values())
                ratio = sa[1] / sb[1] if sa and sb and sb[1] else None
                v = feature_verdict(per_rep)
                sp = sys_per(c)
                differ = {}
                if sp is not None and sp_plain is not None:
                    ca = syscalls[c]["short"]["by_call"]
                    cb = syscalls[plain]["short"]["by_call"]
                    for call in sorted(set(ca) | set(cb)):
                        d = ca.get(call, 0) - cb.get(call, 0)
                        if abs(d) >= 0.5:
                            differ[call] = round(d, 2)
                rng = "-" if not per_rep else (f"{min(per_rep):.2f}" if min(per_rep) == max(per_rep)
                                               else f"{min(per_rep):.2f}-{max(per_rep):.2f}")
                sys_cell = fmt(sp, 2)
                if sp is not None and sp_plain:
                    sys_cell += f" ({sp / sp_plain:.2f}x)"
                rows.append([short, c, cell(c, cpu_m, 1), cell(c, cps_m, 0),
                             "-" if ratio is None else f"{ratio:.2f}x", rng, v, sys_cell])
                doc["pairs"].append({
                    "feature": short, "what": what, "config": c, "plain": plain, "clients": int(n),
                    "cpu_us_per_conn": {"feature": spread_doc(a), "plain": spread_doc(b)},
                    "conns_per_sec": {"feature": spread_doc(vals(c, cps_m)), "plain": spread_doc(vals(plain, cps_m))},
                    "ratio_of_medians": ratio, "rep_ratios": per_rep,
                    "rep_ratio_min": min(per_rep) if per_rep else None,
                    "rep_ratio_max": max(per_rep) if per_rep else None,
                    "reps": len(per_rep), "verdict": v,
                    "syscalls_per_short_conn": {"feature": sp, "plain": sp_plain,
                                                "ratio": sp / sp_plain if sp is not None and sp_plain else None,
                                                "calls_that_differ": differ},
                })
            out.append(table(["feature", "configuration", f"x{n} CPU us/conn", f"x{n} conn/s",
                              "CPU / plain (medians)", "per-rep ratios", "verdict", "syscalls/short conn"], rows,
                             f"Features vs plain: spliced bench --mode connect x{n}, proxy CPU per "
                             f"connection, median (min-max over the reps), interleaved with {plain}. "
                             f"Verdict: within 10% only when every per-rep ratio <= 1.10; over 10% when every "
                             f"one > 1.10; else within noise."))
            for key, short, what, c in present:
                out.append(f"  {short} = {c}: {what}")
        for pair in doc["pairs"]:
            if pair["plain"] == plain and pair["clients"] == int(clients[0]) and pair["syscalls_per_short_conn"]["feature"] is not None:
                d = pair["syscalls_per_short_conn"]["calls_that_differ"]
                out.append(f"  {pair['feature']}: system calls per short connection vs plain: "
                           + (", ".join(f"{k} {v:+g}" for k, v in d.items()) if d else "the same calls"))
        out.append("")
    return doc
