/**
 * The plan for `tsrun exec`: an intermediate process joins every namespace
 * of the running container (user first, mount last; joining a mount or user
 * namespace is refused to a multi-threaded process, which Node is), then
 * clones the new process so it really is inside the container's PID
 * namespace. That process never sees a host descriptor and is not dumpable
 * until it execs, like the init.
 */
import type { Process, Spec } from '../oci/types.js';
import { O, PR } from './linux.js';
import { cgroupnsJoinOps, JOIN_ORDER, NAMESPACE_FLAG, PROC_NS_NAME } from './namespaces.js';
import { CONSOLE_NO_DEVCONSOLE, Op, Slot, SyncTag, type Plan, type PlanOp } from './plan.js';
import { joinCgroupOps } from './cgroups.js';
import { lsmOps } from './lsm.js';
import { compileSeccomp, seccompOp } from './seccomp.js';
import { execOp, identityOps, resolveExecOp, rlimitOps } from './process.js';

export interface ExecPlanOptions {
  /** the container init's host pid: its /proc/<pid>/ns/* are joined */
  initPid: number;
  preserveFds: number;
  capLastCap: number;
  /** the container's rootfs on the host, for HOME from its /etc/passwd */
  rootfs?: string;
  /** v1 `tasks` files the spawner moves itself into (src/plan/cgroups.ts) */
  joinCgroups: readonly string[];
}

export function compileExec(spec: Spec, proc: Process, opts: ExecPlanOptions): Plan {
  // The container's filter applies to exec'd processes too, at the same two
  // points as for the init (runc's setns_init_linux.go).
  const seccomp = compileSeccomp(spec.linux?.seccomp);
  const ops: PlanOp[] = [];
  const add = (...o: PlanOp[]) => ops.push(...o);
  add(...joinCgroupOps(opts.joinCgroups));
  add({ code: Op.PRCTL, a: PR.SET_DUMPABLE, b: 0, what: 'make the exec process non-dumpable' });
  add({ code: Op.CLOSE_FDS, a: 3 + opts.preserveFds, what: 'close inherited descriptors' });
  const types = new Set((spec.linux?.namespaces ?? []).map((n) => n.type));
  let joinCgroupns: PlanOp | undefined;
  for (const type of JOIN_ORDER) {
    if (!types.has(type)) continue;
    const file = `/proc/${opts.initPid}/ns/${PROC_NS_NAME[type]}`;
    if (type === 'cgroup') {
      // Joined by the process itself once it is in the container's cgroup
      // (namespaces.ts cgroupnsJoinOps).
      const { open, join } = cgroupnsJoinOps(file);
      add(open);
      joinCgroupns = { ...join, what: "join the container's cgroup namespace" };
      continue;
    }
    add({ code: Op.SETNS, a: NAMESPACE_FLAG[type], s: [file], what: `join the container's ${type} namespace` });
  }
  const intermediateOps = ops.length;

  add({ code: Op.SYNC, a: SyncTag.CLONED, what: 'wait for cgroup placement' });
  if (joinCgroupns) add(joinCgroupns);
  if (proc.terminal) {
    add({ code: Op.OPEN_SLOT, a: Slot.ROOT, b: O.PATH | O.DIRECTORY, s: ['/'], what: 'open the container root' });
    add({
      code: Op.CONSOLE,
      flags: CONSOLE_NO_DEVCONSOLE,
      a: Slot.CONSOLE_SOCKET,
      b: proc.consoleSize?.height ?? 0,
      c: proc.consoleSize?.width ?? 0,
      what: 'set up the terminal',
    });
  }
  add({ code: Op.SETSID, what: proc.terminal ? 'make the terminal the controlling terminal' : 'create a session' });
  add(...rlimitOps(proc));
  add(...lsmOps({ apparmorProfile: proc.apparmorProfile, selinuxLabel: proc.selinuxLabel, file: 'exec', prefix: 'process.' }));
  if (seccomp && !proc.noNewPrivileges) add(seccompOp(seccomp));
  add(...identityOps(proc, { capLastCap: opts.capLastCap }));
  add(resolveExecOp(proc));
  if (seccomp && proc.noNewPrivileges) add(seccompOp(seccomp));
  add(execOp(proc, opts.rootfs));
  return { cloneFlags: 0, intermediateOps, ops, seccompListener: seccomp?.listener };
}
