#!/usr/bin/env python3
"""System calls a proxy makes per connection and per request, counted by strace.

  syscalls.py measure --pid PID --target HOST:PORT [--short N] [--keepalive N] [--json]
  syscalls.py client short --target HOST:PORT --n N          (the load alone)
  syscalls.py client keepalive --target HOST:PORT --n N

`measure` attaches `strace -f -c -p PID` (every thread of the proxy) and
drives sequential clients through it, one at a time:

- short connection: connect, send 1 KiB, shutdown(SHUT_WR) (half-close),
  read until the 1 KiB has come back and then until EOF, close. The
  upstream must be an echo server that echoes until EOF and then closes
  (`spliced bench --serve --echo` does).
- keep-alive request: on one connection, send 1 KiB and read the 1 KiB
  echo, N times.

Each figure is a difference of two strace sessions, so that what does not
scale with the load (strace attaching and detaching, which interrupts an
`epoll_wait`, the connection set-up of the keep-alive run) cancels:

  per short connection = (calls over 2N connections - calls over N) / N
  per keep-alive request = (calls over 2N requests - calls over N) / N

Counts are exact for a given run; they vary only where the proxy's own
behaviour does (timers, how many events one epoll_wait returns). The JSON
has the total and every call name.
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

SIZE = 1024
PAYLOAD = bytes((i * 7 + 3) % 251 for i in range(SIZE))


def addr(s):
    host, _, port = s.rpartition(":")
    return host.strip("[]"), int(port)


def short(target, n):
    for i in range(n):
        with socket.create_connection(target, timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(PAYLOAD)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
            if got != PAYLOAD:
                raise RuntimeError(f"short connection {i}: {len(got)} bytes came back, "
                                   f"{'same' if got == PAYLOAD[:len(got)] else 'different'} "
                                   f"(expected the {SIZE} bytes sent, then EOF)")


def keepalive(target, n):
    with socket.create_connection(target, timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(n):
            s.sendall(PAYLOAD)
            got = b""
            while len(got) < SIZE:
                b = s.recv(SIZE - len(got))
                if not b:
                    raise RuntimeError(f"keep-alive request {i}: connection closed after {len(got)} bytes")
                got += b
            if got != PAYLOAD:
                raise RuntimeError(f"keep-alive request {i}: echoed bytes differ")


LINE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+\s+)?(\w+)\s*$")


def parse_strace_c(path):
    """{syscall: calls} from a `strace -c` table (the errors column is ignored)."""
    calls = {}
    with open(path) as f:
        for line in f:
            m = LINE.match(line)
            if m and m.group(3) != "total":
                calls[m.group(3)] = int(m.group(1))
    return calls


def session(pid, fn, target, n):
    """Runs fn(target, n) while strace -f -c counts PID's system calls."""
    with tempfile.NamedTemporaryFile("w+", suffix=".strace", delete=False) as tf:
        out = tf.name
    st = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(pid)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # strace says "Process N attached" on stderr once per thread.
    deadline = time.monotonic() + 10
    line = ""
    while time.monotonic() < deadline:
        line = st.stderr.readline()
        if "attached" in line or not line:
            break
    if "attached" not in line:
        st.kill()
        rest = st.stderr.read()
        raise RuntimeError(f"strace could not attach to {pid}: {line.strip()} {rest.strip()}")
    time.sleep(0.3)  # the other threads
    try:
        fn(target, n)
        time.sleep(0.2)  # let the last connection's teardown finish in the proxy
    finally:
        st.send_signal(signal.SIGINT)
        try:
            st.wait(timeout=10)
        except subprocess.TimeoutExpired:
            st.kill()
            st.wait()
    calls = parse_strace_c(out)
    os.unlink(out)
    return calls


def per_unit(pid, fn, target, n):
    a = session(pid, fn, target, n)
    b = session(pid, fn, target, 2 * n)
    names = sorted(set(a) | set(b))
    diff = {k: (b.get(k, 0) - a.get(k, 0)) / n for k in names}
    diff = {k: v for k, v in diff.items() if abs(v) >= 0.005}
    return {"per": round(sum(diff.values()), 3), "by_call": {k: round(v, 3) for k, v in
                                                            sorted(diff.items(), key=lambda kv: -kv[1])},
            "n": n, "calls_n": sum(a.values()), "calls_2n": sum(b.values())}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--pid", type=int, required=True)
    m.add_argument("--target", required=True)
    m.add_argument("--short", type=int, default=200, help="N short connections (0: skip)")
    m.add_argument("--keepalive", type=int, default=500, help="N keep-alive requests (0: skip)")
    c = sub.add_parser("client")
    c.add_argument("kind", choices=["short", "keepalive"])
    c.add_argument("--target", required=True)
    c.add_argument("--n", type=int, required=True)
    a = p.parse_args()
    target = addr(a.target)
    if a.cmd == "client":
        (short if a.kind == "short" else keepalive)(target, a.n)
        return
    res = {}
    try:
        if a.short:
            res["short"] = per_unit(a.pid, short, target, a.short)
        if a.keepalive:
            res["keepalive"] = per_unit(a.pid, keepalive, target, a.keepalive)
    except (OSError, RuntimeError) as e:
        res["error"] = str(e)
    print(json.dumps(res))
    if "error" in res:
        sys.exit(1)


if __name__ == "__main__":
    main()
