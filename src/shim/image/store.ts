/**
 * The content-addressed image store (layout in types.ts).
 *
 * Blobs: written to <root>/tmp/<owner>-<n> (same filesystem), hashed while
 * written, checked against the expected digest and size, and only then
 * renamed into blobs/sha256/<hex>: a blob that is visible is complete and
 * correct, whatever was killed when. Two pulls writing the same blob rename
 * identical content over each other, which is harmless.
 *
 * images/index.json: read-modify-written only under the store lock (a kernel
 * flock, lock.ts) and replaced by rename, so readers never see half of it.
 *
 * Garbage: rmi deletes records; gc() (also under the lock) then removes
 * blobs and snapshots that no record, no container and no in-flight pull
 * needs. An in-flight pull announces what it uses with a lease
 * (<root>/tmp/leases/<owner>.json), written under the lock before it looks
 * at what the store already has, so gc can never delete a blob between the
 * pull's "it is there" and its record. Leases and temp files of dead
 * processes are garbage too.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { withLock } from './lock.js';
import { DIGEST, familiarName, familiarString, formatReference, parseReference, repository, type Reference } from './reference.js';
import type { ImageConfig, ImageRecord, LayerRecord } from './types.js';

/** What a blob must be: its digest and size (no digest: whatever it hashes to, e.g. a layer of an archive). */
export interface Expect {
  digest?: string;
  size?: number;
}

/**
 * A record in the index; `removed` ones were force-removed while a container
 * used them. `unpackedSize`: bytes of the unpacked layers (what docker shows as SIZE).
 */
export type StoredImage = ImageRecord & { removed?: boolean; unpackedSize?: number };

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export function digestOf(data: Buffer | string): string {
  return `sha256:${sha256Hex(data)}`;
}

/** This process's identity in lease and temp names: pid plus start time (a reused pid is not us). */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}
const OWNER = `${process.pid}.${startTime(process.pid) ?? '0'}`;

function ownerAlive(owner: string): boolean {
  const [pid, start] = owner.split('.');
  return !!pid && /^\d+$/.test(pid) && startTime(Number(pid)) === start;
}

let tmpSeq = 0;

/** Streams a blob into the store: write(), then commit() (verifies, renames) or abort(). */
export class BlobWriter {
  readonly tmp: string;
  private fd: number;
  private hash = createHash('sha256');
  private n = 0;
  private closed = false;

  constructor(
    private readonly store: ImageStore,
    readonly expect: Expect,
  ) {
    this.tmp = store.tmpPath('blob');
    this.fd = fs.openSync(this.tmp, 'wx', 0o644);
  }

  get written(): number {
    return this.n;
  }

  write(chunk: Buffer): void {
    if (this.expect.size !== undefined && this.n + chunk.length > this.expect.size) {
      throw new UserError(`blob ${this.expect.digest}: more data than the ${this.expect.size} bytes its descriptor says`);
    }
    this.hash.update(chunk);
    let off = 0;
    while (off < chunk.length) off += fs.writeSync(this.fd, chunk, off);
    this.n += chunk.length;
  }

  private got: string | undefined;

  /** The digest of what was written (finishes the hash: write no more). */
  digest(): string {
    this.close();
    this.got ??= `sha256:${this.hash.digest('hex')}`;
    return this.got;
  }

  /** Verifies size and digest and renames the blob in; throws (and removes the temp file) on a mismatch. Returns the digest. */
  commit(): string {
    try {
      const got = this.digest();
      if (this.expect.size !== undefined && this.n !== this.expect.size) {
        throw new UserError(`blob ${this.expect.digest ?? got}: truncated: got ${this.n} of ${this.expect.size} bytes`);
      }
      if (this.expect.digest !== undefined && got !== this.expect.digest) throw new UserError(`blob ${this.expect.digest}: digest mismatch: the content is ${got}`);
      fs.renameSync(this.tmp, this.store.blobPath(got));
      return got;
    } catch (e) {
      fs.rmSync(this.tmp, { force: true });
      throw e;
    }
  }

  abort(): void {
    this.close();
    fs.rmSync(this.tmp, { force: true });
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    fs.closeSync(this.fd);
  }
}

/** The images using `imageId` that are stopping its removal: containers naming it in container.json. */
export interface ContainerUse {
  id: string;
  imageId: string;
}

export class ImageStore {
  readonly blobDir: string;
  readonly indexFile: string;
  readonly tmpDir: string;
  readonly leaseDir: string;

  constructor(readonly root: string) {
    this.blobDir = path.join(root, 'blobs', 'sha256');
    this.indexFile = path.join(root, 'images', 'index.json');
    this.tmpDir = path.join(root, 'tmp');
    this.leaseDir = path.join(root, 'tmp', 'leases');
  }

  /** Makes the store's directories (idempotent). */
  init(): this {
    for (const d of [this.blobDir, path.dirname(this.indexFile), this.leaseDir, path.join(this.root, 'snapshots')]) {
      fs.mkdirSync(d, { recursive: true, mode: 0o700 });
    }
    return this;
  }

  blobPath(digest: string): string {
    if (!DIGEST.test(digest)) throw new UserError(`invalid digest ${JSON.stringify(digest)}`);
    return path.join(this.blobDir, digest.slice(7));
  }

  hasBlob(digest: string, size?: number): boolean {
    const st = fs.statSync(this.blobPath(digest), { throwIfNoEntry: false });
    return !!st && st.isFile() && (size === undefined || st.size === size);
  }

  readBlob(digest: string): Buffer {
    try {
      return fs.readFileSync(this.blobPath(digest));
    } catch {
      throw new UserError(`blob ${digest} is missing from the store ${this.root}`);
    }
  }

  readJson<T>(digest: string): T {
    try {
      return JSON.parse(this.readBlob(digest).toString('utf8')) as T;
    } catch (e) {
      if (e instanceof UserError) throw e;
      throw new UserError(`blob ${digest} in ${this.root} is not valid JSON`);
    }
  }

  /** A fresh path in the store's temp dir, named after this process (gc removes a dead one's). */
  tmpPath(kind: string): string {
    this.init();
    tmpSeq += 1;
    return path.join(this.tmpDir, `${OWNER}-${kind}-${tmpSeq}-${randomBytes(4).toString('hex')}`);
  }

  writer(expect: Expect = {}): BlobWriter {
    this.init();
    return new BlobWriter(this, expect);
  }

  /** Stores `data` (verified against `expect` when given); returns its digest. */
  putBlob(data: Buffer, expect?: Expect): string {
    const digest = expect?.digest ?? digestOf(data);
    if (this.hasBlob(digest, data.length) && digestOf(data) === digest) return digest;
    const w = this.writer({ digest, size: expect?.size ?? data.length });
    try {
      w.write(data);
    } catch (e) {
      w.abort();
      throw e;
    }
    w.commit();
    return digest;
  }

  // ---- the index

  lockFile(): string {
    this.init();
    return path.join(this.root, 'images', 'index.lock');
  }

  /** Runs `fn` holding the store lock (every change to index.json, leases and gc). */
  locked<T>(fn: () => T | Promise<T>): Promise<T> {
    return withLock(this.lockFile(), fn);
  }

  /** Every record, removed ones included. */
  readAll(): StoredImage[] {
    let text: string;
    try {
      text = fs.readFileSync(this.indexFile, 'utf8');
    } catch {
      return [];
    }
    try {
      const v = JSON.parse(text) as unknown;
      if (!Array.isArray(v)) throw new Error('not an array');
      return v as StoredImage[];
    } catch (e) {
      throw new UserError(`${this.indexFile}: corrupt image index: ${(e as Error).message}`);
    }
  }

  /** Images as users see them (force-removed ones still used by a container hidden). */
  list(): StoredImage[] {
    return this.readAll().filter((r) => !r.removed);
  }

  private writeAll(records: StoredImage[]): void {
    this.init();
    const tmp = this.tmpPath('index');
    const fd = fs.openSync(tmp, 'wx', 0o600);
    try {
      fs.writeSync(fd, `${JSON.stringify(records, null, 1)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.indexFile);
  }

  /** Changes the index under the lock: `fn` gets the records and returns what to write. */
  update<T>(fn: (records: StoredImage[]) => T): Promise<T> {
    return this.locked(() => {
      const records = this.readAll();
      const result = fn(records);
      this.writeAll(records);
      return result;
    });
  }

  /** The record for an image id "sha256:<hex>" (removed ones included), if any. */
  get(id: string): StoredImage | undefined {
    return this.readAll().find((r) => r.id === id);
  }

  /**
   * Finds an image the way `docker` does: a name (normalized, default tag
   * latest), a name@digest (by repo digest), a full "sha256:<hex>" id, or a
   * unique id prefix of at least one hex digit.
   */
  find(ref: string): StoredImage | undefined {
    const images = this.list();
    const idLike = /^(sha256:)?([a-f0-9]{1,64})$/.exec(ref);
    if (idLike) {
      const full = images.find((r) => r.id === `sha256:${idLike[2]}`);
      if (full) return full;
      if (!idLike[1]) {
        // a hex word may also be a name (docker.io/library/<hex>): names win over short prefixes
        const byName = this.findByName(images, ref);
        if (byName) return byName;
      }
      const matches = images.filter((r) => r.id.slice(7).startsWith(idLike[2]!));
      if (matches.length > 1) throw new UserError(`image id prefix ${ref} is ambiguous: ${matches.length} images match`);
      return matches[0];
    }
    return this.findByName(images, ref);
  }

  private findByName(images: StoredImage[], ref: string): StoredImage | undefined {
    let r: Reference;
    try {
      r = parseReference(ref);
    } catch {
      return undefined;
    }
    if (r.digest) {
      const want = `${repository(r)}@${r.digest}`;
      return images.find((i) => i.repoDigests.includes(want) || (i.manifestDigest === r.digest && i.names.some((n) => n.startsWith(`${repository(r)}:`))));
    }
    const want = formatReference(r);
    return images.find((i) => i.names.includes(want));
  }

  /** find(), or the UserError Docker gives: "No such image: REF". */
  resolve(ref: string): StoredImage {
    const r = this.find(ref);
    if (!r) throw new UserError(`No such image: ${ref}`);
    return r;
  }

  config(record: ImageRecord): ImageConfig {
    return this.readJson<ImageConfig>(record.id);
  }

  /**
   * Adds (or refreshes) an image: its names move to it from any other image
   * (a tag names one image), names and repo digests are merged with what it
   * had. Returns the stored record.
   */
  addImage(record: StoredImage): Promise<StoredImage> {
    return this.update((records) => {
      for (const other of records) {
        if (other.id === record.id) continue;
        const lost = other.names.filter((n) => record.names.includes(n));
        if (lost.length === 0) continue;
        other.names = other.names.filter((n) => !lost.includes(n));
        // replaced in that repository: its digest there is stale too (it becomes <none>, prunable)
        const repos = new Set(lost.map((n) => repository(parseReference(n))));
        other.repoDigests = other.repoDigests.filter((d) => !repos.has(repository(parseReference(d))));
      }
      let rec = records.find((r) => r.id === record.id);
      if (rec) {
        rec.names = [...new Set([...rec.names, ...record.names])];
        rec.repoDigests = [...new Set([...rec.repoDigests, ...record.repoDigests])];
        rec.manifestDigest = record.manifestDigest;
        rec.manifestMediaType = record.manifestMediaType;
        rec.layers = record.layers;
        rec.size = record.size;
        if (record.unpackedSize !== undefined) rec.unpackedSize = record.unpackedSize;
        delete rec.removed;
      } else {
        rec = { ...record };
        records.push(rec);
      }
      return structuredClone(rec);
    });
  }

  /** `tsctl tag SOURCE TARGET`: TARGET (normalized) names the image SOURCE finds. */
  async tag(source: string, target: string): Promise<string> {
    const name = formatReference(parseReference(target));
    if (parseReference(target).digest) throw new UserError(`refusing to create a tag with a digest reference: ${target}`);
    return this.update((records) => {
      const img = this.findIn(records, source);
      for (const r of records) r.names = r.names.filter((n) => n !== name);
      img.names.push(name);
      return name;
    });
  }

  private findIn(records: StoredImage[], ref: string): StoredImage {
    const found = this.resolve(ref);
    const img = records.find((r) => r.id === found.id);
    if (!img) throw new UserError(`No such image: ${ref}`);
    return img;
  }

  // ---- containers

  /** Containers of this store (<root>/containers/<cid>/container.json) and the image each uses. */
  containers(): ContainerUse[] {
    const dir = path.join(this.root, 'containers');
    let ids: string[];
    try {
      ids = fs.readdirSync(dir);
    } catch {
      return [];
    }
    const out: ContainerUse[] = [];
    for (const id of ids) {
      try {
        const c = JSON.parse(fs.readFileSync(path.join(dir, id, 'container.json'), 'utf8')) as { imageId?: unknown };
        if (typeof c.imageId === 'string') out.push({ id, imageId: c.imageId });
      } catch {
        /* being created or removed: not a user of any image yet */
      }
    }
    return out;
  }

  /**
   * `tsctl rmi [-f] REF`, Docker's rules. A name (tag or name@digest) is
   * untagged; untagging a repository's last tag also drops its digests; the
   * image goes with its last reference. An id with several names needs -f.
   * An image a container uses is refused unless -f; with -f its names go and
   * the record stays (hidden) until no container uses it, so the container's
   * layers stay. Returns the lines Docker prints (Untagged: / Deleted:).
   */
  async remove(ref: string, force: boolean): Promise<string[]> {
    const lines = await this.update((records) => {
      const out: string[] = [];
      const img = this.findIn(records, ref);
      const short = img.id.slice(7, 19);
      const users = this.containers().filter((c) => c.imageId === img.id);
      const conflict = (named: boolean) => {
        if (!users.length || force) return;
        const c = users[0]!.id.slice(0, 12);
        throw new UserError(
          named
            ? `conflict: unable to remove repository reference "${ref}" (must force) - container ${c} is using its referenced image ${short}`
            : `conflict: unable to delete ${short} (must be forced) - image is being used by container ${c}`,
        );
      };
      const untag = (refs: string[]) => {
        for (const n of refs) out.push(`Untagged: ${familiarString(parseReference(n))}`);
        img.names = img.names.filter((n) => !refs.includes(n));
        img.repoDigests = img.repoDigests.filter((n) => !refs.includes(n));
      };
      const named = this.namedReference(img, ref);
      if (named) {
        const repo = repository(parseReference(named));
        let refs = [named];
        // the last tag of a repository takes that repository's digests along
        if (!named.includes('@') && !img.names.some((n) => n !== named && repository(parseReference(n)) === repo)) {
          refs = [...refs, ...img.repoDigests.filter((d) => repository(parseReference(d)) === repo)];
        }
        if (img.names.length + img.repoDigests.length > refs.length) {
          untag(refs);
          return out;
        }
        conflict(true);
      } else {
        if (img.names.length > 1 && !force) {
          throw new UserError(`conflict: unable to delete ${short} (must be forced) - image is referenced in multiple repositories`);
        }
        conflict(false);
      }
      untag([...img.names, ...img.repoDigests]);
      if (users.length) {
        img.removed = true;
      } else {
        records.splice(records.indexOf(img), 1);
        out.push(`Deleted: ${img.id}`);
      }
      return out;
    });
    await this.gc();
    return lines;
  }

  /** The stored reference `ref` names on `img` (normalized), or undefined when `ref` is an id. */
  private namedReference(img: StoredImage, ref: string): string | undefined {
    if (/^(sha256:)?[a-f0-9]{1,64}$/.test(ref) && img.id.slice(7).startsWith(ref.replace(/^sha256:/, ''))) return undefined;
    let r: Reference;
    try {
      r = parseReference(ref);
    } catch {
      return undefined;
    }
    if (!r.digest) return formatReference(r);
    const byDigest = `${repository(r)}@${r.digest}`;
    return img.repoDigests.includes(byDigest) ? byDigest : undefined;
  }

  /**
   * `tsctl image prune`: removes dangling images (no name) no container
   * uses, then collects garbage. Returns the ids deleted and the bytes freed.
   */
  async prune(): Promise<{ deleted: string[]; bytes: number }> {
    const before = this.diskUsage();
    const deleted = await this.update((records) => {
      const used = new Set(this.containers().map((c) => c.imageId));
      // dangling: no name and no repo digest (an image pulled by digest is neither)
      const gone = records.filter((r) => r.names.length === 0 && r.repoDigests.length === 0 && !used.has(r.id));
      for (const r of gone) records.splice(records.indexOf(r), 1);
      return gone.filter((r) => !r.removed).map((r) => r.id);
    });
    await this.gc();
    return { deleted, bytes: Math.max(0, before - this.diskUsage()) };
  }

  /** Bytes in blobs/ (what prune reports as reclaimed). */
  private diskUsage(): number {
    let n = 0;
    for (const hex of safeReaddir(this.blobDir)) n += fs.statSync(path.join(this.blobDir, hex), { throwIfNoEntry: false })?.size ?? 0;
    return n;
  }

  // ---- leases and garbage

  /** Announces the blobs and chain ids an in-flight pull or load uses (see the file comment). */
  async lease(digests: string[], chainIds: string[] = []): Promise<Lease> {
    const lease = new Lease(this, path.join(this.leaseDir, `${OWNER}-${tmpSeq++}-${randomBytes(4).toString('hex')}.json`));
    await lease.add(digests, chainIds);
    return lease;
  }

  /**
   * Removes what nothing needs: blobs and snapshots of no record, no live
   * lease; force-removed records no container uses any more; temp files and
   * leases of dead processes. Returns what it removed (for tests).
   */
  gc(): Promise<{ blobs: number; snapshots: number }> {
    return this.locked(() => {
      const records = this.readAll();
      const used = new Set(this.containers().map((c) => c.imageId));
      const keep = records.filter((r) => !r.removed || used.has(r.id));
      if (keep.length !== records.length) this.writeAll(keep);
      const blobs = new Set<string>();
      const chains = new Set<string>();
      for (const r of keep) {
        blobs.add(r.id);
        blobs.add(r.manifestDigest);
        for (const l of r.layers) {
          blobs.add(l.digest);
          chains.add(l.chainId);
        }
      }
      let tmpNames: string[] = [];
      try {
        tmpNames = fs.readdirSync(this.tmpDir);
      } catch {
        /* none */
      }
      for (const name of tmpNames) {
        if (name === 'leases') continue;
        if (!ownerAlive(name.split('-')[0]!)) fs.rmSync(path.join(this.tmpDir, name), { recursive: true, force: true });
      }
      let leaseNames: string[] = [];
      try {
        leaseNames = fs.readdirSync(this.leaseDir);
      } catch {
        /* none */
      }
      for (const name of leaseNames) {
        const file = path.join(this.leaseDir, name);
        if (!ownerAlive(name.split('-')[0]!)) {
          fs.rmSync(file, { force: true });
          continue;
        }
        try {
          const l = JSON.parse(fs.readFileSync(file, 'utf8')) as { digests: string[]; chainIds: string[] };
          for (const d of l.digests) blobs.add(d);
          for (const c of l.chainIds) chains.add(c);
        } catch {
          /* being written: its owner holds no lock now, so it is complete — unreadable means not ours to trust */
        }
      }
      let nBlobs = 0;
      for (const hex of safeReaddir(this.blobDir)) {
        if (!blobs.has(`sha256:${hex}`)) {
          fs.rmSync(path.join(this.blobDir, hex), { force: true });
          nBlobs++;
        }
      }
      let nSnaps = 0;
      const snapDir = path.join(this.root, 'snapshots');
      for (const hex of safeReaddir(snapDir)) {
        if (!/^[a-f0-9]{64}$/.test(hex) || chains.has(`sha256:${hex}`)) continue;
        fs.rmSync(path.join(snapDir, hex), { recursive: true, force: true });
        nSnaps++;
      }
      return { blobs: nBlobs, snapshots: nSnaps };
    });
  }
}

function safeReaddir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

/** What one in-flight pull or load protects from gc; release() when its record is stored (or it failed). */
export class Lease {
  private digests = new Set<string>();
  private chainIds = new Set<string>();

  constructor(
    private readonly store: ImageStore,
    readonly file: string,
  ) {}

  /** Adds to the lease (under the store lock: see the file comment). */
  add(digests: string[], chainIds: string[] = []): Promise<void> {
    return this.store.locked(() => {
      for (const d of digests) this.digests.add(d);
      for (const c of chainIds) this.chainIds.add(c);
      const tmp = `${this.file}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify({ digests: [...this.digests], chainIds: [...this.chainIds] }));
      fs.renameSync(tmp, this.file);
    });
  }

  release(): void {
    fs.rmSync(this.file, { force: true });
  }
}

/** The OCI chain ids of a list of diff ids: ChainID(L0) = DiffID(L0), ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : digestOf(`${out[out.length - 1]} ${d}`));
  return out;
}

/** LayerRecords from manifest layer descriptors and the config's diff ids. */
export function layerRecords(layers: { digest: string; mediaType: string; size: number }[], config: ImageConfig): LayerRecord[] {
  const diffIds = config.rootfs?.diff_ids;
  if (!Array.isArray(diffIds) || diffIds.length !== layers.length) {
    throw new UserError(`image config lists ${Array.isArray(diffIds) ? diffIds.length : 'no'} diff ids for ${layers.length} layers`);
  }
  for (const d of diffIds) if (!DIGEST.test(d)) throw new UserError(`image config: invalid diff id ${JSON.stringify(d)}`);
  const chains = chainIds(diffIds);
  return layers.map((l, i) => ({ digest: l.digest, mediaType: l.mediaType, size: l.size, diffId: diffIds[i]!, chainId: chains[i]! }));
}

/** The names Docker shows for a record: familiar "repo:tag" strings. */
export function repoTags(r: ImageRecord): string[] {
  return r.names.map((n) => familiarString(parseReference(n)));
}

export function repoDigestNames(r: ImageRecord): string[] {
  return r.repoDigests.map((n) => {
    const ref = parseReference(n);
    return `${familiarName(ref)}@${ref.digest}`;
  });
}
