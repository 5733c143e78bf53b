/**
 * The container lifecycle as a state machine over the on-disk record:
 *
 *   (none) --create--> creating --init ready--> created --start--> running
 *   running/created --init exits--> stopped --delete--> (none)
 *
 * Status is derived, never trusted from disk: a record says what the last
 * command completed, /proc says whether the init still lives (with its start
 * time, so PID reuse is not mistaken for the container), and the exec fifo
 * says whether it still waits for `start`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { State } from '../oci/types.js';
import { CgroupError, hostIO } from '../cgroups/fsutil.js';
import { freezerState } from '../cgroups/freezer.js';
import { type Cgroups, cgroupsFromPaths } from '../cgroups/manager.js';
import { UserError } from '../errors.js';
import { log } from '../log.js';
import { EXEC_FIFO } from '../plan/plan.js';
import { trace } from '../bench/trace.js';
import { hasHooks, runHooks, runHooksWarn } from './hooks.js';
import { isAlive, procStat, sleepMs, waitGone } from './proc.js';
import { checkId, type ContainerRecord, Store } from './store.js';

export type Status = State['status'];

export const OCI_STATE_VERSION = '1.2.0';

/**
 * Whether the create of a 'creating' record still goes on: its creator lives
 * (and, for one a warm engine serves, that engine too: the launcher alone
 * cannot finish it).
 */
function createGoesOn(rec: ContainerRecord): boolean {
  if (!isAlive(rec.creatorPid, rec.creatorStartTime)) return false;
  return rec.enginePid === undefined || isAlive(rec.enginePid, rec.engineStartTime);
}

export function statusOf(store: Store, rec: ContainerRecord): Status {
  if (rec.phase === 'creating') {
    // A create still in progress is "creating"; one whose creator died is
    // a leftover for `delete --force`, never a healthy container.
    if (createGoesOn(rec)) return 'creating';
    return 'stopped';
  }
  if (!isAlive(rec.pid, rec.pidStartTime)) return 'stopped';
  // Frozen by `pause` (or stuck half-way, which `resume` undoes). The freezer
  // alone, not the cgroup manager: `state` (dist/tsrun-state.js) then loads
  // none of the rest of the cgroup code.
  const frozen = rec.cgroups && freezerState(rec.cgroups.paths, hostIO);
  if (frozen === 'frozen' || frozen === 'freezing') return 'paused';
  if (rec.phase === 'created' && fs.existsSync(path.join(store.dir(rec.id), EXEC_FIFO))) return 'created';
  return 'running';
}

export function ociState(store: Store, rec: ContainerRecord): State {
  const status = statusOf(store, rec);
  const state: State = {
    ociVersion: OCI_STATE_VERSION,
    id: rec.id,
    pid: status === 'stopped' ? 0 : rec.pid,
    status,
    bundle: rec.bundle,
    rootfs: rec.rootfs,
    created: rec.created,
    owner: '',
  };
  if (rec.annotations && Object.keys(rec.annotations).length) state.annotations = rec.annotations;
  return state;
}

/** The state a hook sees: the status the runtime spec requires at its moment. */
export function hookState(store: Store, rec: ContainerRecord, status: Status): State {
  return { ...ociState(store, rec), pid: rec.pid, status };
}

/** The username owning the state dir, as runc's `list` shows it. */
export function ownerName(store: Store, id: string): string {
  try {
    const uid = fs.statSync(store.dir(id)).uid;
    const line = fs
      .readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[2] === String(uid));
    return line ? line.split(':')[0] : `#${uid}`;
  } catch {
    return os.userInfo().username;
  }
}

/** `start`: release an init waiting on its exec fifo. */
export function start(store: Store, id: string): void {
  const rec = store.load(id);
  const status = statusOf(store, rec);
  if (status === 'stopped') throw new UserError('cannot start a container that has stopped');
  if (status === 'running') throw new UserError('cannot start an already running container');
  if (status !== 'created') throw new UserError(`cannot start a container in the ${status} state`);
  runStartContainerHooks(store, rec);
  const fifo = path.join(store.dir(id), EXEC_FIFO);
  // Non-blocking: a blocking open would hang forever if the init died.
  const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  try {
    const buf = Buffer.alloc(1);
    const deadline = Date.now() + 10_000;
    for (;;) {
      let n = 0;
      try {
        n = fs.readSync(fd, buf, 0, 1, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      }
      if (n === 1) break;
      if (!isAlive(rec.pid, rec.pidStartTime)) {
        // Between the read above and this check the init may have opened the
        // fifo, written its byte, exec'd and already exited (`echo hi`): the
        // byte is still in the fifo (our read end keeps it). Started, then.
        let late = 0;
        try {
          late = fs.readSync(fd, buf, 0, 1, null);
        } catch {
          /* EAGAIN: nothing there */
        }
        if (late === 1) break;
        throw new UserError('cannot start a container that has stopped');
      }
      if (Date.now() > deadline) throw new UserError('timed out waiting for the container init to start');
      sleepMs(1);
    }
  } finally {
    fs.closeSync(fd);
  }
  fs.rmSync(fifo, { force: true });
  rec.phase = 'running';
  store.save(rec);
  if (hasHooks(rec.config, 'poststart')) {
    runHooksWarn('poststart', { spec: rec.config, state: hookState(store, rec, 'running'), initPid: rec.pid, dir: store.dir(id) });
  }
}

/**
 * startContainer hooks run in the container's namespaces before the user
 * process execs; if one fails the container is stopped (runtime spec).
 */
export function runStartContainerHooks(store: Store, rec: ContainerRecord): void {
  if (!hasHooks(rec.config, 'startContainer')) return;
  try {
    runHooks('startContainer', { spec: rec.config, state: hookState(store, rec, 'created'), initPid: rec.pid, dir: store.dir(rec.id) });
  } catch (e) {
    signalProcess(rec.pid, 9);
    throw e;
  }
}

// Read on first use: loading `os` at start costs every command (bench/ab.c).
let signals: Record<string, number> | undefined;
const signalNumbers = (): Record<string, number> => (signals ??= os.constants.signals as Record<string, number>);

export function parseSignal(sig: string): number {
  const s = sig.trim().toUpperCase();
  if (/^\d+$/.test(s)) {
    const n = Number(s);
    if (n >= 1 && n <= 64) return n;
  } else {
    const name = s.startsWith('SIG') ? s : `SIG${s}`;
    const SIGNALS = signalNumbers();
    if (name in SIGNALS) return SIGNALS[name];
  }
  throw new UserError(`invalid signal: ${JSON.stringify(sig)}`);
}

function signalProcess(pid: number, signal: number): void {
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/** `kill`: signal the init, or with --all every process in the container's cgroup. */
export function kill(store: Store, id: string, signal: number, all: boolean): void {
  const rec = store.load(id);
  const status = statusOf(store, rec);
  if (status === 'stopped' || status === 'creating') throw new UserError('container not running');
  const cg = rec.cgroups ? cgroupsFromPaths(rec.cgroups.paths, rec.cgroups.created) : undefined;
  if (all && cg) {
    if (!(signal === 9 && cg.cgroupKill())) for (const pid of cg.pids()) signalProcess(pid, signal); // cgroup.kill: v2 kills them all, forks included
  } else {
    signalProcess(rec.pid, signal);
  }
  // A v1-frozen process does not die of SIGKILL until thawed (runc thaws too).
  if (status === 'paused' && signal === 9 && cg) cg.thaw();
}

/**
 * Removes everything a container owns: its processes (when forced or
 * already stopped), its cgroups and its state directory. Mounts live only in
 * the container's mount namespace and vanish with its last process.
 */
export function destroy(store: Store, rec: ContainerRecord): void {
  const cg = rec.cgroups ? cgroupsFromPaths(rec.cgroups.paths, rec.cgroups.created) : undefined;
  if (rec.pid && isAlive(rec.pid, rec.pidStartTime)) signalProcess(rec.pid, 9);
  if (rec.phase === 'creating' && createGoesOn(rec)) {
    // A create still running would recreate what we remove.
    signalProcess(rec.creatorPid, 9);
    waitGone(rec.creatorPid, rec.creatorStartTime, 5000);
  }
  if (cg) {
    // Without a pid namespace the init's death does not take its children along.
    for (let round = 0; round < 50; round++) {
      const pids = pidsIfAny(cg);
      if (!pids.length) break;
      for (const pid of pids) signalProcess(pid, 9);
      if (round === 0 && ['frozen', 'freezing'].includes(cg.freezerState() ?? '')) cg.thaw(); // a paused v1 container dies only once thawed
      sleepMs(2);
    }
  }
  if (rec.pid) waitGone(rec.pid, rec.pidStartTime, 5000);
  trace('delete: processes gone');
  if (cg) cg.destroy();
  trace('delete: cgroups removed');
  if (hasHooks(rec.config, 'poststop')) {
    runHooksWarn('poststop', { spec: rec.config, state: hookState(store, rec, 'stopped'), initPid: rec.pid, dir: store.dir(rec.id) });
  }
  store.remove(rec.id);
  trace('delete: state removed');
}

/**
 * The processes in a container's cgroup; none when the cgroup was never
 * made (a create killed after recording its cgroups, before creating them).
 */
function pidsIfAny(cg: Cgroups): number[] {
  try {
    return cg.pids();
  } catch (e) {
    if (e instanceof CgroupError && e.code === 'ENOENT') return [];
    throw e;
  }
}

/** `delete`: refuses a running container unless forced, as runc does. */
export function remove(store: Store, id: string, force: boolean): void {
  checkId(id); // before any path is built from it: "delete -f .." must not touch --root's parent
  const rec = store.tryLoad(id);
  if (!rec) {
    // Claimed by a create that died before writing its record.
    if (store.exists(id) && force) {
      store.remove(id);
      return;
    }
    // runc: `delete --force` of an unknown id succeeds quietly. Engines run it
    // in every cleanup (containerd's shim after each task, podman after a
    // failed create) and log any failure as a warning.
    if (force) return;
    store.load(id); // throws "does not exist"
    return;
  }
  const status = statusOf(store, rec);
  trace('delete: record read');
  if ((status === 'running' || status === 'creating' || status === 'paused') && !force) {
    throw new UserError(`cannot delete container ${id} that is not stopped: ${status}`);
  }
  destroy(store, rec);
  log.debug(`deleted container ${id}`);
}

/** The record's init start time, for liveness checks that survive PID reuse. */
export function startTimeOf(pid: number): string | undefined {
  return procStat(pid)?.startTime;
}
