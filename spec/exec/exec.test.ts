/**
 * tsrun exec: the new process joins every namespace and the cgroup of a
 * running container, gets its own identity, and passes its status through.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { assertNothingLeaked, cleanupContainer, makeBundle, tsrun, uniqueId } from '../lib/harness.js';

if (process.getuid?.() !== 0) t.plan(0, 'end-to-end specs need root');

/** A running container (sleep) to exec into; deleted at teardown. */
async function running(t: Test, mutate?: Parameters<typeof makeBundle>[1]) {
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '120'];
    mutate?.(c);
  });
  const id = uniqueId('exec');
  cleanupContainer(t, id);
  const r = await tsrun(['run', '-d', '--bundle', b.dir, id], { stdout: 'ignore', stderr: 'pipe' });
  t.equal(r.code, 0, `run -d ${id}: ${r.stderr}`);
  const state = JSON.parse((await tsrun(['state', id])).stdout);
  return { id, bundle: b, initPid: state.pid as number };
}

t.test('exec joins every namespace of the container', async (t) => {
  const { id, initPid } = await running(t);
  const r = await tsrun(['exec', id, 'sh', '-c', 'for n in pid net ipc uts mnt; do readlink /proc/self/ns/$n; done; echo pid=$$']);
  t.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  ['pid', 'net', 'ipc', 'uts', 'mnt'].forEach((n, i) => {
    t.equal(lines[i], fs.readlinkSync(`/proc/${initPid}/ns/${n}`), `${n} namespace is the container's`);
  });
  t.not(lines[4], fs.readlinkSync('/proc/self/ns/mnt'), 'not the host mount namespace');
  t.match(lines[5], /^pid=\d+$/, 'a pid inside the container pid namespace');
  t.not(lines[5], 'pid=1', 'not the init');
});

t.test("exec joins the container's cgroup namespace, after its cgroup", async (t) => {
  // Joined by the process itself once placed (src/plan/namespaces.ts
  // cgroupnsJoinOps): its cgroups are the namespace root, as for the init.
  const { id, initPid } = await running(t, (c) => {
    if (!c.linux.namespaces.some((n) => n.type === 'cgroup')) c.linux.namespaces.push({ type: 'cgroup' });
  });
  const r = await tsrun(['exec', id, 'sh', '-c', 'readlink /proc/self/ns/cgroup; cat /proc/self/cgroup']);
  t.equal(r.code, 0, r.stderr);
  const [ns, ...cgroups] = r.stdout.trim().split('\n');
  t.equal(ns, fs.readlinkSync(`/proc/${initPid}/ns/cgroup`), "the init's cgroup namespace");
  t.not(ns, fs.readlinkSync('/proc/self/ns/cgroup'), "not the host's");
  t.ok(cgroups.length > 0, 'it reads /proc/self/cgroup');
  for (const l of cgroups) t.match(l, /^\d+:[^:]*:\/$/, `"${l}": at the namespace root, so in the container's cgroup`);
});

t.test('exit status, signals, stdin', async (t) => {
  const { id } = await running(t);
  t.equal((await tsrun(['exec', id, 'sh', '-c', 'exit 7'])).code, 7, 'exit code passed through');
  t.equal((await tsrun(['exec', id, 'sh', '-c', 'kill -9 $$'])).code, 137, 'killed by SIGKILL → 137');
  const cat = await tsrun(['exec', id, 'cat'], { input: 'piped in' });
  t.equal(cat.stdout, 'piped in', 'stdin reaches the process');
});

t.test('user, env, cwd, groups, caps, no_new_privs', async (t) => {
  const { id } = await running(t);
  const r = await tsrun([
    'exec', '-u', '1000:1001', '-g', '2000', '-e', 'FOO=bar', '--cwd', '/tmp', id,
    'sh', '-c', 'id -u; id -g; id -G; echo $FOO; pwd; grep NoNewPrivs /proc/self/status',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.strictSame(r.stdout.trim().split('\n'), ['1000', '1001', '1001 2000', 'bar', '/tmp', 'NoNewPrivs:\t1']);
  const caps = await tsrun(['exec', '--cap', 'CAP_NET_RAW', id, 'grep', 'CapBnd', '/proc/self/status']);
  // default set 0x20000420 plus CAP_NET_RAW (13)
  t.equal(caps.stdout.trim(), 'CapBnd:\t0000000020002420', '--cap adds to the bounding set');
});

t.test('the exec process is in the container cgroup and has no host descriptor', async (t) => {
  const { id, initPid } = await running(t);
  const r = await tsrun(['exec', '-d', '--pid-file', path.join(os.tmpdir(), `${id}.pid`), id, 'sleep', '30']);
  t.equal(r.code, 0, r.stderr);
  const pid = Number(fs.readFileSync(path.join(os.tmpdir(), `${id}.pid`), 'utf8'));
  fs.rmSync(path.join(os.tmpdir(), `${id}.pid`));
  t.ok(pid > 0, '--pid-file has the host pid');
  t.equal(fs.readFileSync(`/proc/${pid}/cgroup`, 'utf8'), fs.readFileSync(`/proc/${initPid}/cgroup`, 'utf8'), 'same cgroups as the init');
  const fds = fs.readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  t.strictSame(fds, [0, 1, 2], 'only stdio');
  const ls = await tsrun(['exec', id, 'sh', '-c', 'ls /proc/self/fd | wc -l']);
  t.equal(ls.stdout.trim(), '4', 'inside: 0 1 2 and ls own directory fd');
});

t.test('--process process.json', async (t) => {
  const { id, bundle } = await running(t);
  const proc = { ...bundle.config.process, args: ['sh', '-c', 'echo from-json $X; id -u'], env: ['X=1', 'PATH=/bin'], user: { uid: 42, gid: 42 } };
  const file = path.join(bundle.dir, 'process.json');
  fs.writeFileSync(file, JSON.stringify(proc));
  const r = await tsrun(['exec', '--process', file, id]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'from-json 1\n42\n');
  fs.writeFileSync(file, JSON.stringify({ ...proc, cwd: 'relative' }));
  const bad = await tsrun(['exec', '--process', file, id]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /^tsrun: exec \S+: .*process\.json: cwd: /);
});

t.test('errors: one line, non-zero, nothing left behind', async (t) => {
  const { id } = await running(t);
  const nf = await tsrun(['exec', id, 'no-such-binary']);
  t.equal(nf.code, 1);
  t.equal(nf.stderr, `tsrun: exec ${id}: exec: "no-such-binary": executable file not found in $PATH\n`);
  const missing = await tsrun(['exec', 'no-such-container', 'true']);
  t.match(missing.stderr, /does not exist/);
  const apparmor = await tsrun(['exec', '--apparmor', 'x', id, 'true']);
  // This kernel has no AppArmor: the profile is refused, naming the field, never ignored.
  if (!fs.existsSync('/sys/module/apparmor')) t.match(apparmor.stderr, /process\.apparmorProfile: AppArmor is not enabled on this kernel/);
  const tty = await tsrun(['exec', '-t', '-d', id, 'true']);
  t.match(tty.stderr, /no --console-socket/, 'a detached tty needs a console socket');
  await tsrun(['kill', id, 'KILL']);
  for (let i = 0; i < 100 && JSON.parse((await tsrun(['state', id])).stdout).status !== 'stopped'; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const stopped = await tsrun(['exec', id, 'true']);
  t.equal(stopped.stderr, `tsrun: exec ${id}: cannot exec in a stopped container\n`);
  t.equal((await tsrun(['delete', id])).code, 0);
  await assertNothingLeaked(t, id);
});
