/**
 * Placing a container in its cgroups (cgroupfs driver): create the
 * directories, move processes in, list them, and remove the directories
 * again. Resource limits are not applied here.
 *
 * Everything a later `tsrun` invocation needs is in `toJSON()` (paths and the
 * directories this runtime created), which goes into state.json and comes
 * back through `cgroupsFromPaths`.
 */
import { existsSync } from 'node:fs';
import { posix } from 'node:path';
import { UserError } from '../errors.js';
import { detectLayout, type Layout } from './detect.js';
import { CgroupError, childDirs, mkdirTracked, readText, rmdirRetry, writeCgroupFile } from './fsutil.js';
import { innerPath, resolvePaths, UNIFIED } from './paths.js';

export interface CgroupsState {
  /** hierarchy key ("memory", "name=systemd", "unified", ...) -> absolute cgroup directory */
  paths: Record<string, string>;
  /** directories tsrun's create() made, shallowest first (leaves included) */
  created: string[];
}

export interface Cgroups {
  readonly paths: Readonly<Record<string, string>>;
  readonly created: readonly string[];
  create(): void;
  addProcess(pid: number): void;
  pids(): number[];
  destroy(): void;
  toJSON(): CgroupsState;
}

export interface OpenCgroupsOptions {
  id: string;
  cgroupsPath?: string;
  systemd?: boolean;
  layout?: Layout;
}

export const SYSTEMD_RUN_DIR = '/run/systemd/system';

export function openCgroups(opts: OpenCgroupsOptions): Cgroups {
  if (opts.systemd) {
    // sd_booted(3) checks this directory; without systemd there is no one to
    // ask for a scope unit, so fail before touching anything.
    if (!existsSync(SYSTEMD_RUN_DIR)) {
      throw new UserError(`systemd cgroup driver requested but systemd is not running (${SYSTEMD_RUN_DIR} missing)`);
    }
    throw new UserError('systemd cgroup driver (--systemd-cgroup) is not supported yet; run without it to use cgroupfs');
  }
  const inner = innerPath(opts.id, opts.cgroupsPath);
  return new CgroupfsManager(resolvePaths(opts.layout ?? detectLayout(), inner), []);
}

/** Rebuilds the manager from what `toJSON()` stored in state.json. */
export function cgroupsFromPaths(paths: Record<string, string>, created: readonly string[] = []): Cgroups {
  for (const p of [...Object.values(paths), ...created]) {
    if (!p.startsWith('/') || p.includes('\0') || p.split('/').includes('..')) {
      throw new UserError(`cgroup: invalid cgroup path in container state: ${JSON.stringify(p)}`);
    }
  }
  return new CgroupfsManager({ ...paths }, [...created]);
}

class CgroupfsManager implements Cgroups {
  constructor(
    readonly paths: Record<string, string>,
    private createdDirs: string[],
  ) {}

  get created(): readonly string[] {
    return this.createdDirs;
  }

  toJSON(): CgroupsState {
    return { paths: { ...this.paths }, created: [...this.createdDirs] };
  }

  /** Co-mounted controllers (cpu,cpuacct) share one directory; act on it once. */
  private dirs(): string[] {
    return [...new Set(Object.values(this.paths))];
  }

  create(): void {
    for (const dir of this.dirs()) {
      for (const d of mkdirTracked(dir)) if (!this.createdDirs.includes(d)) this.createdDirs.push(d);
    }
  }

  addProcess(pid: number): void {
    if (!Number.isInteger(pid) || pid <= 0) throw new UserError(`cgroup: invalid pid ${pid}`);
    const cpuset = this.paths.cpuset;
    if (cpuset !== undefined) fillCpuset(cpuset);
    for (const dir of this.dirs()) writeCgroupFile(posix.join(dir, 'cgroup.procs'), String(pid));
  }

  pids(): number[] {
    const dir = this.pidsDir();
    if (dir === undefined) return [];
    const out = new Set<number>();
    collectPids(dir, out, true);
    return [...out].sort((a, b) => a - b);
  }

  /** Which hierarchy to list: v2 has only 'unified'; on v1/hybrid prefer pids, then freezer (the usual ones), else any. */
  private pidsDir(): string | undefined {
    const v1Keys = Object.keys(this.paths).filter((k) => k !== UNIFIED);
    if (v1Keys.length === 0) return this.paths[UNIFIED];
    return this.paths.pids ?? this.paths.freezer ?? this.paths[v1Keys[0]];
  }

  destroy(): void {
    const errors: UserError[] = [];
    const attempt = (fn: () => void) => {
      try {
        fn();
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        errors.push(err);
      }
    };

    // The leaves, with any child cgroups the container made inside them.
    for (const dir of this.dirs()) attempt(() => removeTree(dir));

    // Then the parents we created, deepest first. Only directories that are
    // ancestors of our leaves qualify, so a tampered state file cannot point
    // rmdir elsewhere. Another container may have been placed under the
    // same parent since: EBUSY/ENOTEMPTY then just means "still in use".
    const leaves = this.dirs();
    const parents = this.createdDirs
      .filter((d) => !leaves.includes(d) && leaves.some((l) => l.startsWith(d + '/')))
      .sort((a, b) => b.split('/').length - a.split('/').length);
    for (const dir of parents) {
      attempt(() => {
        try {
          rmdirRetry(dir, 0);
        } catch (err) {
          if (!(err instanceof CgroupError && (err.code === 'EBUSY' || err.code === 'ENOTEMPTY'))) throw err;
        }
      });
    }

    if (errors.length) {
      const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
      throw new UserError(errors[0].message + more);
    }
    this.createdDirs = [];
  }
}

/** rmdir `dir` after its descendants, deepest first. */
function removeTree(dir: string): void {
  for (const child of childDirs(dir)) removeTree(child);
  rmdirRetry(dir);
}

function collectPids(dir: string, out: Set<number>, top: boolean): void {
  let text: string;
  try {
    text = readText(posix.join(dir, 'cgroup.procs'));
  } catch (err) {
    // A child cgroup removed while we walk is not an error; our own is.
    if (!top && err instanceof CgroupError && err.code === 'ENOENT') return;
    throw err;
  }
  for (const line of text.split('\n')) if (line) out.add(Number(line));
  for (const child of childDirs(dir)) collectPids(child, out, false);
}

/**
 * A fresh v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems,
 * and adding a task to it fails with ENOSPC. Like runc (fs/cpuset.go
 * ensureParent/copyIfNeeded), walk up to the nearest ancestor that has
 * values and copy them down level by level (a child's set must be a subset
 * of its parent's, so every empty level needs filling, top-down).
 */
function fillCpuset(leaf: string): void {
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    const empty: string[] = [];
    let dir = leaf;
    let value = readText(posix.join(dir, file)).trim();
    while (value === '') {
      empty.push(dir);
      const parent = posix.dirname(dir);
      const up = parent === dir ? undefined : readCpuset(posix.join(parent, file));
      if (up === undefined) return; // walked out of the cpuset hierarchy: let the write report ENOSPC
      dir = parent;
      value = up;
    }
    for (const d of empty.reverse()) writeCgroupFile(posix.join(d, file), value);
  }
}

function readCpuset(file: string): string | undefined {
  try {
    return readText(file).trim();
  } catch (err) {
    if (err instanceof CgroupError && err.code === 'ENOENT') return undefined;
    throw err;
  }
}
