/**
 * Helpers for the spec/security specs (escapes, faults, load), on top of
 * spec/lib/harness.ts: tsrun children the test can signal while they run
 * (with extra descriptors for --preserve-fds), output through files so a
 * container that inherits them never holds a pipe open, bounded polling,
 * /proc readers, and host scratch directories that are removed at teardown.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { exec, type RunOptions, type RunResult, rootFor, type TestLike, tsrun, tsrunBinary } from '../lib/harness.js';

export const isRoot = process.getuid?.() === 0;

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export function hasCommand(name: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d && fs.existsSync(path.join(d, name)));
}

/** Polls `pred` every `everyMs` until it returns truthy or `timeoutMs` passes; returns its last value. */
export async function waitFor<T>(pred: () => T | Promise<T>, timeoutMs = 5000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; ; i++) {
    const v = await pred();
    if (v || Date.now() >= deadline || i > 1_000_000) return v;
    await sleep(everyMs);
  }
}

/** Resolves with `p`'s value, or `fallback` after `ms`. */
export function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(fallback), ms);
    void p.then((v) => {
      clearTimeout(timer);
      resolve(v);
    });
  });
}

/** The environment for children: tap's and our test process's hooks stripped. */
export function childEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE' || k === 'TAP' || k.startsWith('TAP_') || k.startsWith('_TAPJS_')) continue;
    if (k.startsWith('TS_NODE_')) continue;
    out[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** A scratch directory on the host, removed at teardown (after anything mounted under it is unmounted). */
export function hostTempDir(t: TestLike, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tsrun-sec-${prefix}-`));
  t.teardown(() => {
    unmountUnder(dir);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Mount points at or below `dir` in this (the host's) mount namespace. */
export function hostMountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => unescapeMount(l.split(' ')[4] ?? ''))
    .filter((mp) => mp === dir || mp.startsWith(prefix));
}

function unmountUnder(dir: string): void {
  for (let round = 0; round < 4; round++) {
    const mps = hostMountsUnder(dir).sort((a, b) => b.length - a.length);
    if (!mps.length) return;
    for (const mp of mps) spawnSync('umount', ['-l', mp], { stdio: 'ignore', timeout: 10_000 });
  }
}

/**
 * A tmpfs mounted on a new host directory and made shared: a mount made
 * on it (or under it) from a container's mount namespace that still
 * propagates to the host's shows up in the host's mountinfo, so an escape
 * is visible. Unmounted (recursively, lazily) and removed at teardown.
 */
export function sharedTmpfs(t: TestLike, prefix: string): string {
  const dir = hostTempDir(t, prefix);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=755', 'tmpfs', dir], { encoding: 'utf8', timeout: 10_000 });
  if (m.status !== 0) throw new Error(`mount tmpfs on ${dir}: ${m.stderr}`);
  const s = spawnSync('mount', ['--make-shared', dir], { encoding: 'utf8', timeout: 10_000 });
  if (s.status !== 0) throw new Error(`mount --make-shared ${dir}: ${s.stderr}`);
  return dir;
}

/** `mountpoint -q dir` on the host. */
export function isHostMountpoint(dir: string): boolean {
  return spawnSync('mountpoint', ['-q', dir], { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

// ---------------------------------------------------------------------------
// tsrun children

export interface Live {
  child: ChildProcess;
  pid: number;
  /** resolves once the child exited (code, or 128+N and the signal) */
  exited: Promise<{ code: number; signal: NodeJS.Signals | null }>;
  done(): boolean;
  /** SIGKILL to the child only (not its process group) */
  kill(signal?: NodeJS.Signals): void;
  /** SIGKILL to its whole process group */
  killGroup(): void;
  /** its stderr so far, when it went to a file (stderrFile) */
  stderr(): string;
}

export interface LiveOptions {
  /** run this instead of bin/tsrun, with `args` as they are (no --root) */
  cmd?: string;
  /** --root for tsrun (default rootFor('tsrun')) */
  root?: string;
  env?: Record<string, string | undefined>;
  /** descriptors handed to the child as fd 3, 4, ... */
  extraFds?: number[];
  /** default 30 s; the child's process group is killed after it */
  timeoutMs?: number;
}

/**
 * Spawns `bin/tsrun --root <root> ...args` in its own process group with
 * stdout to /dev/null and stderr to a temporary file; the live child can be
 * signalled by the test. Killed at teardown and at its timeout.
 */
export function spawnLive(t: TestLike, args: string[], opts: LiveOptions = {}): Live {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-sec-out-'));
  const errFile = path.join(dir, 'stderr');
  const errFd = fs.openSync(errFile, 'w+');
  const cmd = opts.cmd ?? tsrunBinary();
  const argv = opts.cmd ? args : ['--root', opts.root ?? rootFor('tsrun'), ...args];
  const child = spawn(cmd, argv, {
    env: childEnv(opts.env),
    detached: true,
    stdio: ['ignore', 'ignore', errFd, ...(opts.extraFds ?? [])],
  });
  fs.closeSync(errFd);
  let isDone = false;
  const exited = new Promise<{ code: number; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', () => {
      isDone = true;
      resolve({ code: 127, signal: null });
    });
    child.once('exit', (code, signal) => {
      isDone = true;
      resolve({ code: code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0), signal });
    });
  });
  const killGroup = () => {
    if (isDone || child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  const timer = setTimeout(killGroup, opts.timeoutMs ?? 30_000);
  timer.unref();
  void exited.then(() => clearTimeout(timer));
  t.teardown(() => {
    killGroup();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    done: () => isDone,
    kill: (signal: NodeJS.Signals = 'SIGKILL') => {
      if (isDone || child.pid === undefined) return;
      try {
        process.kill(child.pid, signal);
      } catch {
        /* gone */
      }
    },
    killGroup,
    stderr: () => {
      try {
        return fs.readFileSync(errFile, 'utf8');
      } catch {
        return '';
      }
    },
  };
}

/**
 * `tsrun ...args` with stdout and stderr going to temporary files: a
 * container started by the command inherits them, so the result neither
 * waits for the container nor loses what tsrun wrote.
 */
export async function tsrunFiles(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-sec-out-'));
  const outFile = path.join(dir, 'stdout');
  const errFile = path.join(dir, 'stderr');
  const out = fs.openSync(outFile, 'w+');
  const err = fs.openSync(errFile, 'w+');
  try {
    const r = await tsrun(args, { ...opts, stdout: out, stderr: err, closeGraceMs: 0 });
    return { ...r, stdout: fs.readFileSync(outFile, 'utf8'), stderr: fs.readFileSync(errFile, 'utf8') + r.stderr };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The same as tsrunFiles for any command. */
export async function execFiles(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-sec-out-'));
  const outFile = path.join(dir, 'stdout');
  const errFile = path.join(dir, 'stderr');
  const out = fs.openSync(outFile, 'w+');
  const err = fs.openSync(errFile, 'w+');
  try {
    const r = await exec(cmd, args, { ...opts, stdout: out, stderr: err, closeGraceMs: 0 });
    return { ...r, stdout: fs.readFileSync(outFile, 'utf8'), stderr: fs.readFileSync(errFile, 'utf8') + r.stderr };
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The lines of an output, without a trailing empty one. */
export function lines(s: string): string[] {
  return s.split('\n').filter((l, i, a) => !(l === '' && i === a.length - 1));
}

export interface ListEntry {
  id: string;
  pid: number;
  status: string;
}

/** `tsrun list -f json` parsed (undefined when list failed or printed something else). */
export async function listJson(root?: string): Promise<ListEntry[] | undefined> {
  const r = await tsrun(['list', '-f', 'json'], { root });
  if (r.code !== 0) return undefined;
  try {
    const v = JSON.parse(r.stdout || '[]') as ListEntry[] | null;
    return v ?? [];
  } catch {
    return undefined;
  }
}

/** `tsrun state id`, parsed; undefined when it failed. */
export async function stateOf(id: string, root?: string): Promise<{ status: string; pid: number } | undefined> {
  const r = await tsrun(['state', id], { root });
  if (r.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as { status: string; pid: number };
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------
// /proc

/** /proc/<pid>/status as a map ("CapBnd" → "0000000020000420"). */
export function procStatus(pid: number | 'self'): Map<string, string> {
  const m = new Map<string, string>();
  try {
    for (const l of fs.readFileSync(`/proc/${pid}/status`, 'utf8').split('\n')) {
      const i = l.indexOf(':');
      if (i > 0) m.set(l.slice(0, i), l.slice(i + 1).trim());
    }
  } catch {
    /* gone */
  }
  return m;
}

/** The process exists and is not a zombie. */
export function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const st = procStatus(pid).get('State');
  return st !== undefined && !st.startsWith('Z') && !st.startsWith('X');
}

/** /proc/<pid>/cmdline with NULs as spaces ('' when gone). */
export function cmdlineOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** The pid of a host process as its innermost pid namespace sees it. */
export function innerPid(hostPid: number): number | undefined {
  const ns = procStatus(hostPid).get('NSpid');
  if (!ns) return undefined;
  return Number(ns.split(/\s+/).pop());
}

/** fd → link target of a process's descriptors (from the host, as root). */
export function fdTargets(pid: number): Map<number, string> {
  const m = new Map<number, string>();
  let names: string[] = [];
  try {
    names = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return m;
  }
  for (const n of names) {
    try {
      m.set(Number(n), fs.readlinkSync(`/proc/${pid}/fd/${n}`));
    } catch {
      /* closed meanwhile */
    }
  }
  return m;
}

/** Whether descriptor `fd` of `pid` is close-on-exec (fdinfo flags, octal, O_CLOEXEC = 02000000). */
export function isCloexec(pid: number, fd: number): boolean | undefined {
  try {
    const info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    const m = /^flags:\s*([0-7]+)/m.exec(info);
    return m ? (parseInt(m[1]!, 8) & 0o2000000) !== 0 : undefined;
  } catch {
    return undefined;
  }
}

/** Host pids (but `except`) in the pid namespace `nsLink` (readlink /proc/<pid>/ns/pid). */
export function pidsInNamespace(nsLink: string, except: number[] = []): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (except.includes(pid)) continue;
    try {
      if (fs.readlinkSync(`/proc/${pid}/ns/pid`) === nsLink) out.push(pid);
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return out;
}

export function sha256File(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

/** The Node binary bin/tsrun runs (`readlink -f $(command -v node)` with the launcher's PATH). */
export function nodeBinary(pathEnv = process.env.PATH ?? ''): string {
  for (const d of `${pathEnv}:/usr/local/bin:/usr/bin`.split(':')) {
    if (!d) continue;
    const f = path.join(d, 'node');
    try {
      fs.accessSync(f, fs.constants.X_OK);
      return fs.realpathSync(f);
    } catch {
      /* next */
    }
  }
  return fs.realpathSync(process.execPath);
}
