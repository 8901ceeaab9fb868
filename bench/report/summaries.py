"""One line per test run for compare.sh's log (report.py *-summary)."""

import json

from .parse import connect_numbers, iperf_numbers, keepalive_numbers


def arg_num(s):
    return None if s in ("", "null", "None") else float(s)


def iperf(a):
    """report.py iperf-summary"""
    g, nbytes, cpu, cpg, retr, err = iperf_numbers(a[0], arg_num(a[1]), arg_num(a[2]), float(a[3]))
    if err:
        print(f"FAILED: {err}")
    else:
        print(f"{g:.2f} Gbit/s, {nbytes / 1e9:.2f} GB"
              + (f", proxy CPU {cpu:.2f} s = {cpg:.3f} s/GB" if cpg is not None else "")
              + (f", {retr} retransmits" if retr else ""))


def connect(a):
    """report.py connect-summary"""
    n, err = connect_numbers(a[0])
    if err:
        print(f"FAILED: {err}")
    else:
        print(f"{n['conns_per_sec']:,.0f} conn/s, p50 {n['p50_ms']:.3f} ms, p99 {n['p99_ms']:.3f} ms"
              + (f", {n['errors']} ERRORS {n['error_samples'][:2]}" if n["errors"] else ""))


def keepalive(a):
    """report.py keepalive-summary"""
    n, err = keepalive_numbers(a[0], arg_num(a[1]), arg_num(a[2]), float(a[3]))
    if err:
        print(f"FAILED: {err}")
    else:
        print(f"{n['req_per_sec']:,.0f} req/s"
              + (f", proxy CPU {n['cpu_us_per_req']:.2f} us/request" if n["cpu_us_per_req"] is not None else ""))


def syscalls(a):
    """report.py syscalls-summary"""
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


def idle(a):
    """report.py idle-summary"""
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


COMMANDS = {
    "iperf-summary": iperf,
    "connect-summary": connect,
    "keepalive-summary": keepalive,
    "syscalls-summary": syscalls,
    "idle-summary": idle,
}
