// The unpack oracle: images built with umoci (every layer case: a later layer
// deleting files and making a directory opaque, hardlinks across
// directories, setuid/setgid/sticky modes, owners, xattrs, device nodes,
// FIFOs, symlinks) are unpacked into snapshots and mounted as a container
// rootfs — overlay and the copy fallback — and each tree is compared with
// `umoci unpack` of the same image: paths, types, modes, owners, link
// targets, content hashes, device numbers, xattrs, mtimes, hardlink groups.
// Then malicious layers: refused, nothing written outside the store.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { devMajor, devMinor, native } from '../../src/native.js';
import { INIT_PATHS, ensureSnapshots, mountContainerRootfs, removeContainerRootfs, unmountContainerRootfs } from '../../src/shim/image/snapshot.js';
import type { LayerRecord, Manifest } from '../../src/shim/image/types.js';
import { exec, mountsUnder } from '../lib/harness.js';
import { type ImageSpec, buildImage, layoutBlob, layoutDescriptor, makeStore, skipUnless } from './lib.js';
import { type WEntry, tar, sha256 } from '../../test/shim/image/tar-writer.js';

const skip = skipUnless(['umoci', 'tar', 'mknod']);

/** The layout's image as the store records its layers (chain ids computed as the image-spec says). */
function layerRecords(layout: string, tag: string): LayerRecord[] {
  const manifest = JSON.parse(fs.readFileSync(layoutBlob(layout, layoutDescriptor(layout, tag).digest), 'utf8')) as Manifest;
  const config = JSON.parse(fs.readFileSync(layoutBlob(layout, manifest.config.digest), 'utf8')) as { rootfs: { diff_ids: string[] } };
  let chain = '';
  return manifest.layers.map((l, i) => {
    const diffId = config.rootfs.diff_ids[i];
    chain = chain ? `sha256:${createHash('sha256').update(`${chain} ${diffId}`).digest('hex')}` : diffId;
    return { digest: l.digest, mediaType: l.mediaType, size: l.size, diffId, chainId: chain };
  });
}

/** One line per path: everything the oracle compares. */
function describe(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const groups = new Map<string, string[]>();
  const walk = (rel: string) => {
    for (const name of fs.readdirSync(path.join(root, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      const p = path.join(root, r);
      const st = fs.lstatSync(p);
      const xattrs = native()
        .llistxattr(p)
        .filter((x) => !x.startsWith('trusted.overlay.') && x !== 'security.selinux')
        .sort()
        .map((x) => `${x}=${native().lgetxattr(p, x).toString('hex')}`);
      let what: string;
      if (st.isDirectory()) what = 'dir';
      else if (st.isSymbolicLink()) what = `symlink -> ${fs.readlinkSync(p)}`;
      else if (st.isFile()) {
        what = `file ${createHash('sha256').update(fs.readFileSync(p)).digest('hex').slice(0, 16)}`;
        // Hardlink groups, by the paths that show the same inode (nlink
        // counts links hidden in a lower layer too: overlay's artifact).
        const key = `${st.dev}:${st.ino}`;
        groups.set(key, [...(groups.get(key) ?? []), r]);
      } else if (st.isCharacterDevice() || st.isBlockDevice()) what = `${st.isCharacterDevice() ? 'char' : 'block'} ${devMajor(st.rdev)}:${devMinor(st.rdev)}`;
      else if (st.isFIFO()) what = 'fifo';
      else what = `other ${st.mode.toString(8)}`;
      const mode = st.isSymbolicLink() ? '' : ` mode ${(st.mode & 0o7777).toString(8)}`;
      const mtime = ` mtime ${Math.floor(st.mtimeMs / 1000)}`;
      out.set(r, `${what}${mode} owner ${st.uid}:${st.gid}${mtime}${xattrs.length ? ` xattrs ${xattrs.join(',')}` : ''}`);
      if (st.isDirectory()) walk(r);
    }
  };
  walk('');
  for (const members of groups.values()) {
    if (members.length > 1) for (const m of members) out.set(m, `${out.get(m)} link-group ${members[0]}`);
  }
  return out;
}

function compare(t: Test, got: Map<string, string>, want: Map<string, string>, what: string): void {
  const diffs: string[] = [];
  for (const [p, w] of want) if (got.get(p) !== w) diffs.push(`${p}: want ${w}, got ${got.get(p) ?? '(missing)'}`);
  // The container's init layer adds its mount points where the image has none.
  for (const [p, g] of got) if (!want.has(p) && !INIT_PATHS.includes(p)) diffs.push(`${p}: unexpected ${g}`);
  t.same(diffs, [], `${what}: same tree as umoci unpack (${want.size} paths)`);
}

async function umociUnpack(t: Test, layout: string, tag: string): Promise<string> {
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-oracle-'));
  t.teardown(() => fs.rmSync(bundle, { recursive: true, force: true }));
  fs.rmdirSync(bundle);
  const r = await exec('umoci', ['unpack', '--image', `${layout}:${tag}`, bundle], { timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`umoci unpack: ${r.stderr}`);
  return path.join(bundle, 'rootfs');
}

/** Every layer case on top of the busybox base. */
const IMAGE: ImageSpec = {
  base: 'busybox',
  layers: [
    {
      dirs: { 'srv/tmp': { mode: 0o1777 }, 'srv/shared': { mode: 0o2775, gid: 100 }, 'srv/opaque/sub': {}, 'home/app': { mode: 0o700, uid: 1000, gid: 1000 } },
      files: {
        'usr/local/bin/suid': { content: '#!/bin/sh\necho suid\n', mode: 0o4755, uid: 0, gid: 0 },
        'usr/local/bin/sgid': { content: 'sgid', mode: 0o2755, uid: 1000, gid: 50 },
        'usr/local/bin/suid-user': { content: 'suid owned by a user', mode: 0o4711, uid: 1000, gid: 1000 },
        'home/app/.profile': { content: 'export X=1\n', uid: 1000, gid: 1000, mode: 0o600 },
        'srv/data/big.bin': { content: Buffer.alloc(3 << 20, 0xab) },
        'srv/data/xattr': { content: 'with xattrs', xattrs: { 'user.comment': 'hello', 'user.mime_type': 'text/plain' } },
        'srv/data/trusted': { content: 'trusted xattr', xattrs: { 'trusted.test': 'root only' } },
        'srv/delete-me': 'deleted by the next layer',
        'srv/deldir/a/b': 'whole tree deleted',
        'srv/opaque/old': 'hidden by the opaque dir',
        'srv/opaque/sub/deeper': 'also hidden',
        'srv/replace-type': 'a file that becomes a directory',
      },
      symlinks: { 'srv/link-abs': '/etc/passwd', 'srv/link-rel': '../usr/local/bin/suid', 'srv/dangling': 'nowhere', 'srv/dirlink': 'data' },
      hardlinks: { 'srv/hard-in-other-dir': 'srv/data/xattr', 'usr/local/bin/suid-hard': 'usr/local/bin/suid' },
      devices: {
        'srv/dev/null': { type: 'c', major: 1, minor: 3, mode: 0o666 },
        'srv/dev/sda': { type: 'b', major: 8, minor: 0, mode: 0o660 },
        'srv/dev/big': { type: 'c', major: 250, minor: 70000 },
        'srv/fifo': { type: 'p', mode: 0o620 },
      },
    },
    {
      delete: ['srv/delete-me', 'srv/deldir', 'bin/ls', 'srv/replace-type'],
      opaque: ['srv/opaque'],
      files: {
        'srv/opaque/new': 'kept: same layer as the opaque marker',
        'srv/replace-type/now-a-dir': 'x',
        'etc/motd': { content: 'changed in the top layer\n', mode: 0o640 },
        'srv/data/xattr': { content: 'rewritten with other xattrs', xattrs: { 'user.other': 'v2' } },
      },
      symlinks: { 'srv/dirlink-new': '/srv/opaque' },
    },
  ],
};

t.test('the rootfs equals umoci unpack of the same image: overlay and copy', { skip }, async (t) => {
  const store = makeStore(t);
  const image = await buildImage(t, IMAGE);
  const layers = layerRecords(image.layout, image.tag);
  t.equal(layers.length, 3, 'busybox base plus two layers');
  const lowers = await ensureSnapshots(store.root, (d) => layoutBlob(image.layout, d), layers);
  const want = describe(await umociUnpack(t, image.layout, image.tag));
  t.ok(want.has('srv/opaque/new') && !want.has('srv/opaque/old') && !want.has('srv/delete-me') && !want.has('bin/ls'), 'umoci applied the whiteouts');
  t.match(want.get('usr/local/bin/suid') ?? '', /mode 4755 owner 0:0/);
  t.match(want.get('srv/dev/big') ?? '', /^char 250:70000/);
  t.match(want.get('srv/data/trusted') ?? '', /trusted\.test=/, 'the oracle has the trusted.* xattr');

  for (const kind of ['overlay', 'copy'] as const) {
    process.env.TSCTL_SNAPSHOTTER = kind;
    const cid = `oracle-${kind}`;
    try {
      const r = await mountContainerRootfs(store.root, cid, lowers);
      t.equal(r.kind, kind);
      compare(t, describe(r.rootfs), want, kind);
      await removeContainerRootfs(store.root, cid);
    } finally {
      delete process.env.TSCTL_SNAPSHOTTER;
      await unmountContainerRootfs(store.root, cid);
    }
  }
  t.same(mountsUnder(store.root), [], 'nothing left mounted');
});

t.test('a scratch image with hardlinks, devices and modes only', { skip }, async (t) => {
  const store = makeStore(t);
  const image = await buildImage(t, {
    base: 'scratch',
    layers: [
      { files: { 'a/f': { content: 'f', mode: 0o750, uid: 3, gid: 4 } }, hardlinks: { 'b/c/g': 'a/f' }, devices: { p: { type: 'p' } } },
      { files: { 'a/f2': 'second layer' }, delete: ['p'] },
    ],
  });
  const lowers = await ensureSnapshots(store.root, (d) => layoutBlob(image.layout, d), layerRecords(image.layout, image.tag));
  const want = describe(await umociUnpack(t, image.layout, image.tag));
  process.env.TSCTL_SNAPSHOTTER = 'copy';
  t.teardown(() => void delete process.env.TSCTL_SNAPSHOTTER);
  const r = await mountContainerRootfs(store.root, 'scratch', lowers);
  compare(t, describe(r.rootfs), want, 'copy');
});

t.test('layers written by umoci itself (Go archive/tar, its own whiteouts)', { skip }, async (t) => {
  const store = makeStore(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-umoci-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const layout = path.join(dir, 'oci');
  const run = async (args: string[]) => {
    const r = await exec('umoci', args, { timeoutMs: 120_000 });
    if (r.code !== 0) throw new Error(`umoci ${args.join(' ')}: ${r.stderr}`);
  };
  await run(['init', '--layout', layout]);
  await run(['new', '--image', `${layout}:t`]);
  // Three rounds of unpack, change, repack: umoci diffs the trees itself.
  const changes: ((rootfs: string) => void)[] = [
    (r) => {
      fs.mkdirSync(path.join(r, 'a/b/c'), { recursive: true });
      fs.writeFileSync(path.join(r, 'a/b/c/f'), 'f');
      fs.writeFileSync(path.join(r, 'a/gone'), 'g');
      fs.mkdirSync(path.join(r, 'tree/sub'), { recursive: true });
      fs.writeFileSync(path.join(r, 'tree/sub/x'), 'x');
      fs.writeFileSync(path.join(r, 'suid'), 's');
      fs.chownSync(path.join(r, 'suid'), 1000, 1000);
      fs.chmodSync(path.join(r, 'suid'), 0o4755);
      fs.symlinkSync('a/b', path.join(r, 'ln'));
      fs.writeFileSync(path.join(r, `long-${'n'.repeat(150)}`), 'long name');
    },
    (r) => {
      fs.rmSync(path.join(r, 'a/gone'));
      fs.rmSync(path.join(r, 'tree'), { recursive: true });
      fs.linkSync(path.join(r, 'a/b/c/f'), path.join(r, 'hard'));
      fs.rmSync(path.join(r, 'ln'));
      fs.mkdirSync(path.join(r, 'ln'));
      fs.writeFileSync(path.join(r, 'a/b/c/f'), 'rewritten');
    },
    (r) => {
      fs.mkdirSync(path.join(r, 'tree'));
      fs.writeFileSync(path.join(r, 'tree/new'), 'new');
      fs.chmodSync(path.join(r, 'a'), 0o700);
    },
  ];
  for (const [i, change] of changes.entries()) {
    const bundle = path.join(dir, `b${i}`);
    await run(['unpack', '--image', `${layout}:t`, bundle]);
    change(path.join(bundle, 'rootfs'));
    await run(['repack', '--image', `${layout}:t`, bundle]);
  }
  const layers = layerRecords(layout, 't');
  t.equal(layers.length, 3);
  const lowers = await ensureSnapshots(store.root, (d) => layoutBlob(layout, d), layers);
  const want = describe(await umociUnpack(t, layout, 't'));
  t.ok(!want.has('tree/sub') && want.has('tree/new') && !want.has('a/gone'), 'umoci deleted and re-added');
  for (const kind of ['overlay', 'copy'] as const) {
    process.env.TSCTL_SNAPSHOTTER = kind;
    try {
      const r = await mountContainerRootfs(store.root, `umoci-${kind}`, lowers);
      compare(t, describe(r.rootfs), want, kind);
      await removeContainerRootfs(store.root, `umoci-${kind}`);
    } finally {
      delete process.env.TSCTL_SNAPSHOTTER;
    }
  }
});

// ---------------------------------------------------------------------------
// Malicious layers, written by hand (no tool writes these)

interface Evil {
  name: string;
  layers: (outside: string) => WEntry[][];
  error: RegExp;
}

const EVIL: Evil[] = [
  { name: '../ escape', layers: () => [[{ path: '../../../../../../../tmp/x', data: 'x' }]], error: /path leaves the layer/ },
  { name: 'symlink then write through it', layers: (o) => [[{ path: 'etc', type: '2', linkpath: o }, { path: 'etc/passwd', data: 'x' }]], error: /refusing to write through the symlink "etc"/ },
  { name: 'hardlink to a host file', layers: (o) => [[{ path: 'h', type: '1', linkpath: `../../../../../../..${o}/secret` }]], error: /hardlink target .* leaves the layer/ },
  {
    name: 'symlink dir swapped in by a later layer',
    layers: (o) => [[{ path: 'd/', type: '5' }, { path: 'd/ok', data: 'ok' }], [{ path: '.wh.d', data: '' }, { path: 'd', type: '2', linkpath: o }], [{ path: 'd/x', data: 'x' }]],
    error: /refusing to write through the symlink "d" of a lower layer/,
  },
  {
    name: 'relative symlink in a lower layer',
    layers: () => [[{ path: 'up', type: '2', linkpath: '../../../../../../../../tmp' }], [{ path: 'up/evil', data: 'x' }]],
    error: /refusing to write through the symlink "up" of a lower layer/,
  },
];

/** Layers as blobs in the store's blob dir, with their records. */
function writeLayers(root: string, layers: WEntry[][]): LayerRecord[] {
  const blobs = path.join(root, 'blobs', 'sha256');
  fs.mkdirSync(blobs, { recursive: true });
  let chain = '';
  return layers.map((entries) => {
    const raw = tar(entries);
    const digest = sha256(raw);
    fs.writeFileSync(path.join(blobs, digest.slice(7)), raw);
    chain = chain ? `sha256:${createHash('sha256').update(`${chain} ${digest}`).digest('hex')}` : digest;
    return { digest, mediaType: 'application/vnd.oci.image.layer.v1.tar', size: raw.length, diffId: digest, chainId: chain };
  });
}

for (const evil of EVIL) {
  t.test(`malicious layer refused: ${evil.name}`, { skip }, async (t) => {
    const store = makeStore(t);
    const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-outside-'));
    t.teardown(() => fs.rmSync(outside, { recursive: true, force: true }));
    fs.writeFileSync(path.join(outside, 'secret'), 'secret');
    const tmpBefore = fs.readdirSync('/tmp').filter((n) => n === 'x' || n === 'evil');
    const layers = writeLayers(store.root, evil.layers(outside));
    await t.rejects(ensureSnapshots(store.root, (d) => path.join(store.root, 'blobs', 'sha256', d.slice(7)), layers), evil.error);
    t.same(fs.readdirSync(outside), ['secret'], 'nothing written outside the store');
    t.equal(fs.statSync(path.join(outside, 'secret')).nlink, 1);
    t.same(fs.readdirSync('/tmp').filter((n) => n === 'x' || n === 'evil'), tmpBefore, 'nothing in /tmp');
    const snaps = fs.readdirSync(path.join(store.root, 'snapshots'));
    t.ok(snaps.every((s) => !s.startsWith('.tmp')), 'no partial snapshot left');
    t.equal(snaps.length, layers.length - 1, 'only the good layers below it are kept');
  });
}
