/**
 * The state store and the pure halves of the lifecycle: id rules, the
 * create lock, atomic writes, signal names and the derived status.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import ts from 'typescript';
import { UserError } from '../../src/errors.js';
import { ociState, parseSignal, statusOf } from '../../src/lifecycle/container.js';
import { procStat } from '../../src/lifecycle/proc.js';
import { DEFAULT_ROOT, Store, checkId, writePidFile, type ContainerRecord } from '../../src/lifecycle/store.js';
import { native } from '../../src/native.js';
import { EXEC_FIFO } from '../../src/plan/compile.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-store-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const freshRoot = () => path.join(tmp, `root-${++seq}`);

/** A pid that cannot exist: above the largest pid_max Linux allows (2^22). */
const NO_SUCH_PID = 2 ** 22 + 12345;
const myStart = procStat(process.pid)!.startTime;

function record(id: string, o: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    id,
    bundle: '/bundles/' + id,
    rootfs: '/bundles/' + id + '/rootfs',
    created: '2024-05-06T07:08:09.123456789Z',
    pid: process.pid,
    pidStartTime: myStart,
    phase: 'running',
    creatorPid: process.pid,
    creatorStartTime: myStart,
    config: { ociVersion: '1.2.0', root: { path: 'rootfs' } },
    ...o,
  };
}

t.test('DEFAULT_ROOT is /run/tsrun', async (t) => {
  t.equal(DEFAULT_ROOT, '/run/tsrun');
  t.equal(new Store().root, '/run/tsrun');
  t.equal(new Store('/x').dir('c1'), '/x/c1');
});

t.test('checkId', async (t) => {
  for (const id of ['a_b-c.d+e', 'c1', 'A', '0', '...', '.hidden', 'a..b', '-x', '+', 'x'.repeat(1024)]) {
    t.doesNotThrow(() => checkId(id), `accepts ${JSON.stringify(id.length > 20 ? `${id.length} chars` : id)}`);
  }
  t.throws(() => checkId(''), new UserError('container id cannot be empty'), 'rejects ""');
  for (const id of ['.', '..', 'a/b', 'a b', '/abs', 'a\nb', 'a\tb', 'é', 'a:b', 'a*', 'x'.repeat(1025)]) {
    t.throws(
      () => checkId(id),
      { name: 'UserError', message: `invalid container id format: ${JSON.stringify(id)}` },
      `rejects ${JSON.stringify(id.length > 20 ? `${id.length} chars` : id)}`,
    );
  }
});

t.test('claim: the first wins, the second gets runc\'s error', async (t) => {
  const store = new Store(freshRoot());
  t.notOk(fs.existsSync(store.root), 'root not created yet');
  const dir = store.claim('c1');
  t.equal(dir, path.join(store.root, 'c1'));
  t.ok(fs.statSync(dir).isDirectory());
  t.equal(fs.statSync(dir).mode & 0o777, 0o711, 'state dir mode 0711');
  t.equal(fs.statSync(store.root).mode & 0o777, 0o711, 'root created with mode 0711');
  t.throws(() => store.claim('c1'), new UserError('container with id exists: c1'));
  try {
    store.claim('c1');
  } catch (e) {
    t.type(e, UserError, 'a UserError (one line, exit 1)');
    t.equal((e as UserError).exitCode, 1);
  }
  t.ok(store.exists('c1'));
  t.notOk(store.exists('c2'));
  t.throws(() => store.claim('a/b'), { message: 'invalid container id format: "a/b"' }, 'claim checks the id');
  t.throws(() => store.claim('..'), { message: 'invalid container id format: ".."' });
  t.strictSame(fs.readdirSync(store.root), ['c1'], 'a rejected id creates nothing');
});

t.test('claim in a loop: exactly one success', async (t) => {
  const store = new Store(freshRoot());
  let wins = 0;
  const errors = new Set<string>();
  for (let i = 0; i < 20; i++) {
    try {
      store.claim('same');
      wins++;
    } catch (e) {
      errors.add((e as Error).message);
    }
  }
  t.equal(wins, 1);
  t.strictSame([...errors], ['container with id exists: same']);
});

/** Transpiles every src/ .ts file into `out` (same layout, CommonJS), for child processes. */
function compileSrc(out: string): string {
  const src = path.resolve(__dirname, '../../src');
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
      d.isDirectory() ? walk(path.join(dir, d.name)) : d.name.endsWith('.ts') ? [path.join(dir, d.name)] : [],
    );
  for (const file of walk(src)) {
    const js = ts.transpileModule(fs.readFileSync(file, 'utf8'), {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022, esModuleInterop: true },
      fileName: file,
    }).outputText;
    const dest = path.join(out, path.relative(src, file)).replace(/\.ts$/, '.js');
    fs.mkdirSync(path.dirname(dest), { recursive: true });
    fs.writeFileSync(dest, js);
  }
  return out;
}

t.test('claim from 20 concurrent processes: exactly one wins', async (t) => {
  const root = freshRoot();
  const gate = path.join(tmp, `gate-${seq}`);
  fs.mkdirSync(gate);
  // The children run the real src/ compiled to plain CommonJS (fast to start,
  // unlike 20 TypeScript loaders at once).
  const lib = compileSrc(path.join(tmp, 'lib'));
  const script = path.join(gate, 'claim.js');
  fs.writeFileSync(
    script,
    [
      `const fs = require('node:fs');`,
      `const { Store } = require(${JSON.stringify(path.join(lib, 'lifecycle', 'store.js'))});`,
      `const [root, gate, n] = process.argv.slice(2);`,
      `fs.writeFileSync(gate + '/ready-' + n, '');`,
      `const wait = new Int32Array(new SharedArrayBuffer(4));`,
      `while (!fs.existsSync(gate + '/go')) Atomics.wait(wait, 0, 0, 1);`,
      `try { new Store(root).claim('racy'); process.stdout.write('won'); }`,
      `catch (e) { process.stdout.write('lost: ' + e.message); }`,
    ].join('\n'),
  );
  const N = 20;
  const results = Array.from({ length: N }, (_, n) => {
    const child = spawn(process.execPath, [script, root, gate, String(n)], {
      env: { PATH: process.env.PATH },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    return new Promise<{ out: string; err: string; code: number | null }>((resolve) =>
      child.on('close', (code) => resolve({ out, err, code })),
    );
  });
  // Release them together once every child is waiting at the gate.
  const deadline = Date.now() + 60_000;
  while (fs.readdirSync(gate).filter((f) => f.startsWith('ready-')).length < N && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 10));
  }
  fs.writeFileSync(path.join(gate, 'go'), '');
  const done = await Promise.all(results);
  for (const d of done) if (d.code !== 0) t.fail(`child failed: ${d.err}`);
  t.equal(done.filter((d) => d.out === 'won').length, 1, 'exactly one winner');
  t.strictSame(
    done.filter((d) => d.out !== 'won').map((d) => d.out),
    Array(N - 1).fill('lost: container with id exists: racy'),
    'every loser gets runc\'s message',
  );
  t.strictSame(fs.readdirSync(root), ['racy']);
});

t.test('save / tryLoad / load round trip', async (t) => {
  const store = new Store(freshRoot());
  store.claim('c1');
  t.equal(store.tryLoad('c1'), undefined, 'claimed but not written yet: undefined');
  t.throws(() => store.load('c1'), new UserError('container "c1" does not exist'), 'load: does not exist');
  const rec = record('c1', {
    annotations: { 'org.example/key': 'value' },
    cgroups: { paths: { '': '/sys/fs/cgroup/tsrun/c1' }, created: ['/sys/fs/cgroup/tsrun/c1'] } as unknown as ContainerRecord['cgroups'],
  });
  store.save(rec);
  t.strictSame(store.tryLoad('c1'), rec, 'tryLoad returns what was saved');
  t.strictSame(store.load('c1'), rec, 'load too');
  const file = path.join(store.dir('c1'), 'state.json');
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'state.json is 0600');
  t.strictSame(fs.readdirSync(store.dir('c1')), ['state.json'], 'no temporary file left behind');
  // Saving again replaces the file (rename), it does not rewrite it in place.
  const ino = fs.statSync(file).ino;
  store.save({ ...rec, phase: 'created', pid: 42 });
  t.not(fs.statSync(file).ino, ino, 'a new inode: atomic replace');
  t.match(store.load('c1'), { phase: 'created', pid: 42 });
  t.strictSame(store.ids(), ['c1']);
});

t.test('save with the addon loaded: exchanged with the old record, then the old one unlinked', async (t) => {
  native(); // loads build/Release/tsrun.node (npm test builds it first)
  const store = new Store(freshRoot());
  store.claim('c1');
  const rec = record('c1');
  store.save(rec);
  const file = path.join(store.dir('c1'), 'state.json');
  const first = fs.statSync(file).ino;
  store.save({ ...rec, phase: 'running', pid: 7 });
  t.not(fs.statSync(file).ino, first, 'a new inode: the new file took the old one\'s place');
  t.match(store.load('c1'), { phase: 'running', pid: 7 }, 'the new record');
  t.strictSame(fs.readdirSync(store.dir('c1')), ['state.json'], 'the old record (swapped to the temporary name) is gone');
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'still 0600');
  // The exchange itself: both names stay, contents swapped.
  const a = path.join(tmp, 'xa');
  const b = path.join(tmp, 'xb');
  fs.writeFileSync(a, 'A');
  fs.writeFileSync(b, 'B');
  t.equal(native().exchange(a, b), true, 'exchange reports success');
  t.strictSame([fs.readFileSync(a, 'utf8'), fs.readFileSync(b, 'utf8')], ['B', 'A'], 'contents swapped');
  t.equal(native().exchange(a, path.join(tmp, 'missing')), false, 'no second file: false, so the caller renames');
});

t.test('remove: the state files, and a directory inside too', async (t) => {
  const store = new Store(freshRoot());
  store.claim('c1');
  store.save(record('c1'));
  fs.writeFileSync(path.join(store.dir('c1'), 'exec.fifo'), '');
  store.remove('c1');
  t.notOk(fs.existsSync(store.dir('c1')), 'state directory removed');
  store.claim('c2');
  fs.mkdirSync(path.join(store.dir('c2'), 'sub'));
  fs.writeFileSync(path.join(store.dir('c2'), 'sub', 'f'), 'x');
  store.remove('c2');
  t.notOk(fs.existsSync(store.dir('c2')), 'with a subdirectory too');
  t.doesNotThrow(() => store.remove('c2'), 'already gone: nothing to do');
});

t.test('tryLoad: missing, foreign and unreadable records', async (t) => {
  const store = new Store(freshRoot());
  t.equal(store.tryLoad('nope'), undefined, 'no such container');
  t.equal(store.tryLoad('nope'), undefined, 'still no root directory created');
  t.notOk(fs.existsSync(store.root));
  t.throws(() => store.load('nope'), new UserError('container "nope" does not exist'));
  store.claim('garbage');
  fs.writeFileSync(path.join(store.dir('garbage'), 'state.json'), '{"id": "garb');
  t.equal(store.tryLoad('garbage'), undefined, 'a truncated record is treated as absent');
  store.claim('dir');
  fs.mkdirSync(path.join(store.dir('dir'), 'state.json'));
  t.throws(() => store.tryLoad('dir'), { code: 'EISDIR' }, 'other errors propagate');
});

t.test('ids and remove', async (t) => {
  const store = new Store(freshRoot());
  t.strictSame(store.ids(), [], 'no root: no ids');
  for (const id of ['b', 'a', 'c']) store.claim(id);
  fs.writeFileSync(path.join(store.root, 'stray-file'), '');
  t.strictSame(store.ids(), ['a', 'b', 'c'], 'sorted, directories only');
  fs.writeFileSync(path.join(store.dir('b'), EXEC_FIFO), '');
  store.remove('b');
  t.notOk(store.exists('b'));
  t.strictSame(store.ids(), ['a', 'c']);
  t.doesNotThrow(() => store.remove('b'), 'removing twice is fine');
});

t.test('writePidFile', async (t) => {
  const dir = fs.mkdtempSync(path.join(tmp, 'pid-'));
  const file = path.join(dir, 'init.pid');
  writePidFile(file, 12345);
  t.equal(fs.readFileSync(file, 'utf8'), '12345', 'the pid, ASCII, no newline');
  t.strictSame(fs.readdirSync(dir), ['init.pid'], 'no temporary file left behind');
  const ino = fs.statSync(file).ino;
  writePidFile(file, 7);
  t.equal(fs.readFileSync(file, 'utf8'), '7', 'overwritten, not appended; no stale digits');
  t.not(fs.statSync(file).ino, ino, 'replaced by rename (atomic), not rewritten in place');
  t.strictSame(fs.readdirSync(dir), ['init.pid']);
  // A relative path is relative to the cwd.
  const cwd = process.cwd();
  process.chdir(dir);
  try {
    writePidFile('rel.pid', 99);
  } finally {
    process.chdir(cwd);
  }
  t.equal(fs.readFileSync(path.join(dir, 'rel.pid'), 'utf8'), '99');
  t.throws(() => writePidFile(path.join(dir, 'no', 'such', 'dir', 'x.pid'), 1), { code: 'ENOENT' });
});

t.test('parseSignal', async (t) => {
  const cases: [string, number][] = [
    ['KILL', 9],
    ['SIGKILL', 9],
    ['9', 9],
    ['sigterm', 15],
    ['term', 15],
    ['TERM', 15],
    ['SIGTERM', 15],
    ['HUP', 1],
    ['SIGUSR1', 10],
    ['usr2', 12],
    ['CONT', 18],
    ['STOP', 19],
    ['WINCH', 28],
    [' INT ', 2],
    ['1', 1],
    ['64', 64],
    ['34', 34],
  ];
  for (const [input, n] of cases) t.equal(parseSignal(input), n, `${JSON.stringify(input)} → ${n}`);
  for (const bad of ['0', '65', 'FOO', 'SIGFOO', '', 'SIG', '-9', '9.0', '1e1', 'KILL9']) {
    t.throws(() => parseSignal(bad), new UserError(`invalid signal: ${JSON.stringify(bad)}`), `${JSON.stringify(bad)} rejected`);
  }
});

t.test('statusOf', async (t) => {
  const store = new Store(freshRoot());
  store.claim('c1');
  t.equal(statusOf(store, record('c1')), 'running', "our own pid and start time, phase 'running'");
  t.equal(
    statusOf(store, record('c1', { pidStartTime: String(Number(myStart) + 1) })),
    'stopped',
    'same pid, different start time: a reused pid, so stopped',
  );
  t.equal(statusOf(store, record('c1', { pid: NO_SUCH_PID })), 'stopped', 'a dead init');
  t.equal(statusOf(store, record('c1', { pid: 0 })), 'stopped', 'pid 0 (never cloned)');
  t.equal(statusOf(store, record('c1', { pidStartTime: undefined })), 'running', 'no start time recorded: pid alone');
  // creating: the creator's liveness decides.
  t.equal(
    statusOf(store, record('c1', { phase: 'creating', pid: 0, creatorPid: process.pid, creatorStartTime: myStart })),
    'creating',
    'creating with a live creator',
  );
  t.equal(
    statusOf(store, record('c1', { phase: 'creating', pid: 0, creatorPid: NO_SUCH_PID, creatorStartTime: '1' })),
    'stopped',
    'creating with a dead creator: stopped',
  );
  t.equal(
    statusOf(store, record('c1', { phase: 'creating', creatorStartTime: String(Number(myStart) + 1) })),
    'stopped',
    'creating whose creator pid was reused: stopped',
  );
  // created: the exec fifo says it still waits for start.
  t.equal(statusOf(store, record('c1', { phase: 'created' })), 'running', "phase 'created' but the fifo is gone: running");
  fs.writeFileSync(path.join(store.dir('c1'), EXEC_FIFO), '');
  t.equal(statusOf(store, record('c1', { phase: 'created' })), 'created', "phase 'created' + exec fifo present");
  t.equal(statusOf(store, record('c1', { phase: 'created', pid: NO_SUCH_PID })), 'stopped', 'created but the init died');
  t.equal(statusOf(store, record('c1', { phase: 'running' })), 'running', "phase 'running' ignores a leftover fifo");
});

t.test('statusOf a zombie is stopped', async (t) => {
  // `sleep 0.3 &` exits after its parent has exec'd sleep 30, which never
  // reaps it: a zombie ('Z' in /proc/<pid>/stat) whose pid still exists.
  const parent = spawn('/bin/sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
  t.teardown(() => {
    parent.kill('SIGKILL');
  });
  const pid = await new Promise<number>((resolve) => parent.stdout.once('data', (d) => resolve(Number(String(d).trim()))));
  const start = procStat(pid)?.startTime;
  const store = new Store(freshRoot());
  t.equal(statusOf(store, record('z', { pid, pidStartTime: start })), 'running', 'alive while it sleeps');
  const deadline = Date.now() + 10_000;
  while (procStat(pid)?.state !== 'Z' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const st = procStat(pid);
  t.equal(st?.state, 'Z', 'the child is a zombie');
  t.equal(st?.startTime, start, 'same process');
  t.equal(statusOf(store, record('z', { pid, pidStartTime: start })), 'stopped', 'a zombie init is stopped');
});

t.test('ociState', async (t) => {
  const store = new Store(freshRoot());
  store.claim('c1');
  const running = ociState(store, record('c1', { annotations: { a: 'b' } }));
  t.strictSame(running, {
    ociVersion: '1.2.0',
    id: 'c1',
    pid: process.pid,
    status: 'running',
    bundle: '/bundles/c1',
    rootfs: '/bundles/c1/rootfs',
    created: '2024-05-06T07:08:09.123456789Z',
    owner: '',
    annotations: { a: 'b' },
  });
  const stopped = ociState(store, record('c1', { pid: NO_SUCH_PID, annotations: {} }));
  t.equal(stopped.pid, 0, 'a stopped container reports pid 0');
  t.equal(stopped.status, 'stopped');
  t.notOk('annotations' in stopped, 'empty annotations are omitted');
});
