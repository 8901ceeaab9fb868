"""The whole report: the sections in order, then the JSON."""

import json

from . import features, figures, fresh, pool, ratios, syscall_counts


def render(d):
    """(text lines, the JSON document) of one run's Data."""
    out = []
    figures.heading(d, out)
    figures.render(d, out)
    syscall_counts.render(d, out)
    ratio_doc, targets = ratios.render(d, out)
    fresh.render(d, out)
    features_doc = features.render(d, out)
    pool_doc = pool.render(d, out)
    ratios.render_targets(targets, out)
    if d.failures:
        out.append("Problems during the run:")
        out += [f"  - {f}" for f in d.failures]
        out.append("")
    doc = {
        "meta": d.meta,
        "units": {"gbps": "1e9 bit/s (iperf3 end.sum_received)", "cpu_s_per_gb": "proxy utime+stime seconds per 1e9 bytes",
                  "latency": "ms, connect to last echoed byte", "rss": "MiB (VmRSS)",
                  "syscalls": "calls per unit, strace -f -c, (2N - N) / N"},
        "configs": d.configs,
        "stats": {c: {m: ({"min": sp[0], "median": sp[1], "max": sp[2]} if sp else None) for m, sp in ms.items()}
                  for c, ms in d.stats.items()},
        "median": d.medians,
        "values": {c: {m: [v.get(r) for r in sorted(v)] for m, v in ms.items()} for c, ms in d.results.items()},
        "ratios": ratio_doc,
        "targets": targets,
        "syscalls": d.syscalls,
        "features_vs_plain": features_doc,
        "pool": pool_doc,
        "failures": d.failures,
        "runs": d.runs,
    }
    return out, doc


def write_json(doc, path):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1, default=str)
