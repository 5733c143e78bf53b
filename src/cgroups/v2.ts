/**
 * Writing linux.resources into a cgroup v2 directory, following runc 1.1's
 * libcontainer/cgroups/fs2/*.go, plus enabling the controllers a container
 * needs in cgroup.subtree_control along its path and the BPF device filter.
 */
import { posix } from 'node:path';
import type { Resources } from '../oci/types.js';
import { UserError } from '../errors.js';
import { allowsAll, DEVICE_FILTER_LICENSE, type DeviceRule, deviceFilterProgram, encodeProgram } from './devices.js';
import { CgroupError, type CgroupIO } from './fsutil.js';
import { type BlockIO, blkioToIoWeight, formatInt, limitString, sharesToWeight, swapToV2 } from './resources.js';
import type { SetContext } from './v1.js';

const join = posix.join;

const words = (text: string) => text.split(/\s+/).filter(Boolean);

/**
 * The root of the cgroup2 mount `leaf` lives in: the highest ancestor that
 * is still a cgroup directory (its parent has no cgroup.controllers).
 */
export function mountRootOf(leaf: string, io: CgroupIO): string {
  let dir = leaf;
  for (;;) {
    const parent = posix.dirname(dir);
    if (parent === dir || !io.exists(join(parent, 'cgroup.controllers'))) return dir;
    dir = parent;
  }
}

/** Controllers the v2 tree offers at its root (what could be enabled down to a container). */
export function availableControllers(leaf: string, io: CgroupIO): string[] {
  return words(io.read(join(mountRootOf(leaf, io), 'cgroup.controllers')));
}

/**
 * Enables `controllers` in cgroup.subtree_control of every ancestor of
 * `leaf`, top-down (runc enables them all along the path the same way).
 * Already enabled ones are left alone; nothing is ever disabled.
 */
export function enableControllers(leaf: string, controllers: readonly string[], io: CgroupIO): void {
  if (!controllers.length) return;
  const root = mountRootOf(leaf, io);
  if (leaf === root) return;
  const chain: string[] = [];
  for (let d = posix.dirname(leaf); ; d = posix.dirname(d)) {
    chain.unshift(d);
    if (d === root || d === '/') break;
  }
  for (const dir of chain) {
    const enabled = words(io.read(join(dir, 'cgroup.subtree_control')));
    const available = words(io.read(join(dir, 'cgroup.controllers')));
    for (const c of controllers) {
      if (enabled.includes(c)) continue;
      if (!available.includes(c)) {
        throw new UserError(`cgroup: the ${c} controller is not available in ${dir} (cgroup.controllers: ${available.join(' ') || 'none'})`);
      }
      try {
        io.write(join(dir, 'cgroup.subtree_control'), `+${c}`);
      } catch (e) {
        if (e instanceof CgroupError && e.code === 'EBUSY') {
          throw new UserError(`${e.message} (${dir} has processes of its own, so it cannot delegate the ${c} controller to child cgroups)`);
        }
        throw e;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// memory (fs2/memory.go)

export function setMemoryV2(dir: string, m: NonNullable<Resources['memory']>, { io, warn }: SetContext): void {
  const limit = m.limit ?? 0;
  if (m.checkBeforeUpdate && limit > 0) {
    const usage = Number(io.read(join(dir, 'memory.current')).trim());
    if (limit <= usage) throw new UserError(`linux.resources.memory.limit: rejecting memory limit ${limit} below usage ${usage}`);
  }
  const swap = swapToV2(m.swap ?? 0, limit);
  let swapValue = swap === 0 ? '' : limitString(swap);
  if (swapValue === '' && (m.swap ?? 0) > 0) swapValue = '0'; // memory == memory+swap: no swap at all
  if (swapValue !== '') {
    const file = join(dir, 'memory.swap.max');
    if (io.exists(file)) io.write(file, swapValue);
    else if (swapValue !== 'max' && swapValue !== '0') {
      throw new UserError(`cgroup: linux.resources.memory.swap: this kernel has no swap accounting (${file} does not exist)`);
    }
  }
  if (limit !== 0) io.write(join(dir, 'memory.max'), limitString(limit));
  if (m.reservation) io.write(join(dir, 'memory.low'), limitString(m.reservation));
  if (m.disableOOMKiller) warn('linux.resources.memory.disableOOMKiller is not applied: cgroup v2 has no way to disable the OOM killer');
  if (m.swappiness !== undefined && m.swappiness !== null) warn('linux.resources.memory.swappiness is not applied: cgroup v2 has no per-cgroup swappiness');
}

// ---------------------------------------------------------------------------
// cpu (fs2/cpu.go)

export function setCpuV2(dir: string, c: NonNullable<Resources['cpu']>, { io }: SetContext): void {
  if (c.realtimeRuntime || c.realtimePeriod) {
    throw new UserError('linux.resources.cpu.realtimeRuntime/realtimePeriod: real-time scheduling limits are not supported on cgroup v2');
  }
  if (c.idle !== undefined && c.idle !== null) io.write(join(dir, 'cpu.idle'), formatInt(c.idle));
  if (c.shares) io.write(join(dir, 'cpu.weight'), String(sharesToWeight(c.shares)));
  const quota = c.quota ?? 0;
  const period = c.period ?? 0;
  let burstPending: string | undefined;
  if (c.burst !== undefined && c.burst !== null) {
    const burst = formatInt(c.burst);
    const file = join(dir, 'cpu.max.burst');
    if (!io.exists(file)) throw new UserError(`cgroup: linux.resources.cpu.burst: this kernel has no cpu burst (${file} does not exist)`);
    try {
      io.write(file, burst);
    } catch (e) {
      // A burst above the old quota is refused; retry once the quota is written.
      if (!(e instanceof CgroupError && e.code === 'EINVAL') || quota === 0) throw e;
      burstPending = burst;
    }
  }
  if (quota !== 0 || period !== 0) {
    let value = quota > 0 ? formatInt(quota) : 'max';
    if (period !== 0) value += ` ${formatInt(period)}`;
    io.write(join(dir, 'cpu.max'), value);
    if (burstPending !== undefined) io.write(join(dir, 'cpu.max.burst'), burstPending);
  }
}

export function setCpusetV2(dir: string, c: NonNullable<Resources['cpu']>, { io }: SetContext): void {
  if (c.cpus) io.write(join(dir, 'cpuset.cpus'), c.cpus);
  if (c.mems) io.write(join(dir, 'cpuset.mems'), c.mems);
}

// ---------------------------------------------------------------------------
// io (fs2/io.go)

export function setIoV2(dir: string, b: BlockIO, { io, warn }: SetContext): void {
  const bfqFile = join(dir, 'io.bfq.weight');
  const bfq = io.exists(bfqFile);
  if (b.weight) {
    if (bfq) io.write(bfqFile, String(b.weight));
    else io.write(join(dir, 'io.weight'), String(blkioToIoWeight(b.weight)));
  }
  for (const wd of b.weightDevice ?? []) {
    if (!wd.weight) continue;
    if (!bfq) throw new UserError(`cgroup: linux.resources.blockIO.weightDevice needs the BFQ I/O scheduler (${bfqFile} does not exist)`);
    io.write(bfqFile, `${wd.major}:${wd.minor} ${wd.weight}`);
  }
  if (b.leafWeight || (b.weightDevice ?? []).some((wd) => wd.leafWeight)) {
    warn('linux.resources.blockIO.leafWeight is not applied: cgroup v2 has no leaf weights');
  }
  const throttles = [
    ['throttleReadBpsDevice', 'rbps'],
    ['throttleWriteBpsDevice', 'wbps'],
    ['throttleReadIOPSDevice', 'riops'],
    ['throttleWriteIOPSDevice', 'wiops'],
  ] as const;
  for (const [field, key] of throttles) {
    for (const td of b[field] ?? []) io.write(join(dir, 'io.max'), `${td.major}:${td.minor} ${key}=${formatInt(td.rate)}`);
  }
}

// ---------------------------------------------------------------------------
// hugetlb (fs2/hugetlb.go)

export function setHugetlbV2(dir: string, limits: NonNullable<Resources['hugepageLimits']>, { io }: SetContext): void {
  let rsvd = true;
  for (const h of limits) {
    const file = join(dir, `hugetlb.${h.pageSize}.max`);
    if (!/^\d+[KMGTP]?B$/.test(h.pageSize) || !io.exists(file)) {
      throw new UserError(`cgroup: linux.resources.hugepageLimits: page size ${JSON.stringify(h.pageSize)} is not supported here (${file} does not exist)`);
    }
    io.write(file, formatInt(h.limit));
    const rsvdFile = join(dir, `hugetlb.${h.pageSize}.rsvd.max`);
    if (rsvd && io.exists(rsvdFile)) io.write(rsvdFile, formatInt(h.limit));
    else rsvd = false;
  }
}

// ---------------------------------------------------------------------------
// unified (fs2.go setUnified)

/** The controller a unified key belongs to ("memory.high" -> "memory"); undefined for core files ("cgroup.*"). */
export function unifiedController(key: string): string | undefined {
  const dot = key.indexOf('.');
  if (dot <= 0 || key.includes('/') || key.startsWith('.')) {
    throw new UserError(`linux.resources.unified: ${JSON.stringify(key)} must be a file name of the form CONTROLLER.PARAMETER`);
  }
  const c = key.slice(0, dot);
  return c === 'cgroup' ? undefined : c;
}

export function setUnified(dir: string, unified: Record<string, string>, { io }: SetContext): void {
  for (const [key, value] of Object.entries(unified)) {
    unifiedController(key);
    const file = join(dir, key);
    if (!io.exists(file)) {
      throw new UserError(`linux.resources.unified: ${JSON.stringify(key)} is not a file in ${dir} (unknown key, or its controller is not enabled there)`);
    }
    io.write(file, value);
  }
}

// ---------------------------------------------------------------------------
// devices (fs2/devices.go): a BPF_CGROUP_DEVICE program

export type AttachDeviceFilter = (cgroupDir: string, program: Buffer, license: string) => void;

export function setDevicesV2(dir: string, rules: readonly DeviceRule[], attach: AttachDeviceFilter): void {
  if (allowsAll(rules)) return; // nothing to filter
  attach(dir, encodeProgram(deviceFilterProgram(rules)), DEVICE_FILTER_LICENSE);
}
