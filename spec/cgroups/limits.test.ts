/**
 * linux.resources on real containers: the values land in the container's
 * cgroup files (v1 hierarchies here, cgroup v2 in the VM), the kernel
 * enforces them, runc writes the same files, and delete leaves no cgroup.
 */
import fs from 'node:fs';
import t from 'tap';
import { assertNothingLeaked, cleanupContainer, leakCheck, makeBundle, runtime, tsrun, uniqueId } from '../lib/harness.js';
import { hasCommand, stateOf, tsrunFiles } from '../runtime/core-lib.js';
import { cgroupDir, isV2, ms, procCgroupDir, readCg, readIn, skip, withResources } from './lib.js';

const MiB = 2 ** 20;

t.test('memory limit: written, and a memory hog is OOM-killed', { skip }, async (t) => {
  leakCheck(t);
  // The hog doubles a shell string up to 256 MiB (bounded: 24 doublings); at 32 MiB the kernel kills it.
  const hog = 'x=0123456789abcdef; i=0; while [ $i -lt 24 ]; do x=$x$x; i=$((i+1)); done; echo survived';
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', `sh -c '${hog}'; echo "hog=$?"; cat /proc/self/cgroup >/dev/null`];
    withResources(c, { memory: { limit: 32 * MiB, reservation: 16 * MiB } });
  });
  const id = uniqueId('cg-mem');
  cleanupContainer(t, id);
  const r = await tsrun(['run', '--keep', '--bundle', b.dir, id], { timeoutMs: ms(60_000) });
  t.equal(r.code, 0, `run exits 0 (${r.stderr.trim()})`);
  t.match(r.stdout, /hog=137/, 'the hog was SIGKILLed (137)');
  t.notMatch(r.stdout, /survived/);
  t.equal(readCg(id, 'memory', 'memory.limit_in_bytes', 'memory.max'), String(32 * MiB), 'limit in the cgroup file');
  t.equal(readCg(id, 'memory', 'memory.soft_limit_in_bytes', 'memory.low'), String(16 * MiB), 'reservation');
  const ooms = readCg(id, 'memory', 'memory.oom_control', 'memory.events');
  t.match(ooms, /oom_kill [1-9]/, 'the kernel counted the OOM kill in the container cgroup');
  t.equal((await tsrun(['delete', id])).code, 0);
  await assertNothingLeaked(t, id);
});

t.test('pids limit: a fork loop stops at pids.max', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', 'for i in $(seq 30); do sleep 2 & done; wait'];
    withResources(c, { pids: { limit: 10 } });
  });
  const id = uniqueId('cg-pids');
  cleanupContainer(t, id);
  const r = await tsrun(['run', '--keep', '--bundle', b.dir, id], { timeoutMs: ms(60_000) });
  t.match(r.stderr, /can't fork/, 'the shell could not fork past the limit');
  t.not(r.code, 0, 'and failed');
  t.equal(readCg(id, 'pids', 'pids.max', 'pids.max'), '10');
  t.match(readCg(id, 'pids', 'pids.events', 'pids.events'), /max [1-9]/, 'the kernel counted refused forks');
  t.equal((await tsrun(['delete', '--force', id])).code, 0);
  await assertNothingLeaked(t, id);
});

t.test('cpu: shares, quota and period written; a busy loop is throttled', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', 'i=0; while [ $i -lt 100000000 ]; do i=$((i+1)); done'];
    withResources(c, { cpu: { shares: 512, quota: 10_000, period: 100_000 } });
  });
  const id = uniqueId('cg-cpu');
  cleanupContainer(t, id);
  const r = await tsrunFiles(['run', '-d', '--bundle', b.dir, id], { timeoutMs: ms(30_000) });
  t.equal(r.code, 0, `run -d (${r.stderr.trim()})`);
  if (isV2) {
    t.equal(readCg(id, 'cpu', '', 'cpu.max'), '10000 100000');
    t.equal(readCg(id, 'cpu', '', 'cpu.weight'), '20', 'shares 512 -> weight 20');
  } else {
    t.equal(readCg(id, 'cpu', 'cpu.cfs_quota_us', ''), '10000');
    t.equal(readCg(id, 'cpu', 'cpu.cfs_period_us', ''), '100000');
    t.equal(readCg(id, 'cpu', 'cpu.shares', ''), '512');
  }
  const st = (await stateOf(id)).state;
  t.equal(procCgroupDir(st?.pid ?? 0, 'cpu'), cgroupDir(id, 'cpu'), 'the init runs in that cgroup');
  // 10% of one CPU: within a second or so the loop is throttled.
  let throttled = 0;
  for (let i = 0; i < 30 && throttled === 0; i++) {
    await new Promise((res) => setTimeout(res, ms(200)));
    const stat = readCg(id, 'cpu', 'cpu.stat', 'cpu.stat');
    throttled = Number(/nr_throttled (\d+)/.exec(stat)?.[1] ?? 0);
  }
  t.ok(throttled > 0, `throttled periods: ${throttled}`);
  t.equal((await tsrun(['delete', '--force', id])).code, 0);
  await assertNothingLeaked(t, id);
});

t.test('errors: an invalid value is one line naming the file and value, and nothing is left', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['true'];
    withResources(c, { cpu: { cpus: '0-4095' } });
  });
  const id = uniqueId('cg-bad');
  cleanupContainer(t, id);
  const r = await tsrun(['run', '--bundle', b.dir, id], { timeoutMs: ms(30_000) });
  t.not(r.code, 0);
  const line = r.stderr.trim().split('\n').pop() ?? '';
  t.match(line, /^tsrun: run [^:]+: cgroup: write "0-4095" to \/sys\/fs\/cgroup\/\S*cpuset\.cpus: (Invalid argument|Numerical result out of range)$/, line);
  t.equal(r.stderr.trim().split('\n').length, 1, 'exactly one line');
  await assertNothingLeaked(t, id);

  const n = await makeBundle(t, (c) => {
    c.process.args = ['true'];
    withResources(c, { network: { classID: 0x100001 } });
  });
  const id2 = uniqueId('cg-net');
  cleanupContainer(t, id2);
  const r2 = await tsrun(['run', '--bundle', n.dir, id2], { timeoutMs: ms(30_000) });
  t.not(r2.code, 0);
  t.match(r2.stderr, isV2 ? /network\.classID: not supported on cgroup v2/ : /network\.classID needs the net_cls controller, which is not mounted/);
  await assertNothingLeaked(t, id2);
});

const hasRunc = hasCommand('runc');

t.test('runc writes the same files for the same resources', { skip: skip || (!hasRunc && 'needs runc') }, async (t) => {
  leakCheck(t);
  const resources = {
    memory: { limit: 48 * MiB, reservation: 24 * MiB, swap: 96 * MiB },
    cpu: { shares: 256, quota: 30_000, period: 100_000 },
    pids: { limit: 42 },
  };
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '600'];
    withResources(c, resources);
  });
  const ids = { tsrun: uniqueId('cg-cmp-ts'), runc: uniqueId('cg-cmp-runc') };
  cleanupContainer(t, ids.tsrun);
  cleanupContainer(t, ids.runc, 'runc');
  // Both runtimes detach; their stdio goes to /dev/null so the calls return at once.
  const devnull = fs.openSync('/dev/null', 'w');
  t.teardown(() => fs.closeSync(devnull));
  for (const rt of ['tsrun', 'runc'] as const) {
    const r = await runtime(rt, ['run', '-d', '--bundle', b.dir, ids[rt]], { timeoutMs: ms(30_000), stdout: devnull, stderr: 'pipe' });
    t.equal(r.code, 0, `${rt} run -d (${r.stderr.trim()})`);
  }
  const runcState = JSON.parse((await runtime('runc', ['state', ids.runc])).stdout || '{}') as { pid?: number };
  const files = isV2
    ? [['memory', 'memory.max'], ['memory', 'memory.low'], ['memory', 'memory.swap.max'], ['cpu', 'cpu.weight'], ['cpu', 'cpu.max'], ['pids', 'pids.max']]
    : [
        ['memory', 'memory.limit_in_bytes'], ['memory', 'memory.soft_limit_in_bytes'], ['memory', 'memory.memsw.limit_in_bytes'],
        ['cpu', 'cpu.shares'], ['cpu', 'cpu.cfs_quota_us'], ['cpu', 'cpu.cfs_period_us'], ['pids', 'pids.max'], ['devices', 'devices.list'],
      ];
  for (const [controller, file] of files) {
    const ours = readIn(cgroupDir(ids.tsrun, controller), file);
    const theirs = readIn(procCgroupDir(runcState.pid ?? 0, controller) ?? '/nonexistent', file);
    t.ok(ours !== undefined, `${file} exists for tsrun`);
    t.equal(ours, theirs, `${file}: tsrun ${JSON.stringify(ours)} = runc ${JSON.stringify(theirs)}`);
  }
  t.equal((await tsrun(['delete', '--force', ids.tsrun])).code, 0);
  t.equal((await runtime('runc', ['delete', '--force', ids.runc], { timeoutMs: ms(30_000) })).code, 0);
  await assertNothingLeaked(t, ids.tsrun);
});
