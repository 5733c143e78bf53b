/**
 * Placing a container in its cgroups (cgroupfs driver): create the
 * directories, apply linux.resources (apply.ts), move processes in, list,
 * freeze, measure and kill them, and remove the directories again.
 *
 * Everything a later `tsrun` invocation needs is in `toJSON()` (paths and the
 * directories this runtime created), which goes into state.json and comes
 * back through `cgroupsFromPaths`.
 */
import { existsSync, rmdirSync } from 'node:fs';
import { posix } from 'node:path';
import type { Resources } from '../oci/types.js';
import { UserError } from '../errors.js';
import { native } from '../native.js';
import { type ApplyOptions, applyResources, isPureV2, STATS_CONTROLLERS } from './apply.js';
import { detectLayout, type Layout } from './detect.js';
import { freeze, type FreezerState, freezerState, thaw } from './freezer.js';
import { CgroupError, childDirs, hostIO, mkdirTracked, readText, rmdirRetry, writeCgroupFile } from './fsutil.js';
import { innerPath, resolvePaths, UNIFIED } from './paths.js';
import { collectStats, oomKillCount, type StatsData } from './stats.js';
import { fillCpuset } from './v1.js';

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
  /**
   * Before the spawn: fills an empty v1 cpuset, and returns the v1 `tasks`
   * files the spawner writes "0" to (src/plan/cgroups.ts). The v2 directory
   * (paths.unified) is not among them: the init is cloned into it.
   */
  preparePlacement(): string[];
  /** Moves `pid` into every hierarchy through cgroup.procs (slow: an RCU grace period). */
  addProcess(pid: number): void;
  pids(): number[];
  /** Writes linux.resources; returns warnings for what has no effect. */
  apply(resources: Resources, opts?: ApplyOptions): string[];
  /** pause: returns once every process is frozen */
  freeze(): void;
  thaw(): void;
  /** undefined without a freezer or once the cgroup is gone */
  freezerState(): FreezerState | undefined;
  stats(): StatsData;
  oomKills(): bigint | undefined;
  /** SIGKILLs everything through cgroup.kill (v2, Linux 5.14+); false where that file does not exist. */
  cgroupKill(): boolean;
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

  preparePlacement(): string[] {
    const cpuset = this.paths.cpuset;
    if (cpuset !== undefined) fillCpuset(cpuset, hostIO);
    const unified = this.paths[UNIFIED];
    return this.dirs()
      .filter((dir) => dir !== unified)
      .map((dir) => posix.join(dir, 'tasks'));
  }

  addProcess(pid: number): void {
    if (!Number.isInteger(pid) || pid <= 0) throw new UserError(`cgroup: invalid pid ${pid}`);
    const cpuset = this.paths.cpuset;
    if (cpuset !== undefined) fillCpuset(cpuset, hostIO);
    for (const dir of this.dirs()) writeCgroupFile(posix.join(dir, 'cgroup.procs'), String(pid));
  }

  pids(): number[] {
    const dir = this.pidsDir();
    if (dir === undefined) return [];
    const out = new Set<number>();
    collectPids(dir, out, true);
    return [...out].sort((a, b) => a - b);
  }

  apply(resources: Resources, opts: ApplyOptions = {}): string[] {
    return applyResources(this.paths, resources, {
      attachDeviceFilter,
      statsControllers: STATS_CONTROLLERS,
      ...opts,
    });
  }

  freeze(): void {
    freeze(this.paths, hostIO);
  }

  thaw(): void {
    thaw(this.paths, hostIO);
  }

  freezerState(): FreezerState | undefined {
    return freezerState(this.paths, hostIO);
  }

  stats(): StatsData {
    return collectStats(this.paths, hostIO);
  }

  oomKills(): bigint | undefined {
    return oomKillCount(this.paths, hostIO);
  }

  cgroupKill(): boolean {
    const dir = this.paths[UNIFIED];
    if (!dir || !isPureV2(this.paths)) return false;
    const file = posix.join(dir, 'cgroup.kill');
    if (!existsSync(file)) return false;
    writeCgroupFile(file, '1');
    return true;
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

/**
 * rmdir `dir` after its descendants, deepest first. A plain rmdir first: a
 * container's leaf almost never has children, and listing a cgroup directory
 * (dozens of control files) in each of ten v1 hierarchies was a fifth of a
 * warm delete. rmdir answers EBUSY both for children and for tasks, so any
 * failure takes the walk, which tells them apart and retries.
 */
function removeTree(dir: string): void {
  try {
    rmdirSync(dir);
    return;
  } catch {
    /* children, tasks still leaving, or gone: the walk below knows */
  }
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

/** Loads a compiled BPF_CGROUP_DEVICE program and attaches it to a v2 cgroup directory (the addon's bpf(2) calls). */
function attachDeviceFilter(dir: string, program: Buffer, license: string): void {
  const addon = native();
  if (typeof addon.attachDeviceFilter !== 'function') {
    throw new UserError('cgroup: device rules on cgroup v2 need the BPF device filter, and this build of the addon lacks it (rebuild: npm run build)');
  }
  try {
    addon.attachDeviceFilter(dir, program, license);
  } catch (e) {
    throw new UserError(`cgroup: device filter for ${dir}: ${(e as Error).message}`);
  }
}
