/**
 * Works out how cgroups are mounted on this host and where this process sits
 * in them. Both inputs are injectable so the path logic can be tested against
 * layouts this machine does not have (pure v2, cpu,cpuacct co-mounted, ...).
 */
import { posix } from 'node:path';
import { UserError } from '../errors.js';
import { readText } from './fsutil.js';

export type CgroupMode = 'v1' | 'hybrid' | 'v2';

export interface Layout {
  mode: CgroupMode;
  /**
   * v1 hierarchies: controller ("memory", "cpu") or named hierarchy
   * ("name=systemd") -> mountpoint. Co-mounted controllers ("cpu,cpuacct")
   * get one entry each, both pointing at the same mountpoint. Empty in v2 mode.
   */
  v1: Map<string, string>;
  /** The cgroup2 mountpoint (the whole tree on v2, ".../unified" on hybrid). */
  unified?: string;
  /**
   * This process's own cgroup per hierarchy (same keys as `v1`, plus
   * 'unified' for the "0::" line), already made relative to the mount's root
   * so that `join(mountpoint, own)` is the directory we live in. Needed
   * because a relative cgroupsPath is resolved against it.
   */
  own: Map<string, string>;
}

export interface MountEntry {
  id: number;
  parent: number;
  root: string;
  mountpoint: string;
  fstype: string;
  superOptions: string[];
}

/** mountinfo escapes space, tab, newline and backslash as \ooo octal. */
function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses proc(5) mountinfo: "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS". */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const fields = line.split(' ');
    const sep = fields.indexOf('-', 6);
    if (sep < 0 || fields.length < sep + 4) continue; // malformed line: not ours to judge
    entries.push({
      id: Number(fields[0]),
      parent: Number(fields[1]),
      root: unescapeOctal(fields[3]),
      mountpoint: unescapeOctal(fields[4]),
      fstype: fields[sep + 1],
      superOptions: fields[sep + 3].split(','),
    });
  }
  return entries;
}

/**
 * Parses /proc/self/cgroup ("ID:CONTROLLERS:PATH" per hierarchy) into
 * key -> path, splitting co-mounted controllers and naming the v2 line
 * ("0::/path") 'unified'.
 */
export function parseProcCgroup(text: string): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const [, hid, controllers, path] = m;
    if (hid === '0' && controllers === '') own.set('unified', path);
    else for (const c of controllers.split(',')) if (c) own.set(c, path);
  }
  return own;
}

/** `cgroup` made relative to the mount's `root` (nested containers see a host path in /proc/self/cgroup). */
function relativeToRoot(cgroup: string, root: string): string {
  const rel = posix.relative(root, cgroup);
  // Outside the part of the tree this mount shows: we cannot see our own
  // cgroup through it, so the best available anchor is the mount itself.
  if (rel.startsWith('..')) return '/';
  return '/' + rel;
}

export function detectLayout(
  mountinfo: string = readText('/proc/self/mountinfo'),
  procCgroup: string = readText('/proc/self/cgroup'),
): Layout {
  const cgroupLines = parseProcCgroup(procCgroup);
  const mounts = parseMountinfo(mountinfo).filter((m) => m.fstype === 'cgroup' || m.fstype === 'cgroup2');

  // A mount with another mount stacked on the same mountpoint is hidden;
  // skip it (runc's getCgroupMountsHelper does the same).
  const visible = mounts.filter(
    (m) => !mounts.some((o) => o.parent === m.id && o.mountpoint === m.mountpoint),
  );

  const v1 = new Map<string, string>();
  const own = new Map<string, string>();
  let unified: MountEntry | undefined;
  for (const m of visible) {
    if (m.fstype === 'cgroup2') {
      // Prefer the canonical locations if cgroup2 is mounted more than once.
      const rank = (p: string) => (p === '/sys/fs/cgroup' ? 0 : p === '/sys/fs/cgroup/unified' ? 1 : 2);
      if (!unified || rank(m.mountpoint) < rank(unified.mountpoint)) unified = m;
      continue;
    }
    // Super options mix controllers with flags (rw, xattr, release_agent=...);
    // the controllers are exactly the names /proc/self/cgroup lists, which is
    // also how runc tells them apart (getCgroupMountsV1).
    for (const opt of m.superOptions) {
      if (!cgroupLines.has(opt) || opt === 'unified' || v1.has(opt)) continue;
      v1.set(opt, m.mountpoint);
      own.set(opt, relativeToRoot(cgroupLines.get(opt)!, m.root));
    }
  }

  if (unified) {
    const self = cgroupLines.get('unified');
    if (self !== undefined) own.set('unified', relativeToRoot(self, unified.root));
  }

  // Pure v2 means cgroup2 *is* /sys/fs/cgroup (runc's IsCgroup2UnifiedMode
  // statfs check); stray v1 mounts elsewhere are then ignored, as runc does.
  if (unified && (unified.mountpoint === '/sys/fs/cgroup' || v1.size === 0)) {
    for (const k of v1.keys()) own.delete(k);
    return { mode: 'v2', v1: new Map(), unified: unified.mountpoint, own };
  }
  if (v1.size === 0) throw new UserError('cgroup: no cgroup filesystem is mounted (see /proc/self/mountinfo)');
  return unified
    ? { mode: 'hybrid', v1, unified: unified.mountpoint, own }
    : { mode: 'v1', v1, own };
}
