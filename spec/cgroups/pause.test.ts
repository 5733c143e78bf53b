/**
 * pause/resume freeze and thaw the whole container (v1 freezer here,
 * cgroup.freeze in the v2 VM); `state` says "paused" meanwhile; delete
 * refuses a paused container unless forced, and --force gets rid of it.
 */
import path from 'node:path';
import t from 'tap';
import { assertNothingLeaked, cleanupContainer, leakCheck, makeBundle, tsrun, uniqueId } from '../lib/harness.js';
import { sleep, stateOf, tsrunFiles, waitFor } from '../runtime/core-lib.js';
import { ms, readStable, skip } from './lib.js';

// A counter the host can read through the rootfs; bounded (the container
// is deleted long before it could finish).
const COUNTER = 'i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done';

t.test('pause really freezes, resume continues', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.root.readonly = false; // the container writes to /tmp
    c.process.args = ['sh', '-c', COUNTER];
  });
  const count = () => Number(readStable(path.join(b.rootfs, 'tmp', 'count')) || 0);
  const id = uniqueId('cg-pause');
  cleanupContainer(t, id);
  const r = await tsrunFiles(['run', '-d', '--bundle', b.dir, id], { timeoutMs: ms(30_000) });
  t.equal(r.code, 0, `run -d (${r.stderr.trim()})`);
  t.ok(await waitFor(() => count() > 2, ms(10_000)), 'the counter runs');

  const p = await tsrun(['pause', id], { timeoutMs: ms(30_000) });
  t.equal(p.code, 0, `pause (${p.stderr.trim()})`);
  t.equal((await stateOf(id)).state?.status, 'paused', 'state says paused');
  const frozenAt = count();
  await sleep(ms(1000));
  t.equal(count(), frozenAt, `the counter stopped at ${frozenAt}`);

  const again = await tsrun(['pause', id]);
  t.not(again.code, 0, 'pausing a paused container fails');
  t.match(again.stderr, /container not running or created: paused/);
  const del = await tsrun(['delete', id]);
  t.not(del.code, 0, 'delete refuses a paused container');
  t.match(del.stderr, /not stopped: paused/);

  const res = await tsrun(['resume', id], { timeoutMs: ms(30_000) });
  t.equal(res.code, 0, `resume (${res.stderr.trim()})`);
  t.equal((await stateOf(id)).state?.status, 'running');
  t.ok(await waitFor(() => count() > frozenAt + 2, ms(10_000)), 'the counter moves again');
  const notPaused = await tsrun(['resume', id]);
  t.match(notPaused.stderr, /container not paused: running/);

  t.equal((await tsrun(['pause', id], { timeoutMs: ms(30_000) })).code, 0, 'paused again');
  const k = await tsrun(['kill', id, 'KILL'], { timeoutMs: ms(30_000) });
  t.equal(k.code, 0, `kill KILL (${k.stderr.trim()})`);
  t.ok(await waitFor(async () => (await stateOf(id)).state?.status === 'stopped', ms(10_000), ms(100)), 'SIGKILL stops a paused container');
  t.equal((await tsrun(['delete', id], { timeoutMs: ms(30_000) })).code, 0);
  await assertNothingLeaked(t, id);
});

t.test('delete --force removes a paused container', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', 'sleep 600 & sleep 600'];
  });
  const id = uniqueId('cg-pdel');
  cleanupContainer(t, id);
  const r = await tsrunFiles(['run', '-d', '--bundle', b.dir, id], { timeoutMs: ms(30_000) });
  t.equal(r.code, 0, `run -d (${r.stderr.trim()})`);
  t.equal((await tsrun(['pause', id], { timeoutMs: ms(30_000) })).code, 0, 'paused');
  const force = await tsrun(['delete', '--force', id], { timeoutMs: ms(30_000) });
  t.equal(force.code, 0, `delete --force of a paused container (${force.stderr.trim()})`);
  await assertNothingLeaked(t, id);
});
