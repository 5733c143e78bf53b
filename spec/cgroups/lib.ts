/**
 * Helpers for the cgroup specs: the host's cgroup layout, where a
 * container's cgroup files are (from tsrun's own state.json), and a time
 * scale so the same specs run on this host and in the (15-50x slower) pure
 * cgroup v2 VM (scripts/test-cgroup-v2.sh sets TSRUN_SPEC_SLOW there).
 */
import fs from 'node:fs';
import path from 'node:path';
import { detectLayout, type Layout } from '../../src/cgroups/detect.js';
import { type BundleConfig, rootFor } from '../lib/harness.js';

export const SLOW = Math.max(1, Number(process.env.TSRUN_SPEC_SLOW ?? '') || 1);
/** A duration on this host, scaled for a slow machine. */
export const ms = (n: number): number => Math.round(n * SLOW);

function layoutOrUndefined(): Layout | undefined {
  try {
    return detectLayout();
  } catch {
    return undefined;
  }
}
export const layout = layoutOrUndefined();
export const isV2 = layout?.mode === 'v2';

export const skip =
  process.getuid?.() !== 0 ? 'needs root'
  : !layout ? 'no cgroup filesystem'
  : false;

/** The container's cgroup directory per hierarchy, as tsrun recorded it. */
export function cgroupPaths(id: string, runtimeName = 'tsrun'): Record<string, string> {
  if (runtimeName !== 'tsrun') throw new Error('only tsrun records its cgroup paths');
  const state = JSON.parse(fs.readFileSync(path.join(rootFor('tsrun'), id, 'state.json'), 'utf8')) as { cgroups?: { paths: Record<string, string> } };
  if (!state.cgroups) throw new Error(`container ${id} has no cgroups in its state`);
  return state.cgroups.paths;
}

/** The directory holding `controller`'s files for container `id` (the v2 directory on a pure v2 host). */
export function cgroupDir(id: string, controller: string): string {
  const p = cgroupPaths(id);
  const dir = isV2 ? p.unified : p[controller];
  if (!dir) throw new Error(`container ${id}: no ${controller} hierarchy`);
  return dir;
}

/** A control file's content, trimmed: `v1` on v1/hybrid hosts, `v2` on pure v2 ones. */
export function readCg(id: string, controller: string, v1: string, v2: string): string {
  return fs.readFileSync(path.join(cgroupDir(id, controller), isV2 ? v2 : v1), 'utf8').trim();
}

/** The same, for a cgroup directory found another way (runc's container). */
export function readIn(dir: string, file: string): string | undefined {
  try {
    return fs.readFileSync(path.join(dir, file), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The cgroup directory of a live process for a controller (from /proc/<pid>/cgroup). */
export function procCgroupDir(pid: number, controller: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n')) {
    const [hid, ctrls, p] = line.split(':');
    if (p === undefined) continue;
    if (isV2 && hid === '0') return path.join(layout!.unified!, p);
    if (!isV2 && ctrls.split(',').includes(controller)) return path.join(layout!.v1.get(controller)!, p);
  }
  return undefined;
}

/** Sets linux.resources (replacing what the default config has, except the device rules). */
export function withResources(c: BundleConfig, r: NonNullable<BundleConfig['linux']['resources']>): void {
  c.linux.resources = { devices: c.linux.resources?.devices ?? [{ allow: false, access: 'rwm' }], ...r };
}

/** Adds capabilities to every set of the process. */
export function addCaps(c: BundleConfig, ...caps: string[]): void {
  const p = c.process.capabilities ?? (c.process.capabilities = {});
  for (const set of ['bounding', 'effective', 'permitted'] as const) p[set] = [...new Set([...(p[set] ?? []), ...caps])];
}

/** Reads a file that another process rewrites in place, until it has content (bounded). */
export function readStable(file: string): string {
  for (let i = 0; i < 50; i++) {
    try {
      const s = fs.readFileSync(file, 'utf8').trim();
      if (s) return s;
    } catch {
      /* not written yet */
    }
  }
  return '';
}
