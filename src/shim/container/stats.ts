/**
 * `stats --no-stream`: two samples of the runtime's statistics
 * (`tsrun events --stats`, runc's JSON) half a second apart, shown as Docker
 * shows them: CPU %, MEM USAGE / LIMIT, MEM %, NET I/O, BLOCK I/O, PIDS.
 */
import fs from 'node:fs';
import os from 'node:os';
import type { ShimGlobals } from '../cli/context.js';
import { runtime } from './runtime.js';
import { deriveState } from './status.js';
import type { ContainerRecord } from './store.js';

interface RuntimeStats {
  cpu?: { usage?: { total?: number } };
  memory?: { usage?: { usage?: number; limit?: number }; raw?: Record<string, number> };
  pids?: { current?: number };
  blkio?: { ioServiceBytesRecursive?: { op: string; value: number }[] };
}

export interface Sample {
  cpuPercent: number;
  memUsage: number;
  memLimit: number;
  netRx: number;
  netTx: number;
  blkRead: number;
  blkWrite: number;
  pids: number;
}

function readStats(g: ShimGlobals, id: string): RuntimeStats | undefined {
  const r = runtime(g, ['events', '--stats', id]);
  if (r.code !== 0) return undefined;
  try {
    return (JSON.parse(r.stdout) as { data?: RuntimeStats }).data;
  } catch {
    return undefined;
  }
}

/** eth* counters of the container's namespace, read through its init's /proc. */
function netIO(pid: number | undefined): [number, number] {
  if (!pid) return [0, 0];
  try {
    let rx = 0;
    let tx = 0;
    for (const line of fs.readFileSync(`/proc/${pid}/net/dev`, 'utf8').split('\n').slice(2)) {
      const m = /^\s*([^:]+):\s*(.*)$/.exec(line);
      if (!m || m[1] === 'lo') continue;
      const f = m[2].trim().split(/\s+/).map(Number);
      rx += f[0];
      tx += f[8];
    }
    return [rx, tx];
  } catch {
    return [0, 0];
  }
}

const hostMemory = () => os.totalmem();

export async function containerStats(g: ShimGlobals, recs: ContainerRecord[]): Promise<(Sample | undefined)[]> {
  const running = recs.map((r) => deriveState(g.root, r).status === 'running');
  const first = recs.map((r, i) => (running[i] ? readStats(g, r.id) : undefined));
  const t0 = process.hrtime.bigint();
  await new Promise((r) => setTimeout(r, 500));
  return recs.map((r, i) => {
    if (!running[i]) return undefined;
    const s = readStats(g, r.id);
    if (!s) return undefined;
    const ns = Number(process.hrtime.bigint() - t0);
    const cpuDelta = (s.cpu?.usage?.total ?? 0) - (first[i]?.cpu?.usage?.total ?? 0);
    // the cgroup's "no limit" is a huge number: Docker shows the host's memory then
    const limit = s.memory?.usage?.limit && s.memory.usage.limit < hostMemory() ? s.memory.usage.limit : hostMemory();
    // Docker subtracts the page cache (inactive_file) from usage
    const usage = Math.max(0, (s.memory?.usage?.usage ?? 0) - (s.memory?.raw?.total_inactive_file ?? s.memory?.raw?.inactive_file ?? 0));
    const blk = s.blkio?.ioServiceBytesRecursive ?? [];
    const [rx, tx] = netIO(r.state.pid);
    return {
      cpuPercent: ns > 0 ? (cpuDelta / ns) * 100 : 0,
      memUsage: usage,
      memLimit: limit,
      netRx: rx,
      netTx: tx,
      blkRead: blk.filter((b) => /^read$/i.test(b.op)).reduce((a, b) => a + b.value, 0),
      blkWrite: blk.filter((b) => /^write$/i.test(b.op)).reduce((a, b) => a + b.value, 0),
      pids: s.pids?.current ?? 0,
    };
  });
}

function scaled(n: number, base: number, units: string[]): [number, string] {
  let i = 0;
  while (n >= base && i < units.length - 1) {
    n /= base;
    i++;
  }
  return [n, units[i]];
}

/** Docker's BytesSize (memory): binary units, two decimals. */
export function binarySize(n: number): string {
  const [v, u] = scaled(n, 1024, ['B', 'KiB', 'MiB', 'GiB', 'TiB']);
  return `${u === 'B' ? v : v.toFixed(2).replace(/\.?0+$/, '')}${u}`;
}

/** Docker's HumanSize (I/O): decimal units, three significant digits. */
export function decimalSize(n: number): string {
  const [v, u] = scaled(n, 1000, ['B', 'kB', 'MB', 'GB', 'TB']);
  return `${u === 'B' ? v : Number(v.toPrecision(3))}${u}`;
}

export const STATS_HEADER = ['CONTAINER ID', 'NAME', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'BLOCK I/O', 'PIDS'];

export function statsRow(r: ContainerRecord, s: Sample | undefined): string[] {
  if (!s) return [r.id.slice(0, 12), r.name, '--', '-- / --', '--', '--', '--', '--'];
  return [
    r.id.slice(0, 12),
    r.name,
    `${s.cpuPercent.toFixed(2)}%`,
    `${binarySize(s.memUsage)} / ${binarySize(s.memLimit)}`,
    `${((s.memUsage / s.memLimit) * 100).toFixed(2)}%`,
    `${decimalSize(s.netRx)} / ${decimalSize(s.netTx)}`,
    `${decimalSize(s.blkRead)} / ${decimalSize(s.blkWrite)}`,
    String(s.pids),
  ];
}
