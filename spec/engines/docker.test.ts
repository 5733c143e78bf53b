/**
 * Docker 20.10 (Debian's docker.io) runs real containers through tsrun:
 * a private containerd and a private dockerd (data-root, exec-root, socket,
 * pidfile, daemon.json of its own; no bridge, no iptables), tsrun registered
 * with `--add-runtime tsrun=<path>` (and as `tsrun-json` in daemon.json's
 * "runtimes"), the busybox image built by the test loaded with `docker
 * load`, and Debian's client /usr/bin/docker driving it.
 */
import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { exec, findCgroupDirs, mountsUnder, tsrunBinary } from '../lib/harness.js';
import {
  type Containerd,
  cgroupParentsLeft,
  DOCKER_CLIENT,
  type Dockerd,
  escapeRegExp,
  IMAGE,
  pidsMatching,
  processTree,
  skipUnless,
  startContainerd,
  startDockerd,
  stateDirsUnder,
  tcpListeners,
  testImage,
  tmux,
  tsrunHas,
  tsrunOwnError,
  waitFor,
} from './lib.js';

t.setTimeout(290_000);

const skip = skipUnless(['containerd', 'containerd-shim-runc-v2', 'dockerd', DOCKER_CLIENT, 'umoci', 'skopeo', 'tmux']);
const TSRUN = tsrunBinary();
let ctd: Containerd;
let dk: Dockerd;

t.before(async () => {
  if (skip) return;
  const image = await testImage();
  ctd = await startContainerd(t, { prefix: 'containerd-for-docker' });
  dk = await startDockerd(t, ctd);
  const r = await dk.docker(['load', '-i', image.dockerArchive], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`docker load: ${r.stderr.trim()}`);
});

const RUN = ['--runtime', 'tsrun', '--network', 'none'];

/** tsrun's own view of a container (docker's containerd namespace is "moby"). */
async function tsrunStatus(id: string): Promise<{ status?: string; pid?: number }> {
  const s = await exec(TSRUN, ['--root', path.join(dk.runtimeRoot, 'moby'), 'state', id], { timeoutMs: 15_000 });
  return s.code === 0 ? (JSON.parse(s.stdout) as { status?: string; pid?: number }) : {};
}

async function inspect(id: string, format: string): Promise<string> {
  return (await dk.docker(['inspect', '-f', format, id])).stdout.trim();
}

function cgroupFile(controller: string, id: string, file: string): string | undefined {
  try {
    return fs.readFileSync(path.join('/sys/fs/cgroup', controller, dk.cgroupParent, id, file), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Nothing of container `id` is left: no docker container, state dir, cgroup or shim. */
async function assertGone(t: Test, id: string): Promise<void> {
  const all = (await dk.docker(['ps', '-aq', '--no-trunc'])).stdout.split('\n');
  t.notOk(all.includes(id), 'docker has no such container');
  t.same(stateDirsUnder(dk.runtimeRoot).filter((s) => s.id === id), [], 'no tsrun state dir is left');
  t.same(await waitFor(() => findCgroupDirs([id]).length === 0, 3000).then(() => findCgroupDirs([id])), [], 'no cgroup dir is left');
  t.same(await waitFor(() => pidsMatching(`-id ${id} `).length === 0, 5000).then(() => pidsMatching(`-id ${id} `)), [], 'its shim exited');
}

t.test('docker load of the busybox image built by the test; tsrun is a runtime', { skip }, async (t) => {
  const images = await dk.docker(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']);
  t.ok(images.stdout.split('\n').includes(IMAGE), `${IMAGE} is loaded`);
  const info = await dk.docker(['info', '--format', '{{json .Runtimes}}']);
  const runtimes = JSON.parse(info.stdout || '{}') as Record<string, { path?: string }>;
  t.equal(runtimes.tsrun?.path, TSRUN, '--add-runtime tsrun=<path>');
  t.equal(runtimes['tsrun-json']?.path, TSRUN, 'daemon.json "runtimes" tsrun-json');
});

t.test('docker run --rm --runtime tsrun: output, stderr and exit status pass through', { skip }, async (t) => {
  const r = await dk.docker(['run', '--rm', ...RUN, IMAGE, 'echo', 'hi']);
  t.equal(r.code, 0, `exit 0 (${r.stderr.trim()})`);
  t.equal(r.stdout, 'hi\n', 'prints hi');
  const r7 = await dk.docker(['run', '--rm', ...RUN, IMAGE, 'sh', '-c', 'echo out; echo err >&2; exit 7']);
  t.equal(r7.code, 7, 'the exit status passes through');
  t.equal(r7.stdout, 'out\n');
  t.match(r7.stderr, /^err$/m);
  const j = await dk.docker(['run', '--rm', '--runtime', 'tsrun-json', '--network', 'none', IMAGE, 'echo', 'via daemon.json']);
  t.equal(j.stdout, 'via daemon.json\n', `the daemon.json runtime works too (${j.stderr.trim()})`);
  t.equal((await dk.docker(['ps', '-aq'])).stdout.trim(), '', 'no container is left');
});

t.test('docker run -d with limits, exec, top, update, logs, stop, rm', { skip }, async (t) => {
  const r = await dk.docker([
    'run', '-d', ...RUN, '--memory', '64m', '--memory-swap', '128m', '--pids-limit', '100',
    IMAGE, 'sh', '-c', 'echo started; trap "echo got-term; exit 0" TERM; sleep 1000 & wait',
  ]);
  t.equal(r.code, 0, `docker run -d exits 0 (${r.stderr.trim()})`);
  const id = r.stdout.trim();
  t.match(id, /^[0-9a-f]{64}$/, 'prints the container id');
  const pid = Number(await inspect(id, '{{.State.Pid}}'));
  const st = await tsrunStatus(id);
  t.equal(st.status, 'running', 'tsrun state (in the exec-root) says running: tsrun is the runtime');
  t.equal(st.pid, pid, "tsrun's init pid is docker's State.Pid");
  t.equal(cgroupFile('memory', id, 'memory.limit_in_bytes'), String(64 << 20), '--memory 64m: memory.limit_in_bytes');
  t.equal(cgroupFile('pids', id, 'pids.max'), '100', '--pids-limit 100: pids.max');

  await t.test('exec', async (t) => {
    const e = await dk.docker(['exec', id, 'echo', 'hi']);
    t.equal(e.code, 0, `exit 0 (${e.stderr.trim()})`);
    t.equal(e.stdout, 'hi\n');
    const e3 = await dk.docker(['exec', id, 'sh', '-c', 'exit 3']);
    t.equal(e3.code, 3, 'the exec exit status passes through');
    const env = await dk.docker(['exec', '-e', 'FOO=bar', '-u', 'nobody', '-w', '/tmp', id, 'sh', '-c', 'echo $FOO $(id -u) $(pwd)']);
    t.equal(env.stdout, 'bar 65534 /tmp\n', '-e, -u and -w apply');
  });

  await t.test('top', { todo: (await tsrunHas('ps')) ? false : 'tsrun has no `ps` command yet' }, async (t) => {
    const top = await dk.docker(['top', id]);
    t.equal(top.code, 0, `exit 0 (${top.stderr.trim()})`);
    t.match(top.stdout, /sleep 1000/, 'lists the sleep');
    t.equal(top.stdout.trim().split('\n').length, 3, 'a header and two processes');
  });

  await t.test('update --pids-limit --memory', { todo: (await tsrunHas('update')) ? false : 'tsrun has no `update` command yet' }, async (t) => {
    const u = await dk.docker(['update', '--pids-limit', '50', '--memory', '32m', '--memory-swap', '64m', id]);
    t.equal(u.code, 0, `exit 0 (${u.stderr.trim()})`);
    t.equal(cgroupFile('pids', id, 'pids.max'), '50', 'pids.max is 50');
    t.equal(cgroupFile('memory', id, 'memory.limit_in_bytes'), String(32 << 20), 'memory.limit_in_bytes is 32 MiB');
    t.equal(await inspect(id, '{{.HostConfig.PidsLimit}}'), '50', 'docker inspect agrees');
    const e = await dk.docker(['exec', id, 'echo', 'still running']);
    t.equal(e.stdout, 'still running\n', 'the container still runs');
  });

  await t.test('dockerd, containerd and the shim listen on no TCP socket', async (t) => {
    const pids = [...processTree(dk.daemon.pid), ...processTree(ctd.daemon.pid), ...pidsMatching(ctd.socket)];
    t.same(tcpListeners(pids), [], `none of ${pids.length} processes listens on TCP`);
  });

  await t.test('logs, stop (SIGTERM reaches the init), rm', async (t) => {
    const started = Date.now();
    const s = await dk.docker(['stop', '-t', '20', id], { timeoutMs: 40_000 });
    t.equal(s.code, 0, `stop exits 0 (${s.stderr.trim()})`);
    t.ok(Date.now() - started < 10_000, `stopped by SIGTERM, not after the timeout (${Date.now() - started} ms)`);
    t.equal(await inspect(id, '{{.State.ExitCode}}'), '0', 'its trap exited 0');
    const logs = await dk.docker(['logs', id]);
    t.equal(logs.stdout, 'started\ngot-term\n', 'docker logs has its output');
    t.equal((await tsrunStatus(id)).status, undefined, 'tsrun no longer knows it');
    const rm = await dk.docker(['rm', id]);
    t.equal(rm.code, 0, `rm exits 0 (${rm.stderr.trim()})`);
    await assertGone(t, id);
  });
});

t.test('docker rm -f of a running container', { skip }, async (t) => {
  const r = await dk.docker(['run', '-d', ...RUN, IMAGE, 'sleep', '1000']);
  t.equal(r.code, 0, `docker run -d exits 0 (${r.stderr.trim()})`);
  const id = r.stdout.trim();
  t.equal((await tsrunStatus(id)).status, 'running', 'running');
  const rm = await dk.docker(['rm', '-f', id]);
  t.equal(rm.code, 0, `rm -f exits 0 (${rm.stderr.trim()})`);
  await assertGone(t, id);
});

t.test('docker run -it: a shell on a terminal (driven with tmux)', { skip }, async (t) => {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const name = `tty-${process.pid}`;
  const cmd = [DOCKER_CLIENT, '-H', q(`unix://${dk.socket}`), 'run', '--rm', '-it', '--name', name, ...RUN, IMAGE, 'sh'].join(' ');
  const tm = await tmux(t, dk.home.dir, cmd);
  t.match(await tm.waitFor(/^\/ #/m), /^\/ #/m, 'the shell prompts');
  await tm.line('tty; stty size; echo $((6*7))');
  t.match(await tm.waitFor(/^42$/m), /\/dev\/pts\/\d+\n40 120\n42/, 'a pty of the window size');
  await tm.line('exit 3');
  t.match(await tm.waitFor(/\[exited \d+\]/), /\[exited 3\]/, "the shell's exit status comes back through docker");
  t.equal(await waitFor(async () => (await dk.docker(['ps', '-aq', '-f', `name=${name}`])).stdout.trim() === '', 5000), true, '--rm removed it');
});

t.test("a failing create: docker's error carries tsrun's own one-line error", { skip }, async (t) => {
  const own = await tsrunOwnError(t, (c) => {
    c.process.args = ['/no/such/entrypoint'];
  });
  const name = `bad-${process.pid}`;
  const r = await dk.docker(['run', '--rm', '--name', name, ...RUN, IMAGE, '/no/such/entrypoint']);
  t.not(r.code, 0, `docker run fails (${r.code})`);
  t.match(r.stderr, new RegExp(`OCI runtime create failed: create [0-9a-f]{64}: ${escapeRegExp(own)}`), `contains "${own}"`);
  t.equal(r.stdout, '', 'nothing on stdout');
  t.equal(await waitFor(async () => (await dk.docker(['ps', '-aq', '-f', `name=${name}`])).stdout.trim() === '', 5000), true, '--rm removed it');
  t.same(stateDirsUnder(dk.runtimeRoot), [], 'no tsrun state dir is left');
});

t.test('stopping dockerd and containerd leaves nothing behind', { skip }, async (t) => {
  const r = await dk.docker(['run', '-d', ...RUN, IMAGE, 'sleep', '1000']);
  t.equal(r.code, 0, `a container still runs when they stop (${r.stderr.trim()})`);
  const id = r.stdout.trim();
  const dirs = [dk.home.dir, ctd.home.dir];
  await dk.home.cleanup();
  await ctd.home.cleanup();
  t.notOk(dk.daemon.running, 'dockerd exited');
  t.notOk(ctd.daemon.running, 'containerd exited');
  for (const dir of dirs) {
    t.same(pidsMatching(dir), [], `no process names ${dir}`);
    t.same(mountsUnder(dir), [], `nothing mounted under ${dir}`);
    t.notOk(fs.existsSync(dir), `${dir} is removed`);
  }
  t.same(findCgroupDirs([id]), [], "the container's cgroup is gone");
  t.same(cgroupParentsLeft(dk.cgroupParent), [], "docker's cgroup parent is gone");
});
