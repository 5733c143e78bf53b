/**
 * Container statistics in the shape runc's `events` prints (runc
 * events/types.go), read from v1 hierarchies or the v2 tree, controller by
 * controller (on a hybrid host each comes from where it is mounted).
 * Counters are bigints: memory limits like 9223372036854771712 do not
 * survive a double, and eventJSON() prints them digit for digit.
 */
import { posix } from 'node:path';
import { readdirSync } from 'node:fs';
import { type CgroupIO } from './fsutil.js';
import { UNIFIED } from './paths.js';

const join = posix.join;
type N = bigint;

export interface MemoryEntry {
  limit: N;
  usage?: N;
  max?: N;
  failcnt: N;
}
export interface BlkioEntry {
  major?: N;
  minor?: N;
  op?: string;
  value?: N;
}
export interface StatsData {
  cpu: {
    usage: { total?: N; percpu?: N[]; percpu_kernel?: N[]; percpu_user?: N[]; kernel: N; user: N };
    throttling: { periods?: N; throttledPeriods?: N; throttledTime?: N };
  };
  cpuset: Record<string, N | N[]>;
  memory: { cache?: N; usage: MemoryEntry; swap: MemoryEntry; kernel: MemoryEntry; kernelTCP: MemoryEntry; raw?: Record<string, N> };
  pids: { current?: N; limit?: N };
  blkio: { ioServiceBytesRecursive?: BlkioEntry[]; ioServicedRecursive?: BlkioEntry[] };
  hugetlb: Record<string, { usage?: N; max?: N; failcnt: N }>;
  intel_rdt: Record<string, never>;
  network_interfaces: null;
}

const U64_MAX = (1n << 64n) - 1n;
/** USER_HZ: cpuacct.stat counts in clock ticks (runc assumes 100 too). */
const CLOCK_TICKS = 100n;

function tryRead(io: CgroupIO, file: string): string | undefined {
  try {
    return io.read(file);
  } catch {
    return undefined;
  }
}

/** A single-value file: a number, or "max" (-> 2^64-1); undefined if absent or unparsable. */
function readN(io: CgroupIO, file: string): N | undefined {
  const t = tryRead(io, file)?.trim();
  if (t === undefined) return undefined;
  if (t === 'max') return U64_MAX;
  return /^\d+$/.test(t) ? BigInt(t) : undefined;
}

/** "key value" lines (memory.stat, cpu.stat, memory.events) -> map. */
export function parseKeyValues(text: string | undefined): Record<string, N> {
  const entries: [string, N][] = [];
  for (const line of (text ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && /^\d+$/.test(v)) entries.push([k, BigInt(v)]);
  }
  // Sorted, as Go prints a map.
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** "0-3,5" -> [0,1,2,3,5] */
export function parseCpuList(text: string | undefined): N[] {
  const out: N[] = [];
  for (const part of (text ?? '').trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) continue;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    for (let i = lo; i <= hi && out.length < 65536; i++) out.push(BigInt(i));
  }
  return out;
}

/** Go's omitempty for numbers: drop zero and undefined fields. */
function omitZero<T extends object>(o: T): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined && v !== 0n && !(Array.isArray(v) && v.length === 0)) out[k] = v;
  return out as T;
}

const emptyEntry = (): MemoryEntry => ({ limit: 0n, failcnt: 0n });

/** Hugepage sizes this kernel has, named as cgroup files name them ("2MB", "1GB"). */
export function hugePageSizes(dir = '/sys/kernel/mm/hugepages'): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const units = ['KB', 'MB', 'GB', 'TB', 'PB'];
  return names.flatMap((n) => {
    const m = /^hugepages-(\d+)kB$/.exec(n);
    if (!m) return [];
    let size = Number(m[1]);
    let u = 0;
    while (size >= 1024 && size % 1024 === 0 && u < units.length - 1) {
      size /= 1024;
      u++;
    }
    return [`${size}${units[u]}`];
  });
}

// ---------------------------------------------------------------------------
// v1

function cpuV1(cpuacct: string | undefined, cpu: string | undefined, io: CgroupIO): StatsData['cpu'] {
  const usage: StatsData['cpu']['usage'] = { kernel: 0n, user: 0n };
  if (cpuacct) {
    usage.total = readN(io, join(cpuacct, 'cpuacct.usage'));
    const percpu = tryRead(io, join(cpuacct, 'cpuacct.usage_percpu'));
    if (percpu) usage.percpu = percpu.trim().split(/\s+/).filter(Boolean).map(BigInt);
    const all = tryRead(io, join(cpuacct, 'cpuacct.usage_all'));
    if (all) {
      const rows = all.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
      usage.percpu_user = rows.map((r) => BigInt(r[1] ?? 0));
      usage.percpu_kernel = rows.map((r) => BigInt(r[2] ?? 0));
    }
    const st = parseKeyValues(tryRead(io, join(cpuacct, 'cpuacct.stat')));
    usage.user = ((st.user ?? 0n) * 1_000_000_000n) / CLOCK_TICKS;
    usage.kernel = ((st.system ?? 0n) * 1_000_000_000n) / CLOCK_TICKS;
  }
  const t = cpu ? parseKeyValues(tryRead(io, join(cpu, 'cpu.stat'))) : {};
  return {
    usage: { ...omitZero({ total: usage.total, percpu: usage.percpu, percpu_kernel: usage.percpu_kernel, percpu_user: usage.percpu_user }), kernel: usage.kernel, user: usage.user },
    throttling: omitZero({ periods: t.nr_periods, throttledPeriods: t.nr_throttled, throttledTime: t.throttled_time }),
  };
}

function memoryEntryV1(dir: string, prefix: string, io: CgroupIO): MemoryEntry {
  const f = (name: string) => join(dir, `${prefix}${name}`);
  if (!io.exists(f('usage_in_bytes'))) return emptyEntry();
  return omitZero({
    limit: readN(io, f('limit_in_bytes')) ?? 0n,
    usage: readN(io, f('usage_in_bytes')),
    max: readN(io, f('max_usage_in_bytes')),
    failcnt: readN(io, f('failcnt')) ?? 0n,
  }) as MemoryEntry;
}

/** runc's memoryEntry: limit and failcnt always present, in Go's field order. */
function withRequired(e: Partial<MemoryEntry>): MemoryEntry {
  const out: MemoryEntry = { limit: e.limit ?? 0n, failcnt: 0n };
  if (e.usage !== undefined) out.usage = e.usage;
  if (e.max !== undefined) out.max = e.max;
  delete (out as Partial<MemoryEntry>).failcnt;
  out.failcnt = e.failcnt ?? 0n;
  return out;
}

function memoryV1(dir: string, io: CgroupIO): StatsData['memory'] {
  const raw = parseKeyValues(tryRead(io, join(dir, 'memory.stat')));
  return omitZero({
    cache: raw.cache,
    usage: withRequired(memoryEntryV1(dir, 'memory.', io)),
    swap: withRequired(memoryEntryV1(dir, 'memory.memsw.', io)),
    kernel: withRequired(memoryEntryV1(dir, 'memory.kmem.', io)),
    kernelTCP: withRequired(memoryEntryV1(dir, 'memory.kmem.tcp.', io)),
    raw: Object.keys(raw).length ? raw : undefined,
  }) as StatsData['memory'];
}

/** "8:0 Read 4096" lines (blkio *_recursive files) -> entries; "Total" lines skipped. */
export function parseBlkio(text: string | undefined): BlkioEntry[] {
  const out: BlkioEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const f = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(f[0] ?? '');
    if (!m || f.length !== 3 || !/^\d+$/.test(f[2])) continue;
    out.push(omitZero({ major: BigInt(m[1]), minor: BigInt(m[2]), op: f[1], value: BigInt(f[2]) }));
  }
  return out;
}

function blkioV1(dir: string, io: CgroupIO): StatsData['blkio'] {
  const prefix = io.exists(join(dir, 'blkio.io_service_bytes_recursive'))
    ? 'blkio.'
    : io.exists(join(dir, 'blkio.bfq.io_service_bytes_recursive'))
      ? 'blkio.bfq.'
      : 'blkio.throttle.';
  return omitZero({
    ioServiceBytesRecursive: parseBlkio(tryRead(io, join(dir, `${prefix}io_service_bytes_recursive`))),
    ioServicedRecursive: parseBlkio(tryRead(io, join(dir, `${prefix}io_serviced_recursive`))),
  });
}

function cpusetStats(dir: string, io: CgroupIO, v2: boolean): StatsData['cpuset'] {
  const out: StatsData['cpuset'] = {};
  if (v2) {
    out.cpus = parseCpuList(tryRead(io, join(dir, 'cpuset.cpus.effective')));
    out.mems = parseCpuList(tryRead(io, join(dir, 'cpuset.mems.effective')));
    return out;
  }
  out.cpus = parseCpuList(tryRead(io, join(dir, 'cpuset.cpus')));
  out.mems = parseCpuList(tryRead(io, join(dir, 'cpuset.mems')));
  for (const k of ['cpu_exclusive', 'mem_hardwall', 'mem_exclusive', 'memory_migrate', 'memory_spread_page', 'memory_spread_slab', 'memory_pressure', 'sched_load_balance', 'sched_relax_domain_level']) {
    const t = tryRead(io, join(dir, `cpuset.${k}`))?.trim() ?? '0';
    out[k] = /^-?\d+$/.test(t) ? BigInt(t) : 0n;
  }
  return out;
}

function hugetlbV1(dir: string, io: CgroupIO, sizes: string[]): StatsData['hugetlb'] {
  const out: StatsData['hugetlb'] = {};
  for (const s of sizes) {
    const f = (n: string) => join(dir, `hugetlb.${s}.${n}`);
    if (!io.exists(f('usage_in_bytes'))) continue;
    out[s] = omitZero({ usage: readN(io, f('usage_in_bytes')), max: readN(io, f('max_usage_in_bytes')), failcnt: readN(io, f('failcnt')) ?? 0n }) as StatsData['hugetlb'][string];
    out[s].failcnt ??= 0n;
  }
  return out;
}

// ---------------------------------------------------------------------------
// v2

function cpuV2(dir: string, io: CgroupIO): StatsData['cpu'] {
  const s = parseKeyValues(tryRead(io, join(dir, 'cpu.stat')));
  const us = (v: N | undefined) => (v === undefined ? undefined : v * 1000n);
  return {
    usage: { ...omitZero({ total: us(s.usage_usec) }), kernel: us(s.system_usec) ?? 0n, user: us(s.user_usec) ?? 0n },
    throttling: omitZero({ periods: s.nr_periods, throttledPeriods: s.nr_throttled, throttledTime: us(s.throttled_usec) }),
  };
}

function memoryV2(dir: string, io: CgroupIO): StatsData['memory'] {
  const raw = parseKeyValues(tryRead(io, join(dir, 'memory.stat')));
  const events = parseKeyValues(tryRead(io, join(dir, 'memory.events')));
  const usage: MemoryEntry = {
    limit: readN(io, join(dir, 'memory.max')) ?? 0n,
    usage: readN(io, join(dir, 'memory.current')),
    max: readN(io, join(dir, 'memory.peak')),
    failcnt: events.max ?? 0n,
  };
  // v1 reports swap as memory+swap; runc keeps that meaning on v2.
  const swapCur = readN(io, join(dir, 'memory.swap.current'));
  const swapMax = readN(io, join(dir, 'memory.swap.max'));
  const swap: MemoryEntry = { limit: 0n, failcnt: 0n };
  if (swapCur !== undefined) {
    swap.usage = swapCur + (usage.usage ?? 0n);
    swap.limit = swapMax === undefined || swapMax === U64_MAX || usage.limit === U64_MAX ? U64_MAX : swapMax + usage.limit;
  }
  return omitZero({
    cache: raw.file,
    usage: withRequired(omitZero(usage)),
    swap: withRequired(omitZero(swap)),
    kernel: emptyEntry(),
    kernelTCP: emptyEntry(),
    raw: Object.keys(raw).length ? raw : undefined,
  }) as StatsData['memory'];
}

/** io.stat "8:0 rbytes=1 wbytes=2 rios=3 wios=4 ..." -> runc's blkio entries. */
export function parseIoStat(text: string | undefined): StatsData['blkio'] {
  const bytes: BlkioEntry[] = [];
  const ios: BlkioEntry[] = [];
  for (const line of (text ?? '').split('\n')) {
    const [dev, ...kvs] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    for (const kv of kvs) {
      const [k, v] = kv.split('=');
      if (!v || !/^\d+$/.test(v)) continue;
      const e = (op: string) => omitZero({ major: BigInt(m[1]), minor: BigInt(m[2]), op, value: BigInt(v) });
      if (k === 'rbytes') bytes.push(e('Read'));
      else if (k === 'wbytes') bytes.push(e('Write'));
      else if (k === 'rios') ios.push(e('Read'));
      else if (k === 'wios') ios.push(e('Write'));
    }
  }
  return omitZero({ ioServiceBytesRecursive: bytes, ioServicedRecursive: ios });
}

function hugetlbV2(dir: string, io: CgroupIO, sizes: string[]): StatsData['hugetlb'] {
  const out: StatsData['hugetlb'] = {};
  for (const s of sizes) {
    const cur = readN(io, join(dir, `hugetlb.${s}.current`));
    if (cur === undefined) continue;
    const ev = parseKeyValues(tryRead(io, join(dir, `hugetlb.${s}.events`)));
    out[s] = { ...omitZero({ usage: cur }), failcnt: ev.max ?? 0n };
  }
  return out;
}

function pidsStats(dir: string | undefined, io: CgroupIO): StatsData['pids'] {
  if (!dir) return {};
  const limit = readN(io, join(dir, 'pids.max'));
  return omitZero({ current: readN(io, join(dir, 'pids.current')), limit: limit === U64_MAX ? undefined : limit });
}

// ---------------------------------------------------------------------------

/** Whether the container's v2 directory has a controller's files (on hybrid, only some controllers live there). */
function v2Has(dir: string | undefined, file: string, io: CgroupIO): dir is string {
  return !!dir && io.exists(join(dir, file));
}

export function collectStats(paths: Readonly<Record<string, string>>, io: CgroupIO, sizes = hugePageSizes()): StatsData {
  const u = paths[UNIFIED];
  const pureV2 = Object.keys(paths).every((k) => k === UNIFIED);
  const v1 = (c: string) => (pureV2 ? undefined : paths[c]);
  const stats: StatsData = {
    cpu: { usage: { kernel: 0n, user: 0n }, throttling: {} },
    cpuset: {},
    memory: { usage: emptyEntry(), swap: emptyEntry(), kernel: emptyEntry(), kernelTCP: emptyEntry() },
    pids: {},
    blkio: {},
    hugetlb: {},
    intel_rdt: {},
    network_interfaces: null,
  };
  if (v1('cpuacct') || v1('cpu')) stats.cpu = cpuV1(v1('cpuacct'), v1('cpu'), io);
  else if (v2Has(u, 'cpu.stat', io)) stats.cpu = cpuV2(u, io);

  if (v1('cpuset')) stats.cpuset = cpusetStats(v1('cpuset')!, io, false);
  else if (v2Has(u, 'cpuset.cpus.effective', io)) stats.cpuset = cpusetStats(u, io, true);

  if (v1('memory')) stats.memory = memoryV1(v1('memory')!, io);
  else if (v2Has(u, 'memory.current', io)) stats.memory = memoryV2(u, io);

  if (v1('pids')) stats.pids = pidsStats(v1('pids'), io);
  else if (v2Has(u, 'pids.current', io)) stats.pids = pidsStats(u, io);

  if (v1('blkio')) stats.blkio = blkioV1(v1('blkio')!, io);
  else if (v2Has(u, 'io.stat', io)) stats.blkio = parseIoStat(tryRead(io, join(u, 'io.stat')));

  if (v1('hugetlb')) stats.hugetlb = hugetlbV1(v1('hugetlb')!, io, sizes);
  else if (u) stats.hugetlb = hugetlbV2(u, io, sizes);
  return stats;
}

/**
 * How many processes the OOM killer has killed in the container's memory
 * cgroup (v1 memory.oom_control "oom_kill", v2 memory.events "oom_kill");
 * undefined where the kernel does not count them.
 */
export function oomKillCount(paths: Readonly<Record<string, string>>, io: CgroupIO): N | undefined {
  const pureV2 = Object.keys(paths).every((k) => k === UNIFIED);
  const file = !pureV2 && paths.memory ? join(paths.memory, 'memory.oom_control') : paths[UNIFIED] ? join(paths[UNIFIED], 'memory.events') : undefined;
  if (!file) return undefined;
  return parseKeyValues(tryRead(io, file)).oom_kill;
}

/** JSON.stringify that prints bigints as plain numbers (as Go prints uint64). */
export function eventJSON(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `\u0000${v.toString()}\u0000` : v)).replace(
    /"\\u0000(-?\d+)\\u0000"/g,
    '$1',
  );
}
