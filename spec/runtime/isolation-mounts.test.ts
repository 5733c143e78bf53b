/**
 * Mounts, checked from inside a real container through /proc/self/mountinfo
 * and by using them: the default mounts and their flags, tmpfs options, bind
 * mounts (rw, ro, file, recursive), propagation, nosuid/noexec/nodev, a
 * read-only root, rootfsPropagation and --no-pivot.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { REPO_ROOT, assertNothingLeaked, cgroupMountpoints, exec, leakCheck, mountsUnder, uniqueId } from '../lib/harness.js';
import { type MountLine, hostTempDir, inside, mountAt, parseMountinfo, section, skip } from './isolation-lib.js';

/** Mounts a tmpfs on `dir` (host side) for one test; unmounted at teardown (before the dir goes). */
async function hostTmpfs(t: Test, dir: string, shared = false): Promise<boolean> {
  const r = await exec('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { timeoutMs: 10_000 });
  t.equal(r.code, 0, `host: tmpfs mounted on ${path.basename(dir)}`, { stderr: r.stderr });
  if (r.code !== 0) return false;
  t.teardown(() => {
    spawnSync('umount', ['-l', dir], { stdio: 'ignore', timeout: 10_000 });
  });
  if (shared) {
    const s = await exec('mount', ['--make-shared', dir], { timeoutMs: 10_000 });
    t.equal(s.code, 0, 'host: made shared', { stderr: s.stderr });
  }
  return true;
}

/** The default config's mounts, masked and read-only paths (all a default container may show). */
const DEFAULT_MOUNTPOINTS = new Set([
  ...['/', '/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup'],
  ...['/proc/acpi', '/proc/asound', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list'],
  ...['/proc/timer_stats', '/proc/sched_debug', '/sys/firmware', '/proc/scsi'],
  ...['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
]);

/** Mount points a default container should not have (the cgroup hierarchies under /sys/fs/cgroup are fine). */
function unexpectedMounts(mounts: MountLine[]): string[] {
  return mounts
    .map((m) => m.mountpoint)
    .filter((mp) => !DEFAULT_MOUNTPOINTS.has(mp) && path.dirname(mp) !== '/sys/fs/cgroup');
}

t.test('the default mounts, with their flags', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-mnt');
  const out = await inside(
    t,
    undefined,
    'echo === mountinfo; cat /proc/self/mountinfo; echo === shm; stat -c %a /dev/shm; echo === mq; stat -c %a /dev/mqueue',
    { id },
  );
  const mounts = parseMountinfo(section(out, 'mountinfo'));
  const at = (mp: string) => mountAt(mounts, mp);

  t.ok(at('/')?.options.includes('ro'), '/ is read-only (root.readonly in the default config)');
  t.equal(at('/proc')?.fstype, 'proc', '/proc is a proc');

  const dev = at('/dev');
  t.equal(dev?.fstype, 'tmpfs', '/dev is a tmpfs');
  t.ok(dev?.options.includes('nosuid'), '/dev is nosuid');
  t.notOk(dev?.options.includes('relatime') || dev?.options.includes('noatime'), '/dev is strictatime');
  t.ok(dev?.superOptions.includes('mode=755'), '/dev has mode=755');
  t.ok(dev?.superOptions.includes('size=65536k'), '/dev has size=65536k');

  const pts = at('/dev/pts');
  t.equal(pts?.fstype, 'devpts', '/dev/pts is a devpts');
  for (const o of ['nosuid', 'noexec']) t.ok(pts?.options.includes(o), `/dev/pts is ${o}`);
  for (const o of ['ptmxmode=666', 'mode=620', 'gid=5']) t.ok(pts?.superOptions.includes(o), `/dev/pts has ${o}`);
  const hostPts = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8'))
    .filter((m) => m.fstype === 'devpts')
    .map((m) => m.dev);
  t.notOk(hostPts.includes(pts?.dev ?? ''), `/dev/pts is a new devpts instance (${pts?.dev}; host ${hostPts.join(' ')})`);

  const shm = at('/dev/shm');
  t.equal(shm?.fstype, 'tmpfs', '/dev/shm is a tmpfs');
  for (const o of ['nosuid', 'nodev', 'noexec']) t.ok(shm?.options.includes(o), `/dev/shm is ${o}`);
  t.ok(shm?.superOptions.includes('size=65536k'), '/dev/shm has size=65536k');
  t.equal(section(out, 'shm').trim(), '1777', '/dev/shm has mode 1777');

  const mq = at('/dev/mqueue');
  t.equal(mq?.fstype, 'mqueue', '/dev/mqueue is an mqueue');
  for (const o of ['nosuid', 'nodev', 'noexec']) t.ok(mq?.options.includes(o), `/dev/mqueue is ${o}`);
  t.equal(section(out, 'mq').trim(), '1777', '/dev/mqueue has mode 1777');

  const sys = at('/sys');
  t.equal(sys?.fstype, 'sysfs', '/sys is a sysfs');
  for (const o of ['ro', 'nosuid', 'nodev', 'noexec']) t.ok(sys?.options.includes(o), `/sys is ${o}`);

  const cg = at('/sys/fs/cgroup');
  t.ok(cg?.options.includes('ro'), '/sys/fs/cgroup is read-only');
  if (cg?.fstype === 'tmpfs') {
    // v1 / hybrid: a tmpfs with one read-only bind per hierarchy, each at the container's own cgroup
    const binds = mounts.filter((m) => path.dirname(m.mountpoint) === '/sys/fs/cgroup');
    const hostHierarchies = cgroupMountpoints().filter((mp) => path.dirname(mp) === '/sys/fs/cgroup');
    t.equal(binds.length, hostHierarchies.length, `one bind per host hierarchy (${binds.length})`);
    for (const b of binds) {
      t.ok(b.options.includes('ro'), `${b.mountpoint} is read-only`);
      t.ok(b.fstype === 'cgroup' || b.fstype === 'cgroup2', `${b.mountpoint} is a cgroup hierarchy`);
      t.ok(b.root.endsWith(`/${id}`), `${b.mountpoint} shows the container's cgroup (${b.root})`);
    }
  } else {
    t.equal(cg?.fstype, 'cgroup2', '/sys/fs/cgroup is cgroup2 (v2 host)');
  }

  t.same(unexpectedMounts(mounts), [], 'nothing of the host\'s mount table shows: no mount but the configured ones');
  await assertNothingLeaked(t, id);
});

t.test('a tmpfs with size=1m,mode=700', { skip }, async (t) => {
  const out = await inside(
    t,
    (c) => {
      c.mounts.push({ destination: '/scratch', type: 'tmpfs', source: 'tmpfs', options: ['size=1m', 'mode=700'] });
    },
    'echo === mountinfo; cat /proc/self/mountinfo; echo === mode; stat -c %a /scratch',
  );
  const m = mountAt(parseMountinfo(section(out, 'mountinfo')), '/scratch');
  t.equal(m?.fstype, 'tmpfs', '/scratch is a tmpfs');
  t.ok(m?.superOptions.includes('size=1024k'), `size=1m (${m?.superOptions.join(',')})`);
  t.ok(m?.superOptions.includes('mode=700'), 'mode=700 in the mount options');
  t.equal(section(out, 'mode').trim(), '700', '/scratch has mode 700');
});

t.test('bind mounts: rw is writable through to the host, ro fails with EROFS', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-bind');
  const rw = hostTempDir(t, 'iso-rw');
  const ro = hostTempDir(t, 'iso-ro');
  fs.writeFileSync(path.join(rw, 'hello'), 'from the host\n');
  fs.writeFileSync(path.join(ro, 'hello'), 'read only\n');
  const out = await inside(
    t,
    (c) => {
      c.mounts.push({ destination: '/rw', type: 'bind', source: rw, options: ['rbind', 'rw'] });
      c.mounts.push({ destination: '/ro', type: 'bind', source: ro, options: ['rbind', 'ro'] });
    },
    [
      'echo === rw; cat /rw/hello; echo written > /rw/new && echo write-ok',
      'echo === ro; cat /ro/hello; echo nope 2>&1 > /ro/new || true',
      'echo === mountinfo; cat /proc/self/mountinfo',
    ].join('; '),
    { id },
  );
  t.match(section(out, 'rw'), /from the host\nwrite-ok/, 'the rw bind shows the host dir and takes a write');
  t.equal(fs.readFileSync(path.join(rw, 'new'), 'utf8'), 'written\n', 'the write reached the host dir');
  t.match(section(out, 'ro'), /^read only$/m, 'the ro bind shows the host dir');
  t.match(section(out, 'ro'), /Read-only file system/, 'writing to the ro bind fails with EROFS');
  t.notOk(fs.existsSync(path.join(ro, 'new')), 'nothing was written to the ro host dir');
  const mounts = parseMountinfo(section(out, 'mountinfo'));
  t.ok(mountAt(mounts, '/rw')?.options.includes('rw'), '/rw is mounted rw');
  t.ok(mountAt(mounts, '/ro')?.options.includes('ro'), '/ro is mounted ro');
  await assertNothingLeaked(t, id);
});

t.test('a file bind mount', { skip }, async (t) => {
  const dir = hostTempDir(t, 'iso-file');
  const file = path.join(dir, 'bound.conf');
  fs.writeFileSync(file, 'file content\n');
  const out = await inside(
    t,
    (c) => {
      c.mounts.push({ destination: '/etc/bound.conf', type: 'bind', source: file, options: ['bind', 'ro'] });
    },
    'echo === cat; cat /etc/bound.conf; echo === type; stat -c %F /etc/bound.conf; echo === mountinfo; cat /proc/self/mountinfo',
  );
  t.equal(section(out, 'cat'), 'file content\n', 'the file\'s content shows inside');
  t.equal(section(out, 'type').trim(), 'regular file', 'it is a file (a file mount point was made)');
  t.ok(mountAt(parseMountinfo(section(out, 'mountinfo')), '/etc/bound.conf'), '/etc/bound.conf is a mount point');
});

t.test('rbind takes submounts along, bind does not', { skip }, async (t) => {
  const dir = hostTempDir(t, 'iso-rbind');
  fs.writeFileSync(path.join(dir, 'top'), 'top\n');
  fs.mkdirSync(path.join(dir, 'sub'));
  if (!(await hostTmpfs(t, path.join(dir, 'sub')))) return;
  fs.writeFileSync(path.join(dir, 'sub', 'in-sub'), 'in the submount\n');
  const out = await inside(
    t,
    (c) => {
      c.mounts.push({ destination: '/r', type: 'bind', source: dir, options: ['rbind'] });
      c.mounts.push({ destination: '/b', type: 'bind', source: dir, options: ['bind'] });
    },
    'echo === r; cat /r/top /r/sub/in-sub; echo === b; cat /b/top; ls -A /b/sub',
  );
  t.equal(section(out, 'r'), 'top\nin the submount\n', 'rbind: the submount is there');
  t.equal(section(out, 'b'), 'top\n', 'bind: the submount is not (its mount point is empty)');
});

t.test('propagation options on a bind: rshared, rprivate, and the default (slave)', { skip }, async (t) => {
  const dir = hostTempDir(t, 'iso-prop');
  if (!(await hostTmpfs(t, dir, true))) return;
  const out = await inside(
    t,
    (c) => {
      c.mounts.push({ destination: '/p-default', type: 'bind', source: dir, options: ['rbind'] });
      c.mounts.push({ destination: '/p-private', type: 'bind', source: dir, options: ['rbind', 'rprivate'] });
      c.mounts.push({ destination: '/p-shared', type: 'bind', source: dir, options: ['rbind', 'rshared'] });
    },
    'cat /proc/self/mountinfo',
  );
  const mounts = parseMountinfo(out);
  const opt = (mp: string) => mountAt(mounts, mp)?.optional ?? ['(no mount)'];
  t.ok(
    opt('/p-default').some((o) => o.startsWith('master:')),
    `a bind of a shared host mount is a slave by default (${opt('/p-default').join(' ')})`,
  );
  t.same(opt('/p-private'), [], 'rprivate: no propagation fields');
  t.ok(
    opt('/p-shared').some((o) => o.startsWith('shared:')),
    `rshared: in a peer group (${opt('/p-shared').join(' ')})`,
  );
});

t.test('nosuid, noexec and nodev on a tmpfs', { skip }, async (t) => {
  const out = await inside(
    t,
    (c) => {
      c.mounts.push({ destination: '/locked', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'noexec', 'nodev'] });
      c.mounts.push({ destination: '/open', type: 'tmpfs', source: 'tmpfs', options: [] });
      // mknod needs CAP_MKNOD, which the default set lacks
      const caps = c.process.capabilities!;
      for (const set of [caps.bounding!, caps.effective!, caps.permitted!]) set.push('CAP_MKNOD');
    },
    [
      'echo === mountinfo; cat /proc/self/mountinfo',
      'echo === exec; cp /bin/busybox /locked/busybox; cp /bin/busybox /open/busybox',
      '/open/busybox echo open-runs; /locked/busybox echo locked-runs 2>&1 || echo locked-refused',
      'echo === dev; mknod /locked/null c 1 3 && (cat /locked/null 2>&1 || echo nodev-refused)',
    ].join('; '),
  );
  const m = mountAt(parseMountinfo(section(out, 'mountinfo')), '/locked');
  for (const o of ['nosuid', 'noexec', 'nodev']) t.ok(m?.options.includes(o), `/locked is ${o}`);
  const open = mountAt(parseMountinfo(section(out, 'mountinfo')), '/open');
  t.notOk(open?.options.includes('noexec'), '/open is not noexec');
  t.match(section(out, 'exec'), /open-runs/, 'a binary runs from the plain tmpfs');
  t.notMatch(section(out, 'exec'), /locked-runs/, 'a binary does not run from the noexec tmpfs');
  t.match(section(out, 'exec'), /Permission denied/, 'exec on noexec fails with EACCES');
  t.match(section(out, 'dev'), /nodev-refused/, 'a device node on the nodev tmpfs cannot be opened');
});

t.test('root.readonly: / cannot be written; without it, it can', { skip }, async (t) => {
  const ro = await inside(
    t,
    (c) => {
      c.root.readonly = true;
    },
    'touch /x 2>&1 || echo refused; cat /proc/self/mountinfo',
  );
  t.match(ro, /Read-only file system/, 'touch / fails with EROFS');
  t.match(ro, /refused/, 'the write is refused');
  t.ok(parseMountinfo(ro).find((m) => m.mountpoint === '/')?.options.includes('ro'), '/ is mounted ro');

  let rootfs = '';
  const rw = await inside(
    t,
    (c, b) => {
      c.root.readonly = false;
      rootfs = b.rootfs;
    },
    'touch /written && echo wrote',
  );
  t.match(rw, /wrote/, 'with root.readonly false, / takes a write');
  t.ok(fs.existsSync(path.join(rootfs, 'written')), 'the file is in the rootfs on the host');
});

t.test('rootfsPropagation sets the propagation of the container\'s /', { skip }, async (t) => {
  const root = (out: string) => parseMountinfo(out).find((m) => m.mountpoint === '/');
  const shared = await inside(
    t,
    (c) => {
      c.linux.rootfsPropagation = 'rshared';
    },
    'cat /proc/self/mountinfo',
  );
  t.ok(
    root(shared)?.optional.some((o) => o.startsWith('shared:')),
    `rshared: / is in a peer group (${root(shared)?.optional.join(' ')})`,
  );
  const priv = await inside(
    t,
    (c) => {
      c.linux.rootfsPropagation = 'private';
    },
    'cat /proc/self/mountinfo',
  );
  t.same(root(priv)?.optional, [], 'private: / has no propagation fields');
});

t.test('--no-pivot: the container still sees only its rootfs', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-nopivot');
  let rootfs = '';
  const out = await inside(
    t,
    (c, b) => {
      rootfs = b.rootfs;
    },
    `echo === ls; ls -A /; echo === host; test -e ${path.join(REPO_ROOT, 'README.md')} && echo host-visible; echo === ro; touch /x 2>&1; echo === mountinfo; cat /proc/self/mountinfo`,
    {
      id,
      runFlags: ['--no-pivot'],
      prepare: (b) => fs.writeFileSync(path.join(b.rootfs, 'rootfs-marker'), ''),
    },
  );
  const ls = section(out, 'ls').split('\n').filter(Boolean).sort();
  t.same(ls, fs.readdirSync(rootfs).sort(), '/ lists the rootfs');
  t.ok(ls.includes('rootfs-marker'), 'the marker file in the rootfs is at /');
  t.notMatch(section(out, 'host'), /host-visible/, 'a host file is not reachable');
  t.match(section(out, 'ro'), /Read-only file system/, 'root.readonly still holds: touch / fails with EROFS');
  const mounts = parseMountinfo(section(out, 'mountinfo'));
  t.ok(mounts.length > 0, 'mountinfo is readable');
  t.same(unexpectedMounts(mounts), [], 'the host\'s mounts are not listed');
  await assertNothingLeaked(t, id);
});

// ---------------------------------------------------------------------------
// Mount destinations are resolved inside the rootfs (RESOLVE_IN_ROOT): a
// symlink in the image that points at a host path (here an empty host dir
// under /tmp) must not redirect a mount, nor the mkdir of its mount point,
// onto the host. The host dir must stay empty and unmounted, and the mount
// must show inside the container at the path the symlink names *inside the
// rootfs*.

function assertUntouched(t: Test, dir: string): void {
  t.same(fs.readdirSync(dir), [], `the host's ${dir} is still empty`);
  t.same(mountsUnder(dir), [], `nothing is mounted on the host's ${dir}`);
}

/** rootfs/<link> -> <target>; with `precreate`, <target> also exists inside the rootfs. */
function plant(rootfs: string, link: string, target: string, precreate: string | undefined): void {
  fs.symlinkSync(target, path.join(rootfs, link));
  if (precreate) fs.mkdirSync(path.join(rootfs, precreate), { recursive: true });
}

for (const precreate of [true, false]) {
  const what = precreate ? 'its target also exists in the rootfs' : 'its target is missing from the rootfs';

  t.test(`a destination that is a symlink out of the rootfs mounts inside the rootfs (${what})`, { skip }, async (t) => {
    const target = hostTempDir(t, 'iso-evil');
    let rootfs = '';
    const out = await inside(
      t,
      (c, b) => {
        rootfs = b.rootfs;
        c.mounts.push({ destination: '/evil', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] });
      },
      `echo inside > /evil/pwned; echo === mountinfo; cat /proc/self/mountinfo; echo === file; cat ${target}/pwned`,
      { prepare: (b) => plant(b.rootfs, 'evil', target, precreate ? target : undefined) },
    );
    assertUntouched(t, target);
    t.equal(mountAt(parseMountinfo(section(out, 'mountinfo')), target)?.fstype, 'tmpfs', `the tmpfs is at ${target} inside the container`);
    t.equal(section(out, 'file'), 'inside\n', 'a write through /evil lands in that tmpfs');
    t.ok(fs.statSync(path.join(rootfs, target), { throwIfNoEntry: false })?.isDirectory(), 'the mount point is in the rootfs');
  });

  t.test(`a destination under a symlinked parent dir mounts inside the rootfs (${what})`, { skip }, async (t) => {
    const abs = hostTempDir(t, 'iso-evil-abs');
    const rel = hostTempDir(t, 'iso-evil-rel');
    let rootfs = '';
    const out = await inside(
      t,
      (c, b) => {
        rootfs = b.rootfs;
        c.mounts.push({ destination: '/evil-abs/sub', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] });
        c.mounts.push({ destination: '/evil-rel/sub', type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] });
      },
      'cat /proc/self/mountinfo',
      {
        prepare: (b) => {
          plant(b.rootfs, 'evil-abs', abs, precreate ? abs : undefined);
          // relative, with more ".." than the rootfs is deep
          plant(b.rootfs, 'evil-rel', `../../../../../../..${rel}`, precreate ? rel : undefined);
        },
      },
    );
    assertUntouched(t, abs);
    assertUntouched(t, rel);
    const mounts = parseMountinfo(out);
    t.equal(mountAt(mounts, `${abs}/sub`)?.fstype, 'tmpfs', 'through an absolute symlink: mounted at its target in the rootfs');
    t.equal(mountAt(mounts, `${rel}/sub`)?.fstype, 'tmpfs', 'through a relative symlink with "..": mounted in the rootfs');
    for (const d of [abs, rel]) {
      t.ok(fs.statSync(path.join(rootfs, d, 'sub'), { throwIfNoEntry: false })?.isDirectory(), `the mount point ${d}/sub was made in the rootfs`);
    }
  });
}

t.test('"../../.." components in a destination stay in the rootfs', { skip }, async (t) => {
  const target = hostTempDir(t, 'iso-dotdot');
  let rootfs = '';
  const out = await inside(
    t,
    (c, b) => {
      rootfs = b.rootfs;
      c.mounts.push({ destination: `/../../../..${target}/x`, type: 'tmpfs', source: 'tmpfs', options: ['size=1m'] });
    },
    'cat /proc/self/mountinfo',
  );
  assertUntouched(t, target);
  t.equal(mountAt(parseMountinfo(out), `${target}/x`)?.fstype, 'tmpfs', 'mounted at the clamped path inside the rootfs');
  t.ok(fs.statSync(path.join(rootfs, target, 'x'), { throwIfNoEntry: false })?.isDirectory(), 'the mount point was made in the rootfs');
});
