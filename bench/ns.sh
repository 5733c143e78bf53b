#!/usr/bin/env bash
# The namespace-setup benchmark (`npm run bench:ns`): compiles the C floor
# (bench/ns-floor.c, cc -O2), then runs `tsrun bench` with it, writing
# bench/results/ns.json and bench/results/ns.svg. Arguments go to tsrun bench
# (e.g. --iterations 200 --kinds uts,net --cpu 1 --fork); see `tsrun bench --help`.
# Needs root.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${TSRUN_BENCH_OUT:-$REPO/bench/results}
[ "$(id -u)" = 0 ] || { echo "ns.sh: needs root" >&2; exit 1; }
mkdir -p "$REPO/bench/.build" "$out"
cc -O2 -Wall -o "$REPO/bench/.build/ns-floor" "$REPO/bench/ns-floor.c"
exec "$REPO/bin/tsrun" bench --floor "$REPO/bench/.build/ns-floor" --output "$out/ns.json" --svg "$out/ns.svg" "$@"
