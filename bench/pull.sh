#!/usr/bin/env bash
# Pull + unpack of a multi-layer image of a few hundred MB from a local
# registry: `tsctl pull` (fetch, verify, unpack every layer into its
# snapshot) against `skopeo copy` into an OCI layout + `umoci unpack` (the
# same work with Debian's reference tools), in ONE hyperfine invocation.
# Medians and their ratio go to bench/results/pull.json.
#
#   bash bench/pull.sh [--runs N] [--warmup N] [--out DIR] [--tsctl PATH]
#
# The image: the busybox rootfs, then 4 layers of ~70 MB each (a 30 MB random
# file that gzip cannot shrink, a 30 MB text file it can, 1500 small text
# files), built once with umoci into $TSRUN_BENCH_CACHE (default
# /var/cache/tsrun-bench) and pushed into a docker-registry on 127.0.0.1
# started for the run. Each timed run starts from an empty store / layout
# (the --prepare commands, not timed). Needs root, hyperfine, umoci, skopeo,
# docker-registry and jq (bash scripts/setup.sh installs them).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=5 warmup=1 out=$REPO/bench/results tsctl=${TSCTL_BIN:-$REPO/bin/tsctl}
die() { echo "pull.sh: $*" >&2; exit 1; }
usage() { sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --out) out=$(mkdir -p "$2" && cd "$2" && pwd); shift 2 ;;
    --tsctl) tsctl=$2; shift 2 ;;
    -h|--help) usage ;;
    *) echo "pull.sh: unknown argument $1" >&2; usage ;;
  esac
done
[ "$(id -u)" = 0 ] || die "needs root (umoci unpack and tsctl's unpack keep owners and devices)"
for tool in hyperfine umoci skopeo /usr/bin/docker-registry jq python3 node; do
  command -v "$tool" >/dev/null || die "$tool is missing (bash scripts/setup.sh installs it)"
done
[ -x "$tsctl" ] || die "$tsctl is missing: npm run build"
unset NODE_OPTIONS

cache=${TSRUN_BENCH_CACHE:-/var/cache/tsrun-bench}
layout=$cache/pull-image-v1
mkdir -p "$cache"
template=$(bash "$REPO/scripts/make-bundle.sh" --template | tail -n 1)

# 1. The image (built once, aside, then renamed).
if [ ! -f "$layout/index.json" ]; then
  echo "pull.sh: building the benchmark image (once) in $layout" >&2
  tmp=$(mktemp -d "$cache/.pull-image.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  umoci init --layout "$tmp/oci"
  umoci new --image "$tmp/oci:big"
  umoci unpack --image "$tmp/oci:big" "$tmp/bundle" >/dev/null
  cp -a "$template/." "$tmp/bundle/rootfs/"
  umoci repack --image "$tmp/oci:big" "$tmp/bundle"
  rm -rf "$tmp/bundle"
  for n in 1 2 3 4; do
    stage=$tmp/stage$n
    python3 - "$stage" "$n" <<'EOF'
import os, random, sys, base64
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(n)
os.makedirs(f"{root}/opt/layer{n}/small", exist_ok=True)
with open(f"{root}/opt/layer{n}/random.bin", "wb") as f:
    f.write(os.urandom(30 << 20))
with open(f"{root}/opt/layer{n}/text.txt", "wb") as f:
    words = [base64.b32encode(rnd.randbytes(5)).decode().lower() for _ in range(5000)]
    size = 0
    while size < 30 << 20:
        line = (" ".join(rnd.choices(words, k=12)) + "\n").encode()
        f.write(line)
        size += len(line)
for i in range(1500):
    d = f"{root}/opt/layer{n}/small/d{i % 30}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/f{i}.txt", "w") as f:
        f.write(" ".join(rnd.choices(words, k=rnd.randint(300, 1300))))
EOF
    tar --numeric-owner -C "$stage" -cf "$tmp/layer$n.tar" opt
    rm -rf "$stage"
    umoci raw add-layer --image "$tmp/oci:big" "$tmp/layer$n.tar"
    rm -f "$tmp/layer$n.tar"
  done
  umoci config --image "$tmp/oci:big" --config.cmd sh
  umoci gc --layout "$tmp/oci"
  rm -rf "$layout"
  mv "$tmp/oci" "$layout"
  rm -rf "$tmp"
  trap - EXIT
fi

# 2. A registry on 127.0.0.1 with the image in it.
work=$(mktemp -d /tmp/tsrun-bench-pull.XXXXXX)
reg_pid=
cleanup() {
  [ -n "$reg_pid" ] && kill "$reg_pid" 2>/dev/null && wait "$reg_pid" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$port
  secret: tsrun-bench
EOF
/usr/bin/docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
reg_pid=$!
up() { python3 -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$port/v2/', timeout=1)" 2>/dev/null; }
for _ in $(seq 100); do
  up && break
  sleep 0.1
done
up || die "docker-registry did not start: $(cat "$work/registry.log")"
skopeo copy --quiet --dest-tls-verify=false "oci:$layout:big" "docker://127.0.0.1:$port/bench/big:1"
ref=127.0.0.1:$port/bench/big:1
size=$(du -sb "$work/registry" | cut -f1)
echo "pull.sh: image in the registry: $((size / 1000000)) MB, $(jq '.layers | length' "$layout/blobs/sha256/$(jq -r '.manifests[0].digest' "$layout/index.json" | cut -d: -f2)") layers" >&2

# 3. One hyperfine run, both ways, each from empty.
mkdir -p "$out"
hyperfine --runs "$runs" --warmup "$warmup" --export-json "$work/hyperfine.json" \
  --prepare "rm -rf $work/store" \
  --prepare "rm -rf $work/oci $work/bundle" \
  --command-name "tsctl pull" "$tsctl --root $work/store pull -q $ref" \
  --command-name "skopeo copy + umoci unpack" \
  "skopeo copy --quiet --src-tls-verify=false docker://$ref oci:$work/oci:big && umoci unpack --image $work/oci:big $work/bundle >/dev/null"

# the two agree on the result: the same files (paths and sizes) in the rootfs
( cd "$work/bundle/rootfs" && find . -type f -printf '%p %s\n' | sort ) >"$work/umoci.list"
lowers=$(jq -r '.[0].layers | map(.chainId[7:]) | .[]' "$work/store/images/index.json")
python3 - "$work" $lowers <<'EOF'
import os, sys
work, chains = sys.argv[1], sys.argv[2:]
# flatten the snapshots (no whiteouts in this image: upper layers only add)
files = {}
for c in chains:
    root = f"{work}/store/snapshots/{c}/fs"
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            if os.path.isfile(p) and not os.path.islink(p):
                files["." + p[len(root):]] = os.path.getsize(p)
ours = sorted(f"{p} {s}" for p, s in files.items())
theirs = open(f"{work}/umoci.list").read().split("\n")[:-1]
if ours != theirs:
    sys.exit(f"pull.sh: tsctl's snapshots and umoci's rootfs differ ({len(ours)} vs {len(theirs)} files)")
EOF

node - "$work/hyperfine.json" "$out/pull.json" "$size" <<'EOF'
const fs = require('fs');
const [, , src, dst, size] = process.argv;
const results = JSON.parse(fs.readFileSync(src, 'utf8')).results;
const med = (name) => results.find((r) => r.command === name).median;
const tsctl = med('tsctl pull');
const ref = med('skopeo copy + umoci unpack');
const out = {
  what: 'pull + unpack of a 5-layer image from a docker-registry on 127.0.0.1 (each run from an empty store)',
  imageBytesInRegistry: Number(size),
  runs: results[0].times.length,
  medianSeconds: { 'tsctl pull': tsctl, 'skopeo copy + umoci unpack': ref },
  ratio: Number((tsctl / ref).toFixed(3)),
  tsctlAtLeastAsFast: tsctl <= ref,
  when: new Date().toISOString(),
};
fs.writeFileSync(dst, JSON.stringify(out, null, 2) + '\n');
console.log(`tsctl pull: ${tsctl.toFixed(2)} s, skopeo copy + umoci unpack: ${ref.toFixed(2)} s, ratio ${out.ratio}`);
EOF
