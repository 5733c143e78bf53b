/**
 * What the shim specs (spec/shim/*.test.ts) share, on top of
 * spec/lib/harness.ts:
 *
 *  - tsctl(args, opts)        bin/tsctl with `--root <store> --runtime-root
 *                             <store>/runtime` prepended (opts.store, else the
 *                             store of the last makeStore()), output captured,
 *                             bounded timeout; DOCKER_CONFIG points into the
 *                             store so the host's ~/.docker is never read.
 *  - makeStore(t)             a private store directory, removed at teardown
 *                             (containers in its runtime root force-deleted,
 *                             anything mounted under it unmounted first).
 *  - startRegistry(t, opts)   Debian's docker-registry on 127.0.0.1:<free
 *                             port>, temp config and storage, optional
 *                             htpasswd (bcrypt) auth; stopped at teardown.
 *  - buildImage(t, spec)      an OCI layout built with umoci: the busybox
 *                             rootfs template as the base layer (or none), then
 *                             one layer per LayerSpec, made as a tar of a
 *                             staging tree (files, dirs, symlinks, hardlinks,
 *                             setuid modes, owners, xattrs, device nodes,
 *                             FIFOs, whiteouts, opaque dirs) and added with
 *                             `umoci raw add-layer`; image config set with
 *                             `umoci config`.
 *  - makeIndex(layout, ...)   an image index over some of the layout's tags
 *                             (one per platform), for manifest-list pulls.
 *  - pushImage(layout, reg, name:tag)  skopeo copy into the registry.
 *
 * Every child has a timeout; every daemon is stopped at teardown and, as a
 * last resort, killed when the test process exits.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ensureEngine, exec, mountsUnder, REPO_ROOT, rootfsTemplate, type RunOptions, type RunResult, type TestLike, warmMode } from '../lib/harness.js';

export { hasCommand, isRoot, skipUnless } from '../engines/lib.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------
// Stores and tsctl

export interface Store {
  /** tsctl's --root */
  root: string;
  /** tsctl's --runtime-root (tsrun's --root for the store's containers) */
  runtimeRoot: string;
  /** DOCKER_CONFIG for tsctl: a private ~/.docker (config.json with auths goes here) */
  dockerConfig: string;
  /** tsctl(args, { ...opts, store: this }) */
  tsctl(args: string[], opts?: TsctlOptions): Promise<RunResult>;
}

export interface TsctlOptions extends RunOptions {
  /** the store to use; default the one the last makeStore() made */
  store?: Store;
}

let lastStore: Store | undefined;
const liveStores = new Set<string>();

export function tsctlBinary(): string {
  return process.env.TSCTL_BIN ?? path.join(REPO_ROOT, 'bin', 'tsctl');
}

/** `tsctl --root <store> --runtime-root <store>/runtime ...args` (never throws on a non-zero exit). */
export function tsctl(args: string[], opts: TsctlOptions = {}): Promise<RunResult> {
  const store = opts.store ?? lastStore;
  if (!store) throw new Error('tsctl(): no store (call makeStore(t) first or pass opts.store)');
  return exec(tsctlBinary(), ['--root', store.root, '--runtime-root', store.runtimeRoot, ...args], {
    timeoutMs: 60_000,
    ...opts,
    env: { DOCKER_CONFIG: store.dockerConfig, TSCTL_ROOT: undefined, ...opts.env },
  });
}

/** A private store, removed at teardown; also the default store for tsctl() until the next one. */
export function makeStore(t: TestLike): Store {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-store-'));
  liveStores.add(dir);
  const store: Store = {
    root: path.join(dir, 'root'),
    runtimeRoot: path.join(dir, 'root', 'runtime'),
    dockerConfig: path.join(dir, 'docker-config'),
    tsctl: (args, opts = {}) => tsctl(args, { ...opts, store }),
  };
  fs.mkdirSync(store.dockerConfig);
  // Warm mode: tsctl's runtime commands (create, start, kill, delete...) go
  // through a resident engine for the store's runtime root.
  if (warmMode()) ensureEngine(store.runtimeRoot);
  lastStore = store;
  t.teardown(async () => {
    await deleteContainers(store.runtimeRoot);
    removeStore(dir);
    if (lastStore === store) lastStore = undefined;
  });
  return store;
}

async function deleteContainers(runtimeRoot: string): Promise<void> {
  let ids: string[] = [];
  try {
    ids = fs.readdirSync(runtimeRoot).slice(0, 256);
  } catch {
    return;
  }
  const tsrun = path.join(REPO_ROOT, 'bin', 'tsrun');
  for (const id of ids) await exec(tsrun, ['--root', runtimeRoot, 'delete', '--force', id], { timeoutMs: 15_000 });
}

function removeStore(dir: string): void {
  liveStores.delete(dir);
  // lazily, deepest first: a container's rootfs or a snapshot mount under it
  for (const mp of mountsUnder(dir)) spawnSync('umount', ['-l', mp], { stdio: 'ignore', timeout: 10_000 });
  const busy = mountsUnder(dir);
  if (busy.length) console.error(`[shim] not removing ${dir}: still mounted: ${busy.join(', ')}`);
  else fs.rmSync(dir, { recursive: true, force: true });
}

/** Writes <store>/docker-config/config.json with basic credentials for `host`. */
export function writeDockerAuth(store: Store, host: string, user: string, password: string): void {
  const auth = Buffer.from(`${user}:${password}`).toString('base64');
  fs.writeFileSync(path.join(store.dockerConfig, 'config.json'), JSON.stringify({ auths: { [host]: { auth } } }));
}

// ---------------------------------------------------------------------------
// Daemons (the registry, fake registries in tests use node:http directly)

const liveDaemons = new Set<ChildProcess>();

function killDaemon(c: ChildProcess, signal: NodeJS.Signals): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, signal);
  } catch {
    /* gone */
  }
}

async function stopDaemon(c: ChildProcess): Promise<void> {
  killDaemon(c, 'SIGTERM');
  for (let i = 0; i < 50 && c.exitCode === null && c.signalCode === null; i++) await sleep(100);
  killDaemon(c, 'SIGKILL');
  liveDaemons.delete(c);
}

/** A TCP port free on 127.0.0.1 right now (the daemon binds it next; startRegistry retries on a clash). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

export interface Registry {
  /** "127.0.0.1:<port>" */
  host: string;
  port: number;
  dir: string;
  auth?: { user: string; password: string };
  stop(): Promise<void>;
}

export interface RegistryOptions {
  auth?: { user: string; password: string };
}

/** Debian's docker-registry (distribution 2.8) on 127.0.0.1 only, stopped at teardown. */
export async function startRegistry(t: TestLike, opts: RegistryOptions = {}): Promise<Registry> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-registry-'));
  fs.mkdirSync(path.join(dir, 'data'));
  let authConf = '';
  if (opts.auth) {
    // distribution's htpasswd backend only accepts bcrypt entries
    const r = await exec('htpasswd', ['-Bbn', opts.auth.user, opts.auth.password], { timeoutMs: 30_000 });
    if (r.code !== 0) throw new Error(`htpasswd failed: ${r.stderr}`);
    fs.writeFileSync(path.join(dir, 'htpasswd'), r.stdout);
    authConf = `auth:\n  htpasswd:\n    realm: tsrun-test\n    path: ${path.join(dir, 'htpasswd')}\n`;
  }
  let lastErr = '';
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    const config = [
      'version: 0.1',
      'log:',
      '  level: error',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${path.join(dir, 'data')}`,
      '  delete:',
      '    enabled: true',
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '  secret: tsrun-test-secret',
      authConf,
    ].join('\n');
    fs.writeFileSync(path.join(dir, 'config.yml'), config);
    const log = fs.openSync(path.join(dir, 'registry.log'), 'w');
    const child = spawn('/usr/bin/docker-registry', ['serve', path.join(dir, 'config.yml')], {
      detached: true,
      stdio: ['ignore', log, log],
    });
    fs.closeSync(log);
    liveDaemons.add(child);
    const reg: Registry = {
      host: `127.0.0.1:${port}`,
      port,
      dir,
      auth: opts.auth,
      stop: async () => {
        await stopDaemon(child);
      },
    };
    const up = await waitHttp(port, child, 15_000);
    if (up) {
      t.teardown(async () => {
        await reg.stop();
        fs.rmSync(dir, { recursive: true, force: true });
      });
      return reg;
    }
    await stopDaemon(child);
    lastErr = fs.readFileSync(path.join(dir, 'registry.log'), 'utf8').slice(-2000);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  throw new Error(`docker-registry did not come up: ${lastErr}`);
}

/** Polls GET /v2/ until the registry answers (200 or 401), the child dies, or `ms` pass. */
async function waitHttp(port: number, child: ChildProcess, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) return false;
    const status = await new Promise<number>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.setTimeout(1000, () => s.destroy());
      let buf = '';
      s.on('connect', () => s.write(`GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
      s.on('data', (d) => (buf += d.toString()));
      s.on('close', () => resolve(Number(/^HTTP\/1\.\d (\d+)/.exec(buf)?.[1] ?? 0)));
      s.on('error', () => undefined);
    });
    if (status === 200 || status === 401) return true;
    await sleep(100);
  }
  return false;
}

// ---------------------------------------------------------------------------
// Test images

/** A file in a layer: text content, or content plus metadata. */
export type FileSpec =
  | string
  | { content?: string | Buffer; mode?: number; uid?: number; gid?: number; xattrs?: Record<string, string>; mtime?: number };

export interface LayerSpec {
  /** regular files (parents made 0755 as needed) */
  files?: Record<string, FileSpec>;
  /** directories with a mode (and owner) */
  dirs?: Record<string, { mode?: number; uid?: number; gid?: number }>;
  symlinks?: Record<string, string>;
  /** new path → existing path in the same layer */
  hardlinks?: Record<string, string>;
  /** character/block devices and FIFOs */
  devices?: Record<string, { type: 'c' | 'b' | 'p'; major?: number; minor?: number; mode?: number }>;
  /** paths of lower layers this layer removes (`.wh.NAME`) */
  delete?: string[];
  /** directories made opaque (`DIR/.wh..wh..opq`): lower contents hidden, this layer's files kept */
  opaque?: string[];
}

export interface ImageSpec {
  /** the first layer: the busybox rootfs template (default) or nothing */
  base?: 'busybox' | 'scratch';
  layers?: LayerSpec[];
  /** tag inside the layout; default "latest" */
  tag?: string;
  architecture?: string;
  config?: {
    cmd?: string[];
    entrypoint?: string[];
    env?: string[];
    workingdir?: string;
    user?: string;
    exposedports?: string[];
    volumes?: string[];
    labels?: Record<string, string>;
    stopsignal?: string;
  };
}

export interface BuiltImage {
  /** the OCI layout directory */
  layout: string;
  tag: string;
  /** skopeo's name for it: `oci:<layout>:<tag>` */
  ociRef: string;
}

async function step(cmd: string, args: string[], cwd?: string): Promise<RunResult> {
  const r = await exec(cmd, args, { cwd, timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`${r.argv.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/** Parents of `rel` under `root`, made 0755. */
function parentDirs(root: string, rel: string): string {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
  return p;
}

/** The staging tree of one layer, then its tar (names without "./", numeric owners, xattrs). */
async function layerTar(stage: string, layer: LayerSpec, out: string): Promise<void> {
  fs.mkdirSync(stage, { mode: 0o755 });
  for (const [rel, d] of Object.entries(layer.dirs ?? {})) {
    const p = parentDirs(stage, rel);
    fs.mkdirSync(p, { recursive: true });
    fs.chmodSync(p, d.mode ?? 0o755);
    if (d.uid !== undefined || d.gid !== undefined) fs.chownSync(p, d.uid ?? 0, d.gid ?? 0);
  }
  for (const [rel, f] of Object.entries(layer.files ?? {})) {
    const spec = typeof f === 'string' ? { content: f } : f;
    const p = parentDirs(stage, rel);
    fs.writeFileSync(p, spec.content ?? '');
    if (spec.uid !== undefined || spec.gid !== undefined) fs.chownSync(p, spec.uid ?? 0, spec.gid ?? 0);
    fs.chmodSync(p, spec.mode ?? 0o644); // after chown: chown clears setuid
    // python3 (a setup.sh package) rather than attr's setfattr: one package less
    for (const [k, v] of Object.entries(spec.xattrs ?? {})) {
      await step('python3', ['-c', 'import os,sys; os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode())', p, k, v]);
    }
    if (spec.mtime !== undefined) fs.utimesSync(p, spec.mtime, spec.mtime);
  }
  for (const [rel, target] of Object.entries(layer.symlinks ?? {})) fs.symlinkSync(target, parentDirs(stage, rel));
  for (const [rel, existing] of Object.entries(layer.hardlinks ?? {})) fs.linkSync(path.join(stage, existing), parentDirs(stage, rel));
  for (const [rel, d] of Object.entries(layer.devices ?? {})) {
    const p = parentDirs(stage, rel);
    const args = d.type === 'p' ? [p, 'p'] : [p, d.type, String(d.major ?? 0), String(d.minor ?? 0)];
    await step('mknod', ['-m', (d.mode ?? 0o644).toString(8), ...args]);
  }
  for (const rel of layer.delete ?? []) fs.writeFileSync(parentDirs(stage, path.join(path.dirname(rel), `.wh.${path.basename(rel)}`)), '');
  for (const rel of layer.opaque ?? []) {
    fs.mkdirSync(path.join(stage, rel), { recursive: true, mode: 0o755 });
    fs.writeFileSync(path.join(stage, rel, '.wh..wh..opq'), '');
  }
  const top = fs.readdirSync(stage).sort();
  await step('tar', ['--xattrs', '--xattrs-include=*', '--numeric-owner', '--sort=name', '-C', stage, '-cf', out, '--', ...top]);
}

/** An OCI layout with the image `spec` describes (see LayerSpec), removed at teardown. */
export async function buildImage(t: TestLike, spec: ImageSpec = {}): Promise<BuiltImage> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-image-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return buildImageIn(dir, spec);
}

/** buildImage() into `dir` (its layout is `dir`/oci; kept: the caller removes `dir`). */
export async function buildImageIn(dir: string, spec: ImageSpec = {}): Promise<BuiltImage> {
  const layout = path.join(dir, 'oci');
  const tag = spec.tag ?? 'latest';
  const image = `${layout}:${tag}`;
  if (!fs.existsSync(path.join(layout, 'oci-layout'))) await step('umoci', ['init', '--layout', layout]);
  await step('umoci', ['new', '--image', image]);
  if ((spec.base ?? 'busybox') === 'busybox') {
    const template = await rootfsTemplate();
    const bundle = path.join(dir, `bundle-${tag}`);
    await step('umoci', ['unpack', '--image', image, bundle]);
    await step('cp', ['-a', `${template}/.`, path.join(bundle, 'rootfs')]);
    await step('umoci', ['repack', '--image', image, bundle]);
    fs.rmSync(bundle, { recursive: true, force: true });
  }
  let n = 0;
  for (const layer of spec.layers ?? []) {
    n += 1;
    const stage = path.join(dir, `stage-${tag}-${n}`);
    const tar = path.join(dir, `layer-${tag}-${n}.tar`);
    await layerTar(stage, layer, tar);
    await step('umoci', ['raw', 'add-layer', '--image', image, tar]);
    fs.rmSync(stage, { recursive: true, force: true });
    fs.rmSync(tar, { force: true });
  }
  const c = spec.config ?? {};
  const args = ['config', '--image', image];
  args.push('--config.env', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin');
  for (const e of c.env ?? []) args.push('--config.env', e);
  if (c.cmd) for (const a of c.cmd) args.push('--config.cmd', a);
  else args.push('--config.cmd', 'sh');
  for (const a of c.entrypoint ?? []) args.push('--config.entrypoint', a);
  if (c.workingdir) args.push('--config.workingdir', c.workingdir);
  if (c.user) args.push('--config.user', c.user);
  for (const p of c.exposedports ?? []) args.push('--config.exposedports', p);
  for (const v of c.volumes ?? []) args.push('--config.volume', v);
  for (const [k, v] of Object.entries(c.labels ?? {})) args.push('--config.label', `${k}=${v}`);
  if (c.stopsignal) args.push('--config.stopsignal', c.stopsignal);
  if (spec.architecture) args.push('--architecture', spec.architecture);
  await step('umoci', args);
  return { layout, tag, ociRef: `oci:${layout}:${tag}` };
}

interface OciIndexFile {
  schemaVersion: 2;
  mediaType?: string;
  manifests: { mediaType: string; digest: string; size: number; platform?: unknown; annotations?: Record<string, string> }[];
}

function readIndex(layout: string): OciIndexFile {
  return JSON.parse(fs.readFileSync(path.join(layout, 'index.json'), 'utf8')) as OciIndexFile;
}

/** The descriptor of `tag` in a layout's index.json. */
export function layoutDescriptor(layout: string, tag: string): OciIndexFile['manifests'][number] {
  const d = readIndex(layout).manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!d) throw new Error(`${layout}: no tag ${tag}`);
  return d;
}

/** Path of a blob in an OCI layout. */
export function layoutBlob(layout: string, digest: string): string {
  return path.join(layout, 'blobs', ...digest.split(':'));
}

/**
 * Adds tag `indexTag` to the layout: an OCI image index over the manifests
 * of `entries` (existing tags), each with its platform. Returns the index digest.
 */
export function makeIndex(layout: string, indexTag: string, entries: { tag: string; os?: string; architecture: string; variant?: string }[]): string {
  const manifests = entries.map((e) => {
    const d = layoutDescriptor(layout, e.tag);
    return {
      mediaType: d.mediaType,
      digest: d.digest,
      size: d.size,
      platform: { architecture: e.architecture, os: e.os ?? 'linux', ...(e.variant ? { variant: e.variant } : {}) },
    };
  });
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests }));
  const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
  fs.writeFileSync(layoutBlob(layout, digest), body);
  const idx = readIndex(layout);
  idx.manifests = idx.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] !== indexTag);
  idx.manifests.push({
    mediaType: 'application/vnd.oci.image.index.v1+json',
    digest,
    size: body.length,
    annotations: { 'org.opencontainers.image.ref.name': indexTag },
  });
  fs.writeFileSync(path.join(layout, 'index.json'), JSON.stringify(idx));
  return digest;
}

/**
 * `skopeo copy` of a layout's tag into the registry as `nameTag`
 * ("name:tag"). `all` copies an index with all its manifests.
 */
export async function pushImage(image: BuiltImage | { layout: string; tag: string }, registry: Registry, nameTag: string, opts: { all?: boolean; format?: 'oci' | 'v2s2' } = {}): Promise<void> {
  const args = ['copy', '--quiet', '--dest-tls-verify=false'];
  if (registry.auth) args.push('--dest-creds', `${registry.auth.user}:${registry.auth.password}`);
  if (opts.all) args.push('--all');
  if (opts.format) args.push('--format', opts.format);
  args.push(`oci:${image.layout}:${image.tag}`, `docker://${registry.host}/${nameTag}`);
  await exec('skopeo', args, { timeoutMs: 180_000 }).then((r) => {
    if (r.code !== 0) throw new Error(`skopeo ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  });
}

// ---------------------------------------------------------------------------
// The last resort

process.on('exit', () => {
  for (const c of liveDaemons) killDaemon(c, 'SIGKILL');
  for (const dir of [...liveStores]) removeStore(dir);
});

// ---------------------------------------------------------------------------
// A fake registry (node:http on 127.0.0.1) serving an OCI layout, for what
// docker-registry cannot do: bearer tokens, corrupt or truncated blobs, a
// blob that stalls half-way (to kill a pull mid-blob).

export interface FakeRegistryOptions {
  /** require a bearer token from <host>/token (basic credentials checked there when given) */
  bearer?: { user?: string; password?: string };
  /** serve these blobs (by digest) with their bytes changed (same length) */
  corrupt?: string[];
  /** serve these blobs cut to half their length, then close the connection */
  truncate?: string[];
  /** send half of this blob, then hang until the server closes */
  stall?: string;
}

export interface FakeRegistry {
  host: string;
  /** requests seen, as "METHOD path" */
  log: string[];
  /** resolves when the stalled blob has sent its first half */
  stalled: Promise<void>;
  close(): Promise<void>;
}

export async function startFakeRegistry(t: TestLike, layout: string, opts: FakeRegistryOptions = {}): Promise<FakeRegistry> {
  const http = await import('node:http');
  const log: string[] = [];
  const token = `tok-${process.pid}-${Date.now()}`;
  let onStall: () => void = () => undefined;
  const stalled = new Promise<void>((r) => (onStall = r));
  const index = () => readIndex(layout);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    log.push(`${req.method} ${url.pathname}${url.search}`);
    const host = req.headers.host ?? '';
    if (url.pathname === '/token') {
      if (opts.bearer?.user) {
        const want = `Basic ${Buffer.from(`${opts.bearer.user}:${opts.bearer.password}`).toString('base64')}`;
        if (req.headers.authorization !== want) {
          res.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED","message":"bad credentials"}]}');
          return;
        }
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token, expires_in: 300 }));
      return;
    }
    if (opts.bearer && req.headers.authorization !== `Bearer ${token}`) {
      const scope = /^\/v2\/(.+)\/(manifests|blobs)\//.exec(url.pathname)?.[1];
      res.writeHead(401, {
        'WWW-Authenticate': `Bearer realm="http://${host}/token",service="fake-registry"${scope ? `,scope="repository:${scope}:pull"` : ''}`,
        'Content-Type': 'application/json',
      });
      res.end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
      return;
    }
    if (url.pathname === '/v2/') {
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
      return;
    }
    const m = /^\/v2\/.+\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m || req.method !== 'GET') {
      res.writeHead(404).end('{"errors":[{"code":"NOT_FOUND","message":"not found"}]}');
      return;
    }
    let digest = m[2]!;
    let mediaType = 'application/octet-stream';
    if (m[1] === 'manifests') {
      const d = digest.startsWith('sha256:')
        ? index().manifests.find((x) => x.digest === digest) ?? { digest, mediaType: 'application/vnd.oci.image.manifest.v1+json' }
        : index().manifests.find((x) => x.annotations?.['org.opencontainers.image.ref.name'] === digest);
      if (!d) {
        res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
        return;
      }
      digest = d.digest;
      mediaType = d.mediaType;
    }
    const file = layoutBlob(layout, digest);
    if (!/^sha256:[a-f0-9]{64}$/.test(digest) || !fs.existsSync(file)) {
      res.writeHead(404).end('{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}');
      return;
    }
    let body = fs.readFileSync(file);
    if (m[1] === 'manifests') {
      const mt = (JSON.parse(body.toString()) as { mediaType?: string }).mediaType;
      if (mt) mediaType = mt;
    }
    if (opts.corrupt?.includes(digest)) {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    res.setHeader('Content-Type', mediaType);
    res.setHeader('Content-Length', body.length);
    res.setHeader('Docker-Content-Digest', digest);
    if (opts.truncate?.includes(digest) || opts.stall === digest) {
      res.writeHead(200);
      res.write(body.subarray(0, body.length >> 1), () => {
        if (opts.stall === digest) onStall();
        else res.destroy();
      });
      return;
    }
    res.writeHead(200).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  t.teardown(close);
  return { host: `127.0.0.1:${port}`, log, stalled, close };
}
