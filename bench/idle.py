#!/usr/bin/env python3
"""Idle-connection load for bench/compare.sh (standard library only).

  idle.py serve --listen 127.0.0.1:PORT
      Upstream: accepts any number of connections, echoes what it gets and
      keeps each connection open until the peer closes it.

  idle.py hold --target 127.0.0.1:PORT --conns N [--parallel P] [--timeout S] [--hold S]
      Client: opens N connections to TARGET (at most P handshakes at a time),
      sends one byte on each and waits for it to come back (so the proxy has
      connected upstream and forwarded in both directions), then prints one
      line of JSON {"ok": ..., "failed": ..., "open_secs": ...} and keeps every
      connection open and idle until it is killed or --hold seconds pass.
      It stops opening early once 2% (at least 50) have failed: the proxy is
      at a limit.

Only loopback targets are accepted. Raise `ulimit -n` first: each process
needs one fd per connection.
"""

import argparse
import asyncio
import json
import sys
import time


def loopback(addr):
    host, _, port = addr.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        sys.exit(f"idle.py: {addr}: only loopback addresses are allowed")
    return host.strip("[]"), int(port)


async def serve(listen):
    host, port = loopback(listen)

    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port, backlog=4096)
    print(json.dumps({"listening": listen}), flush=True)
    async with server:
        await server.serve_forever()


async def hold(target, conns, parallel, timeout, hold_secs):
    host, port = loopback(target)
    gate = asyncio.Semaphore(parallel)
    held = []
    errors = {}
    # Stop opening once this many have failed: the proxy is at a limit
    # (e.g. out of fds) and every further attempt would only time out.
    max_failures = max(50, conns // 50)
    give_up = asyncio.Event()

    async def one():
        async with gate:
            if give_up.is_set():
                errors["not tried"] = errors.get("not tried", 0) + 1
                return False
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), timeout=3)
                writer.write(b"x")
                await writer.drain()
                got = await asyncio.wait_for(reader.readexactly(1), timeout=3)
                if got != b"x":
                    raise ValueError("wrong byte back")
                held.append((reader, writer))
                return True
            except Exception as e:  # counted and reported, never fatal
                key = type(e).__name__ + (f" {e.errno}" if isinstance(e, OSError) and e.errno else "")
                errors[key] = errors.get(key, 0) + 1
                if sum(v for k, v in errors.items() if k != "not tried") >= max_failures:
                    give_up.set()
                return False

    start = time.monotonic()
    try:
        await asyncio.wait_for(
            asyncio.gather(*(one() for _ in range(conns))), timeout=timeout)
    except asyncio.TimeoutError:
        errors["timeout"] = conns - len(held) - sum(errors.values())
    ok = len(held)
    report = {
        "ok": ok,
        "failed": conns - ok,
        "gave_up": give_up.is_set(),
        "errors": errors,
        "open_secs": round(time.monotonic() - start, 3),
    }
    print(json.dumps(report), flush=True)

    # Idle until killed, or --hold passes.
    await asyncio.sleep(hold_secs)
    for _, writer in held:
        writer.close()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--listen", required=True)
    h = sub.add_parser("hold")
    h.add_argument("--target", required=True)
    h.add_argument("--conns", type=int, default=10000)
    h.add_argument("--parallel", type=int, default=200)
    h.add_argument("--timeout", type=float, default=60.0, help="bound on opening all connections")
    h.add_argument("--hold", type=float, default=300.0, help="bound on holding them")
    a = p.parse_args()
    try:
        if a.cmd == "serve":
            asyncio.run(serve(a.listen))
        else:
            asyncio.run(hold(a.target, a.conns, a.parallel, a.timeout, a.hold))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
