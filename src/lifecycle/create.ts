/**
 * create (and the first half of run): read the bundle, claim the id, make
 * the cgroups, compile the plan, clone the init and walk it through the sync
 * points until it waits for start. Any failure undoes all of it.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { IDMapping, Spec } from '../oci/types.js';
import { parseConfig } from '../oci/validate.js';
import { detectLayout, type Layout, parseMountinfo } from '../cgroups/detect.js';
import { openCgroups, type Cgroups } from '../cgroups/manager.js';
import { ConfigError, UserError } from '../errors.js';
import { log } from '../log.js';
import { MsgKind, native, type ChildMsg } from '../native.js';
import { sendToSeccompAgent } from './seccomp-listener.js';
import { compile, EXEC_FIFO } from '../plan/compile.js';
import type { CgroupMountSource } from '../plan/mounts.js';
import { encodePlan, SyncTag, type Plan } from '../plan/plan.js';
import { destroy, hookState, startTimeOf } from './container.js';
import { runHooks } from './hooks.js';
import { connectConsole } from './terminal.js';
import { procStat } from './proc.js';
import { type ContainerRecord, Store, writePidFile } from './store.js';
import { trace, tracing } from '../bench/trace.js';
import { processHost } from '../engine/host.js';

export interface CreateOptions {
  id: string;
  bundle: string;
  pidFile?: string;
  consoleSocket?: string;
  /** an already connected console channel (run's own terminal); wins over consoleSocket */
  consoleFd?: number;
  noPivot?: boolean;
  preserveFds?: number;
  systemdCgroup?: boolean;
  /** 'run' skips the exec fifo: the caller starts the init with startRun() */
  mode: 'create' | 'run';
  /** run without -d: someone waits for the init (an engine's launcher forwards signals from the spawn on) */
  foreground?: boolean;
}

export interface Created {
  rec: ContainerRecord;
  /** sync socket, still open in 'run' mode (the init waits on it for start) */
  sync: number;
  plan: Plan;
}

/** How long the init may take between two sync points before we give up on it. */
const STEP_TIMEOUT_MS = 60_000;

export function loadBundle(bundle: string): { spec: Spec; rootfs: string } {
  const file = path.join(bundle, 'config.json');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
    trace('create: config.json read');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new UserError(`bundle ${bundle}: config.json does not exist`);
    throw new UserError(`bundle ${bundle}: cannot read config.json: ${code}`);
  }
  const spec = parseConfig(text);
  trace('create: config parsed and validated');
  const rootfs = path.resolve(bundle, spec.root!.path);
  let st: fs.Stats;
  try {
    st = fs.statSync(rootfs);
  } catch {
    throw new ConfigError('config.json', 'root.path', `rootfs ${rootfs} does not exist`);
  }
  if (!st.isDirectory()) throw new ConfigError('config.json', 'root.path', `rootfs ${rootfs} is not a directory`);
  return { spec, rootfs };
}

/** Features later issues implement: until then a config that uses them gets a warning, never silence. */
function warnUnapplied(spec: Spec): string[] {
  const w: string[] = [];
  if (spec.linux?.intelRdt) w.push('linux.intelRdt is not applied');
  if (spec.linux?.personality) w.push('linux.personality is not applied');
  if (spec.process?.ioPriority) w.push('process.ioPriority is not applied');
  if (spec.process?.scheduler) w.push('process.scheduler is not applied');
  return w;
}

/** An fd of a cgroup v2 directory to be born in, or -1 (no v2 tree, or it cannot be opened). */
export function openCgroupDir(dir: string | undefined): number {
  if (!dir) return -1;
  try {
    return fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (e) {
    throw new UserError(`cgroup ${dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** The mount containing `dir`, in the runtime's mount namespace. */
function mountPointOf(dir: string, mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8')): string {
  const mounts = parseMountinfo(mountinfo);
  let best = '/';
  for (const m of mounts) {
    const mp = m.mountpoint;
    if ((dir === mp || dir.startsWith(mp.endsWith('/') ? mp : mp + '/')) && mp.length > best.length) best = mp;
  }
  return best;
}

function cgroupMountSource(cg: Cgroups, layout: Layout = detectLayout()): CgroupMountSource {
  const hierarchies: CgroupMountSource['hierarchies'] = [];
  for (const [key, hostPath] of Object.entries(cg.paths)) {
    // Name the directory like the host's mountpoint (cpu,cpuacct stays one dir).
    const mount = key === 'unified' ? layout.unified : layout.v1.get(key);
    const name = mount ? path.basename(mount) : key.replace(/^name=/, '');
    if (!hierarchies.some((h) => h.name === name)) hierarchies.push({ name, hostPath });
  }
  return { mode: layout.mode, hierarchies };
}

/**
 * The host's mount table and cgroup layout, read once per create (the layout
 * and the rootfs' mount each read and parsed mountinfo again). The layout is
 * undefined when detection fails: openCgroups then detects and reports it, at
 * the point it always did.
 */
function readHost(): { mountinfo: string; layout?: Layout } {
  const mountinfo = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  try {
    return { mountinfo, layout: detectLayout(mountinfo) };
  } catch {
    return { mountinfo };
  }
}

function writeIdMaps(pid: number, spec: Spec): void {
  const fmt = (maps: IDMapping[]) => maps.map((m) => `${m.containerID} ${m.hostID} ${m.size}\n`).join('');
  const uid = spec.linux?.uidMappings ?? [];
  const gid = spec.linux?.gidMappings ?? [];
  if (uid.length) fs.writeFileSync(`/proc/${pid}/uid_map`, fmt(uid));
  if (gid.length) fs.writeFileSync(`/proc/${pid}/gid_map`, fmt(gid));
}

let lastCap: number | undefined;

/** The kernel's highest capability number: read once per process (it is the running kernel's). */
export function capLastCap(): number {
  if (lastCap !== undefined) return lastCap;
  try {
    lastCap = Number(fs.readFileSync('/proc/sys/kernel/cap_last_cap', 'utf8').trim());
  } catch {
    lastCap = 40;
  }
  return lastCap;
}

/** Turns a child's (step, errno) report into one line: "mount proc on /proc: Operation not permitted". */
export function stepError(plan: Plan, msg: ChildMsg): UserError {
  const op = plan.ops[msg.step];
  if (op?.enoent && msg.errno === 2) return new UserError(op.enoent);
  // Past the last op (native/plan.h STEP_*): the exec of the init binary
  // itself (native/init-main.cc), or placing it in its cgroup v2 directory.
  const what = op
    ? op.what
    : msg.step === plan.ops.length + 1
      ? 'place the container init in its cgroup'
      : 'start the container init (tsrun-init)';
  return new UserError(`${what}: ${native().strerror(msg.errno)}`);
}

export function create(store: Store, opts: CreateOptions): Created {
  const bundle = path.resolve(opts.bundle);
  const { spec, rootfs } = loadBundle(bundle);
  const host = readHost();
  const parent = processHost();
  const dir = store.claim(opts.id);
  parent.claimed(opts.id);
  const rec: ContainerRecord = {
    id: opts.id,
    bundle,
    rootfs,
    created: new Date().toISOString(),
    pid: 0,
    phase: 'creating',
    creatorPid: parent.creatorPid,
    creatorStartTime: procStat(parent.creatorPid)?.startTime,
    ...(parent.enginePid === undefined ? {} : { enginePid: parent.enginePid, engineStartTime: parent.engineStartTime }),
    annotations: spec.annotations,
    config: spec,
  };
  let sync = -1;
  let consoleFd = -1;
  try {
    // Each save is a file written and swapped in (Store.save), so there are
    // as few as crash safety allows: this one, the init's pid, and the final
    // phase.
    const cgroups = openCgroups({ id: opts.id, cgroupsPath: spec.linux?.cgroupsPath, systemd: opts.systemdCgroup, layout: host.layout });
    // The cgroup paths are recorded before they are made, so a crash mid-way
    // still lets delete find the leaves (which it removes whoever made them).
    rec.cgroups = cgroups.toJSON();
    store.save(rec);
    trace('create: id claimed, record written with the cgroup paths');
    cgroups.create();
    rec.cgroups = cgroups.toJSON();
    // Parents made for the leaves are removed by delete only if recorded as ours.
    const leaves = new Set(Object.values(cgroups.paths));
    if (cgroups.created.some((d) => !leaves.has(d))) store.save(rec);
    trace('create: cgroups created');
    // linux.resources, before any process joins (src/cgroups/apply.ts).
    for (const w of cgroups.apply(spec.linux?.resources ?? {}, { devices: spec.linux?.devices })) log.warn(w);
    const joinCgroups = cgroups.preparePlacement();
    trace('create: cgroup resources applied');

    if (opts.mode === 'create') {
      // 0622 as runc's, whatever our umask: an init that runs as a non-root
      // user without CAP_DAC_OVERRIDE must still open it for writing.
      native().mkfifo(path.join(dir, EXEC_FIFO), 0o622);
      fs.chmodSync(path.join(dir, EXEC_FIFO), 0o622);
    }
    if (opts.mode === 'create') trace('create: exec fifo made');
    const hasConsole = !!opts.consoleSocket || opts.consoleFd !== undefined;
    const { plan, warnings } = compile(spec, {
      bundle,
      mode: opts.mode,
      stateDir: dir,
      consoleSocket: hasConsole,
      noPivot: !!opts.noPivot,
      preserveFds: opts.preserveFds ?? 0,
      cgroups: cgroupMountSource(cgroups, host.layout),
      joinCgroups,
      capLastCap: capLastCap(),
      rootfsParentMount: mountPointOf(path.dirname(rootfs), host.mountinfo),
    });
    trace('create: plan compiled');
    for (const w of [...warnUnapplied(spec), ...warnings]) log.warn(w);
    if (spec.process?.terminal && !hasConsole) {
      throw new UserError('process.terminal is true but no --console-socket was given');
    }
    if (!spec.process?.terminal && hasConsole) {
      throw new UserError('--console-socket was given but process.terminal is false');
    }
    consoleFd = connectConsole(opts);

    const encoded = encodePlan(plan);
    if (tracing()) trace(`create: plan encoded (${plan.ops.length} ops, ${encoded.length} bytes)`);
    // The init is born in its cgroups: v1 through its spawner's joinCgroups
    // ops, v2 by clone3 CLONE_INTO_CGROUP into this directory.
    const bornIn = openCgroupDir(cgroups.paths.unified);
    let spawned;
    try {
      spawned = parent.spawn(encoded, consoleFd, bornIn, !!opts.foreground);
    } finally {
      if (bornIn >= 0) fs.closeSync(bornIn);
    }
    if ('failure' in spawned) throw stepError(plan, spawned.failure);
    if (tracing()) trace(`create: init cloned (pid ${spawned.pid})`);
    sync = spawned.sync;
    rec.pid = spawned.pid;
    // The record learns the init's pid while the init runs on past its first
    // sync point (the ack goes first: ProcessHost.next): a create that dies
    // before that save is undone by the pid its launcher holds (in an engine)
    // or by the record's cgroups, which delete empties either way.
    let pidSaved = false;
    const savePid = () => {
      rec.pidStartTime = startTimeOf(rec.pid);
      store.save(rec);
      pidSaved = true;
      trace('create: record written with the init pid');
    };

    let ack = false;
    for (;;) {
      const msg = parent.next(sync, ack, STEP_TIMEOUT_MS, ack && !pidSaved ? savePid : undefined);
      ack = false;
      if (tracing()) trace(`create: init message: ${msg === null ? 'EOF' : `kind ${msg.kind} at op ${msg.step}${msg.kind === MsgKind.Sync ? ` (sync ${msg.arg})` : ''}`}`);
      if (msg === null) throw new UserError('container init exited during setup');
      if (msg.kind === MsgKind.Error) throw stepError(plan, msg);
      if (msg.kind === MsgKind.Ready) break;
      if (msg.kind === MsgKind.Sync && msg.arg === SyncTag.CLONED) {
        writeIdMaps(rec.pid, spec);
        trace('create: id maps written');
        ack = true;
      } else if (msg.kind === MsgKind.Sync && msg.arg === SyncTag.PRE_PIVOT) {
        if (!pidSaved) savePid();
        const hookCtx = { spec, state: hookState(store, rec, 'creating'), initPid: rec.pid, dir };
        runHooks('prestart', hookCtx);
        runHooks('createRuntime', hookCtx);
        runHooks('createContainer', hookCtx);
        trace('create: prestart, createRuntime and createContainer hooks done');
        ack = true;
      } else if (msg.kind === MsgKind.SeccompFd) {
        sendToSeccompAgent(plan.seccompListener, msg.arg, rec.pid, hookState(store, rec, 'creating'));
        ack = true;
      } else if (msg.kind === MsgKind.Sync && msg.arg === SyncTag.START) {
        break; // 'run': the caller starts it
      } else {
        throw new UserError(`container init sent an unexpected message (kind ${msg.kind})`);
      }
    }
    if (!pidSaved) savePid();
    if (consoleFd >= 0) native().close(consoleFd);
    consoleFd = -1;
    // In an engine the init answers the engine itself, so a create whose
    // launcher was killed could still finish; cold, the init loses its
    // creator's end of the sync socket and dies. Either way: no container.
    if (parent.callerGone()) throw new UserError('create was killed before it finished');
    // The pid file first: a create killed before it never reads as "created".
    if (opts.pidFile) writePidFile(opts.pidFile, rec.pid);
    rec.phase = 'created';
    // `run` goes on to 'running' at once (startRun): nobody could tell 'created' had been on disk.
    if (opts.mode === 'create') store.save(rec);
    trace('create: created');
    if (opts.mode === 'create') {
      parent.closeSync(sync);
      sync = -1;
    }
    return { rec, sync, plan };
  } catch (e) {
    if (consoleFd >= 0) native().close(consoleFd);
    if (sync >= 0) parent.closeSync(sync);
    abortCreate(store, rec);
    throw e;
  }
}

/** Undo a failed create: kill and reap the init, remove cgroups and state. */
function abortCreate(store: Store, rec: ContainerRecord): void {
  try {
    if (rec.pid > 0) {
      try {
        process.kill(rec.pid, 9);
      } catch {
        /* already gone */
      }
      processHost().reap(rec.pid);
    }
    rec.pid = 0;
    rec.phase = 'created'; // not 'creating': the creator is us, and we are done with it
    destroy(store, rec);
  } catch (e) {
    log.warn(`cleanup after failed create: ${(e as Error).message}`);
  }
}

/** `run`: let the init exec (ack its START sync) and report whether exec worked. */
export function startRun(store: Store, created: Created): void {
  // 'running' is written while the init execs (the ack goes first:
  // ProcessHost.next): an exec that fails makes run fail, and its caller
  // then deletes the container, record and all.
  const running = () => {
    created.rec.phase = 'running';
    store.save(created.rec);
    trace('run: state written (running)');
  };
  const msg = processHost().next(created.sync, true, STEP_TIMEOUT_MS, running);
  processHost().closeSync(created.sync);
  trace('run: init released, exec reported');
  if (msg && msg.kind === MsgKind.Error) throw stepError(created.plan, msg);
}
