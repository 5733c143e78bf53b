/**
 * `tsctl save`: images as a docker-archive, the format `docker save` writes
 * and `docker load` / `tsctl load` read:
 *
 *   <config hex>.json          each image's config blob
 *   <blob hex>/layer.tar       each layer blob, as stored (a gzip layer stays
 *                              gzip: docker load and tsctl load decompress it)
 *   manifest.json              [{ Config, RepoTags, Layers }]
 *   repositories               the legacy name → top layer map older loaders read
 *
 * Written to a temporary file beside the output and renamed when complete,
 * so a failed save leaves no half-written archive.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { UserError, errnoMessage } from '../../errors.js';
import { familiarName, familiarString, parseReference } from './reference.js';
import { ImageStore, type StoredImage } from './store.js';

const BLOCK = 512;

/** Writes `value` as a tar numeric field: octal, or base-256 when it does not fit. */
function numField(buf: Buffer, off: number, len: number, value: number): void {
  const octal = value.toString(8);
  if (octal.length <= len - 1) {
    buf.write(`${octal.padStart(len - 1, '0')}\0`, off, len, 'ascii');
    return;
  }
  let v = BigInt(value);
  for (let i = off + len - 1; i > off; i--) {
    buf[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  buf[off] = 0x80;
}

/** A ustar header for a regular file (mode 0644) or directory. */
export function tarHeader(name: string, size: number, type: 'file' | 'dir' = 'file', mtime = 0): Buffer {
  const h = Buffer.alloc(BLOCK);
  let prefix = '';
  let base = name;
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    prefix = name.slice(0, cut);
    base = name.slice(cut + 1);
    if (cut <= 0 || Buffer.byteLength(base) > 100 || Buffer.byteLength(prefix) > 155) throw new Error(`tar: name too long: ${name}`);
  }
  h.write(base, 0, 100, 'utf8');
  numField(h, 100, 8, type === 'dir' ? 0o755 : 0o644);
  numField(h, 108, 8, 0);
  numField(h, 116, 8, 0);
  numField(h, 124, 12, type === 'dir' ? 0 : size);
  numField(h, 136, 12, mtime);
  h.write('        ', 148, 8, 'ascii');
  h.write(type === 'dir' ? '5' : '0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8, 'ascii');
  return h;
}

function padding(size: number): Buffer {
  return Buffer.alloc((BLOCK - (size % BLOCK)) % BLOCK);
}

type Member = { name: string; dir: true } | { name: string; data: Buffer } | { name: string; file: string; size: number };

async function* tarStream(members: Member[]): AsyncGenerator<Buffer> {
  const mtime = Math.floor(Date.now() / 1000);
  for (const m of members) {
    if ('dir' in m) {
      yield tarHeader(`${m.name}/`, 0, 'dir', mtime);
    } else if ('data' in m) {
      yield tarHeader(m.name, m.data.length, 'file', mtime);
      yield m.data;
      yield padding(m.data.length);
    } else {
      yield tarHeader(m.name, m.size, 'file', mtime);
      let n = 0;
      for await (const chunk of fs.createReadStream(m.file, { highWaterMark: 1 << 20 })) {
        n += (chunk as Buffer).length;
        yield chunk as Buffer;
      }
      if (n !== m.size) throw new UserError(`${m.file} changed size while being saved`);
      yield padding(m.size);
    }
  }
  yield Buffer.alloc(BLOCK * 2);
}

/** What the archive holds: members, in docker save's order (blobs, then manifest.json). */
export function archiveMembers(store: ImageStore, refs: string[]): Member[] {
  const byId = new Map<string, { image: StoredImage; tags: Set<string> }>();
  for (const ref of refs) {
    const image = store.resolve(ref);
    const e = byId.get(image.id) ?? { image, tags: new Set<string>() };
    byId.set(image.id, e);
    // a name saves that name; an id saves every name the image has (as docker does)
    const isId = /^(sha256:)?[a-f0-9]{1,64}$/.test(ref) && image.id.slice(7).startsWith(ref.replace(/^sha256:/, ''));
    let named: string | undefined;
    if (!isId) {
      const r = parseReference(ref);
      if (!r.digest) named = familiarString(r);
    }
    if (named) e.tags.add(named);
    else for (const n of image.names) e.tags.add(familiarString(parseReference(n)));
  }
  const members: Member[] = [];
  const added = new Set<string>();
  const manifest: { Config: string; RepoTags: string[] | null; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  for (const { image, tags } of byId.values()) {
    const config = `${image.id.slice(7)}.json`;
    if (!added.has(config)) members.push({ name: config, data: store.readBlob(image.id) });
    added.add(config);
    const layers: string[] = [];
    for (const l of image.layers) {
      const hex = l.digest.slice(7);
      const name = `${hex}/layer.tar`;
      layers.push(name);
      if (added.has(name)) continue;
      added.add(name);
      const file = store.blobPath(l.digest);
      const st = fs.statSync(file, { throwIfNoEntry: false });
      if (!st) throw new UserError(`layer ${l.digest} of ${image.id} is missing from the store`);
      members.push({ name: hex, dir: true }, { name, file, size: st.size });
    }
    manifest.push({ Config: config, RepoTags: tags.size ? [...tags] : null, Layers: layers });
    const top = image.layers[image.layers.length - 1];
    for (const t of tags) {
      const r = parseReference(t);
      if (top && r.tag) (repositories[familiarName(r)] ??= {})[r.tag] = top.digest.slice(7);
    }
  }
  members.push({ name: 'manifest.json', data: Buffer.from(`${JSON.stringify(manifest)}\n`) });
  if (Object.keys(repositories).length) members.push({ name: 'repositories', data: Buffer.from(`${JSON.stringify(repositories)}\n`) });
  return members;
}

/** Saves `refs` to `output` (atomically), or to stdout when `output` is undefined. */
export async function saveImages(root: string, refs: string[], output?: string): Promise<void> {
  const store = new ImageStore(root);
  const members = archiveMembers(store, refs);
  if (!output) {
    await pipeline(tarStream(members), process.stdout);
    return;
  }
  const dir = path.dirname(path.resolve(output));
  const tmp = path.join(dir, `.${path.basename(output)}.tmp-${process.pid}`);
  try {
    await pipeline(tarStream(members), fs.createWriteStream(tmp, { flags: 'wx', mode: 0o644 }));
    fs.renameSync(tmp, output);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    if (e instanceof UserError) throw e;
    throw new UserError(`save: ${output}: ${errnoMessage(e)}`);
  }
}
