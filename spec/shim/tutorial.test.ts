/**
 * The tutorial flow, end to end, as a person follows it: pull an image from
 * a registry, `run -d -p 8080:80 --name web` a busybox httpd, fetch the page,
 * `logs`, `exec`, `stop` (ps -a: Exited (CODE) … ago), `start` again,
 * a second `--name web` refused until `rm -f`, then accepted; afterwards
 * nothing is left: no mount, cgroup, process, link or rule.
 *
 * The registry listens on the host's 127.0.0.1; tsctl and every container
 * run in a network namespace this test makes (nsenter --net: only the
 * network is switched, so mounts stay visible to the leak check), with the
 * client inside it too: no traffic leaves the machine.
 */
import t from 'tap';
import fs from 'node:fs';
import { assertNothingLeaked, exec, findProcesses, leakCheck, mountsUnder, type RunResult } from '../lib/harness.js';
import { buildImage, makeStore, pushImage, skipUnless, startRegistry, tsctlBinary } from './lib.js';
import { sandbox, sandboxNetwork } from './network-lib.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const skip = skipUnless(['ip', 'nft', 'nsenter', 'docker-registry', 'umoci', 'skopeo']);

t.test('the tutorial: pull, run -d -p, fetch, logs, exec, stop, start, rm -f, name reuse', { skip }, async (t) => {
  const store = makeStore(t);
  const registry = await startRegistry(t);
  const image = await buildImage(t, { config: { cmd: ['sh'], exposedports: ['80/tcp'] } });
  await pushImage(image, registry, 'tutorial/web:1');
  const ref = `${registry.host}/tutorial/web:1`;
  const pull = await store.tsctl(['pull', ref]);
  t.equal(pull.code, 0, `pull: ${pull.stderr}`);

  const sb = await sandbox(t);
  const before = leakCheck(t);
  const ctl = (args: string[]): Promise<RunResult> =>
    exec('nsenter', [`--net=/run/netns/${sb.name}`, tsctlBinary(), '--root', store.root, '--runtime-root', store.runtimeRoot, ...args], {
      timeoutMs: 60_000,
      env: { DOCKER_CONFIG: store.dockerConfig, TSCTL_ROOT: undefined },
    });
  const ids: string[] = [];
  t.teardown(async () => {
    for (const id of ids) await ctl(['rm', '-f', id]);
  });
  const fetchPage = async (): Promise<string | undefined> => {
    // httpd starts after `run -d` returns: a bounded wait for it to answer
    for (let i = 0; i < 50; i++) {
      const r = await sb.driver<{ ok: number; bodies: Record<string, number> }>(['http', '127.0.0.1', '8080', '1']).catch(() => undefined);
      if (r?.ok === 1) return Object.keys(r.bodies)[0];
      await sleep(100);
    }
    return undefined;
  };

  // the container's init handles TERM: `stop` ends it with a code of its own
  const script = 'trap "exit 3" TERM; mkdir -p /www; echo "hello from web" > /www/index.html; echo "web: serving"; httpd -f -v -p 80 -h /www & wait';
  const run = await ctl(['run', '-d', '-p', '8080:80', '--name', 'web', ref, 'sh', '-c', script]);
  t.equal(run.code, 0, `run -d: ${run.stderr}`);
  const id = run.stdout.trim();
  t.match(id, /^[0-9a-f]{64}$/, 'run -d prints the full id');
  ids.push(id);

  t.equal(await fetchPage(), 'hello from web\n', 'the page, through 127.0.0.1:8080');
  const ps = await ctl(['ps']);
  t.match(ps.stdout, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES\n/);
  t.match(ps.stdout, new RegExp(`^${id.slice(0, 12)}\\s+.*\\s+Up (Less than a second|\\d+ seconds?)\\s+0\\.0\\.0\\.0:8080->80/tcp\\s+web$`, 'm'));

  const logs = await ctl(['logs', 'web']);
  t.equal(logs.code, 0);
  t.match(logs.stdout, /^web: serving$/m, 'logs: the container stdout');
  t.match(logs.stderr, /response:200/, 'logs: httpd -v on stderr, as its own stream');
  const stamped = await ctl(['logs', '-t', '--tail', '1', 'web']);
  t.match(stamped.stdout + stamped.stderr, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z /, 'logs -t: RFC 3339 timestamps');

  const ex = await ctl(['exec', 'web', 'cat', '/www/index.html']);
  t.same([ex.code, ex.stdout], [0, 'hello from web\n'], 'exec runs in the container');
  t.equal((await ctl(['exec', id.slice(0, 8), 'sh', '-c', 'exit 5'])).code, 5, 'exec by id prefix passes the status through');
  const missing = await ctl(['exec', 'web', 'nosuchcmd']);
  t.same([missing.code, missing.stderr], [127, 'tsctl: exec failed: exec: "nosuchcmd": executable file not found in $PATH\n'], 'a command not found is 127');

  const stop = await ctl(['stop', 'web']);
  t.same([stop.code, stop.stdout], [0, 'web\n'], `stop: ${stop.stderr}`);
  t.notOk((await ctl(['ps', '-q'])).stdout.includes(id.slice(0, 12)), 'ps no longer lists it');
  t.match((await ctl(['ps', '-a'])).stdout, /Exited \(3\) (Less than a second|\d+ seconds?) ago\s+web$/m, 'ps -a: Exited (3) … ago');
  t.same((await sandboxNetwork(sb)).links, ['lo'], 'stop removed the veth and the bridge');

  const start = await ctl(['start', 'web']);
  t.equal(start.code, 0, `start: ${start.stderr}`);
  t.equal(await fetchPage(), 'hello from web\n', 'served again after start');

  const clash = await ctl(['run', '-d', '--name', 'web', ref, 'true']);
  t.equal(clash.code, 125);
  t.equal(
    clash.stderr,
    `tsctl: Conflict. The container name "/web" is already in use by container "${id}". You have to remove (or rename) that container to be able to reuse that name.\n`,
  );
  t.equal((await ctl(['rm', 'web'])).code, 1, 'rm of a running container is refused without -f');
  const rm = await ctl(['rm', '-f', 'web']);
  t.same([rm.code, rm.stdout], [0, 'web\n'], `rm -f: ${rm.stderr}`);
  t.same((await ctl(['ps', '-aq'])).stdout, '', 'gone');

  // -P: the exposed port on a free host port, as ps shows it
  const pub = await ctl(['run', '-d', '-P', ref, 'sh', '-c', 'echo published > /tmp/index.html; exec httpd -f -p 80 -h /tmp']);
  t.equal(pub.code, 0, `run -P: ${pub.stderr}`);
  ids.push(pub.stdout.trim());
  const port = /0\.0\.0\.0:(\d+)->80\/tcp/.exec((await ctl(['ps'])).stdout)?.[1];
  t.ok(port, '-P published 80/tcp');
  let served: unknown;
  for (let i = 0; i < 50 && !served; i++) {
    served = await sb.driver<{ ok: number }>(['http', '127.0.0.1', String(port), '1']).then((r) => r.ok === 1, () => false).catch(() => false);
    if (!served) await sleep(100);
  }
  t.ok(served, `reachable on 127.0.0.1:${port}`);
  t.equal((await ctl(['rm', '-f', pub.stdout.trim()])).code, 0);

  const again = await ctl(['run', '--name', 'web', '--network', 'none', ref, 'echo', 'second web']);
  t.same([again.code, again.stdout], [0, 'second web\n'], `the name is free again: ${again.stderr}`);
  const second = (await ctl(['inspect', '-f', '{{.Id}}', 'web'])).stdout.trim();
  ids.push(second);
  t.equal((await ctl(['rm', 'web'])).code, 0);

  const net = await sandboxNetwork(sb);
  t.same([net.links, net.ruleset], [['lo'], ''], 'no link, no nft rule');
  // /run/netns is the sandboxes' (ours and, when specs run side by side, others'): never a container's
  before.mounts.push(...fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(' /run/netns')));
  for (const c of ids) await assertNothingLeaked(t, c, { markers: [store.root], before });
  t.same(mountsUnder(store.root), [], 'no mount under the store');
  t.same(findProcesses([], ['tsrun-monitor']).filter((p) => p.cmdline.includes(store.root)), [], 'no monitor left');
});
