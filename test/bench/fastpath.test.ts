/** The `state` fast path takes exactly the shapes commander would parse the same way, nothing else. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseFastState } from '../../src/bench/fastpath.js';
import { parseFastLifecycle } from '../../src/bench/fastpath-args.js';
import { parseOnly } from '../../src/cli/main.js';
import { configureLog } from '../../src/log.js';
import { resetTrace } from '../../src/bench/trace.js';
import { DEFAULT_ROOT, Store } from '../../src/lifecycle/store.js';

t.test('taken', async (t) => {
  t.same(parseFastState(['state', 'c1']), { root: DEFAULT_ROOT, logFormat: 'text', debug: false, id: 'c1' });
  t.same(parseFastState(['--root', '/r', 'state', 'c1']), { root: '/r', logFormat: 'text', debug: false, id: 'c1' });
  t.same(parseFastState(['--root', '/r', '--log', '/l', '--log-format', 'json', '--debug', '--systemd-cgroup', 'state', 'x']), {
    root: '/r',
    log: '/l',
    logFormat: 'json',
    debug: true,
    id: 'x',
  });
  t.same(parseFastState(['--debug', '--root', '/r', 'state', 'x'])?.debug, true, 'any order');
});

t.test('left to commander', async (t) => {
  const cases: string[][] = [
    [],
    ['state'],
    ['state', 'a', 'b'],
    ['state', '--help'],
    ['state', '-h'],
    ['list'],
    ['run', 'state'],
    ['--root=/r', 'state', 'x'],
    ['--root', 'state', 'x'],
    ['--root', '/a', '--root', '/b', 'state', 'x'],
    ['--log-format', 'xml', 'state', 'x'],
    ['--help'],
    ['--version', 'state', 'x'],
    ['--rootless', 'true', 'state', 'x'],
    ['--frobnicate', 'state', 'x'],
    ['state', '--', 'x'],
  ];
  for (const argv of cases) t.equal(parseFastState(argv), undefined, JSON.stringify(argv));
});

const dist = path.resolve(__dirname, '../../dist');
/** The CLI's environment: no engine, no coverage collection. */
const cliEnv = () => {
  const env: NodeJS.ProcessEnv = { ...process.env, TSRUN_ENGINE: '0', NODE_EXTRA_CA_CERTS: '' };
  delete env.NODE_V8_COVERAGE;
  return env;
};
const built = ['tsrun-state.js', 'tsrun-lifecycle.js', 'tsrun.js'].every((f) => fs.existsSync(path.join(dist, f)));

t.test('dist/tsrun.js answers the fast shape from the state bundle exactly as the CLI answers', { skip: built ? false : 'dist/ is not built (npm run build)' }, async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-fast-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const store = new Store(root);
  store.claim('c1');
  store.save({
    id: 'c1',
    bundle: '/b',
    rootfs: '/b/rootfs',
    created: '2026-01-01T00:00:00.000Z',
    pid: 0,
    phase: 'created',
    creatorPid: 0,
    annotations: { a: 'b' },
    config: { ociVersion: '1.0.2' },
  });
  const env = cliEnv();
  const cli = (args: string[]) => {
    const r = spawnSync(process.execPath, ['--', path.join(dist, 'tsrun.js'), ...args], { encoding: 'utf8', env });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const trace = spawnSync(process.execPath, ['--', path.join(dist, 'tsrun.js'), '--root', root, 'state', 'c1'], {
    encoding: 'utf8',
    env: { ...env, TSRUN_TRACE: '1' },
  });
  t.match(trace.stderr, /the state bundle/, 'the fast shape is served by dist/tsrun-state.js');
  for (const id of ['c1', 'nosuch', 'bad/id']) {
    const fast = cli(['--root', root, 'state', id]);
    const full = cli([`--root=${root}`, 'state', id]); // `--root=` is commander's alone
    t.same(fast, full, `state ${id}: the same status, stdout and stderr`);
  }
  const log = path.join(root, 'log.json');
  const fast = cli(['--root', root, '--log', log, '--log-format', 'json', 'state', 'nosuch']);
  const fastLog = fs.readFileSync(log, 'utf8');
  fs.rmSync(log);
  const full = cli([`--root=${root}`, '--log', log, '--log-format', 'json', 'state', 'nosuch']);
  t.same(fast, full, 'with a json log: the same result');
  const strip = (s: string) => s.replace(/"time":"[^"]*"/g, '');
  t.equal(strip(fastLog), strip(fs.readFileSync(log, 'utf8')), 'and the same log line');
  t.equal(JSON.parse(cli(['--root', root, 'state', 'c1']).stdout).status, 'stopped', 'a stopped container reads as such');
});

// The lifecycle fast path (dist/tsrun-lifecycle.js): create, run, start, kill, delete.
const LIFECYCLE_TAKEN: string[][] = [
  ['run', 'c1'],
  ['--root', '/r', 'run', '--bundle', '/b', 'c1'],
  ['--root', '/r', '--log', '/l', '--log-format', 'json', '--systemd-cgroup', 'create', '--bundle', '/b', '--pid-file', '/p', '--console-socket', '/s', 'c1'],
  ['create', '-b', '/b', '--no-pivot', '--no-new-keyring', '--preserve-fds', '2', 'c1'],
  ['--debug', 'run', '-d', '--keep', '-b', 'b', 'c1'],
  ['run', '--detach', '--pid-file', 'p', '--preserve-fds', '0', 'c1'],
  ['start', 'c1'],
  ['delete', 'c1'],
  ['delete', '-f', 'c1'],
  ['--root', '/r', 'delete', '--force', 'c1'],
  ['kill', 'c1'],
  ['kill', 'c1', 'KILL'],
  ['kill', '-a', 'c1', '9'],
  ['kill', '--all', 'c1', 'SIGUSR1'],
  ['exec', 'c1', 'true'],
  ['exec', 'c1'],
  ['exec', 'c1', 'sh', '-c', 'echo hi; exit 3'],
  ['exec', 'c1', 'ls', '--help', '-la'],
  ['--root', '/r', '--log', '/l', '--log-format', 'json', 'exec', '--process', '/p.json', '--detach', '--pid-file', '/pid', 'c1'],
  ['exec', '-p', '/p.json', '-d', '--console-socket', '/s', '--preserve-fds', '1', 'c1'],
  ['exec', '-t', '--cwd', '/w', '-u', '1000:1000', '--no-new-privs', 'c1', 'id'],
  ['exec', '--tty', '--user', '0', 'c1', 'sh'],
];

t.test('lifecycle fast path: what it takes, commander parses the same way', async (t) => {
  for (const argv of LIFECYCLE_TAKEN) {
    const fast = parseFastLifecycle(argv);
    const full = await parseOnly(argv);
    // parseOnly ran main()'s preAction hook: this process' logging and tracing as the argv said.
    configureLog({ file: undefined, format: 'text', debug: false });
    resetTrace();
    const name = JSON.stringify(argv);
    if (!fast || !full) {
      t.fail(`${name}: ${fast ? 'commander parsed nothing' : 'not taken by the fast path'}`);
      continue;
    }
    t.equal(fast.command, full.command, `${name}: command`);
    t.equal(fast.id, full.operands[0], `${name}: id`);
    const g = full.global;
    const global = { root: g.root, ...(g.log === undefined ? {} : { log: g.log }), logFormat: g.logFormat, debug: !!g.debug, systemdCgroup: !!g.systemdCgroup };
    t.same(fast.global, global, `${name}: global flags`);
    if (fast.command === 'create' || fast.command === 'run') {
      // --no-new-keyring is accepted and ignored: the only option the fast path does not carry.
      const { newKeyring: _ignored, ...opts } = full.opts;
      t.same({ ...fast.flags }, opts, `${name}: flags`);
    } else if (fast.command === 'delete') {
      t.equal(fast.force, !!full.opts.force, `${name}: --force`);
    } else if (fast.command === 'exec') {
      t.same(fast.args, full.operands[1], `${name}: the command`);
      t.same({ ...fast.flags }, full.opts, `${name}: flags`);
    } else if (fast.command === 'kill') {
      t.equal(fast.signal, full.operands[1], `${name}: signal`);
      t.equal(fast.all, !!full.opts.all, `${name}: --all`);
    }
  }
});

t.test('lifecycle fast path: everything else is left to commander', async (t) => {
  const cases: string[][] = [
    ['run'],
    ['run', 'a', 'b'],
    ['run', '--help'],
    ['run', '-h', 'c1'],
    ['run', '--bundle=/b', 'c1'],
    ['run', '-db', 'x', 'c1'],
    ['run', 'c1', '--bundle', 'b'],
    ['run', '--', 'c1'],
    ['run', '--bundle', 'a', '--bundle', 'b', 'c1'],
    ['run', '-b', 'a', '--bundle', 'b', 'c1'],
    ['run', '--bundle', '', 'c1'],
    ['run', '--bundle', '-x', 'c1'],
    ['run', '--frobnicate', 'c1'],
    ['create', '--detach', 'c1'],
    ['create', '--keep', 'c1'],
    ['create', '--preserve-fds', 'x', 'c1'],
    ['create', '--preserve-fds', '1.5', 'c1'],
    ['start'],
    ['start', 'a', 'b'],
    ['start', '-f', 'c1'],
    ['kill'],
    ['kill', 'c1', 'KILL', 'x'],
    ['kill', 'c1', '-9'],
    ['delete', '--force', '--force', 'c1'],
    ['delete', '-f', '--force', 'c1'],
    ['--root=/r', 'run', 'c1'],
    ['--root', '/a', '--root', '/b', 'run', 'c1'],
    ['--log-format', 'xml', 'run', 'c1'],
    ['--rootless', 'true', 'run', 'c1'],
    ['--help', 'run', 'c1'],
    ['exec'],
    ['exec', '-e', 'A=1', 'c1', 'true'],
    ['exec', '--cap', 'CAP_KILL', 'c1', 'true'],
    ['exec', '-g', '10', 'c1', 'true'],
    ['exec', '--process=/p', 'c1'],
    ['exec', '-dt', 'c1', 'sh'],
    ['exec', '--', 'c1', 'true'],
    ['exec', 'c1', '--', 'true'],
    ['exec', '-p', 'a', '--process', 'b', 'c1'],
    ['exec', '--ignore-paused', 'c1', 'true'],
    ['exec', '--cgroup', 'sub', 'c1', 'true'],
    ['exec', '--preserve-fds', 'x', 'c1', 'true'],
    ['exec', '--process', '-x', 'c1'],
    ['pause', 'c1'],
    ['state', 'c1'],
  ];
  for (const argv of cases) t.equal(parseFastLifecycle(argv), undefined, JSON.stringify(argv));
});

t.test('dist/tsrun.js answers the lifecycle shapes from their bundle exactly as the CLI answers', { skip: built ? false : 'dist/ is not built (npm run build)' }, async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-fast-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const noConfig = path.join(root, 'empty-bundle');
  fs.mkdirSync(noConfig);
  const store = new Store(root);
  const record = () => {
    store.claim('c1');
    store.save({ id: 'c1', bundle: '/b', rootfs: '/b/rootfs', created: '2026-01-01T00:00:00.000Z', pid: 0, phase: 'created', creatorPid: 0, config: { ociVersion: '1.0.2' } });
  };
  record();
  const env = cliEnv();
  const cli = (args: string[], extra: Record<string, string> = {}) => {
    const r = spawnSync(process.execPath, ['--', path.join(dist, 'tsrun.js'), ...args], { encoding: 'utf8', env: { ...env, ...extra } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const traced = cli(['--root', root, 'run', '--bundle', path.join(root, 'nosuch'), 'c2'], { TSRUN_TRACE: '1' });
  t.match(traced.stderr, /cli: arguments parsed \(run fast path\)/, 'the fast shape is served by dist/tsrun-lifecycle.js');
  t.match(traced.stderr, /code cache full, accepted/, 'with its code cache');
  const commands: string[][] = [
    ['run', '--bundle', path.join(root, 'nosuch'), 'c2'],
    ['run', '-d', '--bundle', noConfig, 'c2'],
    ['create', '--bundle', noConfig, '--pid-file', path.join(root, 'pid'), 'c2'],
    ['create', '--bundle', noConfig, 'c1'],
    ['create', '--bundle', noConfig, 'bad/id'],
    ['start', 'nosuch'],
    ['kill', 'nosuch', 'KILL'],
    ['kill', 'c1', 'NOSUCHSIGNAL'],
    ['kill', 'c1'],
    ['delete', 'nosuch'],
    ['delete', '--force', 'bad/id'],
    ['exec', 'nosuch', 'true'],
    ['exec', 'c1', 'true'],
    ['exec', 'c1'],
    ['exec', '--process', path.join(root, 'nosuch.json'), '--detach', '--pid-file', path.join(root, 'pid'), 'c1'],
  ];
  for (const args of commands) {
    const fast = cli(['--root', root, ...args]);
    const full = cli([`--root=${root}`, ...args]); // `--root=` is commander's alone
    t.same(fast, full, `${args.join(' ')}: the same status, stdout and stderr`);
    t.not(fast.code, 0, `${args.join(' ')} fails`);
  }
  t.same(fs.readdirSync(root).sort(), ['c1', 'empty-bundle'], 'nothing left behind by the failures');
  // A delete that succeeds, each way.
  for (const rootFlag of [['--root', root], [`--root=${root}`]]) {
    const r = cli([...rootFlag, 'delete', 'c1']);
    t.same(r, { code: 0, stdout: '', stderr: '' }, `${rootFlag.join(' ')} delete c1`);
    t.notOk(store.exists('c1'), 'the record is gone');
    record();
  }
});
