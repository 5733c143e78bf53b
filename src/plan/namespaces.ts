/**
 * Namespaces: which ones the init is cloned into, which existing ones it
 * joins (by path, in an intermediate process), and what must happen once the
 * runtime has written the id maps and cgroup placement.
 */
import type { NamespaceType, Spec } from '../oci/types.js';
import { ConfigError } from '../errors.js';
import { CLONE } from './linux.js';
import { Op, SETNS_FROM_SLOT, Slot, type PlanOp } from './plan.js';

export const NAMESPACE_FLAG: Record<NamespaceType, number> = {
  pid: CLONE.NEWPID,
  network: CLONE.NEWNET,
  mount: CLONE.NEWNS,
  ipc: CLONE.NEWIPC,
  uts: CLONE.NEWUTS,
  user: CLONE.NEWUSER,
  cgroup: CLONE.NEWCGROUP,
  time: CLONE.NEWTIME,
};

// The user namespace is joined first (it grants the rights to join the
// rest) and the mount namespace last (joining it changes how later paths resolve).
export const JOIN_ORDER: NamespaceType[] = ['user', 'ipc', 'uts', 'network', 'pid', 'cgroup', 'time', 'mount'];

/** /proc/<pid>/ns/<name> for each OCI namespace type. */
export const PROC_NS_NAME: Record<NamespaceType, string> = {
  pid: 'pid',
  network: 'net',
  mount: 'mnt',
  ipc: 'ipc',
  uts: 'uts',
  user: 'user',
  cgroup: 'cgroup',
  time: 'time',
};

export interface NamespaceSetup {
  cloneFlags: number;
  joinOps: PlanOp[];
  afterMapOps: PlanOp[];
  newUserns: boolean;
  joinsUserns: boolean;
  cgroupns: boolean;
}

/**
 * Joining an existing cgroup namespace, in two halves: the spawner opens it
 * (its path is a host path, unreachable once the mount namespace is joined)
 * and the init joins it after its clone. Joined by the spawner, the
 * namespace would hide the spawner's own cgroup from itself, and on a
 * cgroup2 mounted with nsdelegate (systemd's default) the kernel then
 * refuses to place the child in the container's cgroup with ENOENT, by
 * clone3 or by cgroup.procs alike (cgroup_procs_write_permission; runc too
 * joins the cgroup namespace last, after its cgroup placement).
 */
export function cgroupnsJoinOps(path: string): { open: PlanOp; join: PlanOp } {
  return {
    open: { code: Op.OPEN_SLOT, a: Slot.CGROUP_NS, b: 0, s: [path], what: `open cgroup namespace ${path}` },
    join: {
      code: Op.SETNS,
      flags: SETNS_FROM_SLOT,
      a: CLONE.NEWCGROUP,
      b: Slot.CGROUP_NS,
      what: `join cgroup namespace ${path}`,
    },
  };
}

export function namespaceSetup(spec: Spec): NamespaceSetup {
  const list = spec.linux?.namespaces ?? [];
  const byType = new Map(list.map((n) => [n.type, n]));
  if (!byType.has('mount') || byType.get('mount')!.path) {
    // The rootfs is prepared in a mount namespace of our own.
    throw new ConfigError('config.json', 'linux.namespaces', 'a new mount namespace (without path) is required');
  }
  let cloneFlags = 0;
  const joinOps: PlanOp[] = [];
  const afterMapOps: PlanOp[] = [];
  let joinCgroupns: PlanOp | undefined;
  for (const type of JOIN_ORDER) {
    const ns = byType.get(type);
    if (!ns) continue;
    if (ns.path && type === 'cgroup') {
      const { open, join } = cgroupnsJoinOps(ns.path);
      joinOps.push(open);
      joinCgroupns = join;
    } else if (ns.path) {
      joinOps.push({ code: Op.SETNS, a: NAMESPACE_FLAG[type], s: [ns.path], what: `join ${type} namespace ${ns.path}` });
    } else if (type !== 'cgroup' && type !== 'time') {
      cloneFlags |= NAMESPACE_FLAG[type];
    }
  }
  const user = byType.get('user');
  const newUserns = !!user && !user.path;
  if (newUserns) {
    const rootUid = (spec.linux?.uidMappings ?? []).some((m) => m.containerID === 0);
    const rootGid = (spec.linux?.gidMappings ?? []).some((m) => m.containerID === 0);
    if (rootUid && rootGid) {
      afterMapOps.push({ code: Op.SETRESID, a: 0, b: 0, what: 'become root in the user namespace' });
    }
  }
  // A new cgroup namespace is created only after the runtime moved us into
  // our cgroup, so that cgroup is its root.
  const cgroup = byType.get('cgroup');
  if (cgroup && !cgroup.path) {
    afterMapOps.push({ code: Op.UNSHARE, a: CLONE.NEWCGROUP, what: 'create cgroup namespace' });
  }
  if (joinCgroupns) afterMapOps.push(joinCgroupns);
  // CLONE_NEWTIME cannot be passed to clone(); unshare it, set the offsets
  // (allowed until a process enters), and execve moves the init into it.
  const time = byType.get('time');
  if (time && !time.path) {
    afterMapOps.push({ code: Op.UNSHARE, a: CLONE.NEWTIME, what: 'create time namespace' });
    const offsets = spec.linux?.timeOffsets ?? {};
    const lines = Object.entries(offsets).map(([clock, o]) => `${clock} ${o?.secs ?? 0} ${o?.nanosecs ?? 0}`);
    if (lines.length) {
      afterMapOps.push({
        code: Op.WRITE_FILE,
        s: ['/proc/self/timens_offsets', lines.join('\n') + '\n'],
        what: 'set time namespace offsets',
      });
    }
  }
  return {
    cloneFlags,
    joinOps,
    afterMapOps,
    newUserns,
    joinsUserns: !!user?.path,
    cgroupns: !!cgroup,
  };
}
