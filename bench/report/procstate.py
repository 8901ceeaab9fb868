"""A running proxy's state for the idle test: RSS, fds by kind, its own pipe counts."""

import os
import re
import socket
import urllib.request

from proxies import field  # bench/proxies.py: what to read of each configuration


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
    state = field(name, "state")
    if state == "metrics":
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
                text = r.read().decode()
            st["metrics"] = {
                k: float(v) for k, v in re.findall(r"^((?:pipepool|spliced)_[a-z_]+(?:\{[^}]*\})?) (\S+)$", text, re.M)
                if k.startswith("pipepool_") or k.startswith("spliced_connections")
            }
        except Exception as e:  # reported, never fatal
            st["metrics_error"] = str(e)
    elif state == "stats-socket":
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
