#!/usr/bin/env bash
# What the tests need beyond Rust. The unprivileged tests drop to user
# `nobody` (present in Debian's base image); crates/spliced/tests/it/syscalls.rs
# counts spliced's system calls with strace (Debian package, installed here
# when missing). rustfmt and clippy ship with the toolchain here; the
# toolchain of the MSRV (rust-version in Cargo.toml, for ci/package.sh)
# comes from rustup when it can be fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
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
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
# A toolchain download may be refused on a machine that reaches only the
# package registries: then ci/package.sh says so and skips the MSRV check.
rustup run "$msrv" rustc --version >/dev/null 2>&1 ||
  timeout 300 rustup toolchain install "$msrv" --profile minimal ||
  echo "install: the MSRV toolchain $msrv could not be installed"
# The PROXY protocol test puts HAProxy in front of and behind spliced.
command -v haproxy >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
}
# The network-fault tests (crates/spliced/tests/it/netfaults) and the
# health-check tests set their faults with nftables and tc (iproute2)
# inside network namespaces they create (ip netns).
command -v nft >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nftables >/dev/null
}
command -v tc >/dev/null && command -v ip >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null
}
