#!/usr/bin/env bash
# Memory of tsctl's per-container monitor (build/Release/tsrun-monitor), the
# number that decides between a native monitor per container and one shared
# Node process: N busybox containers are started with `tsctl run -d`, then
# each monitor's VmRSS and Pss (/proc/<pid>/status, smaps_rollup) are read,
# next to an idle Node process's, and everything is removed.
#
#   bash bench/monitor-rss.sh [-n N]      (root; umoci for the test image)
#
# Prints one line per measure and writes bench/results/monitor-rss.json.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=10
while [ $# -gt 0 ]; do
  case $1 in
    -n) n=$2; shift 2 ;;
    *) echo "usage: $0 [-n N]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "monitor-rss.sh: needs root" >&2; exit 1; }

work=$(mktemp -d /tmp/tsctl-rss-XXXXXX)
store=$work/store
ctl() { "$REPO/bin/tsctl" --root "$store" "$@"; }
node_pid=
cleanup() {
  for c in $(ctl ps -aq 2>/dev/null); do ctl rm -f "$c" >/dev/null 2>&1 || true; done
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# the image: the busybox rootfs template as one layer
template=$(bash "$REPO/scripts/make-bundle.sh" --template)
umoci init --layout "$work/layout" >/dev/null
umoci new --image "$work/layout:bb" >/dev/null
umoci insert --image "$work/layout:bb" "$template" / >/dev/null
umoci config --image "$work/layout:bb" --config.cmd sh >/dev/null
image=$(ctl load -i "$work/layout" | sed -n 's/^Loaded image ID: sha256:\(.\{12\}\).*/\1/p')

kb() { awk -v k="$2" '$1 == k":" { print $2 }' "$1"; }
rss_sum=0 pss_sum=0 max=0
for i in $(seq "$n"); do ctl run -d --network none "$image" sleep 600 >/dev/null; done
for id in $(ctl ps -q --no-trunc); do
  pid=$(cut -d' ' -f1 "$store/containers/$id/monitor.pid")
  rss=$(kb "/proc/$pid/status" VmRSS)
  pss=$(kb "/proc/$pid/smaps_rollup" Pss)
  rss_sum=$((rss_sum + rss)) pss_sum=$((pss_sum + pss))
  [ "$rss" -gt "$max" ] && max=$rss
done
node -e 'setInterval(() => {}, 1000)' & node_pid=$!
sleep 1
node_rss=$(kb "/proc/$node_pid/status" VmRSS)
node_pss=$(kb "/proc/$node_pid/smaps_rollup" Pss)

printf 'monitors: %d running containers\n' "$n"
printf 'monitor VmRSS: mean %d kB, max %d kB (target <= 5120 kB)\n' $((rss_sum / n)) "$max"
printf 'monitor Pss:   mean %d kB\n' $((pss_sum / n))
printf 'idle node:     VmRSS %d kB, Pss %d kB\n' "$node_rss" "$node_pss"
mkdir -p "$REPO/bench/results"
printf '{"containers":%d,"monitorRssMeanKb":%d,"monitorRssMaxKb":%d,"monitorPssMeanKb":%d,"nodeRssKb":%d,"nodePssKb":%d}\n' \
  "$n" $((rss_sum / n)) "$max" $((pss_sum / n)) "$node_rss" "$node_pss" > "$REPO/bench/results/monitor-rss.json"
