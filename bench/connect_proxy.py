#!/usr/bin/env python3
"""CPU per GB through the CONNECT proxy example (crates/pipepool/examples/
connect_proxy.rs): pipepool's splice (the upgraded connection downcast to
its TcpStream, hyper's read-ahead as the prefix) against the same proxy
with tokio::io::copy_bidirectional on the Upgraded. Run by
bench/connect_proxy.sh, which builds the example; see there for the
environment.

Each rep runs every mode once, interleaved (splice tokio splice tokio ...).
A run: start the proxy pinned to PROXY_CPU, a sink server and a client
pinned to LOAD_CPU; the client sends CONNECT, reads the 200, streams GB
gigabytes in 1 MiB writes and shuts down; the sink counts them. The
proxy's CPU is utime + stime from /proc/PID/stat before and after the
stream (its start-up excluded). Prints min / median / max of CPU s/GB and
GB/s per mode, and the per-rep ratio splice/tokio of CPU s/GB.
"""

import argparse
import multiprocessing as mp
import os
import socket
import statistics
import subprocess
import time

CHUNK = 1 << 20


def proxy_cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of stat(5); fields[0] here is 3.
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def sink(listener, done):
    conn, _ = listener.accept()
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    total = 0
    while True:
        n = conn.recv_into(view)
        if n == 0:
            break
        total += n
    conn.close()
    done.send(total)


def wait_listening(port, deadline=10.0):
    start = time.monotonic()
    while time.monotonic() - start < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the proxy did not listen on {port}")


def one_run(binary, mode, port, nbytes, proxy_cpu, load_cpu):
    args = ["taskset", "-c", str(proxy_cpu), binary, f"127.0.0.1:{port}"]
    if mode == "tokio":
        args.append("--tokio")
    proxy = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    try:
        wait_listening(port)
        os.sched_setaffinity(0, {load_cpu})
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        target = listener.getsockname()[1]
        ours, theirs = mp.Pipe()
        sinker = mp.Process(target=sink, args=(listener, theirs))
        sinker.start()
        client = socket.create_connection(("127.0.0.1", port))
        client.sendall(f"CONNECT 127.0.0.1:{target} HTTP/1.1\r\nHost: 127.0.0.1:{target}\r\n\r\n".encode())
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            byte = client.recv(1)
            if not byte:
                raise SystemExit("the proxy closed before answering")
            head += byte
        if not head.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"the proxy answered {head!r}")
        chunk = b"\x5a" * CHUNK
        cpu0 = proxy_cpu_seconds(proxy.pid)
        t0 = time.monotonic()
        sent = 0
        while sent < nbytes:
            client.sendall(chunk)
            sent += CHUNK
        client.shutdown(socket.SHUT_WR)
        got = ours.recv()
        wall = time.monotonic() - t0
        cpu = proxy_cpu_seconds(proxy.pid) - cpu0
        client.close()
        sinker.join()
        listener.close()
        if got != sent:
            raise SystemExit(f"{mode}: sent {sent} bytes, the sink got {got}")
        return cpu / (sent / 1e9), sent / 1e9 / wall
    finally:
        proxy.terminate()
        proxy.wait()


def spread(values, fmt):
    return f"{fmt.format(min(values))} / {fmt.format(statistics.median(values))} / {fmt.format(max(values))}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--bin", required=True)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--gb", type=float, default=4.0)
    p.add_argument("--port", type=int, default=21500)
    p.add_argument("--proxy-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    a = p.parse_args()
    nbytes = int(a.gb * 1e9) // CHUNK * CHUNK or CHUNK
    modes = ["splice", "tokio"]
    results = {m: [] for m in modes}
    for rep in range(a.reps):
        for i, mode in enumerate(modes):
            cpu_per_gb, gbps = one_run(a.bin, mode, a.port + 2 * rep + i, nbytes, a.proxy_cpu, a.load_cpu)
            results[mode].append((cpu_per_gb, gbps))
            print(f"rep {rep + 1} {mode:6}  {cpu_per_gb:.3f} CPU s/GB  {gbps:.2f} GB/s", flush=True)
    print(f"\n{nbytes / 1e9:.2f} GB per run, {a.reps} reps, min / median / max")
    print("| relay | proxy CPU s/GB | GB/s |")
    print("|---|---|---|")
    for mode in modes:
        cpu = [r[0] for r in results[mode]]
        gbps = [r[1] for r in results[mode]]
        print(f"| {mode} | {spread(cpu, '{:.3f}')} | {spread(gbps, '{:.2f}')} |")
    ratios = [s[0] / t[0] for s, t in zip(results["splice"], results["tokio"]) if t[0] > 0]
    if ratios:
        print(f"\nCPU s/GB splice / tokio, per rep: {spread(ratios, '{:.2f}')}")


if __name__ == "__main__":
    main()
