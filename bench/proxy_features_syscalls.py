#!/usr/bin/env python3
"""Syscalls per connection that spliced's PROXY protocol and SNI features
add, counted exactly with `strace -f -c` on a one-worker proxy while N
sequential clients each send 100 bytes and read them back.

    cargo build -p spliced && python3 bench/proxy_features_syscalls.py [N] [BIN]

Exact counts (not timing), so they may be taken on a busy machine.
epoll_wait varies with scheduling; the other rows are exact.
"""
import re
import socket
import subprocess
import sys
import threading

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
BIN = sys.argv[2] if len(sys.argv) > 2 else 'target/debug/spliced'


def upstream(strip_header):
    """An echo server on a thread; strips a PROXY header first if asked."""
    l = socket.socket()
    l.bind(('127.0.0.1', 0))
    l.listen(512)

    def serve():
        while True:
            c, _ = l.accept()
            buf = b''
            if strip_header:
                while len(buf) < 16:
                    buf += c.recv(4096)
                if buf.startswith(b'\r\n\r\n\0'):
                    end = 16 + int.from_bytes(buf[14:16], 'big')
                else:
                    while b'\r\n' not in buf:
                        buf += c.recv(4096)
                    end = buf.index(b'\r\n') + 2
                while len(buf) < end:
                    buf += c.recv(4096)
                buf = buf[end:]
            while len(buf) < 100:
                d = c.recv(4096)
                if not d:
                    break
                buf += d
            c.sendall(buf)
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    return l.getsockname()[1]


def run(name, extra, prefix=b'', strip=False):
    up = upstream(strip)
    out = f'/tmp/spliced-syscalls-{name}.strace'
    p = subprocess.Popen(
        ['strace', '-f', '-c', '-o', out, BIN, 'run', '--listen', '127.0.0.1:0',
         '--upstream', f'127.0.0.1:{up}', '--worker-threads', '1', '--log-level', 'warn'] + extra,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = None
    for line in p.stdout:
        if 'listening on' in line:
            port = int(line.split('listening on ')[1].split()[0].rsplit(':', 1)[1])
            break
    assert port, f'{name}: spliced did not start'
    for _ in range(N):
        s = socket.create_connection(('127.0.0.1', port))
        s.sendall(prefix + b'x' * 100)
        got = b''
        while len(got) < 100:
            d = s.recv(4096)
            if not d:
                break
            got += d
        assert got == b'x' * 100, (name, got[:40])
        s.close()
    # SIGTERM to spliced itself (strace would not pass it on and exit).
    child = int(subprocess.check_output(['pgrep', '-P', str(p.pid)]).split()[0])
    subprocess.run(['kill', str(child)], check=True)
    p.wait()
    rows = {}
    for line in open(out):
        m = re.match(r'\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$', line)
        if m:
            rows[m.group(2)] = int(m.group(1))
    return rows


base = run('plain', [])
print('plain, per connection:',
      {k: round(v / N, 2) for k, v in sorted(base.items()) if v / N >= 0.05})
for name, extra, prefix, strip in [
    ('send_proxy_v2', ['--send-proxy', 'v2'], b'', True),
    ('accept_proxy', ['--accept-proxy', '--accept-proxy-from', '127.0.0.1'], b'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n', False),
    ('route_plain_client', ['--route', 'a.example=127.0.0.1:9'], b'', False),
]:
    rows = run(name, extra, prefix, strip)
    diff = {k: round((rows.get(k, 0) - base.get(k, 0)) / N, 2) for k in set(rows) | set(base)}
    diff = {k: v for k, v in sorted(diff.items()) if abs(v) >= 0.05}
    print(f'{name}: per connection, more than plain: {diff}')
