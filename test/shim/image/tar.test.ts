// The streaming tar reader: every header form an image layer uses, bodies
// split across arbitrary chunk boundaries, and clear errors on the rest.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { type TarHeader, readTar } from '../../../src/shim/image/tar.js';
import { type WEntry, chunks, tar } from './tar-writer.js';

async function read(b: Buffer, chunk = 7000): Promise<{ h: TarHeader; data: string }[]> {
  const out: { h: TarHeader; data: string }[] = [];
  for await (const e of readTar(chunks(b, chunk))) {
    const parts: Buffer[] = [];
    for await (const c of e.body) parts.push(c);
    out.push({ h: e.header, data: Buffer.concat(parts).toString() });
  }
  return out;
}

t.test('ustar: types, modes, owners, devices, prefix field', async (t) => {
  const long = `${'d'.repeat(120)}/file`;
  const b = tar([
    { path: 'dir/', type: '5', mode: 0o1777, uid: 5, gid: 6 },
    { path: 'dir/f', data: 'hello', mode: 0o4755, mtime: 1234567890 },
    { path: 'l', type: '2', linkpath: 'dir/f' },
    { path: 'h', type: '1', linkpath: 'dir/f' },
    { path: 'c', type: '3', devmajor: 1, devminor: 3 },
    { path: 'b', type: '4', devmajor: 8, devminor: 1 },
    { path: 'p', type: '6' },
  ]);
  // A name over 100 bytes in ustar form: prefix + name (the writer does not split; patch one in).
  const withPrefix = tar([{ path: 'file', data: 'x' }]);
  withPrefix.write(long.slice(0, 120), 345, 155, 'utf8');
  fixChecksum(withPrefix.subarray(0, 512));
  for (const size of [1, 511, 512, 7000, 1 << 20]) {
    const es = await read(b, size);
    t.same(
      es.map((e) => [e.h.path, e.h.type, e.h.mode.toString(8), e.h.uid, e.h.gid, e.h.linkpath, e.h.devmajor, e.h.devminor, e.data]),
      [
        ['dir/', 'dir', '1777', 5, 6, '', 0, 0, ''],
        ['dir/f', 'file', '4755', 0, 0, '', 0, 0, 'hello'],
        ['l', 'symlink', '644', 0, 0, 'dir/f', 0, 0, ''],
        ['h', 'hardlink', '644', 0, 0, 'dir/f', 0, 0, ''],
        ['c', 'char', '644', 0, 0, '', 1, 3, ''],
        ['b', 'block', '644', 0, 0, '', 8, 1, ''],
        ['p', 'fifo', '644', 0, 0, '', 0, 0, ''],
      ],
      `chunks of ${size}`,
    );
  }
  t.equal((await read(b))[1].h.mtime, 1234567890);
  t.equal((await read(withPrefix))[0].h.path, `${long.slice(0, 120)}/file`);
});

function fixChecksum(h: Buffer): void {
  h.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of h) sum += c;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
}

t.test('GNU long names and long link targets', async (t) => {
  const name = `${'a'.repeat(150)}/${'b'.repeat(150)}`;
  const target = `/${'t'.repeat(300)}`;
  const es = await read(tar([
    { path: name, data: 'x', gnuLong: true },
    { path: `${name}-link`, type: '2', linkpath: target, gnuLong: true },
    { path: 'short', data: 'y' },
  ]), 100);
  t.same(es.map((e) => [e.h.path, e.h.linkpath, e.data]), [
    [name, '', 'x'],
    [`${name}-link`, target, ''],
    ['short', '', 'y'],
  ]);
});

t.test('PAX: path, linkpath, size, uid, gid, mtime, xattrs; global headers', async (t) => {
  const binary = Buffer.from([0, 1, 2, 0x0a, 0xff, 0x3d]);
  const big = 'z'.repeat(3000);
  const es = await read(tar([
    {
      path: 'ignored',
      data: big,
      pax: {
        path: `ü/${'p'.repeat(200)}`,
        uid: '3000000000',
        gid: '4000000000',
        mtime: '1700000000.123456789',
        'SCHILY.xattr.user.bin': binary,
        'SCHILY.xattr.security.capability': Buffer.from([1, 0, 0, 2]),
        'LIBARCHIVE.xattr.user.la%20b': Buffer.from('aGk=', 'latin1'),
        comment: 'ignored key',
      },
    },
    { path: 'l', type: '2', linkpath: 'short', pax: { linkpath: `${'q'.repeat(200)}` } },
    { path: 'next', data: 'n' },
  ]));
  t.equal(es[0].h.path, `ü/${'p'.repeat(200)}`);
  t.equal(es[0].h.uid, 3000000000);
  t.equal(es[0].h.gid, 4000000000);
  t.equal(es[0].h.mtime, 1700000000.123456789);
  t.equal(es[0].data, big);
  t.same([...es[0].h.xattrs.keys()], ['user.bin', 'security.capability', 'user.la b']);
  t.same(es[0].h.xattrs.get('user.bin'), binary, 'binary xattr value with newline and = intact');
  t.same(es[0].h.xattrs.get('user.la b'), Buffer.from('hi'));
  t.equal(es[1].h.linkpath, 'q'.repeat(200));
  t.same([es[2].h.path, es[2].h.xattrs.size, es[2].h.uid], ['next', 0, 0], 'a PAX header applies to one entry');

  // PAX size overrides the header's (for files over 8 GiB: here a small one).
  const sized = tar([{ path: 'f', data: 'abcdef', pax: { size: '6' } }]);
  sized.write('00000000000\0', 512 + 512 + 124, 'latin1'); // header size field says 0
  fixChecksum(sized.subarray(1024, 1536));
  t.equal((await read(sized))[0].data, 'abcdef');

  // A global header (g) applies to every later entry, overridden by x.
  const g = tar([{ path: 'a', data: '1' }, { path: 'b', data: '2', pax: { uid: '7' } }]);
  const gh = tar([{ path: 'g', data: '' }]).subarray(0, 512);
  const rec = Buffer.from('15 uid=4242424\n');
  const gHeader = Buffer.from(gh);
  gHeader.write('g', 156, 'latin1');
  gHeader.write('00000000017\0', 124, 'latin1');
  fixChecksum(gHeader);
  const withGlobal = Buffer.concat([gHeader, rec, Buffer.alloc(512 - rec.length), g]);
  t.same((await read(withGlobal)).map((e) => [e.h.path, e.h.uid]), [['a', 4242424], ['b', 7]]);
});

t.test('base-256 numbers (GNU), as for owners over 2^21', async (t) => {
  const b = tar([{ path: 'f', data: 'x' }]);
  b[108] = 0x80;
  b.fill(0, 109, 116);
  b.writeUInt32BE(70000000, 112);
  fixChecksum(b.subarray(0, 512));
  t.equal((await read(b))[0].h.uid, 70000000);
});

t.test('what GNU tar writes (gnu, posix, ustar formats) is read', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-tar-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'sub'), { recursive: true });
  const longName = `${'n'.repeat(90)}/${'m'.repeat(90)}`;
  fs.mkdirSync(path.join(src, 'n'.repeat(90)));
  fs.writeFileSync(path.join(src, longName), 'long');
  fs.writeFileSync(path.join(src, 'sub', 'big'), Buffer.alloc(100_000, 7));
  fs.symlinkSync('sub/big', path.join(src, 'link'));
  fs.linkSync(path.join(src, 'sub', 'big'), path.join(src, 'hard'));
  for (const format of ['gnu', 'posix', 'ustar']) {
    const out = path.join(dir, `${format}.tar`);
    execFileSync('tar', [`--format=${format}`, '--sort=name', '-C', src, '-cf', out, '.']);
    const es = await read(fs.readFileSync(out), 4096);
    const byName = new Map(es.map((e) => [e.h.path.replace(/^\.\//, ''), e]));
    t.equal(byName.get(longName)?.data, 'long', `${format}: long name`);
    t.equal(byName.get('hard')?.data.length, 100_000, `${format}: big file (the first of a hardlinked pair)`);
    t.equal(byName.get('link')?.h.linkpath, 'sub/big', `${format}: symlink`);
    t.same([byName.get('sub/big')?.h.type, byName.get('sub/big')?.h.linkpath.replace(/^\.\//, '')], ['hardlink', 'hard'], `${format}: hardlink`);
  }
});

t.test('refused: bad checksum, truncation, sparse and unknown types, bad numbers', async (t) => {
  const good = tar([{ path: 'f', data: 'x'.repeat(1000) }]);
  const bad = Buffer.from(good);
  bad[0] ^= 1;
  await t.rejects(read(bad), /invalid header checksum/);
  await t.rejects(read(good.subarray(0, 700)), /f: truncated archive/);
  await t.rejects(read(good.subarray(0, 300)), /truncated archive/);
  await t.rejects(read(tar([{ path: 's', type: 'S' }])), /s: sparse files are not supported/);
  await t.rejects(read(tar([{ path: 'v', type: 'V' }])), /volume headers/);
  await t.rejects(read(tar([{ path: 'q', type: 'Q' }])), /q: entry type "Q" is not supported/);
  await t.rejects(read(tar([{ path: 'p', data: '', pax: { 'GNU.sparse.map': '0,1' } }])), /sparse/);
  await t.rejects(read(tar([{ path: 'p', data: '', pax: { uid: 'abc' } }])), /invalid PAX uid/);
  const badPax = tar([{ path: 'p', data: '', pax: { path: 'x' } }]);
  badPax.write('99', 512, 'latin1');
  await t.rejects(read(badPax), /malformed PAX record/);
  // A name that is not UTF-8 (latin1 "é") would be created under another name.
  const latin1 = tar([{ path: 'caf_', data: '' }]);
  latin1[3] = 0xe9;
  fixChecksum(latin1.subarray(0, 512));
  await t.rejects(read(latin1), /the name is not valid UTF-8/);
  await t.rejects(read(tar([{ path: 'x', data: '', pax: { path: Buffer.from([0x61, 0xff]) } }])), /the PAX path is not valid UTF-8/);
  const badMode = tar([{ path: 'f', data: '' }]);
  badMode.write('0009', 100, 'latin1');
  fixChecksum(badMode.subarray(0, 512));
  await t.rejects(read(badMode), /f: invalid mode field/);
});

t.test('an archive without end blocks ends at a header boundary; trailing data is consumed', async (t) => {
  const b = tar([{ path: 'a', data: 'x' }]);
  t.same((await read(b.subarray(0, 1024))).map((e) => e.h.path), ['a']);
  let seen = 0;
  const src = (async function* () {
    for await (const c of chunks(Buffer.concat([b, Buffer.alloc(10240)]), 1000)) {
      seen += c.length;
      yield c;
    }
  })();
  for await (const e of readTar(src)) void e;
  t.equal(seen, b.length + 10240, 'the whole stream was read (for the diff_id hash)');
});

t.test('a body left unread is skipped', async (t) => {
  const entries: WEntry[] = [{ path: 'a', data: 'a'.repeat(5000) }, { path: 'b', data: 'bb' }];
  const names: string[] = [];
  let last = '';
  for await (const e of readTar(chunks(tar(entries), 333))) {
    names.push(e.header.path);
    if (e.header.path === 'b') for await (const c of e.body) last += c.toString();
  }
  t.same(names, ['a', 'b']);
  t.equal(last, 'bb');
});
