#!/usr/bin/env bash
# bench/connect_proxy.sh: proxy CPU per GB through the CONNECT proxy example
# (hyper), pipepool's splice with the read-ahead as prefix vs the same proxy
# with tokio::io::copy_bidirectional on the Upgraded; interleaved reps,
# min / median / max, the per-rep ratio. See bench/connect_proxy.py.
#
#   bench/connect_proxy.sh                      # REPS=5, GB=4 per run
#   QUICK=1 bench/connect_proxy.sh              # smoke: 2 reps, 0.2 GB
#
# Environment (all optional): REPS, GB, PROXY_CPU=0, LOAD_CPU=1,
# BASE_PORT=21500, PROFILE=release|debug (debug: no release build, for a
# smoke run only; its figures mean nothing).

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QUICK=${QUICK:-0}
if [[ $QUICK == 1 ]]; then
    REPS=${REPS:-2}; GB=${GB:-0.2}
else
    REPS=${REPS:-5}; GB=${GB:-4}
fi
PROFILE=${PROFILE:-release}
if [[ $PROFILE == release ]]; then
    cargo build --release -p pipepool --features tokio --example connect_proxy
else
    cargo build -p pipepool --features tokio --example connect_proxy
fi
exec python3 "$ROOT/bench/connect_proxy.py" \
    --bin "$ROOT/target/$PROFILE/examples/connect_proxy" \
    --reps "$REPS" --gb "$GB" --port "${BASE_PORT:-21500}" \
    --proxy-cpu "${PROXY_CPU:-0}" --load-cpu "${LOAD_CPU:-1}"
