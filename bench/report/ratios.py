"""Section: spliced-splice-tN against every other row, figure by figure:
the ratio of the medians, the per-rep range, the verdict, and the targets
(parity with the anchor row, HAProxy's splice mode; a clear lead over
the userspace copies; fewer system calls than the anchor), the rows'
roles read from bench/proxies.toml."""

import re

from proxies import field  # bench/proxies.py: the table of configurations

from .figures import BULK_TESTS
from .stats import table, verdict

# The feature rows (spliced-<feature>-tN) have a table of their own.
FEATURE_RE = re.compile(r"spliced-(sendproxy|sni)-t\d+$")


def compare(d, a, b, metric, exact):
    """a against b on one metric: ratio of medians, per-rep range, verdict; None without both."""
    va, vb = d.results.get(a, {}).get(metric, {}), d.results.get(b, {}).get(metric, {})
    ma, mb = d.medians.get(a, {}).get(metric), d.medians.get(b, {}).get(metric)
    if ma is None or mb in (None, 0):
        return None
    per_rep = [va[r] / vb[r] for r in sorted(set(va) & set(vb))
               if va[r] is not None and vb[r] not in (None, 0)]
    return {"ratio": ma / mb,
            "rep_ratio_min": min(per_rep) if per_rep else None,
            "rep_ratio_max": max(per_rep) if per_rep else None,
            "reps": len(per_rep),
            "verdict": verdict(metric, va.values(), vb.values(), per_rep, exact)}


def ratio_metrics(clients):
    """[(metric, label, exact)] in table order."""
    ms = [(f"bulk{t}_gbps", f"bulk {name} Gbit/s", False) for t, name in BULK_TESTS]
    ms += [(f"bulk{t}_cpu_s_per_gb", f"bulk {name} CPU/GB", False) for t, name in BULK_TESTS]
    for n in clients:
        ms += [(f"connect{n}_conns_per_sec", f"x{n} conn/s", False),
               (f"connect{n}_p99_ms", f"x{n} p99", False),
               (f"connect{n}_cpu_us_per_conn", f"x{n} CPU/conn", False),
               (f"connect{n}_user_us_per_conn", f"x{n} user CPU/conn", False),
               (f"connect{n}_kernel_us_per_conn", f"x{n} kernel CPU/conn", False)]
    ms += [("ka_req_per_sec", "keep-alive req/s", False), ("ka_cpu_us_per_req", "keep-alive CPU/req", False),
           ("ka_user_us_per_req", "keep-alive user CPU/req", False),
           ("ka_kernel_us_per_req", "keep-alive kernel CPU/req", False),
           ("idle_rss_mib", "idle RSS", False), ("idle_fds", "idle fds", True),
           ("idle_pipes_added", "idle pipes added", True),
           ("sys_per_short_conn", "syscalls/short conn", True), ("sys_per_ka_req", "syscalls/ka req", True)]
    return ms


def pairs_of(configs):
    """(spliced-splice-tN, other): rows of the same N and rows without one."""
    pairs = []
    for a in configs:
        m = re.match(r"spliced-splice-t(\d+)$", a)
        if not m:
            continue
        for b in configs:
            if b in (a, "direct") or FEATURE_RE.match(b):
                continue
            bt = re.search(r"-t(\d+)$", b)
            if bt and bt.group(1) != m.group(1):
                continue
            pairs.append((a, b))
    return pairs


def target_of(a, b, metric, label, cmp):
    """(cell text, target record or None) of one comparison."""
    def rec(text, met):
        return {"pair": f"{a}/{b}", "target": text, "value": cmp["ratio"], "met": met}

    if field(b, "anchor", False):
        if metric.endswith("_gbps") and metric.startswith("bulk"):
            met = cmp["ratio"] >= 0.95
            return f">= 0.95x: {'met' if met else 'MISSED'}", rec(f"{label} median ratio >= 0.95", met)
        if metric.endswith("_cpu_s_per_gb"):
            met = cmp["ratio"] <= 1.05
            return f"<= 1.05x: {'met' if met else 'MISSED'}", rec(f"{label} median ratio <= 1.05", met)
        if metric == "sys_per_short_conn":
            met = cmp["ratio"] <= 0.9
            return f"<= 0.9x: {'met' if met else 'MISSED'}", rec(f"{label} <= 0.9x", met)
        if metric == "sys_per_ka_req":
            met = cmp["ratio"] <= 0.85
            return f"<= 0.85x: {'met' if met else 'MISSED'}", rec(f"{label} <= 0.85x", met)
    elif field(b, "copy") == "userspace" and metric.startswith("bulk"):
        if cmp["verdict"].startswith("n/a"):
            return "lead: n/a (<3 reps)", None
        if metric.endswith("_cpu_s_per_gb"):
            met = cmp["verdict"] == "ahead"
            return f"clear lead (ahead): {'met' if met else 'MISSED'}", rec(f"{label}: clear lead (ranges apart)", met)
        met = cmp["verdict"] != "behind"
        return f"not behind: {'met' if met else 'MISSED'}", rec(f"{label}: not behind", met)
    return "", None


def render(d, out):
    """The ratio table; returns (ratios, targets) for the JSON."""
    ratios, targets, rows = {}, [], []
    for a, b in pairs_of(d.configs):
        rr = {}
        for metric, label, exact in ratio_metrics(d.clients):
            cmp = compare(d, a, b, metric, exact)
            if cmp is None:
                continue
            rr[metric] = cmp
            target, rec = target_of(a, b, metric, label, cmp)
            if rec:
                targets.append(rec)
            lo, hi = cmp["rep_ratio_min"], cmp["rep_ratio_max"]
            rng = "-" if lo is None else (f"{lo:.2f}" if exact or lo == hi else f"{lo:.2f}-{hi:.2f}")
            rows.append([f"{a} / {b}", label, f"{cmp['ratio']:.2f}x", rng, cmp["verdict"], target])
        ratios[f"{a}/{b}"] = rr
    if rows:
        out.append(table(["pair (spliced / other)", "figure", "ratio of medians", "per-rep ratios", "verdict", "target"],
                         rows,
                         "Ratios, same run. verdict: ahead/behind only when the two per-rep ranges do not overlap "
                         "(exact counts: when they differ); parity when they overlap and every per-rep ratio is "
                         "within 0.95-1.05; else parity within noise. Reps are paired by number (interleaved)."))
        out.append("")
    return ratios, targets


def render_targets(targets, out):
    """The one-paragraph summary of the targets, met or missed."""
    if not targets:
        return
    missed = [t for t in targets if not t["met"]]
    out.append("Targets: bulk parity with HAProxy-splice (median ratio >= 0.95 Gbit/s, <= 1.05 CPU/GB); "
               "a clear lead over userspace copies (CPU/GB ranges apart, throughput not behind); system calls "
               "<= 0.9x HAProxy's per short connection and <= 0.85x per keep-alive request")
    out.append(f"  {len(targets) - len(missed)} met, {len(missed)} missed"
               + ("" if not missed else ": " + "; ".join(f"{t['pair']} {t['target']} ({t['value']:.2f}x)" for t in missed)))
    out.append("")
