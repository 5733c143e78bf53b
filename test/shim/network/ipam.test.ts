/**
 * Address management: subnets, the lowest free address, release, and that
 * concurrent allocations (separate processes on the same lease directory)
 * never hand out one address twice.
 */
import { fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { allocate, contains, gatewayOf, leases, overlaps, parseSubnet, release } from '../../../src/shim/network/ipam.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-ipam-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(tmp, `leases-${++n}`);

t.test('subnets', async (t) => {
  const s = parseSubnet('172.31.0.0/16');
  t.equal(gatewayOf(s), '172.31.0.1');
  t.ok(contains(s, '172.31.255.254'));
  t.notOk(contains(s, '172.32.0.1'));
  t.ok(overlaps(s, parseSubnet('172.31.5.0/24')));
  t.ok(overlaps(parseSubnet('172.0.0.0/8'), s));
  t.notOk(overlaps(s, parseSubnet('172.30.0.0/16')));
  t.throws(() => parseSubnet('172.31.0.1/16'), /host bits are set \(did you mean 172\.31\.0\.0\/16\?\)/);
  t.throws(() => parseSubnet('172.31.0.0'), /expected a\.b\.c\.d\/N/);
  t.throws(() => parseSubnet('10.0.0.0/31'), /prefix length must be 8-30/);
  t.throws(() => parseSubnet('10.0.300.0/24'), /invalid IPv4 address/);
});

t.test('lowest free address, gateway and broadcast never given, released addresses reused', async (t) => {
  const dir = fresh();
  const s = parseSubnet('10.9.0.0/29'); // .1 gateway, .2-.6 hosts, .7 broadcast
  const got = ['a', 'b', 'c', 'd', 'e'].map((c) => allocate(dir, s, c));
  t.same(got, ['10.9.0.2', '10.9.0.3', '10.9.0.4', '10.9.0.5', '10.9.0.6']);
  t.throws(() => allocate(dir, s, 'f'), /no free address left in 10\.9\.0\.0\/29/);
  release(dir, '10.9.0.4', 'c');
  t.equal(allocate(dir, s, 'f'), '10.9.0.4');
  release(dir, '10.9.0.5', 'not-the-owner');
  t.equal(leases(dir).get('10.9.0.5'), 'd', 'a lease is released only by its owner');
  release(dir, '10.9.0.9', 'x'); // absent: fine
  t.equal(leases(dir).size, 5);
});

t.test('concurrent allocations from separate processes never collide', async (t) => {
  const dir = fresh();
  const procs = 4;
  const each = 40;
  const go = path.join(tmp, `go-${n}`);
  const worker = path.join(__dirname, 'fixtures', 'allocate-worker.ts');
  let ready = 0;
  const results = Promise.all(
    Array.from({ length: procs }, (_, i) =>
      new Promise<string[]>((resolve, reject) => {
        const c = fork(worker, [dir, `w${i}`, String(each), go], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
        // all loaded before any allocates: they race on the same addresses
        c.on('message', () => {
          if (++ready === procs) fs.writeFileSync(go, '');
        });
        let out = '';
        c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
        const timer = setTimeout(() => c.kill('SIGKILL'), 60_000);
        c.on('exit', (code) => {
          clearTimeout(timer);
          if (code === 0) resolve(out.trim().split('\n'));
          else reject(new Error(`worker ${i} exited ${code}`));
        });
      }),
    ),
  );
  const all = (await results).flat();
  t.equal(all.length, procs * each);
  t.equal(new Set(all).size, all.length, 'every address handed out once');
  t.equal(leases(dir).size, all.length, 'one lease file each');
});
