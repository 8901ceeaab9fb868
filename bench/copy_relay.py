#!/usr/bin/env python3
"""The cases, the estimate and the report of bench/copy_relay.sh (standard library only).

  copy_relay.py cases [--default]              every known case id (or the default set), one a line
  copy_relay.py estimate W M REPS CCS TIMES CASE... estimated seconds (TIMES own: the benches' own)
  copy_relay.py collect KEY=VALUE...           one JSON line for raw.jsonl (after one bench run)
  copy_relay.py summary < JSON_LINE            that line for the log
  copy_relay.py report RAW_JSONL META_JSON OUT_MD OUT_JSON   tables on stdout, markdown, JSON

Units: GB/s = 1e9 bytes per second, from criterion's median time per
iteration (`new/estimates.json`) and the bytes per iteration
(`benchmark.json`); CPU s/GB = CPU seconds per 1e9 bytes, as the benches
write them (target/copy-cpu.txt: the copying thread; target/relay-cpu.txt:
the relay's thread, and the whole process; target/files-cpu.txt: the whole
process minus the sink's or feeder's thread).

Spreads, ratios and verdicts use bench/report.py's helpers (the rule of
bench/compare.sh): median (min-max) over the repetitions; a ratio is the
ratio of the medians with the range of the per-rep ratios (rep i against
rep i); "ahead"/"behind" only when the two per-rep ranges do not overlap,
"parity" when they overlap and every per-rep ratio is within 0.95-1.05,
else "parity within noise"; fewer than 3 reps: "n/a".
"""

import glob
import json
import math
import os
import statistics
import sys

sys.dont_write_bytecode = True  # no bench/__pycache__ from the import below
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fmt, fmt_spread, spread, spread_doc, verdict  # noqa: E402

SIZES = {"64KiB": 64 << 10, "1MiB": 1 << 20, "64MiB": 64 << 20, "1GiB": 1 << 30}
SIZE_LABEL = {"64KiB": "64 KiB", "1MiB": "1 MiB", "64MiB": "64 MiB", "1GiB": "1 GiB"}

COPY_ROUTES = [("tcp_to_tcp", "TCP -> TCP"), ("tcp_to_file", "TCP -> file")]
COPY_SIZES = ["64KiB", "1MiB", "64MiB"]
COPY_VARIANTS = [("pipepool", "pipepool (splice)"), ("std_io_copy", "std::io::copy"),
                 ("pipepool_buffered", "pipepool buffered (64 KiB)")]
COPY_BASELINE = "std_io_copy"

RELAY_STREAMS = [1, 4, 64]
RELAY_SIZES = ["64KiB", "1MiB", "64MiB"]
# pipepool_hold exists only in revisions before 5e07449 (hold_pipe removed);
# the driver skips a case its binary does not list.
RELAY_VARIANTS = [("pipepool", "pipepool"), ("tokio_64k", "tokio 64 KiB"), ("tokio_8k", "tokio 8 KiB (default)"),
                  ("pipepool_hold", "pipepool, pipe held")]
RELAY_BASELINE = "tokio_64k"

# files/*: pipepool::tokio's file paths against tokio::io::copy (not in the
# default set: CASES='^files/' selects them; the 1 GiB ones exist only with
# PIPEPOOL_BENCH_1GIB=1 in the environment).
FILES_ROUTES = [("file_to_tcp", "file -> TCP", ["64KiB", "1MiB", "64MiB", "1GiB"]),
                ("tcp_to_file", "TCP -> file", ["1MiB", "64MiB"])]
FILES_VARIANTS = {"file_to_tcp": [("pipepool_sendfile", "pipepool::tokio::sendfile"),
                                  ("tokio_io_copy", "tokio::io::copy"),
                                  ("spawn_blocking_std_copy", "spawn_blocking(std::io::copy)")],
                  "tcp_to_file": [("pipepool_copy_to_file", "pipepool::tokio::copy_to_file"),
                                  ("tokio_io_copy", "tokio::io::copy")]}
FILES_BASELINE = "tokio_io_copy"
FILES_CPU_TARGET = 0.5

# Section targets (at 1 MiB and above, from the medians).
COPY_CPU_TARGET = 0.6
RELAY_TPUT_TARGET = 1.3
RELAY_CPU_TARGET = 0.6

# Nominal GB/s for the estimate only (the order of section 2 and 3's old
# single runs; a slower machine takes longer).
NOMINAL = {
    ("copy", "pipepool"): 1.5, ("copy", "std_io_copy"): 1.4, ("copy", "pipepool_buffered"): 1.4,
    ("relay", "pipepool"): 2.3, ("relay", "pipepool_hold"): 2.3, ("relay", "tokio_64k"): 1.9,
    ("relay", "tokio_8k"): 1.0,
    ("files", "pipepool_sendfile"): 2.0, ("files", "tokio_io_copy"): 1.0,
    ("files", "spawn_blocking_std_copy"): 2.0, ("files", "pipepool_copy_to_file"): 1.5,
}
# Seconds per bench process besides warm-up and measurement (start, socket
# and runtime setup, criterion's analysis, exit).
OVERHEAD = {"copy": 0.7, "relay": 1.0, "files": 1.0}


def all_cases():
    out = []
    for route, _ in COPY_ROUTES:
        for size in COPY_SIZES:
            for v, _ in COPY_VARIANTS:
                out.append(f"copy/{route}/{v}/{size}")
    for n in RELAY_STREAMS:
        for size in RELAY_SIZES:
            for v, _ in RELAY_VARIANTS:
                out.append(f"relay/{n}/{v}/{size}")
    for route, _, sizes in FILES_ROUTES:
        for size in sizes:
            for v, _ in FILES_VARIANTS[route]:
                out.append(f"files/{route}/{v}/{size}")
    return out


def default_cases():
    """What a run measures unless CASES says otherwise: copy at 1 MiB and
    64 MiB, relay with 1, 4 and 64 streams at 1 MiB and 64 MiB, every
    variant the binary has."""
    return [c for c in all_cases() if not c.endswith("/64KiB") and not c.startswith("files/")]


def parse_case(case):
    """(kind, row, variant, size, bytes per iteration): row is the route or the stream count."""
    kind, row, variant, size = case.split("/")
    nbytes = SIZES[size] * (int(row) if kind == "relay" else 1)
    return kind, row, variant, size, nbytes


# ------------------------------------------------------------------ estimate

def case_seconds(case, w, m):
    """Criterion's time for one case at the nominal speed: warm-up, then 10
    samples (linear 1..10 x d iterations, or flat when that would take over
    twice the measurement time), plus the process's own overhead."""
    kind, _, variant, _, nbytes = parse_case(case)
    t = nbytes / (NOMINAL.get((kind, variant), 1.0) * 1e9)
    warm = 1.5 * w + t
    if 55 * t > 2 * m:
        meas = 10 * math.ceil(m / (10 * t)) * t
    else:
        meas = 55 * math.ceil(m / (55 * t)) * t
    return OVERHEAD[kind] + warm + meas


def own_times(case):
    """(warm-up, measurement) seconds a bench that ignores the command line's
    times uses (revisions before bench/copy_relay.sh)."""
    kind, _, _, _, nbytes = parse_case(case)
    return (0.1, 10.0) if kind == "relay" and nbytes >= 256 << 20 else (0.5, 3.0)


def estimate(w, m, reps, ccs, times, cases):
    """Seconds: every case once per rep, every relay case once per
    congestion control; times "own": the bench's own times, not W and M."""
    total = 0.0
    for c in cases:
        cw, cm = own_times(c) if times == "own" else (w, m)
        total += case_seconds(c, cw, cm) * (ccs if c.startswith("relay/") else 1)
    return total * reps


# ------------------------------------------------------------------ collect

def criterion_result(home, case, since):
    """(ns per iteration: criterion's median, bytes per iteration) of `case`
    written after `since`, or (None, None)."""
    for path in glob.glob(os.path.join(home, "**", "new", "benchmark.json"), recursive=True):
        try:
            with open(path) as f:
                meta = json.load(f)
        except (OSError, ValueError):
            continue
        if meta.get("full_id") != case:
            continue
        est_path = os.path.join(os.path.dirname(path), "estimates.json")
        if os.path.getmtime(est_path) < since:
            return None, None  # stale: this run wrote nothing
        with open(est_path) as f:
            est = json.load(f)
        return est["median"]["point_estimate"], (meta.get("throughput") or {}).get("Bytes")
    return None, None


def cpu_values(path, case):
    """(CPU s/GB, whole process CPU s/GB or None) of `case` in a bench's CPU file."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return None, None
    for line in lines:
        cols = line.split("\t")
        if cols[0] != case:
            continue
        vals = []
        for c in cols[1:3]:
            try:
                v = float(c)
            except ValueError:
                v = None
            vals.append(None if v is None or math.isnan(v) else v)
        return (vals + [None, None])[:2]
    return None, None


def collect(args):
    kv = dict(a.split("=", 1) for a in args)
    case = kv["case"]
    since = float(kv["since"])
    ns, nbytes = criterion_result(kv["criterion_home"], case, since)
    cpu, proc_cpu = cpu_values(kv["cpu_file"], case) if os.path.exists(kv["cpu_file"]) \
        and os.path.getmtime(kv["cpu_file"]) >= since else (None, None)
    rec = {"rep": int(kv["rep"]), "rev": kv["rev"], "cc": kv.get("cc") or None, "case": case,
           "gbps": nbytes / ns if ns and nbytes else None, "ns_per_iter": ns, "bytes_per_iter": nbytes,
           "cpu_s_per_gb": cpu, "process_cpu_s_per_gb": proc_cpu, "exit": int(kv["exit"]), "log": kv["log"]}
    if rec["exit"] != 0 or rec["gbps"] is None or rec["cpu_s_per_gb"] is None:
        why = {124: " (timed out: CASE_TIMEOUT)", 137: " (killed after the timeout)"}.get(rec["exit"], "")
        rec["error"] = f"exit {rec['exit']}{why}, GB/s {'found' if rec['gbps'] else 'missing'}, " \
                       f"CPU {'found' if rec['cpu_s_per_gb'] is not None else 'missing'}, " \
                       f"log {os.path.basename(kv['log'])}"
    return rec


# ------------------------------------------------------------------ report

def fmt_ratio(r):
    return "-" if r is None else f"{r:.2f}x"


def ratio_cell(a_vals, b_vals, metric):
    """(text, doc) of a / b: ratio of the medians, per-rep range, verdict."""
    a_med = statistics.median([v for v in a_vals.values() if v is not None]) \
        if any(v is not None for v in a_vals.values()) else None
    b_med = statistics.median([v for v in b_vals.values() if v is not None]) \
        if any(v is not None for v in b_vals.values()) else None
    ratio = a_med / b_med if a_med is not None and b_med else None
    rr = [a_vals[r] / b_vals[r] for r in a_vals
          if a_vals[r] is not None and b_vals.get(r)]
    v = verdict(metric, list(a_vals.values()), list(b_vals.values()), rr)
    rng = f"{min(rr):.2f}-{max(rr):.2f}" if rr else "-"
    text = f"{fmt_ratio(ratio)}, {rng}, " + (f"**{v}**" if v in ("ahead", "behind") else v)
    doc = {"ratio_of_medians": ratio, "per_rep_ratios": rr, "per_rep_min": min(rr) if rr else None,
           "per_rep_max": max(rr) if rr else None, "verdict": v}
    return text, doc


def by_rep(records, rev, cc, case, field):
    return {r["rep"]: r.get(field) for r in records if r["rev"] == rev and r["cc"] == cc and r["case"] == case}


def md_table(headers, rows):
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def section(records, kind, rev, cc, doc):
    """Markdown lines of one section (copy, or relay under one congestion control)."""
    if kind == "copy":
        rows_of = [(route, size, f"{label}, {SIZE_LABEL[size]}") for route, label in COPY_ROUTES
                   for size in COPY_SIZES]
        variants, base, base_label = COPY_VARIANTS, COPY_BASELINE, "std::io::copy"
    elif kind == "files":
        rows_of = [(route, size, f"{label}, {SIZE_LABEL[size]}") for route, label, sizes in FILES_ROUTES
                   for size in sizes]
        variants, base, base_label = None, FILES_BASELINE, "tokio::io::copy"
    else:
        rows_of = [(str(n), size, f"{n} x {SIZE_LABEL[size]}") for n in RELAY_STREAMS for size in RELAY_SIZES]
        variants, base, base_label = RELAY_VARIANTS, RELAY_BASELINE, "tokio 64 KiB"
    lines, rows, targets = [], [], []
    for row, size, row_label in rows_of:
        first = True
        base_case = f"{kind}/{row}/{base}/{size}"
        b_g = by_rep(records, rev, cc, base_case, "gbps")
        b_c = by_rep(records, rev, cc, base_case, "cpu_s_per_gb")
        for v, vlabel in (FILES_VARIANTS[row] if kind == "files" else variants):
            case = f"{kind}/{row}/{v}/{size}"
            g = by_rep(records, rev, cc, case, "gbps")
            c = by_rep(records, rev, cc, case, "cpu_s_per_gb")
            if not g:
                continue
            entry = {"case": case, "rev": rev, "cc": cc, "gbps": spread_doc(g), "cpu_s_per_gb": spread_doc(c)}
            if kind == "relay":
                entry["process_cpu_s_per_gb"] = spread_doc(by_rep(records, rev, cc, case, "process_cpu_s_per_gb"))
            if v == base or not b_g:
                g_txt = c_txt = "1" if v == base else "-"
            else:
                g_txt, entry["gbps_vs_" + base] = ratio_cell(g, b_g, "x_gbps")
                c_txt, entry["cpu_vs_" + base] = ratio_cell(c, b_c, "cpu_s_per_gb")
            doc["cases"].append(entry)
            rows.append([row_label if first else "", vlabel, fmt_spread(spread(g.values())),
                         fmt_spread(spread(c.values()), 3), g_txt, c_txt])
            first = False
            if v.startswith("pipepool") and v != "pipepool_buffered" and size != "64KiB" and b_g \
                    and "cpu_vs_" + base in entry:
                gr = entry["gbps_vs_" + base]["ratio_of_medians"]
                cr = entry["cpu_vs_" + base]["ratio_of_medians"]
                if kind in ("copy", "files"):
                    cap = COPY_CPU_TARGET if kind == "copy" else FILES_CPU_TARGET
                    met = cr is not None and cr <= cap
                    why = f"CPU {fmt_ratio(cr)} (<= {cap}x)"
                else:
                    by_t = gr is not None and gr >= RELAY_TPUT_TARGET
                    by_c = cr is not None and cr <= RELAY_CPU_TARGET
                    met = by_t or by_c
                    why = f"throughput {fmt_ratio(gr)} (>= {RELAY_TPUT_TARGET}x), CPU {fmt_ratio(cr)} " \
                          f"(<= {RELAY_CPU_TARGET}x)" + (": " + " and ".join(
                              w for w, ok in (("throughput", by_t), ("CPU", by_c)) if ok) if met else "")
                targets.append([row_label, why, "met" if met else "**missed**"])
                doc["targets"].append({"section": kind, "rev": rev, "cc": cc, "case": case,
                                       "gbps_ratio": gr, "cpu_ratio": cr, "met": met})
    if not rows:
        return []
    lines.append(md_table(["case", "variant", "GB/s", "CPU s/GB", f"GB/s vs {base_label}",
                           f"CPU s/GB vs {base_label}"], rows))
    if targets:
        lines.append("")
        if kind == "copy":
            lines.append(f"Target (section 2): at 1 MiB and above, pipepool (splice) at most "
                         f"{COPY_CPU_TARGET}x the CPU per GB of std::io::copy (ratio of the medians):")
        elif kind == "files":
            lines.append(f"Target (files): at 1 MiB and above, pipepool at most {FILES_CPU_TARGET}x the CPU "
                         f"per GB of tokio::io::copy (ratio of the medians):")
        else:
            lines.append(f"Target (section 3): at 1 MiB and above, pipepool at least {RELAY_TPUT_TARGET}x the "
                         f"throughput or at most {RELAY_CPU_TARGET}x the CPU per GB of tokio 64 KiB "
                         f"(ratios of the medians):")
        lines.append("")
        lines.append(md_table(["case", "pipepool / " + base_label, "target"], targets))
        met = sum(1 for t in targets if t[2] == "met")
        lines.append("")
        lines.append(f"Met in {met} of {len(targets)} cases.")
    return lines


def before_after(records, base_rev, doc):
    rows = []
    keys = sorted({(r["cc"] or "", r["case"]) for r in records if r["rev"] == "base"},
                  key=lambda k: (all_cases().index(k[1]) if k[1] in all_cases() else 999, k[0]))
    for cc, case in keys:
        cc = cc or None
        now_g, base_g = by_rep(records, "now", cc, case, "gbps"), by_rep(records, "base", cc, case, "gbps")
        now_c, base_c = (by_rep(records, "now", cc, case, "cpu_s_per_gb"),
                         by_rep(records, "base", cc, case, "cpu_s_per_gb"))
        if not now_g or not base_g:
            continue
        g_txt, g_doc = ratio_cell(now_g, base_g, "x_gbps")
        c_txt, c_doc = ratio_cell(now_c, base_c, "cpu_s_per_gb")
        label = f"`{case}`" + (f" ({cc})" if cc else "")
        rows.append([label, fmt_spread(spread(base_g.values())), fmt_spread(spread(now_g.values())), g_txt,
                     fmt_spread(spread(base_c.values()), 3), fmt_spread(spread(now_c.values()), 3), c_txt])
        doc["before_after"].append({"case": case, "cc": cc, "gbps_base": spread_doc(base_g),
                                    "gbps_now": spread_doc(now_g), "gbps_now_vs_base": g_doc,
                                    "cpu_base": spread_doc(base_c), "cpu_now": spread_doc(now_c),
                                    "cpu_now_vs_base": c_doc})
    if not rows:
        return []
    return [md_table(["case", f"GB/s at {base_rev}", "GB/s now", "now / before", f"CPU s/GB at {base_rev}",
                      "CPU s/GB now", "now / before"], rows)]


def report(raw_path, meta_path, out_md, out_json):
    with open(raw_path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    with open(meta_path) as f:
        meta = json.load(f)
    doc = {"meta": meta, "cases": [], "targets": [], "before_after": [], "runs": records}
    reps = meta.get("reps")
    run_line = (f"Run: {meta.get('date')}, {meta.get('cpu')} ({meta.get('ncpu')} CPUs), Linux {meta.get('kernel')}, "
                f"{meta.get('rev')}, `bench/copy_relay.sh` (REPS={reps}, W={meta.get('w')} s, M={meta.get('m')} s, "
                f"{meta.get('seconds', 0) / 60:.0f} min). Median (min-max) over the {reps} interleaved repetitions; "
                "each ratio: ratio of the medians, range of the per-rep ratios, verdict (bench/README.md).")
    out = [f"# copy/* and relay/*: {meta.get('date')}", "", run_line, ""]
    failed = [r for r in records if r.get("error")]
    if failed:
        out.append(f"**{len(failed)} bench runs failed** (their values are left out; logs in the run "
                   "directory's `logs/`): "
                   + "; ".join(f"rep {r['rep']} {r['rev']} `{r['case']}`{' (' + r['cc'] + ')' if r['cc'] else ''}: "
                               f"{r['error']}" for r in failed[:5]) + ("; ..." if len(failed) > 5 else ""))
        out.append("")
    ccs = [None if c == "default" else c for c in meta.get("ccs", ["default"])]
    cpus = str(meta.get("relay_cpus"))
    pinned = ("the bench pins the relay thread to the first CPU and the client, sink and main to the second"
              if "," in cpus or "-" in cpus else "one CPU: the bench pins nothing")
    for rev in ["now"] + (["base"] if meta.get("base") else []):
        at = f" at {meta['base']} (BASE)" if rev == "base" else ""
        copy = section(records, "copy", rev, None, doc)
        if copy:
            out += [f"## 2. The synchronous copy: `copy/*`{at}", "",
                    f"Each case its own process, `taskset -c {meta.get('copy_cpu')}` (copying thread, feeder "
                    "and sink on one CPU); CPU s/GB: the copying thread's (`CLOCK_THREAD_CPUTIME_ID`).", ""] \
                + copy + [""]
        relay_out = []
        for cc in ccs:
            lines = section(records, "relay", rev, cc, doc)
            if lines:
                name = f"`{cc}` (`RELAY_CC={cc}`)" if cc else f"the system default (`{meta.get('default_cc')}`)"
                relay_out += [f"**Congestion control: {name}**", ""] + lines + [""]
        if relay_out:
            out += [f"## 3. The async relay: `relay/*`{at}", "",
                    f"Each case its own process, `taskset -c {cpus}`: {pinned}; CPU s/GB: the relay thread's "
                    "utime + stime (the JSON also has the whole process's).", ""] + relay_out
        files = section(records, "files", rev, None, doc)
        if files:
            out += [f"## Files with the async API: `files/*`{at}", "",
                    f"Each case its own process, `taskset -c {meta.get('copy_cpu')}` (one tokio worker, the "
                    "sink or feeder thread, the blocking pool on one CPU); CPU s/GB: the whole process's "
                    "minus the sink's or feeder's thread.", ""] + files + [""]
    if meta.get("base"):
        ba = before_after(records, meta["base"], doc)
        if ba:
            out += [f"## Before ({meta['base']}) and after ({meta.get('rev')})", "",
                    f"The same cases built at {meta['base']}, run beside each case of this revision "
                    "(before, after, within every rep). Verdicts from the side of now."
                    + (f" The benches at {meta['base']} ignore --warm-up-time and --measurement-time: they ran "
                       "with their own 0.5 s + 3 s (0.1 s + 10 s for relay rounds of 256 MiB and more)."
                       if meta.get("base_times") == "own" else ""), ""] + ba + [""]
    text = "\n".join(out).rstrip() + "\n"
    print(text)
    with open(out_md, "w") as f:
        f.write(text)
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1)


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    a = sys.argv[2:]
    if cmd == "cases":
        print("\n".join(default_cases() if a[:1] == ["--default"] else all_cases()))
    elif cmd == "estimate":
        print(f"{estimate(float(a[0]), float(a[1]), int(a[2]), int(a[3]), a[4], a[5:]):.0f}")
    elif cmd == "collect":
        print(json.dumps(collect(a)))
    elif cmd == "summary":
        r = json.loads(sys.stdin.read())
        print(r["error"] if r.get("error") else f"{r['gbps']:.2f} GB/s, {r['cpu_s_per_gb']:.3f} CPU s/GB")
    elif cmd == "report":
        report(*a[:4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
