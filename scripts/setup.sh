#!/usr/bin/env bash
# Prepares a machine (Debian 12 with Node 20, as root) to build and test tsrun:
# the system packages, the npm dependencies, the build. Idempotent: packages
# already there are not asked for again (no `apt-get update` unless one is
# missing), npm is skipped while package.json and package-lock.json are the
# ones it last installed. Quiet unless something fails: everything goes to a
# log ($TSRUN_SETUP_LOG, default /tmp/tsrun-setup.log) whose tail is printed
# on failure.
#
#   bash scripts/setup.sh [--no-build]
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LOG=${TSRUN_SETUP_LOG:-${TMPDIR:-/tmp}/tsrun-setup.log}
build=1
for a in "$@"; do
  case $a in
    --no-build) build=0 ;;
    *) echo "usage: $0 [--no-build]" >&2; exit 2 ;;
  esac
done

# What the project needs from Debian:
#   libseccomp-dev            seccomp headers/library for the native executor
#   build-essential python3   node-gyp's toolchain
#   busybox-static            the test and demo rootfs (must be static)
#   runc crun                 reference runtimes the specs compare against
#   hyperfine                 benchmarks
#   iproute2 util-linux       ip, nsenter, unshare, mount for the specs
#   tmux                      terminal (console-socket) specs
#   jq                        scripts/make-bundle.sh
#   containerd docker.io      the engines spec/engines/ drives tsrun with
#   podman                    (containerd 1.6, dockerd 20.10, podman 4.3 + conmon)
#   umoci skopeo              build the engine specs' busybox image (and the shim specs' test images)
#   nftables                  nft: tsctl's port forwarding (DNAT rules in its own `table ip tsctl`)
#   socat                     bench/portfwd.sh: the userspace proxy kernel NAT is compared with
#   conntrack                 tsctl's teardown drops a container's UDP flows from conntrack
#   docker-registry           the local registry the shim specs pull from (bound to 127.0.0.1)
#   apache2-utils             htpasswd -B: bcrypt users for that registry's basic auth
PACKAGES=(libseccomp-dev busybox-static build-essential python3 runc crun hyperfine iproute2 tmux jq util-linux
  containerd docker.io podman umoci skopeo strace docker-registry apache2-utils nftables socat conntrack
  qemu-system-x86 cpio xz-utils)  # the last three: the pure cgroup v2 VM of ../shared/tools

start=$SECONDS
: >"$LOG"

fail() {
  echo "setup.sh: $1 failed; the last lines of $LOG:" >&2
  tail -n 40 "$LOG" | sed 's/^/  | /' >&2
  exit 1
}
# run WHAT CMD...: runs CMD with its output in the log, stops on failure.
run() {
  local what=$1; shift
  echo "=== $what: $*" >>"$LOG"
  "$@" </dev/null >>"$LOG" 2>&1 || fail "$what"
}

as_root=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then as_root=(sudo -n); fi
fi

# 1. System packages.
missing=()
for p in "${PACKAGES[@]}"; do
  if [ "$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null)" != installed ]; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "=== missing packages: ${missing[*]}" >>"$LOG"
  if [ "$(id -u)" != 0 ] && [ ${#as_root[@]} = 0 ]; then
    echo "setup.sh: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  run "apt-get update" "${as_root[@]}" apt-get update -q
  run "apt-get install" "${as_root[@]}" apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}"
fi

# docker-registry's package enables a system-wide registry on :5000 (every
# interface) where systemd runs; the specs start their own on 127.0.0.1 only.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  "${as_root[@]}" systemctl disable --now docker-registry >>"$LOG" 2>&1 || true
fi

# 2. Node and the npm dependencies.
command -v node >/dev/null 2>&1 || { echo "setup.sh: node is not installed (Node 20 is needed)" >&2; exit 1; }
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || { echo "setup.sh: Node $(node -v) is too old: Node 20 or later is needed" >&2; exit 1; }

cd "$REPO"
stamp=node_modules/.tsrun-setup-stamp
want=$(cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1)-$(node -v)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  if [ -f package-lock.json ]; then
    run "npm ci" npm ci --no-audit --no-fund
  else
    run "npm install" npm install --no-audit --no-fund
  fi
  # npm install may have written the lockfile: stamp what is there now.
  cat package.json package-lock.json 2>/dev/null | sha256sum | cut -d' ' -f1 | tr -d '\n' >"$stamp"
  echo "-$(node -v)" >>"$stamp"
fi

# 3. The build (native addon + bundled CLI), when the project has one.
if [ "$build" = 1 ]; then
  run "npm run build" npm run build --if-present
fi

echo "setup.sh: ready in $((SECONDS - start)) s (log: $LOG)"
