/**
 * Unpacks one image layer into its own directory in overlay form: the
 * directory can serve directly as an overlayfs lower. OCI whiteouts become
 * overlayfs's own markers (`.wh.NAME` → a 0/0 character device NAME,
 * `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory).
 *
 * Safety (tar-slip): Node has no openat, so every entry's parent path is
 * walked component by component with lstat, and any symlink on the way is
 * refused — whether this layer planted it or a lower layer did (the lowers'
 * merged view is consulted for the components this layer does not have, so
 * the copy fallback, which flattens the same snapshots, sees the same
 * refusals). `..` components are refused, leading `/` stripped, the final
 * component removed first and created exclusively (O_EXCL | O_NOFOLLOW,
 * symlink(), link(), mknod() never follow it), hardlink targets resolved the
 * same way. Any refusal fails the whole layer with an error naming the entry.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream';
import zlib from 'node:zlib';
import { UserError, errnoMessage } from '../../errors.js';
import { makedev, native } from '../../native.js';
import { type TarHeader, TarError, readTar } from './tar.js';

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
const AUFS_META = '.wh..wh.';
export const OPAQUE_XATTR = 'trusted.overlay.opaque';

export interface UnpackOptions {
  /** snapshot directories of the layers below, topmost first */
  lowers?: string[];
  /** "sha256:<hex>" the uncompressed tar must hash to */
  diffId?: string;
}

export interface UnpackResult {
  /** "sha256:<hex>" of the uncompressed tar as read */
  diffId: string;
  entries: number;
  /** bytes of the uncompressed tar */
  bytes: number;
}

/** A refused or unreadable layer entry (bad input: one line for the user). */
export class UnpackError extends UserError {
  constructor(readonly entry: string, problem: string) {
    super(`entry ${JSON.stringify(entry)}: ${problem}`);
    this.name = 'UnpackError';
  }
}

const S_IFCHR = 0o020000;
const S_IFBLK = 0o060000;
const S_IFIFO = 0o010000;
const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
const IS_ROOT = process.getuid?.() === 0;

/** The layer's uncompressed tar stream: gzip by its magic (media types lie in docker archives), zstd refused. */
export function openLayer(file: string): AsyncIterable<Buffer> {
  const head = Buffer.alloc(4);
  const fd = fs.openSync(file, 'r');
  let n: number;
  try {
    n = fs.readSync(fd, head, 0, 4, 0);
  } finally {
    fs.closeSync(fd);
  }
  const raw = fs.createReadStream(file, { highWaterMark: 1 << 20 });
  if (n >= 2 && head[0] === 0x1f && head[1] === 0x8b) {
    // pipeline: an error on either side, or the reader stopping early,
    // destroys both (the file is closed at once, not at GC).
    return pipeline(raw, zlib.createGunzip({ chunkSize: 256 << 10 }), () => {});
  }
  if (n === 4 && head.readUInt32LE(0) === 0xfd2fb528) {
    raw.destroy();
    throw new UserError('zstd layers are not supported (Node 20 has no zstd decoder)');
  }
  return raw;
}

/** Unpacks the layer blob `file` (gzip or plain tar) into the empty directory `dest`. */
export async function unpackLayer(file: string, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  return unpackTar(openLayer(file), dest, opts);
}

/** Unpacks an uncompressed tar stream into the empty directory `dest`. */
export async function unpackTar(source: AsyncIterable<Buffer>, dest: string, opts: UnpackOptions = {}): Promise<UnpackResult> {
  const hash = createHash('sha256');
  let bytes = 0;
  const hashed = (async function* () {
    for await (const chunk of source) {
      hash.update(chunk);
      bytes += chunk.length;
      yield chunk;
    }
  })();
  const u = new LayerWriter(path.resolve(dest), opts.lowers ?? []);
  let entries = 0;
  try {
    for await (const { header, body } of readTar(hashed)) {
      entries++;
      await u.entry(header, body);
    }
  } catch (e) {
    if (e instanceof UserError) throw e;
    if (e instanceof TarError) throw new UserError(`malformed layer: ${e.message}`);
    const z = e as NodeJS.ErrnoException;
    if (typeof z.code === 'string' && z.code.startsWith('Z_')) throw new UserError(`malformed layer: gzip: ${z.message}`);
    throw e;
  }
  u.finish();
  const diffId = `sha256:${hash.digest('hex')}`;
  if (opts.diffId && opts.diffId !== diffId)
    throw new UserError(`layer content is ${diffId}, but the image config says diff_id ${opts.diffId}`);
  return { diffId, entries, bytes };
}

/**
 * The entry path's components: leading `/` and `.` dropped, `..` refused.
 * An empty result is the layer root itself.
 */
export function entryParts(name: string): string[] {
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new UnpackError(name, 'path leaves the layer ("..")');
  return parts;
}

function parentOf(rel: string): string {
  const i = rel.lastIndexOf('/');
  return i < 0 ? '' : rel.slice(0, i);
}

/** lstat, or null when nothing is there. */
export function lstatOrNull(p: string): fs.Stats | null {
  try {
    return fs.lstatSync(p);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw e;
  }
}

/** A 0/0 character device: overlayfs's whiteout. */
export function isWhiteout(st: fs.Stats): boolean {
  return st.isCharacterDevice() && st.rdev === 0;
}

export function isOpaque(dir: string): boolean {
  try {
    return native().lgetxattr(dir, OPAQUE_XATTR).toString() === 'y';
  } catch {
    return false; // ENODATA (not opaque), ENOTSUP
  }
}

class LayerWriter {
  /** relative paths known to be real directories in this layer */
  private dirs = new Set<string>(['']);
  /** per relative path absent from this layer: the lowers (topmost first) where it is a directory still visible */
  private lowerDirs = new Map<string, string[]>();
  /** directory mtimes are set last: creating their contents changes them */
  private dirTimes: { abs: string; atime: number; mtime: number }[] = [];

  constructor(
    private readonly root: string,
    private readonly lowers: string[],
  ) {
    this.lowerDirs.set('', lowers);
  }

  async entry(h: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    const name = h.path;
    try {
      await this.write(h, body);
    } catch (e) {
      if (e instanceof UserError) throw e;
      if (e instanceof TarError) throw new UserError(`malformed layer: ${e.message}`);
      throw new UnpackError(name, errnoMessage(e));
    }
  }

  private async write(h: TarHeader, body: AsyncIterable<Buffer>): Promise<void> {
    const name = h.path;
    const parts = entryParts(name);
    if (parts.length === 0) {
      // "./": the layer root's own metadata.
      if (h.type !== 'dir') throw new UnpackError(name, 'the layer root must be a directory');
      this.meta(this.root, h);
      this.dirTimes.push({ abs: this.root, atime: h.atime ?? h.mtime, mtime: h.mtime });
      return;
    }
    // aufs metadata at the top (.wh..wh.plnk/, .wh..wh.aufs): not content, as Docker skips it.
    if (parts[0].startsWith(AUFS_META) && parts[0] !== OPAQUE_MARKER) return;
    const base = parts[parts.length - 1];
    if (base.startsWith(WHITEOUT_PREFIX)) {
      this.whiteout(name, parts);
      return;
    }
    const parent = this.parent(name, parts);
    const abs = path.join(parent, base);
    const rel = parts.join('/');

    switch (h.type) {
      case 'dir': {
        const st = lstatOrNull(abs);
        if (st && isWhiteout(st)) this.dirOverWhiteout(abs, rel);
        else if (!st?.isDirectory()) {
          if (st) this.remove(abs, rel, st);
          fs.mkdirSync(abs, 0o700);
        }
        this.dirs.add(rel);
        this.meta(abs, h);
        this.dirTimes.push({ abs, atime: h.atime ?? h.mtime, mtime: h.mtime });
        return;
      }
      case 'file': {
        this.clear(abs, rel);
        const fd = fs.openSync(abs, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
        let written = 0;
        try {
          for await (const chunk of body) {
            let off = 0;
            while (off < chunk.length) off += fs.writeSync(fd, chunk, off, chunk.length - off);
            written += chunk.length;
          }
        } finally {
          fs.closeSync(fd);
        }
        if (written !== h.size) throw new UnpackError(name, 'truncated archive (entry data cut short)');
        break;
      }
      case 'symlink':
        if (!h.linkpath) throw new UnpackError(name, 'symlink with an empty target');
        this.clear(abs, rel);
        fs.symlinkSync(h.linkpath, abs);
        break;
      case 'hardlink': {
        const target = this.linkTarget(name, h.linkpath);
        if (target === abs) throw new UnpackError(name, 'hardlink to itself');
        this.clear(abs, rel);
        fs.linkSync(target, abs);
        return; // a hardlink shares its target's inode: its header's metadata is not applied
      }
      case 'char':
      case 'block':
      case 'fifo': {
        this.clear(abs, rel);
        const kind = h.type === 'char' ? S_IFCHR : h.type === 'block' ? S_IFBLK : S_IFIFO;
        native().mknod(abs, kind | 0o600, h.type === 'fifo' ? 0 : makedev(h.devmajor, h.devminor));
        break;
      }
    }
    this.meta(abs, h);
    fs.lutimesSync(abs, h.atime ?? h.mtime, h.mtime);
  }

  /** Owner, then mode (chown clears setuid/setgid), then xattrs (chown clears security.capability). */
  private meta(abs: string, h: TarHeader): void {
    try {
      fs.lchownSync(abs, h.uid, h.gid);
    } catch (e) {
      if (IS_ROOT || (e as NodeJS.ErrnoException).code !== 'EPERM') throw e;
    }
    if (h.type !== 'symlink') fs.chmodSync(abs, h.mode);
    for (const [key, value] of h.xattrs) {
      // Overlay's own attributes would turn layer content into whiteouts or
      // redirects of the snapshot; they are not image content.
      if (key.startsWith('trusted.overlay.')) continue;
      native().lsetxattr(abs, key, value);
    }
  }

  /**
   * The absolute parent directory of the entry, created as needed, with every
   * component a real directory (refusing symlinks here and in the lowers).
   */
  private parent(name: string, parts: string[]): string {
    let rel = '';
    for (let i = 0; i < parts.length - 1; i++) {
      rel = rel ? `${rel}/${parts[i]}` : parts[i];
      if (this.dirs.has(rel)) continue;
      const abs = path.join(this.root, rel);
      const st = lstatOrNull(abs);
      if (st === null) {
        this.checkLowers(name, rel);
        this.implicitDir(rel, abs);
      } else if (st.isSymbolicLink()) {
        throw new UnpackError(name, `refusing to write through the symlink ${JSON.stringify(rel)}`);
      } else if (isWhiteout(st)) {
        this.dirOverWhiteout(abs, rel);
      } else if (!st.isDirectory()) {
        throw new UnpackError(name, `${JSON.stringify(rel)} is not a directory`);
      }
      this.dirs.add(rel);
    }
    return path.join(this.root, ...parts.slice(0, -1));
  }

  /**
   * This layer whited out `rel` and now puts a directory there: the lowers'
   * `rel` stays deleted, so the directory is opaque (0755 until its entry, if
   * any, says otherwise).
   */
  private dirOverWhiteout(abs: string, rel: string): void {
    fs.unlinkSync(abs);
    fs.mkdirSync(abs, 0o755);
    native().lsetxattr(abs, OPAQUE_XATTR, Buffer.from('y'));
    this.lowerDirs.set(rel, []);
  }

  /**
   * A parent directory the archive has no entry for. In overlay form the
   * topmost layer's directory is what the container sees, so it takes the
   * attributes of the directory it covers in the lowers (what a flattened
   * unpack, which finds it there, keeps); else 0755 root, as tar makes it.
   */
  private implicitDir(rel: string, abs: string): void {
    fs.mkdirSync(abs, 0o755);
    const lower = this.lowersOf(rel)[0];
    if (!lower) return;
    const st = fs.lstatSync(path.join(lower, rel));
    copyMeta(path.join(lower, rel), abs, st, false);
    this.dirTimes.push({ abs, atime: st.atimeMs / 1000, mtime: st.mtimeMs / 1000 });
  }

  /**
   * `rel` is absent from this layer and becomes a directory in it: in the
   * merged view of the lowers it must not be a symlink (the copy fallback
   * would write through it, and the layer's author wrote for something else).
   */
  private checkLowers(name: string, rel: string): void {
    for (const lower of this.lowersOf(parentOf(rel))) {
      const st = lstatOrNull(path.join(lower, rel));
      if (st === null) continue;
      // The topmost entry is what the merged lowers show.
      if (st.isSymbolicLink())
        throw new UnpackError(name, `refusing to write through the symlink ${JSON.stringify(rel)} of a lower layer`);
      return;
    }
  }

  /**
   * The lowers (topmost first) in which `rel` is a directory that shows
   * through: below a whiteout, an opaque directory or a non-directory, the
   * lower ones are hidden (overlayfs's merge rules). Every lower's parents of
   * `rel` are then real directories, so lstat there follows no symlink.
   */
  private lowersOf(rel: string): string[] {
    const cached = this.lowerDirs.get(rel);
    if (cached) return cached;
    const live: string[] = [];
    for (const lower of this.lowersOf(parentOf(rel))) {
      const p = path.join(lower, rel);
      const st = lstatOrNull(p);
      if (st === null) continue;
      if (!st.isDirectory()) break;
      live.push(lower);
      if (isOpaque(p)) break;
    }
    this.lowerDirs.set(rel, live);
    return live;
  }

  /** `.wh.NAME` / `.wh..wh..opq`: markers for the lowers only (never for this layer's own entries). */
  private whiteout(name: string, parts: string[]): void {
    const base = parts[parts.length - 1];
    if (base === OPAQUE_MARKER) {
      const dirParts = parts.slice(0, -1);
      if (dirParts.length === 0) {
        this.opaqueRoot();
        return;
      }
      const abs = path.join(this.parent(name, dirParts), dirParts[dirParts.length - 1]);
      const rel = dirParts.join('/');
      const st = lstatOrNull(abs);
      if (st === null) {
        this.checkLowers(name, rel);
        this.implicitDir(rel, abs);
        this.dirs.add(rel);
      } else if (st.isSymbolicLink()) {
        throw new UnpackError(name, `refusing to write through the symlink ${JSON.stringify(rel)}`);
      } else if (!st.isDirectory()) {
        throw new UnpackError(name, `${JSON.stringify(rel)} is not a directory`);
      }
      native().lsetxattr(abs, OPAQUE_XATTR, Buffer.from('y'));
      this.lowerDirs.set(rel, []); // nothing of the lowers shows below it any more
      return;
    }
    if (base.startsWith(AUFS_META)) return; // aufs metadata deeper down: not content either
    const target = base.slice(WHITEOUT_PREFIX.length);
    if (target === '' || target === '.' || target === '..') throw new UnpackError(name, 'invalid whiteout');
    const abs = path.join(this.parent(name, parts), target);
    const st = lstatOrNull(abs);
    // Present already means this layer made it: a whiteout hides lower layers
    // only. A non-directory of this layer covers the lowers anyway; a
    // directory would merge with theirs, so it becomes opaque.
    if (st?.isDirectory() && !isWhiteout(st)) {
      native().lsetxattr(abs, OPAQUE_XATTR, Buffer.from('y'));
      this.lowerDirs.set(parts.slice(0, -1).concat(target).join('/'), []);
      return;
    }
    if (st !== null) return;
    native().mknod(abs, S_IFCHR | 0o600, 0);
  }

  /**
   * `.wh..wh..opq` at the top of the layer. overlayfs ignores the opaque
   * attribute on a layer's root, so every name the lowers show there gets a
   * whiteout instead (this layer's own directories become opaque); the
   * attribute is still set, for the copy fallback.
   */
  private opaqueRoot(): void {
    const seen = new Set<string>();
    for (const lower of this.lowersOf('')) {
      for (const n of fs.readdirSync(lower)) {
        if (seen.has(n)) continue;
        seen.add(n);
        const abs = path.join(this.root, n);
        const st = lstatOrNull(abs);
        if (st === null) native().mknod(abs, S_IFCHR | 0o600, 0);
        else if (st.isDirectory()) {
          native().lsetxattr(abs, OPAQUE_XATTR, Buffer.from('y'));
          this.lowerDirs.set(n, []);
        }
      }
    }
    native().lsetxattr(this.root, OPAQUE_XATTR, Buffer.from('y'));
    this.lowerDirs.set('', []);
  }

  /** Resolves a hardlink target inside this layer: no `..`, no symlink on the way, not a directory. */
  private linkTarget(name: string, linkpath: string): string {
    if (!linkpath) throw new UnpackError(name, 'hardlink with an empty target');
    let parts: string[];
    try {
      parts = entryParts(linkpath);
    } catch {
      throw new UnpackError(name, `hardlink target ${JSON.stringify(linkpath)} leaves the layer ("..")`);
    }
    if (parts.length === 0) throw new UnpackError(name, 'hardlink to the layer root');
    let abs = this.root;
    for (let i = 0; i < parts.length; i++) {
      abs = path.join(abs, parts[i]);
      const st = lstatOrNull(abs);
      const last = i === parts.length - 1;
      if (st === null) return this.copyUp(name, linkpath, parts);
      if (!last && st.isSymbolicLink())
        throw new UnpackError(name, `hardlink target ${JSON.stringify(linkpath)} goes through a symlink`);
      if (!last && !st.isDirectory())
        throw new UnpackError(name, `hardlink target ${JSON.stringify(linkpath)} is not in this layer`);
      if (last && st.isDirectory()) throw new UnpackError(name, `hardlink target ${JSON.stringify(linkpath)} is a directory`);
    }
    return abs;
  }

  /**
   * A hardlink to a file of a lower layer: overlay layers cannot share an
   * inode, so the file is copied up into this layer first (same content and
   * metadata: the container sees no change), as overlayfs itself does when a
   * container makes such a link.
   */
  private copyUp(name: string, linkpath: string, parts: string[]): string {
    const rel = parts.join('/');
    const notFound = () => new UnpackError(name, `hardlink target ${JSON.stringify(linkpath)} is in neither this layer nor the ones below`);
    const candidates = this.lowersOf(parentOf(rel));
    let found: { src: string; st: fs.Stats } | undefined;
    for (const lower of candidates) {
      const src = path.join(lower, rel);
      const st = lstatOrNull(src);
      if (st === null) continue;
      if (isWhiteout(st)) throw notFound();
      if (st.isDirectory()) throw new UnpackError(name, `hardlink target ${JSON.stringify(linkpath)} is a directory`);
      found = { src, st };
      break;
    }
    if (!found) throw notFound();
    const abs = path.join(this.parent(name, parts), parts[parts.length - 1]);
    copyEntry(found.src, abs, found.st);
    return abs;
  }

  /** Removes whatever the final component is (as tar does), so it can be created exclusively. */
  private clear(abs: string, rel: string): void {
    const st = lstatOrNull(abs);
    if (st) this.remove(abs, rel, st);
  }

  private remove(abs: string, rel: string, st: fs.Stats): void {
    if (st.isDirectory()) {
      fs.rmSync(abs, { recursive: true, force: true });
      for (const d of this.dirs) if (d === rel || d.startsWith(`${rel}/`)) this.dirs.delete(d);
    } else {
      fs.unlinkSync(abs);
    }
  }

  /** Directory mtimes, now that nothing more is created in them (in archive order: a later header wins). */
  finish(): void {
    for (const { abs, atime, mtime } of this.dirTimes) {
      try {
        fs.lutimesSync(abs, atime, mtime);
      } catch (e) {
        // A directory replaced later in the same layer is gone: nothing to date.
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      }
    }
  }
}

/**
 * A file's times onto another, in float seconds: Stats' Date fields are
 * rounded to the millisecond, which moves a time at .9995 s into the next
 * second (the nanoseconds themselves are beyond Node's utimes).
 */
export function copyTimes(dst: string, st: fs.Stats): void {
  fs.lutimesSync(dst, st.atimeMs / 1000, st.mtimeMs / 1000);
}

/**
 * Owner, mode, xattrs (overlay's own excepted) and, unless `times` is false,
 * times of `src` onto `dst` (for copies between snapshots and rootfs).
 */
export function copyMeta(src: string, dst: string, st: fs.Stats, times = true): void {
  fs.lchownSync(dst, st.uid, st.gid);
  if (!st.isSymbolicLink()) fs.chmodSync(dst, st.mode & 0o7777);
  for (const name of native().llistxattr(src)) {
    if (name.startsWith('trusted.overlay.')) continue;
    native().lsetxattr(dst, name, native().lgetxattr(src, name));
  }
  if (times) copyTimes(dst, st);
}

/** Copies one non-directory entry (file, symlink, device, FIFO) with its metadata; `dst` must not exist. */
export function copyEntry(src: string, dst: string, st: fs.Stats): void {
  if (st.isFile()) fs.copyFileSync(src, dst, fs.constants.COPYFILE_FICLONE | fs.constants.COPYFILE_EXCL);
  else if (st.isSymbolicLink()) fs.symlinkSync(fs.readlinkSync(src), dst);
  else if (st.isCharacterDevice() || st.isBlockDevice() || st.isFIFO()) native().mknod(dst, (st.mode & 0o170000) | 0o600, st.rdev);
  else throw new Error(`${src}: not a file, symlink, device or FIFO`);
  copyMeta(src, dst, st);
}
