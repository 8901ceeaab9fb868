#!/usr/bin/env bash
# pipepool as a user of crates.io gets it: with default features (the rest
# of CI runs --all-features), the package that `cargo publish` would
# upload, built from that package alone against crates.io dependencies,
# and the MSRV that Cargo.toml declares.
set -euo pipefail
cd "$(dirname "$0")/.."

# Default features, no tokio: every target compiles without the feature
# with warnings denied (the tokio_* tests compile to nothing), and the
# library's unit tests and doctests run. The other integration tests test
# the same code with or without the feature, and ci/test.sh ran them.
cargo clippy -p pipepool --all-targets -- -D warnings
cargo test -p pipepool --lib
cargo test -p pipepool --doc

# The examples (all features) were built by ci/test.sh: `cargo test` builds
# every example.

# Packs the crate and compiles the packed copy (with the tokio feature too)
# as crates.io would. --allow-dirty so that it also runs by hand on a work
# tree with changes; CI runs on a fresh clone.
cargo publish --dry-run --allow-dirty -p pipepool --all-features

# The declared MSRV (its toolchain comes from ci/install.sh).
msrv=$(sed -n 's/^rust-version = "\(.*\)"$/\1/p' Cargo.toml)
if rustup run "$msrv" rustc --version >/dev/null 2>&1; then
  CARGO_TARGET_DIR=target/msrv cargo "+$msrv" check -p pipepool --all-features
  CARGO_TARGET_DIR=target/msrv cargo "+$msrv" check -p pipepool
else
  echo "package: MSRV check skipped: toolchain $msrv is not installed (see ci/install.sh)"
fi
