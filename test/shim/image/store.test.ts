/**
 * The image store without a registry: chain ids, verified blob writes,
 * index updates under the lock from many concurrent writers, lookups the
 * way docker resolves names and ids, and gc with leases.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { acquireLock } from '../../../src/shim/image/lock.js';
import { chainIds, digestOf, ImageStore, layerRecords } from '../../../src/shim/image/store.js';
import type { ImageConfig, ImageRecord } from '../../../src/shim/image/types.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-store-unit-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const freshStore = () => new ImageStore(path.join(tmp, `store-${++seq}`)).init();
const hex = (c: string) => c.repeat(64);

t.test('chain ids follow the OCI image spec', async (t) => {
  const d = [`sha256:${hex('a')}`, `sha256:${hex('b')}`, `sha256:${hex('c')}`];
  const h = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`;
  const c1 = h(`${d[0]} ${d[1]}`);
  t.same(chainIds(d), [d[0], c1, h(`${c1} ${d[2]}`)]);
  t.same(chainIds([]), []);
  const config = { architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: d.slice(0, 2) } } as ImageConfig;
  const layers = [{ digest: `sha256:${hex('1')}`, mediaType: 'x', size: 1 }, { digest: `sha256:${hex('2')}`, mediaType: 'x', size: 2 }];
  t.same(layerRecords(layers, config).map((l) => [l.diffId, l.chainId]), [[d[0], d[0]], [d[1], c1]]);
  t.throws(() => layerRecords(layers.slice(0, 1), config), { message: 'image config lists 2 diff ids for 1 layers' });
});

t.test('blobs appear only verified', async (t) => {
  const s = freshStore();
  const data = Buffer.from('hello blob');
  t.throws(() => s.putBlob(data, { digest: `sha256:${hex('0')}` }), { name: 'UserError', message: /digest mismatch: the content is sha256:/ });
  t.throws(() => s.putBlob(data, { digest: digestOf(data), size: 99 }), { message: /truncated: got 10 of 99 bytes/ });
  t.same(fs.readdirSync(s.blobDir), [], 'nothing visible');
  t.same(fs.readdirSync(s.tmpDir).filter((n) => n !== 'leases'), [], 'no temp file left');
  t.equal(s.putBlob(data), digestOf(data));
  t.ok(s.hasBlob(digestOf(data), data.length));
  t.same(s.readBlob(digestOf(data)), data);
  t.throws(() => s.blobPath('sha256:../../etc/passwd'), { message: /invalid digest/ });
  const w = s.writer({ digest: digestOf('abc'), size: 3 });
  w.write(Buffer.from('ab'));
  t.throws(() => w.write(Buffer.from('cd')), { message: /more data than the 3 bytes/ });
  w.abort();
  t.equal(fs.readdirSync(s.tmpDir).filter((n) => n !== 'leases').length, 0, 'abort removes the temp file');
});

function record(n: number, names: string[]): ImageRecord {
  const id = `sha256:${createHash('sha256').update(String(n)).digest('hex')}`;
  return { id, names, manifestDigest: id, manifestMediaType: 'm', repoDigests: [], layers: [], size: n, added: new Date(0).toISOString() };
}

t.test('concurrent index updates: none lost, names move', async (t) => {
  const s = freshStore();
  await Promise.all(Array.from({ length: 16 }, (_, i) => s.addImage(record(i, [`docker.io/library/img${i}:latest`, 'docker.io/library/shared:latest']))));
  const all = s.list();
  t.equal(all.length, 16, 'every record written');
  t.equal(all.filter((r) => r.names.includes('docker.io/library/shared:latest')).length, 1, 'a tag names one image');
  t.ok(all.every((r, i) => r.names.includes(`docker.io/library/img${i}:latest`) || all.some((x) => x.names.includes(`docker.io/library/img${i}:latest`))));
  await Promise.all(Array.from({ length: 16 }, (_, i) => s.addImage(record(i, [`docker.io/library/img${i}:v2`]))));
  t.equal(s.list().length, 16, 'adding again merges');
  t.ok(s.list().every((r) => r.names.some((n) => n.endsWith(':v2'))), 'names merged');
});

t.test('the lock excludes other processes and is released', async (t) => {
  const s = freshStore();
  const file = s.lockFile();
  const lock = await acquireLock(file);
  t.equal(spawnSync('flock', ['-n', file, 'true']).status, 1, 'another process cannot take it');
  await lock.release();
  t.equal(spawnSync('flock', ['-n', file, 'true']).status, 0, 'free after release');
  // held by another process: acquireLock waits, bounded
  // (the way acquireLock holds it: flock running cat until its stdin closes)
  const holder = spawn('flock', ['-x', file, 'sh', '-c', 'exec cat >/dev/null'], { stdio: ['pipe', 'ignore', 'ignore'] });
  t.teardown(() => void holder.kill('SIGKILL'));
  for (let i = 0; i < 100 && spawnSync('flock', ['-n', file, 'true']).status === 0; i++) await new Promise((r) => setTimeout(r, 50));
  await t.rejects(acquireLock(file, 500), { name: 'UserError', message: /timed out after 1 s waiting for the lock/ });
  // the process holding the pipe dies (a killed pull): EOF, cat and flock exit, the lock is free
  holder.stdin!.destroy();
  await new Promise((r) => holder.once('exit', r));
  const again = await acquireLock(file, 5000);
  await again.release();
  t.pass('free again once its holder died');
});

t.test('lookups: names, ids, prefixes, repo digests', async (t) => {
  const s = freshStore();
  const a = { ...record(1, ['docker.io/library/busybox:latest']), repoDigests: [`docker.io/library/busybox@sha256:${hex('d')}`] };
  const b = record(2, ['127.0.0.1:5000/x/y:1']);
  await s.addImage(a);
  await s.addImage(b);
  t.equal(s.find('busybox')?.id, a.id, 'short name, default tag');
  t.equal(s.find('docker.io/library/busybox:latest')?.id, a.id);
  t.equal(s.find('busybox:other'), undefined);
  t.equal(s.find(`busybox@sha256:${hex('d')}`)?.id, a.id, 'by repo digest');
  t.equal(s.find(a.id)?.id, a.id, 'full id');
  t.equal(s.find(a.id.slice(7, 19))?.id, a.id, 'id prefix');
  t.equal(s.find('127.0.0.1:5000/x/y:1')?.id, b.id);
  const common = [...a.id.slice(7)].findIndex((c, i) => c !== b.id[7 + i]);
  if (common > 0) t.throws(() => s.find(a.id.slice(7, 7 + common)), { message: /ambiguous/ });
  t.throws(() => s.resolve('nosuch'), { name: 'UserError', message: 'No such image: nosuch' });
});

t.test('gc: keeps what records and live leases need, removes the rest and dead processes\' leftovers', async (t) => {
  const s = freshStore();
  const kept = s.putBlob(Buffer.from('config'));
  const leased = s.putBlob(Buffer.from('in flight'));
  const garbage = s.putBlob(Buffer.from('garbage'));
  await s.addImage({ ...record(3, ['docker.io/library/k:latest']), id: kept, manifestDigest: kept });
  const lease = await s.lease([leased], [`sha256:${hex('e')}`]);
  for (const h of [hex('e'), hex('f')]) fs.mkdirSync(path.join(s.root, 'snapshots', h, 'fs'), { recursive: true });
  fs.writeFileSync(path.join(s.tmpDir, '999999999.1-blob-1-dead'), 'partial');
  fs.writeFileSync(path.join(s.leaseDir, '999999999.1-0-dead.json'), JSON.stringify({ digests: [garbage], chainIds: [] }));
  const r = await s.gc();
  t.same(r, { blobs: 1, snapshots: 1 });
  t.ok(s.hasBlob(kept) && s.hasBlob(leased), 'referenced and leased blobs kept');
  t.notOk(s.hasBlob(garbage), 'a blob only a dead process leased is removed');
  t.ok(fs.existsSync(path.join(s.root, 'snapshots', hex('e'))), 'a leased snapshot is kept');
  t.notOk(fs.existsSync(path.join(s.root, 'snapshots', hex('f'))), 'an unreferenced one is removed');
  t.notOk(fs.existsSync(path.join(s.tmpDir, '999999999.1-blob-1-dead')), 'a dead process\'s temp file is removed');
  t.same(fs.readdirSync(s.leaseDir).length, 1, 'only the live lease is left');
  lease.release();
  await s.gc();
  t.notOk(s.hasBlob(leased), 'released: collected');
});

t.test('a corrupt index is a clear error', async (t) => {
  const s = freshStore();
  fs.writeFileSync(s.indexFile, '{"oops"');
  t.throws(() => s.list(), { name: 'UserError', message: /corrupt image index/ });
});

t.test('rmi -f of an image a container uses keeps its record (hidden) until the container goes', async (t) => {
  const s = freshStore();
  const cfg = s.putBlob(Buffer.from('{"cfg":1}'));
  await s.addImage({ ...record(7, ['docker.io/library/used:latest']), id: cfg, manifestDigest: cfg });
  const cdir = path.join(s.root, 'containers', 'abc123');
  fs.mkdirSync(cdir, { recursive: true });
  fs.writeFileSync(path.join(cdir, 'container.json'), JSON.stringify({ imageId: cfg }));
  await t.rejects(s.remove('used', false), { message: /container abc123 is using its referenced image/ });
  t.same(await s.remove('used', true), ['Untagged: used:latest'], 'untagged, not deleted');
  t.equal(s.list().length, 0, 'hidden from the list');
  t.ok(s.get(cfg)?.removed, 'kept for the container');
  t.ok(s.hasBlob(cfg), 'with its blobs');
  t.same((await s.prune()).deleted, [], 'prune leaves it while the container exists');
  fs.rmSync(cdir, { recursive: true });
  await s.gc();
  t.equal(s.get(cfg), undefined, 'collected once no container uses it');
  t.notOk(s.hasBlob(cfg));
});

t.test('prune removes dangling images only', async (t) => {
  const s = freshStore();
  const a = s.putBlob(Buffer.from('a'));
  const b = s.putBlob(Buffer.from('b'));
  await s.addImage({ ...record(8, ['docker.io/library/a:latest']), id: a, manifestDigest: a });
  await s.addImage({ ...record(9, ['docker.io/library/a:latest']), id: b, manifestDigest: b }); // takes a's name
  const r = await s.prune();
  t.same(r.deleted, [a], 'the image that lost its name');
  t.equal(r.bytes, 1);
  t.same(s.list().map((x) => x.id), [b]);
});

t.test('a name moving to a newer image takes that repository\'s digest from the old one', async (t) => {
  const s = freshStore();
  const oldRec = { ...record(10, ['docker.io/library/app:latest']), repoDigests: [`docker.io/library/app@sha256:${hex('1')}`, `quay.io/x/app@sha256:${hex('2')}`] };
  await s.addImage(oldRec);
  await s.addImage({ ...record(11, ['docker.io/library/app:latest']), repoDigests: [`docker.io/library/app@sha256:${hex('3')}`] });
  const old = s.get(oldRec.id)!;
  t.same(old.names, [], 'the old image lost the name');
  t.same(old.repoDigests, [`quay.io/x/app@sha256:${hex('2')}`], 'and its digest in that repository, not others');
});

t.test('rmi of a name@digest untags that digest; the last tag of a repository takes its digests along', async (t) => {
  const s = freshStore();
  const cfg = s.putBlob(Buffer.from('{"cfg":2}'));
  const dg = `sha256:${hex('9')}`;
  const rec = { ...record(12, ['docker.io/library/a:1', 'docker.io/library/a:2']), id: cfg, manifestDigest: cfg, repoDigests: [`docker.io/library/a@${dg}`] };
  await s.addImage(rec);
  t.same(await s.remove(`a@${dg}`, false), [`Untagged: a@${dg}`]);
  t.same(s.get(cfg)?.repoDigests, [], 'the digest reference is gone');
  await s.addImage(rec);
  t.same(await s.remove('a:1', false), ['Untagged: a:1'], 'another tag of the repository is left: only this one goes');
  t.same(await s.remove('a:2', false), ['Untagged: a:2', `Untagged: a@${dg}`, `Deleted: ${cfg}`], 'the last one takes the digest and the image');
  t.equal(s.get(cfg), undefined);
});
