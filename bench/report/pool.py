"""Section: the pool alone: pipepool's get+put (criterion) against Go's
internal/poll splice pipe pool (BenchmarkSplicePipe*)."""

import glob
import os
import re
import statistics

from .parse import load_json
from .stats import fmt, table


def criterion_estimates(root, marker):
    """{bench id: {median, lo, hi} ns} for every criterion estimate written after marker."""
    out = {}
    since = os.path.getmtime(marker) if marker and os.path.exists(marker) else 0
    for path in glob.glob(os.path.join(root, "**", "new", "estimates.json"), recursive=True):
        if os.path.getmtime(path) < since:
            continue
        doc = load_json(path)
        if not doc:
            continue
        bench_id = os.path.relpath(os.path.dirname(os.path.dirname(path)), root)
        bench_id = bench_id.replace(os.sep, "/")
        m = doc.get("median", {})
        ci = m.get("confidence_interval", {})
        out[bench_id] = {"median": m.get("point_estimate"), "lo": ci.get("lower_bound"), "hi": ci.get("upper_bound")}
    return out


def go_bench(log_path):
    """{benchmark: median ns/op} over -count runs."""
    runs = {}
    try:
        with open(log_path) as f:
            for line in f:
                m = re.match(r"^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op", line)
                if m:
                    runs.setdefault(m.group(1), []).append(float(m.group(2)))
    except OSError:
        pass
    return {k: statistics.median(v) for k, v in runs.items()}, runs


def pick(ests, want_parallel):
    """The pipepool get+put estimate to set against Go's (single or parallel)."""
    override = os.environ.get("POOL_BENCH_PARALLEL_ID" if want_parallel else "POOL_BENCH_ID")
    if override and override in ests:
        return override
    cands = []
    for k in ests:
        low = k.lower()
        par = any(w in low for w in ("parallel", "thread", "contend", "concurrent"))
        if par != want_parallel:
            continue
        if any(w in low for w in ("native", "create", "new_pipe", "without", "nopool", "no_pool", "raw")):
            continue
        score = ("get" in low) + ("put" in low) + ("pool" in low)
        cands.append((-score, len(k), k))
    return sorted(cands)[0][2] if cands else None


def render(d, out):
    """The pool table and the Go / pipepool ratios; returns the JSON's "pool"."""
    if d.pool is None:
        return {}
    ests, gom, goruns = d.pool["pipepool_criterion_ns"], d.pool["go_median_ns_per_op"], d.pool["go_runs"]
    pool = {"pipepool_criterion_ns": ests, "go_median_ns_per_op": gom, "go_runs": goruns}
    rows = [[f"pipepool {k}", fmt(v["median"], 2), f"{fmt(v['lo'], 2)}-{fmt(v['hi'], 2)} (95% CI)"]
            for k, v in sorted(ests.items())]
    rows += [[f"go {k}", fmt(v, 2), f"{fmt(min(goruns[k]), 2)}-{fmt(max(goruns[k]), 2)} ({len(goruns[k])} runs)"]
             for k, v in sorted(gom.items())]
    single, par = pick(ests, False), pick(ests, True)
    for label, ours, theirs in (("one thread", single, "BenchmarkSplicePipe/SplicePipeWithPool"),
                                ("parallel", par, "BenchmarkSplicePipePoolParallel")):
        if ours and theirs in gom and ests[ours]["median"]:
            e = ests[ours]
            g = goruns[theirs]
            pool[label] = {"ratio": gom[theirs] / e["median"], "pair": [ours, theirs],
                           "range": [min(g) / e["hi"], max(g) / e["lo"]] if e["lo"] and e["hi"] else None}
    if rows:
        out.append(table(["pool get+put", "ns/op (median)", "spread"], rows,
                         "The pool alone: cargo bench -p pipepool --bench pool vs Go's internal/poll BenchmarkSplicePipe*"))
        for label in ("one thread", "parallel"):
            if label in pool:
                r = pool[label]
                rng = f" (range {r['range'][0]:.2f}-{r['range'][1]:.2f}: Go's slowest and fastest run against pipepool's 95% CI)" \
                    if r["range"] else ""
                out.append(f"Go / pipepool, {label}: {r['ratio']:.2f}x{rng}; {r['pair'][0]} vs {r['pair'][1]}")
        out.append("")
    else:
        out.append("pool: no results (see pool-rust.log / pool-go.log in the run directory)")
        out.append("")
    return pool
