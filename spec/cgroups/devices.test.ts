/**
 * Device rules are enforced: devices.allow/deny on v1, the BPF_CGROUP_DEVICE
 * program on v2. The container may mknod anything (runc's default "m"
 * rules) but opens only what is allowed: /dev/null yes; a node for 1:2
 * (unused minor of the mem driver) fails with EPERM when the device cgroup
 * denies it and with ENXIO when it is allowed and reaches the driver.
 * On a hybrid host the BPF program is also loaded into a cgroup2 directory
 * directly, so the compiler and the addon are tested here too.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { containerRules, DEVICE_FILTER_LICENSE, deviceFilterProgram, encodeProgram } from '../../src/cgroups/devices.js';
import { native } from '../../src/native.js';
import { assertNothingLeaked, cleanupContainer, leakCheck, makeBundle, tsrun, uniqueId } from '../lib/harness.js';
import { within } from '../runtime/core-lib.js';
import { addCaps, isV2, layout, ms, skip, withResources } from './lib.js';

// In the container's /dev (a tmpfs the runtime mounts without nodev; a bundle under /tmp may be on a nodev mount).
const PROBE = 'mknod /dev/probe c 1 2 && (cat /dev/probe; echo "d=$?"); echo x > /dev/null && echo null-ok';

async function probe(t: Test, extra: { allow: boolean; type?: string; major?: number; minor?: number; access?: string }[]) {
  const b = await makeBundle(t, (c) => {
    c.root.readonly = false; // the container writes to /tmp
    c.process.args = ['sh', '-c', PROBE];
    addCaps(c, 'CAP_MKNOD');
    withResources(c, { devices: [{ allow: false, access: 'rwm' }, ...extra] });
  });
  const id = uniqueId('cg-dev');
  cleanupContainer(t, id);
  const r = await tsrun(['run', '--bundle', b.dir, id], { timeoutMs: ms(30_000) });
  return { ...r, id };
}

t.test('a denied device cannot be opened; an allowed one can', { skip }, async (t) => {
  leakCheck(t);
  const denied = await probe(t, []);
  t.equal(denied.code, 0, denied.stderr);
  t.match(denied.stderr, /Operation not permitted/, `denied by the device cgroup (${isV2 ? 'BPF' : 'devices.deny'})`);
  t.match(denied.stdout, /null-ok/, '/dev/null is allowed');
  await assertNothingLeaked(t, denied.id);

  const allowed = await probe(t, [{ allow: true, type: 'c', major: 1, minor: 2, access: 'rw' }]);
  t.equal(allowed.code, 0, allowed.stderr);
  t.notMatch(allowed.stderr, /Operation not permitted/, 'not refused by the device cgroup');
  t.match(allowed.stderr, /No such device or address/, 'the open reached the driver (ENXIO)');
  await assertNothingLeaked(t, allowed.id);

  const readOnly = await probe(t, [{ allow: true, type: 'c', major: 1, minor: 2, access: 'w' }]);
  t.match(readOnly.stderr, /Operation not permitted/, 'write-only rule: reading is still denied');
  await assertNothingLeaked(t, readOnly.id);
});

// The loader itself, on any host that has a cgroup2 mount (on hybrid ones, /sys/fs/cgroup/unified).
const unified = layout?.unified;
t.test('BPF device filter loaded into a cgroup2 directory', { skip: skip || (!unified && 'no cgroup2 mount') }, async (t) => {
  // On pure v2 a process must sit in a leaf; make a parent/leaf pair under our own cgroup's parent.
  const dir = path.join(unified!, `tsrun-test-bpf-${process.pid}-${randomBytes(3).toString('hex')}`);
  fs.mkdirSync(dir);
  const child = spawn('sh', ['-c', 'read go; head -c 1 /dev/zero >/dev/null 2>&1 && echo zero-ok || echo zero-denied; echo >/dev/null && echo null-ok'], {
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  t.teardown(() => {
    try {
      child.kill('SIGKILL');
    } catch {
      /* gone */
    }
    for (let i = 0; i < 100; i++) {
      try {
        fs.rmdirSync(dir);
        return;
      } catch {
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
      }
    }
  });
  const prog = encodeProgram(deviceFilterProgram(containerRules([{ allow: false, access: 'rwm' }], [])
    .filter((r) => !(r.major === 1 && r.minor === 5))));
  native().attachDeviceFilter(dir, prog, DEVICE_FILTER_LICENSE);
  fs.writeFileSync(path.join(dir, 'cgroup.procs'), String(child.pid));
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise((res) => child.once('exit', res));
  child.stdin!.end('go\n');
  await within(done, ms(10_000), undefined);
  t.match(out, /zero-denied/, '/dev/zero (not in the rules) is denied');
  t.match(out, /null-ok/, '/dev/null is allowed');
  t.throws(() => native().attachDeviceFilter('/nonexistent-cgroup', prog, DEVICE_FILTER_LICENSE), /open \/nonexistent-cgroup: No such file or directory/);
});
