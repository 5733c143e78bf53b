import t from 'tap';
import {
  blkioToIoWeight, forUpdate, limitString, mergeResources, neededControllers, parseIntFlag, parseMemory, parseResources, sharesToWeight, swapToV2,
} from '../../src/cgroups/resources.js';
import { UserError } from '../../src/errors.js';
import { requestedResources } from '../../src/cli/update.js';

t.test('cpu.shares -> cpu.weight: runc 1.1 ConvertCPUSharesToCgroupV2Value', async (t) => {
  t.equal(sharesToWeight(0), 0, '0 stays "unset"');
  t.equal(sharesToWeight(2), 1);
  t.equal(sharesToWeight(1024), 39, 'the default share is weight 39');
  t.equal(sharesToWeight(512), 20);
  t.equal(sharesToWeight(262144), 10000);
  t.equal(sharesToWeight(1), 1, 'below the kernel minimum clamps to 2');
  t.equal(sharesToWeight(10_000_000), 10000, 'above the kernel maximum clamps');
});

t.test('blkio weight -> io.weight', async (t) => {
  t.equal(blkioToIoWeight(0), 0);
  t.equal(blkioToIoWeight(10), 1);
  t.equal(blkioToIoWeight(500), 4950);
  t.equal(blkioToIoWeight(1000), 10000);
});

t.test('memory.swap (memory+swap) -> memory.swap.max', async (t) => {
  t.equal(swapToV2(0, 0), 0, 'nothing set');
  t.equal(swapToV2(0, -1), -1, 'unlimited memory without swap = unlimited swap');
  t.equal(swapToV2(-1, 64), -1);
  t.equal(swapToV2(128, 64), 64, 'swap+memory minus memory');
  t.equal(swapToV2(64, 64), 0, 'equal: no swap');
  t.throws(() => swapToV2(32, 64), /must be >= memory.limit/);
  t.throws(() => swapToV2(32, 0), /needs a memory limit/);
  t.equal(limitString(-1), 'max');
  t.equal(limitString(2 ** 63), '9223372036854775808', 'never exponent notation');
});

t.test('neededControllers: zero and absent values ask for nothing', async (t) => {
  t.same(neededControllers({}), []);
  t.same(neededControllers({ memory: { limit: 0, reservation: 0 }, cpu: { shares: 0, cpus: '' }, pids: { limit: 0 }, blockIO: { weight: 0 } }), []);
  t.same(
    neededControllers({
      memory: { limit: 1 }, cpu: { quota: 1, cpus: '0' }, pids: { limit: 5 }, blockIO: { weight: 100 },
      hugepageLimits: [{ pageSize: '2MB', limit: 1 }], network: { classID: 1, priorities: [{ name: 'lo', priority: 1 }] }, rdma: { mlx: {} },
    }).map((n) => n.controller),
    ['cpuset', 'memory', 'cpu', 'pids', 'blkio', 'hugetlb', 'net_cls', 'net_prio', 'rdma'],
  );
  t.same(neededControllers({ cpu: { idle: 0 } }).map((n) => n.controller), ['cpu'], 'idle 0 is a value (as in runc, a pointer)');
  t.same(neededControllers({ memory: { swappiness: 0 } }).map((n) => n.controller), ['memory']);
});

t.test('mergeResources: zero/absent keep the stored value', async (t) => {
  const old = {
    devices: [{ allow: false, access: 'rwm' }],
    memory: { limit: 100, swap: 200 },
    cpu: { quota: 1000, period: 100000, cpus: '0' },
    pids: { limit: 10 },
    blockIO: { weight: 100, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 10 }] },
    hugepageLimits: [{ pageSize: '2MB', limit: 4 }],
    unified: { 'memory.high': '100' },
  };
  const m = mergeResources(old, {
    memory: { limit: 300, swap: 0, reservation: 0 },
    cpu: { quota: 0, period: 50000, cpus: '' },
    pids: { limit: 0 },
    blockIO: { weight: 0, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 20 }, { major: 8, minor: 16, rate: 5 }] },
    hugepageLimits: [{ pageSize: '1GB', limit: 1 }],
    unified: { 'pids.max': '7' },
  });
  t.same(m.memory, { limit: 300, swap: 200 });
  t.same(m.cpu, { quota: 1000, period: 50000, cpus: '0' }, 'a new period keeps the old quota');
  t.same(m.pids, { limit: 10 });
  t.same(m.blockIO, { weight: 100, throttleReadBpsDevice: [{ major: 8, minor: 0, rate: 20 }, { major: 8, minor: 16, rate: 5 }] });
  t.same(m.hugepageLimits, [{ pageSize: '2MB', limit: 4 }, { pageSize: '1GB', limit: 1 }]);
  t.same(m.unified, { 'memory.high': '100', 'pids.max': '7' });
  t.same(m.devices, old.devices, 'device rules are kept');
  t.notOk('devices' in forUpdate(m), 'but not re-applied by update');
  t.same(mergeResources(old, { cpu: { idle: 0 } }).cpu, { quota: 1000, period: 100000, cpus: '0', idle: 0 }, 'pointer fields take a 0');
  t.same(old.memory, { limit: 100, swap: 200 }, 'the stored object is not modified');
});

t.test('update flags: runc names and units', async (t) => {
  t.equal(parseMemory('--memory', '64m'), 64 * 2 ** 20);
  t.equal(parseMemory('--memory', '1g'), 2 ** 30);
  t.equal(parseMemory('--memory', '512MiB'), 512 * 2 ** 20);
  t.equal(parseMemory('--memory', '1.5k'), 1536);
  t.equal(parseMemory('--memory', '1000'), 1000);
  t.equal(parseMemory('--memory', '-1'), -1);
  t.throws(() => parseMemory('--memory', 'lots'), /invalid value for --memory: invalid size: "lots"/);
  t.throws(() => parseIntFlag('--cpu-period', '-5', 0), /--cpu-period: -5: must be >= 0/);
  t.throws(() => parseIntFlag('--cpu-quota', '1.5'), /not an integer/);

  const r = requestedResources(
    { resources: 'r.json', memory: '32m', cpuQuota: '20000', cpuPeriod: '100000', cpuShare: '512', cpusetCpus: '0', pidsLimit: '-1', blkioWeight: '300' },
    () => JSON.stringify({ memory: { limit: 1, swap: 99999999 }, pids: { limit: 5 } }),
  );
  t.same(r, {
    memory: { limit: 32 * 2 ** 20, swap: 99999999 },
    cpu: { quota: 20000, period: 100000, shares: 512, cpus: '0' },
    pids: { limit: -1 },
    blockIO: { weight: 300 },
  }, 'flags override the -r document');
  t.throws(() => requestedResources({ blkioWeight: '5' }, () => ''), /valid range is 10-1000/);
  t.throws(() => requestedResources({ l3CacheSchema: 'L3:0=f' }, () => ''), /Intel RDT is not supported/);
});

t.test('parseResources: a LinuxResources document, checked field by field', async (t) => {
  t.same(parseResources('{"memory":{"limit":10},"cpu":{"cpus":"0-1"}}', 'r.json'), { memory: { limit: 10 }, cpu: { cpus: '0-1' } });
  t.same(parseResources('{"memory":null}', 'r.json'), { memory: null }, 'null is "not given"');
  const bad = (text: string, re: RegExp) => {
    t.throws(() => parseResources(text, 'r.json'), re);
    try {
      parseResources(text, 'r.json');
    } catch (e) {
      t.type(e, UserError);
    }
  };
  bad('{"memory":{"limit":"10"}}', /^r\.json\.memory\.limit: must be an integer, got "10"$/);
  bad('{"memory":{"limt":10}}', /^r\.json\.memory\.limt: unknown field$/);
  bad('{"pids":{"limit":1.5}}', /pids\.limit: must be an integer/);
  bad('{"blockIO":{"weight":70000}}', /blockIO\.weight: must be between 0 and 65535/);
  bad('{"hugepageLimits":[{"pageSize":2}]}', /hugepageLimits\[0\]\.pageSize: must be a string/);
  bad('{"unified":{"memory.high":5}}', /unified\.memory\.high: must be a string/);
  bad('[1]', /^r\.json: must be an object/);
  bad('{', /^r\.json: invalid JSON/);
});
