#!/usr/bin/env bash
# The test command README.md gives: every test of the workspace, with the
# tokio feature, doctests included, and every example built.
set -euo pipefail
cargo test --workspace --all-features
