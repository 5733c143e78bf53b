/**
 * The archive side of load/save without a store: the tar indexer reads what
 * GNU tar writes in every format (long names as GNU 'L' records, pax
 * headers, ustar prefixes), links resolve inside the archive only, and the
 * headers save writes read back.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { indexTar } from '../../../src/shim/image/load.js';
import { tarHeader } from '../../../src/shim/image/save.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-archive-unit-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const long = `${'d'.repeat(60)}/${'e'.repeat(60)}/${'f'.repeat(70)}.json`;

function tree(): string {
  const src = path.join(tmp, 'src');
  fs.mkdirSync(path.join(src, path.dirname(long)), { recursive: true });
  fs.writeFileSync(path.join(src, long), 'long name\n');
  fs.writeFileSync(path.join(src, 'manifest.json'), '[]\n');
  fs.mkdirSync(path.join(src, 'layer'));
  fs.writeFileSync(path.join(src, 'layer', 'layer.tar'), Buffer.alloc(5000, 1));
  fs.mkdirSync(path.join(src, 'dup'));
  fs.symlinkSync('../layer/layer.tar', path.join(src, 'dup', 'layer.tar'));
  fs.symlinkSync('/etc/passwd', path.join(src, 'escape'));
  return src;
}

const src = tree();
for (const format of ['gnu', 'pax', 'ustar']) {
  t.test(`GNU tar --format=${format}`, async (t) => {
    const file = path.join(tmp, `${format}.tar`);
    const names = format === 'ustar' ? ['manifest.json', 'layer', 'dup', 'escape', long.split('/')[0]!] : ['.'];
    execFileSync('tar', [`--format=${format}`, '-C', src, '-cf', file, ...names]);
    const m = indexTar(file);
    const body = (name: string) => {
      const e = m.get(name)!;
      const fd = fs.openSync(file, 'r');
      const b = Buffer.alloc(e.size);
      fs.readSync(fd, b, 0, e.size, e.offset);
      fs.closeSync(fd);
      return b.toString();
    };
    t.equal(body('manifest.json'), '[]\n', 'a short name, "./" stripped');
    t.equal(body(long), 'long name\n', 'a name longer than 100 bytes');
    t.equal(m.get('layer/layer.tar')?.size, 5000);
    t.equal(m.get('dup/layer.tar')?.type, '2', 'a symlink is a link, not a file');
    t.equal(m.get('dup/layer.tar')?.linkname, '../layer/layer.tar');
    t.equal(m.get('escape')?.linkname, '/etc/passwd', 'recorded, only ever resolved inside the archive');
  });
}

t.test('save\'s headers read back, long names through the ustar prefix', async (t) => {
  const file = path.join(tmp, 'ours.tar');
  const data = Buffer.from('x'.repeat(700));
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  fs.writeFileSync(file, Buffer.concat([tarHeader('dir/', 0, 'dir'), tarHeader(long, data.length), data, pad, Buffer.alloc(1024)]));
  const m = indexTar(file);
  t.equal(m.get('dir')?.type, '5');
  t.equal(m.get(long)?.size, 700);
  const listed = execFileSync('tar', ['-tvf', file], { encoding: 'utf8' });
  t.match(listed, new RegExp(`${long.replace(/\./g, '\\.')}\\n`), 'GNU tar reads it too');
  t.throws(() => tarHeader(`${'z'.repeat(300)}`, 1), /name too long/);
});

t.test('not a tar, or cut short: clear errors', async (t) => {
  const junk = path.join(tmp, 'junk');
  fs.writeFileSync(junk, Buffer.alloc(1024, 0x41));
  t.throws(() => indexTar(junk), { name: 'UserError', message: /not a tar archive \(bad header checksum at offset 0\)/ });
  const full = path.join(tmp, 'gnu.tar');
  const cut = path.join(tmp, 'cut.tar');
  const layer = indexTar(full).get('layer/layer.tar')!;
  fs.writeFileSync(cut, fs.readFileSync(full).subarray(0, layer.offset + 100));
  t.throws(() => indexTar(cut), { name: 'UserError', message: /truncated tar archive/ }, 'cut inside a member');
  fs.writeFileSync(cut, fs.readFileSync(full).subarray(0, layer.offset - 300));
  t.throws(() => indexTar(cut), { name: 'UserError', message: /truncated tar archive/ }, 'cut inside a header');
});
