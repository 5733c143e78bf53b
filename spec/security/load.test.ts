/**
 * Load: many containers at once.
 *
 *  - 50 containers created and started in parallel (LOAD_JOBS at once,
 *    default 12), then deleted in parallel: no failure, every one running
 *    with its own init in between, nothing left afterwards;
 *  - 50 simultaneous `create`s of the same id: exactly one wins, the 49
 *    others fail with runc's "container with id exists", the winner is a
 *    healthy created container, and after its delete nothing is left.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  assertNothingLeaked,
  cleanupContainer,
  leakCheck,
  type LeakSnapshot,
  leaksSince,
  makeBundle,
  rootFor,
  tsrun,
  uniqueId,
} from '../lib/harness.js';
import { alive, isRoot, lines, listJson, sleep, spawnLive, stateOf, tsrunFiles, within } from './security-lib.js';

t.setTimeout(280_000);

const skip = !isRoot ? 'end-to-end specs need root' : false;
const COUNT = 50;
const JOBS = Math.max(10, Math.min(50, Number(process.env.LOAD_JOBS ?? 12) | 0));

/** Runs `fn` over `items`, `jobs` at a time. */
async function pool<T, R>(items: T[], jobs: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, items.length) }, async () => {
      for (;;) {
        const i = next++;
        if (i >= items.length) return;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

/** Waits (bounded) until none of `ids` has a cgroup, process or new mount left; returns what is left. */
async function leftovers(before: LeakSnapshot, ids: string[], timeoutMs = 10_000): Promise<{ id: string; leaks: ReturnType<typeof leaksSince> }[]> {
  const deadline = Date.now() + timeoutMs;
  let left: { id: string; leaks: ReturnType<typeof leaksSince> }[] = [];
  for (let round = 0; round < 200; round++) {
    left = ids
      .map((id) => ({ id, leaks: leaksSince(before, id) }))
      .map(({ id, leaks }) => ({ id, leaks: { ...leaks, mounts: leaks.mounts.filter((m) => ids.some((i) => m.includes(i)) || m.includes('tsrun-bundle-')) } }))
      .filter(({ leaks }) => leaks.mounts.length || leaks.cgroups.length || leaks.processes.length);
    if (!left.length || Date.now() > deadline) return left;
    await sleep(200);
  }
  return left;
}

t.test(`${COUNT} containers created and started in parallel (${JOBS} at once), then deleted in parallel`, { skip }, async (t: Test) => {
  const before = leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '300'];
  });
  const ids = Array.from({ length: COUNT }, () => uniqueId('load'));
  for (const id of ids) cleanupContainer(t, id);

  const t0 = Date.now();
  const up = await pool(ids, JOBS, async (id) => {
    const c = await tsrunFiles(['create', '--bundle', b.dir, id], { timeoutMs: 60_000 });
    if (c.code !== 0) return `${id}: create: ${c.stderr.trim()}`;
    const s = await tsrunFiles(['start', id], { timeoutMs: 60_000 });
    return s.code === 0 ? '' : `${id}: start: ${s.stderr.trim()}`;
  });
  t.comment(`created and started ${COUNT} in ${Date.now() - t0} ms`);
  t.same(up.filter(Boolean), [], 'every create and start succeeded');

  const list = (await listJson()) ?? [];
  const mine = list.filter((e) => ids.includes(e.id));
  t.equal(mine.length, COUNT, `all ${COUNT} are listed`);
  t.same(mine.filter((e) => e.status !== 'running').map((e) => `${e.id}: ${e.status}`), [], 'all of them running');
  const pids = mine.map((e) => e.pid);
  t.equal(new Set(pids).size, COUNT, 'each with its own init');
  t.same(pids.filter((p) => !alive(p)), [], 'every init is alive');

  const t1 = Date.now();
  const down = await pool(ids, JOBS, async (id) => {
    const d = await tsrun(['delete', '--force', id], { timeoutMs: 60_000 });
    return d.code === 0 ? '' : `${id}: delete: ${d.stderr.trim()}`;
  });
  t.comment(`deleted ${COUNT} in ${Date.now() - t1} ms`);
  t.same(down.filter(Boolean), [], 'every delete --force succeeded');
  const after = (await listJson()) ?? [];
  t.same(after.filter((e) => ids.includes(e.id)).map((e) => e.id), [], 'none is listed any more');
  t.same(ids.filter((id) => fs.existsSync(path.join(rootFor('tsrun'), id))), [], 'no state directory left');
  t.same(await leftovers(before, ids), [], 'no cgroup, process or mount of any of them left');
});

t.test(`${COUNT} simultaneous creates of the same id: exactly one succeeds`, { skip }, async (t: Test) => {
  const before = leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '300'];
  });
  const id = uniqueId('load-same');
  cleanupContainer(t, id);
  // All spawned before any is awaited: they race for the id.
  const lives = Array.from({ length: COUNT }, () => spawnLive(t, ['create', '--bundle', b.dir, id], { timeoutMs: 90_000 }));
  const exits = await Promise.all(lives.map((l) => within(l.exited, 90_000, undefined)));
  const winners = exits.map((e, i) => (e?.code === 0 ? i : -1)).filter((i) => i >= 0);
  t.equal(winners.length, 1, 'exactly one create succeeded');
  const expected = `tsrun: create ${id}: container with id exists: ${id}`;
  const losers = lives.filter((_, i) => !winners.includes(i));
  t.equal(losers.length, COUNT - 1, `${COUNT - 1} failed`);
  const wrong = losers.map((l) => l.stderr()).filter((e) => lines(e).length !== 1 || lines(e)[0] !== expected);
  t.same(wrong.slice(0, 5), [], `each failed with one line: "${expected}"`, { total: wrong.length });
  t.same(exits.filter((e) => e && e.code !== 0 && e.code !== 1), [], 'the losers exit 1');

  const st = await stateOf(id);
  t.equal(st?.status, 'created', 'the winner is a created container');
  t.ok(st && alive(st.pid), 'its init is alive');
  const s = await tsrun(['start', id]);
  t.equal(s.code, 0, 'it starts', { stderr: s.stderr });
  t.equal((await stateOf(id))?.status, 'running', 'and runs');
  t.equal((await tsrun(['delete', '--force', id])).code, 0, 'delete --force');
  t.notOk(fs.existsSync(path.join(rootFor('tsrun'), id)), 'no state directory left');
  await assertNothingLeaked(t, id, { before, settleMs: 5000 });
});
