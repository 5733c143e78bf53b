/**
 * Volumes: bind mounts of host paths, named volumes in
 * <root>/volumes/<name>/_data (made on first use, kept until removed), and
 * anonymous volumes (a random 64-hex name) for `-v /path` and for the image's
 * Volumes, removed with the container by `rm -v` and `--rm`.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { cleanPath, type VolumeSpec } from './flags.js';
import type { ContainerRecord, VolumeMount } from './store.js';

export const volumeData = (root: string, name: string): string => path.join(root, 'volumes', name, '_data');

/** Turns -v specs (and the image's Volumes not covered by one) into mounts, making what is missing. */
export function prepareVolumes(root: string, specs: VolumeSpec[], imageVolumes: string[]): VolumeMount[] {
  const out: VolumeMount[] = [];
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.destination)) throw new UserError(`Duplicate mount point: ${s.destination}`, 125);
    seen.add(s.destination);
  }
  const anon = imageVolumes.map((d) => cleanPath(path.posix.join('/', d))).filter((d) => !seen.has(d));
  const all: VolumeSpec[] = [...specs, ...anon.map((destination) => ({ kind: 'anonymous' as const, destination, readOnly: false }))];
  for (const s of all) {
    if (s.kind === 'bind') {
      // Docker makes a missing host directory for -v
      fs.mkdirSync(s.source, { recursive: true });
      out.push({ source: s.source, destination: s.destination, readOnly: s.readOnly });
    } else {
      const name = s.kind === 'named' ? s.name : randomBytes(32).toString('hex');
      const data = volumeData(root, name);
      fs.mkdirSync(data, { recursive: true });
      out.push({ source: data, destination: s.destination, readOnly: s.readOnly, volume: name, anonymous: s.kind === 'anonymous' });
    }
  }
  return out;
}

export function removeAnonymousVolumes(root: string, rec: ContainerRecord): void {
  for (const m of rec.hostConfig.mounts) {
    if (m.anonymous && m.volume) fs.rmSync(path.join(root, 'volumes', m.volume), { recursive: true, force: true });
  }
}
