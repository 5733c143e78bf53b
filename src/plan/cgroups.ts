/**
 * How a new process gets into its v1 cgroups without waiting on the kernel.
 *
 * Writing a pid to cgroup.procs takes the kernel's global threadgroup lock
 * for writing, and every such write after a quiet spell waits for an RCU
 * grace period first: 8 to 20 ms on this 2-CPU host, the largest single cost
 * of `run` (crun pays it too). Moving *yourself*, one thread, by writing "0"
 * to a v1 `tasks` file skips that lock (Linux 6.0+, "cgroup: Optimize single
 * thread migration"; older kernels take it and are only slower). The spawner
 * that clones the init is a freshly exec'd, single-threaded tsrun-init, so
 * moving its one thread moves the whole process, and the init it clones is
 * born in every hierarchy. The cgroup v2 directory is handled by clone3
 * CLONE_INTO_CGROUP (native/executor.cc, which falls back to cgroup.procs).
 *
 * These ops run first in the spawner, before it joins any namespace: a
 * joined user namespace would leave it no rights over the host's cgroupfs,
 * and a joined mount namespace would show another /sys/fs/cgroup. As with
 * runc (whose init's parent joins first), the spawner is briefly counted in
 * pids.max next to the init it clones.
 */
import { Op, type PlanOp } from './plan.js';

export function joinCgroupOps(tasksFiles: readonly string[]): PlanOp[] {
  return tasksFiles.map((file) => ({
    code: Op.WRITE_FILE,
    s: [file, '0'],
    what: `join cgroup ${file.slice(0, file.lastIndexOf('/'))}`,
  }));
}
