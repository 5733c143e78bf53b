/**
 * Where a container's processes are born: in every hierarchy tsrun recorded
 * for it (each v1 controller and the cgroup v2 directory), the init as well
 * as an exec'd process. The v1 hierarchies are joined by the spawner moving
 * itself (src/plan/cgroups.ts), the v2 directory by clone3
 * CLONE_INTO_CGROUP; with clone3 refused (ENOSYS, as some seccomp profiles
 * do), the spawner falls back to cgroup.procs and the result is the same.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parseProcCgroup } from '../../src/cgroups/detect.js';
import { assertNothingLeaked, cleanupContainer, exec, leakCheck, makeBundle, rootFor, tsrunBinary, uniqueId } from '../lib/harness.js';
import { hasCommand } from '../runtime/core-lib.js';
import { cgroupPaths, ms, skip } from './lib.js';

/** Builds fixtures/no-clone3.c, or says why it cannot. */
function buildNoClone3(): string | { why: string } {
  if (!hasCommand('gcc')) return { why: 'no gcc to build fixtures/no-clone3.c' };
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-noclone3-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const out = path.join(dir, 'no-clone3');
  const r = spawnSync('gcc', ['-O', '-o', out, path.join(__dirname, 'fixtures', 'no-clone3.c')], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`gcc no-clone3.c: ${r.stderr}`);
  return out;
}

/** Runs tsrun (on the specs' state root), under `wrapper` when given. */
function tsrunVia(wrapper: string | undefined, args: string[]) {
  const argv = [tsrunBinary(), '--root', rootFor('tsrun'), ...args];
  return wrapper ? exec(wrapper, argv, { timeoutMs: ms(30_000) }) : exec(argv[0], argv.slice(1), { timeoutMs: ms(30_000) });
}

/** Every hierarchy in the container's state holds `pid` (paths as /proc/<pid>/cgroup shows them). */
function assertIn(t: Test, id: string, pid: number, who: string): void {
  const seen = parseProcCgroup(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'));
  const paths = cgroupPaths(id);
  t.ok(Object.keys(paths).length > 0, `${who}: the container has cgroups`);
  for (const [key, dir] of Object.entries(paths)) {
    const at = seen.get(key);
    t.ok(at !== undefined && at !== '/' && dir.endsWith(at), `${who} is in ${key}: ${dir} (it is in ${at})`);
  }
}

async function placementCase(t: Test, wrapper: string | undefined): Promise<void> {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '600'];
    // With a cgroup namespace, as `runc spec` makes on cgroup v2: joined by
    // the exec'd process before its placement, it made an nsdelegate cgroup2
    // refuse that placement (ENOENT).
    if (!c.linux.namespaces.some((n) => n.type === 'cgroup')) c.linux.namespaces.push({ type: 'cgroup' });
  });
  const id = uniqueId('cg-place');
  cleanupContainer(t, id);
  const pidFile = path.join(b.dir, 'init.pid');
  const c = await tsrunVia(wrapper, ['create', '--bundle', b.dir, '--pid-file', pidFile, id]);
  t.equal(c.code, 0, `create (${c.stderr.trim()})`);
  if (c.code !== 0) return;
  assertIn(t, id, Number(fs.readFileSync(pidFile, 'utf8')), 'the init, before start');
  t.equal((await tsrunVia(wrapper, ['start', id])).code, 0, 'start');
  const execPid = path.join(b.dir, 'exec.pid');
  const e = await tsrunVia(wrapper, ['exec', '-d', '--pid-file', execPid, id, 'sleep', '600']);
  t.equal(e.code, 0, `exec -d (${e.stderr.trim()})`);
  if (e.code === 0) assertIn(t, id, Number(fs.readFileSync(execPid, 'utf8')), 'the exec process');
  const d = await tsrunVia(wrapper, ['delete', '--force', id]);
  t.equal(d.code, 0, `delete --force (${d.stderr.trim()})`);
  await assertNothingLeaked(t, id);
}

t.test('init and exec are born in every hierarchy', { skip }, async (t) => placementCase(t, undefined));

const noClone3 = skip ? undefined : buildNoClone3();
t.test('the same with clone3 refused (ENOSYS)', { skip: skip || (typeof noClone3 === 'object' ? noClone3.why : false) }, async (t) => {
  const probe = await exec(noClone3 as string, ['true']);
  t.equal(probe.code, 0, `the wrapper runs a program (${probe.stderr.trim()})`);
  await placementCase(t, noClone3 as string);
});
