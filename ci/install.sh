#!/usr/bin/env bash
# What the tests need beyond Rust. The unprivileged tests drop to user
# `nobody` (present in Debian's base image); nothing else is needed from
# outside crates.io. rustfmt and clippy ship with the toolchain here.
set -euo pipefail
id nobody >/dev/null
for c in rustfmt clippy; do
  cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$c"
done
# The PROXY protocol test puts HAProxy in front of and behind spliced.
command -v haproxy >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
}
