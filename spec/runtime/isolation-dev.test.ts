/**
 * /dev, masked paths and read-only paths, checked from inside a real
 * container: the default device nodes (and their binds from the host in a
 * user namespace), the /dev links, linux.devices, and what maskedPaths and
 * readonlyPaths hide or freeze.
 */
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { assertNothingLeaked, leakCheck, uniqueId } from '../lib/harness.js';
import { bundleReachable, inUserns, inside, mountAt, parseMountinfo, section, skip } from './isolation-lib.js';

/** `stat` of each path: "<path> <mode string> <major>:<minor> <uid>:<gid>" (major/minor in hex, as busybox prints them). */
const statScript = (paths: string[]) => `for p in ${paths.join(' ')}; do stat -c '%n %A %t:%T %u:%g' $p; done`;

/** Parses statScript's output into path -> { mode, dev "major:minor" (decimal), owner }. */
function parseStat(text: string): Map<string, { mode: string; dev: string; owner: string }> {
  const m = new Map<string, { mode: string; dev: string; owner: string }>();
  for (const line of text.split('\n')) {
    const [p, mode, dev, owner] = line.trim().split(/\s+/);
    if (!p || !mode || !dev || !owner) continue;
    const [ma, mi] = dev.split(':').map((h) => parseInt(h, 16));
    m.set(p, { mode, dev: `${ma}:${mi}`, owner });
  }
  return m;
}

const DEFAULT_DEVICES: [string, string][] = [
  ['/dev/null', '1:3'],
  ['/dev/zero', '1:5'],
  ['/dev/full', '1:7'],
  ['/dev/random', '1:8'],
  ['/dev/urandom', '1:9'],
  ['/dev/tty', '5:0'],
];

const LINKS: [string, string][] = [
  ['/dev/ptmx', 'pts/ptmx'],
  ['/dev/fd', '/proc/self/fd'],
  ['/dev/stdin', '/proc/self/fd/0'],
  ['/dev/stdout', '/proc/self/fd/1'],
  ['/dev/stderr', '/proc/self/fd/2'],
];

const devScript = [
  `echo === stat; ${statScript(DEFAULT_DEVICES.map(([p]) => p))}`,
  `echo === links; for l in ${LINKS.map(([l]) => l).join(' ')}; do echo "$l $(readlink $l)"; done`,
  'echo === dirs; for d in /dev/pts /dev/shm; do test -d $d && echo $d; done',
  'echo === use; head -c 3 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; (echo x > /dev/full) 2>&1',
  'echo === mountinfo; cat /proc/self/mountinfo',
].join('; ');

t.test('the default devices, links and directories in /dev', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-dev');
  const out = await inside(t, undefined, devScript, { id });
  const st = parseStat(section(out, 'stat'));
  for (const [p, dev] of DEFAULT_DEVICES) {
    t.equal(st.get(p)?.dev, dev, `${p} is ${dev}`);
    t.equal(st.get(p)?.mode, 'crw-rw-rw-', `${p} is crw-rw-rw-`);
    t.equal(st.get(p)?.owner, '0:0', `${p} is owned by root`);
  }
  const links = new Map(section(out, 'links').trim().split('\n').map((l) => l.split(' ') as [string, string]));
  for (const [l, target] of LINKS) t.equal(links.get(l), target, `${l} -> ${target}`);
  t.same(section(out, 'dirs').trim().split('\n'), ['/dev/pts', '/dev/shm'], '/dev/pts and /dev/shm are there');
  const use = section(out, 'use');
  t.match(use, /^3$/m, '/dev/zero reads zeros');
  t.match(use, /null-ok/, '/dev/null takes writes');
  t.match(use, /No space left on device/, '/dev/full fails writes with ENOSPC');
  // made with mknod on the /dev tmpfs, not bound from the host
  const mounts = parseMountinfo(section(out, 'mountinfo'));
  t.notOk(mountAt(mounts, '/dev/null'), '/dev/null is a node, not a bind mount');
  await assertNothingLeaked(t, id);
});

t.test('linux.devices: a configured device has its type, numbers, mode and owner', { skip }, async (t) => {
  const out = await inside(
    t,
    (c) => {
      c.linux.devices = [
        { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o600, uid: 1, gid: 2 },
        { path: '/dev/net/tun', type: 'c', major: 10, minor: 200, fileMode: 0o640, uid: 0, gid: 0 },
      ];
    },
    statScript(['/dev/fuse', '/dev/net/tun', '/dev/null']),
  );
  const st = parseStat(out);
  t.same(st.get('/dev/fuse'), { mode: 'crw-------', dev: '10:229', owner: '1:2' }, '/dev/fuse: c 10:229, 0600, 1:2');
  t.same(st.get('/dev/net/tun'), { mode: 'crw-r-----', dev: '10:200', owner: '0:0' }, '/dev/net/tun (in a new dir): c 10:200, 0640');
  t.equal(st.get('/dev/null')?.dev, '1:3', 'the default devices are still there');
});

t.test('in a user namespace the devices are bind mounts of the host\'s', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-dev-userns');
  const out = await inside(
    t,
    inUserns,
    devScript,
    { id, prepare: bundleReachable },
  );
  const st = parseStat(section(out, 'stat'));
  const mounts = parseMountinfo(section(out, 'mountinfo'));
  for (const [p, dev] of DEFAULT_DEVICES) {
    t.equal(st.get(p)?.dev, dev, `${p} is ${dev}`);
    const m = mountAt(mounts, p);
    t.ok(m, `${p} is a bind mount`);
    t.equal(m?.root, p.replace('/dev', '') || '/', `${p} is bound from the host's ${p}`);
  }
  const use = section(out, 'use');
  t.match(use, /^3$/m, '/dev/zero reads zeros');
  t.match(use, /null-ok/, '/dev/null takes writes');
  const links = new Map(section(out, 'links').trim().split('\n').map((l) => l.split(' ') as [string, string]));
  for (const [l, target] of LINKS) t.equal(links.get(l), target, `${l} -> ${target}`);
  await assertNothingLeaked(t, id);
});

t.test('maskedPaths: masked files read empty, masked dirs are empty read-only tmpfs', { skip }, async (t) => {
  const hostFirmware = fs.readdirSync('/sys/firmware');
  const out = await inside(
    t,
    (c) => {
      c.linux.maskedPaths!.push('/secret-file', '/secret-dir', '/not-there');
    },
    [
      'echo === files; for f in /proc/kcore /proc/keys /proc/timer_list /secret-file; do [ -e $f ] && echo "$f $(stat -c %t:%T $f) $(wc -c < $f)"; done',
      'echo === firmware; ls -A /sys/firmware; touch /sys/firmware/x 2>&1',
      'echo === secret-dir; ls -A /secret-dir; touch /secret-dir/x 2>&1',
      'echo === mountinfo; cat /proc/self/mountinfo',
    ].join('; '),
    {
      prepare: (b) => {
        fs.writeFileSync(path.join(b.rootfs, 'secret-file'), 'top secret\n');
        fs.mkdirSync(path.join(b.rootfs, 'secret-dir'));
        fs.writeFileSync(path.join(b.rootfs, 'secret-dir', 'inner'), 'top secret\n');
      },
    },
  );
  const files = new Map(
    section(out, 'files')
      .trim()
      .split('\n')
      .map((l) => {
        const [f, dev, size] = l.split(' ');
        return [f, { dev, size }] as const;
      }),
  );
  // /proc/kcore is masked when the kernel has it (this one may not)
  const expectMasked = ['/proc/keys', '/proc/timer_list', '/secret-file'];
  if (fs.existsSync('/proc/kcore')) expectMasked.unshift('/proc/kcore');
  for (const f of expectMasked) {
    t.same(files.get(f), { dev: '1:3', size: '0' }, `${f} is /dev/null (reads as empty)`);
  }

  t.ok(hostFirmware.length > 0, `the host's /sys/firmware has entries (${hostFirmware.join(' ')})`);
  t.same(section(out, 'firmware').trim().split('\n').filter((l) => !/Read-only/.test(l)), [], '/sys/firmware is empty');
  t.match(section(out, 'firmware'), /Read-only file system/, '/sys/firmware cannot be written');
  t.same(section(out, 'secret-dir').trim().split('\n').filter((l) => !/Read-only/.test(l)), [], '/secret-dir is empty');
  t.match(section(out, 'secret-dir'), /Read-only file system/, '/secret-dir cannot be written');
  const mounts = parseMountinfo(section(out, 'mountinfo'));
  for (const d of ['/sys/firmware', '/secret-dir']) {
    const m = mountAt(mounts, d);
    t.equal(m?.fstype, 'tmpfs', `${d} is a tmpfs`);
    t.ok(m?.options.includes('ro'), `${d} is mounted read-only`);
  }
  t.notOk(mountAt(mounts, '/not-there'), 'a masked path that does not exist is skipped');
});

t.test('readonlyPaths: writes fail with EROFS', { skip }, async (t) => {
  let rootfs = '';
  const out = await inside(
    t,
    (c, b) => {
      rootfs = b.rootfs;
      c.root.readonly = false;
      c.linux.readonlyPaths!.push('/data');
    },
    [
      'echo === hostname; (echo changed > /proc/sys/kernel/hostname) 2>&1',
      'echo === sysrq; (echo h > /proc/sysrq-trigger) 2>&1',
      'echo === data; cat /data/file; touch /data/new 2>&1',
      'echo === root; touch /new && echo root-writable',
      'echo === mountinfo; cat /proc/self/mountinfo',
    ].join('; '),
    {
      prepare: (b) => {
        fs.mkdirSync(path.join(b.rootfs, 'data'));
        fs.writeFileSync(path.join(b.rootfs, 'data', 'file'), 'data\n');
      },
    },
  );
  t.match(section(out, 'hostname'), /Read-only file system/, 'writing /proc/sys/kernel/hostname fails with EROFS');
  // (a kernel without CONFIG_MAGIC_SYSRQ has no /proc/sysrq-trigger)
  const sysrq = fs.existsSync('/proc/sysrq-trigger');
  if (sysrq) t.match(section(out, 'sysrq'), /Read-only file system/, 'writing /proc/sysrq-trigger fails with EROFS');
  t.match(section(out, 'data'), /^data$/m, 'a read-only dir in the rootfs can be read');
  t.match(section(out, 'data'), /Read-only file system/, 'a read-only dir in the rootfs cannot be written');
  t.notOk(fs.existsSync(path.join(rootfs, 'data', 'new')), 'nothing was written to it');
  t.match(section(out, 'root'), /root-writable/, 'the rest of the rootfs is writable');
  const mounts = parseMountinfo(section(out, 'mountinfo'));
  for (const p of ['/proc/sys', '/data', ...(sysrq ? ['/proc/sysrq-trigger'] : [])]) {
    t.ok(mountAt(mounts, p)?.options.includes('ro'), `${p} is mounted read-only`);
  }
});
