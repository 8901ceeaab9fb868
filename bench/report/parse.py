"""Reading what the tools wrote: iperf3 -J, `spliced bench --json`, kaload."""

import json


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def iperf_numbers(path, before, after, clk_tck):
    """(gbit/s, bytes, cpu seconds, cpu s/GB, retransmits, error) of one iperf3 -J run."""
    doc = load_json(path)
    if doc is None:
        return None, None, None, None, None, "no JSON from iperf3"
    if doc.get("error"):
        return None, None, None, None, None, doc["error"]
    try:
        recv = doc["end"]["sum_received"]
        nbytes = int(recv["bytes"])
        gbps = recv["bits_per_second"] / 1e9
        retr = doc["end"].get("sum_sent", {}).get("retransmits")
    except (KeyError, TypeError):
        return None, None, None, None, None, "iperf3 JSON without end.sum_received"
    cpu = cpu_per_gb = None
    if before is not None and after is not None:
        cpu = (after - before) / clk_tck
        cpu_per_gb = cpu / (nbytes / 1e9) if nbytes else None
    return gbps, nbytes, cpu, cpu_per_gb, retr, None


def connect_numbers(path):
    """The parts of `spliced bench --mode connect --json` we use, or an error."""
    doc = load_json(path)
    if doc is None:
        return None, "no JSON from spliced bench"
    try:
        lat = doc["latency_us"]
        fails = doc.get("failures", {})
        return {
            "conns_per_sec": float(doc["conns_per_sec"]),
            "connections": int(doc["connections"]),
            "p50_ms": lat["p50"] / 1000.0,
            "p99_ms": lat["p99"] / 1000.0,
            "max_ms": lat["max"] / 1000.0,
            "errors": int(fails.get("errors", 0)),
            "mismatches": int(fails.get("mismatches", 0)),
            "error_samples": fails.get("samples", []),
        }, None
    except (KeyError, TypeError, ValueError) as e:
        return None, f"unexpected spliced bench JSON ({e})"


def keepalive_numbers(path, before, after, clk_tck):
    """req/s and proxy CPU us per request of one `relays --mode kaload` run."""
    doc = load_json(path)
    if doc is None:
        return None, "no JSON from relays --mode kaload"
    try:
        req = int(doc["requests"])
        secs = float(doc["secs"])
    except (KeyError, TypeError, ValueError) as e:
        return None, f"unexpected kaload JSON ({e})"
    cpu_us = None
    if before is not None and after is not None and req:
        cpu_us = (after - before) / clk_tck / req * 1e6
    return {"requests": req, "req_per_sec": req / secs if secs else None, "cpu_us_per_req": cpu_us}, None
