/**
 * Writing linux.resources into cgroup v1 hierarchies, one function per
 * controller, following runc 1.1's libcontainer/cgroups/fs/*.go (file names,
 * formats, write order and the retries the kernel's checks make necessary).
 * `dir` is the container's directory in that controller's hierarchy.
 */
import { posix } from 'node:path';
import type { Resources } from '../oci/types.js';
import { UserError } from '../errors.js';
import { type DeviceRule, v1DeviceWrites } from './devices.js';
import { CgroupError, type CgroupIO } from './fsutil.js';
import { type BlockIO, formatInt, type Network, type Rdma } from './resources.js';

const join = posix.join;

export interface SetContext {
  io: CgroupIO;
  warn(msg: string): void;
}

function readUint(io: CgroupIO, file: string): number {
  const text = io.read(file).trim();
  const n = Number(text);
  if (!/^\d+$/.test(text)) throw new UserError(`cgroup: ${file}: unexpected content ${JSON.stringify(text)}`);
  return n;
}

const isErrno = (e: unknown, code: string) => e instanceof CgroupError && e.code === code;

// ---------------------------------------------------------------------------
// memory (fs/memory.go)

export function setMemoryV1(dir: string, m: NonNullable<Resources['memory']>, { io }: SetContext): void {
  const limitFile = join(dir, 'memory.limit_in_bytes');
  const swapFile = join(dir, 'memory.memsw.limit_in_bytes');
  const limit = m.limit ?? 0;
  let swap = m.swap ?? 0;
  // Unlimited memory without a swap value means unlimited swap too.
  if (limit === -1 && swap === 0 && io.exists(swapFile)) swap = -1;

  const setLimit = () => {
    if (limit === 0) return;
    try {
      io.write(limitFile, formatInt(limit));
    } catch (e) {
      if (!isErrno(e, 'EBUSY')) throw e;
      // The kernel refuses a limit below what the cgroup already uses.
      let detail = '';
      try {
        detail = ` (current usage ${readUint(io, join(dir, 'memory.usage_in_bytes'))}, peak usage ${readUint(io, join(dir, 'memory.max_usage_in_bytes'))})`;
      } catch {
        /* the message stands without it */
      }
      throw new UserError(`${(e as Error).message}: the limit is below the memory in use${detail}`);
    }
  };
  const setSwap = () => {
    if (swap === 0) return;
    if (!io.exists(swapFile)) {
      throw new UserError(`cgroup: linux.resources.memory.swap: this kernel has no swap accounting (${swapFile} does not exist)`);
    }
    io.write(swapFile, formatInt(swap));
  };

  // memsw must stay >= the memory limit after every single write, so the
  // order depends on whether the limits grow or shrink.
  if (limit !== 0 && swap !== 0) {
    const current = readUint(io, limitFile);
    if (swap === -1 || current < swap) {
      setSwap();
      setLimit();
    } else {
      setLimit();
      setSwap();
    }
  } else {
    setLimit();
    setSwap();
  }
  if (m.reservation) io.write(join(dir, 'memory.soft_limit_in_bytes'), formatInt(m.reservation));
  if (m.disableOOMKiller) io.write(join(dir, 'memory.oom_control'), '1');
  if (m.swappiness !== undefined && m.swappiness !== null && m.swappiness !== -1) {
    if (m.swappiness < 0 || m.swappiness > 100) {
      throw new UserError(`linux.resources.memory.swappiness: invalid value ${m.swappiness} (valid range is 0-100)`);
    }
    io.write(join(dir, 'memory.swappiness'), String(m.swappiness));
  }
}

// ---------------------------------------------------------------------------
// cpu (fs/cpu.go)

export function setCpuV1(dir: string, c: NonNullable<Resources['cpu']>, { io }: SetContext): void {
  if (c.shares) {
    const file = join(dir, 'cpu.shares');
    io.write(file, formatInt(c.shares));
    // The kernel clamps out-of-range shares; say so instead of running with another value.
    const got = readUint(io, file);
    if (c.shares > got) throw new UserError(`linux.resources.cpu.shares: ${c.shares} is above the maximum allowed cpu-shares ${got}`);
    if (c.shares < got) throw new UserError(`linux.resources.cpu.shares: ${c.shares} is below the minimum allowed cpu-shares ${got}`);
  }
  const quota = c.quota ?? 0;
  let periodPending: string | undefined;
  if (c.period) {
    const period = formatInt(c.period);
    try {
      io.write(join(dir, 'cpu.cfs_period_us'), period);
    } catch (e) {
      // A shorter period can be refused while the old quota is still in
      // place (old_quota/new_period above the parent's); retry after the quota.
      if (!isErrno(e, 'EINVAL') || quota === 0) throw e;
      periodPending = period;
    }
  }
  let burstPending: string | undefined;
  if (c.burst !== undefined && c.burst !== null) {
    const burst = formatInt(c.burst);
    const file = join(dir, 'cpu.cfs_burst_us');
    if (!io.exists(file)) throw new UserError(`cgroup: linux.resources.cpu.burst: this kernel has no cpu burst (${file} does not exist)`);
    try {
      io.write(file, burst);
    } catch (e) {
      if (!isErrno(e, 'EINVAL') || quota === 0) throw e;
      burstPending = burst;
    }
  }
  if (quota !== 0) {
    io.write(join(dir, 'cpu.cfs_quota_us'), formatInt(quota));
    if (periodPending !== undefined) io.write(join(dir, 'cpu.cfs_period_us'), periodPending);
    if (burstPending !== undefined) io.write(join(dir, 'cpu.cfs_burst_us'), burstPending);
  }
  if (c.idle !== undefined && c.idle !== null) io.write(join(dir, 'cpu.idle'), formatInt(c.idle));
  if (c.realtimePeriod) io.write(join(dir, 'cpu.rt_period_us'), formatInt(c.realtimePeriod));
  if (c.realtimeRuntime) io.write(join(dir, 'cpu.rt_runtime_us'), formatInt(c.realtimeRuntime));
}

// ---------------------------------------------------------------------------
// cpuset (fs/cpuset.go)

/**
 * A fresh v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems:
 * no task can join it and no child can be given a subset. Like runc
 * (ensureParent/copyIfNeeded), walk up to the nearest ancestor that has
 * values and copy them down level by level, top-down.
 */
export function fillCpuset(leaf: string, io: CgroupIO): void {
  for (const file of ['cpuset.cpus', 'cpuset.mems']) {
    const empty: string[] = [];
    let dir = leaf;
    let value = io.read(join(dir, file)).trim();
    while (value === '') {
      empty.push(dir);
      const parent = posix.dirname(dir);
      if (parent === dir || !io.exists(join(parent, file))) return; // left the hierarchy: the later write reports it
      dir = parent;
      value = io.read(join(dir, file)).trim();
    }
    for (const d of empty.reverse()) io.write(join(d, file), value);
  }
}

export function setCpusetV1(dir: string, c: NonNullable<Resources['cpu']>, { io }: SetContext): void {
  fillCpuset(dir, io);
  if (c.cpus) io.write(join(dir, 'cpuset.cpus'), c.cpus);
  if (c.mems) io.write(join(dir, 'cpuset.mems'), c.mems);
}

// ---------------------------------------------------------------------------
// pids (fs/pids.go; the same file on v2)

export function setPids(dir: string, limit: number, { io }: SetContext): void {
  if (limit === 0) return;
  io.write(join(dir, 'pids.max'), limit > 0 ? formatInt(limit) : 'max');
}

// ---------------------------------------------------------------------------
// blkio (fs/blkio.go)

export function setBlkioV1(dir: string, b: BlockIO, { io }: SetContext): void {
  // BFQ (the only proportional scheduler left in recent kernels) has its own files.
  const bfq = io.exists(join(dir, 'blkio.bfq.weight'));
  const weightFile = bfq ? 'blkio.bfq.weight' : 'blkio.weight';
  const weightDeviceFile = bfq ? 'blkio.bfq.weight_device' : 'blkio.weight_device';
  const need = (file: string, what: string) => {
    if (!io.exists(join(dir, file))) {
      throw new UserError(`cgroup: linux.resources.blockIO.${what}: not supported by this kernel's I/O scheduler (${join(dir, file)} does not exist)`);
    }
  };
  if (b.weight) {
    need(weightFile, 'weight');
    io.write(join(dir, weightFile), String(b.weight));
  }
  if (b.leafWeight) {
    need('blkio.leaf_weight', 'leafWeight');
    io.write(join(dir, 'blkio.leaf_weight'), String(b.leafWeight));
  }
  for (const wd of b.weightDevice ?? []) {
    if (wd.weight) {
      need(weightDeviceFile, 'weightDevice');
      io.write(join(dir, weightDeviceFile), `${wd.major}:${wd.minor} ${wd.weight}`);
    }
    if (wd.leafWeight) {
      need('blkio.leaf_weight_device', 'weightDevice[].leafWeight');
      io.write(join(dir, 'blkio.leaf_weight_device'), `${wd.major}:${wd.minor} ${wd.leafWeight}`);
    }
  }
  const throttles = [
    ['throttleReadBpsDevice', 'blkio.throttle.read_bps_device'],
    ['throttleWriteBpsDevice', 'blkio.throttle.write_bps_device'],
    ['throttleReadIOPSDevice', 'blkio.throttle.read_iops_device'],
    ['throttleWriteIOPSDevice', 'blkio.throttle.write_iops_device'],
  ] as const;
  for (const [field, file] of throttles) {
    for (const td of b[field] ?? []) io.write(join(dir, file), `${td.major}:${td.minor} ${formatInt(td.rate)}`);
  }
}

// ---------------------------------------------------------------------------
// hugetlb (fs/hugetlb.go)

export function setHugetlbV1(dir: string, limits: NonNullable<Resources['hugepageLimits']>, { io }: SetContext): void {
  let rsvd = true;
  for (const h of limits) {
    const file = join(dir, `hugetlb.${h.pageSize}.limit_in_bytes`);
    if (!/^\d+[KMGTP]?B$/.test(h.pageSize) || !io.exists(file)) {
      throw new UserError(`cgroup: linux.resources.hugepageLimits: page size ${JSON.stringify(h.pageSize)} is not supported here (${file} does not exist)`);
    }
    io.write(file, formatInt(h.limit));
    const rsvdFile = join(dir, `hugetlb.${h.pageSize}.rsvd.limit_in_bytes`);
    if (rsvd && io.exists(rsvdFile)) io.write(rsvdFile, formatInt(h.limit));
    else rsvd = false;
  }
}

// ---------------------------------------------------------------------------
// net_cls, net_prio (fs/net_cls.go, fs/net_prio.go): v1 only

export function setNetClsV1(dir: string, n: Network, { io }: SetContext): void {
  if (n.classID) io.write(join(dir, 'net_cls.classid'), String(n.classID));
}

export function setNetPrioV1(dir: string, n: Network, { io }: SetContext): void {
  for (const p of n.priorities ?? []) io.write(join(dir, 'net_prio.ifpriomap'), `${p.name} ${p.priority}`);
}

// ---------------------------------------------------------------------------
// rdma (fs/rdma.go, fs2/rdma.go: the same file on both)

export function setRdma(dir: string, rdma: Rdma, { io }: SetContext): void {
  for (const [device, l] of Object.entries(rdma)) {
    let line = device;
    if (l.hcaHandles !== undefined && l.hcaHandles !== null) line += ` hca_handle=${l.hcaHandles}`;
    if (l.hcaObjects !== undefined && l.hcaObjects !== null) line += ` hca_object=${l.hcaObjects}`;
    io.write(join(dir, 'rdma.max'), line);
  }
}

// ---------------------------------------------------------------------------
// devices (fs/devices.go)

/**
 * Sets a v1 devices cgroup to exactly `rules`: the reset rule first ("a" to
 * devices.deny, or to devices.allow for an allow-all base), then the
 * exceptions, as runc's emulator transition from a fresh cgroup does.
 */
export function setDevicesV1(dir: string, rules: readonly DeviceRule[], { io }: SetContext): void {
  for (const w of v1DeviceWrites(rules)) io.write(join(dir, w.file), w.value);
}
