#!/bin/bash
# Runs the cgroup specs (spec/cgroups) in a throwaway VM whose /sys/fs/cgroup
# is a pure cgroup v2 hierarchy with every controller, through
# ../shared/tools/run-in-v2-vm.sh (see ../shared/README.md). CI calls this;
# it exits with tap's status (124: the VM timed out, 125: the VM failed).
#
#   scripts/test-cgroup-v2.sh                      # every spec/cgroups/*.test.ts
#   scripts/test-cgroup-v2.sh spec/cgroups/x.test.ts ...
#
# Needs root, a build (npm run build: the VM sees this checkout read-only)
# and the VM's prerequisites:
#   apt-get install -y --no-install-recommends qemu-system-x86 busybox-static cpio xz-utils
# Processes run 15-50x slower in the VM; TSRUN_SPEC_SLOW (default 25) scales
# the specs' timeouts. Expect 5-15 minutes.
set -euo pipefail

cd "$(dirname "$0")/.."
VM=${V2_VM_SCRIPT:-../shared/tools/run-in-v2-vm.sh}
[ -x "$VM" ] || { echo "test-cgroup-v2: $VM not found" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "test-cgroup-v2: needs root" >&2; exit 2; }
if [ ! -s dist/tsrun.js ] || [ ! -s build/Release/tsrun.node ]; then
  echo "test-cgroup-v2: no build; running npm run build" >&2
  npm run build >&2
fi
# The rootfs template the specs copy is built (and cached) here, where it is fast.
bash scripts/make-bundle.sh --template >/dev/null

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(spec/cgroups/*.test.ts)
quoted=$(printf '%q ' "${files[@]}")
# The guest mounts fresh tmpfs on /tmp, /run and /dev/shm, hiding a checkout
# there (CI may clone under /tmp): share it into the VM, read-write, at the
# same path, or the guest's cd fails and nothing runs.
case "$PWD/" in
  /tmp/*|/run/*|/dev/shm/*) export VM_RW_DIRS="${VM_RW_DIRS:+$VM_RW_DIRS }$PWD" ;;
esac
export TSRUN_SPEC_SLOW=${TSRUN_SPEC_SLOW:-25}
export VM_TIMEOUT=${VM_TIMEOUT:-3000}

start=$(date +%s)
set +e
# In the guest: leave the root cgroup first (a cgroup with processes cannot
# hand controllers to its children), then run tap with no per-file timeout
# short enough to trip on the slow machine.
"$VM" "set -e
mkdir -p /sys/fs/cgroup/tsrun-ci
echo \$\$ > /sys/fs/cgroup/tsrun-ci/cgroup.procs
echo \"guest: \$(uname -r), cgroup2 controllers: \$(cat /sys/fs/cgroup/cgroup.controllers)\"
npx tap --disable-coverage --reporter=tap --timeout=2400 --jobs=1 $quoted"
rc=$?
set -e
echo "test-cgroup-v2: exit $rc after $(( $(date +%s) - start )) s" >&2
exit $rc
