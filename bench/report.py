#!/usr/bin/env python3
"""Helpers and the final report of bench/compare.sh (standard library only).

  report.py iperf-summary FILE CPU_BEFORE CPU_AFTER CLK_TCK   one line for the log
  report.py connect-summary FILE                              one line for the log
  report.py keepalive-summary FILE CPU_BEFORE CPU_AFTER CLK_TCK one line for the log
  report.py syscalls-summary JSON                             one line for the log
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


def keepalive_numbers(path, before, after, clk_tck):
    """req/s and proxy CPU us per request of one `relays --mode kaload` run."""
    doc = load_json(path)
    if doc is None:
        return None, "no JSON from relays --mode kaload"
    try:
        req = int(doc["requests"])
        secs = float(doc["secs"])
    except (KeyError, TypeError, ValueError) as e:
        return None, f"unexpected kaload JSON ({e})"
    cpu_us = None
    if before is not None and after is not None and req:
        cpu_us = (after - before) / clk_tck / req * 1e6
    return {"requests": req, "req_per_sec": req / secs if secs else None, "cpu_us_per_req": cpu_us}, None


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


# ------------------------------------------------------------------ report

# ------------------------------------------------------------------ spread and verdicts

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


# ------------------------------------------------------------------ features vs plain (issue 12)

# spliced-<feature>-tN against spliced-splice-tN: what each feature costs per
# connection. The SNI row's load speaks plain text: it measures the
# ClientHello peek (MSG_PEEK sees a first byte that is not a TLS handshake)
# and the default route, not the parse of a real ClientHello.
FEATURES = (("sendproxy", "send-proxy v2", "--send-proxy v2 (upstream: spliced bench --serve --echo --accept-proxy)"),
            ("sni", "SNI routes", "two --route NAME=ADDR and the default --upstream; plain-text client, so the "
                                  "ClientHello peek and the default route"))
FEATURE_RE = re.compile(r"spliced-(sendproxy|sni)-t\d+$")
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

    # results[config][metric][rep] = value
    results = {c: {} for c in configs}
    runs = []
    syscalls = {}

    def add(config, metric, rep, value):
        results[config].setdefault(metric, {})[rep] = value

    failures = []
    for r in recs:
        k = r["kind"]
        rep = r.get("rep", 1)
        if k == "bulk":
            g, nbytes, cpu, cpg, retr, err = iperf_numbers(
                os.path.join(run, r["file"]), r["cpu_before"], r["cpu_after"], clk)
            t = r["test"]
            add(r["config"], f"bulk{t}_gbps", rep, g)
            add(r["config"], f"bulk{t}_cpu_s_per_gb", rep, cpg)
            runs.append(dict(r, gbps=g, bytes=nbytes, cpu_s=cpu, cpu_s_per_gb=cpg, retransmits=retr, error=err))
            if err:
                failures.append(f"{r['config']} bulk {t} rep {rep}: {err}")
        elif k == "connect":
            n, err = connect_numbers(os.path.join(run, r["file"]))
            c = r["clients"]
            cpu_us = None
            if n and r["cpu_before"] is not None and r["cpu_after"] is not None and n["connections"]:
                cpu_us = (r["cpu_after"] - r["cpu_before"]) / clk / n["connections"] * 1e6
            for m in ("conns_per_sec", "p50_ms", "p99_ms"):
                add(r["config"], f"connect{c}_{m}", rep, n[m] if n else None)
            add(r["config"], f"connect{c}_cpu_us_per_conn", rep, cpu_us)
            add(r["config"], f"connect{c}_errors", rep, n["errors"] if n else None)
            add(r["config"], f"connect{c}_listen_overflows", rep, r.get("listen_overflows"))
            runs.append(dict(r, **(n or {}), cpu_us_per_conn=cpu_us, error=err))
            if err:
                failures.append(f"{r['config']} connect x{c} rep {rep}: {err}")
            elif n["errors"]:
                failures.append(f"{r['config']} connect x{c} rep {rep}: {n['errors']} errors "
                                f"({n['mismatches']} mismatches): {n['error_samples'][:2]}")
        elif k == "keepalive":
            n, err = keepalive_numbers(os.path.join(run, r["file"]), r["cpu_before"], r["cpu_after"], clk)
            add(r["config"], "ka_req_per_sec", rep, n["req_per_sec"] if n else None)
            add(r["config"], "ka_cpu_us_per_req", rep, n["cpu_us_per_req"] if n else None)
            runs.append(dict(r, **(n or {}), error=err))
            if err:
                failures.append(f"{r['config']} keep-alive rep {rep}: {err}")
        elif k == "idle":
            hold = r.get("hold") or {}
            st = r.get("state") or {}
            base = r.get("baseline") or {}
            held = hold.get("ok")
            add(r["config"], "idle_held", rep, held)
            rss = st.get("rss_kib")
            add(r["config"], "idle_rss_mib", rep, rss / 1024 if rss is not None else None)
            per = None
            if held and rss is not None and base.get("rss_kib") is not None:
                per = (rss - base["rss_kib"]) / held
            add(r["config"], "idle_kib_per_conn", rep, per)
            add(r["config"], "idle_fds", rep, st.get("fds"))
            add(r["config"], "idle_pipes", rep, st.get("pipes"))
            add(r["config"], "idle_pipes_added", rep,
                st["pipes"] - base["pipes"] if st.get("pipes") is not None and base.get("pipes") is not None else None)
            pool_pipes = None
            if "pipepool_live" in st.get("metrics", {}):
                pool_pipes = st["metrics"]["pipepool_live"]
            elif "PipesUsed" in st.get("haproxy_info", {}):
                pool_pipes = st["haproxy_info"]["PipesUsed"] + st["haproxy_info"].get("PipesFree", 0)
            add(r["config"], "idle_pool_pipes", rep, pool_pipes)
            runs.append(r)
            if held is None:
                failures.append(f"{r['config']} idle rep {rep}: the holder reported nothing")
            elif held < r["conns"]:
                failures.append(f"{r['config']} idle rep {rep}: held {held}/{r['conns']} "
                                f"(errors {hold.get('errors')})")
        elif k == "syscalls":
            res = r.get("result") or {}
            syscalls[r["config"]] = res
            if res.get("error"):
                failures.append(f"{r['config']} syscalls: {res['error']}")
            for kind, metric in (("short", "sys_per_short_conn"), ("keepalive", "sys_per_ka_req")):
                if kind in res:
                    add(r["config"], metric, 1, res[kind]["per"])

    stats = {c: {m: spread(v.values()) for m, v in ms.items()} for c, ms in results.items()}
    medians = {c: {m: (sp[1] if sp else None) for m, sp in ms.items()} for c, ms in stats.items()}

    def get(c, m):
        return stats.get(c, {}).get(m)

    out = []
    env = meta.get("env", {})
    reps = env.get("REPS", "?")
    out.append(f"compare.sh {meta.get('stamp', '')}: {reps} rep(s), configurations interleaved within each; "
               f"every figure is median (min-max over the reps); kernel {meta.get('kernel', '?')}, "
               f"{meta.get('ncpu', '?')} CPU ({meta.get('cpu', '?')}), git {meta.get('versions', {}).get('git', '?')}")
    pin = meta.get("pinning", {})
    out.append(f"pinning: proxy on CPU {pin.get('proxy_cpu')} (taskset -c {pin.get('proxy_cpu')}), iperf3 "
               f"client+server and all load/upstream tools on CPU {pin.get('load_cpu')} (taskset -c {pin.get('load_cpu')})")
    out.append("")

    def stat_table(title, cols, only_with_data=True):
        """cols: [(header, metric, digits)]: one row per configuration."""
        rows = []
        for c in configs:
            row = [c] + [fmt_spread(get(c, m), nd) for _, m, nd in cols]
            if only_with_data and all(x == "-" for x in row[1:]):
                continue
            rows.append(row)
        if rows:
            out.append(table(["configuration"] + [h for h, _, _ in cols], rows, title))
            out.append("")

    stat_table(f"Bulk throughput, Gbit/s (iperf3 -t {env.get('TPUT_SECS')}, received)",
               [(f"{name}", f"bulk{t}_gbps", 2) for t, name in BULK_TESTS])
    stat_table("Bulk: proxy CPU seconds per GB (utime+stime of the proxy per 1e9 bytes received)",
               [(f"{name}", f"bulk{t}_cpu_s_per_gb", 3) for t, name in BULK_TESTS])

    clients = env.get("CONN_CLIENTS", "16").split()
    cols = []
    for n in clients:
        cols += [(f"x{n} conn/s", f"connect{n}_conns_per_sec", 0), (f"x{n} p99 ms", f"connect{n}_p99_ms", 2),
                 (f"x{n} CPU us/conn", f"connect{n}_cpu_us_per_conn", 1),
                 (f"x{n} SYN drops", f"connect{n}_listen_overflows", 0)]
    stat_table(f"Short connections: spliced bench --mode connect --size 1024, {env.get('CONN_SECS')} s, upstream "
               f"{'goproxy -echo' if env.get('ECHO_SERVER') == 'go' else 'spliced bench --serve --echo'}; "
               f"SYN drops = TcpExt ListenOverflows during the run", cols)
    stat_table(f"Keep-alive requests: {env.get('KA_CONNS')} connections, 1 KiB request / 1 KiB echo, "
               f"{env.get('KA_SECS')} s (bench/relays --mode kaload)",
               [("req/s", "ka_req_per_sec", 0), ("CPU us/req", "ka_cpu_us_per_req", 2)])
    stat_table(f"Idle connections: {env.get('IDLE_CONNS')} opened through the proxy (1 byte echoed on each), "
               f"then held; VmRSS, open fds, distinct pipes (all / added since start / the proxy's own count)",
               [("held", "idle_held", 0), ("RSS MiB", "idle_rss_mib", 1), ("KiB/conn", "idle_kib_per_conn", 2),
                ("fds", "idle_fds", 0), ("pipes", "idle_pipes", 0), ("pipes added", "idle_pipes_added", 0),
                ("pool's own", "idle_pool_pipes", 0)])

    # ---- system calls, by call name
    for kind, label, n_env in (("short", "per short connection (1 KiB up, half-close, 1 KiB back, close)",
                                "SYSCALL_SHORT"),
                               ("keepalive", "per keep-alive request (1 KiB each way)", "SYSCALL_KA")):
        cs = [c for c in configs if kind in syscalls.get(c, {})]
        if not cs:
            continue
        names = []
        for c in cs:
            for name in syscalls[c][kind]["by_call"]:
                if name not in names:
                    names.append(name)
        rows = [["total"] + [fmt(syscalls[c][kind]["per"], 2) for c in cs]]
        for name in sorted(names, key=lambda n: -max(syscalls[c][kind]["by_call"].get(n, 0) for c in cs)):
            rows.append([name] + [fmt(syscalls[c][kind]["by_call"].get(name), 2) for c in cs])
        out.append(table(["system call"] + cs, rows,
                         f"System calls {label}: strace -f -c -p PID, sequential client, "
                         f"(count over 2N - count over N) / N, N = {env.get(n_env)}"))
        out.append("")

    # ---- ratios, spreads and verdicts
    ratio_metrics = [(f"bulk{t}_gbps", f"bulk {name} Gbit/s", False) for t, name in BULK_TESTS]
    ratio_metrics += [(f"bulk{t}_cpu_s_per_gb", f"bulk {name} CPU/GB", False) for t, name in BULK_TESTS]
    for n in clients:
        ratio_metrics += [(f"connect{n}_conns_per_sec", f"x{n} conn/s", False),
                          (f"connect{n}_p99_ms", f"x{n} p99", False),
                          (f"connect{n}_cpu_us_per_conn", f"x{n} CPU/conn", False)]
    ratio_metrics += [("ka_req_per_sec", "keep-alive req/s", False), ("ka_cpu_us_per_req", "keep-alive CPU/req", False),
                      ("idle_rss_mib", "idle RSS", False), ("idle_fds", "idle fds", True),
                      ("idle_pipes_added", "idle pipes added", True),
                      ("sys_per_short_conn", "syscalls/short conn", True), ("sys_per_ka_req", "syscalls/ka req", True)]

    def compare(a, b, metric, exact):
        va, vb = results.get(a, {}).get(metric, {}), results.get(b, {}).get(metric, {})
        ma, mb = medians.get(a, {}).get(metric), medians.get(b, {}).get(metric)
        if ma is None or mb in (None, 0):
            return None
        per_rep = [va[r] / vb[r] for r in sorted(set(va) & set(vb))
                   if va[r] is not None and vb[r] not in (None, 0)]
        return {"ratio": ma / mb,
                "rep_ratio_min": min(per_rep) if per_rep else None,
                "rep_ratio_max": max(per_rep) if per_rep else None,
                "reps": len(per_rep),
                "verdict": verdict(metric, va.values(), vb.values(), per_rep, exact)}

    USERSPACE = ("haproxy-nosplice", "nginx", "tokio-8k", "tokio-64k", "spliced-user")
    pairs = []
    for a in configs:
        m = re.match(r"spliced-splice-t(\d+)$", a)
        if not m:
            continue
        for b in configs:
            if b in (a, "direct") or FEATURE_RE.match(b):
                continue  # the feature rows have a table of their own
            bt = re.search(r"-t(\d+)$", b)
            if bt and bt.group(1) != m.group(1):
                continue
            pairs.append((a, b))
    ratios = {}
    targets = []
    rows = []
    for a, b in pairs:
        rr = {}
        for metric, label, exact in ratio_metrics:
            cmp = compare(a, b, metric, exact)
            if cmp is None:
                continue
            rr[metric] = cmp
            target = ""
            if b.startswith("haproxy-splice"):
                if metric.endswith("_gbps") and metric.startswith("bulk"):
                    met = cmp["ratio"] >= 0.95
                    target = f">= 0.95x: {'met' if met else 'MISSED'}"
                    targets.append({"pair": f"{a}/{b}", "target": f"{label} median ratio >= 0.95", "value": cmp["ratio"], "met": met})
                elif metric.endswith("_cpu_s_per_gb"):
                    met = cmp["ratio"] <= 1.05
                    target = f"<= 1.05x: {'met' if met else 'MISSED'}"
                    targets.append({"pair": f"{a}/{b}", "target": f"{label} median ratio <= 1.05", "value": cmp["ratio"], "met": met})
                elif metric == "sys_per_short_conn":
                    met = cmp["ratio"] <= 0.9
                    target = f"<= 0.9x: {'met' if met else 'MISSED'}"
                    targets.append({"pair": f"{a}/{b}", "target": f"{label} <= 0.9x", "value": cmp["ratio"], "met": met})
                elif metric == "sys_per_ka_req":
                    met = cmp["ratio"] <= 0.85
                    target = f"<= 0.85x: {'met' if met else 'MISSED'}"
                    targets.append({"pair": f"{a}/{b}", "target": f"{label} <= 0.85x", "value": cmp["ratio"], "met": met})
            elif b.startswith(USERSPACE) and metric.startswith("bulk"):
                if cmp["verdict"].startswith("n/a"):
                    target = "lead: n/a (<3 reps)"
                elif metric.endswith("_cpu_s_per_gb"):
                    met = cmp["verdict"] == "ahead"
                    target = f"clear lead (ahead): {'met' if met else 'MISSED'}"
                    targets.append({"pair": f"{a}/{b}", "target": f"{label}: clear lead (ranges apart)", "value": cmp["ratio"], "met": met})
                else:
                    met = cmp["verdict"] != "behind"
                    target = f"not behind: {'met' if met else 'MISSED'}"
                    targets.append({"pair": f"{a}/{b}", "target": f"{label}: not behind", "value": cmp["ratio"], "met": met})
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

    # ---- the pool's thesis at the proxy level
    fresh_rows = []
    for c in configs:
        m = re.match(r"spliced-fresh-t(\d+)$", c)
        pooled = f"spliced-splice-t{m.group(1)}" if m else None
        if not pooled or pooled not in configs:
            continue
        for metric, label in [(f"connect{n}_cpu_us_per_conn", f"CPU us per short connection (x{n})") for n in clients] + \
                             [("ka_cpu_us_per_req", "CPU us per keep-alive request"),
                              ("sys_per_short_conn", "syscalls per short connection"),
                              ("sys_per_ka_req", "syscalls per keep-alive request"),
                              ("bulk1_cpu_s_per_gb", "bulk 1 stream CPU s/GB")]:
            cmp = compare(pooled, c, metric, metric.startswith("sys_"))
            if cmp is None:
                continue
            fresh_rows.append([label, fmt_spread(get(pooled, metric), 3), fmt_spread(get(c, metric), 3),
                               f"{cmp['ratio']:.2f}x", cmp["verdict"]])
    if fresh_rows:
        out.append(table(["figure", "pooled pipes", "fresh pipe per burst", "pooled / fresh", "verdict (pooled)"],
                         fresh_rows, "The pool at the proxy level: spliced with its pool vs a fresh pipe per burst "
                                     "(SPLICED_BENCH_FRESH_PIPES=1: no idle pipe kept)"))
        out.append("")

    # ---- features vs plain (issue 12)
    features = features_vs_plain(configs, results, syscalls, clients, out)

    # ---- pool
    pool = {}
    rust = next((r for r in recs if r["kind"] == "pool-rust"), None)
    gorec = next((r for r in recs if r["kind"] == "pool-go"), None)
    if rust or gorec:
        ests = criterion_estimates(rust.get("criterion_dir", ""), rust.get("marker")) if rust and rust.get("rc") == 0 else {}
        gom, goruns = go_bench(os.path.join(run, gorec["log"])) if gorec and gorec.get("log") else ({}, {})
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
                r = {"ratio": gom[theirs] / e["median"], "pair": [ours, theirs],
                     "range": [min(g) / e["hi"], max(g) / e["lo"]] if e["lo"] and e["hi"] else None}
                pool[label] = r
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

    if targets:
        missed = [t for t in targets if not t["met"]]
        out.append("Targets (issue 13): bulk parity with HAProxy-splice (median ratio >= 0.95 Gbit/s, <= 1.05 CPU/GB); "
                   "a clear lead over userspace copies (CPU/GB ranges apart, throughput not behind); system calls "
                   "<= 0.9x HAProxy's per short connection and <= 0.85x per keep-alive request")
        out.append(f"  {len(targets) - len(missed)} met, {len(missed)} missed"
                   + ("" if not missed else ": " + "; ".join(f"{t['pair']} {t['target']} ({t['value']:.2f}x)" for t in missed)))
        out.append("")

    if failures:
        out.append("Problems during the run:")
        out += [f"  - {f}" for f in failures]
        out.append("")
    print("\n".join(out))

    doc = {
        "meta": meta,
        "units": {"gbps": "1e9 bit/s (iperf3 end.sum_received)", "cpu_s_per_gb": "proxy utime+stime seconds per 1e9 bytes",
                  "latency": "ms, connect to last echoed byte", "rss": "MiB (VmRSS)",
                  "syscalls": "calls per unit, strace -f -c, (2N - N) / N"},
        "configs": configs,
        "stats": {c: {m: ({"min": sp[0], "median": sp[1], "max": sp[2]} if sp else None) for m, sp in ms.items()}
                  for c, ms in stats.items()},
        "median": medians,
        "values": {c: {m: [v.get(r) for r in sorted(v)] for m, v in ms.items()} for c, ms in results.items()},
        "ratios": ratios,
        "targets": targets,
        "syscalls": syscalls,
        "features_vs_plain": features,
        "pool": pool,
        "failures": failures,
        "runs": runs,
    }
    with open(out_json, "w") as f:
        json.dump(doc, f, indent=1, default=str)

    # gnuplot data: one row per configuration; for each bulk test median,
    # min, max (Gbit/s), then the same for CPU s/GB, then CPU us per short
    # connection (first client count) and per keep-alive request.
    small = [f"connect{clients[0]}_cpu_us_per_conn" if clients else None, "ka_cpu_us_per_req"]
    with open(os.path.join(run, "plot.dat"), "w") as f:
        f.write("# config " + " ".join(f"gbps{t} lo hi" for t, _ in BULK_TESTS) + " "
                + " ".join(f"cpu{t} lo hi" for t, _ in BULK_TESTS) + " us_per_conn lo hi us_per_req lo hi\n")
        for c in configs:
            g = [get(c, f"bulk{t}_gbps") for t, _ in BULK_TESTS]
            cp = [get(c, f"bulk{t}_cpu_s_per_gb") for t, _ in BULK_TESTS]
            sm = [get(c, m) if m else None for m in small]
            if all(v is None for v in g + cp + sm):
                continue
            cells = []
            for sp in g + cp + sm:
                cells += ["?", "?", "?"] if sp is None else [f"{sp[1]:.4f}", f"{sp[0]:.4f}", f"{sp[2]:.4f}"]
            f.write(c + " " + " ".join(cells) + "\n")


def features_vs_plain(configs, results, syscalls, clients, out):
    """The side-by-side table of the feature rows against plain spliced
    (appended to out) and its JSON: CPU per connection median (min-max),
    the ratio of medians with the per-rep range, the verdict; conn/s; the
    exact system calls per short connection and which calls differ."""
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
                             f"Features vs plain (issue 12): spliced bench --mode connect x{n}, proxy CPU per "
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


def spread_doc(by_rep):
    """{min, median, max, values (by rep)} of {rep: value}."""
    sp = spread(by_rep.values())
    return {"min": sp[0] if sp else None, "median": sp[1] if sp else None, "max": sp[2] if sp else None,
            "values": [by_rep[r] for r in sorted(by_rep)]}


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
    elif cmd == "keepalive-summary":
        n, err = keepalive_numbers(a[0], arg_num(a[1]), arg_num(a[2]), float(a[3]))
        if err:
            print(f"FAILED: {err}")
        else:
            print(f"{n['req_per_sec']:,.0f} req/s"
                  + (f", proxy CPU {n['cpu_us_per_req']:.2f} us/request" if n["cpu_us_per_req"] is not None else ""))
    elif cmd == "syscalls-summary":
        try:
            res = json.loads(a[0])
        except ValueError:
            res = {"error": "unreadable"}
        if res.get("error"):
            print(f"FAILED: {res['error']}")
        else:
            parts = []
            for kind, label in (("short", "per short connection"), ("keepalive", "per keep-alive request")):
                if kind in res:
                    top = ", ".join(f"{k} {v:g}" for k, v in list(res[kind]["by_call"].items())[:8])
                    parts.append(f"{res[kind]['per']:.2f} {label} ({top})")
            print("; ".join(parts))
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
