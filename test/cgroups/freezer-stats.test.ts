import t from 'tap';
import { freeze, freezerState, thaw } from '../../src/cgroups/freezer.js';
import { collectStats, eventJSON, oomKillCount, parseCpuList, parseIoStat } from '../../src/cgroups/stats.js';
import { filterPsOutput } from '../../src/cli/ps.js';
import { parseDuration } from '../../src/cli/events.js';
import { dirWith, fakeFs } from './fixtures/fakefs.js';

const V1 = { freezer: '/sys/fs/cgroup/freezer/c1', unified: '/sys/fs/cgroup/unified/c1' };
const V2 = { unified: '/sys/fs/cgroup/c1' };

t.test('v1 freezer: FROZEN requested until the kernel says FROZEN', async (t) => {
  const fs = fakeFs(dirWith(V1.freezer, ['freezer.state'], { 'freezer.state': 'THAWED' }));
  t.equal(freezerState(V1, fs), 'thawed');
  let reads = 0;
  const read = fs.read;
  fs.read = (file) => (file.endsWith('freezer.state') && fs.files.get(file) === 'FROZEN' && ++reads < 3 ? 'FREEZING\n' : read(file));
  freeze(V1, fs);
  t.same(fs.writes, Array(3).fill(`${V1.freezer}/freezer.state=FROZEN`), 'retried while FREEZING');
  t.equal(freezerState(V1, fs), 'frozen');
  thaw(V1, fs);
  t.equal(fs.writes.at(-1), `${V1.freezer}/freezer.state=THAWED`);
});

t.test('v1 freezer: stuck in FREEZING -> thawed again and an error', async (t) => {
  const fs = fakeFs(dirWith(V1.freezer, ['freezer.state'], { 'freezer.state': 'THAWED' }));
  fs.read = () => 'FREEZING\n';
  t.throws(() => freeze(V1, fs, 50), /still FREEZING after 50 ms; thawed it again/);
  t.equal(fs.writes.at(-1), `${V1.freezer}/freezer.state=THAWED`);
});

t.test('v2 freezer: cgroup.freeze, then wait for "frozen 1" in cgroup.events', async (t) => {
  const fs = fakeFs(dirWith(V2.unified, ['cgroup.freeze', 'cgroup.events'], { 'cgroup.freeze': '0\n', 'cgroup.events': 'populated 1\nfrozen 0\n' }));
  t.equal(freezerState(V2, fs), 'thawed');
  let polls = 0;
  fs.onWrite = () => undefined;
  const read = fs.read;
  fs.read = (file) => {
    if (file.endsWith('cgroup.events') && fs.files.get(`${V2.unified}/cgroup.freeze`) === '1' && ++polls >= 3) return 'populated 1\nfrozen 1\n';
    return read(file);
  };
  freeze(V2, fs);
  t.ok(polls >= 3, 'waited for the kernel');
  t.equal(freezerState(V2, fs), 'frozen');
  thaw(V2, fs);
  t.equal(fs.files.get(`${V2.unified}/cgroup.freeze`), '0');
  t.equal(freezerState({ unified: '/nowhere' }, fs), undefined, 'no freezer: never paused');
  t.throws(() => freeze({ unified: '/nowhere' }, fs), /needs the freezer controller/);
});

t.test('v1 stats in runc shape', async (t) => {
  const P = { cpu: '/c/cpu/c1', cpuacct: '/c/cpu/c1', memory: '/c/memory/c1', pids: '/c/pids/c1', blkio: '/c/blkio/c1', unified: '/c/unified/c1' };
  const fs = fakeFs({
    ...dirWith(P.cpu, ['cpuacct.usage', 'cpuacct.usage_percpu', 'cpuacct.usage_all', 'cpuacct.stat', 'cpu.stat'], {
      'cpuacct.usage': '3000\n', 'cpuacct.usage_percpu': '1000 2000 \n', 'cpuacct.usage_all': 'cpu user system\n0 600 400\n1 1500 500\n',
      'cpuacct.stat': 'user 3\nsystem 1\n', 'cpu.stat': 'nr_periods 10\nnr_throttled 4\nthrottled_time 99\n',
    }),
    ...dirWith(P.memory, ['memory.stat', 'memory.usage_in_bytes', 'memory.limit_in_bytes', 'memory.max_usage_in_bytes', 'memory.failcnt', 'memory.oom_control'], {
      'memory.stat': 'rss 10\ncache 20\n', 'memory.usage_in_bytes': '500\n', 'memory.limit_in_bytes': '9223372036854771712\n',
      'memory.max_usage_in_bytes': '800\n', 'memory.failcnt': '2\n', 'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 3\n',
    }),
    ...dirWith(P.pids, ['pids.current', 'pids.max'], { 'pids.current': '4\n', 'pids.max': 'max\n' }),
    ...dirWith(P.blkio, ['blkio.throttle.io_service_bytes_recursive', 'blkio.throttle.io_serviced_recursive'], {
      'blkio.throttle.io_service_bytes_recursive': '8:0 Read 4096\n8:0 Write 0\nTotal 4096\n',
    }),
  });
  const s = collectStats(P, fs, []);
  t.same(s.cpu, {
    usage: { total: 3000n, percpu: [1000n, 2000n], percpu_kernel: [400n, 500n], percpu_user: [600n, 1500n], kernel: 10_000_000n, user: 30_000_000n },
    throttling: { periods: 10n, throttledPeriods: 4n, throttledTime: 99n },
  });
  t.same(s.memory.usage, { limit: 9223372036854771712n, usage: 500n, max: 800n, failcnt: 2n });
  t.same(s.memory.swap, { limit: 0n, failcnt: 0n }, 'no memsw files: zero entry');
  t.equal(s.memory.cache, 20n);
  t.same(Object.keys(s.memory.raw!), ['cache', 'rss'], 'raw keys sorted as Go prints a map');
  t.same(s.pids, { current: 4n }, 'max = no limit, omitted');
  t.same(s.blkio, { ioServiceBytesRecursive: [{ major: 8n, op: 'Read', value: 4096n }, { major: 8n, op: 'Write' }] }, 'zeros omitted, Total skipped');
  t.equal(oomKillCount(P, fs), 3n);
  const json = eventJSON({ type: 'stats', id: 'c1', data: s });
  t.match(json, /"usage":\{"limit":9223372036854771712,"usage":500,"max":800,"failcnt":2\}/, 'bigints printed digit for digit');
  t.match(json, /"network_interfaces":null/);
});

t.test('v2 stats', async (t) => {
  const fs = fakeFs(dirWith(V2.unified, ['cpu.stat', 'memory.current', 'memory.max', 'memory.stat', 'memory.events', 'memory.swap.current', 'memory.swap.max', 'pids.current', 'pids.max', 'io.stat'], {
    'cpu.stat': 'usage_usec 7\nuser_usec 5\nsystem_usec 2\nnr_periods 3\nnr_throttled 1\nthrottled_usec 4\n',
    'memory.current': '1000\n', 'memory.max': '33554432\n', 'memory.stat': 'anon 10\nfile 30\n', 'memory.events': 'low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n',
    'memory.swap.current': '0\n', 'memory.swap.max': 'max\n', 'pids.current': '2\n', 'pids.max': '10\n',
    'io.stat': '8:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n',
  }));
  const s = collectStats(V2, fs, []);
  t.same(s.cpu, { usage: { total: 7000n, kernel: 2000n, user: 5000n }, throttling: { periods: 3n, throttledPeriods: 1n, throttledTime: 4000n } });
  t.same(s.memory.usage, { limit: 33554432n, usage: 1000n, failcnt: 5n });
  t.same(s.memory.swap, { limit: (1n << 64n) - 1n, usage: 1000n, failcnt: 0n }, 'swap reported as memory+swap, as v1');
  t.equal(s.memory.cache, 30n);
  t.same(s.pids, { current: 2n, limit: 10n });
  t.same(s.blkio, { ioServiceBytesRecursive: [{ major: 8n, op: 'Read', value: 512n }, { major: 8n, op: 'Write' }], ioServicedRecursive: [{ major: 8n, op: 'Read', value: 1n }, { major: 8n, op: 'Write' }] });
  t.equal(oomKillCount(V2, fs), 1n);
  t.same(parseIoStat(''), {});
  t.same(parseCpuList('0-2,5\n'), [0n, 1n, 2n, 5n]);
});

t.test('ps and events helpers', async (t) => {
  const out = 'UID   PID  PPID CMD\nroot    1     0 init\nroot   42     1 sleep 5\nroot  420     1 other\n';
  t.equal(filterPsOutput(out, [42]), 'UID   PID  PPID CMD\nroot   42     1 sleep 5\n');
  t.throws(() => filterPsOutput('USER COMMAND\n', [1]), /couldn't find PID field/);
  t.equal(parseDuration('5s'), 5000);
  t.equal(parseDuration('1m30s'), 90_000);
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('1.5s'), 1500);
  t.throws(() => parseDuration('5'), /invalid duration/);
  t.throws(() => parseDuration('0s'), /greater than 0/);
});
