/**
 * config.json → plan. This file is the container init's whole path, in
 * order, as one readable sequence (crun's style); the details of each kernel
 * concern live beside it (namespaces.ts, mounts.ts, process.ts).
 */
import path from 'node:path';
import type { Spec } from '../oci/types.js';
import { CLONE, MS, O, PR, SIGKILL } from './linux.js';
import { joinCgroupOps } from './cgroups.js';
import { devOps, hardeningOps, mountOps, PROPAGATION, type CgroupMountSource } from './mounts.js';
import { namespaceSetup } from './namespaces.js';
import { PIVOT_NO_PIVOT, Op, Slot, SyncTag, type Plan, type PlanOp } from './plan.js';
import { checkMountLabel, lsmOps } from './lsm.js';
import { execOp, identityOps, resolveExecOp, rlimitOps } from './process.js';
import { compileSeccomp, seccompOp } from './seccomp.js';

export interface CompileOptions {
  bundle: string;
  /** 'create' waits on the exec fifo in stateDir; 'run' waits for a SyncTag.START ack */
  mode: 'create' | 'run';
  stateDir?: string;
  /** a --console-socket connection will be passed in Slot.CONSOLE_SOCKET */
  consoleSocket: boolean;
  noPivot: boolean;
  preserveFds: number;
  cgroups: CgroupMountSource;
  /** v1 `tasks` files the spawner moves itself into (src/plan/cgroups.ts) */
  joinCgroups: readonly string[];
  capLastCap: number;
  /** mount point (in the runtime's view) that contains the rootfs' parent */
  rootfsParentMount: string;
}

export { EXEC_FIFO } from './plan.js';
import { EXEC_FIFO } from './plan.js';

export interface Compiled {
  plan: Plan;
  warnings: string[];
}

export function compile(spec: Spec, opts: CompileOptions): Compiled {
  const warnings: string[] = [];
  const proc = spec.process!;
  const rootfs = path.resolve(opts.bundle, spec.root!.path);
  const ns = namespaceSetup(spec);
  checkMountLabel(spec.linux?.mountLabel);
  // Built here, before clone (libseccomp allocates); loaded by the init below.
  const seccomp = compileSeccomp(spec.linux?.seccomp);
  const ops: PlanOp[] = [];
  const add = (...o: PlanOp[]) => ops.push(...o);

  // 1. In the spawner (src/plan/cgroups.ts): join the v1 cgroups, then any
  //    existing namespaces.
  add(...joinCgroupOps(opts.joinCgroups));
  add(...ns.joinOps);
  const intermediateOps = ops.length;

  // 2. Protect the init while it still runs runtime code: not dumpable (no
  //    /proc/<pid>/exe or ptrace from the container), dies with its runtime,
  //    and holds no descriptor but stdio, --preserve-fds and its own.
  add({ code: Op.PRCTL, a: PR.SET_DUMPABLE, b: 0, what: 'make init non-dumpable' });
  add({ code: Op.PRCTL, a: PR.SET_PDEATHSIG, b: SIGKILL, what: 'set parent death signal' });
  add({ code: Op.CLOSE_FDS, a: 3 + opts.preserveFds, what: 'close inherited descriptors' });

  // 3. The runtime writes our id maps (and places us in any cgroup the
  //    spawner could not).
  add({ code: Op.SYNC, a: SyncTag.CLONED, what: 'wait for cgroup placement and id maps' });
  add(...ns.afterMapOps);
  // A new network namespace starts with lo down; runc brings it up.
  if (ns.cloneFlags & CLONE.NEWNET) add({ code: Op.LOOPBACK_UP, what: 'bring up the loopback interface' });

  // 4. The root filesystem, still seen from the runtime's mount tree.
  const propagation = spec.linux?.rootfsPropagation ? PROPAGATION[spec.linux.rootfsPropagation] : 0;
  add({
    code: Op.MOUNT,
    a: propagation || MS.SLAVE | MS.REC,
    s: [undefined, '/', undefined, undefined],
    what: 'set propagation of /',
  });
  // pivot_root refuses a new root whose parent mount is shared.
  add({
    code: Op.MOUNT,
    a: MS.PRIVATE,
    s: [undefined, opts.rootfsParentMount, undefined, undefined],
    what: `make ${opts.rootfsParentMount} private`,
  });
  add({
    code: Op.MOUNT,
    a: MS.BIND | MS.REC,
    s: [rootfs, rootfs, 'bind', undefined],
    what: `bind rootfs ${rootfs}`,
  });
  add({ code: Op.OPEN_SLOT, a: Slot.ROOT, b: O.PATH | O.DIRECTORY, s: [rootfs], what: `open rootfs ${rootfs}` });
  if (opts.mode === 'create') {
    // The fifo itself, not its directory: a container process that can read
    // the init's fds (CAP_SYS_PTRACE) must not walk from it to the host.
    const fifo = path.join(opts.stateDir!, EXEC_FIFO);
    add({ code: Op.OPEN_SLOT, a: Slot.EXEC_FIFO, b: O.PATH, s: [fifo], what: `open the exec fifo ${fifo}` });
  }
  const mountCtx = {
    bundle: opts.bundle,
    userns: ns.newUserns || ns.joinsUserns,
    cgroupns: ns.cgroupns,
    ownNetns: (ns.cloneFlags & CLONE.NEWNET) !== 0,
    cgroups: opts.cgroups,
    mountLabel: spec.linux?.mountLabel,
    warn: (m: string) => warnings.push(m),
  };
  add(...mountOps(spec, mountCtx));
  add(...devOps(spec, mountCtx));
  if (proc.terminal) {
    add({
      code: Op.CONSOLE,
      a: Slot.CONSOLE_SOCKET,
      b: proc.consoleSize?.height ?? 0,
      c: proc.consoleSize?.width ?? 0,
      what: 'set up the console',
    });
  }

  // 5. Kernel parameters in the container's namespaces.
  if (spec.hostname) add({ code: Op.SETHOSTNAME, s: [spec.hostname], what: `set hostname ${spec.hostname}` });
  if (spec.domainname) {
    add({ code: Op.SETDOMAINNAME, s: [spec.domainname], what: `set domainname ${spec.domainname}` });
  }
  for (const [key, value] of Object.entries(spec.linux?.sysctl ?? {})) {
    add({
      code: Op.WRITE_FILE,
      s: [`/proc/sys/${key.replace(/\./g, '/')}`, value],
      what: `set sysctl ${key}=${value}`,
    });
  }
  if (proc.oomScoreAdj !== undefined) {
    add({
      code: Op.WRITE_FILE,
      s: ['/proc/self/oom_score_adj', String(proc.oomScoreAdj)],
      what: `set oom_score_adj ${proc.oomScoreAdj}`,
    });
  }
  add(...hardeningOps(spec));
  // A cwd missing from the image is created, as runc does.
  add({ code: Op.MKDIR_IN_ROOT, s: [undefined, proc.cwd], what: `create cwd ${proc.cwd}` });

  // 6. Hooks that must see the container's namespaces before pivot_root.
  if (spec.hooks?.createRuntime?.length || spec.hooks?.createContainer?.length || spec.hooks?.prestart?.length) {
    add({ code: Op.SYNC, a: SyncTag.PRE_PIVOT, what: 'run createRuntime/createContainer hooks' });
  }

  // 7. Switch root.
  add({ code: Op.PIVOT_ROOT, flags: opts.noPivot ? PIVOT_NO_PIVOT : 0, what: `pivot_root to ${rootfs}` });
  if (spec.root?.readonly) {
    add({
      code: Op.MOUNT,
      a: MS.REMOUNT | MS.BIND | MS.RDONLY,
      s: [undefined, '/', undefined, undefined],
      what: 'remount / read-only',
    });
  }
  if (propagation) {
    add({ code: Op.MOUNT, a: propagation, s: [undefined, '/', undefined, undefined], what: 'set rootfs propagation' });
  }

  // 8. The process: session, limits, identity, then wait for start and exec.
  add({ code: Op.SETSID, what: proc.terminal ? 'make the console the controlling terminal' : 'create a session' });
  add(...rlimitOps(proc));
  // LSM labels before the identity switch, where runc applies them.
  add(...lsmOps({ apparmorProfile: proc.apparmorProfile, selinuxLabel: proc.selinuxLabel, file: 'config.json', prefix: 'process.' }));
  // Seccomp goes where runc's libcontainer/standard_init_linux.go puts it
  // (linuxStandardInit.Init), after the LSM labels: "Without NoNewPrivileges
  // seccomp is a privileged operation, so we need to do this before dropping
  // capabilities" — before finalizeNamespace (bounding set, groups, uid/gid,
  // cwd, capabilities), i.e. while CAP_SYS_ADMIN is held. Every later op then
  // runs under the filter, as runc's Go code does: prctl, setgroups,
  // setresgid/setresuid, chdir, getcwd, capset, umask, the executable lookup
  // (stat, access), then the start wait (prctl, sendto on the sync socket,
  // openat/write/close of the exec fifo) and execve.
  if (seccomp && !proc.noNewPrivileges) add(seccompOp(seccomp));
  add(...identityOps(proc, { capLastCap: opts.capLastCap }));
  add(resolveExecOp(proc));
  // A notify listener fd must reach the runtime while it still waits (create
  // has exited by `start`), so such a filter loads here, where runc loads
  // every filter: after the executable lookup, before the start wait.
  const notifyEarly = !!seccomp?.listener && proc.noNewPrivileges;
  if (seccomp && notifyEarly) add(seccompOp(seccomp));
  if (opts.mode === 'create') {
    add({ code: Op.WAIT_START, s: [EXEC_FIFO], what: 'wait for start on the exec fifo (it needs the container /proc and a free descriptor)' });
  } else {
    add({ code: Op.SYNC, a: SyncTag.START, what: 'wait for start' });
    // Started: like runc's, the container now outlives its runtime (run -d
    // exits at once; a killed `run` leaves it to its subreaper).
    add({ code: Op.PRCTL, a: PR.SET_PDEATHSIG, b: 0, what: 'clear parent death signal' });
  }
  // With no_new_privs (set last by identityOps) no privilege is needed, so
  // the filter is loaded as late as possible: after the start wait, right
  // before execve, which is then the only syscall the executor makes under it
  // (and, if execve fails, sendto of the error and exit_group). runc loads it
  // a little earlier ("Set seccomp as close to execve as possible", after
  // exec.LookPath but before the exec fifo is opened, because it must pass a
  // notify fd to the parent first); here the start wait's own syscalls
  // (prctl, sendto, openat/write/close of the fifo) stay outside the filter,
  // so a profile that blocks them still starts — it only ever confines the
  // container's process. The seccomp flags and actions were checked against
  // the kernel when the filter was built, so the load does not fail after
  // `start` for a reason `create` could have reported.
  if (seccomp && proc.noNewPrivileges && !notifyEarly) add(seccompOp(seccomp));
  add(execOp(proc, rootfs));

  return { plan: { cloneFlags: ns.cloneFlags, intermediateOps, ops, seccompListener: seccomp?.listener }, warnings };
}
