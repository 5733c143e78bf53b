/**
 * `tsrun bench`: the namespace-setup benchmark. For each case, N cycles of
 * clone -> (the child's step) -> child exit -> waitpid, timed in C++
 * (native/nsbench.cc) so that Node's own costs stay outside the measured
 * interval; this file chooses the cases, runs them in chunks (progress
 * between chunks), and summarizes.
 *
 * Cases:
 *  - namespace kinds alone (pid, mount, uts, ipc, net, user, cgroup, time),
 *    runc's default set, all of them, and no namespace at all (the clone
 *    itself) both sharing memory and descriptors (CLONE_VM | CLONE_FILES, the
 *    default) and fork-like (as the executor clones);
 *  - the other steps of create, each timed on its own inside the cycle:
 *    pivot_root into a rootfs, mounting proc, sysfs, devpts and tmpfs, loading
 *    a seccomp filter, creating and joining a cgroup, writing uid/gid maps.
 *
 * With a floor binary (bench/ns-floor.c) each namespace case also runs there,
 * right before tsrun's own loop, and the report shows tsrun's harness
 * overhead against it.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { detectLayout } from '../cgroups/detect.js';
import { UserError } from '../errors.js';
import { native, type NsBenchAddon, type NsBenchCase } from '../native.js';
import { CLONE, MS } from '../plan/linux.js';
import { compileSeccomp } from '../plan/seccomp.js';
import { benchSeccompProfile } from './seccomp-profile.js';
import { fmt, overhead, summarize, table, type Summary } from './stats.js';
import { distributionChart } from './svg.js';

export const NAMESPACE_FLAGS: Record<string, number> = {
  pid: CLONE.NEWPID,
  mount: CLONE.NEWNS,
  uts: CLONE.NEWUTS,
  ipc: CLONE.NEWIPC,
  net: CLONE.NEWNET,
  user: CLONE.NEWUSER,
  cgroup: CLONE.NEWCGROUP,
  // CLONE_NEWTIME cannot be given to clone(): the child unshares it, as the executor does.
  time: CLONE.NEWTIME,
};

/** runc's default spec: `runc spec`'s linux.namespaces. */
export const RUNC_DEFAULT = ['pid', 'net', 'ipc', 'uts', 'mount'];
export const ALL_KINDS = ['pid', 'net', 'ipc', 'uts', 'mount', 'user', 'cgroup', 'time'];

export interface CaseDef {
  name: string;
  group: 'namespace' | 'step';
  description: string;
  namespaces: string[];
  /** fork-like clone regardless of --fork */
  fork?: boolean;
  /** NsBenchAddon.steps key */
  step?: keyof NsBenchAddon['steps'];
}

const ns = (name: string, namespaces: string[], description: string, fork?: boolean): CaseDef => ({
  name,
  group: 'namespace',
  description,
  namespaces,
  fork,
});

/** Every case, in report order. `--kinds` picks by name. */
export const CASES: CaseDef[] = [
  ns('none', [], 'clone + exit + wait, no namespace (the harness floor)'),
  ns('none-fork', [], 'the same, cloned fork-like as the executor does (copies Node’s page tables)', true),
  ...['pid', 'mount', 'uts', 'ipc', 'net', 'user', 'cgroup', 'time'].map((k) =>
    ns(k, [k], k === 'time' ? 'new time namespace (unshare in the child, as the executor)' : `new ${k} namespace`),
  ),
  ns('runc', RUNC_DEFAULT, `runc's default set: ${RUNC_DEFAULT.join(', ')}`),
  ns('all', ALL_KINDS, `every kind: ${ALL_KINDS.join(', ')}`),
  { name: 'pivot_root', group: 'step', step: 'pivot', namespaces: ['mount'], description: 'pivot_root into the rootfs, detach the old root' },
  { name: 'mount-proc', group: 'step', step: 'mount', namespaces: RUNC_DEFAULT, description: 'mount proc (new pid namespace)' },
  { name: 'mount-sysfs', group: 'step', step: 'mount', namespaces: RUNC_DEFAULT, description: 'mount sysfs read-only (new net namespace)' },
  { name: 'mount-devpts', group: 'step', step: 'mount', namespaces: RUNC_DEFAULT, description: 'mount a new devpts instance' },
  { name: 'mount-tmpfs', group: 'step', step: 'mount', namespaces: RUNC_DEFAULT, description: 'mount tmpfs (as /dev)' },
  { name: 'seccomp', group: 'step', step: 'seccomp', namespaces: [], description: 'load a docker-default-sized seccomp filter' },
  { name: 'cgroup-join', group: 'step', step: 'cgroup', namespaces: [], description: 'create a cgroup in every hierarchy and join it' },
  { name: 'idmap', group: 'step', step: 'idmap', namespaces: ['user'], description: 'write uid_map and gid_map of a new user namespace' },
];

export interface NsBenchOptions {
  iterations: number;
  warmup: number;
  /** case names; default all */
  kinds?: string[];
  /** pin the benchmark (and its clones) to this CPU */
  cpu?: number;
  /** clone every case fork-like, as the executor does */
  fork?: boolean;
  /** rootfs for pivot_root; default the busybox template of scripts/make-bundle.sh, else an empty directory */
  rootfs?: string;
  /** bench/ns-floor binary: run each namespace case there too */
  floor?: string;
  /** progress lines (stderr) */
  progress?: (line: string, final: boolean) => void;
  /** for tests: the addon */
  addon?: NsBenchAddon;
}

export interface CaseResult {
  name: string;
  group: 'namespace' | 'step';
  description: string;
  namespaces: string[];
  clone: 'vm' | 'fork';
  iterations: number;
  /** whole cycle: clone to reaped child, µs */
  cycle: Summary;
  /** the step alone, µs (step cases) */
  step?: Summary;
  /** the same cycle in bench/ns-floor (µs) */
  floor?: Summary;
  /** cycle p50 over floor p50, minus 1 */
  harnessOverhead?: number;
}

export interface NsBenchReport {
  tool: 'tsrun bench';
  unit: 'us';
  date: string;
  host: { kernel: string; node: string; cpus: number; cpuModel?: string; loadavgBefore: number[]; loadavgAfter: number[]; cgroupMode?: string };
  options: { iterations: number; warmup: number; cpu?: number; fork: boolean; rootfs?: string; floor?: string };
  results: CaseResult[];
  skipped: { name: string; reason: string }[];
}

export function selectCases(kinds: string[] | undefined): CaseDef[] {
  if (!kinds || kinds.length === 0) return CASES;
  const unknown = kinds.filter((k) => !CASES.some((c) => c.name === k));
  if (unknown.length) {
    throw new UserError(`bench: unknown kind ${JSON.stringify(unknown[0])} (one of: ${CASES.map((c) => c.name).join(', ')})`);
  }
  return CASES.filter((c) => kinds.includes(c.name));
}

function cloneFlagsOf(namespaces: string[]): { cloneFlags: number; unshareFlags: number } {
  let cloneFlags = 0;
  let unshareFlags = 0;
  for (const k of namespaces) {
    if (k === 'time') unshareFlags |= NAMESPACE_FLAGS.time!;
    else cloneFlags |= NAMESPACE_FLAGS[k]!;
  }
  return { cloneFlags, unshareFlags };
}

/** The busybox rootfs template of scripts/make-bundle.sh, when this checkout has the script. */
function busyboxTemplate(): string | undefined {
  for (let dir = __dirname, i = 0; i < 4; i++, dir = path.dirname(dir)) {
    const script = path.join(dir, 'scripts', 'make-bundle.sh');
    if (!fs.existsSync(script)) continue;
    const r = spawnSync('bash', [script, '--template'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const out = r.status === 0 ? r.stdout.trim().split('\n').pop() : undefined;
    return out && fs.existsSync(path.join(out, 'bin')) ? out : undefined;
  }
  return undefined;
}

interface Prepared {
  tmp: string;
  rootfs: string;
  cgroupParents: string[];
  cleanup: () => void;
}

function prepare(opts: NsBenchOptions, cases: CaseDef[]): Prepared {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-'));
  for (const d of ['proc', 'sys', 'pts', 'dev', 'rootfs']) fs.mkdirSync(path.join(tmp, d));
  let rootfs = opts.rootfs;
  if (!rootfs && cases.some((c) => c.step === 'pivot')) rootfs = busyboxTemplate() ?? path.join(tmp, 'rootfs');
  const cgroupParents: string[] = [];
  const cleanup = () => {
    for (const p of cgroupParents.reverse()) {
      try {
        fs.rmdirSync(p);
      } catch {
        /* best effort */
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  return { tmp, rootfs: rootfs ?? path.join(tmp, 'rootfs'), cgroupParents, cleanup };
}

/** The cgroup leaves of one cycle: one per hierarchy, under a parent made once (untimed). */
function cgroupLeaves(p: Prepared): NonNullable<NsBenchCase['cgroups']> {
  const layout = detectLayout();
  const mounts = [...new Set([...layout.v1.values(), ...(layout.unified ? [layout.unified] : [])])];
  const leaves: NonNullable<NsBenchCase['cgroups']> = [];
  for (const mp of mounts) {
    const parent = path.join(mp, `tsrun-bench-${process.pid}`);
    fs.mkdirSync(parent);
    p.cgroupParents.push(parent);
    const files: [string, string][] = [];
    // v1 cpuset: an empty cpuset cannot be joined; tsrun fills it from the parent (cgroups/v1.ts fillCpuset).
    for (const f of ['cpuset.cpus', 'cpuset.mems']) {
      if (!fs.existsSync(path.join(parent, f)) || fs.existsSync(path.join(mp, 'cgroup.subtree_control'))) continue;
      const value = fs.readFileSync(path.join(mp, f), 'utf8').trim();
      fs.writeFileSync(path.join(parent, f), value);
      files.push([f, value]);
    }
    leaves.push({ leaf: path.join(parent, 'c'), files });
  }
  return leaves;
}

function buildCase(def: CaseDef, opts: NsBenchOptions, p: Prepared, addon: NsBenchAddon): NsBenchCase {
  const c: NsBenchCase = { ...cloneFlagsOf(def.namespaces), fork: def.fork || !!opts.fork, step: addon.steps[def.step ?? 'none'] };
  const mountCommon = MS.NOSUID | MS.NODEV | MS.NOEXEC;
  switch (def.name) {
    case 'pivot_root':
      c.path = p.rootfs;
      break;
    case 'mount-proc':
      Object.assign(c, { source: 'proc', fstype: 'proc', path: path.join(p.tmp, 'proc'), mountFlags: mountCommon });
      break;
    case 'mount-sysfs':
      Object.assign(c, { source: 'sysfs', fstype: 'sysfs', path: path.join(p.tmp, 'sys'), mountFlags: mountCommon | MS.RDONLY });
      break;
    case 'mount-devpts':
      Object.assign(c, {
        source: 'devpts',
        fstype: 'devpts',
        path: path.join(p.tmp, 'pts'),
        mountFlags: MS.NOSUID | MS.NOEXEC,
        data: 'newinstance,ptmxmode=0666,mode=0620,gid=5',
      });
      break;
    case 'mount-tmpfs':
      Object.assign(c, {
        source: 'tmpfs',
        fstype: 'tmpfs',
        path: path.join(p.tmp, 'dev'),
        mountFlags: MS.NOSUID | MS.STRICTATIME,
        data: 'mode=755,size=65536k',
      });
      break;
    case 'seccomp': {
      const compiled = compileSeccomp(benchSeccompProfile());
      if (!compiled) throw new Error('the seccomp profile compiled to nothing');
      c.bpf = compiled.bpf;
      c.seccompFlags = compiled.flags;
      break;
    }
    case 'cgroup-join':
      c.cgroups = cgroupLeaves(p);
      break;
    case 'idmap':
      c.uidMap = '0 100000 65536\n';
      c.gidMap = '0 100000 65536\n';
      break;
  }
  return c;
}

/** Why a case cannot run here, before trying it. */
function skipReason(def: CaseDef): string | undefined {
  if (def.namespaces.includes('time') && !fs.existsSync('/proc/self/ns/time')) return 'this kernel has no time namespaces';
  if (def.namespaces.includes('cgroup') && !fs.existsSync('/proc/self/ns/cgroup')) return 'this kernel has no cgroup namespaces';
  if (def.step === 'seccomp') {
    let lib: { compile?: unknown } | undefined;
    try {
      lib = native().seccomp as { compile?: unknown } | undefined;
    } catch {
      lib = undefined;
    }
    if (typeof lib?.compile !== 'function') return 'this addon has no seccomp compiler (native/seccomp.cc)';
  }
  return undefined;
}

/** Runs cycles [from, to) into the arrays in chunks of growing size, reporting progress between them. */
function runCycles(
  addon: NsBenchAddon,
  c: NsBenchCase,
  out: { cycle: Float64Array; step: Float64Array },
  from: number,
  to: number,
  onChunk: (done: number) => void,
): void {
  let done = from;
  let chunk = 4;
  while (done < to) {
    const k = Math.min(chunk, to - done);
    const t0 = performance.now();
    addon.cycles(c, out.cycle, out.step, done, k);
    done += k;
    // About five progress updates a second, whatever a cycle costs.
    if (performance.now() - t0 < 100) chunk *= 2;
    onChunk(done);
  }
}

interface FloorOutput {
  results: { name: string; cycle: Summary; samples?: number[] }[];
}

/** `count` cycles of the case in bench/ns-floor: their microseconds, or an error message. */
function runFloor(floor: string, def: CaseDef, opts: NsBenchOptions, count: number, warmup: number): number[] | string {
  const args = ['--kinds', def.name, '--iterations', String(count), '--warmup', String(warmup), '--samples'];
  if (opts.cpu !== undefined) args.push('--cpu', String(opts.cpu));
  if (opts.fork) args.push('--fork');
  const r = spawnSync(floor, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 1 << 26 });
  if (r.error) return r.error.message;
  if (r.status !== 0) return r.stderr.trim().split('\n').pop() || `exit status ${r.status}`;
  try {
    const samples = (JSON.parse(r.stdout) as FloorOutput).results.find((x) => x.name === def.name)?.samples;
    return samples ?? `no result for ${def.name}`;
  } catch (e) {
    return `unreadable output: ${(e as Error).message}`;
  }
}

/** With a floor, tsrun and the floor alternate in this many rounds per case, so a change of machine load hits both. */
const FLOOR_ROUNDS = 5;

function loadavg(): number[] {
  return os.loadavg().map((v) => Math.round(v * 100) / 100);
}

export function runNsBench(opts: NsBenchOptions): NsBenchReport {
  if (process.getuid?.() !== 0) throw new UserError('bench: needs root (it creates namespaces, mounts and cgroups)');
  if (!(opts.iterations >= 1)) throw new UserError('bench: --iterations must be at least 1');
  const addon = opts.addon ?? native().bench;
  if (!addon) throw new UserError('bench: this build of the addon has no benchmark loops; rebuild it (npm run build:native)');
  const cases = selectCases(opts.kinds);
  const before = loadavg();
  if (opts.cpu !== undefined) addon.pinCpu(opts.cpu);
  const prepared = prepare(opts, cases);
  const results: CaseResult[] = [];
  const skipped: { name: string; reason: string }[] = [];
  let cgroupMode: string | undefined;
  try {
    cgroupMode = detectLayout().mode;
  } catch {
    cgroupMode = undefined;
  }
  try {
    cases.forEach((def, index) => {
      const tag = `[${index + 1}/${cases.length}] ${def.name}`;
      const reason = skipReason(def);
      if (reason) {
        skipped.push({ name: def.name, reason });
        opts.progress?.(`${tag}: skipped: ${reason}`, true);
        return;
      }
      let c: NsBenchCase;
      try {
        c = buildCase(def, opts, prepared, addon);
      } catch (e) {
        skipped.push({ name: def.name, reason: (e as Error).message });
        opts.progress?.(`${tag}: skipped: ${(e as Error).message}`, true);
        return;
      }
      const withFloor = !!opts.floor && def.group === 'namespace';
      const rounds = withFloor ? Math.min(FLOOR_ROUNDS, opts.iterations) : 1;
      const samples = { cycle: new Float64Array(opts.iterations), step: new Float64Array(opts.iterations) };
      const floorSamples: number[] = [];
      let floorError: string | undefined;
      try {
        if (opts.warmup > 0) {
          const warm = { cycle: new Float64Array(opts.warmup), step: new Float64Array(opts.warmup) };
          runCycles(addon, c, warm, 0, opts.warmup, (d) => opts.progress?.(`${tag}: warmup ${d}/${opts.warmup}`, false));
        }
        for (let round = 0; round < rounds; round++) {
          const from = Math.floor((opts.iterations * round) / rounds);
          const to = Math.floor((opts.iterations * (round + 1)) / rounds);
          if (withFloor && floorError === undefined) {
            opts.progress?.(`${tag}: C floor, round ${round + 1}/${rounds}`, false);
            const f = runFloor(opts.floor!, def, opts, to - from, opts.warmup); // a new process each round: warm it up each time
            if (typeof f === 'string') floorError = f;
            else floorSamples.push(...f);
          }
          runCycles(addon, c, samples, from, to, (d) => opts.progress?.(`${tag}: ${d}/${opts.iterations}`, false));
        }
      } catch (e) {
        skipped.push({ name: def.name, reason: (e as Error).message });
        opts.progress?.(`${tag}: failed: ${(e as Error).message}`, true);
        return;
      }
      if (floorError !== undefined) opts.progress?.(`${tag}: C floor failed: ${floorError}`, true);
      const floor = floorError === undefined && floorSamples.length ? summarize(floorSamples) : undefined;
      const r: CaseResult = {
        name: def.name,
        group: def.group,
        description: def.description,
        namespaces: def.namespaces,
        clone: c.fork ? 'fork' : 'vm',
        iterations: opts.iterations,
        cycle: summarize(samples.cycle),
      };
      if (def.group === 'step') r.step = summarize(samples.step);
      if (floor) {
        r.floor = floor;
        r.harnessOverhead = overhead(r.cycle.p50, floor.p50);
      }
      results.push(r);
      const shown = r.step ?? r.cycle;
      opts.progress?.(`${tag}: p50 ${fmt(shown.p50)} µs, p99 ${fmt(shown.p99)} µs${r.step ? ' (the step alone)' : ''}`, true);
    });
  } finally {
    prepared.cleanup();
  }
  let cpuModel: string | undefined;
  try {
    cpuModel = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync('/proc/cpuinfo', 'utf8'))?.[1];
  } catch {
    cpuModel = undefined;
  }
  return {
    tool: 'tsrun bench',
    unit: 'us',
    date: new Date().toISOString(),
    host: { kernel: os.release(), node: process.version, cpus: os.cpus().length, cpuModel, loadavgBefore: before, loadavgAfter: loadavg(), cgroupMode },
    options: {
      iterations: opts.iterations,
      warmup: opts.warmup,
      cpu: opts.cpu,
      fork: !!opts.fork,
      rootfs: cases.some((c) => c.step === 'pivot') ? prepared.rootfs : undefined,
      floor: opts.floor,
    },
    results,
    skipped,
  };
}

/** The terminal table: cycle percentiles, the step alone, and the C floor. */
export function formatNsTable(report: NsBenchReport): string {
  const header = ['case', 'p50', 'p90', 'p99', 'max', 'step p50', 'step p99', 'C floor p50', 'overhead'];
  const rows = report.results.map((r) => [
    r.name,
    fmt(r.cycle.p50),
    fmt(r.cycle.p90),
    fmt(r.cycle.p99),
    fmt(r.cycle.max),
    fmt(r.step?.p50),
    fmt(r.step?.p99),
    fmt(r.floor?.p50),
    r.harnessOverhead === undefined || !Number.isFinite(r.harnessOverhead) ? '-' : `${(r.harnessOverhead * 100).toFixed(1)}%`,
  ]);
  const o = report.options;
  let out = `tsrun bench: ${o.iterations} cycles per case (${o.warmup} warm-up), microseconds; `;
  out += `clone ${o.fork ? 'fork-like (as the executor)' : 'CLONE_VM|CLONE_FILES'}${o.cpu !== undefined ? `, pinned to CPU ${o.cpu}` : ''}; `;
  out += `load average ${report.host.loadavgBefore.join(' ')} -> ${report.host.loadavgAfter.join(' ')} on ${report.host.cpus} CPUs\n`;
  out += 'p50..max: the whole cycle (clone, the step, exit, wait); step: the step alone, timed where it runs\n\n';
  out += table(header, rows);
  for (const s of report.skipped) out += `skipped ${s.name}: ${s.reason}\n`;
  return out;
}

/** bench/results/ns.svg: each case's distribution; for step cases the step alone. */
export function nsSvg(report: NsBenchReport): string {
  const rows = report.results.map((r) => {
    const s = r.step ?? r.cycle;
    return {
      label: r.step ? `${r.name} (step)` : r.name,
      p50: s.p50,
      p90: s.p90,
      p99: s.p99,
      max: s.max,
      reference: r.floor?.p50,
      series: r.group,
    };
  });
  const o = report.options;
  return distributionChart({
    title: 'tsrun bench: namespace setup latency',
    subtitle: `${o.iterations} cycles per case, clone ${o.fork ? 'fork-like' : 'CLONE_VM|CLONE_FILES'}; Linux ${report.host.kernel}, ${report.host.cpus} CPUs, load ${report.host.loadavgBefore[0]}`,
    unit: 'µs',
    rows,
    referenceLabel: 'C floor p50',
    colors: { namespace: '#3178c6', step: '#e3873b' },
  });
}
