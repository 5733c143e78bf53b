/**
 * OCI hooks: order, the state on stdin with the status of each moment,
 * namespaces, args/env, timeouts, and the failure semantics of each kind.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Hook, Hooks } from '../../src/oci/types.js';
import { assertNothingLeaked, cleanupContainer, makeBundle, tsrun, uniqueId } from '../lib/harness.js';

if (process.getuid?.() !== 0) t.plan(0, 'end-to-end specs need root');

/** A hook script that appends "<name> <status> <mnt ns> <argv> <env>" and the raw state to a log. */
function recorder(dir: string): { hook: (name: string, extra?: Partial<Hook>) => Hook; log: string } {
  const log = path.join(dir, 'hooks.log');
  const script = path.join(dir, 'record.sh');
  fs.writeFileSync(
    script,
    `#!/bin/sh
state=$(cat)
status=$(echo "$state" | sed 's/.*"status":"\\([a-z]*\\)".*/\\1/')
echo "$1 $status $(readlink /proc/self/ns/mnt) args=$* env=\${HOOK_ENV-none}" >> ${log}
echo "$state" > ${dir}/state-$1.json
`,
    { mode: 0o755 },
  );
  return { log, hook: (name, extra = {}) => ({ path: script, args: ['record.sh', name], ...extra }) };
}

async function runWithHooks(t: Test, hooks: (rec: ReturnType<typeof recorder>) => Hooks, args = ['true']) {
  const b = await makeBundle(t);
  const rec = recorder(b.dir);
  b.write((c) => {
    c.process.args = args;
    c.root.readonly = false;
    c.hooks = hooks(rec);
  });
  const id = uniqueId('hooks');
  cleanupContainer(t, id);
  const r = await tsrun(['run', '--bundle', b.dir, id]);
  const log = fs.existsSync(rec.log) ? fs.readFileSync(rec.log, 'utf8').trim().split('\n') : [];
  return { r, log, id, dir: b.dir };
}

const hostMnt = fs.readlinkSync('/proc/self/ns/mnt');

t.test('every kind runs once, in order, with the status of its moment', async (t) => {
  const { r, log, id, dir } = await runWithHooks(t, ({ hook }) => ({
    prestart: [hook('prestart', { env: ['HOOK_ENV=set'] })],
    createRuntime: [hook('createRuntime')],
    createContainer: [hook('createContainer')],
    // Resolved and run inside the container: it writes into the container's /tmp.
    startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'cat > /dev/null; echo started > /tmp/start-hook'] }],
    poststart: [hook('poststart')],
    poststop: [hook('poststop')],
  }));
  t.equal(r.code, 0, r.stderr);
  t.strictSame(
    log.map((l) => l.split(' ').slice(0, 2).join(' ')),
    ['prestart creating', 'createRuntime creating', 'createContainer creating', 'poststart running', 'poststop stopped'],
  );
  const ns = (name: string) => log.find((l) => l.startsWith(name + ' '))!.split(' ')[2];
  t.equal(ns('createRuntime'), hostMnt, 'createRuntime runs in the runtime mount namespace');
  t.not(ns('createContainer'), hostMnt, "createContainer runs in the container's mount namespace");
  t.match(log[0], /args=prestart env=set$/, 'args and env are the hook’s own');
  t.match(log[1], /env=none$/, 'no environment leaks into a hook without env');
  const state = JSON.parse(fs.readFileSync(path.join(dir, 'state-createRuntime.json'), 'utf8'));
  t.equal(state.id, id);
  t.ok(state.pid > 0, 'state carries the init pid');
  t.equal(state.bundle, dir);
  t.equal(fs.readFileSync(path.join(dir, 'rootfs/tmp/start-hook'), 'utf8'), 'started\n', 'startContainer ran in the container');
});

t.test('a failing createRuntime hook fails create and leaves nothing', async (t) => {
  const { r, id } = await runWithHooks(t, () => ({
    createRuntime: [{ path: '/bin/sh', args: ['sh', '-c', 'echo it broke >&2; exit 3'] }],
  }));
  t.equal(r.code, 1);
  t.equal(r.stderr.trim().split('\n').pop(), `tsrun: run ${id}: createRuntime hook #0 (/bin/sh): exit status 3: it broke`);
  await assertNothingLeaked(t, id);
});

t.test('a failing createContainer hook fails create', async (t) => {
  const { r, id } = await runWithHooks(t, () => ({ createContainer: [{ path: '/bin/false' }] }));
  t.equal(r.code, 1);
  t.match(r.stderr, `createContainer hook #0 (/bin/false): exit status 1`);
  await assertNothingLeaked(t, id);
});

t.test('a hook past its timeout is killed and fails the operation', async (t) => {
  const { r, id } = await runWithHooks(t, () => ({ startContainer: [{ path: '/bin/sleep', args: ['sleep', '30'], timeout: 1 }] }));
  t.equal(r.code, 1);
  t.match(r.stderr, 'startContainer hook #0 (/bin/sleep): timed out after 1s');
  t.ok(r.ms < 10_000, 'did not wait for the hook to finish');
  await assertNothingLeaked(t, id);
});

t.test('failing poststart and poststop hooks are warnings', async (t) => {
  const { r, log } = await runWithHooks(
    t,
    ({ hook }) => ({ poststart: [{ path: '/bin/false' }, hook('poststart2')], poststop: [{ path: '/bin/false' }] }),
    ['sh', '-c', 'exit 5'],
  );
  t.equal(r.code, 5, 'the container ran and its status came through');
  t.match(r.stderr, 'warning: poststart hook #0 (/bin/false): exit status 1');
  t.match(r.stderr, 'warning: poststop hook #0 (/bin/false): exit status 1');
  t.notOk(log.some((l) => l.startsWith('poststart2')), 'the first failing poststart hook stops the rest of that kind');
});

t.test('create/start/delete run the hooks at their moments', async (t) => {
  const b = await makeBundle(t);
  const rec = recorder(b.dir);
  b.write((c) => {
    c.process.args = ['sleep', '60'];
    c.hooks = { createRuntime: [rec.hook('createRuntime')], poststart: [rec.hook('poststart')], poststop: [rec.hook('poststop')] };
  });
  const id = uniqueId('hooks');
  cleanupContainer(t, id);
  const read = () => (fs.existsSync(rec.log) ? fs.readFileSync(rec.log, 'utf8').trim().split('\n').map((l) => l.split(' ')[0]) : []);
  t.equal((await tsrun(['create', '--bundle', b.dir, id], { stdout: 'ignore' })).code, 0);
  t.strictSame(read(), ['createRuntime'], 'after create');
  t.equal((await tsrun(['start', id])).code, 0);
  t.strictSame(read(), ['createRuntime', 'poststart'], 'after start');
  t.equal((await tsrun(['delete', '--force', id])).code, 0);
  t.strictSame(read(), ['createRuntime', 'poststart', 'poststop'], 'after delete');
});
