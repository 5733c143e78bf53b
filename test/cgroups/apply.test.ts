/**
 * linux.resources -> control files, against an in-memory cgroup tree
 * (fixtures/fakefs.ts): which file gets which value, in which order, and
 * which errors come out. The specs check the same against real kernels.
 */
import t from 'tap';
import { applyResources } from '../../src/cgroups/apply.js';
import type { Resources } from '../../src/oci/types.js';
import { UserError } from '../../src/errors.js';
import { dirWith, fakeFs, V1_CPU_FILES, V1_MEMORY_FILES, V2_FILES } from './fixtures/fakefs.js';

const MiB = 2 ** 20;

// --- v1 (hybrid: v1 controllers plus an empty cgroup2 at /sys/fs/cgroup/unified)

const V1 = {
  memory: '/sys/fs/cgroup/memory/c1',
  cpu: '/sys/fs/cgroup/cpu/c1',
  cpuset: '/sys/fs/cgroup/cpuset/p/c1',
  pids: '/sys/fs/cgroup/pids/c1',
  blkio: '/sys/fs/cgroup/blkio/c1',
  devices: '/sys/fs/cgroup/devices/c1',
  freezer: '/sys/fs/cgroup/freezer/c1',
  unified: '/sys/fs/cgroup/unified/c1',
};

function v1fs(extra: Record<string, string> = {}) {
  return fakeFs({
    ...dirWith(V1.memory, V1_MEMORY_FILES, { 'memory.limit_in_bytes': '9223372036854771712' }),
    ...dirWith(V1.cpu, V1_CPU_FILES, { 'cpu.shares': '1024' }),
    ...dirWith('/sys/fs/cgroup/cpuset', ['cpuset.cpus', 'cpuset.mems'], { 'cpuset.cpus': '0-3', 'cpuset.mems': '0' }),
    ...dirWith('/sys/fs/cgroup/cpuset/p', ['cpuset.cpus', 'cpuset.mems']),
    ...dirWith(V1.cpuset, ['cpuset.cpus', 'cpuset.mems']),
    ...dirWith(V1.pids, ['pids.max']),
    ...dirWith(V1.blkio, ['blkio.bfq.weight', 'blkio.bfq.weight_device', 'blkio.throttle.read_bps_device', 'blkio.throttle.write_iops_device']),
    ...dirWith(V1.devices, ['devices.allow', 'devices.deny', 'devices.list']),
    ...dirWith('/sys/fs/cgroup/unified', ['cgroup.controllers', 'cgroup.subtree_control'], { 'cgroup.controllers': 'hugetlb' }),
    ...dirWith(V1.unified, ['cgroup.controllers', 'cgroup.subtree_control', 'cgroup.procs']),
    ...extra,
  });
}

const SKIP_DEV = { skipDevices: true };

t.test('v1: each resource in its hierarchy, in runc file formats', async (t) => {
  const fs = v1fs();
  // The kernel keeps what it accepts; cpu.shares reads back as written.
  const warnings = applyResources(V1, {
    memory: { limit: 32 * MiB, swap: 64 * MiB, reservation: 16 * MiB, swappiness: 10, disableOOMKiller: true },
    cpu: { shares: 512, quota: 50000, period: 100000, cpus: '1', mems: '0', idle: 1 },
    pids: { limit: 10 },
    blockIO: { weight: 300, weightDevice: [{ major: 8, minor: 0, weight: 200 }], throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }], throttleWriteIOPSDevice: [{ major: 8, minor: 16, rate: 100 }] },
  }, { io: fs, ...SKIP_DEV });
  t.same(warnings, []);
  t.same(fs.writes, [
    // cpuset: the empty parent p filled from the root first, then the leaf's own values
    '/sys/fs/cgroup/cpuset/p/cpuset.cpus=0-3',
    '/sys/fs/cgroup/cpuset/p/c1/cpuset.cpus=0-3',
    '/sys/fs/cgroup/cpuset/p/cpuset.mems=0',
    '/sys/fs/cgroup/cpuset/p/c1/cpuset.mems=0',
    '/sys/fs/cgroup/cpuset/p/c1/cpuset.cpus=1',
    '/sys/fs/cgroup/cpuset/p/c1/cpuset.mems=0',
    // memory: the limits grow, so memsw first
    `${V1.memory}/memory.limit_in_bytes=${32 * MiB}`,
    `${V1.memory}/memory.memsw.limit_in_bytes=${64 * MiB}`,
    `${V1.memory}/memory.soft_limit_in_bytes=${16 * MiB}`,
    `${V1.memory}/memory.oom_control=1`,
    `${V1.memory}/memory.swappiness=10`,
    `${V1.cpu}/cpu.shares=512`,
    `${V1.cpu}/cpu.cfs_period_us=100000`,
    `${V1.cpu}/cpu.cfs_quota_us=50000`,
    `${V1.cpu}/cpu.idle=1`,
    `${V1.pids}/pids.max=10`,
    `${V1.blkio}/blkio.bfq.weight=300`,
    `${V1.blkio}/blkio.bfq.weight_device=8:0 200`,
    `${V1.blkio}/blkio.throttle.read_bps_device=8:0 1048576`,
    `${V1.blkio}/blkio.throttle.write_iops_device=8:16 100`,
  ]);
});

t.test('v1 memory: write order follows the current limit; EBUSY explains itself', async (t) => {
  const grow = v1fs();
  grow.files.set(`${V1.memory}/memory.limit_in_bytes`, String(16 * MiB));
  applyResources(V1, { memory: { limit: 64 * MiB, swap: 128 * MiB } }, { io: grow, ...SKIP_DEV });
  t.match(grow.writes[0], /memsw\.limit_in_bytes=134217728$/, 'growing: memsw first');

  const shrink = v1fs();
  shrink.files.set(`${V1.memory}/memory.limit_in_bytes`, String(512 * MiB));
  applyResources(V1, { memory: { limit: 64 * MiB, swap: 128 * MiB } }, { io: shrink, ...SKIP_DEV });
  t.match(shrink.writes[0], /memory\.limit_in_bytes=67108864$/, 'shrinking below the old memsw: memory first');

  const unlimited = v1fs();
  applyResources(V1, { memory: { limit: -1 } }, { io: unlimited, ...SKIP_DEV });
  t.same(unlimited.writes.map((w) => w.split('/').pop()), ['memory.memsw.limit_in_bytes=-1', 'memory.limit_in_bytes=-1'], '-1 memory means -1 swap too');

  const busy = v1fs({ [`${V1.memory}/memory.usage_in_bytes`]: '5000000', [`${V1.memory}/memory.max_usage_in_bytes`]: '6000000' });
  busy.failWrite(`${V1.memory}/memory.limit_in_bytes`, 'EBUSY');
  t.throws(() => applyResources(V1, { memory: { limit: 4 * MiB } }, { io: busy, ...SKIP_DEV }), {
    message: `cgroup: write "4194304" to ${V1.memory}/memory.limit_in_bytes: Device or resource busy: the limit is below the memory in use (current usage 5000000, peak usage 6000000)`,
  });
  t.throws(() => applyResources(V1, { memory: { swappiness: 101 } }, { io: v1fs(), ...SKIP_DEV }), /valid range is 0-100/);
});

t.test('v1 cpu: the period is retried after the quota when the kernel refuses it first', async (t) => {
  const fs = v1fs();
  fs.failWrite(`${V1.cpu}/cpu.cfs_period_us`, 'EINVAL');
  applyResources(V1, { cpu: { quota: 5000, period: 10000 } }, { io: fs, ...SKIP_DEV });
  t.same(fs.writes.map((w) => w.split('/').pop()), ['cpu.cfs_quota_us=5000', 'cpu.cfs_period_us=10000']);

  const clamp = v1fs();
  clamp.onWrite = (file, value) => {
    if (file.endsWith('cpu.shares')) clamp.files.set(file, String(Math.min(Number(value), 262144)));
  };
  t.throws(() => applyResources(V1, { cpu: { shares: 500000 } }, { io: clamp, ...SKIP_DEV }), /500000 is above the maximum allowed cpu-shares 262144/);

  const rt = v1fs();
  applyResources(V1, { cpu: { realtimePeriod: 1000000, realtimeRuntime: 950000 } }, { io: rt, ...SKIP_DEV });
  t.same(rt.writes.map((w) => w.split('/').pop()), ['cpu.rt_period_us=1000000', 'cpu.rt_runtime_us=950000']);
});

t.test('v1: a kernel refusal is one line with the file and the value', async (t) => {
  const fs = v1fs();
  fs.failWrite(`${V1.cpuset}/cpuset.cpus`, 'EINVAL', { value: '0-99' });
  try {
    applyResources(V1, { cpu: { cpus: '0-99' } }, { io: fs, ...SKIP_DEV });
    t.fail('should throw');
  } catch (e) {
    t.type(e, UserError);
    t.equal((e as Error).message, `cgroup: write "0-99" to ${V1.cpuset}/cpuset.cpus: Invalid argument`);
  }
});

t.test('v1: zero and absent values write nothing', async (t) => {
  const fs = v1fs();
  applyResources(V1, { memory: { limit: 0, reservation: 0, swap: 0 }, cpu: { shares: 0, quota: 0, cpus: '' }, pids: { limit: 0 }, blockIO: { weight: 0 } }, { io: fs, ...SKIP_DEV });
  t.same(fs.writes, []);
  applyResources(V1, { pids: { limit: -1 } }, { io: fs, ...SKIP_DEV });
  t.same(fs.writes, [`${V1.pids}/pids.max=max`], 'a negative pids limit is "max"');
});

t.test('v1: a controller that is not mounted is an error naming it', async (t) => {
  const fs = v1fs();
  t.throws(() => applyResources(V1, { network: { classID: 0x100001 } }, { io: fs }), {
    message: 'cgroup: linux.resources.network.classID needs the net_cls controller, which is not mounted on this host',
  });
  t.throws(() => applyResources(V1, { rdma: { mlx5_0: { hcaHandles: 1 } } }, { io: fs }), /needs the rdma controller, which is not mounted/);
  const { pids: _p, ...noPids } = V1;
  t.throws(() => applyResources(noPids, { pids: { limit: 5 } }, { io: fs }), /linux\.resources\.pids needs the pids controller, which is not mounted/);
  t.same(fs.writes, [], 'checked before anything is written');
});

t.test('hybrid: a controller only cgroup2 offers (hugetlb here) is written there', async (t) => {
  const fs = v1fs(dirWith(V1.unified, ['hugetlb.2MB.max', 'hugetlb.2MB.rsvd.max', 'hugetlb.1GB.max']));
  applyResources(V1, { hugepageLimits: [{ pageSize: '2MB', limit: 4 * MiB }, { pageSize: '1GB', limit: 0 }] }, { io: fs, ...SKIP_DEV });
  t.same(fs.writes, [
    '/sys/fs/cgroup/unified/cgroup.subtree_control=+hugetlb',
    `${V1.unified}/hugetlb.2MB.max=${4 * MiB}`,
    `${V1.unified}/hugetlb.2MB.rsvd.max=${4 * MiB}`,
    `${V1.unified}/hugetlb.1GB.max=0`,
  ]);
  t.throws(() => applyResources(V1, { hugepageLimits: [{ pageSize: '3MB', limit: 1 }] }, { io: fs, ...SKIP_DEV }), /page size "3MB" is not supported here/);
});

t.test('v1 devices: reset to deny-all, then the allow list', async (t) => {
  const fs = v1fs();
  applyResources(V1, { devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' }] }, { io: fs });
  t.equal(fs.writes[0], `${V1.devices}/devices.deny=a`);
  t.ok(fs.writes.includes(`${V1.devices}/devices.allow=c 10:229 rwm`));
  t.ok(fs.writes.includes(`${V1.devices}/devices.allow=c 1:3 rwm`), 'default devices allowed');
});

// --- pure v2

const V2 = { unified: '/sys/fs/cgroup/a/c1' };
const ALL = 'cpuset cpu io memory hugetlb pids rdma misc';

function v2fs(rootControllers = ALL, extra: Record<string, string> = {}) {
  return fakeFs({
    ...dirWith('/sys/fs/cgroup', ['cgroup.controllers', 'cgroup.subtree_control', 'cgroup.procs'], { 'cgroup.controllers': rootControllers }),
    ...dirWith('/sys/fs/cgroup/a', ['cgroup.controllers', 'cgroup.subtree_control', 'cgroup.procs'], { 'cgroup.controllers': rootControllers }),
    ...dirWith(V2.unified, V2_FILES, { 'memory.current': '1000000', 'cgroup.controllers': rootControllers }),
    ...extra,
  });
}

const attachNone = () => {
  throw new Error('no device program expected');
};

t.test('v2: the same resources in fs2 form; controllers enabled top-down first', async (t) => {
  const fs = v2fs();
  const attached: { dir: string; len: number; license: string }[] = [];
  const warnings = applyResources(V2, {
    devices: [{ allow: false, access: 'rwm' }],
    memory: { limit: 32 * MiB, swap: 96 * MiB, reservation: 16 * MiB },
    cpu: { shares: 1024, quota: 50000, period: 100000, burst: 1000, idle: 0, cpus: '0', mems: '0' },
    pids: { limit: 10 },
    blockIO: { weight: 500, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 1048576 }], throttleWriteIOPSDevice: [{ major: 8, minor: 0, rate: 50 }] },
    hugepageLimits: [{ pageSize: '2MB', limit: 2 * MiB }],
    rdma: { mlx5_0: { hcaHandles: 3, hcaObjects: 100 } },
    unified: { 'memory.high': '30000000' },
  }, { io: fs, statsControllers: ['memory', 'pids'], attachDeviceFilter: (dir, prog, license) => attached.push({ dir, len: prog.length, license }) });
  t.same(warnings, []);
  const enables = ['+cpuset', '+memory', '+cpu', '+pids', '+io', '+hugetlb', '+rdma'];
  t.same(fs.writes, [
    ...enables.map((c) => `/sys/fs/cgroup/cgroup.subtree_control=${c}`),
    ...enables.map((c) => `/sys/fs/cgroup/a/cgroup.subtree_control=${c}`),
    `${V2.unified}/cpuset.cpus=0`,
    `${V2.unified}/cpuset.mems=0`,
    `${V2.unified}/memory.swap.max=${64 * MiB}`,
    `${V2.unified}/memory.max=${32 * MiB}`,
    `${V2.unified}/memory.low=${16 * MiB}`,
    `${V2.unified}/cpu.idle=0`,
    `${V2.unified}/cpu.weight=39`,
    `${V2.unified}/cpu.max.burst=1000`,
    `${V2.unified}/cpu.max=50000 100000`,
    `${V2.unified}/pids.max=10`,
    `${V2.unified}/io.weight=4950`,
    `${V2.unified}/io.max=8:0 rbps=1048576`,
    `${V2.unified}/io.max=8:0 wiops=50`,
    `${V2.unified}/hugetlb.2MB.max=${2 * MiB}`,
    `${V2.unified}/hugetlb.2MB.rsvd.max=${2 * MiB}`,
    `${V2.unified}/rdma.max=mlx5_0 hca_handle=3 hca_object=100`,
    `${V2.unified}/memory.high=30000000`,
  ]);
  t.equal(attached.length, 1, 'one device program');
  t.equal(attached[0].dir, V2.unified);
  t.equal(attached[0].license, 'Apache');
  t.ok(attached[0].len > 0 && attached[0].len % 8 === 0);
});

t.test('v2: cpu.max forms, swap edge cases, no-op and warnings', async (t) => {
  const q = (cpu: Resources['cpu']) => {
    const fs = v2fs();
    fs.files.set('/sys/fs/cgroup/cgroup.subtree_control', ALL);
    fs.files.set('/sys/fs/cgroup/a/cgroup.subtree_control', ALL);
    applyResources(V2, { cpu }, { io: fs, ...SKIP_DEV });
    return fs.writes.map((w) => w.split('/').pop());
  };
  t.same(q({ quota: -1 }), ['cpu.max=max']);
  t.same(q({ period: 20000 }), ['cpu.max=max 20000']);
  t.same(q({ quota: 1000 }), ['cpu.max=1000']);
  t.throws(() => q({ realtimeRuntime: 1 }), /not supported on cgroup v2/);

  const swap = (memory: Resources['memory']) => {
    const fs = v2fs();
    applyResources(V2, { memory }, { io: fs, ...SKIP_DEV });
    return fs.writes.filter((w) => w.includes('/c1/')).map((w) => w.split('/').pop());
  };
  t.same(swap({ limit: 64 * MiB, swap: 64 * MiB }), ['memory.swap.max=0', `memory.max=${64 * MiB}`], 'swap == memory: no swap at all');
  t.same(swap({ limit: -1 }), ['memory.swap.max=max', 'memory.max=max']);
  t.throws(() => swap({ limit: 64 * MiB, swap: 32 * MiB }), /must be >= memory.limit/);
  t.throws(() => swap({ limit: 1000, checkBeforeUpdate: true }), /rejecting memory limit 1000 below usage 1000000/);

  const fs = v2fs();
  const w = applyResources(V2, { memory: { limit: 1 * MiB, swappiness: 10, disableOOMKiller: true, kernel: 5 } }, { io: fs, ...SKIP_DEV });
  t.match(w.join('\n'), /kernel is not applied/);
  t.match(w.join('\n'), /disableOOMKiller is not applied/);
  t.match(w.join('\n'), /swappiness is not applied/);

  const none = v2fs();
  applyResources(V2, {}, { io: none, skipDevices: true });
  t.same(none.writes, [], 'nothing asked, nothing written (no controller enabled either)');
});

t.test('v2: controllers the tree does not offer, and bad unified keys', async (t) => {
  const fs = v2fs('cpu pids');
  t.throws(() => applyResources(V2, { memory: { limit: MiB } }, { io: fs, ...SKIP_DEV }), {
    message: 'cgroup: linux.resources.memory needs the memory controller, which this cgroup v2 tree does not offer (/sys/fs/cgroup/cgroup.controllers: cpu pids)',
  });
  t.throws(() => applyResources(V2, { network: { classID: 1 } }, { io: fs, ...SKIP_DEV }), /network.classID: not supported on cgroup v2/);
  t.throws(() => applyResources(V2, { unified: { 'memory.high': '1' } }, { io: fs, ...SKIP_DEV }), /the memory controller is not available in \/sys\/fs\/cgroup \(cgroup.controllers: cpu pids\)/);
  const ok = v2fs();
  t.throws(() => applyResources(V2, { unified: { 'memory.nosuch': '1' } }, { io: ok, ...SKIP_DEV }), /"memory.nosuch" is not a file in \/sys\/fs\/cgroup\/a\/c1/);
  t.throws(() => applyResources(V2, { unified: { '../x.max': '1' } }, { io: ok, ...SKIP_DEV }), /must be a file name of the form CONTROLLER.PARAMETER/);
  t.throws(() => applyResources(V2, { devices: [{ allow: false }] }, { io: ok }), /no BPF device filter loader/);
  t.doesNotThrow(() => applyResources(V2, { devices: [{ allow: true }] }, { io: ok, attachDeviceFilter: attachNone }), 'allow-all needs no program');

  const busy = v2fs();
  busy.failWrite('/sys/fs/cgroup/a/cgroup.subtree_control', 'EBUSY');
  t.throws(() => applyResources(V2, { pids: { limit: 3 } }, { io: busy, ...SKIP_DEV }), /has processes of its own/);

  const statsOnly = v2fs();
  statsOnly.failWrite('/sys/fs/cgroup/a/cgroup.subtree_control', 'EBUSY', { value: '+memory' });
  t.doesNotThrow(() => applyResources(V2, {}, { io: statsOnly, ...SKIP_DEV, statsControllers: ['memory', 'pids'] }), 'controllers for statistics are best effort');
  t.match(statsOnly.files.get('/sys/fs/cgroup/a/cgroup.subtree_control'), '+pids', 'the others still enabled');
});
