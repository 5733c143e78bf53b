/**
 * The core runtime, end to end: create/start/kill/delete and the state they
 * leave, the pid file, stdio and the console socket, `run` in the foreground
 * and detached, kill and delete semantics, list, and concurrent creates.
 * Real containers, as root; runc 1.1 runs the same bundles where the
 * comparison is the point.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  assertNothingLeaked,
  type BundleConfig,
  cleanupContainer,
  findProcesses,
  freshStateRoot,
  leakCheck,
  makeBundle,
  rootFor,
  runtime,
  tsrun,
  uniqueId,
  warmMode,
} from '../lib/harness.js';
import {
  alive,
  cmdlineOf,
  hasCommand,
  isRoot,
  procStatus,
  spawnLive,
  stateOf,
  tsrunFiles,
  waitFor,
  waitStatus,
  withoutNamespace,
  within,
} from './core-lib.js';

const skip = !isRoot ? 'needs root' : false;
const skipRunc = skip || (!hasCommand('runc') ? 'needs runc' : false);
const skipPy = skip || (!hasCommand('python3') ? 'needs python3' : false);

t.setTimeout(290_000);

/**
 * The bundles whose stderr is checked line by line drop linux.resources, so
 * that only the error under test can be on it (the default config's own
 * stderr is checked by the first test and in errors.test.ts).
 */
const noResources = (c: BundleConfig) => {
  delete c.linux.resources;
};

const TERM_TRAP = "trap 'echo got TERM; exit 3' TERM; echo ready; while :; do sleep 0.1; done";

/** Does process `pid` catch signal `sig` (its bit in /proc/<pid>/status SigCgt)? */
function catches(pid: number, sig: number): boolean {
  const mask = procStatus(pid, 'SigCgt');
  return !!mask && ((BigInt(`0x${mask}`) >> BigInt(sig - 1)) & 1n) === 1n;
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** create + assertion that it worked; returns the create result. */
async function mustCreate(t: Test, id: string, bundle: string, extra: string[] = []) {
  const r = await tsrunFiles(['create', '--bundle', bundle, ...extra, id]);
  t.equal(r.code, 0, `create ${id} exits 0 (${r.stderr.trim()})`);
  return r;
}

t.test('create → created → start → running → kill → stopped → delete → gone', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '30'];
  });
  const id = uniqueId('life');
  cleanupContainer(t, id);
  const pidFile = path.join(b.dir, 'init.pid');
  const created = await tsrunFiles(['create', '--bundle', b.dir, '--pid-file', pidFile, id]);
  t.equal(created.code, 0, `create exits 0 (${created.stderr.trim()})`);
  t.equal(created.stderr, '', "create prints nothing on stderr (runc's default config)");

  const s1 = (await stateOf(id)).state;
  t.ok(s1, 'state parses');
  if (!s1) return;
  t.equal(s1.status, 'created');
  t.equal(s1.id, id);
  t.ok(s1.pid > 0, `pid > 0 (${s1.pid})`);
  t.ok(alive(s1.pid), 'the init is alive');
  t.notMatch(cmdlineOf(s1.pid), /^sleep/, 'the init is not yet the user process');
  t.equal(s1.bundle, b.dir);
  t.equal(s1.rootfs, path.join(b.dir, 'rootfs'));
  t.match(s1.created, RFC3339, `created is RFC 3339 (${s1.created})`);
  t.equal(s1.ociVersion.length > 0, true, 'ociVersion set');

  // --pid-file: ASCII, no newline, the state's pid
  const pidText = fs.readFileSync(pidFile, 'utf8');
  t.match(pidText, /^\d+$/, `pid file is ASCII digits without a newline (${JSON.stringify(pidText)})`);
  t.equal(Number(pidText), s1.pid, 'pid file = state.pid');

  // reparented: create has exited, the init's parent is not a tsrun process
  const ppid = Number(procStatus(s1.pid, 'PPid'));
  t.ok(ppid > 0, `init has a parent (${ppid})`);
  t.notMatch(cmdlineOf(ppid), /tsrun/, `the init's parent (${ppid}: ${cmdlineOf(ppid)}) is not tsrun`);

  const started = await tsrunFiles(['start', id]);
  t.equal(started.code, 0, `start exits 0 (${started.stderr.trim()})`);
  const s2 = (await stateOf(id)).state;
  t.equal(s2?.status, 'running');
  t.equal(s2?.pid, s1.pid, 'same pid after start');
  const cmd = await waitFor(() => (cmdlineOf(s1.pid) === 'sleep 30' ? 'sleep 30' : ''), 5000);
  t.equal(cmd, 'sleep 30', 'the init became the user process');

  const killed = await tsrun(['kill', id, 'KILL']);
  t.equal(killed.code, 0, `kill exits 0 (${killed.stderr.trim()})`);
  const s3 = await waitStatus(id, 'stopped');
  t.equal(s3?.status, 'stopped');
  t.equal(s3?.pid, 0, 'a stopped container has pid 0');

  const del = await tsrun(['delete', id]);
  t.equal(del.code, 0, `delete exits 0 (${del.stderr.trim()})`);
  const gone = await stateOf(id);
  t.not(gone.code, 0, 'state fails after delete');
  t.match(gone.stderr, /does not exist/);
  await assertNothingLeaked(t, id);
});

t.test('create → start of an init that runs as a non-root user with no capabilities', { skip }, async (t) => {
  // The init opens the exec fifo after its identity switch: without
  // CAP_DAC_OVERRIDE it needs the fifo's 0622 (runc's mode), not 0600.
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', 'id -u; grep CapEff /proc/self/status'];
    c.process.user = { uid: 1000, gid: 1000 };
    c.process.capabilities = { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] };
  });
  const id = uniqueId('life-nonroot');
  cleanupContainer(t, id);
  const out = path.join(b.dir, 'out.txt');
  const fd = fs.openSync(out, 'w');
  try {
    const created = await tsrun(['create', '--bundle', b.dir, id], { stdout: fd, stderr: 'pipe' });
    t.equal(created.code, 0, `create (${created.stderr.trim()})`);
  } finally {
    fs.closeSync(fd);
  }
  t.equal((fs.statSync(path.join(rootFor('tsrun'), id, 'exec.fifo')).mode & 0o777).toString(8), '622', 'the exec fifo is 0622, as runc makes it');
  const started = await tsrun(['start', id]);
  t.equal(started.code, 0, `start (${started.stderr.trim()})`);
  t.ok(await waitFor(async () => (await stateOf(id)).state?.status === 'stopped', 10_000), 'the process ran to its end');
  t.equal(fs.readFileSync(out, 'utf8'), '1000\nCapEff:\t0000000000000000\n', 'it ran as uid 1000 with no capabilities');
  t.equal((await tsrun(['delete', id])).code, 0, 'delete');
  await assertNothingLeaked(t, id);
});

t.test('the state JSON has exactly runc\'s keys', { skip: skipRunc }, async (t) => {
  for (const annotated of [false, true]) {
    await t.test(annotated ? 'with annotations' : 'without annotations', async (t) => {
      const b = await makeBundle(t, (c) => {
        c.process.args = ['sleep', '30'];
        if (annotated) c.annotations = { 'org.tsrun.spec': 'yes', another: 'one' };
      });
      const id = uniqueId('keys');
      cleanupContainer(t, id);
      cleanupContainer(t, id, 'runc');
      await mustCreate(t, id, b.dir);
      const rc = await runtime('runc', ['create', '--bundle', b.dir, id], { stdout: 'ignore', stderr: 'ignore' });
      t.equal(rc.code, 0, 'runc create exits 0');
      const ours = (await stateOf(id)).state;
      const theirs = await runtime('runc', ['state', id]);
      const runcState = JSON.parse(theirs.stdout) as Record<string, unknown>;
      t.ok(ours, 'tsrun state parses');
      if (!ours) return;
      t.same(Object.keys(ours).sort(), Object.keys(runcState).sort(), 'same key set as runc state');
      t.same(ours.annotations, runcState.annotations, 'same annotations');
      t.equal(ours.owner, runcState.owner, 'same owner');
      t.equal(typeof ours.pid, 'number');
      t.equal(ours.status, runcState.status);
      t.equal(ours.bundle, runcState.bundle);
      t.equal(ours.rootfs, runcState.rootfs);
      t.match(ours.created, RFC3339);
    });
  }
});

t.test('--pid-file relative to tsrun\'s cwd', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '30'];
  });
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-spec-cwd-'));
  t.teardown(() => fs.rmSync(cwd, { recursive: true, force: true }));
  const id = uniqueId('pidrel');
  cleanupContainer(t, id);
  const r = await tsrunFiles(['create', '--bundle', b.dir, '--pid-file', 'rel.pid', id], { cwd });
  t.equal(r.code, 0, `create exits 0 (${r.stderr.trim()})`);
  const file = path.join(cwd, 'rel.pid');
  t.ok(fs.existsSync(file), 'pid file written in the cwd');
  t.notOk(fs.existsSync(path.join(b.dir, 'rel.pid')), 'not in the bundle');
  const st = (await stateOf(id)).state;
  t.equal(fs.readFileSync(file, 'utf8'), String(st?.pid));
  t.equal((await tsrun(['delete', '--force', id])).code, 0);
  await assertNothingLeaked(t, id);
});

t.test('the container\'s stdio is create\'s stdio', { skip }, async (t) => {
  leakCheck(t);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sh', '-c', 'echo hello'];
  });
  const id = uniqueId('stdio');
  cleanupContainer(t, id);
  const create = spawnLive(t, ['create', '--bundle', b.dir, id]);
  const exit = await within(create.exited, 20_000, undefined);
  t.equal(exit?.code, 0, `create exits 0 (${create.err().trim()})`);
  t.equal(create.out(), '', 'nothing on the pipe before start');
  const started = await tsrunFiles(['start', id]);
  t.equal(started.code, 0, `start exits 0 (${started.stderr.trim()})`);
  await within(create.closed, 10_000, undefined);
  t.equal(create.out(), 'hello\n', "the container's echo arrived on create's stdout pipe");
  await waitStatus(id, 'stopped');
  t.equal((await tsrun(['delete', id])).code, 0, 'delete the stopped container');
  await assertNothingLeaked(t, id);
});

t.test('run in the foreground', { skip }, async (t) => {
  await t.test('exit code passed through', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sh', '-c', 'echo out; exit 7'];
    });
    const id = uniqueId('run7');
    cleanupContainer(t, id);
    const r = await tsrun(['run', '--bundle', b.dir, id]);
    t.equal(r.code, 7, `exit 7 → 7 (${r.stderr.trim()})`);
    t.equal(r.stdout, 'out\n', 'the container writes to run\'s stdout');
    const st = await stateOf(id);
    t.match(st.stderr, /does not exist/, 'run removed the container after it exited');
    await assertNothingLeaked(t, id);
  });

  await t.test('cold, run ends by _exit(2) once done, with nothing of its output lost', { skip: warmMode() ? 'warm: the launcher ends the command' : false }, async (t) => {
    leakCheck(t);
    // More than a pipe holds: the caller reads while the container writes.
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sh', '-c', "head -c 300000 /dev/zero | tr '\\0' x; exit 5"];
    });
    const id = uniqueId('runexit');
    cleanupContainer(t, id);
    const r = await tsrun(['run', '--bundle', b.dir, id], { env: { TSRUN_TRACE: '1' } });
    t.equal(r.code, 5, `the container's exit status (${r.stderr.split('\n').filter((l) => !l.startsWith('tsrun-trace')).join(' ')})`);
    t.equal(r.stdout.length, 300000, 'all of its output');
    t.match(r.stderr, /tsrun-trace: .* exit 5 \(_exit\)/, 'the addon was loaded, so tsrun ended through _exit');
    // A failure after the addon is loaded: its one line is on stderr, written before the _exit.
    const bad = await makeBundle(t, (c) => {
      c.process.args = ['/no/such/binary'];
    });
    const id2 = uniqueId('runexit');
    cleanupContainer(t, id2);
    const f = await tsrun(['run', '--bundle', bad.dir, id2], { env: { TSRUN_TRACE: '1' } });
    t.not(f.code, 0, 'an exec that fails fails run');
    t.match(f.stderr, new RegExp(`^tsrun: run ${id2}: .*no/such/binary`, 'm'), 'with its error line');
    t.match(f.stderr, /exit 1 \(_exit\)/, 'ended through _exit');
    // A command that never needs the addon ends through Node's reallyExit (no 'exit' event, no dlopen for it).
    const early = await tsrun(['delete', uniqueId('runexit')], { env: { TSRUN_TRACE: '1' } });
    t.match(early.stderr, /^tsrun: container ".*" does not exist/m, 'delete of no container fails, with its line');
    t.match(early.stderr, /exit 1 \(reallyExit\)/, 'ended through reallyExit');
    await assertNothingLeaked(t, id);
    await assertNothingLeaked(t, id2);
  });

  await t.test('killed by a signal → 128+N, like runc', { skip: skipRunc }, async (t) => {
    leakCheck(t);
    // Without a pid namespace the shell is not an init, so SIGKILL from itself is not ignored.
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sh', '-c', 'kill -9 $$'];
      withoutNamespace(c, 'pid');
    });
    const id = uniqueId('run137');
    cleanupContainer(t, id);
    cleanupContainer(t, id, 'runc');
    const r = await tsrun(['run', '--bundle', b.dir, id]);
    t.equal(r.code, 137, `kill -9 $$ → 137 (${r.stderr.trim()})`);
    t.equal(r.signal, null, 'tsrun itself exits normally');
    const rc = await runtime('runc', ['run', '--bundle', b.dir, id]);
    t.equal(r.code, rc.code, `same as runc (${rc.code})`);
    await assertNothingLeaked(t, id);
  });

  await t.test('SIGTERM to tsrun is forwarded to the container', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sh', '-c', TERM_TRAP];
    });
    const id = uniqueId('runterm');
    cleanupContainer(t, id);
    const live = spawnLive(t, ['run', '--bundle', b.dir, id]);
    const ready = await waitFor(() => live.out().includes('ready') || live.done(), 20_000);
    t.ok(ready && !live.done(), `container is up (${live.err().trim()})`);
    // Once tsrun forwards signals. Node catches SIGTERM from the start (to exit
    // with 143), so its SigCgt bit says nothing; SIGHUP it only catches when
    // asked to, and tsrun's forwarding asks for all the signals it forwards at once.
    t.ok(await waitFor(() => catches(live.pid, 1) || live.done(), 10_000), 'tsrun forwards signals (catches SIGHUP)');
    process.kill(live.pid, 'SIGTERM');
    const exit = await within(live.exited, 15_000, undefined);
    await within(live.closed, 5000, undefined);
    t.match(live.out(), /got TERM/, 'the container got SIGTERM');
    t.equal(exit?.code, 3, "tsrun exits with the container's 3");
    t.equal(exit?.signal, null, 'tsrun did not die of the signal');
    await assertNothingLeaked(t, id);
  });

  await t.test('SIGTERM once the container runs, before poststart hooks finished, is forwarded too', async (t) => {
    leakCheck(t);
    // A poststart hook holds tsrun between "the user process runs" and "waiting for it".
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sh', '-c', TERM_TRAP];
      c.hooks = { poststart: [{ path: '/bin/sleep', args: ['sleep', '2'] }] };
    });
    const id = uniqueId('runtermearly');
    cleanupContainer(t, id);
    const live = spawnLive(t, ['run', '--bundle', b.dir, id]);
    const ready = await waitFor(() => live.out().includes('ready') || live.done(), 20_000);
    t.ok(ready && !live.done(), `container is up (${live.err().trim()})`);
    process.kill(live.pid, 'SIGTERM');
    const exit = await within(live.exited, 15_000, undefined);
    await within(live.closed, 5000, undefined);
    t.match(live.out(), /got TERM/, 'the container got SIGTERM');
    t.equal(exit?.code, 3, "tsrun exits with the container's 3");
    t.equal(exit?.signal, null, 'tsrun did not die of the signal');
    const d = await tsrun(['delete', '--force', id]);
    t.ok(d.code === 0, `delete --force cleans up whatever is left (${d.stderr.trim()})`);
    await assertNothingLeaked(t, id);
  });

  await t.test('run -d returns at once and leaves a running container', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sleep', '30'];
    });
    const id = uniqueId('rund');
    cleanupContainer(t, id);
    const r = await tsrunFiles(['run', '-d', '--bundle', b.dir, id], { timeoutMs: 15_000 });
    t.equal(r.timedOut, false, 'run -d returned while the container runs');
    t.equal(r.code, 0, `run -d exits 0 (${r.stderr.trim()})`);
    const st = (await stateOf(id)).state;
    t.equal(st?.status, 'running');
    t.equal(cmdlineOf(st?.pid ?? 0), 'sleep 30');
    t.equal((await tsrun(['delete', '--force', id])).code, 0);
    await assertNothingLeaked(t, id);
  });

  await t.test('--keep keeps the stopped container', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['true'];
    });
    const id = uniqueId('runkeep');
    cleanupContainer(t, id);
    const r = await tsrun(['run', '--keep', '--bundle', b.dir, id]);
    t.equal(r.code, 0, `run --keep exits 0 (${r.stderr.trim()})`);
    const st = (await stateOf(id)).state;
    t.equal(st?.status, 'stopped', 'kept, stopped');
    t.equal(st?.pid, 0);
    t.equal((await tsrun(['delete', id])).code, 0, 'delete works on it');
    await assertNothingLeaked(t, id);
  });
});

// A console-socket listener: accepts one connection, counts every message and
// the fds each carries (SCM_RIGHTS) until EOF, then reads the first fd (the
// pty master) until the container's side closes; prints one JSON line.
const LISTENER = String.raw`
import array, json, os, select, signal, socket, sys, time
signal.alarm(40)
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(4)
s.settimeout(30)
conn, _ = s.accept()
conn.settimeout(30)
msgs, fds = [], []
while True:
    data, anc, flags, addr = conn.recvmsg(4096, socket.CMSG_SPACE(16 * 4))
    n = 0
    for level, typ, cdata in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            a = array.array('i')
            a.frombytes(cdata[: len(cdata) - len(cdata) % a.itemsize])
            n += len(a)
            fds.extend(a)
    if not data and not anc:
        break
    msgs.append({'bytes': len(data), 'fds': n, 'data': data.decode('utf8', 'replace')})
conn.close()
out = b''
tty = False
if fds:
    m = fds[0]
    tty = os.isatty(m)
    deadline = time.time() + 30
    while time.time() < deadline:
        r, _, _ = select.select([m], [], [], 0.5)
        if not r:
            continue
        try:
            chunk = os.read(m, 4096)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
print(json.dumps({'msgs': msgs, 'tty': tty, 'output': out.decode('utf8', 'replace')}), flush=True)
`;

t.test('console socket', { skip: skipPy }, async (t) => {
  await t.test('terminal: one SCM_RIGHTS message with one pty master; consoleSize applied', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.terminal = true;
      c.process.consoleSize = { height: 33, width: 101 };
      c.process.args = ['sh', '-c', 'stty size; echo tty-hello'];
    });
    const sockDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-spec-console-'));
    t.teardown(() => fs.rmSync(sockDir, { recursive: true, force: true }));
    const script = path.join(sockDir, 'listener.py');
    fs.writeFileSync(script, LISTENER);
    const sock = path.join(sockDir, 'console.sock');
    const listener = spawnLive(t, [script, sock], { raw: true, cmd: 'python3', timeoutMs: 45_000 });
    const up = await waitFor(() => fs.existsSync(sock) || listener.done(), 10_000);
    t.ok(up && fs.existsSync(sock), `listener is up (${listener.err().trim()})`);
    const id = uniqueId('tty');
    cleanupContainer(t, id);
    const created = await tsrunFiles(['create', '--bundle', b.dir, '--console-socket', sock, id]);
    t.equal(created.code, 0, `create exits 0 (${created.stderr.trim()})`);
    const started = await tsrunFiles(['start', id]);
    t.equal(started.code, 0, `start exits 0 (${started.stderr.trim()})`);
    const exit = await within(listener.exited, 40_000, undefined);
    await within(listener.closed, 5000, undefined);
    t.equal(exit?.code, 0, `listener exits 0 (${listener.err().trim()})`);
    let result: { msgs: { fds: number }[]; tty: boolean; output: string } | undefined;
    try {
      result = JSON.parse(listener.out().trim()) as typeof result;
    } catch {
      result = undefined;
    }
    t.ok(result, `listener reported (${listener.out().trim()})`);
    if (!result) return;
    t.equal(result.msgs.length, 1, 'exactly one message');
    t.equal(result.msgs[0]?.fds, 1, 'carrying exactly one fd');
    t.equal(result.tty, true, 'the fd is a terminal (the pty master)');
    t.match(result.output, /tty-hello/, "the pty master shows the container's output");
    t.match(result.output, /^33 101\r?$/m, 'consoleSize applied (stty size says 33 101)');
    await waitStatus(id, 'stopped');
    t.equal((await tsrun(['delete', id])).code, 0);
    await assertNothingLeaked(t, id);
  });

  await t.test('terminal: true without --console-socket is a clear error', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      noResources(c);
      c.process.terminal = true;
    });
    const id = uniqueId('ttynosock');
    cleanupContainer(t, id);
    const r = await tsrunFiles(['create', '--bundle', b.dir, id]);
    t.not(r.code, 0, 'create fails');
    t.match(r.stderr, /^tsrun: .*console-socket/, r.stderr.trim());
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.notOk(fs.existsSync(path.join(rootFor('tsrun'), id)), 'no state dir');
    await assertNothingLeaked(t, id);
  });

  await t.test('--console-socket without terminal is a clear error', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, noResources);
    const id = uniqueId('socknotty');
    cleanupContainer(t, id);
    const sock = path.join(b.dir, 'unused.sock');
    const r = await tsrunFiles(['create', '--bundle', b.dir, '--console-socket', sock, id]);
    t.not(r.code, 0, 'create fails');
    t.match(r.stderr, /^tsrun: .*terminal/, r.stderr.trim());
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.notOk(fs.existsSync(path.join(rootFor('tsrun'), id)), 'no state dir');
    await assertNothingLeaked(t, id);
  });
});

t.test('kill', { skip }, async (t) => {
  for (const sig of ['KILL', 'SIGKILL', '9']) {
    await t.test(`by ${sig}`, async (t) => {
      leakCheck(t);
      const b = await makeBundle(t, (c) => {
        c.process.args = ['sleep', '30'];
      });
      const id = uniqueId('kill');
      cleanupContainer(t, id);
      await mustCreate(t, id, b.dir);
      t.equal((await tsrun(['start', id])).code, 0, 'start');
      const r = await tsrun(['kill', id, sig]);
      t.equal(r.code, 0, `kill ${sig} exits 0 (${r.stderr.trim()})`);
      const st = await waitStatus(id, 'stopped');
      t.equal(st?.status, 'stopped', 'container stopped');
      t.equal((await tsrun(['delete', id])).code, 0);
      await assertNothingLeaked(t, id);
    });
  }

  await t.test('default signal is SIGTERM', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = [
        'sh',
        '-c',
        "trap 'echo got TERM; exit 0' TERM; trap 'echo got INT; exit 0' INT; trap 'echo got HUP; exit 0' HUP; echo ready; while :; do sleep 0.1; done",
      ];
    });
    const id = uniqueId('killterm');
    cleanupContainer(t, id);
    const outFile = path.join(b.dir, 'out.txt');
    const fd = fs.openSync(outFile, 'w+');
    t.teardown(() => fs.closeSync(fd));
    const c = await tsrun(['create', '--bundle', b.dir, id], { stdout: fd, stderr: fd });
    t.equal(c.code, 0, 'create');
    t.equal((await tsrun(['start', id])).code, 0, 'start');
    await waitFor(() => fs.readFileSync(outFile, 'utf8').includes('ready'), 10_000);
    const r = await tsrun(['kill', id]);
    t.equal(r.code, 0, `kill exits 0 (${r.stderr.trim()})`);
    const st = await waitStatus(id, 'stopped', 10_000);
    t.equal(st?.status, 'stopped');
    t.match(fs.readFileSync(outFile, 'utf8'), /got TERM/, 'the container got SIGTERM');
    t.equal((await tsrun(['delete', id])).code, 0);
    await assertNothingLeaked(t, id);
  });

  await t.test('a stopped container: container not running', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['true'];
    });
    const id = uniqueId('killstopped');
    cleanupContainer(t, id);
    await mustCreate(t, id, b.dir);
    t.equal((await tsrun(['start', id])).code, 0, 'start');
    t.equal((await waitStatus(id, 'stopped'))?.status, 'stopped');
    const r = await tsrun(['kill', id, 'KILL']);
    t.not(r.code, 0, 'kill fails');
    t.match(r.stderr, /container not running/);
    t.equal((await tsrun(['delete', id])).code, 0);
    await assertNothingLeaked(t, id);
  });

  await t.test('--all signals every process (no pid namespace)', async (t) => {
    leakCheck(t);
    const secs = String(100_000 + Math.floor(Math.random() * 800_000));
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sh', '-c', `sleep ${secs} & sleep ${secs} & wait`];
      withoutNamespace(c, 'pid');
    });
    const id = uniqueId('killall');
    cleanupContainer(t, id);
    await mustCreate(t, id, b.dir);
    t.equal((await tsrun(['start', id])).code, 0, 'start');
    const sleeps = () => findProcesses([], [`sleep ${secs}`]).filter((p) => p.cmdline === `sleep ${secs}` && alive(p.pid));
    const before = await waitFor(() => (sleeps().length === 2 ? sleeps() : undefined), 10_000);
    t.equal(before?.length, 2, 'both sleeps run on the host');
    const r = await tsrun(['kill', '--all', id, 'KILL']);
    t.equal(r.code, 0, `kill --all exits 0 (${r.stderr.trim()})`);
    const left = await waitFor(() => sleeps().length === 0, 5000);
    t.ok(left, `every sleep is gone (${JSON.stringify(sleeps())})`);
    t.equal((await waitStatus(id, 'stopped'))?.status, 'stopped', 'the init too');
    t.equal((await tsrun(['delete', id])).code, 0);
    await assertNothingLeaked(t, id, { markers: [`sleep ${secs}`] });
  });
});

t.test('delete', { skip }, async (t) => {
  await t.test('running without --force: not stopped; --force leaves nothing', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sleep', '30'];
    });
    const id = uniqueId('delrun');
    cleanupContainer(t, id);
    await mustCreate(t, id, b.dir);
    t.equal((await tsrun(['start', id])).code, 0, 'start');
    const r = await tsrun(['delete', id]);
    t.not(r.code, 0, 'delete fails');
    t.match(r.stderr, /not stopped/);
    t.equal((await stateOf(id)).state?.status, 'running', 'still running');
    const f = await tsrun(['delete', '--force', id]);
    t.equal(f.code, 0, `delete --force exits 0 (${f.stderr.trim()})`);
    t.match((await stateOf(id)).stderr, /does not exist/);
    await assertNothingLeaked(t, id);
  });

  await t.test('a created (never started) container', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sleep', '30'];
    });
    const id = uniqueId('delcreated');
    cleanupContainer(t, id);
    await mustCreate(t, id, b.dir);
    const pid = (await stateOf(id)).state?.pid ?? 0;
    const r = await tsrun(['delete', id]);
    t.equal(r.code, 0, `delete exits 0 (${r.stderr.trim()})`);
    t.match((await stateOf(id)).stderr, /does not exist/);
    t.ok(await waitFor(() => !alive(pid), 5000), 'its init is gone');
    await assertNothingLeaked(t, id);
  });
});

t.test('list', { skip }, async (t) => {
  const root = freshStateRoot(t);
  t.equal(path.dirname(rootFor('tsrun')), root);
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '30'];
  });
  const id = uniqueId('list');
  cleanupContainer(t, id);
  await mustCreate(t, id, b.dir);

  const table = await tsrun(['list']);
  t.equal(table.code, 0);
  const rows = table.stdout.trim().split('\n');
  t.match(rows[0], /^ID\s+PID\s+STATUS\s+BUNDLE\s+CREATED\s+OWNER$/, 'table header');
  const row = rows.find((l) => l.split(/\s+/)[0] === id);
  t.ok(row, 'a row for the container');
  t.equal(row?.split(/\s+/)[2], 'created', 'its status');
  t.equal(rows.length, 2, 'header and one row');

  const q = await tsrun(['list', '-q']);
  t.equal(q.stdout, `${id}\n`, '-q prints the ids');

  const j = await tsrun(['list', '-f', 'json']);
  const arr = JSON.parse(j.stdout) as Record<string, unknown>[];
  t.ok(Array.isArray(arr), '-f json is an array');
  t.equal(arr.length, 1);
  t.equal(arr[0]?.id, id);
  t.equal(arr[0]?.status, 'created');
  t.equal(arr[0]?.bundle, b.dir);
  t.ok(typeof arr[0]?.pid === 'number' && (arr[0].pid as number) > 0, 'pid');

  t.equal((await tsrun(['start', id])).code, 0, 'start');
  const j2 = JSON.parse((await tsrun(['list', '-f', 'json'])).stdout) as Record<string, unknown>[];
  t.equal(j2[0]?.status, 'running', 'status follows the container');
});

t.test('concurrency', { skip }, async (t) => {
  await t.test('two creates of one id at once: exactly one wins', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sleep', '30'];
    });
    const id = uniqueId('race');
    cleanupContainer(t, id);
    const [a, c] = await Promise.all([
      tsrunFiles(['create', '--bundle', b.dir, id]),
      tsrunFiles(['create', '--bundle', b.dir, id]),
    ]);
    const codes = [a.code, c.code];
    t.equal(codes.filter((x) => x === 0).length, 1, `exactly one exit 0 (${codes.join(', ')})`);
    const loser = a.code === 0 ? c : a;
    t.match(loser.stderr, /container with id exists/, loser.stderr.trim());
    t.equal((await stateOf(id)).state?.status, 'created', 'the winner is healthy');
    t.equal((await tsrun(['delete', id])).code, 0);
    await assertNothingLeaked(t, id);
  });

  await t.test('10 distinct creates in parallel', async (t) => {
    leakCheck(t);
    const b = await makeBundle(t, (c) => {
      c.process.args = ['sleep', '30'];
    });
    const ids = Array.from({ length: 10 }, () => uniqueId('par'));
    for (const id of ids) cleanupContainer(t, id);
    const results = await Promise.all(ids.map((id) => tsrunFiles(['create', '--bundle', b.dir, id], { timeoutMs: 60_000 })));
    results.forEach((r, i) => t.equal(r.code, 0, `create ${ids[i]} exits 0 (${r.stderr.trim()})`));
    for (const id of ids) t.equal((await stateOf(id)).state?.status, 'created', `${id} created`);
    const dels = await Promise.all(ids.map((id) => tsrun(['delete', id])));
    dels.forEach((r, i) => t.equal(r.code, 0, `delete ${ids[i]} exits 0 (${r.stderr.trim()})`));
    for (const id of ids) await assertNothingLeaked(t, id);
  });
});
