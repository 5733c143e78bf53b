/**
 * linux.resources as data: which controllers a resource set needs, runc's
 * value conversions between v1 and v2, merging an `update` into the stored
 * set, and validating a LinuxResources document given to `update -r`.
 * Pure functions only; the writes live in v1.ts and v2.ts.
 */
import type { Resources } from '../oci/types.js';
import { UserError } from '../errors.js';

/** v1 controller names (v2's "io" is v1's "blkio"). */
export type Controller = 'memory' | 'cpu' | 'cpuset' | 'pids' | 'blkio' | 'hugetlb' | 'net_cls' | 'net_prio' | 'rdma';

export interface Need {
  controller: Controller;
  /** the config field that asks for it, for error messages */
  what: string;
}

const nz = (v: number | undefined | null): v is number => typeof v === 'number' && v !== 0;
const given = <T>(v: T | undefined | null): v is T => v !== undefined && v !== null;
const nonEmpty = <T>(a: readonly T[] | undefined | null): a is readonly T[] => Array.isArray(a) && a.length > 0;

type Memory = NonNullable<Resources['memory']>;
type Cpu = NonNullable<Resources['cpu']>;

export interface BlockIO {
  weight?: number;
  leafWeight?: number;
  weightDevice?: { major: number; minor: number; weight?: number; leafWeight?: number }[];
  throttleReadBpsDevice?: ThrottleDevice[];
  throttleWriteBpsDevice?: ThrottleDevice[];
  throttleReadIOPSDevice?: ThrottleDevice[];
  throttleWriteIOPSDevice?: ThrottleDevice[];
}
export interface ThrottleDevice {
  major: number;
  minor: number;
  rate: number;
}
export interface Network {
  classID?: number;
  priorities?: { name: string; priority: number }[];
}
export type Rdma = Record<string, { hcaHandles?: number; hcaObjects?: number }>;

export function memorySet(m: Memory | undefined): m is Memory {
  return !!m && (nz(m.limit) || nz(m.reservation) || nz(m.swap) || given(m.swappiness) || m.disableOOMKiller === true);
}
export function cpuSet(c: Cpu | undefined): c is Cpu {
  return !!c && (nz(c.shares) || nz(c.quota) || nz(c.period) || given(c.burst) || given(c.idle) || nz(c.realtimeRuntime) || nz(c.realtimePeriod));
}
export function cpusetSet(c: Cpu | undefined): c is Cpu {
  return !!c && (!!c.cpus || !!c.mems);
}
export function blockIOSet(b: BlockIO | undefined): b is BlockIO {
  return (
    !!b &&
    (nz(b.weight) || nz(b.leafWeight) || nonEmpty(b.weightDevice) || nonEmpty(b.throttleReadBpsDevice) ||
      nonEmpty(b.throttleWriteBpsDevice) || nonEmpty(b.throttleReadIOPSDevice) || nonEmpty(b.throttleWriteIOPSDevice))
  );
}

/** The controllers `r` needs (devices and unified are handled separately), in the order they are written. */
export function neededControllers(r: Resources): Need[] {
  const out: Need[] = [];
  if (cpusetSet(r.cpu)) out.push({ controller: 'cpuset', what: 'linux.resources.cpu.cpus/mems' });
  if (memorySet(r.memory)) out.push({ controller: 'memory', what: 'linux.resources.memory' });
  if (cpuSet(r.cpu)) out.push({ controller: 'cpu', what: 'linux.resources.cpu' });
  if (r.pids && nz(r.pids.limit)) out.push({ controller: 'pids', what: 'linux.resources.pids' });
  if (blockIOSet(r.blockIO as BlockIO | undefined)) out.push({ controller: 'blkio', what: 'linux.resources.blockIO' });
  if (nonEmpty(r.hugepageLimits)) out.push({ controller: 'hugetlb', what: 'linux.resources.hugepageLimits' });
  const net = r.network as Network | undefined;
  if (net && nz(net.classID)) out.push({ controller: 'net_cls', what: 'linux.resources.network.classID' });
  if (net && nonEmpty(net.priorities)) out.push({ controller: 'net_prio', what: 'linux.resources.network.priorities' });
  if (r.rdma && Object.keys(r.rdma).length) out.push({ controller: 'rdma', what: 'linux.resources.rdma' });
  return out;
}

/** What is accepted but has no effect, said once per create/update (runc ignores these silently). */
export function ignoredWarnings(r: Resources): string[] {
  const w: string[] = [];
  if (nz(r.memory?.kernel)) w.push('linux.resources.memory.kernel is not applied (kernel memory limits are deprecated; runc ignores them too)');
  if (nz(r.memory?.kernelTCP)) w.push('linux.resources.memory.kernelTCP is not applied (kernel memory limits are deprecated; runc ignores them too)');
  if (given(r.memory?.useHierarchy)) w.push('linux.resources.memory.useHierarchy is not applied (memory accounting is always hierarchical)');
  return w;
}

// ---------------------------------------------------------------------------
// Conversions (runc libcontainer/cgroups/utils.go)

/** cpu.shares (v1, 2..262144) -> cpu.weight (v2, 1..10000), runc's ConvertCPUSharesToCgroupV2Value. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  const s = Math.min(Math.max(shares, 2), 262144);
  return 1 + Math.floor(((s - 2) * 9999) / 262142);
}

/** blkio.weight (10..1000) -> io.weight (1..10000), runc's ConvertBlkIOToIOWeightValue. */
export function blkioToIoWeight(weight: number): number {
  if (weight === 0) return 0;
  return 1 + Math.floor(((Math.max(weight, 10) - 10) * 9999) / 990);
}

/**
 * memory.swap (v1 semantics: memory+swap) -> memory.swap.max (swap alone),
 * runc's ConvertMemorySwapToCgroupV2Value. 0 = unchanged, -1 = max.
 */
export function swapToV2(swap: number, memory: number): number {
  if (memory === -1 && swap === 0) return -1;
  if (swap === -1 || swap === 0) return swap;
  if (memory === 0 || memory === -1) throw new UserError('linux.resources.memory.swap: a swap limit needs a memory limit');
  if (memory < 0) throw new UserError(`linux.resources.memory.limit: invalid value ${memory}`);
  if (swap < memory) throw new UserError(`linux.resources.memory.swap (${swap}) must be >= memory.limit (${memory}): it is memory+swap`);
  return swap - memory;
}

/** A number as a cgroup file wants it: -1 is "max". */
export function limitString(v: number): string {
  return v === -1 ? 'max' : formatInt(v);
}

/** Integers beyond 2^53 arrive rounded; write them as integers anyway (never "1e+21"). */
export function formatInt(v: number): string {
  return Number.isSafeInteger(v) ? String(v) : BigInt(Math.trunc(v)).toString();
}

// ---------------------------------------------------------------------------
// update: merging into the stored set

function mergeBy<T>(old: readonly T[] | undefined, upd: readonly T[] | undefined, id: (x: T) => string): T[] | undefined {
  if (!nonEmpty(upd)) return old ? [...old] : undefined;
  const out = new Map<string, T>();
  for (const x of old ?? []) out.set(id(x), x);
  for (const x of upd) out.set(id(x), x);
  return [...out.values()];
}

function mergeFields<T extends object>(old: T | undefined, upd: T | undefined, pointerFields: readonly string[] = []): T | undefined {
  if (!upd) return old ? { ...old } : undefined;
  const out: Record<string, unknown> = { ...(old ?? {}) };
  for (const [k, v] of Object.entries(upd)) {
    if (v === undefined || v === null) continue;
    if (typeof v === 'number' && v === 0 && !pointerFields.includes(k)) continue; // zero = unchanged
    if (typeof v === 'string' && v === '') continue;
    if (Array.isArray(v) && v.length === 0) continue;
    out[k] = v;
  }
  return out as T;
}

const devKey = (d: { major: number; minor: number }) => `${d.major}:${d.minor}`;

/**
 * The resources after an `update`: zero, empty or absent values in `upd`
 * leave the stored value; device lists merge by major:minor, hugepage
 * limits by page size, priorities by interface, rdma and unified by key.
 * Device rules are not part of an update.
 */
export function mergeResources(old: Resources, upd: Resources): Resources {
  const out: Resources = { ...old };
  const memory = mergeFields(old.memory, upd.memory, ['swappiness']);
  if (memory) out.memory = memory;
  const cpu = mergeFields(old.cpu, upd.cpu, ['burst', 'idle']);
  if (cpu) out.cpu = cpu;
  if (upd.pids && nz(upd.pids.limit)) out.pids = { limit: upd.pids.limit };
  const ob = old.blockIO as BlockIO | undefined;
  const ub = upd.blockIO as BlockIO | undefined;
  if (ub) {
    const b: BlockIO = mergeFields(ob, { weight: ub.weight, leafWeight: ub.leafWeight }) ?? {};
    const lists = ['weightDevice', 'throttleReadBpsDevice', 'throttleWriteBpsDevice', 'throttleReadIOPSDevice', 'throttleWriteIOPSDevice'] as const;
    for (const l of lists) {
      const m = mergeBy<{ major: number; minor: number }>(ob?.[l], ub[l], devKey);
      if (m) (b as Record<string, unknown>)[l] = m;
    }
    out.blockIO = b as Record<string, unknown>;
  }
  const huge = mergeBy(old.hugepageLimits, upd.hugepageLimits, (h) => h.pageSize);
  if (huge) out.hugepageLimits = huge;
  const on = old.network as Network | undefined;
  const un = upd.network as Network | undefined;
  if (un) {
    const n: Network = mergeFields(on, { classID: un.classID }) ?? {};
    const p = mergeBy(on?.priorities, un.priorities, (x) => x.name);
    if (p) n.priorities = p;
    out.network = n as Record<string, unknown>;
  }
  if (upd.rdma && Object.keys(upd.rdma).length) out.rdma = { ...(old.rdma ?? {}), ...upd.rdma };
  if (upd.unified && Object.keys(upd.unified).length) out.unified = { ...(old.unified ?? {}), ...upd.unified };
  return out;
}

/**
 * The part of `merged` an update re-applies: everything but device rules
 * (runc's update never touches them either). Re-applying the whole merged
 * set matters on v2, where cpu.max needs the quota and the period together.
 */
export function forUpdate(merged: Resources): Resources {
  const { devices: _devices, ...rest } = merged;
  return rest;
}

// ---------------------------------------------------------------------------
// update flags

/** docker/go-units RAMInBytes: "64m", "1.5g", "512MiB", "1024" -> bytes (binary units); "-1" is unlimited. */
export function parseMemory(flag: string, value: string): number {
  if (value === '-1') return -1;
  const m = /^(\d+(?:\.\d+)?) ?([kKmMgGtTpP])?[iI]?[bB]?$/.exec(value.trim());
  if (!m) throw new UserError(`invalid value for ${flag}: invalid size: ${JSON.stringify(value)}`);
  const mult = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40, p: 2 ** 50 }[(m[2] ?? '').toLowerCase()]!;
  return Math.trunc(Number(m[1]) * mult);
}

export function parseIntFlag(flag: string, value: string, min = -(2 ** 63)): number {
  if (!/^-?\d+$/.test(value.trim())) throw new UserError(`invalid value for ${flag}: ${JSON.stringify(value)}: not an integer`);
  const n = Number(value.trim());
  if (n < min) throw new UserError(`invalid value for ${flag}: ${value}: must be >= ${min}`);
  return n;
}

// ---------------------------------------------------------------------------
// Validating a LinuxResources document (update -r)

type Kind = 'int' | 'uint' | 'uint16' | 'bool' | 'string' | Schema | [Schema] | { map: Kind };
interface Schema {
  [field: string]: Kind;
}

const throttle: [Schema] = [{ major: 'int', minor: 'int', rate: 'uint' }];
const RESOURCES: Schema = {
  devices: [{ allow: 'bool', type: 'string', major: 'int', minor: 'int', access: 'string' }],
  memory: {
    limit: 'int', reservation: 'int', swap: 'int', kernel: 'int', kernelTCP: 'int', swappiness: 'uint',
    disableOOMKiller: 'bool', useHierarchy: 'bool', checkBeforeUpdate: 'bool',
  },
  cpu: {
    shares: 'uint', quota: 'int', burst: 'uint', period: 'uint', realtimeRuntime: 'int', realtimePeriod: 'uint',
    cpus: 'string', mems: 'string', idle: 'int',
  },
  pids: { limit: 'int' },
  blockIO: {
    weight: 'uint16', leafWeight: 'uint16',
    weightDevice: [{ major: 'int', minor: 'int', weight: 'uint16', leafWeight: 'uint16' }],
    throttleReadBpsDevice: throttle, throttleWriteBpsDevice: throttle,
    throttleReadIOPSDevice: throttle, throttleWriteIOPSDevice: throttle,
  },
  hugepageLimits: [{ pageSize: 'string', limit: 'uint' }],
  network: { classID: 'uint', priorities: [{ name: 'string', priority: 'uint' }] },
  rdma: { map: { hcaHandles: 'uint', hcaObjects: 'uint' } },
  unified: { map: 'string' },
};

function check(v: unknown, kind: Kind, path: string): void {
  const bad = (what: string) => {
    throw new UserError(`${path}: ${what}, got ${JSON.stringify(v)}`);
  };
  if (v === null) return; // Go decodes null as "not given"
  if (typeof kind === 'string') {
    if (kind === 'bool') return void (typeof v === 'boolean' || bad('must be a boolean'));
    if (kind === 'string') return void (typeof v === 'string' || bad('must be a string'));
    if (typeof v !== 'number' || !Number.isInteger(v)) return bad('must be an integer');
    if (kind === 'uint' && v < 0) bad('must not be negative');
    if (kind === 'uint16' && (v < 0 || v > 65535)) bad('must be between 0 and 65535');
    return;
  }
  if (Array.isArray(kind)) {
    if (!Array.isArray(v)) return bad('must be an array');
    v.forEach((x, i) => check(x, kind[0], `${path}[${i}]`));
    return;
  }
  if (typeof v !== 'object' || Array.isArray(v)) return bad('must be an object');
  const obj = v as Record<string, unknown>;
  if ('map' in kind && typeof (kind as { map: unknown }).map !== 'undefined' && Object.keys(kind).length === 1) {
    for (const [k, x] of Object.entries(obj)) check(x, (kind as { map: Kind }).map, `${path}.${k}`);
    return;
  }
  for (const [k, x] of Object.entries(obj)) {
    const sub = (kind as Schema)[k];
    if (sub === undefined) throw new UserError(`${path}.${k}: unknown field`);
    check(x, sub, `${path}.${k}`);
  }
}

/** Parses and checks a LinuxResources JSON text (`update -r`); errors name the file and the field. */
export function parseResources(text: string, file: string): Resources {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${file}: invalid JSON: ${(e as Error).message}`);
  }
  check(doc, RESOURCES, file);
  if (doc === null) return {};
  const r = doc as Resources;
  if (r.pids && typeof r.pids.limit !== 'number') delete (r as { pids?: unknown }).pids;
  return r;
}
