/**
 * Every call the container side makes into the image side, in one place:
 * finding (or pulling) an image, its root filesystem for a container, the
 * image's part of config.json, and `diff`.
 */
import { UserError } from '../../errors.js';
import type { Spec } from '../../oci/types.js';
import { ensureImage, ImageStore } from '../image/index.js';
import { type Change, diffContainer, ensureSnapshots, mountContainerRootfs, removeContainerRootfs, unmountContainerRootfs } from '../image/snapshot.js';
import { commandLine, mergeEnv, resolveUser, specFromImage } from '../image/spec.js';
import type { ImageConfig } from '../image/types.js';
import type { ContainerRecord } from './store.js';

export interface ContainerImage {
  id: string;
  config: ImageConfig;
  chainIds: string[];
}

/** The image for `create`/`run`: local, else pulled (as `docker run` does). */
export async function resolveImage(root: string, ref: string): Promise<ContainerImage> {
  const r = await ensureImage(root, ref);
  return { id: r.record.id, config: r.config, chainIds: r.record.layers.map((l) => l.chainId) };
}

function imageOf(root: string, rec: ContainerRecord) {
  const store = new ImageStore(root);
  const image = store.get(rec.imageId);
  if (!image) throw new UserError(`container ${rec.id}: its image ${rec.imageId} is no longer in the store`);
  return { store, image };
}

export async function mountRootfs(root: string, rec: ContainerRecord): Promise<{ rootfs: string; kind: string }> {
  const { store, image } = imageOf(root, rec);
  const lowers = await ensureSnapshots(root, (d) => store.blobPath(d), image.layers);
  return mountContainerRootfs(root, rec.id, lowers);
}

export async function unmountRootfs(root: string, cid: string): Promise<void> {
  await unmountContainerRootfs(root, cid);
}

/** The writable layer goes with the container. */
export async function removeRootfs(root: string, cid: string): Promise<void> {
  await removeContainerRootfs(root, cid);
}

/** The image's config.json for this container's overrides (the container's own part is config.ts). */
export async function runtimeSpec(root: string, rec: ContainerRecord, rootfs: string): Promise<Spec> {
  const { store, image } = imageOf(root, rec);
  // the command line and environment were settled at create (inspect shows them): passed as final
  return specFromImage(store.config(image), rootfs, {
    entrypoint: [rec.path],
    cmd: rec.args,
    env: rec.config.env,
    workingDir: rec.config.workingDir || undefined,
    user: rec.config.user,
    hostname: rec.config.hostname,
    tty: rec.config.tty,
    labels: rec.config.labels,
  }).spec;
}

/** The argv `docker create` settles on: Entrypoint and Cmd under the override rules. */
export function containerCommand(config: ImageConfig, entrypoint: string | undefined, cmd: string[]): string[] {
  return commandLine(config.config?.Entrypoint, config.config?.Cmd, { entrypoint, cmd });
}

/** The container's environment: the image's, then --env-file's, then -e's, each replacing keys. */
export function containerEnv(config: ImageConfig, user: string[]): string[] {
  return mergeEnv(config.config?.Env ?? [], user);
}

/** `exec -u`: the runtime wants numbers; names are looked up in the container's own files. */
export function execUser(rootfs: string, spec: string): string {
  const u = resolveUser(rootfs, spec);
  return `${u.uid}:${u.gid}`;
}

export function containerChanges(root: string, cid: string): Change[] {
  return diffContainer(root, cid);
}
