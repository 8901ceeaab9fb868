#!/usr/bin/env python3
"""Helpers and the final report of bench/compare.sh (standard library only).

  report.py iperf-summary FILE CPU_BEFORE CPU_AFTER CLK_TCK   one line for the log
  report.py connect-summary FILE                              one line for the log
  report.py idle-summary HOLD_JSON STATE_JSON                 one line for the log
  report.py proc-state NAME PID METRICS_PORT HAPROXY_SOCK     JSON: RSS, fds, pipes, pool counters
  report.py report RUN_DIR OUT_JSON                           table on stdout, JSON, RUN_DIR/plot.dat

Units: Gbit/s = 1e9 bit/s as iperf3 reports it; GB = 1e9 bytes; CPU seconds
are the proxy process's utime+stime (all threads) from /proc/PID/stat.
"""

import glob
import json
import os
import re
import socket
import statistics
import sys
import urllib.request

BULK_TESTS = [("1", "1 stream"), ("4", "4 streams"), ("R", "reverse")]


# ------------------------------------------------------------------ parsing

def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def iperf_numbers(path, before, after, clk_tck):
    """(gbit/s, bytes, cpu seconds, cpu s/GB, retransmits, error) of one iperf3 -J run."""
    doc = load_json(path)
    if doc is None:
        return None, None, None, None, None, "no JSON from iperf3"
    if doc.get("error"):
        return None, None, None, None, None, doc["error"]
    try:
        recv = doc["end"]["sum_received"]
        nbytes = int(recv["bytes"])
        gbps = recv["bits_per_second"] / 1e9
        retr = doc["end"].get("sum_sent", {}).get("retransmits")
    except (KeyError, TypeError):
        return None, None, None, None, None, "iperf3 JSON without end.sum_received"
    cpu = cpu_per_gb = None
    if before is not None and after is not None:
        cpu = (after - before) / clk_tck
        cpu_per_gb = cpu / (nbytes / 1e9) if nbytes else None
    return gbps, nbytes, cpu, cpu_per_gb, retr, None


def connect_numbers(path):
    """The parts of `spliced bench --mode connect --json` we use, or an error."""
    doc = load_json(path)
    if doc is None:
        return None, "no JSON from spliced bench"
    try:
        lat = doc["latency_us"]
        fails = doc.get("failures", {})
        return {
            "conns_per_sec": float(doc["conns_per_sec"]),
            "connections": int(doc["connections"]),
            "p50_ms": lat["p50"] / 1000.0,
            "p99_ms": lat["p99"] / 1000.0,
            "max_ms": lat["max"] / 1000.0,
            "errors": int(fails.get("errors", 0)),
            "mismatches": int(fails.get("mismatches", 0)),
            "error_samples": fails.get("samples", []),
        }, None
    except (KeyError, TypeError, ValueError) as e:
        return None, f"unexpected spliced bench JSON ({e})"


def proc_state(name, pid, metrics_port, sock):
    """RSS, fds by kind, and the proxy's own pool counters."""
    st = {"rss_kib": None, "fds": 0, "pipe_fds": 0, "socket_fds": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    st["rss_kib"] = int(line.split()[1])
                elif line.startswith("Threads:"):
                    st["threads"] = int(line.split()[1])
    except OSError as e:
        st["error"] = str(e)
        return st
    pipe_inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            st["fds"] += 1
            if link.startswith("pipe:"):
                st["pipe_fds"] += 1
                pipe_inodes.add(link)
            elif link.startswith("socket:"):
                st["socket_fds"] += 1
    except OSError as e:
        st["error"] = str(e)
    st["pipes"] = len(pipe_inodes)  # distinct pipes (a pooled pipe holds both ends)
    if name.startswith("spliced"):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
            st["metrics"] = {
                k: float(v) for k, v in re.findall(r"^((?:pipepool|spliced)_[a-z_]+(?:\{[^}]*\})?) (\S+)$", text, re.M)
                if k.startswith("pipepool_") or k.startswith("spliced_connections")
            }
        except Exception as e:  # reported, never fatal
            st["metrics_error"] = str(e)
    elif name.startswith("haproxy"):
        try:
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(3)
            s.connect(sock)
            s.sendall(b"show info\n")
            data = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
            s.close()
            info = {}
            for line in data.decode().splitlines():
                k, _, v = line.partition(": ")
                if k in ("PipesUsed", "PipesFree", "MaxPipes", "CurrConns", "Maxsock", "Ulimit-n", "Maxconn"):
                    info[k] = int(v) if v.isdigit() else v
            st["haproxy_info"] = info
        except OSError as e:
            st["haproxy_info_error"] = str(e)
    return st


# ------------------------------------------------------------------ helpers

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


# ------------------------------------------------------------------ pool benches

def criterion_estimates(root, marker):
    """{bench id: median ns} for every criterion estimate written after marker."""
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
        out[bench_id] = doc.get("median", {}).get("point_estimate")
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


# ------------------------------------------------------------------ report

def report(run, out_json):
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
    configs = [c for c in configs if c in seen] + [c for c in seen if c not in configs]

    results = {c: {} for c in configs}
    runs = []

    def add(config, metric, value):
        results[config].setdefault(metric, []).append(value)

    failures = []
    for r in recs:
        k = r["kind"]
        if k == "bulk":
            g, nbytes, cpu, cpg, retr, err = iperf_numbers(
                os.path.join(run, r["file"]), r["cpu_before"], r["cpu_after"], clk)
            t = r["test"]
            add(r["config"], f"bulk{t}_gbps", g)
            add(r["config"], f"bulk{t}_cpu_s_per_gb", cpg)
            run_rec = dict(r, gbps=g, bytes=nbytes, cpu_s=cpu, cpu_s_per_gb=cpg, retransmits=retr, error=err)
            runs.append(run_rec)
            if err:
                failures.append(f"{r['config']} bulk {t} rep {r['rep']}: {err}")
        elif k == "connect":
            n, err = connect_numbers(os.path.join(run, r["file"]))
            c = r["clients"]
            cpu_us = None
            if n and r["cpu_before"] is not None and r["cpu_after"] is not None and n["connections"]:
                cpu_us = (r["cpu_after"] - r["cpu_before"]) / clk / n["connections"] * 1e6
            for m in ("conns_per_sec", "p50_ms", "p99_ms"):
                add(r["config"], f"connect{c}_{m}", n[m] if n else None)
            add(r["config"], f"connect{c}_cpu_us_per_conn", cpu_us)
            add(r["config"], f"connect{c}_errors", n["errors"] if n else None)
            add(r["config"], f"connect{c}_listen_overflows", r.get("listen_overflows"))
            runs.append(dict(r, **(n or {}), cpu_us_per_conn=cpu_us, error=err))
            if err:
                failures.append(f"{r['config']} connect x{c} rep {r['rep']}: {err}")
            elif n["errors"]:
                failures.append(f"{r['config']} connect x{c} rep {r['rep']}: {n['errors']} errors "
                                f"({n['mismatches']} mismatches): {n['error_samples'][:2]}")
        elif k == "idle":
            hold = r.get("hold") or {}
            st = r.get("state") or {}
            base = r.get("baseline") or {}
            held = hold.get("ok")
            add(r["config"], "idle_held", held)
            rss = st.get("rss_kib")
            add(r["config"], "idle_rss_mib", rss / 1024 if rss is not None else None)
            per = None
            if held and rss is not None and base.get("rss_kib") is not None:
                per = (rss - base["rss_kib"]) / held
            add(r["config"], "idle_kib_per_conn", per)
            add(r["config"], "idle_fds", st.get("fds"))
            add(r["config"], "idle_pipes", st.get("pipes"))
            add(r["config"], "idle_pipes_added",
                st["pipes"] - base["pipes"] if st.get("pipes") is not None and base.get("pipes") is not None else None)
            pool_pipes = None
            if "pipepool_live" in st.get("metrics", {}):
                pool_pipes = st["metrics"]["pipepool_live"]
            elif "PipesUsed" in st.get("haproxy_info", {}):
                pool_pipes = st["haproxy_info"]["PipesUsed"] + st["haproxy_info"].get("PipesFree", 0)
            add(r["config"], "idle_pool_pipes", pool_pipes)
            runs.append(r)
            if held is None:
                failures.append(f"{r['config']} idle rep {r['rep']}: the holder reported nothing")
            elif held < r["conns"]:
                failures.append(f"{r['config']} idle rep {r['rep']}: held {held}/{r['conns']} "
                                f"(errors {hold.get('errors')})")

    medians = {c: {m: med(v) for m, v in ms.items()} for c, ms in results.items()}

    # ---- tables
    out = []
    env = meta.get("env", {})
    out.append(f"compare.sh {meta.get('stamp', '')}: median of {env.get('REPS', '?')} rep(s), "
               f"configurations interleaved; kernel {meta.get('kernel', '?')}, {meta.get('ncpu', '?')} CPU "
               f"({meta.get('cpu', '?')})")
    pin = meta.get("pinning", {})
    out.append(f"pinning: proxy on CPU {pin.get('proxy_cpu')} (taskset -c {pin.get('proxy_cpu')}), iperf3 "
               f"client+server and all load/upstream tools on CPU {pin.get('load_cpu')} (taskset -c {pin.get('load_cpu')})")
    out.append("")
    rows = []
    for c in configs:
        m = medians[c]
        row = [c]
        for t, _ in BULK_TESTS:
            row += [fmt(m.get(f"bulk{t}_gbps")), fmt(m.get(f"bulk{t}_cpu_s_per_gb"), 3)]
        rows.append(row)
    if any(any(x != "-" for x in r[1:]) for r in rows):
        hdr = ["bulk (iperf3)"]
        for _, name in BULK_TESTS:
            hdr += [f"{name} Gbit/s", "CPU s/GB"]
        out.append(table(hdr, rows, f"Bulk throughput, iperf3 -t {env.get('TPUT_SECS')}; CPU = proxy utime+stime per 1e9 bytes received"))
        out.append("")

    clients = env.get("CONN_CLIENTS", "16 256").split()
    rows = []
    for c in configs:
        m = medians[c]
        row = [c]
        for n in clients:
            row += [fmt(m.get(f"connect{n}_conns_per_sec")), fmt(m.get(f"connect{n}_p50_ms"), 3),
                    fmt(m.get(f"connect{n}_p99_ms"), 3), fmt(m.get(f"connect{n}_cpu_us_per_conn"), 1),
                    fmt(m.get(f"connect{n}_listen_overflows"), 1)]
        rows.append(row)
    if any(any(x != "-" for x in r[1:]) for r in rows):
        hdr = ["short connections"]
        for n in clients:
            hdr += [f"x{n} conn/s", "p50 ms", "p99 ms", "CPU us/conn", "SYN drops"]
        out.append(table(hdr, rows, f"Short connections: spliced bench --mode connect --size 1024, "
                                     f"{env.get('CONN_SECS')} s, upstream "
                                     f"{'goproxy -echo' if env.get('ECHO_SERVER') == 'go' else 'spliced bench --serve --echo'}; "
                                     f"SYN drops = TcpExt ListenOverflows during the run (any listener: proxy or upstream; "
                                     f"each costs the client a 1 s SYN retransmit)"))
        out.append("")

    rows = []
    for c in configs:
        m = medians[c]
        if m.get("idle_held") is None and m.get("idle_fds") is None:
            continue
        rows.append([c, fmt(m.get("idle_held")), fmt(m.get("idle_rss_mib"), 1), fmt(m.get("idle_kib_per_conn"), 2),
                     fmt(m.get("idle_fds")), fmt(m.get("idle_pipes")), fmt(m.get("idle_pipes_added")),
                     fmt(m.get("idle_pool_pipes"))])
    if rows:
        out.append(table(["idle connections", "held", "RSS MiB", "KiB/conn", "fds", "pipes", "pipes added",
                          "pool's own count"], rows,
                         f"Idle connections: {env.get('IDLE_CONNS')} opened through the proxy (1 byte echoed on each), "
                         f"then held; proxy VmRSS, open fds, distinct pipes (all / opened since the proxy started / "
                         f"the proxy's own count: pipepool_live, HAProxy PipesUsed+PipesFree)"))
        out.append("")

    # ---- ratios
    ratios = {}
    targets = []

    def ratio(a, b, metric):
        va, vb = medians.get(a, {}).get(metric), medians.get(b, {}).get(metric)
        if va is None or vb in (None, 0):
            return None
        return va / vb

    pairs = []
    for c in configs:
        m = re.match(r"spliced-splice-t(\d+)$", c)
        if m and f"haproxy-splice-t{m.group(1)}" in configs:
            pairs.append((c, f"haproxy-splice-t{m.group(1)}"))
    spliced_main = next((c for c in configs if c.startswith("spliced-splice")), None)
    if spliced_main and "go" in configs:
        pairs.append((spliced_main, "go"))
    rows = []
    for a, b in pairs:
        rr = {}
        checks = []
        for t, name in BULK_TESTS:
            rr[f"bulk{t}_gbps"] = ratio(a, b, f"bulk{t}_gbps")
            rr[f"bulk{t}_cpu_s_per_gb"] = ratio(a, b, f"bulk{t}_cpu_s_per_gb")
        for n in clients:
            rr[f"connect{n}_conns_per_sec"] = ratio(a, b, f"connect{n}_conns_per_sec")
            rr[f"connect{n}_p99_ms"] = ratio(a, b, f"connect{n}_p99_ms")
        for m in ("idle_rss_mib", "idle_fds", "idle_pipes"):
            rr[m] = ratio(a, b, m)
        ratios[f"{a}/{b}"] = rr
        row = [f"{a} / {b}"]
        for t, _ in BULK_TESTS:
            row += [fmt(rr[f"bulk{t}_gbps"]), fmt(rr[f"bulk{t}_cpu_s_per_gb"])]
        for n in clients:
            row += [fmt(rr[f"connect{n}_conns_per_sec"]), fmt(rr[f"connect{n}_p99_ms"])]
        row += [fmt(rr["idle_rss_mib"]), fmt(rr["idle_fds"]),
                fmt(rr["idle_pipes"]) if rr["idle_pipes"] is not None else
                f"{fmt(medians[a].get('idle_pipes'))} vs {fmt(medians[b].get('idle_pipes'))}"]
        rows.append(row)
        # issue 5's targets
        if b.startswith("haproxy"):
            for t, name in BULK_TESTS:
                checks.append((f"bulk {name} Gbit/s >= 1.2x", rr[f"bulk{t}_gbps"], lambda v: v >= 1.2))
                checks.append((f"bulk {name} CPU/GB <= 0.7x", rr[f"bulk{t}_cpu_s_per_gb"], lambda v: v <= 0.7))
            for n in clients:
                checks.append((f"x{n} conn/s >= 1.2x", rr[f"connect{n}_conns_per_sec"], lambda v: v >= 1.2))
                checks.append((f"x{n} p99 no worse", rr[f"connect{n}_p99_ms"], lambda v: v <= 1.0))
        for mname, label in (("idle_rss_mib", "RSS"), ("idle_fds", "fds"), ("idle_pipes", "pipes")):
            va, vb = medians[a].get(mname), medians[b].get(mname)
            if va is not None and vb is not None:
                checks.append((f"idle {label} fewer", 1.0 if va < vb else 2.0, lambda v: v < 1.5))
        for label, v, ok in checks:
            if v is not None:
                targets.append({"pair": f"{a}/{b}", "target": label, "value": v, "met": bool(ok(v))})
    if rows:
        hdr = ["ratio (median/median)"]
        for _, name in BULK_TESTS:
            hdr += [f"{name} Gbit/s", "CPU/GB"]
        for n in clients:
            hdr += [f"x{n} conn/s", "p99"]
        hdr += ["idle RSS", "fds", "pipes"]
        out.append(table(hdr, rows, "Ratios (spliced / other, same run)"))
        out.append("")
    # ---- pool
    pool = {}
    rust = next((r for r in recs if r["kind"] == "pool-rust"), None)
    gorec = next((r for r in recs if r["kind"] == "pool-go"), None)
    if rust or gorec:
        ests = criterion_estimates(rust.get("criterion_dir", ""), rust.get("marker")) if rust and rust.get("rc") == 0 else {}
        gom, goruns = go_bench(os.path.join(run, gorec["log"])) if gorec and gorec.get("log") else ({}, {})
        pool = {"pipepool_criterion_median_ns": ests, "go_median_ns_per_op": gom, "go_runs": goruns}
        rows = [[f"pipepool {k}", fmt(v, 2)] for k, v in sorted(ests.items())]
        rows += [[f"go {k}", fmt(v, 2)] for k, v in sorted(gom.items())]
        single, par = pick(ests, False), pick(ests, True)
        go_single = gom.get("BenchmarkSplicePipe/SplicePipeWithPool")
        go_par = gom.get("BenchmarkSplicePipePoolParallel")
        if single and go_single and ests[single]:
            pool["single_ratio_go_over_pipepool"] = go_single / ests[single]
            pool["single_pair"] = [single, "BenchmarkSplicePipe/SplicePipeWithPool"]
            targets.append({"pair": "pool", "target": "get+put >= 4x faster than Go",
                            "value": pool["single_ratio_go_over_pipepool"],
                            "met": pool["single_ratio_go_over_pipepool"] >= 4})
        if par and go_par and ests[par]:
            pool["parallel_ratio_go_over_pipepool"] = go_par / ests[par]
            pool["parallel_pair"] = [par, "BenchmarkSplicePipePoolParallel"]
        if rows:
            out.append(table(["pool get+put", "ns/op (median)"], rows,
                             "The pool alone: cargo bench -p pipepool --bench pool vs Go's internal/poll BenchmarkSplicePipe*"))
            if "single_ratio_go_over_pipepool" in pool:
                out.append(f"Go / pipepool, one thread: {pool['single_ratio_go_over_pipepool']:.2f}x "
                           f"({pool['single_pair'][0]} vs {pool['single_pair'][1]}); target >= 4x")
            if "parallel_ratio_go_over_pipepool" in pool:
                out.append(f"Go / pipepool, parallel: {pool['parallel_ratio_go_over_pipepool']:.2f}x "
                           f"({pool['parallel_pair'][0]} vs {pool['parallel_pair'][1]})")
            out.append("")
        else:
            out.append("pool: no results (see pool-rust.log / pool-go.log in the run directory)")
            out.append("")

    if targets:
        missed = [t for t in targets if not t["met"]]
        out.append(f"issue 5 targets: {len(targets) - len(missed)} met, {len(missed)} missed"
                   + ("" if not missed else ": " + "; ".join(
                       f"{t['pair']} {t['target']} ({t['value']:.2f}x)" if "idle" not in t["target"]
                       else f"{t['pair']} {t['target']}" for t in missed)))
        out.append("")

    if failures:
        out.append("Problems during the run:")
        out += [f"  - {f}" for f in failures]
        out.append("")
    print("\n".join(out))

    doc = {
        "meta": meta,
        "units": {"gbps": "1e9 bit/s (iperf3 end.sum_received)", "cpu_s_per_gb": "proxy utime+stime seconds per 1e9 bytes",
                  "latency": "ms, connect to last echoed byte", "rss": "MiB (VmRSS)"},
        "configs": configs,
        "median": medians,
        "values": results,
        "ratios": ratios,
        "targets": targets,
        "pool": pool,
        "failures": failures,
        "runs": runs,
    }
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1, default=str)

    # gnuplot data: one row per configuration that has bulk numbers
    with open(os.path.join(run, "plot.dat"), "w") as f:
        f.write("# config " + " ".join(f"gbps{t}" for t, _ in BULK_TESTS) + " "
                + " ".join(f"cpu{t}" for t, _ in BULK_TESTS) + "\n")
        for c in configs:
            m = medians[c]
            g = [m.get(f"bulk{t}_gbps") for t, _ in BULK_TESTS]
            if all(v is None for v in g):
                continue
            cp = [m.get(f"bulk{t}_cpu_s_per_gb") for t, _ in BULK_TESTS]
            f.write(c + " " + " ".join("?" if v is None else f"{v:.4f}" for v in g + cp) + "\n")


# ------------------------------------------------------------------ main

def arg_num(s):
    return None if s in ("", "null", "None") else float(s)


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    a = sys.argv[2:]
    if cmd == "iperf-summary":
        g, nbytes, cpu, cpg, retr, err = iperf_numbers(a[0], arg_num(a[1]), arg_num(a[2]), float(a[3]))
        if err:
            print(f"FAILED: {err}")
        else:
            print(f"{g:.2f} Gbit/s, {nbytes / 1e9:.2f} GB"
                  + (f", proxy CPU {cpu:.2f} s = {cpg:.3f} s/GB" if cpg is not None else "")
                  + (f", {retr} retransmits" if retr else ""))
    elif cmd == "connect-summary":
        n, err = connect_numbers(a[0])
        if err:
            print(f"FAILED: {err}")
        else:
            print(f"{n['conns_per_sec']:,.0f} conn/s, p50 {n['p50_ms']:.3f} ms, p99 {n['p99_ms']:.3f} ms"
                  + (f", {n['errors']} ERRORS {n['error_samples'][:2]}" if n["errors"] else ""))
    elif cmd == "idle-summary":
        try:
            hold = json.loads(a[0]) if a[0] not in ("", "null") else None
        except ValueError:
            hold = None
        st = json.loads(a[1])
        h = f"held {hold['ok']}" + (f" ({hold['failed']} failed: {hold['errors']})" if hold["failed"] else "") \
            if hold else "holder reported nothing"
        extra = ""
        if "metrics" in st:
            mm = st["metrics"]
            extra = f", pool live {mm.get('pipepool_live', '?'):.0f} idle {mm.get('pipepool_idle', '?'):.0f}" \
                if "pipepool_live" in mm else ""
        if "haproxy_info" in st:
            hi = st["haproxy_info"]
            extra = f", PipesUsed {hi.get('PipesUsed')} PipesFree {hi.get('PipesFree')}"
        rss = st.get("rss_kib")
        print(f"{h}; RSS {rss / 1024:.1f} MiB, {st['fds']} fds, {st['pipes']} pipes ({st['pipe_fds']} pipe fds){extra}"
              if rss is not None else f"{h}; proxy state unreadable: {st.get('error')}")
    elif cmd == "proc-state":
        print(json.dumps(proc_state(a[0], a[1], a[2], a[3])))
    elif cmd == "report":
        report(a[0], a[1])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
