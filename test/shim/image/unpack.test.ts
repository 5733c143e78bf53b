// The layer unpacker: every entry type with its metadata, replacement rules,
// compression, and the tar-slip refusals (nothing written outside the layer).
// Needs root (chown, mknod).
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import t, { type Test } from 'tap';
import { devMajor, devMinor, native } from '../../../src/native.js';
import { copyEntry, unpackLayer, unpackTar } from '../../../src/shim/image/unpack.js';
import { type WEntry, chunks, sha256, tar } from './tar-writer.js';

const skip = process.getuid?.() !== 0 ? 'needs root: chown and mknod' : false;

function tmp(t: Test): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-unpack-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A fresh empty layer dir and an "outside" dir next to it that must stay empty. */
function dirs(t: Test): { layer: string; outside: string; base: string } {
  const base = tmp(t);
  const layer = path.join(base, 'layer');
  const outside = path.join(base, 'outside');
  fs.mkdirSync(layer);
  fs.mkdirSync(outside);
  return { layer, outside, base };
}

const unpack = (entries: WEntry[], dest: string, lowers?: string[]) => unpackTar(chunks(tar(entries)), dest, { lowers });

t.test('every entry type, with owners, modes, mtimes and xattrs', { skip }, async (t) => {
  const { layer } = dirs(t);
  const r = await unpack(
    [
      { path: './', type: '5', mode: 0o755, mtime: 1000 },
      { path: 'bin/', type: '5', mode: 0o755, mtime: 2000 },
      { path: 'bin/su', data: 'suid', mode: 0o4755, uid: 1000, gid: 1000, mtime: 3000 },
      { path: 'bin/sg', data: 'sgid', mode: 0o2711, uid: 0, gid: 50 },
      { path: 'tmp/', type: '5', mode: 0o1777, mtime: 4000 },
      { path: 'tmp/x', data: 'in tmp' },
      { path: 'etc/hosts', data: '127.0.0.1 localhost\n', pax: { mtime: '5000.5' } },
      { path: 'usr/lib/libx.so.1', data: 'lib', mode: 0o755, pax: { 'SCHILY.xattr.user.comment': 'hello', 'SCHILY.xattr.user.bin': Buffer.from([0, 10, 255]) } },
      { path: 'usr/lib/libx.so', type: '2', linkpath: 'libx.so.1', uid: 7, gid: 8, mtime: 6000 },
      { path: 'usr/bin/hard', type: '1', linkpath: 'usr/lib/libx.so.1' },
      { path: 'dev/null', type: '3', devmajor: 1, devminor: 3, mode: 0o666 },
      { path: 'dev/sda', type: '4', devmajor: 8, devminor: 0, mode: 0o660, gid: 6 },
      { path: 'dev/big', type: '3', devmajor: 300, devminor: 70000 },
      { path: 'run/fifo', type: '6', mode: 0o620 },
      { path: 'xdir/', type: '5', pax: { 'SCHILY.xattr.user.d': 'dirattr' }, mtime: 7000 },
    ],
    layer,
  );
  t.equal(r.entries, 15);
  const st = (p: string) => fs.lstatSync(path.join(layer, p));
  const mode = (p: string) => (st(p).mode & 0o7777).toString(8);
  t.equal(mode('bin/su'), '4755', 'setuid survives the chown to 1000');
  t.same([st('bin/su').uid, st('bin/su').gid], [1000, 1000]);
  t.equal(mode('bin/sg'), '2711');
  t.equal(st('bin/sg').gid, 50);
  t.equal(mode('tmp'), '1777', 'sticky');
  t.equal(mode('etc'), '755', 'implicit parents are 0755');
  t.equal(st('bin/su').mtimeMs, 3_000_000);
  t.equal(st('etc/hosts').mtimeMs, 5_000_500, 'fractional PAX-style mtime kept to the millisecond');
  t.equal(st('bin').mtimeMs, 2_000_000, 'directory mtime set after its contents');
  t.equal(st('tmp').mtimeMs, 4_000_000);
  t.equal(st('xdir').mtimeMs, 7_000_000);
  t.equal(st('').mtimeMs, 1_000_000, 'the "./" entry dates the layer root');
  t.equal(fs.readlinkSync(path.join(layer, 'usr/lib/libx.so')), 'libx.so.1');
  t.same([st('usr/lib/libx.so').uid, st('usr/lib/libx.so').gid], [7, 8], 'symlink owner (lchown)');
  t.equal(st('usr/lib/libx.so').mtimeMs, 6_000_000, 'symlink mtime (lutimes)');
  t.equal(st('usr/bin/hard').ino, st('usr/lib/libx.so.1').ino, 'hardlink across directories');
  t.equal(st('usr/bin/hard').nlink, 2);
  t.ok(st('dev/null').isCharacterDevice());
  t.same([devMajor(st('dev/null').rdev), devMinor(st('dev/null').rdev), mode('dev/null')], [1, 3, '666']);
  t.ok(st('dev/sda').isBlockDevice());
  t.same([devMajor(st('dev/sda').rdev), devMinor(st('dev/sda').rdev), st('dev/sda').gid], [8, 0, 6]);
  t.same([devMajor(st('dev/big').rdev), devMinor(st('dev/big').rdev)], [300, 70000], 'large major/minor numbers');
  t.ok(st('run/fifo').isFIFO());
  t.equal(mode('run/fifo'), '620');
  const lib = path.join(layer, 'usr/lib/libx.so.1');
  t.same(native().llistxattr(lib).sort(), ['user.bin', 'user.comment']);
  t.equal(native().lgetxattr(lib, 'user.comment').toString(), 'hello');
  t.same(native().lgetxattr(lib, 'user.bin'), Buffer.from([0, 10, 255]));
  t.equal(native().lgetxattr(path.join(layer, 'xdir'), 'user.d').toString(), 'dirattr');
  t.equal(fs.readFileSync(path.join(layer, 'tmp/x'), 'utf8'), 'in tmp');
});

t.test('file capabilities (security.capability) survive the chown that would clear them', { skip }, async (t) => {
  const { layer } = dirs(t);
  // vfs_cap_data revision 2, effective, permitted = CAP_NET_RAW (13)
  const cap = Buffer.alloc(20);
  cap.writeUInt32LE(0x02000001, 0);
  cap.writeUInt32LE(1 << 13, 4);
  await unpack([{ path: 'ping', data: 'ELF', mode: 0o755, uid: 1000, gid: 1000, pax: { 'SCHILY.xattr.security.capability': cap } }], layer);
  const f = path.join(layer, 'ping');
  t.same(native().lgetxattr(f, 'security.capability'), cap);
  t.equal(fs.statSync(f).uid, 1000);
});

t.test('later entries replace earlier ones as tar does', { skip }, async (t) => {
  const { layer } = dirs(t);
  await unpack(
    [
      { path: 'a', data: 'first' },
      { path: 'a', data: 'second' },
      { path: 'd/', type: '5', mode: 0o700 },
      { path: 'd/keep', data: 'k' },
      { path: 'd/', type: '5', mode: 0o750 }, // a directory over a directory merges
      { path: 'f/x', data: 'in a dir that becomes a file' },
      { path: 'f', data: 'now a file' },
      { path: 'g', data: 'a file that becomes a dir' },
      { path: 'g/', type: '5' },
      { path: 's', type: '2', linkpath: 'a' },
      { path: 's', data: 'file over symlink' },
    ],
    layer,
  );
  const read = (p: string) => fs.readFileSync(path.join(layer, p), 'utf8');
  t.equal(read('a'), 'second');
  t.equal(read('d/keep'), 'k');
  t.equal((fs.statSync(path.join(layer, 'd')).mode & 0o777).toString(8), '750');
  t.equal(read('f'), 'now a file');
  t.ok(fs.lstatSync(path.join(layer, 'g')).isDirectory());
  t.ok(fs.lstatSync(path.join(layer, 's')).isFile());
  t.equal(read('a'), 'second', 'the symlink was replaced, not written through');
});

t.test('gzip and plain blobs; zstd refused; the diff_id is checked', { skip }, async (t) => {
  const base = tmp(t);
  const raw = tar([{ path: 'hello', data: 'world'.repeat(10000) }, { path: 'random', data: randomBytes(100_000) }]);
  fs.writeFileSync(path.join(base, 'plain'), raw);
  fs.writeFileSync(path.join(base, 'gz'), zlib.gzipSync(raw));
  fs.writeFileSync(path.join(base, 'zst'), Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd]), Buffer.alloc(100)]));
  fs.writeFileSync(path.join(base, 'badgz'), zlib.gzipSync(raw).subarray(0, 50_000));
  for (const blob of ['plain', 'gz']) {
    const dest = path.join(base, `out-${blob}`);
    fs.mkdirSync(dest);
    const r = await unpackLayer(path.join(base, blob), dest, { diffId: sha256(raw) });
    t.equal(r.diffId, sha256(raw), `${blob}: diff_id of the uncompressed tar`);
    t.equal(r.bytes, raw.length);
    t.equal(fs.readFileSync(path.join(dest, 'hello'), 'utf8').length, 50000);
  }
  fs.mkdirSync(path.join(base, 'o'));
  await t.rejects(unpackLayer(path.join(base, 'zst'), path.join(base, 'o')), /zstd layers are not supported/);
  await t.rejects(unpackLayer(path.join(base, 'badgz'), path.join(base, 'o')), /malformed layer|truncated|unexpected end/i);
  await t.rejects(unpackLayer(path.join(base, 'plain'), path.join(base, 'o'), { diffId: sha256(Buffer.from('x')) }), /diff_id/);
});

t.test('a refused layer closes its blob at once (no descriptor left for GC)', { skip }, async (t) => {
  const base = tmp(t);
  const raw = tar([{ path: '../evil', data: 'x' }, { path: 'big', data: randomBytes(4 << 20) }]);
  fs.writeFileSync(path.join(base, 'blob.gz'), zlib.gzipSync(raw));
  fs.mkdirSync(path.join(base, 'o'));
  const open = () => fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`) === path.join(base, 'blob.gz');
    } catch {
      return false;
    }
  }).length;
  await t.rejects(unpackLayer(path.join(base, 'blob.gz'), path.join(base, 'o')), /path leaves the layer/);
  for (let i = 0; i < 100 && open() > 0; i++) await new Promise((r) => setImmediate(r));
  t.equal(open(), 0, 'the blob is closed');
});

t.test('copies keep times near a second boundary in their second', { skip }, async (t) => {
  const base = tmp(t);
  fs.writeFileSync(path.join(base, 'src'), 'x');
  fs.lutimesSync(path.join(base, 'src'), 1796164123.9997, 1796164123.9997);
  copyEntry(path.join(base, 'src'), path.join(base, 'dst'), fs.lstatSync(path.join(base, 'src')));
  const sec = (p: string) => Math.floor(fs.lstatSync(path.join(base, p)).mtimeMs / 1000);
  t.equal(sec('dst'), sec('src'), 'not rounded into the next second (a Date would be)');
});

t.test('absolute paths and ./ prefixes stay inside the layer', { skip }, async (t) => {
  const { layer } = dirs(t);
  await unpack([{ path: '/etc/abs', data: 'a' }, { path: './rel/./x', data: 'b' }, { path: '//double//slash', data: 'c' }], layer);
  t.equal(fs.readFileSync(path.join(layer, 'etc/abs'), 'utf8'), 'a');
  t.equal(fs.readFileSync(path.join(layer, 'rel/x'), 'utf8'), 'b');
  t.equal(fs.readFileSync(path.join(layer, 'double/slash'), 'utf8'), 'c');
});

/** The tar-slip variants: each refused naming the entry; nothing appears outside. */
const SLIPS: { name: string; entries: (outside: string) => WEntry[]; error: RegExp }[] = [
  { name: '../ component', entries: () => [{ path: '../x', data: 'x' }], error: /entry "\.\.\/x": path leaves the layer/ },
  { name: 'inner ../ component', entries: () => [{ path: 'a/../../x', data: 'x' }], error: /entry "a\/\.\.\/\.\.\/x": path leaves/ },
  {
    name: 'write through an absolute symlink',
    entries: (o) => [{ path: 'l', type: '2', linkpath: o }, { path: 'l/x', data: 'x' }],
    error: /entry "l\/x": refusing to write through the symlink "l"/,
  },
  {
    name: 'write through a relative symlink to ..',
    entries: () => [{ path: 'up', type: '2', linkpath: '../outside' }, { path: 'up/x', data: 'x' }],
    error: /entry "up\/x": refusing to write through the symlink "up"/,
  },
  {
    name: 'symlink deeper in the path',
    entries: (o) => [{ path: 'a/b', type: '2', linkpath: o }, { path: 'a/b/c/d', data: 'x' }],
    error: /refusing to write through the symlink "a\/b"/,
  },
  {
    name: 'directory entry through a symlink',
    entries: (o) => [{ path: 'l', type: '2', linkpath: o }, { path: 'l/sub/', type: '5' }],
    error: /entry "l\/sub\/": refusing to write through/,
  },
  {
    name: 'hardlink to a file outside',
    entries: () => [{ path: 'h', type: '1', linkpath: '../outside/secret' }],
    error: /entry "h": hardlink target "\.\.\/outside\/secret" leaves the layer/,
  },
  {
    name: 'hardlink through a symlink',
    entries: (o) => [{ path: 'l', type: '2', linkpath: o }, { path: 'h', type: '1', linkpath: 'l/secret' }],
    error: /entry "h": hardlink target "l\/secret" goes through a symlink/,
  },
  {
    name: 'hardlink to an absolute host path',
    entries: () => [{ path: 'h', type: '1', linkpath: '/etc/passwd' }],
    error: /entry "h": hardlink target "\/etc\/passwd" is in neither this layer nor the ones below/,
  },
  {
    name: 'whiteout through a symlink',
    entries: (o) => [{ path: 'l', type: '2', linkpath: o }, { path: 'l/.wh.secret', data: '' }],
    error: /entry "l\/.wh.secret": refusing to write through/,
  },
  {
    name: 'opaque marker through a symlink',
    entries: (o) => [{ path: 'l', type: '2', linkpath: o }, { path: 'l/.wh..wh..opq', data: '' }],
    error: /refusing to write through/,
  },
  { name: 'whiteout of ..', entries: () => [{ path: 'a/.wh...', data: '' }], error: /invalid whiteout/ },
];

for (const slip of SLIPS) {
  t.test(`tar-slip refused: ${slip.name}`, { skip }, async (t) => {
    const { layer, outside } = dirs(t);
    fs.writeFileSync(path.join(outside, 'secret'), 'host secret');
    await t.rejects(unpack(slip.entries(outside), layer), slip.error);
    t.same(fs.readdirSync(outside), ['secret'], 'nothing written outside');
    t.equal(fs.readFileSync(path.join(outside, 'secret'), 'utf8'), 'host secret');
    t.equal(fs.statSync(path.join(outside, 'secret')).nlink, 1, 'not hardlinked');
  });
}

t.test('a symlink planted by a lower layer is not written through', { skip }, async (t) => {
  const { base, outside } = dirs(t);
  const lower = path.join(base, 'lower');
  const upper = path.join(base, 'upper');
  fs.mkdirSync(lower);
  fs.mkdirSync(upper);
  await unpack([{ path: 'd', type: '2', linkpath: outside }, { path: 'ok/', type: '5' }, { path: 'ok/s', type: '2', linkpath: '/' }], lower);
  await t.rejects(unpack([{ path: 'd/x', data: 'x' }], upper, [lower]), /entry "d\/x": refusing to write through the symlink "d" of a lower layer/);
  await t.rejects(unpack([{ path: 'ok/s/etc/x', data: 'x' }], fs.mkdtempSync(path.join(base, 'u')), [lower]), /symlink "ok\/s" of a lower layer/);
  // A layer that replaces the symlink with a directory first is fine: it writes into its own directory.
  const fine = fs.mkdtempSync(path.join(base, 'u'));
  await unpack([{ path: 'd/', type: '5' }, { path: 'd/x', data: 'x' }], fine, [lower]);
  t.equal(fs.readFileSync(path.join(fine, 'd/x'), 'utf8'), 'x');
  // A symlink hidden by a whiteout in a layer above does not count.
  const mid = fs.mkdtempSync(path.join(base, 'mid'));
  await unpack([{ path: '.wh.d', data: '' }], mid, [lower]);
  const top = fs.mkdtempSync(path.join(base, 'top'));
  await unpack([{ path: 'd/x', data: 'x' }], top, [mid, lower]);
  t.equal(fs.readFileSync(path.join(top, 'd/x'), 'utf8'), 'x');
  t.same(fs.readdirSync(outside), [], 'nothing written outside');
});

t.test('a final-component symlink is replaced, never followed', { skip }, async (t) => {
  const { layer, outside } = dirs(t);
  fs.writeFileSync(path.join(outside, 'target'), 'host');
  await unpack(
    [
      { path: 'f', type: '2', linkpath: path.join(outside, 'target') },
      { path: 'f', data: 'layer' },
      { path: 'd', type: '2', linkpath: outside },
      { path: 'd', type: '3', devmajor: 1, devminor: 3 },
      { path: 'p', type: '2', linkpath: path.join(outside, 'fifo') },
      { path: 'p', type: '6' },
      { path: 'h', type: '2', linkpath: path.join(outside, 'target') },
      { path: 'h', type: '1', linkpath: 'f' },
    ],
    layer,
  );
  t.equal(fs.readFileSync(path.join(outside, 'target'), 'utf8'), 'host');
  t.same(fs.readdirSync(outside), ['target']);
  t.equal(fs.readFileSync(path.join(layer, 'h'), 'utf8'), 'layer');
});
