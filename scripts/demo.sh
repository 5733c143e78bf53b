#!/usr/bin/env bash
# The README's demo: a busybox bundle in ./examples/busybox, then one container
# run in the foreground that shows it is on its own: its hostname, its process
# table (its sh is PID 1), its network devices (only lo) and its user.
#
#   bash scripts/demo.sh            # with bin/tsrun
#   TSRUN=runc bash scripts/demo.sh # the same with another runc-compatible runtime
#
# Needs root. TSRUN_ROOT sets the runtime's --root (default: its own).
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TSRUN=${TSRUN:-$REPO/bin/tsrun}
BUNDLE=${BUNDLE:-$REPO/examples/busybox}
ID=tsrun-demo-$$

[ "$(id -u)" = 0 ] || { echo "demo.sh: run me as root (containers need it)" >&2; exit 1; }

root_args=()
[ -z "${TSRUN_ROOT:-}" ] || root_args=(--root "$TSRUN_ROOT")

bash "$REPO/scripts/make-bundle.sh" "$BUNDLE" --tsrun-spec

# What the container runs, as one sh -c script.
script='
echo "hostname: $(hostname)"
echo "processes (PID 1 is this container'\''s own sh):"
ps -o pid,ppid,user,comm
echo "network devices:"
ip link 2>/dev/null || cat /proc/net/dev
echo "user: $(id)"
'
jq --arg script "$script" '
  .hostname = "tsrun-demo"
  | .process.args = ["sh", "-c", $script]
  | .process.terminal = false
' "$BUNDLE/config.json" >"$BUNDLE/config.json.tmp"
mv "$BUNDLE/config.json.tmp" "$BUNDLE/config.json"

cleanup() { "$TSRUN" "${root_args[@]}" delete --force "$ID" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "\$ $(basename "$TSRUN") run --bundle ${BUNDLE#"$PWD"/} $ID"
status=0
"$TSRUN" "${root_args[@]}" run --bundle "$BUNDLE" "$ID" </dev/null || status=$?
echo "(exit status $status)"
exit "$status"
