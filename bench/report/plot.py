"""The gnuplot data of bench/plot.gp: one row per configuration."""

from .figures import BULK_TESTS


def write(d, path):
    """For each bulk test median, min, max (Gbit/s), then the same for CPU
    s/GB, then CPU us per short connection (first client count) and per
    keep-alive request; "?" where there is no figure."""
    small = [f"connect{d.clients[0]}_cpu_us_per_conn" if d.clients else None, "ka_cpu_us_per_req"]
    with open(path, "w") as f:
        f.write("# config " + " ".join(f"gbps{t} lo hi" for t, _ in BULK_TESTS) + " "
                + " ".join(f"cpu{t} lo hi" for t, _ in BULK_TESTS) + " us_per_conn lo hi us_per_req lo hi\n")
        for c in d.configs:
            g = [d.get(c, f"bulk{t}_gbps") for t, _ in BULK_TESTS]
            cp = [d.get(c, f"bulk{t}_cpu_s_per_gb") for t, _ in BULK_TESTS]
            sm = [d.get(c, m) if m else None for m in small]
            if all(v is None for v in g + cp + sm):
                continue
            cells = []
            for sp in g + cp + sm:
                cells += ["?", "?", "?"] if sp is None else [f"{sp[1]:.4f}", f"{sp[0]:.4f}", f"{sp[2]:.4f}"]
            f.write(c + " " + " ".join(cells) + "\n")
