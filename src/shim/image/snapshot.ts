/**
 * Snapshots: each layer unpacked once, in overlay form, into
 * <root>/snapshots/<chain-hex>/fs, and a container's root filesystem made of
 * them — an overlayfs mount (shared read-only lowers, its own upper) or, where
 * overlay is unavailable (or TSCTL_SNAPSHOTTER=copy), a copy with the
 * whiteouts applied.
 *
 * A snapshot appears whole or not at all: it is unpacked in a temporary
 * directory inside snapshots/ and renamed into place when complete. Two
 * concurrent unpacks of the same chain both finish; the second rename fails
 * (the target is not empty) and its copy is thrown away. An interrupted
 * unpack leaves only a `.tmp-*` directory, removed by the next call once the
 * process that made it is gone.
 *
 * A container's files: containers/<cid>/{init,upper,work,rootfs} and
 * snapshot.json (overlay or copy, and the lowers: unmount, a second mount and
 * diff need them). `init` is Docker's init layer (see makeInitLayer).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError, errnoMessage } from '../../errors.js';
import type { LayerRecord } from './types.js';
import { copyEntry, copyMeta, copyTimes, isOpaque, isWhiteout, lstatOrNull, unpackLayer } from './unpack.js';

const HEX = /^sha256:([0-9a-f]{64})$/;

function hexOf(digest: string, what: string): string {
  const m = HEX.exec(digest);
  if (!m) throw new UserError(`invalid ${what} ${JSON.stringify(digest)}`);
  return m[1];
}

export function snapshotDir(root: string, chainId: string): string {
  return path.join(root, 'snapshots', hexOf(chainId, 'chain id'), 'fs');
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes temporary unpack directories whose process is gone (interrupted
 * unpacks), and short links (l/) to snapshots gc has removed.
 */
function sweepTemporaries(dir: string): void {
  for (const name of fs.readdirSync(dir)) {
    const m = /^\.tmp-[0-9a-f]+-(\d+)-/.exec(name);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) fs.rmSync(path.join(dir, name), { recursive: true, force: true });
  }
  let links: string[] = [];
  try {
    links = fs.readdirSync(path.join(dir, 'l'));
  } catch {
    return;
  }
  for (const name of links) {
    const link = path.join(dir, 'l', name);
    if (!fs.existsSync(link)) fs.rmSync(link, { force: true });
  }
}

async function unpackOne(root: string, blobPath: (digest: string) => string, layer: LayerRecord, lowers: string[]): Promise<string> {
  const snapshots = path.join(root, 'snapshots');
  const hex = hexOf(layer.chainId, 'chain id');
  const final = path.join(snapshots, hex);
  if (fs.existsSync(path.join(final, 'fs'))) return path.join(final, 'fs');
  const tmp = fs.mkdtempSync(path.join(snapshots, `.tmp-${hex.slice(0, 12)}-${process.pid}-`));
  try {
    fs.mkdirSync(path.join(tmp, 'fs'), 0o755);
    try {
      await unpackLayer(blobPath(layer.digest), path.join(tmp, 'fs'), { lowers, diffId: layer.diffId });
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`layer ${layer.digest}: ${e.message}`);
      throw new UserError(`layer ${layer.digest}: ${errnoMessage(e)}`);
    }
    fs.writeFileSync(path.join(tmp, 'layer.json'), `${JSON.stringify({ digest: layer.digest, diffId: layer.diffId, chainId: layer.chainId })}\n`);
    try {
      fs.renameSync(tmp, final);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // Someone else completed the same snapshot first: theirs is as good as ours.
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return path.join(final, 'fs');
}

/**
 * Unpacks every layer not yet in the store (bottom first: each layer's
 * unpack consults the ones below it) and returns the snapshot directories,
 * topmost first (overlayfs's lowerdir order).
 */
export async function ensureSnapshots(root: string, blobPath: (digest: string) => string, layers: LayerRecord[]): Promise<string[]> {
  const snapshots = path.join(root, 'snapshots');
  fs.mkdirSync(snapshots, { recursive: true, mode: 0o700 });
  sweepTemporaries(snapshots);
  const dirs: string[] = [];
  for (const layer of layers) dirs.unshift(await unpackOne(root, blobPath, layer, dirs.slice()));
  return dirs;
}

// ---------------------------------------------------------------------------
// Container root filesystems

export type RootfsKind = 'overlay' | 'copy';

interface RootfsRecord {
  kind: RootfsKind;
  /** snapshot directories, topmost first */
  lowers: string[];
  /** the container's init layer (above the snapshots) */
  init?: string;
}

/** What the rootfs is made of, topmost first: the init layer, then the image's snapshots. */
function layersOf(rec: RootfsRecord): string[] {
  return rec.init ? [rec.init, ...rec.lowers] : rec.lowers;
}

/**
 * Docker's init layer: the mount points every container gets (/proc, /sys,
 * /dev, the network files, /etc/mtab), made where the image lacks them in a
 * small layer of the container's own between the image and the upper — so
 * the runtime never creates them in the upper and `diff` does not list them.
 * Directories it needs as parents copy the attributes of the image's (the
 * topmost layer's directory is what the container sees); anything the image
 * has as a symlink or non-directory on the way is left alone.
 */
const INIT_DIRS = ['proc', 'sys', 'dev'];
const INIT_FILES = ['etc/hosts', 'etc/hostname', 'etc/resolv.conf'];
const INIT_LINKS: [string, string][] = [['etc/mtab', '/proc/mounts']];
/** Every path the init layer may add (for tests and tools comparing trees). */
export const INIT_PATHS = [...INIT_DIRS, 'etc', ...INIT_FILES, ...INIT_LINKS.map(([l]) => l)];

function makeInitLayer(dir: string, lowers: string[]): string {
  const init = path.join(dir, 'init');
  fs.rmSync(init, { recursive: true, force: true });
  fs.mkdirSync(init, 0o755);
  const copied: [string, fs.Stats][] = [];
  /** Whether `rel` is a directory in the merged image + init (made in init as needed). */
  const dirThere = (rel: string): boolean => {
    if (rel === '') return true;
    if (!dirThere(path.posix.dirname(rel) === '.' ? '' : path.posix.dirname(rel))) return false;
    const target = path.join(init, rel);
    if (lstatOrNull(target)?.isDirectory()) return true;
    const st = lowerEntry(lowers, rel);
    if (st && !st.isDirectory()) return false;
    fs.mkdirSync(target, 0o755);
    if (st) {
      copyMeta(path.join(lowersShowing(lowers, rel)[0], rel), target, st);
      copied.push([target, st]);
    }
    return true;
  };
  const make = (rel: string, create: (p: string) => void): void => {
    if (lowerEntry(lowers, rel) !== null || lstatOrNull(path.join(init, rel)) !== null) return;
    const parent = path.posix.dirname(rel);
    if (!dirThere(parent === '.' ? '' : parent)) return;
    create(path.join(init, rel));
  };
  for (const d of INIT_DIRS) make(d, (p) => fs.mkdirSync(p, 0o755));
  for (const f of INIT_FILES) make(f, (p) => fs.writeFileSync(p, '', { mode: 0o644, flag: 'wx' }));
  for (const [l, target] of INIT_LINKS) make(l, (p) => fs.symlinkSync(target, p));
  // The root and the parents stand for the image's: its attributes, and its
  // times once nothing more is made in them.
  if (lowers.length) {
    const st = fs.lstatSync(lowers[0]);
    copyMeta(lowers[0], init, st, false);
    copied.push([init, st]);
  }
  for (const [p, st] of copied) copyTimes(p, st);
  return init;
}

function containerDir(root: string, cid: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]*$/.test(cid)) throw new UserError(`invalid container id ${JSON.stringify(cid)}`);
  return path.join(root, 'containers', cid);
}

/** `containers/<cid>/snapshot.json`: how the rootfs was made (unmount and diff need it). */
function recordFile(root: string, cid: string): string {
  return path.join(containerDir(root, cid), 'snapshot.json');
}

/** mount/umount: bounded, so a hung filesystem gives an error rather than a hung tsctl. */
function run(cmd: string, args: string[], cwd?: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000, killSignal: 'SIGKILL' });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, stderr: stderr.trim() || (signal ? `${cmd} killed (${signal}) after 60 s` : '') }));
  });
}

/** Whether `dir` is a mount point (its own line in mountinfo). */
export function isMountPoint(dir: string): boolean {
  const want = path.resolve(dir);
  const info = fs.readFileSync('/proc/self/mountinfo', 'utf8');
  for (const line of info.split('\n')) {
    const mp = line.split(' ')[4];
    if (mp !== undefined && mp.replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === want) return true;
  }
  return false;
}

/** The kernel takes at most a page of mount options. */
const MAX_MOUNT_DATA = 4000;

/** `l/<id>` under `snapshots`: a symlink to `lower` (made once, atomically). */
function shortLink(snapshots: string, lower: string): string {
  const name = path.join('l', createHash('sha256').update(lower).digest('hex').slice(0, 12));
  const link = path.join(snapshots, name);
  try {
    if (fs.readlinkSync(link) === lower) return name;
  } catch {
    // not there yet
  }
  fs.mkdirSync(path.join(snapshots, 'l'), { recursive: true, mode: 0o700 });
  const tmp = `${link}.${process.pid}.tmp`;
  fs.rmSync(tmp, { force: true });
  fs.symlinkSync(lower, tmp);
  fs.renameSync(tmp, link);
  return name;
}

/** Mounts the overlay; the rootfs path on success, else mount's message. */
async function mountOverlay(root: string, dir: string, lowers: string[]): Promise<string> {
  const upper = path.join(dir, 'upper');
  const work = path.join(dir, 'work');
  const rootfs = path.join(dir, 'rootfs');
  for (const d of [upper, work, rootfs]) fs.mkdirSync(d, { recursive: true, mode: 0o755 });
  // overlayfs wants at least one lower; an image without layers gets an empty one.
  let lowerList = lowers;
  if (lowerList.length === 0) {
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty, { recursive: true, mode: 0o755 });
    lowerList = [empty];
  }
  let cwd: string | undefined;
  let lowerdir = lowerList.join(':');
  const rest = `,upperdir=${upper},workdir=${work}`;
  if (`lowerdir=${lowerdir}${rest}`.length > MAX_MOUNT_DATA) {
    // Long chains (40 layers or so): short symlinks snapshots/l/<id> to each
    // lower, named relative to the mount command's cwd, as Docker's overlay2
    // does — 15 bytes a layer instead of ~100, room for overlayfs's 500.
    const snapshots = path.join(root, 'snapshots');
    cwd = snapshots;
    lowerdir = lowerList.map((l) => shortLink(snapshots, l)).join(':');
    if (`lowerdir=${lowerdir}${rest}`.length > MAX_MOUNT_DATA)
      throw new UserError(`image has too many layers (${lowers.length}) for an overlay mount`);
  }
  const r = await run('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lowerdir}${rest}`, rootfs], cwd);
  if (r.code === 0) return rootfs;
  return r.stderr || `mount exited with ${r.code}`;
}

/**
 * Makes <root>/containers/<cid>/rootfs from the snapshots (topmost first):
 * an overlay mount with the container's own upper and work dirs, or a copy.
 * Idempotent: a container whose rootfs exists keeps it (a copy is not made
 * again, an unmounted overlay is mounted again over the same upper).
 */
export async function mountContainerRootfs(root: string, cid: string, lowers: string[]): Promise<{ rootfs: string; kind: RootfsKind }> {
  const dir = containerDir(root, cid);
  const rootfs = path.join(dir, 'rootfs');
  const forced = process.env.TSCTL_SNAPSHOTTER;
  if (forced && forced !== 'copy' && forced !== 'overlay')
    throw new UserError(`TSCTL_SNAPSHOTTER: unknown snapshotter ${JSON.stringify(forced)} (overlay or copy)`);
  const existing = fs.existsSync(recordFile(root, cid)) ? readRecord(root, cid) : null;
  if (existing?.kind === 'copy') return { rootfs, kind: 'copy' };
  if (existing?.kind === 'overlay') {
    if (isMountPoint(rootfs)) return { rootfs, kind: 'overlay' };
    const r = await mountOverlay(root, dir, layersOf(existing));
    if (r !== rootfs) throw new UserError(`container ${cid}: overlay mount failed: ${r}`);
    return { rootfs, kind: 'overlay' };
  }
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const rec: RootfsRecord = { kind: 'copy', lowers, init: makeInitLayer(dir, lowers) };
  let kind: RootfsKind = 'copy';
  if (forced !== 'copy') {
    const r = await mountOverlay(root, dir, layersOf(rec));
    if (r === rootfs) kind = 'overlay';
    else {
      for (const d of ['upper', 'work', 'empty']) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
      if (forced === 'overlay' || !overlayUnavailable(r)) {
        for (const d of [rec.init!, rootfs]) fs.rmSync(d, { recursive: true, force: true });
        throw new UserError(`container ${cid}: overlay mount failed: ${r}`);
      }
    }
  }
  try {
    if (kind === 'copy') {
      fs.rmSync(rootfs, { recursive: true, force: true });
      fs.mkdirSync(rootfs, 0o755);
      flatten(rootfs, layersOf(rec).reverse());
    }
    rec.kind = kind;
    fs.writeFileSync(recordFile(root, cid), `${JSON.stringify(rec)}\n`);
  } catch (e) {
    await removeContainerRootfs(root, cid);
    throw e instanceof UserError ? e : new UserError(`container ${cid}: making its rootfs: ${errnoMessage(e)}`);
  }
  return { rootfs, kind };
}

/** Unmounts and deletes the container's rootfs, upper and work dirs (its writable layer). */
export async function removeContainerRootfs(root: string, cid: string): Promise<void> {
  await unmountContainerRootfs(root, cid);
  const dir = containerDir(root, cid);
  for (const d of ['rootfs', 'upper', 'work', 'empty', 'init', 'snapshot.json']) fs.rmSync(path.join(dir, d), { recursive: true, force: true });
}

/** Failures that mean "this machine has no usable overlayfs" (fall back to copying) rather than a bug. */
function overlayUnavailable(msg: string): boolean {
  // "wrong fs type": overlay refuses an upper dir on overlayfs (a store inside a container).
  return /unknown filesystem type|not supported|permission denied|operation not permitted|invalid argument|wrong fs type/i.test(msg);
}

/** Unmounts the container's overlay rootfs if mounted; a no-op otherwise (idempotent). */
export async function unmountContainerRootfs(root: string, cid: string): Promise<void> {
  const rootfs = path.join(containerDir(root, cid), 'rootfs');
  if (!fs.existsSync(rootfs) || !isMountPoint(rootfs)) return;
  let r = await run('umount', [rootfs]);
  // Busy (a host process still has a file open or its cwd there): detach it
  // lazily, as Docker's overlay2 does; the kernel frees it when unused.
  if (r.code !== 0 && isMountPoint(rootfs) && /busy/i.test(r.stderr)) r = await run('umount', ['-l', rootfs]);
  if (r.code !== 0 && isMountPoint(rootfs)) throw new UserError(`container ${cid}: unmounting its rootfs: ${r.stderr}`);
}

// ---------------------------------------------------------------------------
// Copy fallback: flatten overlay-form snapshots into one directory

/**
 * Applies the layers (bottom first) onto `dest`: whiteouts delete, opaque
 * directories are emptied of what the layers below put there, everything else
 * replaces what is there (a directory merges with a directory). The walk
 * goes parents first and makes every directory a real one before entering it,
 * so nothing is ever written through a symlink.
 */
export function flatten(dest: string, layersBottomFirst: string[]): void {
  for (const layer of layersBottomFirst) {
    const links = new Map<number, string>(); // inode → first copy, for the layer's hardlinks
    const dirTimes: [string, fs.Stats][] = [];
    if (isOpaque(layer)) for (const c of fs.readdirSync(dest)) fs.rmSync(path.join(dest, c), { recursive: true, force: true });
    const walk = (rel: string): void => {
      for (const name of fs.readdirSync(path.join(layer, rel))) {
        const r = rel ? `${rel}/${name}` : name;
        const src = path.join(layer, r);
        const dst = path.join(dest, r);
        const st = fs.lstatSync(src);
        const have = lstatOrNull(dst);
        if (isWhiteout(st)) {
          if (have) fs.rmSync(dst, { recursive: true, force: true });
          continue;
        }
        if (st.isDirectory()) {
          if (have && !have.isDirectory()) fs.rmSync(dst, { force: true });
          if (!have || !have.isDirectory()) fs.mkdirSync(dst, 0o700);
          else if (isOpaque(src)) for (const c of fs.readdirSync(dst)) fs.rmSync(path.join(dst, c), { recursive: true, force: true });
          walk(r);
          copyMeta(src, dst, st);
          dirTimes.push([dst, st]);
          continue;
        }
        if (have) fs.rmSync(dst, { recursive: true, force: true });
        const first = st.nlink > 1 ? links.get(st.ino) : undefined;
        if (first) {
          fs.linkSync(first, dst);
          continue;
        }
        copyEntry(src, dst, st);
        if (st.nlink > 1) links.set(st.ino, dst);
      }
    };
    walk('');
    const rootSt = fs.lstatSync(layer);
    copyMeta(layer, dest, rootSt);
    for (const [d, st] of dirTimes) copyTimes(d, st);
  }
}

// ---------------------------------------------------------------------------
// docker diff

export interface Change {
  kind: 'A' | 'C' | 'D';
  /** absolute inside the container, e.g. "/etc/passwd" */
  path: string;
}

function readRecord(root: string, cid: string): RootfsRecord {
  try {
    return JSON.parse(fs.readFileSync(recordFile(root, cid), 'utf8')) as RootfsRecord;
  } catch (e) {
    throw new UserError(`container ${cid}: no root filesystem record (${errnoMessage(e)})`);
  }
}

/** The topmost entry for `rel` in the lowers' merged view, or null (absent or whited out). */
function lowerEntry(lowers: string[], rel: string): fs.Stats | null {
  const i = rel.lastIndexOf('/');
  for (const l of i < 0 ? lowers : lowersShowing(lowers, rel.slice(0, i))) {
    const st = lstatOrNull(path.join(l, rel));
    if (st === null) continue;
    return isWhiteout(st) ? null : st;
  }
  return null;
}

/** The container's changes against its image, like `docker diff`: sorted by path. */
export function diffContainer(root: string, cid: string): Change[] {
  const rec = readRecord(root, cid);
  const lowers = layersOf(rec);
  const dir = containerDir(root, cid);
  const changes: Change[] = [];
  if (rec.kind === 'overlay') {
    const upper = path.join(dir, 'upper');
    const walk = (rel: string): void => {
      for (const name of fs.readdirSync(path.join(upper, rel)).sort()) {
        const r = rel ? `${rel}/${name}` : name;
        const st = fs.lstatSync(path.join(upper, r));
        const lower = lowerEntry(lowers, r);
        if (isWhiteout(st)) {
          if (lower) changes.push({ kind: 'D', path: `/${r}` });
          continue;
        }
        changes.push({ kind: lower ? 'C' : 'A', path: `/${r}` });
        if (st.isDirectory()) {
          if (lower?.isDirectory() && isOpaque(path.join(upper, r))) {
            // An opaque directory in the upper: whatever the lowers had there and it lacks is deleted.
            for (const gone of mergedNames(lowers, r)) {
              if (!lstatOrNull(path.join(upper, r, gone))) changes.push({ kind: 'D', path: `/${r}/${gone}` });
            }
          }
          walk(r);
        }
      }
    };
    walk('');
  } else {
    // A copy has no upper: compare it with the merged snapshots.
    const rootfs = path.join(dir, 'rootfs');
    const walk = (rel: string): void => {
      const here = new Set(fs.readdirSync(path.join(rootfs, rel)));
      for (const name of [...here].sort()) {
        const r = rel ? `${rel}/${name}` : name;
        const st = fs.lstatSync(path.join(rootfs, r));
        const lower = lowerEntry(lowers, r);
        if (!lower) changes.push({ kind: 'A', path: `/${r}` });
        else if (!sameEntry(st, lower, path.join(rootfs, r), lowers, r)) changes.push({ kind: 'C', path: `/${r}` });
        if (st.isDirectory()) walk(r);
      }
      for (const gone of mergedNames(lowers, rel)) if (!here.has(gone)) changes.push({ kind: 'D', path: `/${rel ? `${rel}/` : ''}${gone}` });
    };
    walk('');
  }
  // A change inside a directory changes the directory, as docker diff shows
  // (overlay has copied it up; a copy has to be told).
  const seen = new Set(changes.map((c) => c.path));
  for (const c of [...changes]) {
    for (let p = path.posix.dirname(c.path); p !== '/'; p = path.posix.dirname(p)) {
      if (seen.has(p)) break;
      seen.add(p);
      changes.push({ kind: 'C', path: p });
    }
  }
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function sameEntry(st: fs.Stats, lower: fs.Stats, file: string, lowers: string[], rel: string): boolean {
  if ((st.mode & 0o177777) !== (lower.mode & 0o177777) || st.uid !== lower.uid || st.gid !== lower.gid) return false;
  // Copies carry times to the millisecond (utimes through a Date): compare at that precision.
  const sameTime = Math.abs(st.mtimeMs - lower.mtimeMs) < 1;
  if (st.isDirectory()) return sameTime;
  if (st.isSymbolicLink()) return fs.readlinkSync(file) === readlinkLower(lowers, rel);
  return st.size === lower.size && sameTime && st.rdev === lower.rdev;
}

function readlinkLower(lowers: string[], rel: string): string | null {
  for (const l of lowers) {
    const st = lstatOrNull(path.join(l, rel));
    if (st?.isSymbolicLink()) return fs.readlinkSync(path.join(l, rel));
    if (st) return null;
  }
  return null;
}

/** Names the lowers' merged view shows in directory `rel`. */
function mergedNames(lowers: string[], rel: string): string[] {
  const names = new Set<string>();
  const hidden = new Set<string>();
  for (const l of rel ? lowersShowing(lowers, rel) : lowers) {
    for (const n of fs.readdirSync(path.join(l, rel))) {
      if (names.has(n) || hidden.has(n)) continue;
      const st = fs.lstatSync(path.join(l, rel, n));
      if (isWhiteout(st)) hidden.add(n);
      else names.add(n);
    }
  }
  return [...names].sort();
}

/**
 * The lowers in which directory `rel` shows through (topmost first): none if
 * the topmost entry on the way is not a directory. Walked component by
 * component so a lower's own symlinks are never followed.
 */
function lowersShowing(lowers: string[], rel: string): string[] {
  let live = lowers;
  const parts = rel.split('/');
  for (let i = 0; i < parts.length; i++) {
    const sub = parts.slice(0, i + 1).join('/');
    const next: string[] = [];
    for (const l of live) {
      const st = lstatOrNull(path.join(l, sub));
      if (st === null) continue;
      if (!st.isDirectory()) break;
      next.push(l);
      if (isOpaque(path.join(l, sub))) break;
    }
    live = next;
  }
  return live;
}

