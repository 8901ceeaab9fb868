"""Section: system calls per short connection and per keep-alive request,
by call name, one column per configuration."""

from .stats import fmt, table


def render(d, out):
    for kind, label, n_env in (("short", "per short connection (1 KiB up, half-close, 1 KiB back, close)",
                                "SYSCALL_SHORT"),
                               ("keepalive", "per keep-alive request (1 KiB each way)", "SYSCALL_KA")):
        cs = [c for c in d.configs if kind in d.syscalls.get(c, {})]
        if not cs:
            continue
        names = []
        for c in cs:
            for name in d.syscalls[c][kind]["by_call"]:
                if name not in names:
                    names.append(name)
        rows = [["total"] + [fmt(d.syscalls[c][kind]["per"], 2) for c in cs]]
        for name in sorted(names, key=lambda n: -max(d.syscalls[c][kind]["by_call"].get(n, 0) for c in cs)):
            rows.append([name] + [fmt(d.syscalls[c][kind]["by_call"].get(name), 2) for c in cs])
        out.append(table(["system call"] + cs, rows,
                         f"System calls {label}: strace -f -c -p PID, sequential client, "
                         f"(count over 2N - count over N) / N, N = {d.env.get(n_env)}"))
        out.append("")
