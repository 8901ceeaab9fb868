"""The figures of one compare.sh run, from its run directory or from the
JSON a report wrote: both end as one Data, which the sections render."""

import json
import os

from .parse import connect_numbers, iperf_numbers, keepalive_numbers, load_json
from .stats import spread


class Data:
    """Everything the sections read.

    results[config][metric][rep] = value; stats and medians are their
    spread and median per metric; runs: one row per test run (the JSON's
    "runs"); syscalls[config]: syscalls.py's result; pool: the pool
    benches' raw figures, or None when the run had no pool test.
    """

    def __init__(self, meta, configs):
        self.meta = meta
        self.env = meta.get("env", {})
        self.configs = configs
        self.clients = self.env.get("CONN_CLIENTS", "16").split()
        self.results = {c: {} for c in configs}
        self.runs = []
        self.syscalls = {}
        self.failures = []
        self.pool = None

    def add(self, config, metric, rep, value):
        self.results[config].setdefault(metric, {})[rep] = value

    def finish(self):
        self.stats = {c: {m: spread(v.values()) for m, v in ms.items()} for c, ms in self.results.items()}
        self.medians = {c: {m: (sp[1] if sp else None) for m, sp in ms.items()} for c, ms in self.stats.items()}
        return self

    def get(self, c, m):
        """(min, median, max) of a configuration's metric, or None."""
        return self.stats.get(c, {}).get(m)


# ------------------------------------------------------------------ one run row -> figures

def add_run(d, row):
    """The figures of one run row (bulk, connect, keepalive or idle)."""
    k, rep, c = row["kind"], row.get("rep", 1), row["config"]
    if k == "bulk":
        t = row["test"]
        d.add(c, f"bulk{t}_gbps", rep, row.get("gbps"))
        d.add(c, f"bulk{t}_cpu_s_per_gb", rep, row.get("cpu_s_per_gb"))
    elif k == "connect":
        n = row["clients"]
        for m in ("conns_per_sec", "p50_ms", "p99_ms"):
            d.add(c, f"connect{n}_{m}", rep, row.get(m))
        d.add(c, f"connect{n}_cpu_us_per_conn", rep, row.get("cpu_us_per_conn"))
        d.add(c, f"connect{n}_user_us_per_conn", rep, row.get("user_us_per_conn"))
        cpu, user = row.get("cpu_us_per_conn"), row.get("user_us_per_conn")
        d.add(c, f"connect{n}_kernel_us_per_conn", rep, cpu - user if cpu is not None and user is not None else None)
        d.add(c, f"connect{n}_errors", rep, row.get("errors"))
        d.add(c, f"connect{n}_listen_overflows", rep, row.get("listen_overflows"))
    elif k == "keepalive":
        d.add(c, "ka_req_per_sec", rep, row.get("req_per_sec"))
        d.add(c, "ka_cpu_us_per_req", rep, row.get("cpu_us_per_req"))
        d.add(c, "ka_user_us_per_req", rep, row.get("user_us_per_req"))
        cpu, user = row.get("cpu_us_per_req"), row.get("user_us_per_req")
        d.add(c, "ka_kernel_us_per_req", rep, cpu - user if cpu is not None and user is not None else None)
    elif k == "idle":
        hold = row.get("hold") or {}
        st = row.get("state") or {}
        base = row.get("baseline") or {}
        held = hold.get("ok")
        d.add(c, "idle_held", rep, held)
        rss = st.get("rss_kib")
        d.add(c, "idle_rss_mib", rep, rss / 1024 if rss is not None else None)
        per = None
        if held and rss is not None and base.get("rss_kib") is not None:
            per = (rss - base["rss_kib"]) / held
        d.add(c, "idle_kib_per_conn", rep, per)
        d.add(c, "idle_fds", rep, st.get("fds"))
        d.add(c, "idle_pipes", rep, st.get("pipes"))
        d.add(c, "idle_pipes_added", rep,
              st["pipes"] - base["pipes"] if st.get("pipes") is not None and base.get("pipes") is not None else None)
        pool_pipes = None
        if "pipepool_live" in st.get("metrics", {}):
            pool_pipes = st["metrics"]["pipepool_live"]
        elif "PipesUsed" in st.get("haproxy_info", {}):
            pool_pipes = st["haproxy_info"]["PipesUsed"] + st["haproxy_info"].get("PipesFree", 0)
        d.add(c, "idle_pool_pipes", rep, pool_pipes)


def add_syscalls(d, config, res):
    d.syscalls[config] = res
    for kind, metric in (("short", "sys_per_short_conn"), ("keepalive", "sys_per_ka_req")):
        if kind in res:
            d.add(config, metric, 1, res[kind]["per"])


# ------------------------------------------------------------------ from a run directory

def measure(run, r, clk):
    """A raw.jsonl record -> (run row, failure or None), reading the tool's file."""
    k, rep = r["kind"], r.get("rep", 1)
    if k == "bulk":
        g, nbytes, cpu, cpg, retr, err = iperf_numbers(
            os.path.join(run, r["file"]), r["cpu_before"], r["cpu_after"], clk)
        row = dict(r, gbps=g, bytes=nbytes, cpu_s=cpu, cpu_s_per_gb=cpg, retransmits=retr, error=err)
        return row, (f"{r['config']} bulk {r['test']} rep {rep}: {err}" if err else None)
    if k == "connect":
        n, err = connect_numbers(os.path.join(run, r["file"]))
        c = r["clients"]
        cpu_us = None
        if n and r["cpu_before"] is not None and r["cpu_after"] is not None and n["connections"]:
            cpu_us = (r["cpu_after"] - r["cpu_before"]) / clk / n["connections"] * 1e6
        user_us = None
        if n and r.get("user_before") is not None and r.get("user_after") is not None and n["connections"]:
            user_us = (r["user_after"] - r["user_before"]) / clk / n["connections"] * 1e6
        row = dict(r, **(n or {}), cpu_us_per_conn=cpu_us, user_us_per_conn=user_us, error=err)
        if err:
            return row, f"{r['config']} connect x{c} rep {rep}: {err}"
        if n["errors"]:
            return row, (f"{r['config']} connect x{c} rep {rep}: {n['errors']} errors "
                         f"({n['mismatches']} mismatches): {n['error_samples'][:2]}")
        return row, None
    if k == "keepalive":
        n, err = keepalive_numbers(os.path.join(run, r["file"]), r["cpu_before"], r["cpu_after"], clk)
        user_us = None
        if n and r.get("user_before") is not None and r.get("user_after") is not None and n["requests"]:
            user_us = (r["user_after"] - r["user_before"]) / clk / n["requests"] * 1e6
        row = dict(r, **(n or {}), user_us_per_req=user_us, error=err)
        return row, (f"{r['config']} keep-alive rep {rep}: {err}" if err else None)
    if k == "idle":
        held = (r.get("hold") or {}).get("ok")
        if held is None:
            return r, f"{r['config']} idle rep {rep}: the holder reported nothing"
        if held < r["conns"]:
            return r, f"{r['config']} idle rep {rep}: held {held}/{r['conns']} (errors {(r.get('hold') or {}).get('errors')})"
        return r, None
    raise ValueError(f"not a run record: {k}")


def from_run(run):
    """Data of RUN_DIR (meta.json, raw.jsonl and the files they name)."""
    from .pool import criterion_estimates, go_bench

    meta = load_json(os.path.join(run, "meta.json")) or {}
    clk = meta.get("clk_tck", 100)
    recs = []
    with open(os.path.join(run, "raw.jsonl")) as f:
        for line in f:
            line = line.strip()
            if line:
                recs.append(json.loads(line))

    configs = meta.get("env", {}).get("CONFIGS", "").split()
    seen = []
    for r in recs:
        c = r.get("config")
        if c and c not in seen:
            seen.append(c)
    d = Data(meta, [c for c in configs if c in seen] + [c for c in seen if c not in configs])

    for r in recs:
        if r["kind"] in ("bulk", "connect", "keepalive", "idle"):
            row, failure = measure(run, r, clk)
            d.runs.append(row)
            add_run(d, row)
            if failure:
                d.failures.append(failure)
        elif r["kind"] == "syscalls":
            res = r.get("result") or {}
            add_syscalls(d, r["config"], res)
            if res.get("error"):
                d.failures.append(f"{r['config']} syscalls: {res['error']}")

    rust = next((r for r in recs if r["kind"] == "pool-rust"), None)
    gorec = next((r for r in recs if r["kind"] == "pool-go"), None)
    if rust or gorec:
        ests = criterion_estimates(rust.get("criterion_dir", ""), rust.get("marker")) \
            if rust and rust.get("rc") == 0 else {}
        gom, goruns = go_bench(os.path.join(run, gorec["log"])) if gorec and gorec.get("log") else ({}, {})
        d.pool = {"pipepool_criterion_ns": ests, "go_median_ns_per_op": gom, "go_runs": goruns}
    return d.finish()


# ------------------------------------------------------------------ from a report's JSON

def from_json(path):
    """Data of a compare-STAMP.json: its run rows, system calls and pool
    figures, without the run directory."""
    doc = load_json(path)
    if doc is None:
        raise SystemExit(f"report.py: {path}: not a readable JSON file")
    d = Data(doc.get("meta", {}), doc.get("configs", []))
    for row in doc.get("runs", []):
        d.runs.append(row)
        add_run(d, row)
    for config, res in doc.get("syscalls", {}).items():
        add_syscalls(d, config, res)
    d.failures = list(doc.get("failures", []))
    pool = doc.get("pool") or {}
    if pool:
        d.pool = {k: pool.get(k, {}) for k in ("pipepool_criterion_ns", "go_median_ns_per_op", "go_runs")}
    return d.finish()
