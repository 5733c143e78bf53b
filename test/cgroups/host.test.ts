/**
 * Real placement on this machine. Everything lives under a unique top-level
 * cgroup name (absolute cgroupsPath), so nothing here goes near the cgroups
 * of processes we did not start, and teardown removes it even on failure.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { posix } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import t from 'tap';
import { detectLayout, parseProcCgroup, type Layout } from '../../src/cgroups/detect.js';
import { openCgroups } from '../../src/cgroups/manager.js';
import { UserError } from '../../src/errors.js';

const skip =
  process.getuid?.() !== 0 ? 'needs root'
  : !existsSync('/sys/fs/cgroup/pids') ? 'needs a v1 pids hierarchy at /sys/fs/cgroup/pids'
  : false;

/** Every hierarchy root on the host (co-mounted controllers counted once). */
function mountpoints(layout: Layout): string[] {
  return [...new Set([...layout.v1.values(), ...(layout.unified ? [layout.unified] : [])])];
}

/** A per-test sandbox: a unique name, the processes we spawn, and a teardown that undoes both. */
function sandbox(t: { teardown(fn: () => Promise<void>): void }) {
  const layout = detectLayout();
  const name = `tsrun-test-${process.pid}-${randomBytes(4).toString('hex')}`;
  const children: ChildProcess[] = [];
  t.teardown(async () => {
    for (const c of children) await stop(c);
    for (const mnt of mountpoints(layout)) await removeQuietly(posix.join(mnt, name));
  });
  const sleeper = async () => {
    const c = spawn('sleep', ['30'], { stdio: 'ignore' });
    children.push(c);
    await new Promise<void>((resolve, reject) => c.once('spawn', resolve).once('error', reject));
    return c.pid!;
  };
  return { layout, name, sleeper, stopAll: () => Promise.all(children.map(stop)) };
}

async function stop(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise((resolve) => c.once('exit', resolve));
  c.kill('SIGKILL'); // by the pid we spawned, nothing else
  await exited;
}

/** Best-effort rmdir of a test cgroup tree, children first; only ever called on our unique name. */
async function removeQuietly(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) await removeQuietly(posix.join(dir, e.name));
  }
  for (let i = 0; i < 20; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      await delay(50);
    }
  }
}

/** Asserts `fn` throws a UserError (what the CLI prints as one line) with exactly `message`. */
function throwsUserError(t: { type: Function; equal: Function; fail: Function }, fn: () => unknown, message: string) {
  try {
    fn();
    t.fail(`expected UserError: ${message}`);
  } catch (err) {
    t.type(err, UserError);
    t.equal((err as Error).message, message);
  }
}

const cgroupOf = (pid: number) => parseProcCgroup(readFileSync(`/proc/${pid}/cgroup`, 'utf8'));

t.test('create, addProcess, pids, destroy', { skip }, async (t) => {
  const { layout, name, sleeper, stopAll } = sandbox(t);
  const inner = `/${name}/ctr`;
  const cg = openCgroups({ id: 'ctr', cgroupsPath: inner, layout });

  const keys = Object.keys(cg.paths);
  t.ok(keys.includes('pids') && keys.includes('devices') && keys.includes('name=systemd'));
  t.equal(keys.includes('unified'), layout.mode !== 'v1', 'cgroup2 tree joined on hybrid/v2');

  cg.create();
  const dirs = [...new Set(Object.values(cg.paths))];
  for (const d of dirs) t.ok(existsSync(d), `${d} exists`);
  const expectCreated = dirs.flatMap((d) => [posix.dirname(d), d]);
  t.same([...cg.created].sort(), [...new Set(expectCreated)].sort(), 'created = our top dir + leaf per hierarchy');

  const pid = await sleeper();
  cg.addProcess(pid);
  const seen = cgroupOf(pid);
  for (const [key, dir] of Object.entries(cg.paths)) {
    const mnt = key === 'unified' ? layout.unified! : layout.v1.get(key)!;
    t.equal(seen.get(key), dir.slice(mnt.length), `/proc/${pid}/cgroup shows ${key}`);
  }
  if (cg.paths.cpuset) {
    t.not(readFileSync(posix.join(cg.paths.cpuset, 'cpuset.cpus'), 'utf8').trim(), '', 'cpuset.cpus copied from parent');
    t.not(readFileSync(posix.join(cg.paths.cpuset, 'cpuset.mems'), 'utf8').trim(), '', 'cpuset.mems copied from parent');
  }
  t.same(cg.pids(), [pid]);

  // A child cgroup made by the container (pids() recurses; destroy removes it first).
  const sub = posix.join(cg.paths.pids, 'sub');
  mkdirSync(sub);
  const pid2 = await sleeper();
  writeFileSync(posix.join(sub, 'cgroup.procs'), String(pid2));
  t.same(cg.pids(), [pid, pid2].sort((a, b) => a - b), 'includes descendant cgroups');

  await stopAll();
  cg.destroy();
  for (const d of [...dirs, sub, ...expectCreated]) t.notOk(existsSync(d), `${d} removed`);
  t.same(cg.created, [], 'nothing left to remove');
  cg.destroy(); // idempotent: everything already gone
});

t.test('destroy leaves a pre-existing parent alone', { skip }, async (t) => {
  const { layout, name } = sandbox(t);
  const mnts = mountpoints(layout);
  for (const mnt of mnts) mkdirSync(posix.join(mnt, name));

  const cg = openCgroups({ id: 'x', cgroupsPath: `/${name}/a/b`, layout });
  cg.create();
  const used = [...new Set(Object.values(cg.paths))].map((d) => posix.dirname(posix.dirname(d))); // the pre-existing dirs
  t.same(
    [...cg.created].sort(),
    used.flatMap((p) => [posix.join(p, 'a'), posix.join(p, 'a/b')]).sort(),
    'only a and a/b were created',
  );
  const json = JSON.parse(JSON.stringify(cg));
  t.same(json.created, cg.created, 'created list is part of the serialised form');

  cg.destroy();
  for (const p of used) {
    t.notOk(existsSync(posix.join(p, 'a')), `${p}/a removed`);
    t.ok(existsSync(p), `${p} kept`);
  }
});

t.test('a parent shared with another container survives its first destroy', { skip }, async (t) => {
  const { layout, name } = sandbox(t);
  const a = openCgroups({ id: 'a', cgroupsPath: `/${name}/pod/a`, layout });
  const b = openCgroups({ id: 'b', cgroupsPath: `/${name}/pod/b`, layout });
  a.create();
  b.create();
  t.ok(b.created.every((d) => d.endsWith('/pod/b')), 'b created only its leaves');
  a.destroy(); // pod/ is busy with b: not an error
  t.ok(Object.values(b.paths).every(existsSync), "b's cgroups untouched");
  t.ok(Object.values(a.paths).every((d) => !existsSync(d)), "a's leaves gone");
  b.destroy();
});

t.test('destroy reports a cgroup that stays busy, and can be retried', { skip }, async (t) => {
  const { layout, name, sleeper, stopAll } = sandbox(t);
  const cg = openCgroups({ id: 'busy', cgroupsPath: `/${name}/busy`, layout });
  cg.create();
  const pid = await sleeper();
  writeFileSync(posix.join(cg.paths.pids, 'cgroup.procs'), String(pid)); // pids hierarchy only
  const started = Date.now();
  throwsUserError(t, () => cg.destroy(), `cgroup: rmdir ${cg.paths.pids}: Device or resource busy`);
  t.ok(Date.now() - started >= 900, 'retried for about a second');
  t.ok(existsSync(cg.paths.pids));
  t.notOk(existsSync(cg.paths.memory), 'the other hierarchies were still cleaned up');
  t.ok(cg.created.length > 0, 'created kept for the retry');
  await stopAll();
  cg.destroy();
  t.notOk(existsSync(posix.dirname(cg.paths.pids)));
});

t.test('filesystem errors are one-line UserErrors naming the file', { skip }, async (t) => {
  const { layout, name } = sandbox(t);
  const cg = openCgroups({ id: 'e', cgroupsPath: `/${name}/e`, layout });
  cg.create();
  const first = Object.values(cg.paths)[0];
  throwsUserError(t, () => cg.addProcess(99999999), `cgroup: write ${first}/cgroup.procs: No such process`);
  throwsUserError(t, () => cg.addProcess(-1), 'cgroup: invalid pid -1');
  cg.destroy();
  throwsUserError(t, () => cg.pids(), `cgroup: read ${cg.paths.pids}/cgroup.procs: No such file or directory`);
});
