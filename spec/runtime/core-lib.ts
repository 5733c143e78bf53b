/**
 * Helpers shared by the spec/runtime specs, on top of spec/lib/harness.ts:
 * a tsrun child the test can signal and read while it runs, bounded polling,
 * and small /proc readers.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { State } from '../../src/oci/types.js';
import { type BundleConfig, ensureEngine, exec, rootFor, type RunResult, type TestLike, tsrun, tsrunBinary, warmMode } from '../lib/harness.js';

export const isRoot = process.getuid?.() === 0;
export const hasCommand = (name: string): boolean =>
  (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(`${d}/${name}`));
export const skipUnlessRoot = !isRoot ? 'needs root' : false;

/** The environment for children: tap's hooks stripped (bin/tsrun drops NODE_OPTIONS itself). */
function env(): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE' || k === 'TAP' || k.startsWith('TAP_') || k.startsWith('_TAPJS_')) continue;
    out[k] = v;
  }
  return out;
}

export interface Live {
  child: ChildProcess;
  pid: number;
  /** everything read from stdout/stderr so far (when piped) */
  out(): string;
  err(): string;
  /** resolves once the child exited (code, or 128+N and the signal) */
  exited: Promise<{ code: number; signal: NodeJS.Signals | null }>;
  /** resolves once stdout and stderr are closed (or at once when not piped) */
  closed: Promise<void>;
  /** has it exited yet? */
  done(): boolean;
}

/**
 * Spawns `bin/tsrun --root <root> ...args` (or another argv with `raw`) and
 * hands back the live child. Killed (its whole process group) at teardown
 * and when it outlives `timeoutMs` (default 30 s).
 */
export function spawnLive(
  t: TestLike,
  args: string[],
  opts: {
    raw?: boolean;
    cmd?: string;
    cwd?: string;
    stdout?: 'pipe' | 'ignore' | number;
    stderr?: 'pipe' | 'ignore' | number;
    timeoutMs?: number;
  } = {},
): Live {
  const cmd = opts.cmd ?? tsrunBinary();
  if (!opts.raw && warmMode()) ensureEngine(rootFor('tsrun'));
  const argv = opts.raw ? args : ['--root', rootFor('tsrun'), ...args];
  const child = spawn(cmd, argv, {
    cwd: opts.cwd,
    env: env(),
    detached: true,
    stdio: ['ignore', opts.stdout ?? 'pipe', opts.stderr ?? 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (err += s));
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
  const streams = [child.stdout, child.stderr].filter((s): s is NonNullable<typeof s> => !!s);
  const closed = Promise.all(streams.map((s) => new Promise<void>((r) => s.once('close', () => r())))).then(() => undefined);
  const kill = () => {
    if (isDone || child.pid === undefined) return;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  const timer = setTimeout(kill, opts.timeoutMs ?? 30_000);
  timer.unref();
  void exited.then(() => clearTimeout(timer));
  t.teardown(() => {
    kill();
    for (const s of streams) s.destroy();
  });
  return { child, pid: child.pid ?? -1, out: () => out, err: () => err, exited, closed, done: () => isDone };
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Polls `pred` every `everyMs` until it returns truthy or `timeoutMs` passes; returns its last value. */
export async function waitFor<T>(pred: () => T | Promise<T>, timeoutMs = 5000, everyMs = 20): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v || Date.now() >= deadline) return v;
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

/** `tsrun state id`, parsed; `state` is undefined when it failed. */
export async function stateOf(id: string, root?: string): Promise<{ state?: State & Record<string, unknown>; code: number; stderr: string; stdout: string }> {
  const r = await tsrun(['state', id], { root });
  let state: (State & Record<string, unknown>) | undefined;
  if (r.code === 0) {
    try {
      state = JSON.parse(r.stdout) as State & Record<string, unknown>;
    } catch {
      state = undefined;
    }
  }
  return { state, code: r.code, stderr: r.stderr, stdout: r.stdout };
}

/** Waits (bounded) for the container to reach `status`; returns the last state seen. */
export async function waitStatus(id: string, status: string, timeoutMs = 5000): Promise<State | undefined> {
  let last: State | undefined;
  await waitFor(async () => {
    last = (await stateOf(id)).state;
    return last?.status === status;
  }, timeoutMs);
  return last;
}

/** /proc/<pid>/cmdline with NULs as spaces ('' when gone). */
export function cmdlineOf(pid: number): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

/** A field of /proc/<pid>/status ("PPid", "State", ...), undefined when gone. */
export function procStatus(pid: number, field: string): string | undefined {
  try {
    const line = fs
      .readFileSync(`/proc/${pid}/status`, 'utf8')
      .split('\n')
      .find((l) => l.startsWith(`${field}:`));
    return line?.slice(field.length + 1).trim();
  } catch {
    return undefined;
  }
}

/** The process exists and is not a zombie. */
export function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const st = procStatus(pid, 'State');
  return st !== undefined && !st.startsWith('Z') && !st.startsWith('X');
}

/** Drops a namespace kind from the config. */
export function withoutNamespace(c: BundleConfig, type: string): void {
  c.linux.namespaces = (c.linux.namespaces ?? []).filter((n) => n.type !== type);
}

/** The lines of a stderr, without a trailing empty one. */
export function lines(s: string): string[] {
  return s.split('\n').filter((l, i, a) => !(l === '' && i === a.length - 1));
}

/**
 * `tsrun ...args` with stdout and stderr going to temporary files instead of
 * pipes: a container started by the command inherits them and may keep them
 * open, so the result neither waits for it nor loses what tsrun itself wrote.
 */
export async function tsrunFiles(
  args: string[],
  opts: { root?: string; cwd?: string; timeoutMs?: number; raw?: boolean } = {},
): Promise<RunResult> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-spec-out-'));
  const outFile = path.join(dir, 'stdout');
  const errFile = path.join(dir, 'stderr');
  const out = fs.openSync(outFile, 'w+');
  const err = fs.openSync(errFile, 'w+');
  try {
    const r = opts.raw
      ? await exec(tsrunBinary(), args, { stdout: out, stderr: err, cwd: opts.cwd, timeoutMs: opts.timeoutMs })
      : await tsrun(args, { stdout: out, stderr: err, root: opts.root, cwd: opts.cwd, timeoutMs: opts.timeoutMs });
    r.stdout = fs.readFileSync(outFile, 'utf8');
    r.stderr = fs.readFileSync(errFile, 'utf8') + r.stderr;
    return r;
  } finally {
    fs.closeSync(out);
    fs.closeSync(err);
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
