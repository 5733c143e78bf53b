/**
 * The harness's own spec: bundles, the command helpers, cleanup and the leak
 * check, driven through runc (the reference runtime) so that it proves the
 * harness whatever state bin/tsrun is in.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { pidPath, socketPath } from '../src/engine/protocol.js';
import {
  assertNothingLeaked,
  cleanupContainer,
  ensureEngine,
  exec,
  findCgroupDirs,
  findProcesses,
  freshStateRoot,
  leakCheck,
  leaksSince,
  makeBundle,
  rootFor,
  runtime,
  setTsrunBinary,
  stateRoot,
  stopEnginesUnder,
  tsrun,
  uniqueId,
} from './lib/harness.js';

const hasRunc = (process.env.PATH ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, 'runc')));
const skip = process.getuid?.() !== 0 ? 'needs root' : !hasRunc ? 'needs runc' : false;

t.test('exec: exit codes, output, stdin, env, never throws', async (t) => {
  const ok = await exec('sh', ['-c', 'echo out; echo err >&2; exit 3']);
  t.equal(ok.code, 3);
  t.equal(ok.stdout, 'out\n');
  t.equal(ok.stderr, 'err\n');
  t.equal(ok.timedOut, false);

  const cat = await exec('cat', [], { input: 'through stdin' });
  t.equal(cat.stdout, 'through stdin');

  process.env.HARNESS_DROPPED = 'inherited';
  const env = await exec('sh', ['-c', 'echo "$A/${HARNESS_DROPPED-unset}"'], { env: { A: 'set', HARNESS_DROPPED: undefined } });
  delete process.env.HARNESS_DROPPED;
  t.equal(env.stdout, 'set/unset\n', 'env adds and removes variables');

  const missing = await exec('/nonexistent/binary', []);
  t.equal(missing.code, 127);
  t.match(missing.stderr, /ENOENT/);

  const killed = await exec('sh', ['-c', 'kill -TERM $$']);
  t.equal(killed.signal, 'SIGTERM');
  t.equal(killed.code, 128 + 15);
});

t.test('exec: a timeout kills the whole process group', async (t) => {
  const marker = `harness-timeout-${process.pid}`;
  // two processes (a background one and the child itself) carry the marker; both must die
  const r = await exec('bash', ['-c', `exec -a ${marker} sleep 30 & exec -a ${marker} sleep 30`], {
    timeoutMs: 300,
  }).catch((e: unknown) => ({ error: e }));
  t.notOk('error' in r, 'resolves, does not reject');
  if ('error' in r) return;
  t.equal(r.timedOut, true);
  t.equal(r.signal, 'SIGKILL');
  t.ok(r.ms < 5000, `returned after the timeout (${Math.round(r.ms)} ms)`);
  t.match(r.stderr, /killed after 300 ms/);
  const left = findProcesses([], [marker]);
  t.same(left, [], 'no child left');
});

t.test('tsrun(): bin/tsrun (or the override) with --root prepended', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'harness-fake-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const fake = path.join(dir, 'fake-tsrun');
  fs.writeFileSync(fake, '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n', { mode: 0o755 });
  setTsrunBinary(fake);
  t.teardown(() => setTsrunBinary(undefined));
  const r = await tsrun(['state', 'x']);
  t.equal(r.code, 0);
  t.same(r.stdout.trim().split('\n'), ['--root', rootFor('tsrun'), 'state', 'x']);
  t.equal(path.dirname(rootFor('tsrun')), stateRoot());
  t.not(rootFor('runc'), rootFor('tsrun'), 'each runtime has its own state dir');

  const other = await tsrun(['list'], { root: '/elsewhere' });
  t.same(other.stdout.trim().split('\n'), ['--root', '/elsewhere', 'list']);
});

t.test('uniqueId: valid container ids, never twice', async (t) => {
  const ids = new Set(Array.from({ length: 200 }, () => uniqueId('x')));
  t.equal(ids.size, 200);
  for (const id of ids) t.match(id, /^[\w+.-]+$/);
});

t.test('makeBundle: rootfs from the template, config mutated and written, removed at teardown', { skip }, async (t) => {
  let dir = '';
  await t.test('make', async (t) => {
    const b = await makeBundle(t, (c) => {
      c.hostname = 'harness';
    });
    dir = b.dir;
    const rootfs = path.join(b.dir, 'rootfs');
    t.ok(fs.statSync(path.join(rootfs, 'bin', 'busybox')).isFile());
    t.equal(fs.readlinkSync(path.join(rootfs, 'bin', 'sh')), 'busybox');
    t.equal(fs.readlinkSync(path.join(rootfs, 'sbin')), 'bin');
    t.equal(fs.readlinkSync(path.join(rootfs, 'usr', 'bin')), '../bin');
    t.match(fs.readFileSync(path.join(rootfs, 'etc', 'passwd'), 'utf8'), /^root:x:0:0:root:\/root:\/bin\/sh$/m);
    t.match(fs.readFileSync(path.join(rootfs, 'etc', 'passwd'), 'utf8'), /^nobody:x:65534:65534:/m);
    for (const d of ['proc', 'sys', 'dev', 'tmp', 'root', 'etc']) t.ok(fs.statSync(path.join(rootfs, d)).isDirectory(), d);
    t.equal(fs.statSync(path.join(rootfs, 'tmp')).mode & 0o7777, 0o1777);
    t.equal(fs.statSync(path.join(rootfs, 'bin', 'busybox')).nlink, 1, 'busybox is a copy, not a link to the template');

    const written = JSON.parse(fs.readFileSync(path.join(b.dir, 'config.json'), 'utf8'));
    t.same(written.process.args, ['sh']);
    t.equal(written.process.terminal, false);
    t.equal(written.hostname, 'harness');
    t.equal(written.root.path, 'rootfs');
    t.same(written, b.config);

    b.write((c) => {
      c.process.args = ['true'];
    });
    t.same(JSON.parse(fs.readFileSync(b.configPath, 'utf8')).process.args, ['true']);
  });
  t.ok(dir && !fs.existsSync(dir), 'bundle removed at teardown');
});

t.test('runc runs `echo hi` in a harness bundle', { skip }, async (t) => {
  leakCheck(t);
  const { dir } = await makeBundle(t, (c) => {
    c.process.args = ['echo', 'hi'];
  });
  const id = uniqueId('harness');
  cleanupContainer(t, id, 'runc');
  const r = await runtime('runc', ['run', '--bundle', dir, id]);
  t.equal(r.code, 0, `runc run exits 0 (${r.stderr.trim()})`);
  t.equal(r.stdout, 'hi\n');
  t.ok(r.ms < 10_000, `took ${Math.round(r.ms)} ms`);
  await assertNothingLeaked(t, id);
});

t.test('stdin reaches the container, and its exit status comes back', { skip }, async (t) => {
  const { dir } = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', 'cat; exit 7'];
  });
  const id = uniqueId('harness');
  cleanupContainer(t, id, 'runc');
  const r = await runtime('runc', ['run', '--bundle', dir, id], { input: 'from the test\n' });
  t.equal(r.stdout, 'from the test\n');
  t.equal(r.code, 7);
});

t.test('the leak check finds a live container; delete --force at teardown removes it', { skip }, async (t) => {
  const root = freshStateRoot(t);
  t.equal(path.dirname(rootFor('runc')), root);
  const id = uniqueId('harness');
  const marker = `marker-${id}`;
  await t.test('container left running', async (t) => {
    leakCheck(t, [marker]);
    const { dir } = await makeBundle(t, (c) => {
      c.process.args = ['sleep', '600'];
      c.annotations = { marker };
    });
    cleanupContainer(t, id, 'runc');
    const r = await runtime('runc', ['run', '--detach', '--bundle', dir, id], { stdout: 'ignore', stderr: 'pipe' });
    t.equal(r.code, 0, `runc run -d (${r.stderr.trim()})`);
    const state = await runtime('runc', ['state', id]);
    t.equal(JSON.parse(state.stdout).status, 'running');
    const leaks = leaksSince(undefined, id, [marker]);
    t.ok(leaks.cgroups.length > 0, `its cgroups are found (${leaks.cgroups.length})`);
    t.ok(
      leaks.processes.some((p) => p.cmdline.startsWith('sleep 600')),
      'its process is found through its cgroup',
    );
  });
  // the subtest's teardown ran: runc delete --force, then the bundle went
  t.same(findCgroupDirs([id]), [], 'cgroups gone after teardown');
  t.same(
    findProcesses([id]).filter((p) => p.cmdline.startsWith('sleep')),
    [],
    'process gone after teardown',
  );
  const state = await runtime('runc', ['state', id]);
  t.not(state.code, 0, 'runc no longer knows the container');
});

t.test('stopEnginesUnder: the engines for roots under a directory stop, and no socket or pid file stays', { skip: process.getuid?.() !== 0 ? 'needs root' : false }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-harness-engines-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const running = path.join(dir, 'running');
  const killed = path.join(dir, 'killed');
  ensureEngine(running);
  ensureEngine(killed);
  const pidOf = (root: string) => Number(fs.readFileSync(pidPath(root), 'utf8'));
  const gone = (pid: number) => {
    try {
      return fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0] === 'Z';
    } catch {
      return true;
    }
  };
  const runningPid = pidOf(running);
  const killedPid = pidOf(killed);
  // What a cleanup sweep SIGKILLing everything that names the directory did
  // to an engine: it dies with its socket and pid file in place.
  process.kill(killedPid, 'SIGKILL');
  for (let i = 0; i < 100 && !gone(killedPid); i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(gone(killedPid), 'the killed engine is gone');
  t.ok(fs.existsSync(socketPath(killed)), 'and left its socket behind');
  stopEnginesUnder(dir);
  t.ok(gone(runningPid), 'the running engine is stopped');
  for (const root of [running, killed]) {
    t.notOk(fs.existsSync(socketPath(root)) || fs.existsSync(pidPath(root)), `no socket or pid file for ${path.basename(root)}`);
  }
});
