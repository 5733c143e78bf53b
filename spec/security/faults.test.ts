/**
 * Faults: `tsrun create`, `start` and `delete` SIGKILLed half-way.
 *
 * create gets a config with 300 tmpfs mounts, so the init spends a while
 * mounting, and is killed
 *  - after delays from 0 ms to past a whole create, in steps;
 *  - at chosen moments found by watching its state: just after it claimed
 *    the id (before clone), as soon as the init's pid is recorded (the child
 *    is mounting), and while a createRuntime hook holds it at the PRE_PIVOT
 *    sync point (before the state says "created").
 * After each kill: `tsrun list -f json` never shows the id as created or
 * running unless create had done its work (its record says so, and then the
 * container really starts), and `tsrun delete --force` leaves nothing.
 *
 * start is killed while a startContainer hook holds it (before the init is
 * released) and while a poststart hook holds it (after), delete while a
 * poststop hook holds it and after short delays; each time the container is
 * in a state the next command recovers from.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  assertNothingLeaked,
  type Bundle,
  type BundleConfig,
  cleanupContainer,
  findCgroupDirs,
  leakCheck,
  type LeakSnapshot,
  makeBundle,
  rootFor,
  tsrun,
  uniqueId,
} from '../lib/harness.js';
import { alive, isRoot, type Live, listJson, sleep, spawnLive, stateOf, waitFor, within } from './security-lib.js';

t.setTimeout(280_000);

const skip = !isRoot ? 'end-to-end specs need root' : false;

const MOUNTS = 300;

const BUG_DELETE_CGROUP_GONE =
  'BUG: a container whose recorded cgroup directories are (partly) gone can never be deleted: `delete` and `delete ' +
  '--force` both fail with "cgroup: read /sys/fs/cgroup/pids/<id>/cgroup.procs: No such file or directory" and the ' +
  'state directory stays. Reached by killing create between the record that names the cgroups and cgroups.create() ' +
  '(src/lifecycle/create.ts), or delete after it removed them (e.g. during a poststop hook). src/cgroups/manager.ts ' +
  'collectPids() throws ENOENT for the top directory (pids(), used by destroy() in src/lifecycle/container.ts): a ' +
  'missing cgroup must mean no processes and nothing to remove';

const UNDELETABLE = /cgroup\.procs: No such file or directory/;

const BUG_CGROUP_WINDOW =
  'BUG: create records its cgroup paths in state.json only after creating the directories (src/lifecycle/create.ts: ' +
  'no store.save between `rec.cgroups = cgroups.toJSON()` and `cgroups.create()`); killed in between, `delete` cannot find them';

// ---------------------------------------------------------------------------
// Helpers

function manyMounts(c: BundleConfig): void {
  c.process.args = ['sleep', '60'];
  c.root.readonly = false;
  for (let i = 0; i < MOUNTS; i++) c.mounts.push({ destination: `/m/${i}`, type: 'tmpfs', source: 'tmpfs', options: ['size=64k'] });
}

interface Rec {
  phase?: string;
  pid?: number;
}

/** What create left on disk: no dir, a claimed dir without a record, or the record's phase and pid. */
function onDisk(id: string): { kind: 'none' | 'claimed' | 'record'; rec?: Rec } {
  const dir = path.join(rootFor('tsrun'), id);
  if (!fs.existsSync(dir)) return { kind: 'none' };
  try {
    return { kind: 'record', rec: JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as Rec };
  } catch {
    return { kind: 'claimed' };
  }
}

function describeDisk(d: ReturnType<typeof onDisk>): string {
  if (d.kind !== 'record') return d.kind === 'none' ? 'no state dir (before the id was claimed)' : 'id claimed, no record yet';
  if (d.rec?.phase === 'creating') return d.rec.pid ? 'creating, init cloned (mounting or waiting at a sync point)' : 'creating, before clone';
  return `record says ${d.rec?.phase}`;
}

/** assertNothingLeaked, with the known crash-window cgroup leak (cgroup directories only) reported as todo. */
async function nothingLeakedAfterCrash(t: Test, id: string, before: LeakSnapshot): Promise<boolean> {
  const wrapped = {
    teardown: (fn: () => unknown) => t.teardown(fn),
    ok: (value: unknown, message: string, extra: { [k: string]: unknown }) => {
      const found = extra.found as LeakSnapshot | undefined;
      const ours = (found?.mounts ?? []).filter((m) => m.includes(id));
      const cgroupsOnly = !value && !!found && found.cgroups.length > 0 && !found.processes.length && !ours.length;
      return t.ok(value, message, cgroupsOnly ? { ...extra, todo: BUG_CGROUP_WINDOW } : extra);
    },
  };
  const ok = await assertNothingLeaked(wrapped, id, { before });
  // what the known bug leaves: empty cgroup directories; remove them so later tests start clean
  if (!ok) {
    for (const d of findCgroupDirs([id]).sort((a, b) => b.length - a.length)) {
      try {
        fs.rmdirSync(d);
      } catch {
        /* not empty or gone */
      }
    }
  }
  return ok;
}

/**
 * `delete --force id` must succeed; when it fails with the undeletable-cgroup
 * bug the assertions are todo and the test removes the leftovers itself
 * (state directory, cgroup directories named after the id).
 */
async function forceDelete(t: Test, id: string): Promise<void> {
  const d = await tsrun(['delete', '--force', id]);
  const todo = d.code !== 0 && UNDELETABLE.test(d.stderr) ? BUG_DELETE_CGROUP_GONE : undefined;
  t.equal(d.code, 0, 'delete --force exits 0', { stderr: d.stderr, todo });
  const stateDir = path.join(rootFor('tsrun'), id);
  t.notOk(fs.existsSync(stateDir), 'no state directory left', { todo });
  if (todo) {
    fs.rmSync(stateDir, { recursive: true, force: true });
    for (const dir of findCgroupDirs([id]).sort((a, b) => b.length - a.length)) {
      try {
        fs.rmdirSync(dir);
      } catch {
        /* not empty or gone */
      }
    }
  }
}

/** SIGKILL to the tsrun process only, then (once it is gone) to what is left of its process group (hooks it ran). */
async function killAndReap(live: Live): Promise<{ code: number; signal: NodeJS.Signals | null } | undefined> {
  live.kill('SIGKILL');
  const exit = await within(live.exited, 15_000, undefined);
  try {
    process.kill(-live.pid, 'SIGKILL'); // our own process group: the hooks tsrun had spawned
  } catch {
    /* empty */
  }
  return exit;
}

/**
 * After a killed create: the listing, then `delete --force`, then nothing
 * left. `completed`: create exited 0 before the kill landed.
 */
async function checkAfterCreateKill(t: Test, id: string, before: LeakSnapshot, completed: boolean, disk: ReturnType<typeof onDisk>): Promise<void> {
  const list = await listJson();
  t.ok(list, 'list -f json works and parses');
  const status = list?.find((e) => e.id === id)?.status ?? 'absent';
  const workDone = completed || disk.rec?.phase === 'created';
  t.comment(`${completed ? 'create completed' : 'create killed'}; on disk: ${describeDisk(disk)}; listed as ${status}`);
  if (!workDone) {
    t.ok(status !== 'created' && status !== 'running', `a half-made container is not listed as healthy (${status})`);
  } else if (status === 'created') {
    // Its record says created: it must really be a healthy created container.
    const s = await tsrun(['start', id]);
    t.equal(s.code, 0, 'listed as created, it starts', { stderr: s.stderr });
    const st = await stateOf(id);
    t.equal(st?.status, 'running', 'and runs');
  }
  await forceDelete(t, id);
  t.equal((await listJson())?.some((e) => e.id === id), false, 'not listed any more');
  await nothingLeakedAfterCrash(t, id, before);
}

// ---------------------------------------------------------------------------
// create

t.test(`create SIGKILLed after a delay (${MOUNTS} tmpfs mounts)`, { skip }, async (t) => {
  const b = await makeBundle(t, manyMounts);
  // A whole create (the second: the first also makes the mount points), to
  // spread the kills over all of it.
  let full = 0;
  for (let i = 0; i < 2; i++) {
    const probe = uniqueId('fault-probe');
    cleanupContainer(t, probe);
    const t0 = Date.now();
    const p = spawnLive(t, ['create', '--bundle', b.dir, probe]);
    const pe = await within(p.exited, 30_000, undefined);
    full = Date.now() - t0;
    t.equal(pe?.code, 0, `a full create works (${full} ms)`, { stderr: p.stderr() });
    await tsrun(['delete', '--force', probe]);
  }
  const step = Math.max(4, Math.ceil(full / 10));
  const seen = new Map<string, number>();
  let completions = 0;
  // 0 ms, then steps of a tenth of a create, until two creates completed before their kill (16 rounds at most)
  for (let round = 0, delay = 0; round < 16 && completions < 2; round++, delay += step) {
    await t.test(`killed ${delay} ms after spawn`, async (t) => {
      const before = leakCheck(t);
      const id = uniqueId('fault-c');
      cleanupContainer(t, id);
      const live = spawnLive(t, ['create', '--bundle', b.dir, id]);
      if (delay) await sleep(delay);
      const alreadyDone = live.done();
      const exit = await killAndReap(live);
      t.ok(exit, 'create is gone');
      const completed = alreadyDone && exit?.code === 0 && exit.signal === null;
      const disk = onDisk(id);
      if (completed || disk.rec?.phase === 'created') completions++;
      seen.set(describeDisk(disk), (seen.get(describeDisk(disk)) ?? 0) + 1);
      await checkAfterCreateKill(t, id, before, completed, disk);
    });
  }
  t.comment(`moments hit: ${[...seen].map(([k, v]) => `${k}: ${v}`).join('; ')}`);
});

t.test('create SIGKILLed at chosen moments', { skip }, async (t) => {
  const b = await makeBundle(t, manyMounts);

  /**
   * Spawns create and polls (every event-loop turn, bounded) until `moment`
   * is true, then kills it; up to `attempts` creates until one is caught at
   * the moment (a race: when every attempt misses, that is reported, not
   * failed, unless `mustHit`). Each attempt is checked after its kill.
   */
  async function killWhen(
    t: Test,
    name: string,
    bundle: Bundle,
    moment: (id: string) => boolean,
    opts: { attempts?: number; mustHit?: boolean; note?: () => string } = {},
  ) {
    await t.test(name, async (t) => {
      let caught = false;
      for (let attempt = 1; attempt <= (opts.attempts ?? 3) && !caught; attempt++) {
        const before = leakCheck(t);
        const id = uniqueId('fault-m');
        cleanupContainer(t, id);
        const live = spawnLive(t, ['create', '--bundle', bundle.dir, id]);
        const deadline = Date.now() + 20_000;
        for (let i = 0; i < 5_000_000 && !live.done() && Date.now() < deadline; i++) {
          if (moment(id)) {
            caught = true;
            break;
          }
          await new Promise<void>((r) => setImmediate(r));
        }
        const alreadyDone = live.done();
        const exit = await killAndReap(live);
        t.comment(`attempt ${attempt}: ${caught ? `killed at the moment${opts.note ? ` (${opts.note()})` : ''}` : 'create finished before the moment was seen'}`);
        const disk = onDisk(id);
        await checkAfterCreateKill(t, id, before, alreadyDone && exit?.code === 0, disk);
      }
      if (opts.mustHit) t.ok(caught, 'the moment was reached');
    });
  }

  const record = (id: string) => onDisk(id).rec;
  await killWhen(t, 'before clone: the id is claimed and recorded, no init yet', b, (id) => {
    const r = record(id);
    return r?.phase === 'creating' && !r.pid;
  });
  let mountsAtKill = 0;
  await killWhen(
    t,
    'while the child is mounting: some of its tmpfs mounts exist, not all',
    b,
    (id) => {
      const pid = record(id)?.pid ?? 0;
      if (!pid) return false;
      try {
        mountsAtKill = fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n').filter((l) => /\/m\/\d+ /.test(l)).length;
      } catch {
        return false;
      }
      return mountsAtKill > 0 && mountsAtKill < MOUNTS;
    },
    { note: () => `${mountsAtKill} of the ${MOUNTS} tmpfs mounts were made` },
  );

  // A createRuntime hook that holds create at the PRE_PIVOT sync point.
  const held = await makeBundle(t, manyMounts);
  const marker = path.join(held.dir, 'hook-running');
  held.write((c) => {
    c.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `cat > /dev/null; touch ${marker}; sleep 20`] }] };
  });
  await killWhen(
    t,
    'at PRE_PIVOT: a createRuntime hook holds create (before the state says created)',
    held,
    (id) => {
      if (!fs.existsSync(marker)) return false;
      fs.rmSync(marker, { force: true });
      return record(id)?.phase === 'creating';
    },
    { attempts: 1, mustHit: true },
  );
});

// ---------------------------------------------------------------------------
// start and delete

/** A hook script (runtime namespace) that holds the first time it runs, then passes. */
function holdOnce(dir: string, name: string): { hook: { path: string; args: string[] }; holding: string } {
  const holding = path.join(dir, `${name}-holding`);
  const once = path.join(dir, `${name}-once`);
  return {
    holding,
    hook: { path: '/bin/sh', args: ['sh', '-c', `cat > /dev/null; [ -e ${once} ] && exit 0; touch ${once} ${holding}; sleep 20`] },
  };
}

async function createdContainer(t: Test, b: Bundle): Promise<string> {
  const id = uniqueId('fault-s');
  cleanupContainer(t, id);
  const c = spawnLive(t, ['create', '--bundle', b.dir, id]);
  const e = await within(c.exited, 30_000, undefined);
  t.equal(e?.code, 0, 'create', { stderr: c.stderr() });
  return id;
}

t.test('start SIGKILLed mid-way', { skip }, async (t) => {
  await t.test('while a startContainer hook holds it (before the init is released)', async (t) => {
    const before = leakCheck(t);
    const b = await makeBundle(t);
    // startContainer runs in the container: its marker files live in the rootfs.
    b.write((c) => {
      c.process.args = ['sleep', '60'];
      c.root.readonly = false;
      c.hooks = {
        startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'cat > /dev/null; [ -e /tmp/once ] && exit 0; touch /tmp/once /tmp/holding; sleep 20'] }],
      };
    });
    const id = await createdContainer(t, b);
    const live = spawnLive(t, ['start', id]);
    t.ok(await waitFor(() => fs.existsSync(path.join(b.rootfs, 'tmp/holding')) || live.done(), 10_000), 'the hook holds start');
    await killAndReap(live);
    const st = await stateOf(id);
    t.equal(st?.status, 'created', 'the container is still created');
    const again = await tsrun(['start', id]);
    t.equal(again.code, 0, 'a second start works', { stderr: again.stderr });
    t.equal((await stateOf(id))?.status, 'running', 'and it runs');
    t.equal((await tsrun(['delete', '--force', id])).code, 0, 'delete --force');
    await assertNothingLeaked(t, id, { before });
  });

  await t.test('while a poststart hook holds it (after the init was released)', async (t) => {
    const before = leakCheck(t);
    const b = await makeBundle(t);
    const h = holdOnce(b.dir, 'poststart');
    b.write((c) => {
      c.process.args = ['sleep', '60'];
      c.hooks = { poststart: [h.hook] };
    });
    const id = await createdContainer(t, b);
    const live = spawnLive(t, ['start', id]);
    t.ok(await waitFor(() => fs.existsSync(h.holding) || live.done(), 10_000), 'the hook holds start');
    await killAndReap(live);
    const st = await stateOf(id);
    t.equal(st?.status, 'running', 'the container runs');
    t.ok(st && alive(st.pid), 'its init is alive');
    const again = await tsrun(['start', id]);
    t.not(again.code, 0, 'a second start is refused');
    t.match(again.stderr, /already running/, 'as already running', { stderr: again.stderr });
    t.equal((await tsrun(['delete', '--force', id])).code, 0, 'delete --force');
    await assertNothingLeaked(t, id, { before });
  });

  await t.test('after short delays', async (t) => {
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sleep', '60'];
    });
    for (const delay of [0, 50, 100]) {
      await t.test(`killed ${delay} ms after spawn`, async (t) => {
        const before = leakCheck(t);
        const id = await createdContainer(t, b);
        const live = spawnLive(t, ['start', id]);
        if (delay) await sleep(delay);
        await killAndReap(live);
        const st = await stateOf(id);
        t.ok(st?.status === 'created' || st?.status === 'running', `created or running (${st?.status})`);
        if (st?.status === 'created') {
          const s = await tsrun(['start', id]);
          t.equal(s.code, 0, 'start again works', { stderr: s.stderr });
        }
        t.equal((await stateOf(id))?.status, 'running', 'it runs');
        t.equal((await tsrun(['delete', '--force', id])).code, 0, 'delete --force');
        await assertNothingLeaked(t, id, { before });
      });
    }
  });
});

t.test('delete SIGKILLed mid-way', { skip }, async (t) => {
  await t.test('while a poststop hook holds it', async (t) => {
    const before = leakCheck(t);
    const b = await makeBundle(t);
    const h = holdOnce(b.dir, 'poststop');
    b.write((c) => {
      c.process.args = ['sleep', '60'];
      c.hooks = { poststop: [h.hook] };
    });
    const id = await createdContainer(t, b);
    t.equal((await tsrun(['start', id])).code, 0, 'start');
    const live = spawnLive(t, ['delete', '--force', id]);
    t.ok(await waitFor(() => fs.existsSync(h.holding) || live.done(), 10_000), 'the hook holds delete');
    await killAndReap(live);
    const entry = (await listJson())?.find((e) => e.id === id);
    t.ok(!entry || entry.status === 'stopped', `listed as stopped or gone (${entry?.status ?? 'absent'})`);
    const again = await tsrun(['delete', id]);
    t.equal(again.code, 0, 'a second delete (without --force) finishes it', {
      stderr: again.stderr,
      todo: again.code !== 0 && UNDELETABLE.test(again.stderr) ? BUG_DELETE_CGROUP_GONE : undefined,
    });
    if (again.code !== 0) await forceDelete(t, id);
    await assertNothingLeaked(t, id, { before });
  });

  await t.test(`after short delays (${MOUNTS} mounts)`, async (t) => {
    const b = await makeBundle(t, manyMounts);
    for (const delay of [0, 40, 80]) {
      await t.test(`killed ${delay} ms after spawn`, async (t) => {
        const before = leakCheck(t);
        const id = await createdContainer(t, b);
        t.equal((await tsrun(['start', id])).code, 0, 'start');
        const live = spawnLive(t, ['delete', '--force', id]);
        if (delay) await sleep(delay);
        await killAndReap(live);
        const entry = (await listJson())?.find((e) => e.id === id);
        t.ok(!entry || entry.status === 'stopped' || entry.status === 'running', `listed as ${entry?.status ?? 'absent'}`);
        await forceDelete(t, id);
        await nothingLeakedAfterCrash(t, id, before);
      });
    }
  });
});
