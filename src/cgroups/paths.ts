/**
 * Where a container's cgroup lives in each hierarchy, following runc 1.1's
 * cgroupfs drivers (--systemd-cgroup is handled, i.e. refused, in manager.ts).
 *
 * What runc does (read from opencontainers/runc):
 *
 *  - libcontainer/specconv/spec_linux.go CreateCgroupConfig: without
 *    --systemd-cgroup, a non-empty linux.cgroupsPath becomes
 *    `c.Path = CleanPath(cgroupsPath)`; an empty one leaves Path empty and
 *    sets `c.Name = <container id>` (Parent stays empty). So the default is
 *    the RELATIVE path "<id>".
 *
 *  - libcontainer/cgroups/fs/paths.go (getCgroupData, cgroupData.path) — v1
 *    and hybrid: innerPath = CleanPath(Path) or Join(Parent, Name).
 *      absolute: Join(<hierarchy mountpoint>, innerPath)
 *        (runc spells it Join(root, Base(mnt), innerPath), the same thing
 *        for hierarchies mounted under /sys/fs/cgroup);
 *      relative: Join(GetOwnCgroupPath(subsystem), innerPath), where
 *        GetOwnCgroupPath (cgroups/v1_utils.go) is this process's cgroup for
 *        that controller from /proc/self/cgroup, made relative to the mount's
 *        root (for nested containers), under the mountpoint. Each v1
 *        hierarchy is resolved independently, so the containers' dirs can
 *        sit at different depths in different hierarchies.
 *    Hybrid: runc adds a pseudo-subsystem "" for the cgroup2 tree at
 *    /sys/fs/cgroup/unified, and GetOwnCgroupPath("") returns that
 *    mountpoint itself, i.e. a relative path is NOT nested under our own v2
 *    cgroup there. runc issue #4047's output shows exactly that:
 *    "memory:/sys/fs/cgroup/memory/user.slice/.../session-1.scope/container-1"
 *    next to ":/sys/fs/cgroup/unified/container-1".
 *    Joined subsystems: cpuset devices memory cpu cpuacct pids blkio hugetlb
 *    net_cls net_prio perf_event freezer rdma name=systemd (fs/fs.go), those
 *    that are mounted; a missing devices hierarchy is fatal "for security
 *    reasons" (fs.go Apply/initPaths).
 *
 *  - libcontainer/cgroups/fs2/defaultpath.go (_defaultDirPath) — pure v2:
 *      absolute: Join(/sys/fs/cgroup, innerPath)
 *      relative: Join(/sys/fs/cgroup, Dir(own "0::" cgroup), innerPath) —
 *        the PARENT of our own cgroup, because our own cgroup has processes
 *        in it and so (no-internal-processes rule) cannot delegate
 *        controllers to a child.
 *
 * Deliberate difference: runc's CleanPath lexically clamps ".." (so
 * "../../x" quietly becomes "/x" or "x"); we refuse it, together with NUL,
 * and refuse a path that resolves to a hierarchy's root cgroup, whose
 * cgroup.procs is every process on the host (kill --all would hit them all).
 */
import { posix } from 'node:path';
import { UserError } from '../errors.js';
import type { Layout } from './detect.js';

/** The v1 hierarchies runc's fs driver joins, in its order. */
export const V1_SUBSYSTEMS = [
  'cpuset', 'devices', 'memory', 'cpu', 'cpuacct', 'pids', 'blkio', 'hugetlb',
  'net_cls', 'net_prio', 'perf_event', 'freezer', 'rdma', 'name=systemd',
] as const;

/** Key used in `paths` for the cgroup2 tree (runc uses "" on hybrid). */
export const UNIFIED = 'unified';

/** Validates linux.cgroupsPath (or the id it defaults to) and normalises it. */
export function innerPath(id: string, cgroupsPath: string | undefined): string {
  if (!cgroupsPath) {
    if (!id || id.includes('/') || id.includes('\0') || id === '.' || id === '..') {
      throw new UserError(`cgroup: container id ${JSON.stringify(id)} cannot be used as a cgroup name`);
    }
    return id;
  }
  if (cgroupsPath.includes('\0')) throw new UserError('linux.cgroupsPath: must not contain a NUL byte');
  if (cgroupsPath.split('/').includes('..')) {
    throw new UserError(`linux.cgroupsPath: must not contain ".." components: ${JSON.stringify(cgroupsPath)}`);
  }
  const norm = posix.normalize(cgroupsPath).replace(/(.)\/+$/, '$1');
  if (norm === '/' || norm === '.') {
    throw new UserError(`linux.cgroupsPath: must name a cgroup below the root: ${JSON.stringify(cgroupsPath)}`);
  }
  return norm;
}

/** Absolute directory of the container's cgroup in every hierarchy it joins, keyed by hierarchy. */
export function resolvePaths(layout: Layout, inner: string): Record<string, string> {
  const abs = inner.startsWith('/');
  const paths: Record<string, string> = {};

  if (layout.mode === 'v2') {
    const mnt = layout.unified!;
    const parent = posix.dirname(layout.own.get(UNIFIED) ?? '/');
    paths[UNIFIED] = abs ? posix.join(mnt, inner) : posix.join(mnt, parent, inner);
    return paths;
  }

  if (!layout.v1.has('devices')) {
    throw new UserError('cgroup: the devices controller is not mounted; refusing to run a container without it');
  }
  for (const sub of V1_SUBSYSTEMS) {
    const mnt = layout.v1.get(sub);
    if (mnt === undefined) continue;
    paths[sub] = abs ? posix.join(mnt, inner) : posix.join(mnt, layout.own.get(sub) ?? '/', inner);
  }
  if (layout.mode === 'hybrid') paths[UNIFIED] = posix.join(layout.unified!, inner);
  return paths;
}
