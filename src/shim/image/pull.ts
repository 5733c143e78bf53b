/**
 * `tsctl pull`: reference → manifest (an index resolved to linux/amd64) →
 * config → layers fetched concurrently → every layer unpacked into its
 * snapshot → the record stored. Docker unpacks at pull time, and so does
 * this: the record appears only when the image is ready to run.
 *
 * Failure at any step leaves the store as it was: the pull's lease is
 * dropped and gc removes whatever blobs and snapshots it had added.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { Progress } from './progress.js';
import { familiarString, formatReference, parseReference, repository } from './reference.js';
import { checkManifest, isIndexMediaType, type Platform, RegistryClient, type RegistryOptions, selectManifest } from './registry.js';
import { ensureSnapshots } from './snapshot.js';
import { ImageStore, layerRecords, type StoredImage } from './store.js';
import type { ImageRecord } from './types.js';
import { MEDIA, type Descriptor, type ImageConfig, type ImageIndex, type Manifest } from './types.js';

export interface PullOptions extends RegistryOptions {
  /** progress display (default: on stderr, a TTY display when it is one) */
  progress?: Progress;
  /** the platform an index is resolved to (default linux/amd64) */
  platform?: Platform;
  /** layers fetched at once (default 4) */
  concurrency?: number;
}

/** Runs `fn` over `items`, at most `limit` at once; the first failure rejects (the rest are let finish). */
export async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failed: unknown;
  const worker = async () => {
    while (next < items.length && failed === undefined) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (e) {
        failed ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failed !== undefined) throw failed;
}

const IMAGE_MANIFESTS: string[] = [MEDIA.ociManifest, MEDIA.dockerManifest];

export interface PullResult {
  image: StoredImage;
  /** the digest Docker prints: of what the tag names (the index, for a multi-platform image) */
  digest: string;
  /** false when the store already had the image and every blob */
  downloaded: boolean;
}

export async function pullImage(root: string, refText: string, opts: PullOptions = {}): Promise<PullResult> {
  const ref = parseReference(refText);
  const store = new ImageStore(root).init();
  const progress = opts.progress ?? new Progress();
  const client = new RegistryClient(ref.domain, ref.path, opts);
  try {
    if (!/[:@][^/]*$/.test(refText)) progress.line(`Using default tag: ${ref.tag}`);
    progress.line(`${ref.tag ?? ref.digest}: Pulling from ${ref.path}`);
    const top = await client.manifest(ref.digest ?? ref.tag!);
    let fetched = top;
    if (isIndexMediaType(top.mediaType)) {
      const index = parseJson<ImageIndex>(top.body, `image index ${top.digest}`);
      const desc = selectManifest(index, opts.platform);
      fetched = await client.manifest(desc.digest);
      if (desc.size !== fetched.body.length) throw new UserError(`manifest ${desc.digest}: the index says ${desc.size} bytes, it has ${fetched.body.length}`);
    }
    if (!IMAGE_MANIFESTS.includes(fetched.mediaType)) throw new UserError(`manifest ${fetched.digest}: unsupported media type ${fetched.mediaType}`);
    const manifest = checkManifest(parseJson<Manifest>(fetched.body, `manifest ${fetched.digest}`), `manifest ${fetched.digest}`);
    const blobs = [fetched.digest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
    const lease = await store.lease(blobs);
    const existing = store.get(manifest.config.digest);
    let downloaded = false;
    try {
      if (!store.hasBlob(manifest.config.digest, manifest.config.size)) {
        downloaded = true;
        await client.blob(manifest.config, () => store.writer(manifest.config));
      }
      const config = parseJson<ImageConfig>(store.readBlob(manifest.config.digest), `image config ${manifest.config.digest}`);
      const layers = layerRecords(manifest.layers, config);
      await lease.add([], layers.map((l) => l.chainId));
      const seen = new Set<string>();
      const unique: Descriptor[] = manifest.layers.filter((l) => !seen.has(l.digest) && seen.add(l.digest));
      for (const l of unique) progress.add(l.digest.slice(7), l.size, store.hasBlob(l.digest, l.size) ? 'Already exists' : 'Waiting');
      // Layers unpack bottom first as soon as each has arrived (Docker's
      // order), overlapping the downloads still running above them.
      const arrived = new Map(unique.map((l) => [l.digest, deferred()]));
      let cancelled = false;
      const downloads = pool(unique, opts.concurrency ?? 4, async (l) => {
        const ready = arrived.get(l.digest)!;
        try {
          if (cancelled) throw new Cancelled();
          if (!store.hasBlob(l.digest, l.size)) {
            downloaded = true;
            const id = l.digest.slice(7);
            progress.set(id, 'Downloading');
            await client.blob(l, () => store.writer(l), (n) => progress.bytes(id, n));
            progress.set(id, 'Download complete');
          }
          ready.resolve();
        } catch (e) {
          ready.reject(e);
          throw e;
        }
      });
      const unpacks = (async () => {
        for (let i = 0; i < layers.length; i++) {
          const l = layers[i]!;
          await arrived.get(l.digest)!.promise;
          const id = l.digest.slice(7);
          const fresh = !fs.existsSync(path.join(store.root, 'snapshots', l.chainId.slice(7)));
          if (fresh) progress.set(id, 'Extracting');
          await ensureSnapshots(store.root, (d) => store.blobPath(d), layers.slice(0, i + 1));
          if (fresh) progress.set(id, 'Pull complete');
        }
      })();
      const [d, u] = await Promise.allSettled([downloads, unpacks.finally(() => (cancelled = true))]);
      // the first failure, once nothing is writing any more (gc runs next)
      if (d.status === 'rejected' && !(d.reason instanceof Cancelled)) throw d.reason;
      if (u.status === 'rejected') throw u.reason;
      store.putBlob(fetched.body, { digest: fetched.digest, size: fetched.body.length });
      const image = await finishImport(store, {
        id: manifest.config.digest,
        names: ref.tag !== undefined ? [formatReference(ref)] : [],
        manifestDigest: fetched.digest,
        manifestMediaType: fetched.mediaType,
        repoDigests: [`${repository(ref)}@${top.digest}`],
        layers,
        size: manifest.layers.reduce((n, l) => n + l.size, 0),
        added: new Date().toISOString(),
      }, progress);
      progress.finish();
      downloaded ||= !existing;
      progress.line(`Digest: ${top.digest}`);
      const shown = familiarString({ ...ref, digest: ref.tag !== undefined ? undefined : ref.digest });
      progress.line(downloaded ? `Status: Downloaded newer image for ${shown}` : `Status: Image is up to date for ${shown}`);
      return { image, digest: top.digest, downloaded };
    } catch (e) {
      progress.finish();
      lease.release();
      await store.gc();
      throw e;
    } finally {
      lease.release();
    }
  } finally {
    client.close();
  }
}

/**
 * The end of every import (pull, load): each layer unpacked into its
 * snapshot, then the record stored. The caller holds a lease on the blobs
 * and chains; `shown` are the progress rows to move through Extracting.
 */
export async function finishImport(store: ImageStore, record: ImageRecord, progress: Progress | undefined, shown: string[] = []): Promise<StoredImage> {
  for (const id of shown) progress?.set(id, 'Extracting');
  const lowers = await ensureSnapshots(store.root, (d) => store.blobPath(d), record.layers);
  for (const id of shown) progress?.set(id, 'Pull complete');
  return store.addImage({ ...record, unpackedSize: treeBytes(lowers) });
}

/** Bytes of files and link targets under the snapshot dirs (bounded walk): Docker's image SIZE. */
export function treeBytes(dirs: string[]): number {
  let n = 0;
  let budget = 2_000_000;
  const stack = dirs.map((d) => ({ dir: d, depth: 0 }));
  while (stack.length && budget > 0) {
    const { dir, depth } = stack.pop()!;
    let entries: fs.Dirent[] = [];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      continue; // a size is not worth failing a pull over
    }
    for (const e of entries.slice(0, budget)) {
      budget--;
      const p = path.join(dir, e.name);
      if (e.isDirectory() && depth < 256) stack.push({ dir: p, depth: depth + 1 });
      else if (e.isFile() || e.isSymbolicLink()) n += fs.lstatSync(p, { throwIfNoEntry: false })?.size ?? 0;
    }
  }
  return n;
}

/** A layer not fetched because unpacking already failed. */
class Cancelled extends Error {}

interface Deferred {
  promise: Promise<void>;
  resolve(): void;
  reject(e: unknown): void;
}

function deferred(): Deferred {
  const d = {} as Deferred;
  d.promise = new Promise<void>((resolve, reject) => Object.assign(d, { resolve, reject }));
  d.promise.catch(() => undefined); // awaited by the unpacker, or not at all when it failed first
  return d;
}

export function parseJson<T>(body: Buffer, what: string): T {
  try {
    return JSON.parse(body.toString('utf8')) as T;
  } catch {
    throw new UserError(`${what}: not valid JSON`);
  }
}
