#!/usr/bin/env bash
# The lifecycle benchmark: tsrun, runc and crun side by side, in ONE hyperfine
# invocation, over the same busybox bundle (process: /bin/true), plus Node's
# and the kernel's floors. Then bench/report.mjs prints medians and ratios and
# writes bench/results/lifecycle.{json,svg}.
#
#   bash bench/lifecycle.sh [--runs N] [--warmup N] [--out DIR] [--trace] [--tsrun PATH] [--isolate S] [--rounds N]
#
# --rounds N: list every command N times in the one invocation (rounds after
# the first named `... #k`; bench/report.mjs pools each command's runs). One
# round runs all of one command's runs in one stretch of the invocation, and
# this VM's speed drifts within one (Node's start by up to 4 ms): rounds
# spread every runtime's runs over it, so a drift favours none of them.
#
# --isolate S: sleep S seconds before every timed run (hyperfine --prepare),
# so each run starts after a quiet moment as a lone container start does.
# Back to back, a runtime's first cgroup.procs write finds the kernel's RCU
# grace period of the previous run still in effect and skips the wait it
# pays after a quiet spell (8-20 ms here; src/plan/cgroups.ts).
#
# Runtimes: tsrun (cold: Node starts per command), tsrun-warm (the same
# bin/tsrun with `tsrun engine start` serving its root, src/engine/), runc, crun.
#
# Benchmarks (hyperfine -N: no shell between hyperfine and the command):
#   <rt> run        `run` of /bin/true in the foreground (create, start, wait,
#                   delete in one command)
#   <rt> lifecycle  `sh lifecycle-<rt>.sh`: create --pid-file, start, wait,
#                   delete. The wait polls /proc/<pid>/stat in the shell until
#                   the init is gone or a zombie: runtime-neutral, where polling
#                   `state` would charge each poll a whole runtime start.
#   <rt> state      `state` of a running container
#   <rt> exec       `exec` of /bin/true into that running container (`sleep`)
#   node -e 0       Node's own start (NODE_EXTRA_CA_CERTS and NODE_OPTIONS
#                   unset for every command, as bin/tsrun unsets them)
#   unshare         `unshare --pid --mount --uts --ipc --net --fork true`
#
# Everything runs inside one private mount namespace with the cgroup2 mount
# of this hybrid host (/sys/fs/cgroup/unified) unmounted there: crun 1.8
# refuses hybrid layouts, and all three runtimes must see the same host.
# Needs root, hyperfine, runc, crun and jq (bash scripts/setup.sh installs them).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=30 warmup=5 out=$REPO/bench/results trace=0 tsrun=$REPO/bin/tsrun isolate= rounds=1

die() { echo "lifecycle.sh: $*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --out) out=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --trace) trace=1; shift ;;
    --tsrun) tsrun=$2; shift 2 ;;
    --isolate) isolate=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "lifecycle.sh: unknown argument $1" >&2; usage ;;
  esac
done
[[ $rounds =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
[ "$(id -u)" = 0 ] || die "needs root"
for tool in hyperfine runc crun jq node unshare; do
  command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/setup.sh installs it)"
done
[ -x "$tsrun" ] || die "$tsrun is missing: npm run build"

# One private mount namespace for all of it (re-exec once inside).
if [ -z "${TSRUN_BENCH_PRIVATE_NS:-}" ]; then
  exec env TSRUN_BENCH_PRIVATE_NS=1 unshare --mount --propagation private bash "${BASH_SOURCE[0]}" \
    --runs "$runs" --warmup "$warmup" --out "$out" --tsrun "$tsrun" $([ "$trace" = 1 ] && echo --trace) \
    ${isolate:+--isolate "$isolate"} --rounds "$rounds"
fi
if grep -q ' /sys/fs/cgroup/unified cgroup2 ' /proc/self/mountinfo 2>/dev/null || mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then
  umount /sys/fs/cgroup/unified
fi
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS

work=$(mktemp -d /tmp/tsrun-bench-lifecycle.XXXXXX)
declare -A BIN=([tsrun]=$tsrun [tsrun-warm]=$tsrun [runc]=$(command -v runc) [crun]=$(command -v crun))
RUNTIMES=(tsrun tsrun-warm runc crun)
# Container ids unique to this run and runtime: the default cgroup path comes
# from the id, so equal ids would share (and delete) each other's cgroups.
tag=${work##*.}
id() { echo "bench-$tag-$1-$2"; }
cleanup() {
  for rt in "${RUNTIMES[@]}"; do
    for c in ex lc r; do "${BIN[$rt]}" --root "$work/root-$rt" delete -f "$(id "$c" "$rt")" >/dev/null 2>&1 || true; done
  done
  "$tsrun" --root "$work/root-tsrun-warm" engine stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
# The warm rows' engine: in this mount namespace, as the launcher requires.
"$tsrun" --root "$work/root-tsrun-warm" engine start || die "tsrun engine start failed"

echo "lifecycle.sh: bundles in $work" >&2
bash "$REPO/scripts/make-bundle.sh" "$work/bundle" >/dev/null
jq '.process.args = ["true"]' "$work/bundle/config.json" >"$work/c.json" && mv "$work/c.json" "$work/bundle/config.json"
mkdir -p "$work/sleeper"
jq --arg root "$work/bundle/rootfs" '.root.path = $root | .process.args = ["sleep", "1000000"]' \
  "$work/bundle/config.json" >"$work/sleeper/config.json"

cmds=()
for rt in "${RUNTIMES[@]}"; do
  R="${BIN[$rt]} --root $work/root-$rt"
  cat >"$work/lifecycle-$rt.sh" <<EOF
#!/bin/sh
set -e
$R create --bundle $work/bundle --pid-file $work/lc-$rt.pid $(id lc "$rt")
$R start $(id lc "$rt")
pid=\$(cat $work/lc-$rt.pid)
while read -r _ _ s _ </proc/\$pid/stat 2>/dev/null && [ "\$s" != Z ]; do :; done
$R delete $(id lc "$rt")
EOF
  # The running container that state and exec use.
  $R run -d --bundle "$work/sleeper" "$(id ex "$rt")" </dev/null >/dev/null 2>&1 || die "$rt run -d failed"
  # A first run of each, outside the timing, so a broken setup fails here with its message.
  $R run --bundle "$work/bundle" "$(id r "$rt")" || die "$rt run failed"
  sh "$work/lifecycle-$rt.sh" || die "$rt create/start/delete failed"
  $R exec "$(id ex "$rt")" true || die "$rt exec failed"
done
for round in $(seq "$rounds"); do
  suffix=$([ "$round" = 1 ] || echo " #$round")
  for bench in run lifecycle state exec; do
    for rt in "${RUNTIMES[@]}"; do
      R="${BIN[$rt]} --root $work/root-$rt"
      case $bench in
        run) cmd="$R run --bundle $work/bundle $(id r "$rt")" ;;
        lifecycle) cmd="sh $work/lifecycle-$rt.sh" ;;
        state) cmd="$R state $(id ex "$rt")" ;;
        exec) cmd="$R exec $(id ex "$rt") true" ;;
      esac
      cmds+=(-n "$rt $bench$suffix" "$cmd")
    done
  done
  cmds+=(-n "node -e 0$suffix" "node -e 0")
  cmds+=(-n "unshare$suffix" "unshare --pid --mount --uts --ipc --net --fork true")
done

mkdir -p "$out"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$("$tsrun" --root "$work/root-tsrun-warm" engine status | jq .served)" -gt 0 ] || die "the warm rows did not reach the engine"
prepare=()
[ -n "$isolate" ] && prepare=(--prepare "sleep $isolate")
hyperfine -N -i --warmup "$warmup" --runs "$runs" "${prepare[@]}" --export-json "$out/hyperfine.json" "${cmds[@]}"
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# The conditions of the run, beside hyperfine's results, for the report.
jq --arg date "$(date -u +%FT%TZ)" --argjson runs "$runs" --argjson warmup "$warmup" \
  --arg before "$load_before" --arg after "$load_after" --argjson cpus "$(nproc)" \
  --arg kernel "$(uname -r)" --arg tsrun "$("$tsrun" --version | head -1)" \
  --arg runc "$(runc --version | head -1)" --arg crun "$(crun --version | head -1)" \
  --arg node "$(node --version)" --arg hyperfine "$(hyperfine --version)" --arg isolate "$isolate" \
  --argjson rounds "$rounds" \
  '.tsrunBench = {date: $date, runs: $runs, warmup: $warmup, rounds: $rounds, cpus: $cpus, kernel: $kernel,
     isolateSeconds: (if $isolate == "" then null else ($isolate | tonumber) end),
     loadavgBefore: ($before | split(" ") | map(tonumber)), loadavgAfter: ($after | split(" ") | map(tonumber)),
     versions: {tsrun: $tsrun, runc: $runc, crun: $crun, node: $node, hyperfine: $hyperfine},
     cgroups: "v1 (cgroup2 at /sys/fs/cgroup/unified unmounted in a private mount namespace)"}' \
  "$out/hyperfine.json" >"$out/hyperfine.json.tmp" && mv "$out/hyperfine.json.tmp" "$out/hyperfine.json"

echo >&2
node "$REPO/bench/report.mjs" "$out/hyperfine.json" --out "$out"

if [ "$trace" = 1 ]; then
  echo; echo "Where one tsrun run's milliseconds go (TSRUN_TRACE=1):"
  TSRUN_TRACE=1 "$tsrun" --root "$work/root-tsrun" run --bundle "$work/bundle" "$(id r tsrun)"
fi
