#!/usr/bin/env bash
# Port forwarding: kernel NAT (what tsctl uses) against userspace proxies,
# both against a direct connection to the container's address, in one run.
#
#   bash bench/portfwd.sh [--rounds N] [--seconds S] [--conns N] [--output FILE]
#
# Everything happens inside two network namespaces made here and deleted at
# the end: one stands in for the host (the bridge, NAT table and proxies are
# made in it by the shim's own network code: spec/shim/network-driver.ts),
# the other is the container's. The server (bench/portfwd.c) runs in the
# container namespace; each path is measured with the same client:
#
#   direct      host → 172.31.0.2:5201 (the container's address, over the bridge)
#   nat-lo      host → 127.0.0.1:8080  (nftables DNAT, route_localnet + SNAT)
#   nat-lan     host → 10.123.0.1:8080 (DNAT on another host address)
#   splice      host → 127.0.0.1:9002  (a C proxy splicing both directions)
#   socat       host → 127.0.0.1:9001  (socat TCP-LISTEN,fork; when installed)
#   node        host → 127.0.0.1:9003  (Node net pipe: what a TS monitor would run)
#
# Throughput: one TCP stream for S seconds per path, paths interleaved
# round-robin for N rounds (the machine is shared: interleaving spreads load
# changes over every path), medians reported. Latency: per connection
# (connect, 1-byte request, 1-byte answer, close), --conns per path split
# over the rounds. Then 20 setup/teardown cycles of a container's network
# (a fresh namespace each, one published port), timed inside the process.
# Writes bench/results/portfwd.json and prints a table.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=5 seconds=2 conns=2000 out=$REPO/bench/results/portfwd.json
while [ $# -gt 0 ]; do
  case $1 in
    --rounds) rounds=$2; shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --conns) conns=$2; shift 2 ;;
    --output) out=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--seconds S] [--conns N] [--output FILE]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "portfwd.sh: needs root (network namespaces)" >&2; exit 1; }
for c in ip nft cc node; do command -v $c >/dev/null || { echo "portfwd.sh: $c is not installed" >&2; exit 1; }; done

work=$(mktemp -d /tmp/tsctl-portfwd.XXXXXX)
tag=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
HOSTNS=tsctl-bench-$tag CTRNS=tsctl-bench-$tag-c
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$HOSTNS" 2>/dev/null || true
  ip netns del "$CTRNS" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cc -O2 -Wall -o "$work/portfwd" "$REPO/bench/portfwd.c"
"$REPO/node_modules/.bin/esbuild" --bundle --platform=node --format=cjs --target=node20 --log-level=warning \
  "$REPO/spec/shim/network-driver.ts" --outfile="$work/driver.js"

ip netns add "$HOSTNS"
ip netns add "$CTRNS"
H=(ip netns exec "$HOSTNS")
"${H[@]}" ip link set lo up
# another host address, as a LAN interface would have it
"${H[@]}" ip link add lan0 type veth peer name lan1
"${H[@]}" ip addr add 10.123.0.1/24 dev lan0
"${H[@]}" ip link set lan0 up
"${H[@]}" ip link set lan1 up

root=$work/root
setup_json=$("${H[@]}" node "$work/driver.js" setup "{\"root\":\"$root\",\"cid\":\"bench\",\"mode\":\"bridge\",\"hostname\":\"bench\",\"netnsPath\":\"/var/run/netns/$CTRNS\",\"ports\":[{\"hostIp\":\"0.0.0.0\",\"hostPort\":8080,\"containerPort\":5201,\"proto\":\"tcp\"}]}")
addr=$(node -e 'console.log(JSON.parse(process.argv[1]).address)' "$setup_json")

ip netns exec "$CTRNS" "$work/portfwd" server 5201 & pids+=($!)
"${H[@]}" "$work/portfwd" proxy 9002 "$addr" 5201 & pids+=($!)
"${H[@]}" node "$REPO/bench/portfwd-proxy.mjs" 9003 "$addr" 5201 & pids+=($!)
paths="direct=$addr:5201 nat-lo=127.0.0.1:8080 nat-lan=10.123.0.1:8080 splice=127.0.0.1:9002 node=127.0.0.1:9003"
if command -v socat >/dev/null; then
  "${H[@]}" socat TCP-LISTEN:9001,fork,reuseaddr "TCP:$addr:5201" & pids+=($!)
  paths="$paths socat=127.0.0.1:9001"
fi

# every path answers before measuring (bounded)
for p in $paths; do
  hp=${p#*=}
  for i in $(seq 1 100); do
    if "${H[@]}" "$work/portfwd" rr "${hp%:*}" "${hp#*:}" 1 >/dev/null 2>&1; then break; fi
    [ "$i" = 100 ] && { echo "portfwd.sh: ${p%%=*} ($hp) does not answer" >&2; exit 1; }
    sleep 0.1
  done
done

per_round=$(( conns / rounds )); [ "$per_round" -ge 1 ] || per_round=1
results=$work/results.jsonl
: >"$results"
set -- $paths
n=$#
for r in $(seq 1 "$rounds"); do
  # rotate the order each round
  for i in $(seq 0 $((n - 1))); do
    idx=$(( (i + r) % n + 1 ))
    p=${!idx}; name=${p%%=*}; hp=${p#*=}
    s=$("${H[@]}" "$work/portfwd" stream "${hp%:*}" "${hp#*:}" "$seconds")
    l=$("${H[@]}" "$work/portfwd" rr "${hp%:*}" "${hp#*:}" "$per_round")
    echo "{\"path\":\"$name\",\"round\":$r,\"stream\":$s,\"rr\":$l}" >>"$results"
    echo "round $r/$rounds $name: $(node -e 'const s=JSON.parse(process.argv[1]),l=JSON.parse(process.argv[2]);console.log(`${s.gbit} Gbit/s, ${l.p50_us} µs/conn`)' "$s" "$l")" >&2
  done
done

# a container's own setup and teardown (veth, lease, rules), in-process, beside the bench container
"${H[@]}" node "$work/driver.js" cycle "$root" 20 >"$work/cycle.json"

# teardown through the shim's code, and check it left nothing in the host namespace
"${H[@]}" node "$work/driver.js" teardown "$root" bench >/dev/null
left=$("${H[@]}" nft list ruleset; "${H[@]}" ip -o link show | grep -v -e ' lo:' -e ' lan[01]@' || true)
[ -z "$left" ] || echo "portfwd.sh: teardown left: $left" >&2

mkdir -p "$(dirname "$out")"
load=$(cut -d' ' -f1-3 /proc/loadavg)
node "$REPO/bench/portfwd-report.mjs" "$results" "$out" "$seconds" "$rounds" "$conns" "$load" "$work/cycle.json"
