/**
 * `tsctl load -i FILE`: images from
 *  - a docker-archive, as `docker save` writes it (manifest.json, config
 *    JSON files, layer tars, possibly gzip-compressed, possibly symlinks to a
 *    shared layer), and
 *  - an OCI image layout (index.json, oci-layout, blobs/sha256/...) as a
 *    directory or a tar ("OCI archive"); an index inside is resolved to
 *    linux/amd64.
 * The file itself may be gzip-compressed.
 *
 * The tar is not extracted: its headers are indexed and members read in
 * place by offset, so nothing but verified blobs is ever written (a member
 * named "../x" in an archive is only a name here). Every blob goes through
 * the store's writer — digests and sizes of an OCI layout are checked, a
 * docker-archive's layers are checked against the config's diff ids — and
 * the record is stored only after the layers are unpacked.
 */
import { createGunzip } from 'node:zlib';
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createHash } from 'node:crypto';
import { UserError, errnoMessage } from '../../errors.js';
import { finishImport, parseJson } from './pull.js';
import { formatReference, parseReference } from './reference.js';
import { checkManifest, isIndexMediaType, selectManifest } from './registry.js';
import { ImageStore, layerRecords, type Lease, type StoredImage, digestOf } from './store.js';
import { MEDIA, type Descriptor, type ImageConfig, type ImageIndex, type Manifest } from './types.js';

interface Member {
  offset: number;
  size: number;
  /** '0' file, '1' hardlink, '2' symlink, '5' dir, ... */
  type: string;
  linkname: string;
}

/** Read access to an archive's members (tar in place) or a layout directory's files. */
interface Source {
  describe: string;
  has(name: string): boolean;
  size(name: string): number;
  read(name: string, max?: number): Buffer;
  stream(name: string): AsyncIterable<Buffer>;
}

const norm = (name: string) => path.posix.normalize(name.replace(/^\.?\/+/, '')).replace(/\/+$/, '');

function parseOctal(buf: Buffer, off: number, len: number): number {
  if (buf[off]! & 0x80) {
    let v = 0;
    for (let i = off + 1; i < off + len; i++) v = v * 256 + buf[i]!;
    return v;
  }
  const s = buf.toString('ascii', off, off + len).replace(/\0.*$/s, '').trim();
  return s ? parseInt(s, 8) : 0;
}

function cstr(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end >= 0 && end < off + len ? end : off + len);
}

/** Indexes a tar file's members (pax and GNU long names understood; bodies skipped). */
export function indexTar(file: string): Map<string, Member> {
  const fd = fs.openSync(file, 'r');
  const members = new Map<string, Member>();
  try {
    const total = fs.fstatSync(fd).size;
    const h = Buffer.alloc(512);
    let off = 0;
    let longName: string | undefined;
    let longLink: string | undefined;
    let pax: Record<string, string> = {};
    for (let n = 0; off < total; n++) {
      if (off + 512 > total) throw new UserError(`${file}: truncated tar archive (a header cut short at offset ${off})`);
      if (n > 1_000_000) throw new UserError(`${file}: more than a million tar members`);
      fs.readSync(fd, h, 0, 512, off);
      if (h.every((b) => b === 0)) break;
      let sum = 0;
      for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
      if (sum !== parseOctal(h, 148, 8)) throw new UserError(`${file}: not a tar archive (bad header checksum at offset ${off})`);
      const type = String.fromCharCode(h[156]!) || '0';
      let size = parseOctal(h, 124, 12);
      if (pax.size) size = Number(pax.size);
      const body = off + 512;
      if (body + size > total) throw new UserError(`${file}: truncated tar archive (member at offset ${off} needs ${size} bytes)`);
      const readBody = () => {
        if (size > 1024 * 1024) throw new UserError(`${file}: tar metadata entry too large`);
        const b = Buffer.alloc(size);
        fs.readSync(fd, b, 0, size, body);
        return b;
      };
      off = body + Math.ceil(size / 512) * 512;
      if (type === 'x') {
        pax = {};
        const text = readBody().toString('utf8');
        let i = 0;
        while (i < text.length) {
          const sp = text.indexOf(' ', i);
          const len = Number(text.slice(i, sp));
          if (!(len > 0)) break;
          const rec = text.slice(sp + 1, i + len - 1);
          const eq = rec.indexOf('=');
          pax[rec.slice(0, eq)] = rec.slice(eq + 1);
          i += len;
        }
        continue;
      }
      if (type === 'g') continue;
      if (type === 'L') {
        longName = readBody().toString('utf8').replace(/\0+$/, '');
        continue;
      }
      if (type === 'K') {
        longLink = readBody().toString('utf8').replace(/\0+$/, '');
        continue;
      }
      const magic = h.toString('ascii', 257, 262);
      const prefix = magic === 'ustar' ? cstr(h, 345, 155) : '';
      const name = pax.path ?? longName ?? (prefix ? `${prefix}/${cstr(h, 0, 100)}` : cstr(h, 0, 100));
      const linkname = pax.linkpath ?? longLink ?? cstr(h, 157, 100);
      members.set(norm(name), { offset: body, size: type === '0' || type === '\0' || type === '7' ? size : 0, type: type === '\0' || type === '7' ? '0' : type, linkname });
      pax = {};
      longName = longLink = undefined;
    }
  } finally {
    fs.closeSync(fd);
  }
  return members;
}

function tarSource(file: string, shownAs: string): Source {
  const members = indexTar(file);
  const resolve = (name: string): Member => {
    let key = norm(name);
    for (let hops = 0; hops < 16; hops++) {
      const m = members.get(key);
      if (!m) break;
      if (m.type === '0') return m;
      if (m.type === '1') key = norm(m.linkname);
      else if (m.type === '2') key = norm(path.posix.join(path.posix.dirname(key), m.linkname));
      else break;
    }
    throw new UserError(`${shownAs}: no file ${name} in the archive`);
  };
  return {
    describe: shownAs,
    has: (name) => {
      try {
        resolve(name);
        return true;
      } catch {
        return false;
      }
    },
    size: (name) => resolve(name).size,
    read: (name, max = 64 * 1024 * 1024) => {
      const m = resolve(name);
      if (m.size > max) throw new UserError(`${shownAs}: ${name} is too large (${m.size} bytes)`);
      const b = Buffer.alloc(m.size);
      const fd = fs.openSync(file, 'r');
      try {
        fs.readSync(fd, b, 0, m.size, m.offset);
      } finally {
        fs.closeSync(fd);
      }
      return b;
    },
    stream: (name) => {
      const m = resolve(name);
      if (m.size === 0) return (async function* () {})();
      return fs.createReadStream(file, { start: m.offset, end: m.offset + m.size - 1, highWaterMark: 1 << 20 });
    },
  };
}

function dirSource(dir: string): Source {
  const p = (name: string) => {
    const rel = norm(name);
    if (rel.startsWith('..') || path.isAbsolute(rel)) throw new UserError(`${dir}: ${name} is outside the layout`);
    return path.join(dir, rel);
  };
  const st = (name: string) => fs.statSync(p(name), { throwIfNoEntry: false });
  return {
    describe: dir,
    has: (name) => !!st(name)?.isFile(),
    size: (name) => {
      const s = st(name);
      if (!s?.isFile()) throw new UserError(`${dir}: no file ${name}`);
      return s.size;
    },
    read: (name) => {
      try {
        return fs.readFileSync(p(name));
      } catch {
        throw new UserError(`${dir}: no file ${name}`);
      }
    },
    stream: (name) => fs.createReadStream(p(name), { highWaterMark: 1 << 20 }),
  };
}

/** Copies a member into the store: verified against `expect` (an OCI descriptor) or hashed as it is. */
async function copyBlob(store: ImageStore, lease: Lease, src: Source, name: string, expect: { digest?: string; size?: number } = {}): Promise<{ digest: string; size: number }> {
  if (expect.digest && store.hasBlob(expect.digest, expect.size)) {
    await lease.add([expect.digest]);
    if (store.hasBlob(expect.digest, expect.size)) return { digest: expect.digest, size: expect.size ?? store.readBlob(expect.digest).length };
  }
  const w = store.writer(expect);
  try {
    for await (const chunk of src.stream(name)) w.write(chunk as Buffer);
    const digest = w.digest();
    if (expect.digest && digest !== expect.digest) throw new UserError(`${src.describe}: ${name}: digest mismatch: the descriptor says ${expect.digest}, the content is ${digest}`);
    await lease.add([digest]);
    w.commit();
    return { digest, size: w.written };
  } catch (e) {
    w.abort();
    throw e;
  }
}

const isGzip = (b: Buffer) => b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
const isZstd = (b: Buffer) => b.length >= 4 && b.readUInt32LE(0) === 0xfd2fb528;

/** The sha256 of a layer's uncompressed tar (its diff id). */
async function diffIdOf(file: string, gzip: boolean): Promise<string> {
  const h = createHash('sha256');
  const sink = async (source: AsyncIterable<Buffer>) => {
    for await (const c of source) h.update(c);
  };
  try {
    const src = fs.createReadStream(file, { highWaterMark: 1 << 20 });
    if (gzip) await pipeline(src, createGunzip(), sink);
    else await pipeline(src, sink);
  } catch (e) {
    throw new UserError(`layer: ${gzip ? 'gzip' : 'read'} error: ${(e as Error).message}`);
  }
  return `sha256:${h.digest('hex')}`;
}

function headOf(file: string, n = 8): Buffer {
  const b = Buffer.alloc(n);
  const fd = fs.openSync(file, 'r');
  try {
    return b.subarray(0, fs.readSync(fd, b, 0, n, 0));
  } finally {
    fs.closeSync(fd);
  }
}

/** One image an archive held: the stored record and the names this archive gave it. */
export interface Loaded {
  image: StoredImage;
  names: string[];
}

async function loadDockerArchive(store: ImageStore, lease: Lease, src: Source): Promise<Loaded[]> {
  const entries = parseJson<{ Config?: unknown; RepoTags?: unknown; Layers?: unknown }[]>(src.read('manifest.json'), `${src.describe}: manifest.json`);
  if (!Array.isArray(entries) || entries.length === 0) throw new UserError(`${src.describe}: manifest.json lists no images`);
  const out: Loaded[] = [];
  for (const [i, e] of entries.entries()) {
    const where = `${src.describe}: manifest.json[${i}]`;
    if (typeof e.Config !== 'string' || !Array.isArray(e.Layers) || e.Layers.some((l) => typeof l !== 'string')) {
      throw new UserError(`${where}: needs Config (a file name) and Layers (file names)`);
    }
    const names = (Array.isArray(e.RepoTags) ? e.RepoTags : []).map((t) => {
      if (typeof t !== 'string') throw new UserError(`${where}: RepoTags holds a non-string`);
      return formatReference(parseReference(t));
    });
    const configBody = src.read(e.Config);
    const config = parseJson<ImageConfig>(configBody, `${where}: ${e.Config}`);
    const configDigest = digestOf(configBody);
    await lease.add([configDigest]);
    store.putBlob(configBody, { digest: configDigest, size: configBody.length });
    const diffIds = config.rootfs?.diff_ids ?? [];
    if (!Array.isArray(diffIds) || diffIds.length !== e.Layers.length) {
      throw new UserError(`${where}: the config lists ${Array.isArray(diffIds) ? diffIds.length : 'no'} diff ids for ${e.Layers.length} layers`);
    }
    const layers: Descriptor[] = [];
    for (const [j, name] of (e.Layers as string[]).entries()) {
      const { digest, size } = await copyBlob(store, lease, src, name);
      const head = headOf(store.blobPath(digest));
      if (isZstd(head)) throw new UserError(`${where}: layer ${name} is zstd-compressed: not supported, only gzip and uncompressed layers`);
      const gzip = isGzip(head);
      const diffId = gzip ? await diffIdOf(store.blobPath(digest), true) : digest;
      if (diffId !== diffIds[j]) throw new UserError(`${where}: layer ${name} is ${diffId}, the image config says ${diffIds[j]}`);
      layers.push({ mediaType: gzip ? MEDIA.ociLayerGzip : MEDIA.ociLayer, digest, size });
    }
    // a docker-archive has no manifest: make the OCI manifest the image would have
    const manifest: Manifest = {
      schemaVersion: 2,
      mediaType: MEDIA.ociManifest,
      config: { mediaType: MEDIA.ociConfig, digest: configDigest, size: configBody.length },
      layers,
    };
    const body = Buffer.from(JSON.stringify(manifest));
    const manifestDigest = digestOf(body);
    await lease.add([manifestDigest]);
    store.putBlob(body);
    out.push({ image: await importRecord(store, lease, config, manifest, manifestDigest, MEDIA.ociManifest, names), names });
  }
  return out;
}

async function importRecord(store: ImageStore, lease: Lease, config: ImageConfig, manifest: Manifest, manifestDigest: string, mediaType: string, names: string[]): Promise<StoredImage> {
  const layers = layerRecords(manifest.layers, config);
  await lease.add([], layers.map((l) => l.chainId));
  return finishImport(store, {
    id: manifest.config.digest,
    names,
    manifestDigest,
    manifestMediaType: mediaType,
    repoDigests: [],
    layers,
    size: manifest.layers.reduce((n, l) => n + l.size, 0),
    added: new Date().toISOString(),
  }, undefined);
}

const blobName = (d: Descriptor) => {
  if (!/^sha256:[a-f0-9]{64}$/.test(d?.digest ?? '')) throw new UserError(`invalid descriptor digest ${JSON.stringify(d?.digest)}`);
  return `blobs/sha256/${d.digest.slice(7)}`;
};

/** The name an OCI layout gives a manifest: containerd's full-name annotation, or a ref.name that is a whole reference. */
function ociName(d: Descriptor, fallback?: Record<string, string>): string | undefined {
  const a = { ...fallback, ...d.annotations };
  const full = a['io.containerd.image.name'];
  if (full) return formatReference(parseReference(full));
  const ref = a['org.opencontainers.image.ref.name'];
  // a bare tag ("latest") names no repository: the image is loaded by id, as docker does
  if (ref && /[/:]/.test(ref)) return formatReference(parseReference(ref));
  return undefined;
}

async function loadOciLayout(store: ImageStore, lease: Lease, src: Source): Promise<Loaded[]> {
  const index = parseJson<ImageIndex>(src.read('index.json'), `${src.describe}: index.json`);
  if (!Array.isArray(index.manifests) || index.manifests.length === 0) throw new UserError(`${src.describe}: index.json lists no manifests`);
  const byId = new Map<string, Loaded>();
  const readDesc = async (d: Descriptor): Promise<Buffer> => {
    const name = blobName(d);
    if (!src.has(name)) throw new UserError(`${src.describe}: blob ${d.digest} is missing`);
    const body = src.read(name, 4 * 1024 * 1024);
    const got = digestOf(body);
    if (got !== d.digest || body.length !== d.size) throw new UserError(`${src.describe}: blob ${d.digest}: digest mismatch: the content is ${got} (${body.length} bytes)`);
    return body;
  };
  let noPlatform: UserError | undefined;
  for (const top of index.manifests) {
    let desc = top;
    let body = await readDesc(desc);
    if (isIndexMediaType(desc.mediaType)) {
      try {
        desc = selectManifest(parseJson<ImageIndex>(body, `${src.describe}: index ${desc.digest}`));
      } catch (e) {
        // a multi-platform image without ours: the others in the layout still load
        if (!(e instanceof UserError) || !/no matching manifest/.test(e.message)) throw e;
        noPlatform ??= new UserError(`${src.describe}: index ${top.digest}: ${e.message}`);
        continue;
      }
      body = await readDesc(desc);
    }
    const what = `${src.describe}: manifest ${desc.digest}`;
    const manifest = checkManifest(parseJson<Manifest>(body, what), what);
    const configBody = await readDesc(manifest.config);
    const config = parseJson<ImageConfig>(configBody, `${src.describe}: config ${manifest.config.digest}`);
    await lease.add([desc.digest, manifest.config.digest]);
    store.putBlob(body, { digest: desc.digest, size: body.length });
    store.putBlob(configBody, manifest.config);
    for (const l of manifest.layers) {
      if (!src.has(blobName(l))) throw new UserError(`${src.describe}: layer blob ${l.digest} is missing`);
      await copyBlob(store, lease, src, blobName(l), l);
    }
    const name = ociName(top, desc.annotations);
    const names = name ? [name] : [];
    const image = await importRecord(store, lease, config, manifest, desc.digest, desc.mediaType || manifest.mediaType || MEDIA.ociManifest, names);
    const seen = byId.get(image.id);
    byId.set(image.id, { image, names: [...(seen?.names ?? []), ...names] });
  }
  if (byId.size === 0 && noPlatform) throw noPlatform;
  return [...byId.values()];
}

/** Loads every image in `input` (a file or an OCI layout directory); the store is unchanged on failure. */
/** `docker load` without -i: the archive on stdin, spooled into the store's temp dir first (it is read by offset). */
export async function loadStdin(root: string, stdin: NodeJS.ReadableStream = process.stdin): Promise<Loaded[]> {
  const store = new ImageStore(root).init();
  const spool = store.tmpPath('stdin');
  try {
    await pipeline(stdin, fs.createWriteStream(spool, { flags: 'wx', mode: 0o600 }));
    if (fs.statSync(spool).size === 0) throw new UserError('requested load from stdin, but stdin is empty');
    return await loadArchive(root, spool, 'stdin');
  } finally {
    fs.rmSync(spool, { force: true });
  }
}

export async function loadArchive(root: string, input: string, shownAs = input): Promise<Loaded[]> {
  const store = new ImageStore(root).init();
  const st = fs.statSync(input, { throwIfNoEntry: false });
  if (!st) throw new UserError(`open ${input}: no such file or directory`);
  let tmp: string | undefined;
  const lease = await store.lease([]);
  try {
    let src: Source;
    if (st.isDirectory()) {
      src = dirSource(input);
    } else {
      let file = input;
      const head = headOf(input);
      if (isGzip(head)) {
        tmp = store.tmpPath('load');
        try {
          await pipeline(fs.createReadStream(input), createGunzip(), fs.createWriteStream(tmp, { flags: 'wx' }));
        } catch (e) {
          throw new UserError(`${shownAs}: not a valid gzip file: ${(e as Error).message}`);
        }
        file = tmp;
      } else if (isZstd(head)) {
        throw new UserError(`${shownAs}: zstd-compressed archives are not supported (decompress it first)`);
      }
      src = tarSource(file, shownAs);
    }
    if (src.has('manifest.json')) return await loadDockerArchive(store, lease, src);
    if (src.has('index.json')) return await loadOciLayout(store, lease, src);
    throw new UserError(`${shownAs}: neither a docker-archive (no manifest.json) nor an OCI layout (no index.json)`);
  } catch (e) {
    lease.release();
    await store.gc();
    if (e instanceof UserError) throw e;
    throw new UserError(`load ${shownAs}: ${errnoMessage(e)}`);
  } finally {
    lease.release();
    if (tmp) fs.rmSync(tmp, { force: true });
  }
}
