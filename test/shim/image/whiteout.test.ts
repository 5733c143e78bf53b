// OCI whiteouts in both forms: overlayfs markers in a snapshot, and applied
// when the copy fallback flattens the snapshots; an overlay mount of the same
// snapshots must show exactly the flattened tree. A whiteout hides lower
// layers only, never entries of its own layer (image-spec layer.md).
// Needs root (mknod, trusted.* xattrs, mount).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { native } from '../../../src/native.js';
import { INIT_PATHS, flatten, mountContainerRootfs, unmountContainerRootfs } from '../../../src/shim/image/snapshot.js';
import { OPAQUE_XATTR, unpackTar } from '../../../src/shim/image/unpack.js';
import { type WEntry, chunks, tar } from './tar-writer.js';

const skip = process.getuid?.() !== 0 ? 'needs root: mknod, trusted.* xattrs and mounts' : false;

/** Unpacks each layer into its own snapshot (bottom first); returns them topmost first. */
async function snapshots(t: Test, layers: WEntry[][]): Promise<{ root: string; lowers: string[] }> {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-wh-'));
  t.teardown(async () => {
    await unmountContainerRootfs(root, 'c');
    fs.rmSync(root, { recursive: true, force: true });
  });
  const lowers: string[] = [];
  for (const [i, entries] of layers.entries()) {
    const dir = path.join(root, 'snapshots', String(i), 'fs');
    fs.mkdirSync(dir, { recursive: true });
    await unpackTar(chunks(tar(entries)), dir, { lowers: lowers.slice() });
    lowers.unshift(dir);
  }
  return { root, lowers };
}

/** Every path under dir with its type and content: what a container sees. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const n of fs.readdirSync(path.join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${n}` : n;
      const st = fs.lstatSync(path.join(dir, r));
      if (st.isDirectory()) {
        out.push(`${r}/`);
        walk(r);
      } else if (st.isFile()) out.push(`${r}=${fs.readFileSync(path.join(dir, r), 'utf8')}`);
      else if (st.isSymbolicLink()) out.push(`${r}->${fs.readlinkSync(path.join(dir, r))}`);
      else out.push(`${r}:${st.isCharacterDevice() ? 'c' : '?'}${st.rdev}`);
    }
  };
  walk('');
  return out;
}

/** Both forms of the merged tree: the copy fallback's and an overlay mount's. */
async function merged(t: Test, root: string, lowers: string[]): Promise<string[]> {
  const flat = path.join(root, 'flat');
  fs.mkdirSync(flat);
  flatten(flat, lowers.slice().reverse());
  const { rootfs, kind } = await mountContainerRootfs(root, 'c', lowers);
  t.equal(kind, 'overlay');
  const a = listing(flat);
  // The container's init layer adds its mount points where the image has none.
  const isInit = (e: string) => INIT_PATHS.includes(e.replace(/(\/|=.*|->.*)$/, ''));
  t.same(listing(rootfs).filter((e) => !isInit(e) || a.includes(e)), a, 'the overlay mount shows the flattened tree');
  await unmountContainerRootfs(root, 'c');
  return a;
}

t.test('.wh.NAME: a 0/0 char device in the snapshot; removes files and whole trees below', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [
    [{ path: 'a', data: 'a' }, { path: 'tree/x/y', data: 'y' }, { path: 'tree/z', data: 'z' }, { path: 'keep', data: 'k' }],
    [{ path: '.wh.a', data: '' }, { path: '.wh.tree', data: '' }, { path: '.wh.never-existed', data: '' }],
  ]);
  const st = fs.lstatSync(path.join(lowers[0], 'a'));
  t.ok(st.isCharacterDevice() && st.rdev === 0, 'a is a whiteout device');
  t.notOk(fs.existsSync(path.join(lowers[0], '.wh.a')), 'no .wh. file in the snapshot');
  t.same(await merged(t, root, lowers), ['keep=k']);
});

t.test('a path deleted and re-added by a later layer comes back with the new content only', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [
    [{ path: 'd/old', data: 'old' }],
    [{ path: '.wh.d', data: '' }],
    [{ path: 'd/new', data: 'new' }],
  ]);
  t.same(await merged(t, root, lowers), ['d/', 'd/new=new']);
});

t.test('.wh..wh..opq: lower contents hidden, the same layer\'s kept', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [
    [{ path: 'd/old', data: 'old' }, { path: 'd/sub/deep', data: 'deep' }, { path: 'other/f', data: 'f' }],
    [
      { path: 'd/', type: '5' },
      { path: 'd/before', data: 'written before the marker' },
      { path: 'd/.wh..wh..opq', data: '' },
      { path: 'd/after', data: 'written after the marker' },
      { path: 'd/sub/new', data: 'new' },
    ],
  ]);
  t.equal(native().lgetxattr(path.join(lowers[0], 'd'), OPAQUE_XATTR).toString(), 'y', 'trusted.overlay.opaque=y');
  t.notOk(fs.existsSync(path.join(lowers[0], 'd', '.wh..wh..opq')));
  t.same(await merged(t, root, lowers), [
    'd/',
    'd/after=written after the marker',
    'd/before=written before the marker',
    'd/sub/',
    'd/sub/new=new',
    'other/',
    'other/f=f',
  ]);
});

t.test('an opaque marker for a directory the layer has no entry for creates it', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [[{ path: 'x/y/old', data: 'o' }], [{ path: 'x/y/.wh..wh..opq', data: '' }]]);
  t.same(await merged(t, root, lowers), ['x/', 'x/y/']);
});

t.test('a whiteout never hides an entry of its own layer', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [
    [{ path: 'lower', data: 'lower' }, { path: 'dir/old', data: 'o' }, { path: 'dir2/old', data: 'o' }, { path: 'dir3/old', data: 'o' }],
    [
      { path: 'same', data: 'same layer, before its whiteout' },
      { path: '.wh.same', data: '' },
      { path: '.wh.lower', data: '' },
      { path: 'lower', data: 'same layer, after its whiteout' },
      // the lower dir goes, this layer's stays: opaque
      { path: 'dir/f', data: 'f' },
      { path: '.wh.dir', data: '' },
      // the same in the other order, with an entry and without
      { path: '.wh.dir2', data: '' },
      { path: 'dir2/', type: '5', mode: 0o711 },
      { path: 'dir2/g', data: 'g' },
      { path: '.wh.dir3', data: '' },
      { path: 'dir3/h', data: 'h' },
    ],
  ]);
  t.same(await merged(t, root, lowers), [
    'dir/',
    'dir/f=f',
    'dir2/',
    'dir2/g=g',
    'dir3/',
    'dir3/h=h',
    'lower=same layer, after its whiteout',
    'same=same layer, before its whiteout',
  ]);
  t.equal(fs.statSync(path.join(lowers[0], 'dir2')).mode & 0o7777, 0o711);
  for (const d of ['dir', 'dir2', 'dir3']) t.equal(native().lgetxattr(path.join(lowers[0], d), OPAQUE_XATTR).toString(), 'y', `${d} is opaque`);
});

t.test('a lower symlink replaced by a directory, and types replaced across layers', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [
    [{ path: 'l', type: '2', linkpath: '/etc' }, { path: 'f', data: 'file' }, { path: 'dir/x', data: 'x' }],
    [{ path: 'l/', type: '5' }, { path: 'l/inside', data: 'i' }, { path: 'f/', type: '5' }, { path: 'dir', type: '2', linkpath: 'f' }],
  ]);
  t.same(await merged(t, root, lowers), ['dir->f', 'f/', 'l/', 'l/inside=i']);
});

t.test('aufs metadata (.wh..wh.plnk and friends) is not content', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [[{ path: 'a', data: 'a' }, { path: '.wh..wh.plnk/1.2', data: 'x' }, { path: '.wh..wh.aufs', data: '' }]]);
  t.same(await merged(t, root, lowers), ['a=a']);
});

t.test('a directory the layer has no entry for keeps the attributes of the one it covers', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [
    [{ path: 'home/', type: '5', mode: 0o755 }, { path: 'home/app/', type: '5', mode: 0o700, uid: 1000, gid: 1000, mtime: 1234 }],
    [{ path: 'home/app/new', data: 'n' }, { path: 'fresh/dir/f', data: 'f' }],
  ]);
  const st = fs.lstatSync(path.join(lowers[0], 'home', 'app'));
  t.same([st.mode & 0o7777, st.uid, st.gid, st.mtimeMs], [0o700, 1000, 1000, 1234000], 'implicit directory in the snapshot');
  t.equal(fs.lstatSync(path.join(lowers[0], 'fresh', 'dir')).mode & 0o7777, 0o755, 'a new one is 0755');
  await merged(t, root, lowers);
  const { rootfs } = await mountContainerRootfs(root, 'c', lowers);
  const m = fs.lstatSync(path.join(rootfs, 'home', 'app'));
  t.same([m.mode & 0o7777, m.uid, m.gid], [0o700, 1000, 1000], 'the container sees the lower attributes');
});

t.test('a hardlink to a file of a lower layer: the file is copied up and linked', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [
    [{ path: 'bin/tool', data: 'tool', mode: 0o4750, uid: 0, gid: 7, pax: { 'SCHILY.xattr.user.k': 'v' } }, { path: 'gone', data: 'g' }],
    [{ path: 'usr/bin/tool-link', type: '1', linkpath: 'bin/tool' }],
  ]);
  const a = fs.lstatSync(path.join(lowers[0], 'bin', 'tool'));
  const b = fs.lstatSync(path.join(lowers[0], 'usr', 'bin', 'tool-link'));
  t.equal(a.ino, b.ino, 'linked inside the layer');
  t.same([a.mode & 0o7777, a.gid], [0o4750, 7], 'with the lower file\'s metadata');
  t.equal(native().lgetxattr(path.join(lowers[0], 'bin', 'tool'), 'user.k').toString(), 'v');
  t.same(await merged(t, root, lowers), ['bin/', 'bin/tool=tool', 'gone=g', 'usr/', 'usr/bin/', 'usr/bin/tool-link=tool']);
  const upper = path.join(root, 'extra');
  fs.mkdirSync(upper);
  const mid = fs.mkdtempSync(path.join(root, 'mid'));
  await unpackTar(chunks(tar([{ path: '.wh.gone', data: '' }])), mid, { lowers });
  await t.rejects(unpackTar(chunks(tar([{ path: 'l', type: '1', linkpath: 'gone' }])), upper, { lowers: [mid, ...lowers] }), /hardlink target "gone" is in neither this layer nor the ones below/);
});

t.test('an opaque marker at the top of a layer hides everything below', { skip }, async (t) => {
  const { root, lowers } = await snapshots(t, [
    [{ path: 'a', data: 'a' }, { path: 'd/x', data: 'x' }, { path: 'keep/y', data: 'y' }],
    [{ path: 'keep/z', data: 'z' }, { path: '.wh..wh..opq', data: '' }, { path: 'new', data: 'n' }, { path: 'd/w', data: 'w' }],
  ]);
  t.same(await merged(t, root, lowers), ['d/', 'd/w=w', 'keep/', 'keep/z=z', 'new=n']);
});
