/**
 * The resident engine (src/engine/, native/launcher.cc): `engine
 * start|status|stop`, a command through it behaves as cold (output, stderr,
 * exit status), the container's process is the launcher's child with
 * signals forwarded, and killing the engine with SIGKILL in the middle of a
 * create leaves nothing behind and a retry works.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { createHash } from 'node:crypto';
import os from 'node:os';
import {
  assertNothingLeaked,
  cleanupContainer,
  exec,
  freshStateRoot,
  leakCheck,
  makeBundle,
  REPO_ROOT,
  rootFor,
  setTsrunBinary,
  tsrun,
  tsrunBinary,
  uniqueId,
  warmMode,
} from '../lib/harness.js';
import { alive, isRoot, procStatus, spawnLive, waitFor } from './core-lib.js';
import { pidPath, socketPath } from '../../src/engine/protocol.js';

// In warm mode (TSRUN_TEST_ENGINE=1) the harness starts engines itself; these
// specs start, kill and stop their own, so they run in the cold group only.
const skip = !isRoot ? 'needs root' : warmMode() ? 'manages its own engines (runs in the cold group)' : false;

interface EngineStatus {
  pid: number;
  root: string;
  build: string;
  served: number;
}

async function status(): Promise<EngineStatus | undefined> {
  const r = await tsrun(['engine', 'status']);
  return r.code === 0 ? (JSON.parse(r.stdout) as EngineStatus) : undefined;
}

/** An engine for this test's own root, stopped at teardown (whatever the harness's mode). */
async function startEngine(t: Test): Promise<EngineStatus> {
  freshStateRoot(t);
  const r = await tsrun(['engine', 'start', '--idle-timeout', '300']);
  t.equal(r.code, 0, `engine start exits 0 (${r.stderr.trim()})`);
  t.teardown(() => exec(tsrunBinary(), ['--root', rootFor('tsrun'), 'engine', 'stop'], { env: { TSRUN_ENGINE: '0' } }));
  const s = await status();
  if (!s) throw new Error('engine status failed right after start');
  return s;
}

t.test('engine start, status and stop', { skip }, async (t) => {
  const s = await startEngine(t);
  t.equal(s.root, path.resolve(rootFor('tsrun')), 'it serves our root');
  t.ok(alive(s.pid), 'the engine runs');
  t.match(s.build, /^[0-9a-f]{16}\/p\d+\/v\d+$/, 'it names its build');
  const mode = fs.statSync('/run/tsrun-engine');
  t.equal(mode.mode & 0o777, 0o700, 'the socket directory is root-only');
  const again = await tsrun(['engine', 'start']);
  t.equal(again.code, 1, 'a second start fails');
  t.match(again.stderr, /^tsrun: an engine already serves --root \S+\n$/, 'with one line saying so');
  const stop = await tsrun(['engine', 'stop']);
  t.equal(stop.code, 0, `stop exits 0 (${stop.stderr.trim()})`);
  t.notOk(alive(s.pid), 'the engine is gone');
  const none = await tsrun(['engine', 'status']);
  t.equal(none.code, 1, 'status fails once stopped');
  t.match(none.stderr, /^tsrun: no engine is running for --root \S+\n$/);
  const stillWorks = await tsrun(['list', '-q']);
  t.equal(stillWorks.code, 0, 'commands run cold again');
});

t.test('SIGTERM, SIGINT or SIGHUP ends an idle engine and removes its socket', { skip }, async (t) => {
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    const s = await startEngine(t);
    process.kill(s.pid, sig);
    // Bounded: the engine used to hang here (its accept worker was joined at exit).
    const gone = await waitFor(() => !alive(s.pid), 10_000, 50);
    t.ok(gone, `${sig}: the engine process exits`);
    if (!gone) process.kill(s.pid, 'SIGKILL');
    const root = path.resolve(rootFor('tsrun'));
    t.notOk(fs.existsSync(socketPath(root)) || fs.existsSync(pidPath(root)), `${sig}: its socket and pid file are gone`);
    const none = await tsrun(['engine', 'status']);
    t.equal(none.code, 1, `${sig}: status says no engine`);
  }
});

t.test('a command through the engine behaves as cold, and the engine serves it', { skip }, async (t) => {
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', 'echo out; echo err >&2; exit 7'];
  });
  const before = await startEngine(t);
  const results = [];
  for (const mode of ['1', '0']) {
    const id = uniqueId('warm');
    cleanupContainer(t, id);
    results.push(await tsrun(['run', '--bundle', b.dir, id], { env: { TSRUN_ENGINE: mode === '0' ? '0' : undefined } }));
    const missing = await tsrun(['state', id], { env: { TSRUN_ENGINE: mode === '0' ? '0' : undefined } });
    results.push(missing);
  }
  const [warmRun, warmState, coldRun, coldState] = results;
  t.same([warmRun!.code, warmRun!.stdout, warmRun!.stderr], [7, 'out\n', 'err\n'], 'warm run: the container status and stdio');
  t.same([coldRun!.code, coldRun!.stdout, coldRun!.stderr], [7, 'out\n', 'err\n'], 'cold run: the same');
  t.equal(warmState!.code, 1, 'state of a deleted container fails warm');
  t.equal(warmState!.stderr.replace(/warm-\S+/, 'ID'), coldState!.stderr.replace(/warm-\S+/, 'ID'), 'with the same message as cold');
  const after = await status();
  t.equal(after!.served - before.served, 3, 'the engine served the warm run, its delete and the warm state (not the cold ones)');
});

t.test("a command through the engine has its caller's environment, not the previous command's", { skip }, async (t) => {
  const before = await startEngine(t);
  // TSRUN_TRACE is read from the command's environment: set for the first
  // command only, the second must not trace (the engine keeps the last
  // command's environment between commands and replaces it at the next).
  const traced = await tsrun(['list', '-q'], { env: { TSRUN_TRACE: '1' } });
  t.equal(traced.code, 0, 'list exits 0');
  t.match(traced.stderr, /tsrun-trace:/, 'the traced command traces');
  const plain = await tsrun(['list', '-q']);
  t.equal(plain.code, 0, 'list exits 0 again');
  t.equal(plain.stderr, '', 'the next command, without TSRUN_TRACE, does not');
  t.equal((await status())!.served - before.served, 2, 'both were served by the engine');
});

t.test('a launcher in another mount namespace is not served: its command runs cold', { skip }, async (t) => {
  const before = await startEngine(t);
  const own = await exec('unshare', ['--mount', '--propagation', 'private', tsrunBinary(), '--root', rootFor('tsrun'), 'list', '-q']);
  t.equal(own.code, 0, `list in its own mount namespace exits 0 (${own.stderr.trim()})`);
  t.equal((await status())!.served, before.served, 'the engine did not serve it (its paths could mean other files)');
  t.equal((await tsrun(['list', '-q'])).code, 0, 'list from ours');
  t.equal((await status())!.served, before.served + 1, 'is served');
});

t.test("run's delete: on the run's own connection when the process is quick, a command of its own when not", { skip }, async (t) => {
  leakCheck(t);
  const quick = await makeBundle(t, (c) => {
    c.process.args = ['true'];
  });
  const slow = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '0.3']; // well past the engine's wait (INLINE_AFTER_MS)
  });
  await startEngine(t);
  for (const [b, inline] of [
    [quick, 1],
    [slow, 0],
  ] as const) {
    const before = (await status())!;
    const id = uniqueId('warmdel');
    cleanupContainer(t, id);
    const r = await tsrun(['run', '--bundle', b.dir, id]);
    t.equal(r.code, 0, `run exits 0 (${r.stderr.trim()})`);
    t.equal(r.stderr, '', 'and says nothing');
    const after = (await status()) as EngineStatus & { servedInline: number };
    t.equal(after.served - before.served, 2, 'the engine served the run and its delete');
    t.equal(after.servedInline - (before as EngineStatus & { servedInline: number }).servedInline, inline, inline ? 'the delete rode on the run\'s connection' : 'the delete came as a command of its own');
    const gone = await tsrun(['state', id]);
    t.equal(gone.code, 1, 'the container is deleted either way');
    await assertNothingLeaked(t, id);
  }
});

t.test('the container is the launcher\'s child and gets its signals', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', "trap 'exit 42' TERM; echo ready; while :; do sleep 0.05; done"];
  });
  await startEngine(t);
  const id = uniqueId('warmsig');
  cleanupContainer(t, id);
  const pidFile = path.join(b.dir, 'init.pid');
  const live = spawnLive(t, ['run', '--bundle', b.dir, '--pid-file', pidFile, id]);
  await waitFor(() => live.out().includes('ready'), 10_000);
  const pid = Number(fs.readFileSync(pidFile, 'utf8'));
  t.equal(Number(procStatus(pid, 'PPid')), live.pid, 'the init\'s parent is the launcher (bin/tsrun), as runc\'s is');
  live.child.kill('SIGTERM');
  const end = await live.exited;
  t.equal(end.code, 42, 'SIGTERM to the launcher reached the container; its status is the launcher\'s');
  await waitFor(async () => (await tsrun(['state', id])).code !== 0, 5000);
  t.not((await tsrun(['state', id])).code, 0, 'run deleted the container afterwards');
  await assertNothingLeaked(t, id);
});

t.test('SIGKILL of the engine during a create: the command fails cleanly and a retry works', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '30'];
  });
  // A createRuntime hook that parks the create (in the engine) until we have killed the engine.
  const hookPid = path.join(b.dir, 'hook.pid');
  const config = JSON.parse(fs.readFileSync(path.join(b.dir, 'config.json'), 'utf8'));
  config.hooks = { createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', `echo $$ > ${hookPid}; exec sleep 30`] }] };
  fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(config));
  const engine = await startEngine(t);
  const id = uniqueId('warmkill');
  cleanupContainer(t, id);
  const live = spawnLive(t, ['create', '--bundle', b.dir, id]);
  await waitFor(() => fs.existsSync(hookPid) && fs.readFileSync(hookPid, 'utf8').trim() !== '', 10_000);
  process.kill(engine.pid, 'SIGKILL');
  // The hook is the dead engine's child; we started it, so we end it.
  process.kill(Number(fs.readFileSync(hookPid, 'utf8')), 'SIGKILL');
  const end = await live.exited;
  await live.closed;
  t.equal(end.code, 1, 'the create fails');
  t.match(live.err(), /^tsrun: create: the engine exited before the command completed; what it had created was removed\n$/, 'with one line saying why');
  const st = await tsrun(['state', id]);
  t.match(st.stderr, /does not exist/, 'no container is left in the state');
  await assertNothingLeaked(t, id);

  // Retry: cold (the engine is gone), then through a new engine.
  fs.rmSync(hookPid);
  config.hooks = {};
  fs.writeFileSync(path.join(b.dir, 'config.json'), JSON.stringify(config));
  const cold = await tsrun(['create', '--bundle', b.dir, id]);
  t.equal(cold.code, 0, `the retry succeeds (${cold.stderr.trim()})`);
  t.equal((await tsrun(['delete', '--force', id])).code, 0, 'and deletes');
  const restarted = await tsrun(['engine', 'start']);
  t.equal(restarted.code, 0, `a new engine starts (${restarted.stderr.trim()})`);
  const warm = await tsrun(['create', '--bundle', b.dir, id]);
  t.equal(warm.code, 0, `the retry through it succeeds (${warm.stderr.trim()})`);
  t.equal((await status())?.served, 1, 'served by the new engine');
  t.equal((await tsrun(['delete', '--force', id])).code, 0, 'and deletes');
  await assertNothingLeaked(t, id);
});

t.test('CVE-2019-5736 through the engine: the init runs the sealed tsrun-init, the launcher cannot be rewritten', { skip }, async (t) => {
  // Attack a copy of the launcher (with dist/ beside it), never the repository's own.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-warm-cve-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'bin'));
  const copy = path.join(dir, 'bin', 'tsrun');
  fs.copyFileSync(path.join(REPO_ROOT, 'bin', 'tsrun'), copy);
  fs.chmodSync(copy, 0o755);
  fs.symlinkSync(path.join(REPO_ROOT, 'dist'), path.join(dir, 'dist'));
  setTsrunBinary(copy);
  t.teardown(() => setTsrunBinary(undefined));
  const sha = () => createHash('sha256').update(fs.readFileSync(copy)).digest('hex');
  const before = sha();
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '30'];
    c.root.readonly = false;
    for (const set of ['bounding', 'effective', 'permitted'] as const) c.process.capabilities![set] = [...(c.process.capabilities![set] ?? []), 'CAP_SYS_PTRACE'];
  });
  await startEngine(t);
  const id = uniqueId('warmcve');
  cleanupContainer(t, id);
  t.equal((await tsrun(['create', '--bundle', b.dir, id])).code, 0, 'create through the engine');
  const st = JSON.parse((await tsrun(['state', id])).stdout) as { pid: number };
  // The launcher clones the child, which execs the sealed tsrun-init the engine passed along.
  t.match(fs.readlinkSync(`/proc/${st.pid}/exe`), /^\/memfd:tsrun-init/, 'the created init runs a sealed in-memory tsrun-init, not bin/tsrun');
  // Hold /proc/1/exe, then try to write through it once nothing runs it any more (after start).
  const attack = `exec 3< /proc/1/exe || { echo noopen > /tmp/attack.result; exit 0; }
echo holding > /tmp/attack.holding
i=0; while [ $i -lt 20 ]; do
  if printf PWNED 1<>/proc/self/fd/3 2>/dev/null; then echo overwritten > /tmp/attack.result; exit 0; fi
  i=$((i+1)); sleep 0.1
done; echo refused > /tmp/attack.result`;
  t.equal((await tsrun(['exec', '-d', id, 'sh', '-c', attack])).code, 0, 'exec -d the attacker');
  const tmp = path.join(b.rootfs, 'tmp');
  await waitFor(() => fs.existsSync(path.join(tmp, 'attack.holding')) || fs.existsSync(path.join(tmp, 'attack.result')), 5000);
  t.equal((await tsrun(['start', id])).code, 0, 'start');
  await waitFor(() => fs.existsSync(path.join(tmp, 'attack.result')), 10_000, 50);
  t.equal(fs.readFileSync(path.join(tmp, 'attack.result'), 'utf8').trim(), 'refused', 'the attacker could not write through /proc/1/exe');
  t.equal(sha(), before, 'the launcher binary is unchanged (sha256)');
  t.equal((await tsrun(['delete', '--force', id])).code, 0, 'delete --force');
});

t.test('launcher and engine of different builds do not talk: the command runs cold', { skip }, async (t) => {
  // A launcher whose dist/ carries another build id (the footer scripts/bundle.mjs writes).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-warm-build-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.mkdirSync(path.join(dir, 'bin'));
  fs.copyFileSync(path.join(REPO_ROOT, 'bin', 'tsrun'), path.join(dir, 'bin', 'tsrun'));
  fs.chmodSync(path.join(dir, 'bin', 'tsrun'), 0o755);
  fs.cpSync(path.join(REPO_ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });
  fs.symlinkSync(path.join(REPO_ROOT, 'build'), path.join(dir, 'build'));
  const main = path.join(dir, 'dist', 'tsrun-main.js');
  const text = fs.readFileSync(main, 'utf8');
  fs.writeFileSync(main, text.replace(/\/\/# tsrun-build \S+\s*$/, '//# tsrun-build 0000000000000000\n'));
  const before = await startEngine(t);
  const other = await exec(path.join(dir, 'bin', 'tsrun'), ['--root', rootFor('tsrun'), 'list', '-q']);
  t.equal(other.code, 0, `the other build's list works (${other.stderr.trim()})`);
  t.equal(other.stdout, '', 'with the same (empty) answer');
  const ours = await tsrun(['list', '-q']);
  t.equal(ours.code, 0, 'our own build is served');
  const after = await status();
  t.equal(after!.served - before.served, 1, 'the engine served only its own build (the other ran cold)');
});
