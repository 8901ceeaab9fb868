#!/usr/bin/env bash
# What the tests need beyond Rust. The unprivileged tests drop to user
# `nobody` (present in Debian's base image); crates/spliced/tests/syscalls.rs
# counts spliced's system calls with strace (Debian package, installed here
# when missing). rustfmt and clippy ship with the toolchain here.
set -euo pipefail
id nobody >/dev/null
if ! command -v strace >/dev/null 2>&1; then
  sudo=()
  ((EUID == 0)) || sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q strace
fi
for c in rustfmt clippy; do
  cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1 || rustup component add "$c"
done
