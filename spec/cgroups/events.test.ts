/**
 * events --stats (one JSON object in runc's shape), events streaming every
 * --interval with an oom event when the kernel OOM-kills in the container,
 * ps (-f json and table) and kill --all.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { assertNothingLeaked, cleanupContainer, leakCheck, makeBundle, tsrun, uniqueId } from '../lib/harness.js';
import { alive, spawnLive, stateOf, tsrunFiles, waitFor, within } from '../runtime/core-lib.js';
import { ms, skip, withResources } from './lib.js';

const MiB = 2 ** 20;

interface StatsEvent {
  type: string;
  id: string;
  data: {
    cpu: { usage: { total?: number } };
    memory: { usage: { usage?: number; limit: number } };
    pids: { current?: number; limit?: number };
    blkio: object;
    hugetlb: object;
  };
}

t.test('events --stats, ps, kill --all', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', 'sleep 600 & sleep 600 & x=$(seq 1000); wait'];
    withResources(c, { memory: { limit: 64 * MiB }, pids: { limit: 20 } });
  });
  const id = uniqueId('cg-ev');
  cleanupContainer(t, id);
  const r = await tsrunFiles(['run', '-d', '--bundle', b.dir, id], { timeoutMs: ms(30_000) });
  t.equal(r.code, 0, `run -d (${r.stderr.trim()})`);
  const initPid = (await stateOf(id)).state?.pid ?? 0;

  // ps -f json: the host pids of the init and its two sleeps.
  let pids: number[] = [];
  await waitFor(async () => {
    const ps = await tsrun(['ps', '-f', 'json', id], { timeoutMs: ms(30_000) });
    pids = ps.code === 0 ? (JSON.parse(ps.stdout) as number[]) : [];
    return pids.length === 3;
  }, ms(10_000), ms(100));
  t.equal(pids.length, 3, `ps -f json lists init and two sleeps: ${JSON.stringify(pids)}`);
  t.ok(pids.includes(initPid), 'including the init');

  const table = await tsrun(['ps', id], { timeoutMs: ms(30_000) });
  t.equal(table.code, 0, table.stderr);
  const rows = table.stdout.trim().split('\n');
  t.match(rows[0], /^UID\s+PID\s+PPID/, 'ps -ef header');
  t.equal(rows.length, 4, 'header + 3 processes');
  t.equal(rows.filter((l) => /\ssleep 600$/.test(l)).length, 2, 'the two sleeps');
  const custom = await tsrun(['ps', id, '--', '-o', 'pid,comm'], { timeoutMs: ms(30_000) });
  t.match(custom.stdout, /^\s*PID COMMAND\n/, 'ps options after the id');

  const ev = await tsrun(['events', '--stats', id], { timeoutMs: ms(30_000) });
  t.equal(ev.code, 0, ev.stderr);
  t.equal(ev.stdout.trim().split('\n').length, 1, 'one line');
  const s = JSON.parse(ev.stdout) as StatsEvent;
  t.equal(s.type, 'stats');
  t.equal(s.id, id);
  t.same(Object.keys(s.data).slice(0, 6), ['cpu', 'cpuset', 'memory', 'pids', 'blkio', 'hugetlb'], "runc's keys");
  t.ok((s.data.memory.usage.usage ?? 0) > 0, `memory usage ${s.data.memory.usage.usage}`);
  t.equal(s.data.memory.usage.limit, 64 * MiB, 'memory limit');
  t.equal(s.data.pids.current, 3, 'pids.current');
  t.equal(s.data.pids.limit, 20, 'pids.max');
  t.ok((s.data.cpu.usage.total ?? 0) > 0, 'cpu usage');

  const k = await tsrun(['kill', '--all', id, 'KILL'], { timeoutMs: ms(30_000) });
  t.equal(k.code, 0, `kill --all (${k.stderr.trim()})`);
  t.ok(await waitFor(() => pids.every((p) => !alive(p)), ms(10_000)), 'every process is gone');
  t.equal((await tsrun(['delete', id], { timeoutMs: ms(30_000) })).code, 0);
  await assertNothingLeaked(t, id);
});

t.test('events streams stats every --interval and reports OOM kills', { skip }, async (t) => {
  leakCheck(t);
  const hog = 'x=0123456789abcdef; i=0; while [ $i -lt 24 ]; do x=$x$x; i=$((i+1)); done';
  const b = await makeBundle(t, (c) => {
    // Waits (bounded) for the host's go-ahead, runs the hog once, then idles.
    c.root.readonly = false; // the container writes to /tmp
    c.process.args = ['sh', '-c', `i=0; while [ ! -e /tmp/go ] && [ $i -lt 6000 ]; do sleep 0.1; i=$((i+1)); done; sh -c '${hog}'; echo "hog=$?" > /tmp/done; sleep 600`];
    withResources(c, { memory: { limit: 32 * MiB } });
  });
  const id = uniqueId('cg-oom');
  cleanupContainer(t, id);
  const r = await tsrunFiles(['run', '-d', '--bundle', b.dir, id], { timeoutMs: ms(30_000) });
  t.equal(r.code, 0, `run -d (${r.stderr.trim()})`);

  const live = spawnLive(t, ['events', '--interval', `${ms(500)}ms`, id], { timeoutMs: ms(120_000) });
  const events = () =>
    live
      .out()
      .split('\n')
      .filter((l) => l.trim())
      .map((l) => JSON.parse(l) as { type: string; id: string; data?: unknown });
  t.ok(await waitFor(() => events().filter((e) => e.type === 'stats').length >= 2, ms(20_000)), 'stats events keep coming');
  fs.writeFileSync(path.join(b.rootfs, 'tmp', 'go'), '');
  t.ok(await waitFor(() => events().some((e) => e.type === 'oom'), ms(30_000)), 'an oom event');
  const oom = events().find((e) => e.type === 'oom');
  t.same(oom, { type: 'oom', id }, "runc's oom event");
  t.match(fs.readFileSync(path.join(b.rootfs, 'tmp', 'done'), 'utf8'), /hog=137/, 'the hog was killed');
  t.ok(events().every((e) => e.id === id && (e.type === 'stats' || e.type === 'oom')), 'nothing else');

  t.equal((await tsrun(['delete', '--force', id], { timeoutMs: ms(30_000) })).code, 0);
  const end = await within(live.exited, ms(10_000), undefined);
  t.same(end, { code: 0, signal: null }, 'events ends by itself once the container is gone');
  await assertNothingLeaked(t, id);
});
