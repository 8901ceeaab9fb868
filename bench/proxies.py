#!/usr/bin/env python3
"""The table of configurations of bench/compare.sh (bench/proxies.toml).

  proxies.py list                           every entry: name, then about
  proxies.py table CONFIG...                one tab-separated line per CONFIG:
      name, threads, tests, needs, packages, optional (0|1), upstream,
      process (0|1), command, about
      (lists space-separated, "-" when empty); exits 1 on an unknown name
  proxies.py start CONFIG CONFIG_OUT KEY=VALUE...
      renders the entry's config template (if any) into CONFIG_OUT, then
      prints its command line NUL-separated: "env K=V ..." first when the
      entry sets an environment

Placeholders are {KEY}; an argument that is exactly {...KEY} becomes the
words of KEY. A placeholder without a KEY=VALUE is an error.
"""

import functools
import os
import re
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "proxies.toml")
TEMPLATES = os.path.join(HERE, "proxies")
ALL_TESTS = ("bulk", "connect", "keepalive", "idle", "syscalls")
PLACEHOLDER = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
WORDS = re.compile(r"^\{\.\.\.([A-Z][A-Z0-9_]*)\}$")


@functools.lru_cache(maxsize=1)
def entries():
    with open(TABLE, "rb") as f:
        return tomllib.load(f)["proxy"]


def find(name):
    """(entry, thread count or None) for a configuration name, or (None, None)."""
    for e in entries():
        pattern = e["name"]
        if pattern.endswith("-tN"):
            m = re.fullmatch(re.escape(pattern[:-1]) + r"([1-9][0-9]*)", name)
            if m:
                return e, m.group(1)
        elif pattern == name:
            return e, None
    return None, None


def field(name, key, default=None):
    """One field of a configuration's entry (default for an unknown name
    or a missing field): what bench/report/ reads of the table."""
    e, _ = find(name)
    return default if e is None else e.get(key, default)


def tests_of(e):
    tests = e.get("tests", list(ALL_TESTS))
    if "start" not in e:  # no process: nothing to count or hold connections in
        tests = [t for t in tests if t not in ("idle", "syscalls")]
    return tests


def words(v):
    return " ".join(v) if v else "-"


def substitute(text, values, where):
    def one(m):
        if m.group(1) not in values:
            raise SystemExit(f"proxies.py: {where}: no value for {{{m.group(1)}}}")
        return values[m.group(1)]
    return PLACEHOLDER.sub(one, text)


def start(name, config_out, assignments):
    e, threads = find(name)
    if e is None:
        raise SystemExit(f"proxies.py: unknown configuration: {name}")
    values = dict(a.split("=", 1) for a in assignments)
    values["NAME"] = name
    values["CONFIG"] = config_out
    if threads is not None:
        values["THREADS"] = threads
    if "config" in e:
        path = os.path.join(TEMPLATES, e["config"])
        with open(path) as f:
            text = substitute(f.read(), values, path)
        with open(config_out, "w") as f:
            f.write(text)
    argv = []
    env = e.get("env", {})
    if env:
        argv += ["env"] + [f"{k}={v}" for k, v in env.items()]
    for arg in e.get("start", []):
        m = WORDS.match(arg)
        if m:
            if m.group(1) not in values:
                raise SystemExit(f"proxies.py: {name}: no value for {arg}")
            argv += values[m.group(1)].split()
        else:
            argv.append(substitute(arg, values, name))
    sys.stdout.write("".join(a + "\0" for a in argv))


def main():
    cmd, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if cmd == "list":
        for e in entries():
            print(f"{e['name']}\t{e.get('about', '')}")
    elif cmd == "table":
        for name in args:
            e, threads = find(name)
            if e is None:
                print(f"proxies.py: unknown configuration: {name} (see bench/proxies.toml)", file=sys.stderr)
                sys.exit(1)
            print("\t".join([name, threads or "-", words(tests_of(e)), words(e.get("needs")),
                             words(e.get("packages")), "1" if e.get("optional") else "0",
                             e.get("upstream", "test"), "1" if "start" in e else "0", e.get("command", "-"),
                             " ".join(e.get("about", "-").split())]))
    elif cmd == "start" and len(args) >= 2:
        start(args[0], args[1], args[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
