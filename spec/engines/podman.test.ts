/**
 * podman 4.3 (Debian's) runs real containers through tsrun: private
 * --root/--runroot/--tmpdir/--network-config-dir, containers.conf and
 * storage.conf of its own, --cgroup-manager cgroupfs, --events-backend file,
 * `--runtime <tsrun>` (tsrun's state in its default root, as in a real
 * set-up), the busybox image built by the test loaded
 * with `podman load`. Every `podman run` gets --network none, a private
 * --cgroup-parent and --ulimit nofile=20000:20000 nproc=32768:32768 (this
 * sandbox cannot raise RLIMIT_NOFILE above 20000; podman asks for 1048576).
 */
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { exec, findCgroupDirs, mountsUnder, tsrunBinary } from '../lib/harness.js';
import {
  cgroupParentsLeft,
  escapeRegExp,
  IMAGE,
  pidsMatching,
  type Podman,
  podmanEnv,
  skipUnless,
  stateDirsUnder,
  tcpListeners,
  testImage,
  tsrunOwnError,
  waitFor,
} from './lib.js';

t.setTimeout(290_000);

const skip = skipUnless(['podman', 'conmon', 'umoci', 'skopeo']);
const TSRUN = tsrunBinary();
let pm: Podman;

t.before(async () => {
  if (skip) return;
  const image = await testImage();
  pm = podmanEnv(t);
  const r = await pm.podman(['load', '-i', image.dockerArchive], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`podman load: ${r.stderr.trim()}`);
});

const run = (args: string[], opts = {}) => pm.podman(['run', ...pm.runFlags, ...args], opts);

async function tsrunStatus(id: string): Promise<{ status?: string; pid?: number }> {
  const s = await exec(TSRUN, ['--root', pm.runtimeRoot, 'state', id], { timeoutMs: 15_000 });
  return s.code === 0 ? (JSON.parse(s.stdout) as { status?: string; pid?: number }) : {};
}

async function inspect(id: string, format: string): Promise<string> {
  return (await pm.podman(['inspect', '-f', format, id])).stdout.trim();
}

/** tsrun state dirs of this podman's containers (tsrun's default root is shared). */
function ourStateDirs(): string[] {
  const ours = new Set(pm.containerIds());
  return stateDirsUnder(pm.runtimeRoot)
    .map((s) => s.id)
    .filter((id) => ours.has(id));
}

/** Nothing of container `id` is left: no podman container, state dir, cgroup or conmon. */
async function assertGone(t: Test, id: string): Promise<void> {
  const all = (await pm.podman(['ps', '-aq', '--no-trunc'])).stdout.split('\n');
  t.notOk(all.includes(id), 'podman has no such container');
  t.same(ourStateDirs().filter((s) => s === id), [], 'no tsrun state dir is left');
  t.same(await waitFor(() => findCgroupDirs([id]).length === 0, 3000).then(() => findCgroupDirs([id])), [], 'no cgroup dir is left');
  t.same(await waitFor(() => pidsMatching(`-c ${id} `).length === 0, 5000).then(() => pidsMatching(`-c ${id} `)), [], 'its conmon exited');
}

t.test('podman load of the busybox image built by the test', { skip }, async (t) => {
  const images = await pm.podman(['images', '--format', '{{.Repository}}:{{.Tag}}']);
  t.ok(images.stdout.split('\n').includes(IMAGE), `${IMAGE} is loaded`);
});

t.test('podman --runtime <tsrun> run --rm: output, stderr and exit status pass through', { skip }, async (t) => {
  const r = await run(['--rm', IMAGE, 'echo', 'hi']);
  t.equal(r.code, 0, `exit 0 (${r.stderr.trim()})`);
  t.equal(r.stdout, 'hi\n', 'prints hi');
  const r7 = await run(['--rm', IMAGE, 'sh', '-c', 'echo out; echo err >&2; exit 7']);
  t.equal(r7.code, 7, 'the exit status passes through');
  t.equal(r7.stdout, 'out\n');
  t.match(r7.stderr, /^err$/m);
  const lim = await run(['--rm', IMAGE, 'sh', '-c', 'ulimit -n; ulimit -u']);
  t.equal(lim.stdout, '20000\n32768\n', 'the --ulimit values apply');
  t.equal((await pm.podman(['ps', '-aq'])).stdout.trim(), '', 'no container is left');
  t.same(ourStateDirs(), [], 'no tsrun state dir is left');
});

t.test('containers.conf [engine.runtimes]: tsrun by name, as the default runtime', { skip }, async (t) => {
  const info = await pm.podmanBare(['info', '--format', '{{.Host.OCIRuntime.Name}} {{.Host.OCIRuntime.Path}}']);
  t.equal(info.stdout.trim(), `tsrun ${TSRUN}`, `podman info: ${info.stderr.trim()}`);
  const r = await pm.podmanBare(['run', '--rm', ...pm.runFlags, IMAGE, 'echo', 'by name']);
  t.equal(r.code, 0, `exit 0 (${r.stderr.trim()})`);
  t.equal(r.stdout, 'by name\n');
});

t.test('podman run -d, exec, stop, rm', { skip }, async (t) => {
  const r = await run(['-d', IMAGE, 'sh', '-c', 'echo started; trap "echo got-term; exit 0" TERM; sleep 1000 & wait']);
  t.equal(r.code, 0, `podman run -d exits 0 (${r.stderr.trim()})`);
  const id = r.stdout.trim();
  t.match(id, /^[0-9a-f]{64}$/, 'prints the container id');
  const st = await tsrunStatus(id);
  t.equal(st.status, 'running', 'tsrun state says running: tsrun is the runtime');
  t.equal(String(st.pid), await inspect(id, '{{.State.Pid}}'), "tsrun's init pid is podman's State.Pid");

  await t.test('exec', async (t) => {
    const e = await pm.podman(['exec', id, 'echo', 'hi']);
    t.equal(e.code, 0, `exit 0 (${e.stderr.trim()})`);
    t.equal(e.stdout, 'hi\n');
    const e3 = await pm.podman(['exec', id, 'sh', '-c', 'exit 3']);
    t.equal(e3.code, 3, 'the exec exit status passes through');
    const env = await pm.podman(['exec', '-e', 'FOO=bar', '-u', 'nobody', '-w', '/tmp', id, 'sh', '-c', 'echo $FOO $(id -u) $(pwd)']);
    t.equal(env.stdout, 'bar 65534 /tmp\n', '-e, -u and -w apply');
  });

  await t.test('conmon listens on no TCP socket', async (t) => {
    const pids = pidsMatching(pm.home.dir);
    t.ok(pids.length > 0, 'conmon is there');
    t.same(tcpListeners(pids), [], `none of ${pids.length} processes listens on TCP`);
  });

  await t.test('stop (SIGTERM reaches the init), logs, rm', async (t) => {
    const started = Date.now();
    const s = await pm.podman(['stop', '-t', '20', id], { timeoutMs: 40_000 });
    t.equal(s.code, 0, `stop exits 0 (${s.stderr.trim()})`);
    t.ok(Date.now() - started < 10_000, `stopped by SIGTERM, not after the timeout (${Date.now() - started} ms)`);
    t.equal(await inspect(id, '{{.State.ExitCode}}'), '0', 'its trap exited 0');
    const logs = await pm.podman(['logs', id]);
    t.equal(logs.stdout, 'started\ngot-term\n', 'podman logs has its output');
    const rm = await pm.podman(['rm', id]);
    t.equal(rm.code, 0, `rm exits 0 (${rm.stderr.trim()})`);
    await assertGone(t, id);
  });
});

t.test('podman rm -f of a running container', { skip }, async (t) => {
  const r = await run(['-d', IMAGE, 'sleep', '1000']);
  t.equal(r.code, 0, `podman run -d exits 0 (${r.stderr.trim()})`);
  const id = r.stdout.trim();
  t.equal((await tsrunStatus(id)).status, 'running', 'running');
  const rm = await pm.podman(['rm', '-f', '-t', '0', id]);
  t.equal(rm.code, 0, `rm -f exits 0 (${rm.stderr.trim()})`);
  await assertGone(t, id);
});

t.test("a failing create: podman's error carries tsrun's own one-line error", { skip }, async (t) => {
  const own = await tsrunOwnError(t, (c) => {
    c.process.args = ['/no/such/entrypoint'];
  });
  const name = `bad-${process.pid}`;
  const r = await run(['--rm', '--name', name, IMAGE, '/no/such/entrypoint']);
  t.not(r.code, 0, `podman run fails (${r.code})`);
  t.match(r.stderr, new RegExp(`create [0-9a-f]{64}: ${escapeRegExp(own)}`), `contains "${own}"`);
  t.notMatch(r.stderr, /does not exist/, 'no noise from the cleanup (`delete --force` of what was never created)');
  t.equal(r.stdout, '', 'nothing on stdout');
  t.equal((await pm.podman(['ps', '-aq', '-f', `name=${name}`])).stdout.trim(), '', '--rm removed it');
  t.same(ourStateDirs(), [], 'no tsrun state dir is left');
});

t.test('cleaning up leaves nothing behind', { skip }, async (t) => {
  const r = await run(['-d', IMAGE, 'sleep', '1000']);
  t.equal(r.code, 0, `a container still runs at cleanup (${r.stderr.trim()})`);
  const id = r.stdout.trim();
  const dir = pm.home.dir;
  const ids = new Set(pm.containerIds());
  t.ok(ids.has(id), 'the events log knows it');
  await pm.home.cleanup();
  t.same(stateDirsUnder(pm.runtimeRoot).filter((s) => ids.has(s.id)), [], `no state dir of its ${ids.size} containers is left`);
  t.same(pidsMatching(dir), [], 'no process (conmon) names its directory');
  t.same(findCgroupDirs([id]), [], "the container's cgroup is gone");
  t.same(cgroupParentsLeft(pm.cgroupParent), [], 'the cgroup parent is gone');
  t.same(mountsUnder(dir), [], 'nothing mounted under its directory');
  t.notOk(fs.existsSync(dir), 'its directory is removed');
});
