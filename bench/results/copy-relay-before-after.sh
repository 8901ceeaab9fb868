#!/usr/bin/env bash
# Interleaved before/after of the sync copy and the async relay (issue 10):
# pipepool at 363d1a9 (before issues 9-11) vs main, 5 reps, 1 MiB cases.
set -u
NEW_COPY=/work/main/target/release/deps/copy-ab2178df03072a4c
NEW_RELAY=/work/main/target/release/deps/relay-273f78ee44383eae
OLD_COPY=/tmp/base363/target/release/deps/copy-da9183c5c1d654a8
OLD_RELAY=/tmp/base363/target/release/deps/relay-da33edef0396f92d
ARGS="--bench --noplot --warm-up-time 0.5 --measurement-time 2"
for rep in 1 2 3 4 5; do
  for which in old new; do
    if [ $which = old ]; then C=$OLD_COPY; R=$OLD_RELAY; D=/tmp/base363; else C=$NEW_COPY; R=$NEW_RELAY; D=/work/main; fi
    for case in copy/tcp_to_tcp/pipepool/1MiB copy/tcp_to_file/pipepool/1MiB; do
      (cd $D/crates/pipepool && taskset -c 0 $C $ARGS --exact $case 2>&1 | grep -A3 "^$case" | sed "s|^|$rep $which |")
    done
    for case in relay/1/pipepool/1MiB relay/4/pipepool/1MiB; do
      (cd $D/crates/pipepool && $R $ARGS --exact $case 2>&1 | grep -A3 "^$case" | sed "s|^|$rep $which |")
    done
  done
done
