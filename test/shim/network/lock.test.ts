/** The network lock: mutual exclusion, a dead holder's lock broken, a live holder waited for (bounded). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { procStat } from '../../../src/lifecycle/proc.js';
import { withLock } from '../../../src/shim/network/lock.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-netlock-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('holders never overlap', async (t) => {
  const dir = path.join(tmp, 'a');
  let inside = 0;
  let max = 0;
  await Promise.all(
    Array.from({ length: 8 }, () =>
      withLock(dir, async () => {
        max = Math.max(max, ++inside);
        await sleep(5);
        inside--;
      }),
    ),
  );
  t.equal(max, 1);
  t.notOk(fs.existsSync(path.join(dir, 'lock')), 'released');
});

t.test("a dead holder's lock is broken", async (t) => {
  const dir = path.join(tmp, 'b');
  fs.mkdirSync(dir);
  // pid 1's identity with a start time it does not have: not alive as that holder
  fs.writeFileSync(path.join(dir, 'lock'), '1 999999999999\n');
  t.equal(await withLock(dir, async () => 'ran', 5000), 'ran');
});

t.test('a live holder is waited for, then a clear error', async (t) => {
  const dir = path.join(tmp, 'c');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'lock'), `${process.pid} ${procStat(process.pid)!.startTime}\n`);
  await t.rejects(withLock(dir, async () => 'ran', 300), { message: new RegExp(`timed out waiting for the network lock .* \\(held by pid ${process.pid}\\)`) });
  fs.rmSync(path.join(dir, 'lock'));
  t.equal(await withLock(dir, async () => 'ran', 300), 'ran', 'free again');
});
