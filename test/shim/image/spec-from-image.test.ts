// The image config → config.json: Docker's override rules for the command,
// env, workdir and user; names resolved in the image's own passwd/group
// files (never through a symlink out of the rootfs).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { native } from '../../../src/native.js';
import { DEFAULT_PATH, resolveInRoot, resolveUser, specFromImage } from '../../../src/shim/image/spec.js';
import type { ImageConfig } from '../../../src/shim/image/types.js';

const PASSWD = `root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
app:x:1000:1001:App:/home/app:/bin/sh
dup:x:2000:2000::/:/bin/sh
dup:x:2001:2001::/:/bin/sh
broken line
`;
const GROUP = `root:x:0:
wheel:x:10:root,app
app:x:1001:
audio:x:29:app, daemon
staff:x:50:
`;

function rootfs(t: Test, files: Record<string, string> = { 'etc/passwd': PASSWD, 'etc/group': GROUP }): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-spec-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  for (const [p, c] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(d, p)), { recursive: true });
    fs.writeFileSync(path.join(d, p), c);
  }
  return d;
}

const image = (config: ImageConfig['config']): ImageConfig => ({ architecture: 'amd64', os: 'linux', config, rootfs: { type: 'layers', diff_ids: [] } });

t.test('Entrypoint and Cmd with Docker override rules', async (t) => {
  const r = rootfs(t);
  const args = (c: ImageConfig['config'], o = {}) => specFromImage(image(c), r, o).spec.process!.args;
  const ic = { Entrypoint: ['/entry', '-x'], Cmd: ['default', 'args'] };
  t.same(args(ic), ['/entry', '-x', 'default', 'args']);
  t.same(args(ic, { cmd: ['mine'] }), ['/entry', '-x', 'mine'], 'arguments replace Cmd only');
  t.same(args(ic, { entrypoint: '/other' }), ['/other'], '--entrypoint resets Cmd');
  t.same(args(ic, { entrypoint: '/other', cmd: ['a'] }), ['/other', 'a']);
  t.same(args(ic, { entrypoint: '', cmd: ['sh'] }), ['sh'], "--entrypoint '' clears it");
  t.same(args({ Cmd: ['sh'] }), ['sh']);
  t.same(args({ Entrypoint: null, Cmd: null }, { cmd: ['ls'] }), ['ls']);
  t.throws(() => args({}), /no command specified/);
  t.throws(() => args(ic, { entrypoint: '' }), /no command specified/);
});

t.test('Env: defaults, image, command line; bare keys from this environment', async (t) => {
  const r = rootfs(t);
  process.env.TSRUN_SPEC_TEST_VAR = 'from-host';
  t.teardown(() => void delete process.env.TSRUN_SPEC_TEST_VAR);
  const env = (c: ImageConfig['config'], o = {}) => specFromImage(image({ Cmd: ['sh'], ...c }), r, o).spec.process!.env;
  t.same(env({}, { hostname: 'abc' }), [DEFAULT_PATH, 'HOSTNAME=abc'], 'PATH when the image has none');
  t.same(env({ Env: ['PATH=/bin', 'A=1', 'B=2'] }, { hostname: 'h', env: ['B=3', 'C=4', 'TSRUN_SPEC_TEST_VAR', 'A', 'NOT_SET_ANYWHERE_X'], tty: true }), [
    'PATH=/bin',
    'HOSTNAME=h',
    'TERM=xterm',
    'B=3',
    'C=4',
    'TSRUN_SPEC_TEST_VAR=from-host',
  ]);
  t.throws(() => env({}, { env: ['=x'] }), /invalid environment variable/);
});

t.test('WorkingDir, hostname, terminal, root, labels, ports, volumes, stop signal', async (t) => {
  const r = rootfs(t);
  const out = specFromImage(
    image({
      Cmd: ['sh'],
      WorkingDir: 'srv/../app',
      Labels: { 'org.example.a': '1', b: 'image' },
      ExposedPorts: { '80/tcp': {}, '53/udp': {}, '8080': {}, '9000-9002/tcp': {} },
      Volumes: { '/data': {}, 'cache/': {} },
      StopSignal: 'SIGQUIT',
    }),
    r,
    { hostname: 'box', tty: true, labels: { b: 'cli' } },
  );
  t.equal(out.spec.process!.cwd, '/app');
  t.equal(out.spec.hostname, 'box');
  t.equal(out.spec.process!.terminal, true);
  t.same(out.spec.root, { path: r, readonly: false });
  t.equal(out.spec.process!.noNewPrivileges, false, 'setuid binaries of the image work, as in Docker');
  t.same(out.spec.annotations, { 'org.example.a': '1', b: 'cli' });
  t.same(out.exposedPorts, [
    { port: 53, proto: 'udp' },
    { port: 80, proto: 'tcp' },
    { port: 8080, proto: 'tcp' },
    { port: 9000, proto: 'tcp' },
    { port: 9001, proto: 'tcp' },
    { port: 9002, proto: 'tcp' },
  ]);
  t.same(out.volumes, ['/cache', '/data']);
  t.equal(out.stopSignal, 'SIGQUIT');
  const plain = specFromImage(image({ Cmd: ['sh'] }), r, { workingDir: '/w/./x/' });
  t.equal(plain.spec.process!.cwd, '/w/x/');
  t.equal(plain.stopSignal, undefined);
  t.equal(plain.spec.process!.terminal, false);
  t.equal(specFromImage(image({ Cmd: ['sh'] }), r).spec.process!.cwd, '/');
  t.throws(() => specFromImage(image({ Cmd: ['sh'] }), r, { workingDir: 'rel' }), /working directory "rel" is invalid, it needs to be an absolute path/);
  t.throws(() => specFromImage(image({ Cmd: ['sh'], ExposedPorts: { 'http/tcp': {} } }), r), /invalid exposed port "http\/tcp"/);
});

t.test('User: names, ids and groups through the image files', async (t) => {
  const r = rootfs(t);
  const u = (s: string) => resolveUser(r, s);
  t.same(u(''), { uid: 0, gid: 0, additionalGids: [10] }, 'no user: root, with root\'s groups');
  t.same(u('root'), { uid: 0, gid: 0, additionalGids: [10] });
  t.same(u('app'), { uid: 1000, gid: 1001, additionalGids: [10, 29] }, 'membership lists give supplementary groups');
  t.same(u('1000'), { uid: 1000, gid: 1001, additionalGids: [10, 29] }, 'a uid with an entry is that entry');
  t.same(u('4242'), { uid: 4242, gid: 0 }, 'a uid without an entry: gid 0');
  t.same(u('app:staff'), { uid: 1000, gid: 50 }, 'an explicit group: no supplementary groups');
  t.same(u('app:29'), { uid: 1000, gid: 29 });
  t.same(u('4242:777'), { uid: 4242, gid: 777 }, 'numeric ids need no entries');
  t.same(u('daemon'), { uid: 1, gid: 1, additionalGids: [29] }, 'members separated by ", "');
  t.same(u('dup'), { uid: 2000, gid: 2000 }, 'the first matching entry wins');
  t.throws(() => u('nobody'), /unable to find user nobody: no matching entries in passwd file/);
  t.throws(() => u('app:nogroup'), /unable to find group nogroup: no matching entries in group file/);
  t.throws(() => u('99999999999'), /uid out of range/);
  const empty = rootfs(t, {});
  t.same(resolveUser(empty, ''), { uid: 0, gid: 0 }, 'an image without /etc/passwd runs as root');
  t.same(resolveUser(empty, '10:20'), { uid: 10, gid: 20 });
  t.throws(() => resolveUser(empty, 'app'), /unable to find user app/);
  t.equal(specFromImage(image({ Cmd: ['sh'], User: 'app' }), r).spec.process!.user.uid, 1000, 'the image User');
  t.equal(specFromImage(image({ Cmd: ['sh'], User: 'app' }), r, { user: '0' }).spec.process!.user.uid, 0, '-u overrides it');
});

t.test('passwd and group are read inside the rootfs, whatever their symlinks say', async (t) => {
  const host = rootfs(t, { 'etc/passwd': 'evil:x:0:0::/:/bin/sh\n', 'etc/group': 'evil:x:0:evil\n' });
  const r = rootfs(t, { 'real/passwd': 'inside:x:7:7::/:/bin/sh\n' });
  fs.mkdirSync(path.join(r, 'etc'));
  // Absolute and ..-escaping symlinks both resolve inside the rootfs.
  fs.symlinkSync(`${host}/etc/passwd`.replace(/^\//, '/../../../../'), path.join(r, 'etc', 'passwd'));
  fs.symlinkSync(`../../../../../../..${host}/etc/group`, path.join(r, 'etc', 'group'));
  t.throws(() => resolveUser(r, 'evil'), /unable to find user evil/, 'the host passwd behind the symlink is not read');
  fs.rmSync(path.join(r, 'etc', 'passwd'));
  fs.symlinkSync('/real/passwd', path.join(r, 'etc', 'passwd'));
  t.same(resolveUser(r, 'inside'), { uid: 7, gid: 7 }, 'an absolute symlink is resolved from the rootfs');
  t.equal(resolveInRoot(r, '/etc/group'), null, 'a ..-escaping target is looked up inside the rootfs: missing there');
  t.same(resolveUser(r, 'inside:7'), { uid: 7, gid: 7 });
  fs.symlinkSync('loop', path.join(r, 'loop'));
  t.throws(() => resolveInRoot(r, '/loop/x'), /too many levels of symbolic links/);
  // A FIFO as /etc/passwd would block a read: it is treated as absent.
  const f = rootfs(t, {});
  fs.mkdirSync(path.join(f, 'etc'));
  {
    native().mkfifo(path.join(f, 'etc', 'passwd'), 0o644);
    t.throws(() => resolveUser(f, 'app'), /unable to find user app/);
  }
});
