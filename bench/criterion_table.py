#!/usr/bin/env python3
"""Print criterion results as a markdown table: median time and throughput.

Usage: bench/criterion_table.py GROUP_PREFIX [CPU_FILE]
  GROUP_PREFIX  e.g. "pool", "copy", "relay" (matched against group ids)
  CPU_FILE      optional tab-separated "case<TAB>cpu_s_per_gb[<TAB>...]" file written
                by the copy and relay benches (target/copy-cpu.txt, ...)
Reads target/criterion/**/new/{estimates,benchmark}.json.
"""
import json
import pathlib
import sys

root = pathlib.Path("target/criterion")
prefix = sys.argv[1]
cpu = {}
if len(sys.argv) > 2 and pathlib.Path(sys.argv[2]).exists():
    for line in pathlib.Path(sys.argv[2]).read_text().splitlines()[1:]:
        if "\t" in line:
            k, v = line.split("\t")[:2]
            cpu[k] = float(v)


def fmt_time(ns):
    for unit, div in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= div:
            return f"{ns / div:.3g} {unit}"
    return f"{ns:.3g} ns"


rows = []
for bench in sorted(root.glob("**/new/benchmark.json")):
    meta = json.loads(bench.read_text())
    full = meta["full_id"]
    if not full.startswith(prefix):
        continue
    est = json.loads((bench.parent / "estimates.json").read_text())
    median = est["median"]["point_estimate"]
    tput = ""
    thr = meta.get("throughput") or {}
    if "Bytes" in thr:
        tput = f"{thr['Bytes'] / median:.3f}"  # bytes per ns = GB/s
    rows.append((full, fmt_time(median), tput, cpu.get(full, "")))

print("| case | median time | GB/s | CPU s/GB |")
print("|---|---|---|---|")
for full, t, g, c in rows:
    c = f"{c:.3f}" if c != "" else ""
    print(f"| {full} | {t} | {g} | {c} |")
