/**
 * A container's life, driven as an engine drives runc: the record and
 * config.json are written, the monitor runs `tsrun create`, the network is
 * set up in the init's namespace, then `tsrun start`. When the init exits the
 * monitor execs `tsctl container-cleanup`, which deletes the runtime's
 * container, tears the network down, unmounts the rootfs and (with --rm)
 * removes the container: a stopped container holds no mount, cgroup, process
 * or link. Every wait here is bounded.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import type { ShimGlobals } from '../cli/context.js';
import { applyContainerConfig } from './config.js';
import { computeCaps } from './flags.js';
import { mountRootfs, removeRootfs, runtimeSpec, unmountRootfs } from './images.js';
import { type AttachHandlers, type Attachment, attach, startMonitor } from './monitor.js';
import { networkFiles, setupContainerNetwork, teardownContainerNetwork } from './network.js';
import { runtime, runtimeMessage, startFailureCode } from './runtime.js';
import { deriveState, monitorAlive, procStartTime, readExit, readMonitor } from './status.js';
import { type ContainerRecord, containerDir, loadRecord, releaseName, saveRecord, writeFileAtomic } from './store.js';
import { removeAnonymousVolumes } from './volumes.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `done()` or the deadline; true when done. */
export async function waitFor(done: () => boolean, timeoutMs: number, stepMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (done()) return true;
    if (Date.now() >= end) return false;
    await sleep(stepMs);
  }
}

export const monitorGone = (g: ShimGlobals, id: string) => () => !monitorAlive(readMonitor(g.root, id));

export function notRunning(rec: ContainerRecord): UserError {
  return new UserError(`container ${rec.id} is not running`, 1);
}

const STALE = ['exit.json', 'init.pid', 'attach.sock', 'console.sock', 'runtime.log', 'monitor.pid'];

export interface StartOptions {
  /** connect to the monitor before `start`, so no output is missed */
  attach?: AttachHandlers;
}

/**
 * One start at a time per container: `<dir>/starting` holds "pid starttime"
 * of the tsctl starting it (O_EXCL; a holder that died is replaced). A second
 * start waits for the first, then finds the container running.
 */
async function startLock(g: ShimGlobals, id: string): Promise<() => void> {
  const file = path.join(containerDir(g.root, id), 'starting');
  const me = `${process.pid} ${procStartTime(process.pid) ?? ''}`;
  for (let i = 0; ; i++) {
    try {
      fs.writeFileSync(file, me, { flag: 'wx' });
      return () => fs.rmSync(file, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const [pid, start] = (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '').split(' ');
    if (!monitorAlive({ pid: Number(pid), start: start ?? '' })) fs.rmSync(file, { force: true });
    else if (i > 1500) throw new UserError(`container ${id} is being started by process ${pid}`, 1);
    else await sleep(20);
  }
}

/** Starts a created or exited container; with attach, returns the attachment. */
export async function startContainer(g: ShimGlobals, rec: ContainerRecord, opts: StartOptions = {}): Promise<Attachment | undefined> {
  const unlock = await startLock(g, rec.id);
  try {
    return await startLocked(g, loadRecord(g.root, rec.id) ?? rec, opts);
  } finally {
    unlock();
  }
}

async function startLocked(g: ShimGlobals, rec: ContainerRecord, opts: StartOptions): Promise<Attachment | undefined> {
  const st = deriveState(g.root, rec);
  if (st.status === 'running') {
    if (!opts.attach) return undefined; // Docker: starting a running container is not an error
    return attach(containerDir(g.root, rec.id), opts.attach);
  }
  // a previous run's cleanup may still be finishing
  if (st.monitorRunning && !(await waitFor(monitorGone(g, rec.id), 30_000))) throw new UserError(`container ${rec.id} is still being cleaned up`, 1);
  if (st.lost) await cleanupContainer(g, rec.id, { keep: true });
  const dir = containerDir(g.root, rec.id);
  for (const f of STALE) fs.rmSync(path.join(dir, f), { force: true });

  const { rootfs, kind } = await mountRootfs(g.root, rec);
  let cleanupNeeded = true;
  try {
    const files = await networkFiles(g.root, rec);
    const spec = applyContainerConfig(await runtimeSpec(g.root, rec, rootfs), rec, files, computeCaps(rec.hostConfig.capAdd, rec.hostConfig.capDrop));
    writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(spec, null, 2) + '\n');
    const out = await startMonitor(g, { dir, id: rec.id, tty: rec.config.tty, openStdin: rec.config.openStdin });
    if (!out.ok) {
      // a monitor that died after create leaves the container created; but a
      // concurrent start's container ("exists") is not ours to delete
      if (!/exists/.test(out.message)) runtime(g, ['delete', '--force', rec.id]);
      rec.state = { ...rec.state, error: out.message, exitCode: startFailureCode(out.message), finishedAt: undefined, startedAt: undefined };
      saveRecord(g.root, rec);
      throw new UserError(`failed to create container ${rec.id}: ${out.message}`, startFailureCode(out.message));
    }
    cleanupNeeded = false; // from here the monitor's on-exit cleanup owns the teardown
    try {
      rec.network = await setupContainerNetwork(g.root, rec, `/proc/${out.pid}/ns/net`);
      rec.rootfsKind = kind;
      rec.state = { restartCount: rec.state.restartCount + (rec.state.startedAt ? 1 : 0), startedAt: new Date().toISOString(), pid: out.pid };
      // saved before `start`: the container may exit, and cleanup run, at once
      saveRecord(g.root, rec);
    } catch (e) {
      runtime(g, ['delete', '--force', rec.id]);
      await waitFor(monitorGone(g, rec.id), 30_000);
      throw e;
    }
    const attachment = opts.attach ? await attach(dir, opts.attach) : undefined;
    const r = runtime(g, ['start', rec.id]);
    if (r.code !== 0) {
      attachment?.close();
      runtime(g, ['delete', '--force', rec.id]);
      await waitFor(monitorGone(g, rec.id), 30_000);
      const msg = runtimeMessage(r);
      throw new UserError(`failed to start container ${rec.id}: ${msg}`, startFailureCode(msg));
    }
    return attachment;
  } finally {
    if (cleanupNeeded) {
      await teardownContainerNetwork(g.root, rec.id);
      await unmountRootfs(g.root, rec.id);
    }
  }
}

/**
 * What runs when the init has exited (the monitor execs it), and what
 * `rm -f` and `stop` run after a crash: idempotent, each step tolerant of
 * having been done already.
 */
export async function cleanupContainer(g: ShimGlobals, id: string, opts: { keep?: boolean } = {}): Promise<void> {
  // every step is tried (a failing one must not strand the others' resources); the first failure is reported
  const failures: Error[] = [];
  const step = async (fn: () => unknown) => {
    try {
      await fn();
    } catch (e) {
      failures.push(e as Error);
    }
  };
  await step(() => {
    const r = runtime(g, ['delete', '--force', id]);
    if (r.code !== 0 && !/does not exist/.test(r.stderr)) throw new UserError(`cleanup ${id}: runtime delete: ${runtimeMessage(r)}`);
  });
  await step(() => teardownContainerNetwork(g.root, id));
  await step(() => unmountRootfs(g.root, id));
  const rec = loadRecord(g.root, id);
  if (failures.length) throw failures[0];
  if (!rec) return;
  const exit = readExit(g.root, id);
  rec.state.finishedAt = exit?.finishedAt ?? new Date().toISOString();
  rec.state.exitCode = exit?.exitCode ?? rec.state.exitCode ?? 255;
  rec.state.pid = 0;
  saveRecord(g.root, rec);
  if (rec.hostConfig.autoRemove && !opts.keep) await removeFiles(g, rec, true);
}

async function removeFiles(g: ShimGlobals, rec: ContainerRecord, volumes: boolean): Promise<void> {
  await removeRootfs(g.root, rec.id);
  if (volumes) removeAnonymousVolumes(g.root, rec);
  releaseName(g.root, rec.name, rec.id);
  // the record goes first: a half-removed directory is no longer a container
  fs.rmSync(path.join(containerDir(g.root, rec.id), 'container.json'), { force: true });
  fs.rmSync(containerDir(g.root, rec.id), { recursive: true, force: true });
}

/** Waits until the container has exited and its cleanup is done. */
async function waitStopped(g: ShimGlobals, rec: ContainerRecord, timeoutMs: number): Promise<boolean> {
  return waitFor(() => !!readExit(g.root, rec.id) || monitorGone(g, rec.id)(), timeoutMs);
}

export async function killContainer(g: ShimGlobals, rec: ContainerRecord, signal: string): Promise<void> {
  if (deriveState(g.root, rec).status !== 'running') throw new UserError(`cannot kill container: ${rec.id}: container ${rec.id} is not running`, 1);
  const r = runtime(g, ['kill', rec.id, signal]);
  if (r.code !== 0) throw new UserError(`cannot kill container: ${rec.id}: ${runtimeMessage(r)}`, 1);
}

/** Docker's stop: the stop signal, `timeoutSec` to exit, then SIGKILL; returns once cleanup is done. */
export async function stopContainer(g: ShimGlobals, rec: ContainerRecord, timeoutSec: number): Promise<void> {
  const st = deriveState(g.root, rec);
  if (st.status === 'running') {
    runtime(g, ['kill', rec.id, rec.config.stopSignal || 'SIGTERM']);
    if (!(await waitStopped(g, rec, Math.max(0, timeoutSec) * 1000))) {
      runtime(g, ['kill', rec.id, 'SIGKILL']);
      if (!(await waitStopped(g, rec, 30_000))) throw new UserError(`container ${rec.id} did not stop after SIGKILL`, 1);
    }
  }
  if (!(await waitFor(monitorGone(g, rec.id), 30_000))) throw new UserError(`container ${rec.id}: cleanup did not finish`, 1);
  if (deriveState(g.root, rec).lost) await cleanupContainer(g, rec.id, { keep: true });
}

export async function removeContainer(g: ShimGlobals, rec: ContainerRecord, opts: { force: boolean; volumes: boolean }): Promise<void> {
  const st = deriveState(g.root, rec);
  if (st.status === 'running' || st.monitorRunning) {
    if (!opts.force) {
      throw new UserError(`cannot remove container "/${rec.name}": container is running: stop the container before removing or force remove`, 1);
    }
    runtime(g, ['kill', rec.id, 'SIGKILL']);
    await waitFor(monitorGone(g, rec.id), 30_000);
  }
  // whatever the monitor did or did not get to (a crash), make sure it is all gone
  await cleanupContainer(g, rec.id, { keep: true });
  await removeFiles(g, rec, opts.volumes);
}
