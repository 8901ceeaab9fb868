#!/usr/bin/python3
"""bench/slow_burst.py: a burst of slow clients through spliced (splice and
userspace copy) and HAProxy, and what each proxy keeps afterwards.

N clients download 1 MiB each at once, through the proxy, inside a private
network namespace whose loopback has MTU 1500 and a bandwidth limit on the
proxy's client leg (htb, the proxy -> client direction): the downloads are
slow because the link is, so each connection holds data in flight (a pipe
or a buffer) for seconds. The proxy's pipe fds (entries of /proc/PID/fd
that are pipes), its RSS and its CPU time are sampled every INTERVAL
seconds before, during and AFTER seconds after the burst.

    sudo /usr/bin/python3 bench/slow_burst.py            # 5 reps, N=1000
    N=200 REPS=1 AFTER=10 /usr/bin/python3 bench/slow_burst.py   # smoke run

Environment (all optional):
    N=1000          clients (lowered to what the fd limit allows)
    SIZE=1048576    bytes per download
    RATE=800mbit    htb rate of the proxy -> client leg
    REPS=5          repetitions; proxies interleaved A B C A B C ...
    PROXIES="spliced-splice spliced-userspace haproxy"
    AFTER=20        seconds sampled after the last download ended
    INTERVAL=0.25   sampling period (s)
    PIPE_IDLE=5s    spliced's --pipe-idle-timeout
    SPLICED_BIN=target/release/spliced (built with cargo if missing)
    SPLICED_PRELOAD an LD_PRELOAD for spliced (to compare allocators)
    TAG             a name added to the output files
    OUT=bench/out   where the CSV, PNG and summary go

Needs root (ip netns, nft, tc), haproxy, nftables, iproute2 and (for the
PNG) python3-matplotlib; each is installed with apt-get when missing.
Traffic stays on the namespace's own loopback. Every wait is bounded.
"""

import csv
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = os.environ
N = int(ENV.get("N", "1000"))
SIZE = int(ENV.get("SIZE", str(1 << 20)))
RATE = ENV.get("RATE", "800mbit")
REPS = int(ENV.get("REPS", "5"))
PROXIES = ENV.get("PROXIES", "spliced-splice spliced-userspace haproxy").split()
AFTER = float(ENV.get("AFTER", "20"))
INTERVAL = float(ENV.get("INTERVAL", "0.25"))
PIPE_IDLE = ENV.get("PIPE_IDLE", "5s")
OUT = ENV.get("OUT", os.path.join(ROOT, "bench", "out"))
TAG = ENV.get("TAG", "")
PROXY_PORT, UPSTREAM_PORT = 21800, 21801
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
BURST_LIMIT = 300  # seconds a burst may take before the run fails


def die(msg):
    print(f"slow_burst: {msg}", file=sys.stderr)
    sys.exit(1)


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, **kw)


def ensure_tools():
    need = {"haproxy": "haproxy", "nft": "nftables", "tc": "iproute2", "ip": "iproute2"}
    missing = sorted({pkg for tool, pkg in need.items() if shutil.which(tool) is None})
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        missing.append("python3-matplotlib")
    if missing:
        env = dict(ENV, DEBIAN_FRONTEND="noninteractive")
        sh("apt-get", "update", "-qq")
        sh("apt-get", "install", "-y", "-qq", *missing, env=env)


# ---- the load (runs inside the namespace: `slow_burst.py --load`) ----------


def load_main():
    """The upstream and the N clients, in one asyncio loop; prints a JSON
    summary: downloads complete, short, failed."""
    import asyncio

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    payload = bytes(range(256)) * (SIZE // 256) + bytes(SIZE % 256)

    async def upstream(reader, writer):
        try:
            writer.write(payload)
            await writer.drain()
        except OSError:
            pass
        writer.close()

    async def download(results):
        got = 0
        try:
            r, w = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", PROXY_PORT), 30)
            while True:
                chunk = await asyncio.wait_for(r.read(65536), 120)
                if not chunk:
                    break
                got += len(chunk)
            w.close()
            results.append("ok" if got == SIZE else "short")
        except (OSError, asyncio.TimeoutError) as e:
            results.append("error")
            failures.append(f"{type(e).__name__} after {got} bytes")

    failures = []

    async def main():
        server = await asyncio.start_server(upstream, "127.0.0.1", UPSTREAM_PORT, backlog=4096)
        print("ready", flush=True)
        sys.stdin.readline()  # the sampler's go
        results = []
        t0 = time.monotonic()
        await asyncio.wait_for(
            asyncio.gather(*(download(results) for _ in range(N))), BURST_LIMIT)
        server.close()
        print(json.dumps({
            "ok": results.count("ok"), "short": results.count("short"),
            "error": results.count("error"), "seconds": time.monotonic() - t0,
            "failures": failures[:10],
        }), flush=True)

    asyncio.run(main())


# ---- the sampler and the proxies -------------------------------------------


def pipe_fds(pid):
    n = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("pipe:"):
                    n += 1
            except OSError:
                pass
    except OSError:
        return -1
    return n


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return -1.0


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def haproxy_cfg(path):
    with open(path, "w") as f:
        f.write(f"""global
    nbthread 1
    maxconn {max(4000, 2 * N + 100)}
defaults
    mode tcp
    option splice-request
    option splice-response
    timeout connect 5s
    timeout client 10m
    timeout server 10m
listen burst
    bind 127.0.0.1:{PROXY_PORT}
    server up 127.0.0.1:{UPSTREAM_PORT}
""")


def proxy_cmd(name, spliced_bin, run_dir):
    if name.startswith("spliced-"):
        copy = name.split("-", 1)[1]
        return [spliced_bin, "run", "--log-level", "warn", "--listen", f"127.0.0.1:{PROXY_PORT}",
                "--upstream", f"127.0.0.1:{UPSTREAM_PORT}", "--copy", copy,
                "--worker-threads", "1", "--pipe-idle-timeout", PIPE_IDLE]
    if name == "haproxy":
        cfg = os.path.join(run_dir, "haproxy.cfg")
        haproxy_cfg(cfg)
        return ["haproxy", "-db", "-f", cfg]
    die(f"unknown proxy {name}")


def wait_port(ns, port, limit=20.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        r = sh("ip", "netns", "exec", ns, "ss", "-Hltn", f"sport = :{port}",
               capture_output=True, text=True, check=False)
        if r.stdout.strip():
            return
        time.sleep(0.1)
    die(f"nothing listens on {port} in {ns} after {limit} s")


def one_run(name, rep, spliced_bin, run_dir, writer):
    ns = f"slowburst-{os.getpid()}"
    sh("ip", "netns", "add", ns)
    procs = []
    try:
        sh("ip", "-n", ns, "link", "set", "lo", "mtu", "1500", "up")
        sh("tc", "-n", ns, "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "1")
        for cls, rate in (("1:1", "100gbit"), ("1:10", RATE)):
            sh("tc", "-n", ns, "class", "add", "dev", "lo", "parent", "1:", "classid", cls,
               "htb", "rate", rate, "ceil", rate, "quantum", "60000")
        rules = ("add table inet burst\n"
                 "add chain inet burst out { type filter hook output priority 0; }\n"
                 f"add rule inet burst out tcp sport {PROXY_PORT} meta priority set 1:10\n")
        sh("ip", "netns", "exec", ns, "nft", "-f", "-", input=rules.encode())
        env = dict(ENV)
        if name.startswith("spliced-") and ENV.get("SPLICED_PRELOAD"):
            env["LD_PRELOAD"] = ENV["SPLICED_PRELOAD"]
        log = open(os.path.join(run_dir, f"{name}-{rep}.log"), "w")
        proxy = subprocess.Popen(
            ["ip", "netns", "exec", ns, "taskset", "-c", "0", "prlimit", f"--nofile={NOFILE}:{NOFILE}",
             *proxy_cmd(name, spliced_bin, run_dir)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        procs.append(proxy)
        load = subprocess.Popen(
            ["ip", "netns", "exec", ns, "taskset", "-c", "1", sys.executable,
             os.path.abspath(__file__), "--load"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=dict(ENV, N=str(N)))
        procs.append(load)
        if load.stdout.readline().strip() != "ready":
            die("the load did not start")
        wait_port(ns, PROXY_PORT)
        # `ip netns exec` and prlimit exec into the proxy: same pid.
        pid = proxy.pid
        t0 = time.monotonic()
        c0 = cpu_s(pid)

        def sample(phase):
            t = time.monotonic() - t0
            writer.writerow([name, rep, f"{t:.2f}", phase, pipe_fds(pid), f"{rss_mib(pid):.1f}",
                             f"{cpu_s(pid) - c0:.2f}"])
            return t

        while sample("before") < 2.0:
            time.sleep(INTERVAL)
        load.stdin.write("go\n")
        load.stdin.flush()
        deadline = time.monotonic() + BURST_LIMIT + 10
        dumped = False
        while load.poll() is None and time.monotonic() < deadline:
            if sample("burst") > 62 and not dumped:
                # A burst this long has stalled downloads: where their
                # bytes sit (Send-Q / Recv-Q of every socket).
                with open(os.path.join(run_dir, f"{name}-{rep}-ss.txt"), "w") as ssf:
                    sh("ip", "netns", "exec", ns, "ss", "-tnoi", stdout=ssf, check=False)
                dumped = True
            time.sleep(INTERVAL)
        if load.poll() is None:
            die(f"{name} rep {rep}: the burst did not end in {BURST_LIMIT} s")
        summary = json.loads(load.stdout.read().strip().splitlines()[-1])
        end = time.monotonic()
        while time.monotonic() - end < AFTER:
            sample("after")
            time.sleep(INTERVAL)
        return summary, end - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        sh("ip", "netns", "del", ns, check=False)


def summarize(rows, bursts):
    """Per proxy: before / peak / AFTER-s-after figures, min..max over reps."""
    out = []
    by = {}
    for r in rows:
        by.setdefault((r["proxy"], int(r["rep"])), []).append(r)
    for name in PROXIES:
        figs = []
        for (p, rep), rs in sorted(by.items()):
            if p != name:
                continue
            before = [r for r in rs if r["phase"] == "before"]
            during = [r for r in rs if r["phase"] != "before"]
            after = [r for r in rs if r["phase"] == "after"]
            last = after[-1]
            figs.append({
                "pipes_before": int(before[-1]["pipe_fds"]),
                "pipes_peak": max(int(r["pipe_fds"]) for r in during),
                "pipes_end": int(last["pipe_fds"]),
                "rss_before": float(before[-1]["rss_mib"]),
                "rss_peak": max(float(r["rss_mib"]) for r in during),
                "rss_end": float(last["rss_mib"]),
                "cpu": float(last["cpu_s"]),
                "burst_s": bursts[(name, rep)]["seconds"],
                "ok": bursts[(name, rep)]["ok"],
            })

        def span(key, fmt="{:.0f}"):
            vals = [f[key] for f in figs]
            med = statistics.median(vals)
            return f"{fmt.format(med)} [{fmt.format(min(vals))}..{fmt.format(max(vals))}]"

        out.append(
            f"{name:18} ok {span('ok')}/{N}  burst {span('burst_s', '{:.1f}')} s  "
            f"pipe fds before {span('pipes_before')} peak {span('pipes_peak')} "
            f"{AFTER:.0f}s-after {span('pipes_end')}  RSS MiB before {span('rss_before', '{:.1f}')} "
            f"peak {span('rss_peak', '{:.1f}')} {AFTER:.0f}s-after {span('rss_end', '{:.1f}')}  "
            f"CPU s {span('cpu', '{:.2f}')}")
    return "\n".join(out)


def plot(rows, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"spliced-splice": "tab:blue", "spliced-userspace": "tab:green", "haproxy": "tab:red"}
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    seen = set()
    for (name, rep), rs in sorted(group(rows).items()):
        # Aligned on the end of the burst (the last download's end), so
        # that what each proxy keeps afterwards lines up across reps.
        end = next(float(r["t"]) for r in rs if r["phase"] == "after")
        t = [float(r["t"]) - end for r in rs]
        label = name if name not in seen else None
        seen.add(name)
        c = colors.get(name)
        ax1.plot(t, [int(r["pipe_fds"]) for r in rs], color=c, alpha=0.6, label=label)
        ax2.plot(t, [float(r["rss_mib"]) for r in rs], color=c, alpha=0.6, label=label)
    ax1.set_ylabel("pipe fds")
    ax2.set_ylabel("RSS (MiB)")
    ax2.set_xlabel("seconds since the last download ended (the burst is before 0)")
    for ax in (ax1, ax2):
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlim(left=-45)
    ax1.set_title(f"{N} slow 1 MiB downloads (MTU 1500, {RATE} client leg), "
                  f"then {AFTER:.0f} s idle; {len({r['rep'] for r in rows})} reps each")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def group(rows):
    g = {}
    for r in rows:
        g.setdefault((r["proxy"], int(r["rep"])), []).append(r)
    return g


def main():
    if os.geteuid() != 0:
        die("needs root (network namespaces, nft, tc)")
    ensure_tools()
    global N
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Each client costs the proxy 2 sockets and up to 2 pipes (4 fds), and
    # the load process 2 sockets.
    room = NOFILE // 6 - 100
    if N > room:
        print(f"slow_burst: N lowered from {N} to {room} (fd limit)")
        N = room
    spliced_bin = ENV.get("SPLICED_BIN", os.path.join(ROOT, "target", "release", "spliced"))
    if any(p.startswith("spliced") for p in PROXIES) and not os.path.exists(spliced_bin):
        sh("cargo", "build", "--release", "-p", "spliced", cwd=ROOT)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    os.makedirs(OUT, exist_ok=True)
    base = os.path.join(OUT, f"slow-burst-{stamp}{'-' + TAG if TAG else ''}")
    run_dir = base + ".d"
    os.makedirs(run_dir, exist_ok=True)
    bursts = {}
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["proxy", "rep", "t", "phase", "pipe_fds", "rss_mib", "cpu_s"])
        for rep in range(1, REPS + 1):
            for name in PROXIES:
                summary, secs = one_run(name, rep, spliced_bin, run_dir, w)
                f.flush()
                bursts[(name, rep)] = summary
                print(f"rep {rep} {name}: {summary}", flush=True)
    with open(base + ".csv") as f:
        rows = list(csv.DictReader(f))
    text = summarize(rows, bursts)
    load = open("/proc/loadavg").read().split()[:3]
    header = (f"# bench/slow_burst.py N={N} SIZE={SIZE} RATE={RATE} REPS={REPS} AFTER={AFTER} "
              f"PIPE_IDLE={PIPE_IDLE} {'SPLICED_PRELOAD=' + ENV['SPLICED_PRELOAD'] if ENV.get('SPLICED_PRELOAD') else ''}\n"
              f"# {stamp}, nproc {os.cpu_count()}, kernel {os.uname().release}, load at end {' '.join(load)}\n"
              "# median [min..max] over reps\n")
    with open(base + ".txt", "w") as f:
        f.write(header + text + "\n")
    print(header + text)
    try:
        plot(rows, base + ".png")
        print(f"plot: {base}.png")
    except ImportError:
        print("no matplotlib: no plot (apt-get install python3-matplotlib)")
    print(f"csv: {base}.csv")


if __name__ == "__main__":
    if sys.argv[1:] == ["--load"]:
        load_main()
    elif sys.argv[1:2] == ["--plot"]:  # --plot CSV: draw CSV.png again
        with open(sys.argv[2]) as f:
            plot(list(csv.DictReader(f)), sys.argv[2].removesuffix(".csv") + ".png")
    else:
        main()
