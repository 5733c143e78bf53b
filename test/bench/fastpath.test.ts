/** The `state` fast path takes exactly the shapes commander would parse the same way, nothing else. */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { parseFastState } from '../../src/bench/fastpath.js';
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
const built = fs.existsSync(path.join(dist, 'tsrun-state.js')) && fs.existsSync(path.join(dist, 'tsrun.js'));

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
  const env = { ...process.env, TSRUN_ENGINE: '0', NODE_EXTRA_CA_CERTS: '' };
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
