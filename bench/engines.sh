#!/usr/bin/env bash
# Engine latency: `ctr run --rm` (containerd 1.6, runc v2 shim) and `docker
# run --rm` (dockerd 20.10) of /bin/true in the busybox image, with tsrun,
# runc and crun as the runtime: six commands in ONE hyperfine invocation.
# Writes bench/results/engines.json (medians, means, spread, ratios) and
# prints a table.
#
#   bash bench/engines.sh [--runs N] [--warmup N] [--out DIR] [--tsrun PATH]
#
# Defaults: 10 runs and 2 warm-ups per command (about a minute in all).
# A private containerd and dockerd (own root, state, sockets, exec-root,
# data-root, cgroup parents; no bridge, no iptables, nothing on TCP) are
# started for the run and stopped, with everything they made, at the end.
# The whole run (daemons, shims, runtimes) happens in one private mount
# namespace where this hybrid host's cgroup2 mount (/sys/fs/cgroup/unified)
# is unmounted: crun 1.8 refuses hybrid layouts, and all three runtimes must
# see the same host. Needs root, hyperfine, jq, runc, crun, containerd,
# docker.io, umoci and skopeo (bash scripts/setup.sh installs them).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=10 warmup=2 out=$REPO/bench/results tsrun=$REPO/bin/tsrun
DOCKER=/usr/bin/docker # Debian's client (/usr/local/bin/docker may be another one)
IMAGE=localhost/tsrun-busybox:test

die() { echo "engines.sh: $*" >&2; exit 1; }
usage() { sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --out) out=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --tsrun) tsrun=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
    -h|--help) usage ;;
    *) echo "engines.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ "$(id -u)" = 0 ] || die "needs root"
for tool in hyperfine jq runc crun containerd ctr containerd-shim-runc-v2 dockerd "$DOCKER" umoci skopeo unshare setsid; do
  command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/setup.sh installs it)"
done
[ -x "$tsrun" ] || die "$tsrun is missing: npm run build"

# One private mount namespace for all of it (re-exec once inside).
if [ -z "${TSRUN_BENCH_ENGINES_NS:-}" ]; then
  exec env TSRUN_BENCH_ENGINES_NS=1 unshare --mount --propagation private bash "${BASH_SOURCE[0]}" \
    --runs "$runs" --warmup "$warmup" --out "$out" --tsrun "$tsrun"
fi
if mountpoint -q /sys/fs/cgroup/unified 2>/dev/null; then umount /sys/fs/cgroup/unified; fi
unset NODE_EXTRA_CA_CERTS NODE_OPTIONS

work=$(mktemp -d /tmp/tsrun-bench-engines.XXXXXX)
ns=tsrun-bench-$$
docker_parent=tsrun-bench-docker-$$
csock=$work/containerd.sock
dsock=$work/docker.sock
declare -A BIN=([tsrun]=$tsrun [runc]=$(command -v runc) [crun]=$(command -v crun))
RUNTIMES=(tsrun runc crun)
ctd_pid= dockerd_pid=

# stop PID: SIGTERM to its process group, SIGKILL after 15 s.
stop() {
  local pid=$1 i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  set +e
  if [ -S "$dsock" ]; then
    ids=$("$DOCKER" -H "unix://$dsock" ps -aq 2>/dev/null)
    [ -z "$ids" ] || "$DOCKER" -H "unix://$dsock" rm -f $ids >/dev/null 2>&1
  fi
  stop "$dockerd_pid"
  if [ -S "$csock" ]; then
    for n in $(ctr -a "$csock" namespaces ls -q 2>/dev/null); do
      for id in $(ctr -a "$csock" -n "$n" task ls -q 2>/dev/null); do ctr -a "$csock" -n "$n" task rm -f "$id" >/dev/null 2>&1; done
      for id in $(ctr -a "$csock" -n "$n" container ls -q 2>/dev/null); do ctr -a "$csock" -n "$n" container rm "$id" >/dev/null 2>&1; done
    done
  fi
  stop "$ctd_pid"
  # shims and anything else that names the work directory
  for pid in $(pgrep -f "$work"); do [ "$pid" != $$ ] && kill -KILL "$pid" 2>/dev/null; done
  for rt in "${RUNTIMES[@]}"; do
    for root in "$work/root-$rt/$ns" "$work/exec/runtime-runc/moby"; do
      for d in "$root"/*/; do [ -f "$d/state.json" ] && "${BIN[$rt]}" --root "$root" delete -f "$(basename "$d")" >/dev/null 2>&1; done
    done
  done
  grep -o " $work[^ ]*" /proc/self/mountinfo | sort -r | while read -r mp; do umount -l "$mp" 2>/dev/null; done
  for mp in $(awk '$9 ~ /^cgroup2?$/ {print $5}' /proc/self/mountinfo); do
    for d in "$mp/$ns" "$mp/$docker_parent"; do [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# ---- the image (the one the engine specs build, from the same cache)
template=$(bash "$REPO/scripts/make-bundle.sh" --template)
image_dir=$(dirname "$template")/engine-image-v1-$(basename "$template")
if [ ! -f "$image_dir/image.tar" ]; then
  echo "engines.sh: building the busybox image" >&2
  b=$work/image
  mkdir -p "$b"
  (
    cd "$b"
    umoci init --layout oci
    umoci new --image oci:busybox
    umoci unpack --image oci:busybox bundle >/dev/null
    cp -a "$template/." bundle/rootfs/
    umoci repack --image oci:busybox bundle
    umoci config --image oci:busybox --config.cmd sh --config.workingdir / \
      --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    skopeo copy --quiet oci:oci:busybox "docker-archive:image.tar:$IMAGE"
  ) >"$work/image.log" 2>&1 || { cat "$work/image.log" >&2; die "building the image failed"; }
  image_tar=$b/image.tar
else
  image_tar=$image_dir/image.tar
fi

# ---- containerd and dockerd
cat >"$work/config.toml" <<EOF
version = 2
root = "$work/containerd-root"
state = "$work/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$csock"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/opt"
EOF
echo '{"deprecated-key-path": "'"$work"'/key.json"}' >"$work/daemon.json"
setsid containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
ctd_pid=$!
for i in $(seq 300); do ctr -a "$csock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr -a "$csock" version >/dev/null 2>&1 || { tail -20 "$work/containerd.log" >&2; die "containerd did not start"; }
setsid dockerd --config-file "$work/daemon.json" --data-root "$work/docker-data" --exec-root "$work/exec" \
  -H "unix://$dsock" --pidfile "$work/docker.pid" --containerd "$csock" \
  --iptables=false --ip-forward=false --ip-masq=false --bridge=none --cgroup-parent "/$docker_parent" \
  --add-runtime "tsrun=$tsrun" --add-runtime "crun=${BIN[crun]}" >"$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for i in $(seq 300); do "$DOCKER" -H "unix://$dsock" version >/dev/null 2>&1 && break; sleep 0.1; done
"$DOCKER" -H "unix://$dsock" version >/dev/null 2>&1 || { tail -20 "$work/dockerd.log" >&2; die "dockerd did not start"; }
ctr -a "$csock" -n "$ns" image import "$image_tar" >/dev/null
"$DOCKER" -H "unix://$dsock" load -i "$image_tar" >/dev/null

# ---- the commands (checked once each before timing)
mkdir -p "$work/fifo"
names=() cmds=()
for rt in "${RUNTIMES[@]}"; do
  names+=("ctr run --rm / $rt")
  cmds+=("ctr -a $csock -n $ns run --rm --runc-binary ${BIN[$rt]} --runc-root $work/root-$rt --fifo-dir $work/fifo $IMAGE bench-$rt true")
done
for rt in "${RUNTIMES[@]}"; do
  names+=("docker run --rm / $rt")
  cmds+=("$DOCKER -H unix://$dsock run --rm --runtime $rt --network none $IMAGE true")
done
args=()
for i in "${!cmds[@]}"; do
  # shellcheck disable=SC2086
  ${cmds[$i]} >"$work/check.out" 2>&1 || { cat "$work/check.out" >&2; die "${names[$i]} does not work: ${cmds[$i]}"; }
  args+=(-n "${names[$i]}" "${cmds[$i]}")
done

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
echo "engines.sh: $runs runs (+$warmup warm-up) of each of ${#cmds[@]} commands (load average $load_before)" >&2
hyperfine -N --style basic --runs "$runs" --warmup "$warmup" --export-json "$work/hyperfine.json" "${args[@]}" >&2

# ---- results
mkdir -p "$out"
version() { "$@" 2>/dev/null | head -1; }
jq --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --arg kernel "$(uname -r)" \
  --arg load "$load_before" --argjson cpus "$(nproc)" \
  --arg containerd "$(version containerd --version)" \
  --arg docker "$(version dockerd --version)" \
  --arg runc "$(version runc --version)" \
  --arg crun "$(version crun --version)" \
  --arg tsrun "$(version "$tsrun" --version)" \
  --argjson runs "$runs" --argjson warmup "$warmup" '
  def ms: . * 1000 | (. * 10 | round) / 10;
  def r2: (. * 100 | round) / 100;
  (.results | map({key: .command, value: {median_ms: (.median | ms), mean_ms: (.mean | ms), stddev_ms: (.stddev | ms), min_ms: (.min | ms), max_ms: (.max | ms)}}) | from_entries) as $res
  | {
      what: "latency of `ctr run --rm` and `docker run --rm` of /bin/true (busybox image) with each runtime; one hyperfine invocation",
      date: $date,
      runs: $runs,
      warmup: $warmup,
      host: {kernel: $kernel, cpus: $cpus, loadavg_before: $load, cgroups: "v1 controllers; the cgroup2 mount unmounted in the private mount namespace everything ran in (crun 1.8 refuses hybrid layouts)"},
      versions: {containerd: $containerd, dockerd: $docker, runc: $runc, crun: $crun, tsrun: $tsrun},
      results: $res,
      ratios: (["ctr run --rm", "docker run --rm"] | map(. as $e | {key: $e, value: {
        "tsrun/runc": ($res["\($e) / tsrun"].median_ms / $res["\($e) / runc"].median_ms | r2),
        "tsrun/crun": ($res["\($e) / tsrun"].median_ms / $res["\($e) / crun"].median_ms | r2),
        "crun/runc": ($res["\($e) / crun"].median_ms / $res["\($e) / runc"].median_ms | r2)
      }}) | from_entries),
      overhead_ms: (["ctr run --rm", "docker run --rm"] | map(. as $e | {key: $e, value: {
        "tsrun-runc": ($res["\($e) / tsrun"].median_ms - $res["\($e) / runc"].median_ms | . * 10 | round / 10)
      }}) | from_entries)
    }' "$work/hyperfine.json" >"$out/engines.json"

jq -r '.results | to_entries[] | "\(.key)\t\(.value.median_ms) ms median\t(±\(.value.stddev_ms))"' "$out/engines.json" | column -t -s $'\t'
jq -r '.ratios | to_entries[] | "\(.key): " + (.value | to_entries | map("\(.key) \(.value)") | join(", "))' "$out/engines.json"
echo "engines.sh: wrote $out/engines.json" >&2
