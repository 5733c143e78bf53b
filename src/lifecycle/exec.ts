/**
 * exec: run a new process in a running container. The process is built
 * like runc's: a process.json as given, or the container's own process with
 * the command line's overrides; it joins every namespace and the cgroup of
 * the container.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Process } from '../oci/types.js';
import { parseProcess, validateProcess } from '../oci/validate.js';
import { cgroupsFromPaths } from '../cgroups/manager.js';
import { UserError } from '../errors.js';
import { MsgKind, native } from '../native.js';
import { compileExec } from '../plan/exec.js';
import { encodePlan, SyncTag } from '../plan/plan.js';
import { hookState, statusOf } from './container.js';
import { sendToSeccompAgent } from './seccomp-listener.js';
import { capLastCap, openCgroupDir, stepError } from './create.js';
import { connectConsole } from './terminal.js';
import { Store, writePidFile } from './store.js';
import { processHost } from '../engine/host.js';

export interface ExecOverrides {
  args: string[];
  cwd?: string;
  env: string[];
  tty?: boolean;
  user?: string;
  additionalGids: number[];
  caps: string[];
  noNewPrivs?: boolean;
  apparmorProfile?: string;
  selinuxLabel?: string;
}

export interface ExecOptions {
  id: string;
  /** --process FILE: the whole process, overrides ignored (as runc does) */
  processFile?: string;
  overrides: ExecOverrides;
  consoleSocket?: string;
  /** an already connected console channel (exec -t without --console-socket) */
  consoleFd?: number;
  pidFile?: string;
  preserveFds: number;
  ignorePaused: boolean;
  /** --cgroup: a sub-cgroup of the container's to join */
  cgroup?: string;
  /** not -d: someone waits for the process */
  foreground?: boolean;
}

export interface Execed {
  pid: number;
}

const STEP_TIMEOUT_MS = 60_000;

function parseUser(spec: string): { uid: number; gid?: number } {
  const m = /^(\d+)(?::(\d+))?$/.exec(spec);
  if (!m) throw new UserError(`--user: invalid value ${JSON.stringify(spec)}: want UID[:GID]`);
  return { uid: Number(m[1]), gid: m[2] === undefined ? undefined : Number(m[2]) };
}

/** runc's newProcess: the container's process with the command line's changes. */
export function buildProcess(base: Process, o: ExecOverrides): Process {
  if (!o.args.length) throw new UserError('exec: no command given (args or --process are required)');
  const proc: Process = structuredClone(base);
  proc.args = o.args;
  delete proc.commandLine;
  if (o.cwd !== undefined) proc.cwd = o.cwd;
  proc.env = [...(proc.env ?? []), ...o.env];
  proc.terminal = !!o.tty;
  if (o.user !== undefined) {
    const u = parseUser(o.user);
    proc.user = { ...proc.user, uid: u.uid, gid: u.gid ?? proc.user.gid };
  }
  if (o.additionalGids.length) proc.user = { ...proc.user, additionalGids: o.additionalGids };
  if (o.caps.length) {
    const caps = { ...(proc.capabilities ?? {}) };
    // runc adds --cap to bounding, effective and permitted, and to ambient
    // (which the kernel only honours for inheritable capabilities).
    for (const set of ['bounding', 'effective', 'permitted', 'ambient'] as const) {
      caps[set] = [...new Set([...(caps[set] ?? []), ...o.caps])];
    }
    proc.capabilities = caps;
  }
  if (o.noNewPrivs) proc.noNewPrivileges = true;
  if (o.apparmorProfile !== undefined) proc.apparmorProfile = o.apparmorProfile;
  if (o.selinuxLabel !== undefined) proc.selinuxLabel = o.selinuxLabel;
  return validateProcess(proc, 'exec', 'process');
}

/** --cgroup SUB: a sub-cgroup of the container's own, in every hierarchy. */
function execCgroupPaths(paths: Record<string, string>, sub: string | undefined): Record<string, string> {
  if (!sub) return paths;
  if (sub.startsWith('/') || sub.split('/').includes('..') || sub.includes('\0')) {
    throw new UserError(`--cgroup: ${JSON.stringify(sub)} must be a relative path inside the container's cgroup`);
  }
  const out: Record<string, string> = {};
  for (const [k, p] of Object.entries(paths)) {
    out[k] = path.join(p, sub);
    if (!fs.existsSync(out[k])) throw new UserError(`--cgroup: ${out[k]} does not exist`);
  }
  return out;
}

/** Starts the process and returns once it has exec'd (or failed to). */
export function execProcess(store: Store, opts: ExecOptions): Execed {
  const rec = store.load(opts.id);
  const status = statusOf(store, rec);
  if (status === 'stopped' || status === 'creating') throw new UserError('cannot exec in a stopped container');
  if (status === 'paused' && !opts.ignorePaused) {
    throw new UserError('cannot exec in a paused container (use --ignore-paused to override)');
  }
  let proc: Process;
  if (opts.processFile) {
    let text: string;
    try {
      text = fs.readFileSync(opts.processFile, 'utf8');
    } catch (e) {
      throw new UserError(`--process ${opts.processFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    proc = parseProcess(text, opts.processFile);
    if (!proc.args?.length) throw new UserError(`${opts.processFile}: args: is required`);
  } else {
    proc = buildProcess(rec.config.process!, opts.overrides);
  }
  const hasConsole = !!opts.consoleSocket || opts.consoleFd !== undefined;
  if (proc.terminal && !hasConsole) {
    throw new UserError('process.terminal is true but no --console-socket was given');
  }
  if (!proc.terminal && hasConsole) {
    throw new UserError('--console-socket was given but the process has no terminal (-t)');
  }

  // Born in the container's cgroups (src/plan/cgroups.ts), except in a
  // paused one: a spawner that joined a frozen cgroup could not clone, so
  // there the process is moved in after its clone, and freezes there.
  const cgroups = rec.cgroups ? cgroupsFromPaths(execCgroupPaths(rec.cgroups.paths, opts.cgroup)) : undefined;
  const bornInCgroups = cgroups !== undefined && status !== 'paused';
  const plan = compileExec(rec.config, proc, {
    joinCgroups: bornInCgroups ? cgroups.preparePlacement() : [],
    initPid: rec.pid,
    rootfs: rec.rootfs,
    preserveFds: opts.preserveFds,
    capLastCap: capLastCap(),
  });
  let consoleFd = -1;
  let sync = -1;
  let pid = 0;
  const host = processHost();
  try {
    consoleFd = connectConsole(opts);
    const bornIn = bornInCgroups ? openCgroupDir(cgroups.paths.unified) : -1;
    let spawned;
    try {
      spawned = host.spawn(encodePlan(plan), consoleFd, bornIn, !!opts.foreground);
    } finally {
      if (bornIn >= 0) fs.closeSync(bornIn);
    }
    if ('failure' in spawned) throw stepError(plan, spawned.failure);
    ({ pid, sync } = spawned);
    let ack = false;
    for (;;) {
      const msg = host.next(sync, ack, STEP_TIMEOUT_MS);
      ack = false;
      if (msg === null) break; // exec'd: the sync socket closed on exec
      if (msg.kind === MsgKind.Error) throw stepError(plan, msg);
      if (msg.kind === MsgKind.Sync && msg.arg === SyncTag.CLONED) {
        if (cgroups && !bornInCgroups) cgroups.addProcess(pid);
        ack = true;
      } else if (msg.kind === MsgKind.SeccompFd) {
        sendToSeccompAgent(plan.seccompListener, msg.arg, pid, hookState(store, rec, statusOf(store, rec)));
        ack = true;
      } else {
        throw new UserError(`exec process sent an unexpected message (kind ${msg.kind})`);
      }
    }
  } catch (e) {
    if (pid > 0) {
      try {
        process.kill(pid, 9);
      } catch {
        /* gone */
      }
      host.reap(pid);
    }
    throw e;
  } finally {
    if (sync >= 0) host.closeSync(sync);
    if (consoleFd >= 0) native().close(consoleFd);
  }
  if (opts.pidFile) writePidFile(opts.pidFile, pid);
  return { pid };
}
