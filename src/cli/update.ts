import fs from 'node:fs';
import type { Command } from 'commander';
import { cgroupsFromPaths } from '../cgroups/manager.js';
import { forUpdate, mergeResources, parseIntFlag, parseMemory, parseResources } from '../cgroups/resources.js';
import { UserError } from '../errors.js';
import { statusOf } from '../lifecycle/container.js';
import type { Store } from '../lifecycle/store.js';
import { log } from '../log.js';
import type { Resources } from '../oci/types.js';
import { type Context, naming } from './context.js';

export interface UpdateFlags {
  resources?: string;
  blkioWeight?: string;
  cpuPeriod?: string;
  cpuQuota?: string;
  cpuShare?: string;
  cpuRtPeriod?: string;
  cpuRtRuntime?: string;
  cpusetCpus?: string;
  cpusetMems?: string;
  cpuIdle?: string;
  memory?: string;
  memorySwap?: string;
  memoryReservation?: string;
  kernelMemory?: string;
  kernelMemoryTcp?: string;
  pidsLimit?: string;
  l3CacheSchema?: string;
  memBwSchema?: string;
}

/** The LinuxResources an `update` asks for: the -r document, then the flags on top (as runc). */
export function requestedResources(o: UpdateFlags, readInput: (file: string) => string): Resources {
  let r: Resources = {};
  if (o.resources !== undefined) {
    const file = o.resources === '-' ? '<stdin>' : o.resources;
    let text: string;
    try {
      text = readInput(o.resources);
    } catch (e) {
      throw new UserError(`${file}: ${(e as Error).message}`);
    }
    r = parseResources(text, file);
  }
  if (o.l3CacheSchema !== undefined || o.memBwSchema !== undefined) {
    throw new UserError('--l3-cache-schema/--mem-bw-schema: Intel RDT is not supported');
  }
  const memory = { ...(r.memory ?? {}) };
  const cpu = { ...(r.cpu ?? {}) };
  if (o.memory !== undefined) memory.limit = parseMemory('--memory', o.memory);
  if (o.memorySwap !== undefined) memory.swap = parseMemory('--memory-swap', o.memorySwap);
  if (o.memoryReservation !== undefined) memory.reservation = parseMemory('--memory-reservation', o.memoryReservation);
  if (o.kernelMemory !== undefined) memory.kernel = parseMemory('--kernel-memory', o.kernelMemory);
  if (o.kernelMemoryTcp !== undefined) memory.kernelTCP = parseMemory('--kernel-memory-tcp', o.kernelMemoryTcp);
  if (o.cpuPeriod !== undefined) cpu.period = parseIntFlag('--cpu-period', o.cpuPeriod, 0);
  if (o.cpuQuota !== undefined) cpu.quota = parseIntFlag('--cpu-quota', o.cpuQuota);
  if (o.cpuShare !== undefined) cpu.shares = parseIntFlag('--cpu-share', o.cpuShare, 0);
  if (o.cpuRtPeriod !== undefined) cpu.realtimePeriod = parseIntFlag('--cpu-rt-period', o.cpuRtPeriod, 0);
  if (o.cpuRtRuntime !== undefined) cpu.realtimeRuntime = parseIntFlag('--cpu-rt-runtime', o.cpuRtRuntime);
  if (o.cpuIdle !== undefined) cpu.idle = parseIntFlag('--cpu-idle', o.cpuIdle);
  if (o.cpusetCpus !== undefined) cpu.cpus = o.cpusetCpus;
  if (o.cpusetMems !== undefined) cpu.mems = o.cpusetMems;
  if (Object.keys(memory).length) r.memory = memory;
  if (Object.keys(cpu).length) r.cpu = cpu;
  if (o.pidsLimit !== undefined) r.pids = { limit: parseIntFlag('--pids-limit', o.pidsLimit) };
  if (o.blkioWeight !== undefined) {
    const w = parseIntFlag('--blkio-weight', o.blkioWeight, 0);
    if (w !== 0 && (w < 10 || w > 1000)) throw new UserError(`invalid value for --blkio-weight: ${w} (valid range is 10-1000)`);
    r.blockIO = { ...(r.blockIO ?? {}), weight: w };
  }
  return r;
}

/**
 * `update`: merge the request into the container's stored resources (zero
 * or absent values keep what is there), write the merged set to the live
 * cgroups, and store it so that the next update merges with it.
 */
export function update(store: Store, id: string, o: UpdateFlags): void {
  const rec = store.load(id);
  const status = statusOf(store, rec);
  if (status === 'stopped' || status === 'creating') throw new UserError(`container not running: ${status}`);
  if (!rec.cgroups) throw new UserError('container has no cgroups to update');
  const upd = requestedResources(o, (file) => fs.readFileSync(file === '-' ? 0 : file, 'utf8'));
  if (upd.devices?.length) log.warn('update: linux.resources.devices cannot be changed by update; the device rules were left as they are');
  const old = rec.config.linux?.resources ?? {};
  const merged = mergeResources(old, upd);
  const cg = cgroupsFromPaths(rec.cgroups.paths, rec.cgroups.created);
  for (const w of cg.apply(forUpdate(merged), { skipDevices: true })) log.warn(w);
  rec.config.linux = { ...(rec.config.linux ?? {}), resources: { ...merged, devices: old.devices } };
  if (!old.devices) delete rec.config.linux.resources!.devices;
  store.save(rec);
}

export function register(program: Command, ctx: () => Context): void {
  program
    .command('update')
    .description('update the resource limits of a running container')
    .argument('<container-id>')
    .option('-r, --resources <file>', "a file with LinuxResources JSON to apply, or '-' for stdin")
    .option('--blkio-weight <n>', 'per-cgroup I/O weight, 10 to 1000')
    .option('--cpu-period <us>', 'CPU CFS period (microseconds)')
    .option('--cpu-quota <us>', 'CPU CFS quota per period (microseconds); -1 for none')
    .option('--cpu-share <n>', 'CPU shares (relative weight)')
    .option('--cpu-rt-period <us>', 'CPU real-time period (microseconds)')
    .option('--cpu-rt-runtime <us>', 'CPU real-time runtime per period (microseconds)')
    .option('--cpuset-cpus <list>', 'CPUs to use (0-3, 0,1)')
    .option('--cpuset-mems <list>', 'memory nodes to use (0-3, 0,1)')
    .option('--cpu-idle <0|1>', 'SCHED_IDLE for the cgroup (1) or not (0)')
    .option('--memory <bytes>', 'memory limit (64m, 1g; -1 for none)')
    .option('--memory-swap <bytes>', 'memory+swap limit (-1 for unlimited swap)')
    .option('--memory-reservation <bytes>', 'memory soft limit')
    .option('--kernel-memory <bytes>', 'obsolete: accepted and ignored, with a warning')
    .option('--kernel-memory-tcp <bytes>', 'obsolete: accepted and ignored, with a warning')
    .option('--pids-limit <n>', 'maximum number of processes (-1 for none)')
    .option('--l3-cache-schema <schema>', 'Intel RDT L3 cache schema (not supported)')
    .option('--mem-bw-schema <schema>', 'Intel RDT memory bandwidth schema (not supported)')
    .action((id: string, o: UpdateFlags) => naming('update', id, () => update(ctx().store, id, o)));
}
