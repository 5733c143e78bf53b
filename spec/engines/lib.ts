/**
 * What the engine specs (spec/engines/*.test.ts) share, on top of
 * spec/lib/harness.ts: the busybox test image, private containerd, dockerd
 * and podman set-ups, and the checks around them.
 *
 *  - testImage()           a one-layer busybox image (the harness's rootfs
 *                          template) built with umoci and skopeo, as a
 *                          docker-archive tarball; cached next to the template.
 *  - startContainerd(t)    containerd on a private root, state dir, socket and
 *                          config.toml (CRI off); stopped at teardown.
 *  - startDockerd(t, ctd)  dockerd on a private data-root, exec-root, socket,
 *                          pidfile and daemon.json, using that containerd.
 *  - podmanEnv(t)          private --root/--runroot/--tmpdir and config files.
 *  - stopping:             every daemon runs in its own process group and is
 *                          stopped at teardown (SIGTERM, then SIGKILL), then
 *                          anything still carrying its directory in its
 *                          command line (shims, conmon) is killed, the
 *                          runtime state under its directory force-deleted,
 *                          mounts under it unmounted, its cgroup parents
 *                          removed and the directory deleted. The same runs,
 *                          synchronously, when the test process exits or tap
 *                          times it out.
 *  - tcpListeners(pids)    TCP sockets in LISTEN state that these processes hold.
 *  - tmux(t, command)      a private tmux server running `command` in a
 *                          120x40 terminal, for `-t`/`-it`.
 *  - tsrunOwnError(...)    the one-line error tsrun itself prints for a
 *                          config, to find intact in an engine's message.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type BundleConfig,
  cgroupMountpoints,
  ensureEngine,
  exec,
  makeBundle,
  mountsUnder,
  rootfsTemplate,
  type RunOptions,
  type RunResult,
  stopEnginesUnder,
  type TestLike,
  tsrun,
  tsrunBinary,
  uniqueId,
  warmMode,
} from '../lib/harness.js';
import { DEFAULT_ROOT } from '../../src/lifecycle/store.js';

export const isRoot = process.getuid?.() === 0;
/** Debian's docker client: /usr/local/bin/docker on this machine is another one. */
export const DOCKER_CLIENT = '/usr/bin/docker';
/** The reference the test image is imported/loaded as. */
export const IMAGE = 'localhost/tsrun-busybox:test';

export function hasCommand(name: string): boolean {
  if (name.startsWith('/')) return fs.existsSync(name);
  return (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').some((d) => d && fs.existsSync(path.join(d, name)));
}

/** A skip reason when not root or a command is missing, else false. */
export function skipUnless(commands: string[]): string | false {
  if (!isRoot) return 'needs root';
  const missing = commands.filter((c) => !hasCommand(c));
  return missing.length ? `needs ${missing.join(', ')} (bash scripts/setup.sh installs them)` : false;
}

/** Whether this build of tsrun has `command` (another engineer may still be adding it). */
export async function tsrunHas(command: string): Promise<boolean> {
  const r = await exec(tsrunBinary(), ['help'], { timeoutMs: 15_000 });
  return new RegExp(`^\\s+${command}\\b`, 'm').test(r.stdout + r.stderr);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every `everyMs` until it returns a truthy value or `ms` pass; returns the last value. */
export async function waitFor<T>(fn: () => T | Promise<T>, ms: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v || Date.now() >= deadline) return v;
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------
// The test image

export interface TestImage {
  ref: string;
  /** `docker save`-style tarball (ctr import, docker load, podman load all take it) */
  dockerArchive: string;
}

const IMAGE_LAYOUT_VERSION = 1;
let imagePromise: Promise<TestImage> | undefined;

/**
 * The busybox image: umoci init/new/unpack, the rootfs template copied in,
 * umoci repack and config (Cmd ["sh"], a PATH), skopeo copy to a
 * docker-archive. Built once per template (the template's directory name is
 * its key) into the template's cache directory, aside and then renamed.
 */
export function testImage(): Promise<TestImage> {
  imagePromise ??= buildImage();
  imagePromise.catch(() => (imagePromise = undefined));
  return imagePromise;
}

async function buildImage(): Promise<TestImage> {
  const template = await rootfsTemplate();
  const cache = path.dirname(template);
  const final = path.join(cache, `engine-image-v${IMAGE_LAYOUT_VERSION}-${path.basename(template)}`);
  const result = { ref: IMAGE, dockerArchive: path.join(final, 'image.tar') };
  if (fs.existsSync(result.dockerArchive)) return result;
  const tmp = fs.mkdtempSync(path.join(cache, '.engine-image-'));
  try {
    const step = async (cmd: string, args: string[]) => {
      const r = await exec(cmd, args, { cwd: tmp, timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`building the test image: ${r.argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    };
    await step('umoci', ['init', '--layout', 'oci']);
    await step('umoci', ['new', '--image', 'oci:busybox']);
    await step('umoci', ['unpack', '--image', 'oci:busybox', 'bundle']);
    await step('cp', ['-a', `${template}/.`, 'bundle/rootfs/']);
    await step('umoci', ['repack', '--image', 'oci:busybox', 'bundle']);
    await step('umoci', [
      'config', '--image', 'oci:busybox', '--config.cmd', 'sh', '--config.workingdir', '/',
      '--config.env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    ]);
    await step('skopeo', ['copy', '--quiet', 'oci:oci:busybox', `docker-archive:image.tar:${IMAGE}`]);
    fs.rmSync(path.join(tmp, 'bundle'), { recursive: true, force: true });
    fs.rmSync(path.join(tmp, 'oci'), { recursive: true, force: true });
    try {
      fs.renameSync(tmp, final);
    } catch {
      /* another process built it meanwhile: keep theirs */
    }
    for (const old of fs.readdirSync(cache)) {
      if (old.startsWith('engine-image-') && path.join(cache, old) !== final) fs.rmSync(path.join(cache, old), { recursive: true, force: true });
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  if (!fs.existsSync(result.dockerArchive)) throw new Error(`building the test image: ${result.dockerArchive} is missing`);
  return result;
}

// ---------------------------------------------------------------------------
// Private directories, daemons and their cleanup

interface RuntimeRoot {
  /** the runtime binary */
  binary: string;
  /** its --root; container state dirs are in it or one level down (containerd's namespaces) */
  root: string;
  /** when the root is shared (podman's: tsrun's default), only these containers are ours */
  ids?: () => string[];
}

/** Everything one engine set-up owns, and how to take it all down. */
export class EngineDir {
  readonly dir: string;
  readonly runtimeRoots: RuntimeRoot[] = [];
  /** cgroup parents (relative to every hierarchy's mount point) removed, when empty, at cleanup */
  readonly cgroupParents: string[] = [];
  readonly daemons: Daemon[] = [];
  /** run first by cleanup(), e.g. removing an engine's containers through the engine */
  beforeCleanup?: () => Promise<void>;
  private cleaned = false;

  constructor(prefix: string) {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `tsrun-engine-${prefix}-`));
    liveDirs.add(this);
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  /** Stops the daemons (newest first) and removes everything (async, for teardowns). */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    if (this.beforeCleanup) {
      try {
        await this.beforeCleanup();
      } catch (e) {
        console.error(`[engines] ${this.dir}: before cleanup: ${String(e)}`);
      }
    }
    for (const d of [...this.daemons].reverse()) await d.stop();
    this.cleanupSync();
  }

  /** The synchronous part, also the last resort at process exit. */
  cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    liveDirs.delete(this);
    for (const d of this.daemons) d.killSync();
    // Warm mode's engines for the runtime roots in here are stopped, not
    // swept up below with the rest (a SIGKILLed engine leaves its socket).
    stopEnginesUnder(this.dir);
    // shims, conmon, exit commands: whatever names this directory
    killMatching(this.dir);
    for (const rr of this.runtimeRoots) forceDeleteAll(rr);
    for (const rel of this.cgroupParents) removeCgroupParent(rel);
    unmountUnder(this.dir);
    keepLogs(this.dir);
    if (mountsUnder(this.dir).length) {
      console.error(`[engines] not removing ${this.dir}: still mounted: ${mountsUnder(this.dir).join(', ')}`);
      return;
    }
    try {
      fs.rmSync(this.dir, { recursive: true, force: true });
    } catch (e) {
      console.error(`[engines] removing ${this.dir}: ${String(e)}`);
    }
  }
}

const liveDirs = new Set<EngineDir>();

/** With $TSRUN_ENGINE_LOGS=DIR, the daemons' logs (*.log) are copied to DIR/<name> before removal. */
function keepLogs(dir: string): void {
  const keep = process.env.TSRUN_ENGINE_LOGS;
  if (!keep) return;
  try {
    const to = path.join(keep, path.basename(dir));
    fs.mkdirSync(to, { recursive: true });
    for (const f of fs.readdirSync(dir)) if (f.endsWith('.log')) fs.copyFileSync(path.join(dir, f), path.join(to, f));
  } catch (e) {
    console.error(`[engines] keeping the logs of ${dir}: ${String(e)}`);
  }
}

function readCmdline(pid: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/** Pids (not this process) whose command line contains `needle`. */
export function pidsMatching(needle: string): number[] {
  const out: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    if (readCmdline(name).includes(needle)) out.push(Number(name));
  }
  return out;
}

function killMatching(needle: string): void {
  for (let round = 0; round < 3; round++) {
    const pids = pidsMatching(needle);
    if (!pids.length) return;
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    spawnSync('sleep', ['0.1']);
  }
}

/** Container state dirs under a runtime root (directly, or one namespace level down). */
export function stateDirsUnder(root: string): { root: string; id: string }[] {
  const out: { root: string; id: string }[] = [];
  const scan = (dir: string, depth: number) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const p = path.join(dir, e.name);
      if (fs.existsSync(path.join(p, 'state.json'))) out.push({ root: dir, id: e.name });
      else if (depth === 0) scan(p, 1);
    }
  };
  scan(root, 0);
  return out;
}

function forceDeleteAll(rr: RuntimeRoot): void {
  const ours = rr.ids && new Set(rr.ids());
  for (const { root, id } of stateDirsUnder(rr.root)) {
    if (ours && !ours.has(id)) continue;
    spawnSync(rr.binary, ['--root', root, 'delete', '--force', id], { stdio: 'ignore', timeout: 15_000 });
  }
}

/** Removes `rel` (and its empty subdirectories) in every cgroup hierarchy; non-empty ones stay. */
export function removeCgroupParent(rel: string): void {
  for (const mp of cgroupMountpoints()) {
    const top = path.join(mp, rel);
    const rm = (dir: string) => {
      let entries: fs.Dirent[] = [];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory()) rm(path.join(dir, e.name));
      try {
        fs.rmdirSync(dir);
      } catch {
        /* busy or gone */
      }
    };
    rm(top);
  }
}

/** Cgroup directories named `rel` (in any hierarchy) that still exist. */
export function cgroupParentsLeft(rel: string): string[] {
  return cgroupMountpoints()
    .map((mp) => path.join(mp, rel))
    .filter((p) => fs.existsSync(p));
}

function unmountUnder(dir: string): void {
  for (let round = 0; round < 3; round++) {
    const mps = mountsUnder(dir);
    if (!mps.length) return;
    for (const mp of mps) spawnSync('umount', ['-l', mp], { stdio: 'ignore', timeout: 10_000 });
  }
}

/** A daemon in its own process group, its output in a log file. */
export class Daemon {
  readonly child: ChildProcess;
  readonly pid: number;
  /** run by stop() before the group is signalled, e.g. removing its containers */
  beforeStop?: () => Promise<void>;
  private exitedP: Promise<void>;
  private exited = false;

  constructor(
    readonly name: string,
    readonly logFile: string,
    cmd: string,
    args: string[],
  ) {
    const fd = fs.openSync(logFile, 'a');
    try {
      this.child = spawn(cmd, args, { detached: true, stdio: ['ignore', fd, fd], env: cleanEnv() });
    } finally {
      fs.closeSync(fd);
    }
    if (this.child.pid === undefined) throw new Error(`${name}: could not start ${cmd}`);
    this.pid = this.child.pid;
    this.exitedP = new Promise((resolve) => {
      this.child.once('exit', () => {
        this.exited = true;
        resolve();
      });
      this.child.once('error', () => {
        this.exited = true;
        resolve();
      });
    });
  }

  get running(): boolean {
    return !this.exited;
  }

  logTail(lines = 30): string {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** beforeStop, SIGTERM to the process group, SIGKILL after `graceMs`; resolves once it exited. */
  async stop(graceMs = 15_000): Promise<void> {
    if (this.exited) return;
    if (this.beforeStop) {
      try {
        await this.beforeStop();
      } catch (e) {
        console.error(`[engines] ${this.name}: before stop: ${String(e)}`);
      }
    }
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exitedP;
    clearTimeout(timer);
    this.signal('SIGKILL'); // anything left in its group
  }

  killSync(): void {
    this.signal('SIGKILL');
  }

  private signal(sig: NodeJS.Signals): void {
    try {
      process.kill(-this.pid, sig);
    } catch {
      /* gone */
    }
  }
}

/** The environment for engines: tap's and Node's hooks stripped. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'NODE_OPTIONS' || k === 'NODE_V8_COVERAGE' || k === 'TAP' || k.startsWith('TAP_') || k.startsWith('_TAPJS_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

async function waitReady(d: Daemon, what: string, probe: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!d.running) throw new Error(`${what} exited while starting; its log:\n${d.logTail()}`);
    if (await probe()) return;
    await sleep(100);
  }
  throw new Error(`${what} not ready after ${ms} ms; its log:\n${d.logTail()}`);
}

// The last resort: tap's timeout (an IPC message, then SIGALRM) or any exit.
let lastResortDone = false;
function lastResort(): void {
  if (lastResortDone) return;
  lastResortDone = true;
  for (const d of [...liveDirs]) d.cleanupSync();
}
process.on('exit', lastResort);
// A signal kills the test process without 'exit': clean up, then die of it.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.once(sig, () => {
    lastResort();
    process.kill(process.pid, sig);
  });
}
process.on('message', (msg: unknown) => {
  if (msg && typeof msg === 'object' && (msg as { tapAbort?: unknown }).tapAbort === 'timeout') lastResort();
});
(process.channel as { unref?: () => void } | undefined)?.unref?.();

// ---------------------------------------------------------------------------
// containerd

export interface Containerd {
  home: EngineDir;
  daemon: Daemon;
  socket: string;
  /** the containerd namespace the spec uses (also the cgroup parent of its containers) */
  namespace: string;
  /** overlayfs, or native when overlayfs did not load */
  snapshotter: string;
  /** --runc-root for `ctr run` (the runc v2 shim's runtime root) */
  runcRoot: string;
  /** the v1 runtime's runtime_root (config.toml `runtime = <tsrun>`) */
  v1Root: string;
  /** `ctr --address <socket> --namespace <namespace> ...args` */
  ctr(args: string[], opts?: RunOptions): Promise<RunResult>;
}

/**
 * containerd with a private config.toml: root, state, grpc socket and the
 * opt plugin's path in a private directory; the CRI plugin off; no TCP
 * address (ttrpc/debug/metrics unset); the v1 linux runtime pointed at
 * tsrun. The runc v2 shim gets tsrun per container (`ctr run --runc-binary`).
 */
export async function startContainerd(t: TestLike, opts: { prefix?: string } = {}): Promise<Containerd> {
  const home = new EngineDir(opts.prefix ?? 'containerd');
  t.teardown(() => home.cleanup());
  const socket = home.path('containerd.sock');
  const namespace = `tsrun-spec-${process.pid}`;
  home.cgroupParents.push(namespace);
  const runcRoot = home.path('runc-root');
  const v1Root = home.path('runtime-v1');
  home.runtimeRoots.push({ binary: tsrunBinary(), root: runcRoot }, { binary: tsrunBinary(), root: v1Root });
  // Warm mode: the roots the shims pass tsrun (one per containerd namespace) get an engine.
  if (warmMode()) for (const r of [runcRoot, v1Root]) ensureEngine(path.join(r, namespace));
  const toml = (s: string) => JSON.stringify(s);
  fs.writeFileSync(
    home.path('config.toml'),
    [
      'version = 2',
      `root = ${toml(home.path('root'))}`,
      `state = ${toml(home.path('state'))}`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]',
      '',
      '[grpc]',
      `  address = ${toml(socket)}`,
      '  tcp_address = ""',
      '[ttrpc]',
      '  address = ""',
      '[debug]',
      '  address = ""',
      '[metrics]',
      '  address = ""',
      '',
      '[plugins."io.containerd.internal.v1.opt"]',
      `  path = ${toml(home.path('opt'))}`,
      '[plugins."io.containerd.runtime.v1.linux"]',
      `  runtime = ${toml(tsrunBinary())}`,
      `  runtime_root = ${toml(v1Root)}`,
      '',
    ].join('\n'),
  );
  const daemon = new Daemon('containerd', home.path('containerd.log'), 'containerd', ['--config', home.path('config.toml'), '--log-level', 'debug']);
  home.daemons.push(daemon);
  const ctd: Containerd = {
    home,
    daemon,
    socket,
    namespace,
    snapshotter: 'overlayfs',
    runcRoot,
    v1Root,
    ctr: (args, o = {}) =>
      exec('ctr', ['--address', socket, '--namespace', namespace, ...args], {
        ...o,
        env: { CONTAINERD_SNAPSHOTTER: ctd.snapshotter, ...o.env },
      }),
  };
  // Before the daemon stops: every task killed and removed, every container
  // removed, in every namespace (docker's "moby" too).
  daemon.beforeStop = async () => {
    const nss = await exec('ctr', ['--address', socket, 'namespaces', 'ls', '-q'], { timeoutMs: 10_000 });
    for (const ns of nss.stdout.split('\n').filter(Boolean)) {
      const c = (args: string[]) => exec('ctr', ['--address', socket, '--namespace', ns, ...args], { timeoutMs: 20_000 });
      const tasks = (await c(['task', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
      for (const id of tasks) await c(['task', 'rm', '-f', id]);
      const containers = (await c(['container', 'ls', '-q'])).stdout.split('\n').filter(Boolean);
      for (const id of containers) await c(['container', 'rm', id]);
    }
  };
  await waitReady(daemon, 'containerd', async () => {
    if (!fs.existsSync(socket)) return false;
    return (await exec('ctr', ['--address', socket, 'version'], { timeoutMs: 5000 })).code === 0;
  });
  const plugins = await exec('ctr', ['--address', socket, 'plugins', 'ls'], { timeoutMs: 10_000 });
  if (!/io\.containerd\.snapshotter\.v1\s+overlayfs\s+\S+\s+ok/.test(plugins.stdout)) ctd.snapshotter = 'native';
  return ctd;
}

/** Imports the test image into a containerd (its spec namespace); throws on failure. */
export async function ctrImport(ctd: Containerd, image: TestImage): Promise<RunResult> {
  const r = await ctd.ctr(['image', 'import', image.dockerArchive], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`ctr image import: ${r.stderr.trim()}`);
  return r;
}

// ---------------------------------------------------------------------------
// dockerd

export interface Dockerd {
  home: EngineDir;
  daemon: Daemon;
  socket: string;
  /** the cgroup parent of its containers, relative to each hierarchy */
  cgroupParent: string;
  /**
   * the runc v2 shim's runtime root: dockerd 20.10 gives every runtime
   * <exec-root>/runtime-runc (containers in its "moby" subdirectory)
   */
  runtimeRoot: string;
  /** `/usr/bin/docker -H unix://<socket> ...args` */
  docker(args: string[], opts?: RunOptions): Promise<RunResult>;
}

/**
 * dockerd with a private data-root, exec-root, socket, pidfile and
 * daemon.json (which registers tsrun as `tsrun-json` and keeps the trust key
 * out of /etc/docker), no bridge, no iptables, no forwarding, its
 * containers under a private cgroup parent, driving the given containerd.
 * tsrun is registered as `tsrun` with --add-runtime.
 */
export async function startDockerd(t: TestLike, ctd: Containerd): Promise<Dockerd> {
  const home = new EngineDir('dockerd');
  t.teardown(() => home.cleanup());
  const socket = home.path('docker.sock');
  const cgroupParent = `tsrun-spec-docker-${process.pid}`;
  home.cgroupParents.push(cgroupParent);
  const execRoot = home.path('exec');
  const runtimeRoot = path.join(execRoot, 'runtime-runc');
  home.runtimeRoots.push({ binary: tsrunBinary(), root: runtimeRoot });
  if (warmMode()) ensureEngine(path.join(runtimeRoot, 'moby')); // dockerd's namespace in containerd
  fs.writeFileSync(
    home.path('daemon.json'),
    JSON.stringify(
      {
        runtimes: { 'tsrun-json': { path: tsrunBinary() } },
        'deprecated-key-path': home.path('key.json'),
      },
      null,
      2,
    ),
  );
  const daemon = new Daemon(
    'dockerd',
    home.path('dockerd.log'),
    'dockerd',
    [
      '--config-file', home.path('daemon.json'),
      '--data-root', home.path('data'),
      '--exec-root', execRoot,
      '-H', `unix://${socket}`,
      '--pidfile', home.path('docker.pid'),
      '--containerd', ctd.socket,
      '--iptables=false',
      '--ip-forward=false',
      '--ip-masq=false',
      '--bridge=none',
      '--cgroup-parent', `/${cgroupParent}`,
      '--add-runtime', `tsrun=${tsrunBinary()}`,
    ],
  );
  home.daemons.push(daemon);
  const docker = (args: string[], o: RunOptions = {}) => exec(DOCKER_CLIENT, ['-H', `unix://${socket}`, ...args], o);
  daemon.beforeStop = async () => {
    const ids = (await docker(['ps', '-aq'], { timeoutMs: 10_000 })).stdout.split('\n').filter(Boolean);
    if (ids.length) await docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
  };
  await waitReady(daemon, 'dockerd', async () => fs.existsSync(socket) && (await docker(['version'], { timeoutMs: 5000 })).code === 0);
  return { home, daemon, socket, cgroupParent, runtimeRoot, docker };
}

// ---------------------------------------------------------------------------
// podman (no daemon: conmon per container)

export interface Podman {
  home: EngineDir;
  /**
   * tsrun's --root for podman's containers: its default, as in a real
   * set-up (podman's exit command, `podman container cleanup`, does not
   * carry `--runtime-flag`s, so a private root would leave state behind)
   */
  runtimeRoot: string;
  /** every container id this podman created (from its file events log) */
  containerIds(): string[];
  cgroupParent: string;
  /** podman with the private global flags, `--runtime <tsrun>` and its root */
  podman(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** podman with the private global flags only (runtime from containers.conf) */
  podmanBare(args: string[], opts?: RunOptions): Promise<RunResult>;
  /** the options a spec passes to every `podman run` */
  runFlags: string[];
}

/**
 * Private podman: containers.conf (CONTAINERS_CONF: cgroupfs, file events,
 * tsrun under [engine.runtimes] and as the default runtime) and storage.conf
 * (CONTAINERS_STORAGE_CONF), --root/--runroot/--tmpdir/--network-config-dir
 * in a private directory; tsrun's state in its default root. Cleanup removes
 * every container first.
 */
export function podmanEnv(t: TestLike): Podman {
  const home = new EngineDir('podman');
  const runtimeRoot = DEFAULT_ROOT;
  const cgroupParent = `tsrun-spec-podman-${process.pid}`;
  const containerIds = (): string[] => {
    let text = '';
    try {
      text = fs.readFileSync(home.path('tmp', 'events', 'events.log'), 'utf8');
    } catch {
      return [];
    }
    const ids = new Set<string>();
    for (const line of text.split('\n')) {
      const m = /"ID":"([0-9a-f]{64})"/.exec(line);
      if (m && line.includes('"Type":"container"')) ids.add(m[1]!);
    }
    return [...ids];
  };
  home.runtimeRoots.push({ binary: tsrunBinary(), root: runtimeRoot, ids: containerIds });
  if (warmMode()) ensureEngine(runtimeRoot);
  home.cgroupParents.push(cgroupParent);
  const q = (s: string) => JSON.stringify(s);
  fs.writeFileSync(
    home.path('containers.conf'),
    [
      '[engine]',
      'cgroup_manager = "cgroupfs"',
      'events_logger = "file"',
      `tmp_dir = ${q(home.path('tmp'))}`,
      'runtime = "tsrun"',
      '[engine.runtimes]',
      `tsrun = [${q(tsrunBinary())}]`,
      '[network]',
      `network_config_dir = ${q(home.path('net'))}`,
      '',
    ].join('\n'),
  );
  fs.writeFileSync(
    home.path('storage.conf'),
    ['[storage]', 'driver = "overlay"', `graphroot = ${q(home.path('root'))}`, `runroot = ${q(home.path('runroot'))}`, ''].join('\n'),
  );
  const env = { CONTAINERS_CONF: home.path('containers.conf'), CONTAINERS_STORAGE_CONF: home.path('storage.conf') };
  const globals = [
    '--root', home.path('root'),
    '--runroot', home.path('runroot'),
    '--tmpdir', home.path('tmp'),
    '--network-config-dir', home.path('net'),
    '--cgroup-manager', 'cgroupfs',
    '--events-backend', 'file',
  ];
  const podmanBare = (args: string[], o: RunOptions = {}) => exec('podman', [...globals, ...args], { ...o, env: { ...env, ...o.env } });
  const podman = (args: string[], o: RunOptions = {}) => podmanBare(['--runtime', tsrunBinary(), ...args], o);
  home.beforeCleanup = async () => {
    await podman(['rm', '-a', '-f', '-t', '0'], { timeoutMs: 60_000 });
  };
  t.teardown(() => home.cleanup());
  return {
    home,
    runtimeRoot,
    containerIds,
    cgroupParent,
    podman,
    podmanBare,
    runFlags: [
      '--network', 'none',
      '--cgroup-parent', `/${cgroupParent}`,
      // this sandbox cannot raise RLIMIT_NOFILE above 20000 (podman's default is 1048576)
      '--ulimit', 'nofile=20000:20000',
      '--ulimit', 'nproc=32768:32768',
    ],
  };
}

// ---------------------------------------------------------------------------
// Checks

/** Every process descended from `pid` (itself included). */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of children.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

/** `addr:port (pid N)` for every TCP socket in LISTEN state held by one of `pids`. */
export function tcpListeners(pids: number[]): string[] {
  const listening = new Map<string, string>(); // inode -> local address
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue;
      listening.set(f[9]!, f[1]!);
    }
  }
  const out: string[] = [];
  for (const pid of pids) {
    let fds: string[] = [];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link = '';
      try {
        link = fs.readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      const addr = m && listening.get(m[1]!);
      if (addr) out.push(`${decodeAddr(addr)} (pid ${pid}: ${readCmdline(String(pid)).slice(0, 80)})`);
    }
  }
  return out;
}

function decodeAddr(hex: string): string {
  const [ip, port] = hex.split(':') as [string, string];
  if (ip.length === 8) {
    const b = Buffer.from(ip, 'hex');
    return `${b[3]}.${b[2]}.${b[1]}.${b[0]}:${parseInt(port, 16)}`;
  }
  return `[${ip}]:${parseInt(port, 16)}`;
}

/**
 * The one-line error tsrun itself prints when it creates a bundle whose
 * config is the default one changed by `mutate`, with `create <id>: `
 * removed: what an engine's message for the same failure must contain.
 */
export async function tsrunOwnError(t: TestLike, mutate: (c: BundleConfig) => void): Promise<string> {
  const b = await makeBundle(t, mutate);
  const id = uniqueId('own-error');
  const r = await tsrun(['create', '--bundle', b.dir, id], { timeoutMs: 30_000 });
  await tsrun(['delete', '--force', id]);
  const line = r.stderr.trim().split('\n').pop() ?? '';
  const m = /^tsrun: create \S+: (.*)$/.exec(line);
  if (r.code === 0 || !m) throw new Error(`tsrun create was expected to fail with "tsrun: create <id>: ...": exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`);
  return m[1]!;
}

export function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

// ---------------------------------------------------------------------------
// tmux

export interface Tmux {
  /** types `text`, then Enter */
  line(text: string): Promise<void>;
  /** the visible screen, trailing blank lines dropped */
  screen(): Promise<string>;
  /** waits until the screen matches `re` (bounded); returns the last screen */
  waitFor(re: RegExp, ms?: number): Promise<string>;
}

/**
 * `command` (a shell command line) in a private tmux server's 120x40
 * window; when it ends, the window shows `[exited N]` and stays. Killed at
 * teardown.
 */
export async function tmux(t: TestLike, dir: string, command: string): Promise<Tmux> {
  const sock = path.join(dir, `tmux-${Math.random().toString(36).slice(2, 8)}.sock`);
  const tm = (args: string[]) => exec('tmux', ['-S', sock, '-f', '/dev/null', ...args], { timeoutMs: 10_000, env: { TMUX: undefined, TERM: 'xterm' } });
  t.teardown(async () => {
    await tm(['kill-server']);
    fs.rmSync(sock, { force: true });
  });
  const r = await tm(['new-session', '-d', '-s', 'main', '-x', '120', '-y', '40', `${command}; echo "[exited $?]"; sleep 600`]);
  if (r.code !== 0) throw new Error(`tmux new-session: ${r.stderr.trim()}`);
  const screen = async () =>
    (await tm(['capture-pane', '-p', '-t', 'main'])).stdout.replace(/\s+$/, '');
  return {
    async line(text) {
      await tm(['send-keys', '-t', 'main', '-l', text]);
      await tm(['send-keys', '-t', 'main', 'Enter']);
    },
    screen,
    async waitFor(re, ms = 15_000) {
      return waitFor(async () => {
        const s = await screen();
        return re.test(s) ? s : '';
      }, ms, 100).then(async (s) => s || screen());
    },
  };
}
