/**
 * What the isolation specs (spec/runtime/isolation-*.test.ts) share: run a
 * small `sh -c` script in a real busybox container with `tsrun run` (in the
 * foreground, so its stdout is the container's) and look at what it printed.
 *
 *   const out = await inside(t, (c) => { c.hostname = 'x'; }, 'hostname');
 *
 * Each call makes a fresh bundle (removed at teardown), uses a unique id
 * (force-deleted at teardown), and asserts that the run exited 0. The other
 * helpers read the container's /proc files the scripts print.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type Bundle,
  type BundleConfig,
  type BundleOptions,
  type RunResult,
  type TestLike,
  cleanupContainer,
  makeBundle,
  rootFor,
  tsrun,
  tsrunBinary,
  uniqueId,
} from '../lib/harness.js';
import type { Test } from 'tap';


/** Why a whole file is skipped: the specs run real containers as root. */
export const skip = process.getuid?.() !== 0 ? 'needs root (runs real containers)' : false;

/** Every container run here is bounded by this (tsrun kills nothing itself). */
export const RUN_TIMEOUT_MS = 30_000;

export interface InsideOptions {
  /** flags for `tsrun run` before the id, e.g. ['--no-pivot'] */
  runFlags?: string[];
  /** runs after the rootfs is made and before config.json is written (files in the rootfs, host dirs) */
  prepare?: (bundle: Bundle) => void | Promise<void>;
  bundle?: BundleOptions;
  /** the container's stdin (default: an empty pipe) */
  input?: string;
  /** id prefix (default 'iso') */
  prefix?: string;
  /** the id to use (default uniqueId(prefix)); it is registered for cleanup here either way */
  id?: string;
}

export interface InsideResult extends RunResult {
  id: string;
  bundle: Bundle;
}

export type Mutate = (config: BundleConfig, bundle: Bundle) => void;

/** The config every spec starts from: runc's default, no terminal, args `sh -c script`. */
async function prepareRun(
  t: Test,
  mutate: Mutate | undefined,
  script: string,
  opts: InsideOptions,
): Promise<{ id: string; bundle: Bundle }> {
  const bundle = await makeBundle(t, undefined, opts.bundle);
  await opts.prepare?.(bundle);
  bundle.write((c) => {
    c.process.args = ['sh', '-c', script];
    mutate?.(c, bundle);
  });
  const id = opts.id ?? uniqueId(opts.prefix ?? 'iso');
  cleanupContainer(t, id);
  return { id, bundle };
}

/** Runs `script` in a container configured by `mutate`; no assertion made. */
export async function runInside(
  t: Test,
  mutate: Mutate | undefined,
  script: string,
  opts: InsideOptions = {},
): Promise<InsideResult> {
  const { id, bundle } = await prepareRun(t, mutate, script, opts);
  const r = await tsrun(['run', ...(opts.runFlags ?? []), '--bundle', bundle.dir, id], {
    input: opts.input ?? '',
    timeoutMs: RUN_TIMEOUT_MS,
  });
  return { ...r, id, bundle };
}

/**
 * Runs `script` in a container configured by `mutate`, asserts (one tap
 * assertion) that it exited 0, and returns its stdout.
 */
export async function inside(
  t: Test,
  mutate: Mutate | undefined,
  script: string,
  opts: InsideOptions = {},
): Promise<string> {
  const r = await runInside(t, mutate, script, opts);
  t.equal(r.code, 0, `tsrun run exits 0`, { stderr: r.stderr, stdout: r.stdout });
  return r.stdout;
}

/**
 * Like runInside, but tsrun gets `fds` as its descriptors 3, 4, ... (as an
 * engine passes --preserve-fds descriptors). Bounded like every run here.
 */
export async function runInsideWithFds(
  t: Test,
  mutate: Mutate | undefined,
  script: string,
  fds: number[],
  opts: InsideOptions = {},
): Promise<InsideResult> {
  const { id, bundle } = await prepareRun(t, mutate, script, opts);
  const argv = ['--root', rootFor('tsrun'), 'run', ...(opts.runFlags ?? []), '--bundle', bundle.dir, id];
  const r = await new Promise<RunResult>((resolve) => {
    const started = performance.now();
    const child = spawn(tsrunBinary(), argv, { detached: true, stdio: ['pipe', 'pipe', 'pipe', ...fds] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(opts.input ?? '');
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* gone */
      }
    }, RUN_TIMEOUT_MS);
    child.once('error', (e) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout: '', stderr: String(e), timedOut, ms: 0, argv });
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? 128 + (signal ? (os.constants.signals[signal] ?? 0) : 0),
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + (timedOut ? '\n[spec] killed after timeout' : ''),
        timedOut,
        ms: performance.now() - started,
        argv,
      });
    });
  });
  return { ...r, id, bundle };
}

// ---------------------------------------------------------------------------
// Common configurations

/** mutate: a new user namespace mapping container ids 0-65535 to host ids 100000-165535. */
export function inUserns(c: BundleConfig): void {
  c.linux.namespaces.push({ type: 'user' });
  c.linux.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  c.linux.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
}

/**
 * prepare, with inUserns: the container's root is host uid 100000, which must
 * be able to reach the rootfs through the bundle directory (made 0700 by
 * mkdtemp); runc needs the same.
 */
export function bundleReachable(b: Bundle): void {
  fs.chmodSync(b.dir, 0o755);
}

// ---------------------------------------------------------------------------
// Reading what the container printed

/** `key: value` lines (as /proc/self/status prints them) into a map. */
export function fields(text: string, sep = ':'): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(sep);
    if (i > 0) m.set(line.slice(0, i).trim(), line.slice(i + sep.length).trim());
  }
  return m;
}

/**
 * The lines between `=== name` and the next `=== ` line, each ending in a
 * newline (scripts print several sections with `echo === name; cmd`); ''
 * when the section is missing or empty.
 */
export function section(out: string, name: string): string {
  const lines = out.split('\n');
  const start = lines.indexOf(`=== ${name}`);
  if (start < 0) return '';
  const rest = lines.slice(start + 1);
  const end = rest.findIndex((l) => l.startsWith('=== '));
  const body = end < 0 ? rest : rest.slice(0, end);
  if (end < 0 && body[body.length - 1] === '') body.pop(); // the output's final newline
  return body.map((l) => `${l}\n`).join('');
}

export interface MountLine {
  id: number;
  parent: number;
  dev: string;
  root: string;
  mountpoint: string;
  /** per-mount options: rw/ro, nosuid, nodev, noexec, relatime... */
  options: string[];
  /** propagation: shared:N, master:N, propagate_from:N, unbindable */
  optional: string[];
  fstype: string;
  source: string;
  superOptions: string[];
}

function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** proc(5) mountinfo lines. */
export function parseMountinfo(text: string): MountLine[] {
  const out: MountLine[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 4) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2]!,
      root: unescapeOctal(f[3]!),
      mountpoint: unescapeOctal(f[4]!),
      options: f[5]!.split(','),
      optional: f.slice(6, sep),
      fstype: f[sep + 1]!,
      source: unescapeOctal(f[sep + 2]!),
      superOptions: f[sep + 3]!.split(','),
    });
  }
  return out;
}

/** The mount on top at `mountpoint` (the last one listed there), if any. */
export function mountAt(mounts: MountLine[], mountpoint: string): MountLine | undefined {
  return mounts.filter((m) => m.mountpoint === mountpoint).pop();
}

/** `readlink /proc/self/ns/<type>` on the host: e.g. "net:[4026531833]". */
export function hostNs(type: string): string {
  return fs.readlinkSync(`/proc/self/ns/${type}`);
}

/** A directory on the host for one test, removed at teardown (after any unmount). */
export function hostTempDir(t: TestLike, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Lists a host directory recursively (relative paths, sorted), for "left untouched" checks. */
export function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string, depth: number) => {
    if (depth > 8) return;
    for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) walk(r, depth + 1);
    }
  };
  walk('', 0);
  return out.sort();
}
