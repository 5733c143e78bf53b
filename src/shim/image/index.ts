/**
 * The image side of the shim, as the other parts use it: find an image by
 * what a user typed (pulling it first when `docker run` would), its config
 * and its unpacked layers.
 */
import { Progress } from './progress.js';
import { type PullOptions, pullImage } from './pull.js';
import { ensureSnapshots } from './snapshot.js';
import { ImageStore, type StoredImage } from './store.js';
import type { ImageConfig } from './types.js';

export { ImageStore, chainIds, digestOf, type StoredImage } from './store.js';
export { familiarString, formatReference, parseReference, type Reference } from './reference.js';
export { pullImage, type PullOptions } from './pull.js';
export { Progress, humanSize } from './progress.js';
export type { Descriptor, ImageConfig, ImageRecord, ImageRunConfig, LayerRecord, Manifest } from './types.js';

/**
 * Collects what nothing needs any more: call it after removing a container
 * (an image force-removed while that container used it goes now).
 */
export function collectGarbage(root: string): Promise<{ blobs: number; snapshots: number }> {
  return new ImageStore(root).gc();
}

export interface ResolvedImage {
  record: StoredImage;
  config: ImageConfig;
  /** the image's snapshot directories, topmost first (overlayfs lowerdir order) */
  lowers: string[];
}

/** The image `ref` (name, name@digest, id or id prefix) names; "No such image: REF" if the store has none. */
export async function resolveImage(root: string, ref: string): Promise<ResolvedImage> {
  const store = new ImageStore(root);
  const record = store.resolve(ref);
  return resolved(store, record);
}

async function resolved(store: ImageStore, record: StoredImage): Promise<ResolvedImage> {
  const config = store.config(record);
  // already unpacked at pull/load time: this only checks (and redoes a snapshot removed by hand)
  const lowers = await ensureSnapshots(store.root, (d) => store.blobPath(d), record.layers);
  return { record, config, lowers };
}

/**
 * `docker run`'s rule: use the local image, or pull it when the store has
 * none (progress on stderr, as `docker run` prints "Unable to find image").
 */
export async function ensureImage(root: string, ref: string, opts: PullOptions & { pull?: 'missing' | 'always' | 'never' } = {}): Promise<ResolvedImage> {
  const store = new ImageStore(root);
  const policy = opts.pull ?? 'missing';
  const have = policy === 'always' ? undefined : store.find(ref);
  if (have) return resolved(store, have);
  if (policy === 'never') return resolveImage(root, ref);
  if (policy === 'missing') process.stderr.write(`Unable to find image '${ref}' locally\n`);
  const { image } = await pullImage(root, ref, { progress: opts.progress ?? new Progress(process.stderr), ...opts });
  return resolved(store, image);
}
