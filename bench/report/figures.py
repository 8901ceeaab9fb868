"""Section: the heading and the per-test tables (bulk, short connections,
keep-alive, idle), one row per configuration, median (min-max)."""

from .stats import fmt_spread, table

BULK_TESTS = [("1", "1 stream"), ("4", "4 streams"), ("R", "reverse")]


def heading(d, out):
    meta = d.meta
    out.append(f"compare.sh {meta.get('stamp', '')}: {d.env.get('REPS', '?')} rep(s), configurations interleaved "
               f"within each; every figure is median (min-max over the reps); kernel {meta.get('kernel', '?')}, "
               f"{meta.get('ncpu', '?')} CPU ({meta.get('cpu', '?')}), git {meta.get('versions', {}).get('git', '?')}")
    pin = meta.get("pinning", {})
    out.append(f"pinning: proxy on CPU {pin.get('proxy_cpu')} (taskset -c {pin.get('proxy_cpu')}), iperf3 "
               f"client+server and all load/upstream tools on CPU {pin.get('load_cpu')} (taskset -c {pin.get('load_cpu')})")
    out.append("")


def stat_table(d, out, title, cols, only_with_data=True):
    """cols: [(header, metric, digits)]: one row per configuration."""
    rows = []
    for c in d.configs:
        row = [c] + [fmt_spread(d.get(c, m), nd) for _, m, nd in cols]
        if only_with_data and all(x == "-" for x in row[1:]):
            continue
        rows.append(row)
    if rows:
        out.append(table(["configuration"] + [h for h, _, _ in cols], rows, title))
        out.append("")


def render(d, out):
    env = d.env
    stat_table(d, out, f"Bulk throughput, Gbit/s (iperf3 -t {env.get('TPUT_SECS')}, received)",
               [(f"{name}", f"bulk{t}_gbps", 2) for t, name in BULK_TESTS])
    stat_table(d, out, "Bulk: proxy CPU seconds per GB (utime+stime of the proxy per 1e9 bytes received)",
               [(f"{name}", f"bulk{t}_cpu_s_per_gb", 3) for t, name in BULK_TESTS])
    cols = []
    for n in d.clients:
        cols += [(f"x{n} conn/s", f"connect{n}_conns_per_sec", 0), (f"x{n} p99 ms", f"connect{n}_p99_ms", 2),
                 (f"x{n} CPU us/conn", f"connect{n}_cpu_us_per_conn", 1),
                 (f"x{n} user us/conn", f"connect{n}_user_us_per_conn", 1),
                 (f"x{n} kernel us/conn", f"connect{n}_kernel_us_per_conn", 1),
                 (f"x{n} SYN drops", f"connect{n}_listen_overflows", 0)]
    stat_table(d, out, f"Short connections: spliced bench --mode connect --size 1024, {env.get('CONN_SECS')} s, upstream "
               f"{'goproxy -echo' if env.get('ECHO_SERVER') == 'go' else 'spliced bench --serve --echo'}; "
               f"SYN drops = TcpExt ListenOverflows during the run", cols)
    stat_table(d, out, f"Keep-alive requests: {env.get('KA_CONNS')} connections, 1 KiB request / 1 KiB echo, "
               f"{env.get('KA_SECS')} s (bench/relays --mode kaload)",
               [("req/s", "ka_req_per_sec", 0), ("CPU us/req", "ka_cpu_us_per_req", 2),
                ("user us/req", "ka_user_us_per_req", 2), ("kernel us/req", "ka_kernel_us_per_req", 2)])
    stat_table(d, out, f"Idle connections: {env.get('IDLE_CONNS')} opened through the proxy (1 byte echoed on each), "
               f"then held; VmRSS, open fds, distinct pipes (all / added since start / the proxy's own count)",
               [("held", "idle_held", 0), ("RSS MiB", "idle_rss_mib", 1), ("KiB/conn", "idle_kib_per_conn", 2),
                ("fds", "idle_fds", 0), ("pipes", "idle_pipes", 0), ("pipes added", "idle_pipes_added", 0),
                ("pool's own", "idle_pool_pipes", 0)])
