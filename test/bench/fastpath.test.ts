/** The `state` fast path takes exactly the shapes commander would parse the same way, nothing else. */
import t from 'tap';
import { parseFastState } from '../../src/bench/fastpath.js';
import { DEFAULT_ROOT } from '../../src/lifecycle/store.js';

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
