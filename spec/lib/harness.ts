/**
 * The library every end-to-end spec uses. Specs run real containers, as root,
 * with tap; this file gives them:
 *
 *  - bundles:    makeBundle(t, mutate?) — a fresh bundle (busybox rootfs from
 *                the cached template, runc's default config with args ["sh"]
 *                and terminal false, then `mutate`), removed at teardown.
 *  - commands:   tsrun(args, opts?) runs bin/tsrun with `--root <state root>`
 *                prepended; runtime('runc' | 'crun' | 'tsrun', args, opts?)
 *                the same for another runtime (each runtime has its own state
 *                directory under the state root, so ids never collide);
 *                exec(cmd, args, opts?) for anything else. None throws on a
 *                non-zero exit; each has a timeout that kills the child.
 *  - ids:        uniqueId(prefix); cleanupContainer(t, id, runtime?) registers
 *                `<runtime> delete --force id` at teardown.
 *  - leaks:      leakCheck(t) snapshots the host's mounts; later
 *                assertNothingLeaked(t, id) fails on new mounts, cgroup
 *                directories whose name contains the id, and processes whose
 *                command line (or cgroup) contains the id or a marker.
 *
 * At teardown a test's containers (cleanupContainer) are deleted before its
 * bundles and state roots are removed, whatever order they were made in.
 * Every wait here is bounded; every child is killed on its timeout. As a last
 * resort, when the test process exits or tap times it out (teardowns do not
 * run then), children are killed, registered containers and any container in
 * a state root made here force-deleted, bundles and roots removed.
 *
 * Environment: TSRUN_BIN runs the specs against another binary; TMPDIR is
 * where bundles and state roots go; TSRUN_TEST_CACHE where the rootfs
 * template is kept (scripts/make-bundle.sh).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Linux, Mount, Namespace, Process, Root, Spec } from '../../src/oci/types.js';
import { pidPath, socketPath } from '../../src/engine/protocol.js';

/** The part of tap's Test this library uses (tap's own Test object fits). */
export interface TestLike {
  teardown(fn: () => unknown): void;
  ok(value: unknown, message: string, extra: { [k: string]: unknown }): boolean;
}

/** The repository root (where bin/tsrun and scripts/ are). */
export const REPO_ROOT = path.resolve(__dirname, '..', '..');

// ---------------------------------------------------------------------------
// Running commands

export interface RunOptions {
  /** written to the child's stdin, which is then closed; without it stdin is /dev/null */
  input?: string | Buffer;
  /** kill the child (SIGKILL to its process group) after this long; default 30 s */
  timeoutMs?: number;
  /** added to the environment; an undefined value removes the variable */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** `--root` for tsrun()/runtime(): default rootFor(runtime) */
  root?: string;
  /**
   * Where the child's stdout/stderr go: 'pipe' (default: captured into the
   * result), 'ignore', or an open file descriptor. A container started by
   * `create`/`run -d` inherits these: give it 'ignore' or a file's fd, or the
   * result waits closeGraceMs for pipes that the container keeps open.
   */
  stdout?: 'pipe' | 'ignore' | number;
  stderr?: 'pipe' | 'ignore' | number;
  /** after the child exits, how long to wait for its pipes to close; default 200 ms */
  closeGraceMs?: number;
}

export interface RunResult {
  /** the exit code; 128 + the signal number when the child was killed by a signal */
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** the child was killed by our timeout */
  timedOut: boolean;
  /** wall time from spawn to exit */
  ms: number;
  /** what ran, for messages */
  argv: string[];
}

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_CAPTURE = 16 * 1024 * 1024;

/** Children still running, killed (by process group) when this process exits. */
const live = new Set<ChildProcess>();

/** The environment for children: tap's and our test process's Node hooks stripped. */
function childEnv(extra?: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE' || k.startsWith('_TAPJS_') || k.startsWith('TS_NODE_')) continue;
    if (k === 'TAP' || k.startsWith('TAP_')) continue;
    env[k] = v;
  }
  for (const [k, v] of Object.entries(extra ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

function killGroup(c: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, signal); // its own process group (spawned detached)
  } catch {
    try {
      c.kill(signal);
    } catch {
      /* already gone */
    }
  }
}

/**
 * Runs a command, never throwing for its exit status: resolves with the code,
 * output and timing. The child gets its own process group, killed whole on
 * timeout.
 */
export function exec(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const grace = opts.closeGraceMs ?? 200;
  const argv = [cmd, ...args];
  return new Promise<RunResult>((resolve) => {
    const started = performance.now();
    let child: ChildProcess;
    try {
      child = spawn(cmd, args, {
        cwd: opts.cwd,
        env: childEnv(opts.env),
        detached: true,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', opts.stdout ?? 'pipe', opts.stderr ?? 'pipe'],
      });
    } catch (e) {
      resolve({ code: 127, signal: null, stdout: '', stderr: String(e), timedOut: false, ms: 0, argv });
      return;
    }
    live.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outLen = 0;
    let errLen = 0;
    child.stdout?.on('data', (b: Buffer) => {
      if (outLen < MAX_CAPTURE) out.push(b);
      outLen += b.length;
    });
    child.stderr?.on('data', (b: Buffer) => {
      if (errLen < MAX_CAPTURE) err.push(b);
      errLen += b.length;
    });
    let timedOut = false;
    let spawnError: Error | undefined;
    let exited: { code: number | null; signal: NodeJS.Signals | null; ms: number } | undefined;
    let done = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child);
    }, timeoutMs);
    let graceTimer: NodeJS.Timeout | undefined;

    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (graceTimer) clearTimeout(graceTimer);
      live.delete(child);
      // Pipes still held by someone else (a detached container): keep
      // draining them so its writes do not fail, without keeping us alive.
      for (const s of [child.stdout, child.stderr]) {
        if (s && !s.destroyed) {
          s.removeAllListeners('data');
          s.resume();
          (s as unknown as { unref?: () => void }).unref?.();
        }
      }
      const code = exited?.code ?? (exited?.signal ? 128 + (os.constants.signals[exited.signal] ?? 0) : spawnError ? 127 : 1);
      let stderr = Buffer.concat(err).toString('utf8');
      if (spawnError) stderr += `${stderr ? '\n' : ''}${spawnError.message}`;
      if (timedOut) stderr += `${stderr ? '\n' : ''}[harness] killed after ${timeoutMs} ms: ${argv.join(' ')}`;
      resolve({
        code,
        signal: exited?.signal ?? null,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr,
        timedOut,
        ms: exited?.ms ?? performance.now() - started,
        argv,
      });
    };

    child.once('error', (e) => {
      // spawn failed (ENOENT, EACCES): no 'exit' will follow
      spawnError = e;
      if (child.pid === undefined) finish();
    });
    child.once('exit', (code, signal) => {
      exited = { code, signal, ms: performance.now() - started };
      live.delete(child);
      graceTimer = setTimeout(finish, grace);
    });
    child.once('close', finish);

    if (opts.input !== undefined && child.stdin) {
      child.stdin.on('error', () => undefined); // EPIPE when the child does not read
      child.stdin.end(opts.input);
    }
  });
}

// ---------------------------------------------------------------------------
// tsrun and the other runtimes

let tsrunOverride: string | undefined;

/** bin/tsrun, or $TSRUN_BIN, or what setTsrunBinary() set. */
export function tsrunBinary(): string {
  return tsrunOverride ?? process.env.TSRUN_BIN ?? path.join(REPO_ROOT, 'bin', 'tsrun');
}

/** Runs the specs against another binary (undefined: back to the default). */
export function setTsrunBinary(file: string | undefined): void {
  tsrunOverride = file;
}

function binaryFor(runtimeName: string): string {
  return runtimeName === 'tsrun' ? tsrunBinary() : runtimeName;
}

/** `tsrun --root <rootFor('tsrun')> ...args` */
export function tsrun(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return runtime('tsrun', args, opts);
}

/**
 * `<binary> --root <rootFor(binary)> ...args`, for comparing with runc or
 * crun on the same bundle. 'tsrun' means tsrunBinary().
 */
export function runtime(binary: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const root = opts.root ?? rootFor(binary);
  if (binary === 'tsrun' && warmMode()) ensureEngine(root);
  return exec(binaryFor(binary), ['--root', root, ...args], opts);
}

// ---------------------------------------------------------------------------
// Warm mode (TSRUN_TEST_ENGINE=1): every tsrun state root gets a resident
// engine (`tsrun engine start`) before its first command, stopped when this
// process exits, so the same specs exercise bin/tsrun's warm path.

const engines = new Set<string>();

export function warmMode(): boolean {
  return process.env.TSRUN_TEST_ENGINE === '1';
}

/** Starts the engine for `root` once (synchronously; ~0.2 s). */
export function ensureEngine(root: string): void {
  const abs = path.resolve(root);
  if (engines.has(abs)) return;
  engines.add(abs);
  const r = spawnSync(tsrunBinary(), ['--root', abs, 'engine', 'start', '--idle-timeout', '900'], { encoding: 'utf8', timeout: 20_000, env: childEnv() });
  if (r.status !== 0) throw new Error(`[harness] engine start for ${abs} failed: ${r.stderr || r.error}`);
}

/** The pid in the engine for `root`'s pid file, or undefined (none, or not running). */
function enginePid(root: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidPath(root), 'utf8'));
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The pids of the engines this process started (warm mode). */
function enginePids(): number[] {
  return [...engines].map(enginePid).filter((pid): pid is number => pid !== undefined);
}

/**
 * Stops the engine for `root`; one too busy to answer (a hook still running,
 * say) is killed: we started it. Either way its socket and pid file go, so
 * no later launcher finds an engine that is not there.
 */
function stopEngine(root: string): void {
  const r = spawnSync(tsrunBinary(), ['--root', root, 'engine', 'stop'], { stdio: 'ignore', timeout: 5000, env: childEnv() });
  if (r.status === 0) return;
  const pid = enginePid(root);
  try {
    if (pid !== undefined) process.kill(pid, 'SIGKILL');
  } catch {
    /* gone already */
  }
  for (const file of [socketPath(root), pidPath(root)]) fs.rmSync(file, { force: true });
}

function stopEngines(): void {
  for (const root of engines) stopEngine(root);
  engines.clear();
}

/**
 * Stops the engines this process started for roots under `dir`, before a
 * cleanup that SIGKILLs whatever names `dir` on its command line (an
 * engine's does: `--root <dir>/...`) would leave their socket and pid file
 * behind with no engine (spec/engines/lib.ts EngineDir).
 */
export function stopEnginesUnder(dir: string): void {
  const prefix = path.resolve(dir) + '/';
  for (const root of [...engines]) {
    if (!root.startsWith(prefix)) continue;
    stopEngine(root);
    engines.delete(root);
  }
}

// ---------------------------------------------------------------------------
// State roots: one base directory (per test process unless overridden), with
// one state directory per runtime under it.

const createdRoots = new Set<string>();
let currentRoot: string | undefined;

function newRootDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tsrun-spec-root-${process.pid}-`));
  createdRoots.add(dir);
  return dir;
}

/** The base state directory: a per-process temporary one unless setStateRoot() chose another. */
export function stateRoot(): string {
  currentRoot ??= newRootDir();
  return currentRoot;
}

/** Uses `dir` as the base state directory from now on (undefined: a per-process temporary one). */
export function setStateRoot(dir: string | undefined): void {
  currentRoot = dir;
}

/** The --root given to a runtime: `<stateRoot()>/<runtime name>`. */
export function rootFor(runtimeName: string): string {
  return path.join(stateRoot(), path.basename(runtimeName));
}

/**
 * A new base state directory for test `t` (and everything it calls until its
 * teardown), removed at teardown after force-deleting any container left in it.
 */
export function freshStateRoot(t: TestLike): string {
  const previous = currentRoot;
  const dir = newRootDir();
  currentRoot = dir;
  t.teardown(async () => {
    try {
      await flushDeletes(t);
      await deleteAllIn(dir);
    } catch (e) {
      console.error(`[harness] cleaning state root ${dir}: ${String(e)}`);
    } finally {
      if (currentRoot === dir) currentRoot = previous;
    }
  });
  return dir;
}

/** Force-deletes every container found under a base state directory, then removes it. */
async function deleteAllIn(base: string): Promise<void> {
  for (const rt of safeReaddir(base).slice(0, 16)) {
    const root = path.join(base, rt);
    for (const id of safeReaddir(root).slice(0, 256)) {
      if (!fs.statSync(path.join(root, id), { throwIfNoEntry: false })?.isDirectory()) continue;
      await exec(binaryFor(rt), ['--root', root, 'delete', '--force', id], { timeoutMs: 15_000 });
    }
  }
  fs.rmSync(base, { recursive: true, force: true });
  createdRoots.delete(base);
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------
// Ids and container cleanup

let idCounter = 0;

/** A container id no other test (or test process) uses: `<prefix>-<pid>-<n>-<random>`. */
export function uniqueId(prefix = 'spec'): string {
  idCounter += 1;
  return `${prefix}-${process.pid.toString(36)}-${idCounter.toString(36)}-${randomBytes(3).toString('hex')}`;
}

interface PendingDelete {
  runtimeName: string;
  root: string;
  id: string;
  done?: Promise<void>;
}
const pendingDeletes = new WeakMap<object, PendingDelete[]>();
/** Registered and not yet deleted (by a teardown that finished), for the last resort. */
const undeleted = new Set<PendingDelete>();

async function forceDelete(p: PendingDelete): Promise<void> {
  p.done ??= (async () => {
    try {
      const r = await exec(binaryFor(p.runtimeName), ['--root', p.root, 'delete', '--force', p.id], { timeoutMs: 15_000 });
      if (r.timedOut) console.error(`[harness] ${p.runtimeName} delete --force ${p.id} timed out`);
      else undeleted.delete(p);
    } catch (e) {
      console.error(`[harness] cleanupContainer ${p.id}: ${String(e)}`);
    }
  })();
  return p.done;
}

/** Force-deletes the containers registered with cleanupContainer(t, ...) (each once), newest first. */
async function flushDeletes(t: TestLike): Promise<void> {
  for (const p of [...(pendingDeletes.get(t) ?? [])].reverse()) await forceDelete(p);
}

/**
 * At teardown: `<runtime> --root <its root now> delete --force id` (quietly;
 * a container that was never created is fine). The bundles and state roots
 * of the same test are removed only after this, whatever the order they were
 * made in.
 */
export function cleanupContainer(t: TestLike, id: string, runtimeName = 'tsrun', opts: { root?: string } = {}): void {
  const p: PendingDelete = { runtimeName, root: opts.root ?? rootFor(runtimeName), id };
  let list = pendingDeletes.get(t);
  if (!list) pendingDeletes.set(t, (list = []));
  list.push(p);
  undeleted.add(p);
  t.teardown(() => forceDelete(p));
}

// ---------------------------------------------------------------------------
// Bundles

/** runc's default config: the parts it always has are not optional here. */
export type BundleConfig = Spec & {
  process: Process & { args: string[]; env: string[] };
  root: Root;
  linux: Linux & { namespaces: Namespace[] };
  mounts: Mount[];
};

export interface Bundle {
  dir: string;
  rootfs: string;
  configPath: string;
  /** the config as written; change it and call write() to rewrite config.json */
  config: BundleConfig;
  write(mutate?: (config: BundleConfig) => void): void;
}

export interface BundleOptions {
  /** where the base config comes from: `runc spec` (default when runc is installed) or `tsrun spec` */
  spec?: 'runc' | 'tsrun';
  /** make the whole rootfs a private copy (for tests that chown/chmod it); default shares symlinks by hard link */
  copyRootfs?: boolean;
}

let templatePromise: Promise<string> | undefined;

/** The cached rootfs template (built by scripts/make-bundle.sh --template). */
export function rootfsTemplate(): Promise<string> {
  templatePromise ??= exec('bash', [path.join(REPO_ROOT, 'scripts', 'make-bundle.sh'), '--template'], {
    timeoutMs: 120_000,
  }).then((r) => {
    const dir = r.stdout.trim().split('\n').pop() ?? '';
    if (r.code !== 0 || !dir || !fs.existsSync(path.join(dir, 'bin', 'busybox'))) {
      templatePromise = undefined;
      throw new Error(`scripts/make-bundle.sh --template failed (${r.code}): ${r.stderr}`);
    }
    return dir;
  });
  return templatePromise;
}

interface TemplateEntry {
  rel: string;
  kind: 'dir' | 'file' | 'symlink';
  mode: number;
}
const templateListings = new Map<string, TemplateEntry[]>();

function listTemplate(dir: string): TemplateEntry[] {
  let entries = templateListings.get(dir);
  if (entries) return entries;
  entries = [];
  const walk = (rel: string, depth: number) => {
    if (depth > 16) throw new Error(`rootfs template too deep at ${rel}`);
    for (const d of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      const st = fs.lstatSync(path.join(dir, r));
      if (d.isDirectory()) {
        entries!.push({ rel: r, kind: 'dir', mode: st.mode & 0o7777 });
        walk(r, depth + 1);
      } else if (d.isSymbolicLink()) {
        entries!.push({ rel: r, kind: 'symlink', mode: 0 });
      } else if (d.isFile()) {
        entries!.push({ rel: r, kind: 'file', mode: st.mode & 0o7777 });
      }
    }
  };
  walk('', 0);
  templateListings.set(dir, entries);
  return entries;
}

/**
 * Copies the template: directories made, regular files copied, symlinks hard
 * linked (never changed in place, and ~10x cheaper to link than to create
 * here) unless `copy` or linking fails (another filesystem).
 */
function copyTemplate(template: string, dest: string, copy: boolean): void {
  fs.mkdirSync(dest, { mode: 0o755 });
  fs.chmodSync(dest, fs.statSync(template).mode & 0o7777);
  let link = !copy;
  for (const e of listTemplate(template)) {
    const from = path.join(template, e.rel);
    const to = path.join(dest, e.rel);
    if (e.kind === 'dir') {
      fs.mkdirSync(to);
      fs.chmodSync(to, e.mode);
    } else if (e.kind === 'file') {
      fs.copyFileSync(from, to);
      fs.chmodSync(to, e.mode);
    } else {
      if (link) {
        try {
          fs.linkSync(from, to);
          continue;
        } catch {
          link = false;
        }
      }
      fs.symlinkSync(fs.readlinkSync(from), to);
    }
  }
}

const baseConfigs = new Map<string, Promise<BundleConfig>>();

function hasCommand(name: string): boolean {
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin')
    .split(':')
    .some((d) => d && fs.existsSync(path.join(d, name)));
}

/** `runc spec` (or `tsrun spec`) output, made once per process. */
function baseConfig(source: 'runc' | 'tsrun'): Promise<BundleConfig> {
  let p = baseConfigs.get(source);
  if (!p) {
    p = (async () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-spec-config-'));
      try {
        const r =
          source === 'runc'
            ? await exec('runc', ['spec', '--bundle', tmp], { timeoutMs: 30_000 })
            : await exec(tsrunBinary(), ['spec', '--bundle', tmp], { timeoutMs: 30_000 });
        if (r.code !== 0) throw new Error(`${source} spec failed (${r.code}): ${r.stderr}`);
        return JSON.parse(fs.readFileSync(path.join(tmp, 'config.json'), 'utf8')) as BundleConfig;
      } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
      }
    })();
    p.catch(() => baseConfigs.delete(source));
    baseConfigs.set(source, p);
  }
  return p;
}

/**
 * A fresh bundle in a temporary directory: the busybox rootfs, and
 * config.json = the default config with process.args ["sh"] and terminal
 * false, then `mutate`. Removed at teardown (any mount left under it is
 * lazily unmounted first; a bundle that cannot be unmounted is left alone).
 */
export async function makeBundle(
  t: TestLike,
  mutate?: (config: BundleConfig) => void,
  opts: BundleOptions = {},
): Promise<Bundle> {
  const template = await rootfsTemplate();
  const source = opts.spec ?? (hasCommand('runc') ? 'runc' : 'tsrun');
  const base = await baseConfig(source);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bundle-'));
  liveBundles.add(dir);
  t.teardown(async () => {
    await flushDeletes(t);
    removeBundle(dir);
  });
  const rootfs = path.join(dir, 'rootfs');
  copyTemplate(template, rootfs, !!opts.copyRootfs);
  const configPath = path.join(dir, 'config.json');
  const config = structuredClone(base);
  config.process.args = ['sh'];
  config.process.terminal = false;
  const bundle: Bundle = {
    dir,
    rootfs,
    configPath,
    config,
    write(m) {
      m?.(bundle.config);
      fs.writeFileSync(configPath, `${JSON.stringify(bundle.config, null, 2)}\n`);
    },
  };
  bundle.write(mutate);
  return bundle;
}

/** Mount points at or below `dir`, deepest first (from /proc/self/mountinfo). */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  return readMountinfo()
    .map((l) => unescapeMount(l.split(' ')[4] ?? ''))
    .filter((mp) => mp === dir || mp.startsWith(prefix))
    .sort((a, b) => b.length - a.length);
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

const liveBundles = new Set<string>();

function removeBundle(dir: string): void {
  liveBundles.delete(dir);
  try {
    for (let round = 0; round < 3; round++) {
      const mps = mountsUnder(dir);
      if (mps.length === 0) break;
      for (const mp of mps) spawnSync('umount', ['-l', mp], { stdio: 'ignore', timeout: 10_000 });
    }
    const left = mountsUnder(dir);
    if (left.length) {
      console.error(`[harness] not removing ${dir}: still mounted: ${left.join(', ')}`);
      return;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  } catch (e) {
    console.error(`[harness] removing bundle ${dir}: ${String(e)}`);
  }
}

// ---------------------------------------------------------------------------
// Leak checks

export interface ProcInfo {
  pid: number;
  cmdline: string;
  /** what matched: 'cmdline' or 'cgroup' */
  via: string;
}

export interface LeakSnapshot {
  /** /proc/self/mountinfo lines */
  mounts: string[];
  /** cgroup directories whose name contains one of the ids */
  cgroups: string[];
  /** processes whose cmdline contains an id or marker, or whose cgroup path contains an id */
  processes: ProcInfo[];
}

function readMountinfo(): string[] {
  return fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter(Boolean);
}

/** Every cgroup hierarchy's mount point (v1 controllers and v2), from mountinfo. */
export function cgroupMountpoints(): string[] {
  const out = new Set<string>();
  for (const line of readMountinfo()) {
    const [pre, post] = line.split(' - ');
    const fstype = post?.split(' ')[0];
    if (fstype === 'cgroup' || fstype === 'cgroup2') out.add(unescapeMount(pre!.split(' ')[4]!));
  }
  return [...out];
}

/** Cgroup directories (up to 6 deep, 20000 visited at most) whose name contains one of `ids`. */
export function findCgroupDirs(ids: string[]): string[] {
  if (ids.length === 0) return [];
  const found: string[] = [];
  let budget = 20_000;
  const walk = (dir: string, depth: number) => {
    if (depth > 6 || budget <= 0) return;
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory() || budget-- <= 0) continue;
      const p = path.join(dir, e.name);
      if (ids.some((id) => e.name.includes(id))) found.push(p);
      walk(p, depth + 1);
    }
  };
  for (const mp of cgroupMountpoints()) walk(mp, 1);
  return found;
}

function ancestors(): Set<number> {
  const out = new Set<number>([process.pid]);
  let pid = process.ppid;
  for (let i = 0; i < 64 && pid > 1; i++) {
    out.add(pid);
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch {
      break;
    }
  }
  return out;
}

/** Processes (but this one and its ancestors) whose cmdline contains a needle, or whose cgroup path contains an id. */
export function findProcesses(ids: string[], markers: string[] = []): ProcInfo[] {
  const needles = [...ids, ...markers].filter(Boolean);
  if (needles.length === 0) return [];
  const skip = ancestors();
  // The engines warm mode started are ours and meant to live (their command
  // lines name the state roots a spec's markers may match).
  for (const pid of enginePids()) skip.add(pid);
  const found: ProcInfo[] = [];
  for (const name of safeReaddir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (skip.has(pid)) continue;
    let cmdline: string;
    let cgroup = '';
    try {
      cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      if (ids.length) cgroup = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    if (needles.some((n) => cmdline.includes(n))) found.push({ pid, cmdline, via: 'cmdline' });
    else if (ids.some((id) => cgroup.includes(id))) found.push({ pid, cmdline, via: 'cgroup' });
  }
  return found;
}

/** What leakCheck() and assertNothingLeaked() compare. */
export function leakSnapshot(ids: string[] = [], markers: string[] = []): LeakSnapshot {
  return { mounts: readMountinfo(), cgroups: findCgroupDirs(ids), processes: findProcesses(ids, markers) };
}

const snapshots = new WeakMap<object, LeakSnapshot>();

/**
 * Takes the "before" snapshot for test `t` (call it before creating
 * anything); assertNothingLeaked(t, id) compares against it. Returns it.
 */
export function leakCheck(t: TestLike, markers: string[] = []): LeakSnapshot {
  const snap = leakSnapshot([], markers);
  snapshots.set(t, snap);
  return snap;
}

export interface LeakOptions {
  /** further strings that mark this test's processes (e.g. a unique argument given to the container) */
  markers?: string[];
  /** the "before" snapshot; default the one leakCheck(t) took (or none: then any mount counts as old) */
  before?: LeakSnapshot;
  /** how long leaks may take to go away (processes being reaped, cgroups removed); default 3000 ms */
  settleMs?: number;
}

/** What is there now that was not before: new mounts, cgroups and processes of `id`. */
export function leaksSince(before: LeakSnapshot | undefined, id: string, markers: string[] = []): LeakSnapshot {
  const now = leakSnapshot([id], markers);
  const oldMounts = new Set(before?.mounts ?? now.mounts);
  const oldPids = new Set((before?.processes ?? []).map((p) => p.pid));
  return {
    mounts: now.mounts.filter((l) => !oldMounts.has(l)),
    cgroups: now.cgroups,
    processes: now.processes.filter((p) => !oldPids.has(p.pid)),
  };
}

/**
 * Asserts (one tap assertion) that container `id` left nothing behind:
 * no mount that was not there at leakCheck(t), no cgroup directory whose name
 * contains the id, no process whose cmdline contains the id or a marker (or
 * that is still in a cgroup named after the id). Waits up to settleMs for
 * stragglers to go.
 */
export async function assertNothingLeaked(t: TestLike, id: string, opts: LeakOptions = {}): Promise<boolean> {
  const before = opts.before ?? snapshots.get(t);
  const deadline = Date.now() + (opts.settleMs ?? 3000);
  let leaks = leaksSince(before, id, opts.markers);
  for (let i = 0; i < 200; i++) {
    if (!leaks.mounts.length && !leaks.cgroups.length && !leaks.processes.length) break;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, 100));
    leaks = leaksSince(before, id, opts.markers);
  }
  const clean = !leaks.mounts.length && !leaks.cgroups.length && !leaks.processes.length;
  return t.ok(clean, `nothing of ${id} left behind (mounts, cgroups, processes)`, clean ? {} : { found: leaks });
}

// ---------------------------------------------------------------------------
// The last resort: when the test process exits, or tap is about to kill it
// for running past its timeout (teardowns do not run then: tap sends an IPC
// message, then SIGALRM, then SIGKILL a second later), kill our children,
// force-delete the containers not yet deleted and remove what we made. All
// synchronous, so it finishes before the signal is acted on.

let lastResortDone = false;

function lastResort(why: string): void {
  if (lastResortDone) return;
  lastResortDone = true;
  const started = Date.now();
  const left = () => Math.max(500, 8000 - (Date.now() - started));
  const del = (runtimeName: string, root: string, id: string) =>
    spawnSync(binaryFor(runtimeName), ['--root', root, 'delete', '--force', id], {
      stdio: 'ignore',
      timeout: Math.min(5000, left()),
      env: childEnv(),
    });
  for (const c of live) killGroup(c);
  stopEngines();
  const dirty = undeleted.size > 0 || liveBundles.size > 0;
  if (dirty && why !== 'exit') console.error(`[harness] ${why}: deleting containers and bundles left behind`);
  for (const p of undeleted) del(p.runtimeName, p.root, p.id);
  undeleted.clear();
  for (const base of createdRoots) {
    for (const rt of safeReaddir(base).slice(0, 16)) {
      const root = path.join(base, rt);
      for (const id of safeReaddir(root).slice(0, 64)) del(rt, root, id);
    }
    try {
      fs.rmSync(base, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  createdRoots.clear();
  for (const dir of [...liveBundles]) removeBundle(dir);
}

process.on('exit', () => lastResort('exit'));
process.on('message', (msg: unknown) => {
  if (msg && typeof msg === 'object' && (msg as { tapAbort?: unknown }).tapAbort === 'timeout') {
    lastResort('tap timeout');
  }
});
// listening for tap's message must not keep the test process alive
(process.channel as { unref?: () => void } | undefined)?.unref?.();
