// Snapshots and container root filesystems: layers unpacked once each, in
// overlay form; overlay mounts and the copy fallback show the same tree;
// `docker diff`-style changes. Needs root (chown, mknod, trusted xattrs, mount).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { diffContainer, ensureSnapshots, mountContainerRootfs, removeContainerRootfs, unmountContainerRootfs, isMountPoint } from '../../../src/shim/image/snapshot.js';
import type { LayerRecord } from '../../../src/shim/image/types.js';
import { type WEntry, sha256, tar } from './tar-writer.js';
import { createHash } from 'node:crypto';
import zlib from 'node:zlib';

const skip = process.getuid?.() !== 0 ? 'needs root: chown, mknod, trusted.* xattrs and mounts' : false;

function store(t: Test): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-snap-'));
  t.teardown(async () => {
    for (const c of fs.existsSync(path.join(root, 'containers')) ? fs.readdirSync(path.join(root, 'containers')) : [])
      await unmountContainerRootfs(root, c);
    fs.rmSync(root, { recursive: true, force: true });
  });
  return root;
}

/** Writes the layers as blobs (gzip for odd ones) and returns their records with chain ids. */
function layers(root: string, list: WEntry[][]): LayerRecord[] {
  fs.mkdirSync(path.join(root, 'blobs', 'sha256'), { recursive: true });
  const out: LayerRecord[] = [];
  let chain = '';
  list.forEach((entries, i) => {
    const raw = tar(entries);
    const blob = i % 2 ? zlib.gzipSync(raw) : raw;
    const digest = sha256(blob);
    fs.writeFileSync(path.join(root, 'blobs', 'sha256', digest.slice(7)), blob);
    const diffId = sha256(raw);
    chain = chain ? `sha256:${createHash('sha256').update(`${chain} ${diffId}`).digest('hex')}` : diffId;
    out.push({ digest, mediaType: 'application/vnd.oci.image.layer.v1.tar', size: blob.length, diffId, chainId: chain });
  });
  return out;
}

const blobPath = (root: string) => (d: string) => path.join(root, 'blobs', 'sha256', d.slice(7));

/** path → short description of everything under dir (type, mode, owner, content/target). */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const p = path.join(dir, r);
      const st = fs.lstatSync(p);
      const m = `${(st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`;
      if (st.isDirectory()) {
        out[r] = `dir ${m}`;
        walk(r);
      } else if (st.isSymbolicLink()) out[r] = `link -> ${fs.readlinkSync(p)}`;
      else if (st.isFile()) out[r] = `file ${m} ${fs.readFileSync(p, 'utf8')}`;
      else out[r] = `other ${st.mode.toString(8)} ${st.rdev}`;
    }
  };
  walk('');
  return out;
}

const BASE: WEntry[] = [
  { path: 'etc/', type: '5' },
  { path: 'etc/passwd', data: 'root:x:0:0::/root:/bin/sh\n' },
  { path: 'etc/gone', data: 'to be deleted' },
  { path: 'opq/', type: '5' },
  { path: 'opq/old', data: 'hidden by the opaque dir' },
  { path: 'opq/sub/', type: '5' },
  { path: 'opq/sub/deep', data: 'also hidden' },
  { path: 'bin/', type: '5' },
  { path: 'bin/su', data: '#!suid', mode: 0o4755, uid: 0, gid: 0 },
  { path: 'bin/link', type: '2', linkpath: 'su' },
  { path: 'lib', type: '2', linkpath: 'usr/lib' },
];
const TOP: WEntry[] = [
  { path: 'etc/.wh.gone', data: '' },
  { path: 'opq/', type: '5', mode: 0o750 },
  { path: 'opq/.wh..wh..opq', data: '' },
  { path: 'opq/new', data: 'new in the top layer', uid: 1000, gid: 1000 },
  { path: 'home/', type: '5' },
  { path: 'home/user/', type: '5', uid: 1000, gid: 1000, mode: 0o700 },
  { path: 'home/user/.profile', data: 'PS1=$', uid: 1000, gid: 1000 },
];

const EXPECTED: Record<string, string> = {
  bin: 'dir 755 0:0',
  'bin/link': 'link -> su',
  'bin/su': 'file 4755 0:0 #!suid',
  etc: 'dir 755 0:0',
  'etc/passwd': 'file 644 0:0 root:x:0:0::/root:/bin/sh\n',
  home: 'dir 755 0:0',
  'home/user': 'dir 700 1000:1000',
  'home/user/.profile': 'file 644 1000:1000 PS1=$',
  lib: 'link -> usr/lib',
  opq: 'dir 750 0:0',
  'opq/new': 'file 644 1000:1000 new in the top layer',
  // the init layer's mount points
  dev: 'dir 755 0:0',
  'etc/hostname': 'file 644 0:0 ',
  'etc/hosts': 'file 644 0:0 ',
  'etc/mtab': 'link -> /proc/mounts',
  'etc/resolv.conf': 'file 644 0:0 ',
  proc: 'dir 755 0:0',
  sys: 'dir 755 0:0',
};

t.test('each layer is unpacked once, in overlay form, topmost first', { skip }, async (t) => {
  const root = store(t);
  const recs = layers(root, [BASE, TOP]);
  const lowers = await ensureSnapshots(root, blobPath(root), recs);
  t.equal(lowers.length, 2);
  t.equal(lowers[0], path.join(root, 'snapshots', recs[1].chainId.slice(7), 'fs'));
  t.equal(lowers[1], path.join(root, 'snapshots', recs[0].chainId.slice(7), 'fs'));
  const wh = fs.lstatSync(path.join(lowers[0], 'etc', 'gone'));
  t.ok(wh.isCharacterDevice() && wh.rdev === 0, '.wh.gone is a 0/0 character device');
  t.equal(fs.readdirSync(path.join(lowers[0], 'etc')).join(), 'gone', 'no .wh. file is left');
  t.ok(fs.existsSync(path.join(lowers[0], 'opq', 'new')));
  t.same(fs.readdirSync(path.join(root, 'snapshots')).filter((n) => n.startsWith('.tmp')), [], 'no temporary left');
  // Again: nothing unpacked (a marker written into the snapshot survives).
  fs.writeFileSync(path.join(lowers[1], 'marker'), 'x');
  t.same(await ensureSnapshots(root, blobPath(root), recs), lowers);
  t.ok(fs.existsSync(path.join(lowers[1], 'marker')));
});

for (const kind of ['overlay', 'copy'] as const) {
  t.test(`a ${kind} rootfs applies whiteouts and opaque directories`, { skip }, async (t) => {
    const root = store(t);
    const lowers = await ensureSnapshots(root, blobPath(root), layers(root, [BASE, TOP]));
    process.env.TSCTL_SNAPSHOTTER = kind;
    t.teardown(() => void delete process.env.TSCTL_SNAPSHOTTER);
    const r = await mountContainerRootfs(root, 'c1', lowers);
    t.equal(r.kind, kind);
    t.equal(r.rootfs, path.join(root, 'containers', 'c1', 'rootfs'));
    t.equal(isMountPoint(r.rootfs), kind === 'overlay');
    t.same(tree(r.rootfs), EXPECTED);
    t.same(await mountContainerRootfs(root, 'c1', lowers), r, 'mounting again is a no-op');
    t.same(diffContainer(root, 'c1'), [], 'a fresh container has no changes (the init layer is not one)');
    const etc = fs.lstatSync(path.join(r.rootfs, 'etc'));
    t.equal(etc.mtimeMs, fs.lstatSync(path.join(lowers[1], 'etc')).mtimeMs, 'the image\'s /etc keeps its time under the init layer');

    fs.writeFileSync(path.join(r.rootfs, 'etc', 'passwd'), 'changed\n');
    fs.writeFileSync(path.join(r.rootfs, 'added'), 'a');
    fs.rmSync(path.join(r.rootfs, 'bin', 'link'));
    fs.mkdirSync(path.join(r.rootfs, 'home', 'user', 'd'));
    t.same(diffContainer(root, 'c1'), [
      { kind: 'A', path: '/added' },
      { kind: 'C', path: '/bin' },
      { kind: 'D', path: '/bin/link' },
      { kind: 'C', path: '/etc' },
      { kind: 'C', path: '/etc/passwd' },
      { kind: 'C', path: '/home' },
      { kind: 'C', path: '/home/user' },
      { kind: 'A', path: '/home/user/d' },
    ]);

    await unmountContainerRootfs(root, 'c1');
    await unmountContainerRootfs(root, 'c1');
    t.notOk(isMountPoint(r.rootfs), 'unmounted (twice: idempotent)');
    await removeContainerRootfs(root, 'c1');
    t.notOk(fs.existsSync(r.rootfs));
  });
}

t.test('a bad layer leaves no snapshot and no temporary behind', { skip }, async (t) => {
  const root = store(t);
  const recs = layers(root, [BASE, [{ path: 'ok', data: 'x' }, { path: '../escape', data: 'x' }]]);
  await t.rejects(ensureSnapshots(root, blobPath(root), recs), /entry "\.\.\/escape": path leaves the layer/);
  t.same(fs.readdirSync(path.join(root, 'snapshots')), [recs[0].chainId.slice(7)], 'only the good lower layer');
});

t.test('a layer whose content does not match its diff_id is refused', { skip }, async (t) => {
  const root = store(t);
  const recs = layers(root, [BASE]);
  recs[0].diffId = `sha256:${'0'.repeat(64)}`;
  await t.rejects(ensureSnapshots(root, blobPath(root), recs), /does not match|diff_id/);
  t.same(fs.readdirSync(path.join(root, 'snapshots')), []);
});

t.test('concurrent unpacks of the same image both succeed; interrupted ones are swept', { skip }, async (t) => {
  const root = store(t);
  const recs = layers(root, [BASE, TOP]);
  fs.mkdirSync(path.join(root, 'snapshots'), { recursive: true });
  // An unpack interrupted by a dead process, and one still running elsewhere.
  const dead = path.join(root, 'snapshots', `.tmp-abc-${2 ** 22 + 12345}-x`);
  const live = path.join(root, 'snapshots', `.tmp-abc-${process.ppid}-y`);
  fs.mkdirSync(dead);
  fs.mkdirSync(live);
  const [a, b] = await Promise.all([ensureSnapshots(root, blobPath(root), recs), ensureSnapshots(root, blobPath(root), recs)]);
  t.same(a, b);
  t.notOk(fs.existsSync(dead), 'a dead process\'s temporary is removed');
  t.ok(fs.existsSync(live), 'a live process\'s is left alone');
  t.same(fs.readdirSync(path.join(root, 'snapshots')).sort(), [...recs.map((r) => r.chainId.slice(7)), path.basename(live)].sort());
  t.same(tree(a[0]), tree(b[0]));
});

t.test('images with many layers mount (overlay options stay under a page)', { skip }, async (t) => {
  const root = store(t);
  const n = 120;
  const list: WEntry[][] = [];
  for (let i = 0; i < n; i++) list.push([{ path: `layer${i}`, data: String(i) }, ...(i === n - 1 ? [{ path: '.wh.layer0', data: '' }] : [])]);
  const recs = layers(root, list);
  const lowers = await ensureSnapshots(root, blobPath(root), recs);
  t.ok(lowers.join(':').length > 4096, 'the plain lowerdir list would not fit');
  const r = await mountContainerRootfs(root, 'many', lowers);
  t.equal(r.kind, 'overlay');
  const names = fs.readdirSync(r.rootfs).filter((x) => x.startsWith('layer'));
  t.equal(names.length, n - 1);
  t.notOk(names.includes('layer0'), 'the top layer\'s whiteout applies to the bottom one');
  t.equal(fs.readFileSync(path.join(r.rootfs, 'layer1'), 'utf8'), '1');
  const links = path.join(root, 'snapshots', 'l');
  t.equal(fs.readdirSync(links).length, n + 1, 'one short link per layer (and the init layer)');
  // A snapshot gc removed: its link is swept, the snapshot made again when needed.
  await removeContainerRootfs(root, 'many');
  fs.rmSync(path.dirname(lowers[3]), { recursive: true });
  t.same(await ensureSnapshots(root, blobPath(root), recs), lowers);
  t.equal(fs.readdirSync(links).length, n - 1, 'the dangling links are gone');
});

t.test('diff: a directory removed and made again in the container is opaque in the upper', { skip }, async (t) => {
  const root = store(t);
  const lowers = await ensureSnapshots(root, blobPath(root), layers(root, [BASE, TOP]));
  const r = await mountContainerRootfs(root, 'c2', lowers);
  t.equal(r.kind, 'overlay');
  fs.rmSync(path.join(r.rootfs, 'etc'), { recursive: true });
  fs.mkdirSync(path.join(r.rootfs, 'etc'));
  fs.writeFileSync(path.join(r.rootfs, 'etc', 'fresh'), 'f');
  t.same(diffContainer(root, 'c2'), [
    { kind: 'C', path: '/etc' },
    { kind: 'A', path: '/etc/fresh' },
    { kind: 'D', path: '/etc/hostname' },
    { kind: 'D', path: '/etc/hosts' },
    { kind: 'D', path: '/etc/mtab' },
    { kind: 'D', path: '/etc/passwd' },
    { kind: 'D', path: '/etc/resolv.conf' },
  ]);
  await t.rejects(async () => diffContainer(root, 'nosuch'), /container nosuch: no root filesystem record/);
  await t.rejects(mountContainerRootfs(root, '../evil', lowers), /invalid container id/);
});

t.test('an image without layers gets an empty rootfs; a busy rootfs is still unmounted', { skip }, async (t) => {
  const root = store(t);
  t.same(await ensureSnapshots(root, blobPath(root), []), []);
  const r = await mountContainerRootfs(root, 'empty', []);
  t.equal(r.kind, 'overlay');
  t.same(fs.readdirSync(r.rootfs).sort(), ['dev', 'etc', 'proc', 'sys'], 'only the init layer\'s mount points');
  fs.writeFileSync(path.join(r.rootfs, 'f'), 'x');
  const fd = fs.openSync(path.join(r.rootfs, 'f'), 'r');
  t.teardown(() => fs.closeSync(fd));
  await unmountContainerRootfs(root, 'empty');
  t.notOk(isMountPoint(r.rootfs), 'detached although a file is open in it');
  t.same(diffContainer(root, 'empty'), [{ kind: 'A', path: '/f' }]);
});

t.test('where overlay is unavailable the rootfs is copied; other mount failures are errors', { skip }, async (t) => {
  const root = store(t);
  const lowers = await ensureSnapshots(root, blobPath(root), layers(root, [BASE, TOP]));
  // A `mount` that fails as it does on a kernel without overlayfs, or with another error.
  const fake = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-fakemount-'));
  t.teardown(() => fs.rmSync(fake, { recursive: true, force: true }));
  const savedPath = process.env.PATH;
  t.teardown(() => void (process.env.PATH = savedPath));
  process.env.PATH = `${fake}:${savedPath}`;
  const fakeMount = (msg: string) => fs.writeFileSync(path.join(fake, 'mount'), `#!/bin/sh\necho "${msg}" >&2\nexit 32\n`, { mode: 0o755 });

  fakeMount("mount: /x: unknown filesystem type 'overlay'.");
  const r = await mountContainerRootfs(root, 'nooverlay', lowers);
  t.equal(r.kind, 'copy', 'copied');
  t.same(tree(r.rootfs), EXPECTED);
  t.notOk(fs.existsSync(path.join(root, 'containers', 'nooverlay', 'upper')), 'no upper dir left from the attempt');

  fakeMount('mount: /x: special device overlay does not exist.');
  await t.rejects(mountContainerRootfs(root, 'broken', lowers), /container broken: overlay mount failed: mount: \/x: special device overlay does not exist/);
  t.same(fs.readdirSync(path.join(root, 'containers', 'broken')), [], 'nothing left behind');

  process.env.TSCTL_SNAPSHOTTER = 'zfs';
  t.teardown(() => void delete process.env.TSCTL_SNAPSHOTTER);
  await t.rejects(mountContainerRootfs(root, 'c3', lowers), /TSCTL_SNAPSHOTTER: unknown snapshotter "zfs" \(overlay or copy\)/);
});
