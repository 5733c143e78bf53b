/**
 * The container commands beyond the tutorial, with real containers (all
 * with --network none: networking has its own specs): run's flags as the
 * container sees them, volumes, logs, exec, stop/kill/restart, create/start,
 * rename, top, stats, diff, cp (and its symlink containment), bad input
 * refused with nothing made, and `rm -f` after the monitor was killed.
 * Every container is checked for leftovers at the end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { assertNothingLeaked, exec, findProcesses, leakCheck, mountsUnder, REPO_ROOT, rootfsTemplate } from '../lib/harness.js';
import { buildImage, hasCommand, makeStore, type Store, skipUnless, tsctlBinary } from './lib.js';

let current: Store | undefined;
const lastStore = (): Store => current as Store;
const hasTmux = () => hasCommand('tmux');
const tsctlBinaryPath = tsctlBinary;

const skip = skipUnless(['umoci']);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('containers', { skip }, async (t) => {
  leakCheck(t);
  const store = makeStore(t);
  current = store;
  const ctl = store.tsctl;
  const image = await buildImage(t, { config: { cmd: ['sh'], env: ['FROM_IMAGE=yes', 'PATH=/bin'], volumes: ['/data'] } });
  const load = await ctl(['load', '-i', image.layout]);
  t.equal(load.code, 0, `load: ${load.stderr}`);
  const img = /Loaded image ID: sha256:([0-9a-f]{12})/.exec(load.stdout)?.[1] ?? 'missing';
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-ctr-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const ids = new Set<string>();
  const idOf = async (ref: string) => {
    const id = (await ctl(['inspect', '-f', '{{.Id}}', ref])).stdout.trim();
    if (id) ids.add(id);
    return id;
  };
  const none = ['--network', 'none'];

  t.test('run: flags as the container sees them', async (t) => {
    const envFile = path.join(tmp, 'env');
    fs.writeFileSync(envFile, '# a comment\nFROM_FILE=1\nOVERRIDDEN=file\n');
    const script = 'echo "env:$FROM_IMAGE,$FROM_FILE,$OVERRIDDEN,$FROM_FLAG"; echo "cwd:$(pwd)"; echo "id:$(id -u):$(id -g)"; echo "host:$(hostname)"; ' +
      'touch /x 2>/dev/null && echo rw || echo ro';
    // (--env-file through bin/tsctl needs `node --` in the launcher: Node 20 takes a
    // --env-file after the script as its own option; tsctlDirect() runs the bundle so)
    const r = await tsctlDirect(['run', '--name', 'flags', ...none, '--env-file', envFile, '-e', 'OVERRIDDEN=flag', '-e', 'FROM_FLAG=2', '-w', '/tmp', '-u', '1000:1000',
      '--hostname', 'box', '--read-only', '--memory', '64m', '--cpus', '0.5', '--pids-limit', '50', img, 'sh', '-c', script]);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, 'env:yes,1,flag,2\ncwd:/tmp\nid:1000:1000\nhost:box\nro\n');
    const caps = await ctl(['run', '--name', 'caps', ...none, '--cap-drop', 'ALL', '--cap-add', 'NET_BIND_SERVICE', img, 'grep', 'CapEff', '/proc/self/status']);
    t.match(caps.stdout, /^CapEff:\s+0000000000000400$/m, '--cap-drop ALL --cap-add NET_BIND_SERVICE: that one capability');
    await idOf('caps');
    const id = await idOf('flags');
    const spec = JSON.parse(fs.readFileSync(path.join(store.root, 'containers', id, 'config.json'), 'utf8'));
    t.equal(spec.linux.resources.memory.limit, 64 * 1024 * 1024, '--memory');
    t.same([spec.linux.resources.cpu.quota, spec.linux.resources.cpu.period], [50000, 100000], '--cpus');
    t.equal(spec.linux.resources.pids.limit, 50, '--pids-limit');
    t.equal(spec.root.readonly, true, '--read-only');
    const rec = JSON.parse(fs.readFileSync(path.join(store.root, 'containers', id, 'container.json'), 'utf8'));
    t.match(rec.imageId, /^sha256:[0-9a-f]{64}$/, 'container.json names the image');
    t.equal((await ctl(['run', '--rm', ...none, img, 'sh', '-c', 'exit 3'])).code, 3, 'run passes the status through');
    t.equal((await ctl(['run', '--rm', ...none, img, 'nosuchcmd'])).code, 127, 'not found: 127');
    t.equal((await ctl(['run', '--rm', ...none, img, '/etc/passwd'])).code, 126, 'not executable: 126');
    const entry = await ctl(['run', '--rm', ...none, '--entrypoint', 'echo', img, 'via', 'entrypoint']);
    t.same([entry.code, entry.stdout], [0, 'via entrypoint\n'], '--entrypoint');
    const stdin = await ctl(['run', '--rm', '-i', ...none, img, 'sh', '-c', 'cat; echo done'], { input: 'line one\nline two\n' });
    t.same([stdin.code, stdin.stdout], [0, 'line one\nline two\ndone\n'], '-i: stdin relayed, then EOF');
    t.notMatch((await ctl(['ps', '-a'])).stdout, / (\w+_\w+)\n/, '--rm containers are gone when run returns');
  });

  t.test('volumes', async (t) => {
    const host = path.join(tmp, 'hostdir');
    fs.mkdirSync(host);
    fs.writeFileSync(path.join(host, 'in'), 'from host\n');
    const r = await ctl(['run', '--name', 'vols', ...none, '-v', `${host}:/h`, '-v', `${host}:/ro:ro`, '-v', 'named1:/n', '-v', '/anon', img, 'sh', '-c',
      'cat /h/in; echo out > /h/out; echo n > /n/file; echo a > /anon/f; echo d > /data/f; echo x > /ro/x 2>/dev/null || echo ro-refused']);
    t.equal(r.code, 0, r.stderr);
    t.equal(r.stdout, 'from host\nro-refused\n');
    t.equal(fs.readFileSync(path.join(host, 'out'), 'utf8'), 'out\n', 'bind mount writes reach the host');
    t.equal(fs.readFileSync(path.join(store.root, 'volumes', 'named1', '_data', 'file'), 'utf8'), 'n\n', 'named volume');
    const mounts = JSON.parse((await ctl(['inspect', '-f', '{{json .Mounts}}', 'vols'])).stdout) as { Name?: string; Destination: string }[];
    const anon = mounts.filter((m) => m.Destination === '/anon' || m.Destination === '/data').map((m) => m.Name as string);
    t.equal(anon.length, 2, "-v /anon and the image's /data are anonymous volumes");
    for (const a of anon) t.ok(fs.existsSync(path.join(store.root, 'volumes', a, '_data')));
    await idOf('vols');
    t.equal((await ctl(['rm', '-v', 'vols'])).code, 0);
    for (const a of anon) t.notOk(fs.existsSync(path.join(store.root, 'volumes', a)), 'rm -v removes anonymous volumes');
    t.ok(fs.existsSync(path.join(store.root, 'volumes', 'named1', '_data', 'file')), 'and keeps named ones');
  });

  t.test('logs, exec, stop, kill, restart, create/start, rename, top, stats', async (t) => {
    const r = await ctl(['run', '-d', '--name', 'svc', ...none, img, 'sh', '-c', 'trap "echo bye; exit 0" TERM; echo one; echo two >&2; echo three; while :; do sleep 0.1; done']);
    t.equal(r.code, 0, r.stderr);
    await idOf('svc');
    for (let i = 0; i < 50 && !(await ctl(['logs', 'svc'])).stdout.includes('three'); i++) await sleep(100);
    const logs = await ctl(['logs', 'svc']);
    t.same([logs.stdout, logs.stderr], ['one\nthree\n', 'two\n'], 'logs keep the streams apart');
    // (the two pipes are read as they come: the order across streams is not the program's)
    const tail = await ctl(['logs', '--tail', '1', 'svc']);
    t.equal(`${tail.stdout}${tail.stderr}`.split('\n').filter(Boolean).length, 1, '--tail 1: one line of both streams');
    const json = fs.readFileSync(path.join(store.root, 'containers', await idOf('svc'), `${await idOf('svc')}-json.log`), 'utf8').split('\n')[0];
    t.match(json, /^\{"log":"one\\n","stream":"stdout","time":"[0-9T:.-]+Z"\}$/, "Docker's json-file line");

    const ex = await ctl(['exec', '-e', 'X=1', '-u', 'nobody', '-w', '/tmp', 'svc', 'sh', '-c', 'echo $X $(id -un) $(pwd)']);
    t.same([ex.code, ex.stdout], [0, '1 nobody /tmp\n'], 'exec -e -u -w');
    t.equal((await ctl(['exec', '-d', 'svc', 'sh', '-c', 'echo detached > /tmp/d'])).code, 0, 'exec -d');
    for (let i = 0; i < 50 && (await ctl(['exec', 'svc', 'cat', '/tmp/d'])).stdout !== 'detached\n'; i++) await sleep(100);
    t.equal((await ctl(['exec', 'svc', 'cat', '/tmp/d'])).stdout, 'detached\n');
    const top = await ctl(['top', 'svc']);
    t.match(top.stdout, /^UID\s+PID\s+PPID/m, 'top: ps -ef columns');
    t.match(top.stdout, /while :; do sleep/);
    const stats = await ctl(['stats', '--no-stream', 'svc']);
    t.match(stats.stdout, /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS\n[0-9a-f]{12}\s+svc\s+\d+\.\d\d%\s+\S+ \/ \S+\s+\d+\.\d\d%\s+\S+ \/ \S+\s+\S+ \/ \S+\s+\d+\n$/, 'stats');

    t.equal((await ctl(['rename', 'svc', 'svc2'])).code, 0, 'rename');
    t.equal((await ctl(['logs', 'svc'])).code, 1, 'the old name is free');
    t.same((await ctl(['stop', 'svc2'])).stdout, 'svc2\n');
    t.match((await ctl(['ps', '-a'])).stdout, /Exited \(0\) .* ago\s+svc2$/m, 'the stop signal was handled: exit 0');
    t.match((await ctl(['logs', 'svc2'])).stdout, /bye\n$/);
    t.equal((await ctl(['restart', 'svc2'])).code, 0, 'restart');
    t.match((await ctl(['ps'])).stdout, /Up .*svc2$/m);
    t.equal(Number((await ctl(['inspect', '-f', '{{.RestartCount}}', 'svc2'])).stdout), 1);
    t.equal((await ctl(['kill', '-s', 'KILL', 'svc2'])).code, 0, 'kill -s');
    for (let i = 0; i < 50 && !/Exited/.test((await ctl(['ps', '-a'])).stdout); i++) await sleep(100);
    t.match((await ctl(['ps', '-a'])).stdout, /Exited \(137\) .*svc2$/m);

    const stubborn = await ctl(['run', '-d', ...none, img, 'sh', '-c', 'trap "" TERM; while :; do sleep 0.1; done']);
    ids.add(stubborn.stdout.trim());
    t.equal((await ctl(['stop', '-t', '1', stubborn.stdout.trim()])).code, 0);
    t.equal((await ctl(['inspect', '-f', '{{.State.ExitCode}}', stubborn.stdout.trim()])).stdout, '137\n', 'stop -t: SIGKILL after the timeout');

    const created = await ctl(['create', '--name', 'later', ...none, img, 'echo', 'started later']);
    t.equal(created.code, 0, created.stderr);
    ids.add(created.stdout.trim());
    t.match((await ctl(['ps', '-a'])).stdout, /Created\s+later$/m);
    const attached = await ctl(['start', '-a', 'later']);
    t.same([attached.code, attached.stdout], [0, 'started later\n'], 'start -a');
    t.equal((await ctl(['start', '-a', ...[], 'later'])).stdout, 'started later\n', 'and again');
  });

  t.test("stop sends the image's StopSignal", async (t) => {
    const usr1 = await buildImage(t, { config: { cmd: ['sh'], stopsignal: 'SIGUSR1' } });
    const l = await ctl(['load', '-i', usr1.layout]);
    const ref = /Loaded image ID: sha256:([0-9a-f]{12})/.exec(l.stdout)?.[1] ?? 'missing';
    const r = await ctl(['run', '-d', '--name', 'sig', ...none, ref, 'sh', '-c', 'trap "exit 9" USR1; while :; do sleep 0.1; done']);
    t.equal(r.code, 0, r.stderr);
    await idOf('sig');
    t.equal((await ctl(['inspect', '-f', '{{.Config.StopSignal}}', 'sig'])).stdout, 'SIGUSR1\n');
    t.equal((await ctl(['stop', 'sig'])).code, 0);
    t.equal((await ctl(['inspect', '-f', '{{.State.ExitCode}}', 'sig'])).stdout, '9\n', 'the container handled SIGUSR1');
  });

  t.test('diff and cp', async (t) => {
    const r = await ctl(['run', '-d', '--name', 'files', ...none, img, 'sh', '-c', 'echo new > /added; rm /etc/group; ln -s /../../../../etc /esc; echo ok > /ready; while :; do sleep 0.1; done']);
    t.equal(r.code, 0, r.stderr);
    await idOf('files');
    for (let i = 0; i < 50 && (await ctl(['exec', 'files', 'cat', '/ready'])).code !== 0; i++) await sleep(100);
    const diff = (await ctl(['diff', 'files'])).stdout.split('\n');
    t.ok(diff.includes('A /added'), 'diff: added');
    t.ok(diff.includes('D /etc/group'), 'diff: deleted');
    const out = path.join(tmp, 'out');
    fs.mkdirSync(out);
    t.equal((await ctl(['cp', 'files:/added', out])).code, 0);
    t.equal(fs.readFileSync(path.join(out, 'added'), 'utf8'), 'new\n', 'cp out, into a directory');
    t.equal((await ctl(['cp', 'files:/esc/passwd', path.join(out, 'pw')])).code, 0);
    t.equal(fs.readFileSync(path.join(out, 'pw'), 'utf8'), fs.readFileSync(path.join(await rootfsTemplate(), 'etc', 'passwd'), 'utf8'), "a symlink out of the root resolves inside it: the container's passwd");
    fs.writeFileSync(path.join(tmp, 'up'), 'uploaded\n');
    t.equal((await ctl(['cp', path.join(tmp, 'up'), 'files:/esc/uploaded'])).code, 0);
    t.equal((await ctl(['exec', 'files', 'cat', '/etc/uploaded'])).stdout, 'uploaded\n', 'cp in, through the symlink, stays inside');
    t.notOk(fs.existsSync('/etc/uploaded'), 'never on the host');
    t.equal((await ctl(['stop', '-t', '0', 'files'])).code, 0);
    t.equal((await ctl(['cp', 'files:/added', path.join(out, 'stopped')])).code, 0, 'cp from a stopped container');
    t.equal(fs.readFileSync(path.join(out, 'stopped'), 'utf8'), 'new\n');
    t.same(mountsUnder(path.join(store.root, 'containers')), [], 'its rootfs was mounted for the copy only');
  });

  t.test('-d --rm, logs -f, --network host', async (t) => {
    const d = await ctl(['run', '-d', '--rm', ...none, img, 'sh', '-c', 'for i in 1 2 3; do echo line $i; sleep 0.1; done']);
    t.equal(d.code, 0, d.stderr);
    const id = d.stdout.trim();
    ids.add(id);
    const follow = await ctl(['logs', '-f', id]);
    // -f ends when the container does; with --rm the log may already be gone once it is removed
    t.ok(follow.code === 0 || /No such container/.test(follow.stderr), `logs -f: ${follow.stderr}`);
    if (follow.code === 0) t.equal(follow.stdout, 'line 1\nline 2\nline 3\n', 'logs -f follows to the end');
    for (let i = 0; i < 100 && fs.existsSync(path.join(store.root, 'containers', id)); i++) await sleep(50);
    t.notOk(fs.existsSync(path.join(store.root, 'containers', id)), '-d --rm: removed when it exits');
    const host = await ctl(['run', '--rm', '--network', 'host', img, 'hostname']);
    t.same([host.code, host.stdout], [0, `${os.hostname()}\n`], "--network host: the host's hostname by default");
  });

  t.test('run -it: a terminal, its size followed, the status passed through', { skip: hasTmux() ? false : 'needs tmux' }, async (t) => {
    const name = `tsctl-tty-${process.pid}`;
    const cmd = [tsctlBinaryPath(), '--root', store.root, '--runtime-root', store.runtimeRoot, 'run', '-it', '--name', 'tty', ...none, img, 'sh'].join(' ');
    execFileSync('tmux', ['new-session', '-d', '-s', name, '-x', '100', '-y', '30', `${cmd}; echo EXIT=$?; sleep 60`]);
    t.teardown(() => spawnSync('tmux', ['kill-session', '-t', name]));
    const screen = () => execFileSync('tmux', ['capture-pane', '-p', '-t', name], { encoding: 'utf8' });
    const waitFor = async (re: RegExp) => {
      for (let i = 0; i < 100 && !re.test(screen()); i++) await sleep(100);
      return re.test(screen());
    };
    t.ok(await waitFor(/^\/ #/m), 'a shell prompt');
    await idOf('tty');
    execFileSync('tmux', ['send-keys', '-t', name, 'tty; stty size', 'Enter']);
    t.ok(await waitFor(/^\/dev\/pts\/0\n30 100$/m), 'on a pty, the terminal size');
    // exec -it into it from a second terminal, while the first one's shell runs
    const name2 = `${name}-exec`;
    execFileSync('tmux', ['new-session', '-d', '-s', name2, '-x', '80', '-y', '20', `${cmd.replace(/ run -it .*$/, ' exec -it tty sh')}; echo EXEC=$?; sleep 60`]);
    t.teardown(() => spawnSync('tmux', ['kill-session', '-t', name2]));
    const screen2 = () => execFileSync('tmux', ['capture-pane', '-p', '-t', name2], { encoding: 'utf8' });
    for (let i = 0; i < 100 && !/^\/ #/m.test(screen2()); i++) await sleep(100);
    execFileSync('tmux', ['send-keys', '-t', name2, 'stty size; exit 4', 'Enter']);
    for (let i = 0; i < 100 && !/^EXEC=4$/m.test(screen2()); i++) await sleep(100);
    t.match(screen2(), /^20 80\n(.*\n)*EXEC=4$/m, 'exec -it: its own pty and size, its status');
    execFileSync('tmux', ['resize-window', '-t', name, '-x', '120', '-y', '40']);
    await sleep(300);
    execFileSync('tmux', ['send-keys', '-t', name, 'stty size; exit 7', 'Enter']);
    t.ok(await waitFor(/^40 120$/m), 'the new size followed');
    t.ok(await waitFor(/^EXIT=7$/m), 'the shell exit status is run\'s');
    t.match((await ctl(['ps', '-a'])).stdout, /Exited \(7\).*tty$/m);
  });

  t.test('bad input: one line, exit 125, nothing made', async (t) => {
    const before = fs.readdirSync(path.join(store.root, 'containers')).sort();
    const cases: [string[], RegExp][] = [
      [['run', '--memory', 'lots', img, 'true'], /^tsctl: invalid size: 'lots'\n$/],
      [['run', '--name', 'bad name', img, 'true'], /^tsctl: Invalid container name \(bad name\)/],
      [['run', '-v', 'rel:dir', img, 'true'], /^tsctl: invalid volume specification/],
      [['run', '--cap-add', 'NOPE', img, 'true'], /^tsctl: invalid capability: NOPE\n$/],
      [['run', '--network', 'nope', img, 'true'], /^tsctl: network nope not found\n$/],
      [['run', '-p', '99999:80', img, 'true'], /^tsctl: invalid publish/],
      [['run', '--network', 'none', '-p', '80:80', img, 'true'], /^tsctl: conflicting options/],
      [['run', '--bogus', img], /^tsctl: unknown option '--bogus'\n$/],
    ];
    for (const [args, err] of cases) {
      const r = await ctl(args);
      t.equal(r.code, 125, args.join(' '));
      t.match(r.stderr, err);
    }
    const noFile = await tsctlDirect(['run', '--env-file', '/nonexistent/env', img, 'true']);
    t.same([noFile.code, noFile.stderr], [125, 'tsctl: open /nonexistent/env: no such file or directory\n'], 'a missing --env-file');
    t.equal((await ctl(['rm', 'nosuch'])).stderr, 'tsctl: No such container: nosuch\n');
    t.same(fs.readdirSync(path.join(store.root, 'containers')).sort(), before, 'no container directory or name was made');
  });

  t.test('rm -f after the monitor was killed', async (t) => {
    const r = await ctl(['run', '-d', ...none, img, 'sleep', '600']);
    const id = r.stdout.trim();
    ids.add(id);
    const [pid] = fs.readFileSync(path.join(store.root, 'containers', id, 'monitor.pid'), 'utf8').split(' ');
    process.kill(Number(pid), 'SIGKILL');
    for (let i = 0; i < 50 && fs.existsSync(`/proc/${pid}`) && !fs.readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z'); i++) await sleep(50);
    t.match((await ctl(['ps', '-a'])).stdout, new RegExp(`^${id.slice(0, 12)}.*Exited \\(255\\)`, 'm'), 'a lost monitor shows as exited (255)');
    t.equal((await ctl(['rm', '-f', id])).code, 0);
    await assertNothingLeaked(t, id);
  });

  t.test('afterwards', async (t) => {
    for (const ref of (await ctl(['ps', '-aq', '--no-trunc'])).stdout.split('\n').filter(Boolean)) {
      ids.add(ref);
      t.equal((await ctl(['rm', '-f', ref])).code, 0);
    }
    for (const id of ids) await assertNothingLeaked(t, id, { markers: [store.root] });
    t.same(mountsUnder(store.root), [], 'no mount under the store');
    t.same(findProcesses([], ['tsrun-monitor']).filter((p) => p.cmdline.includes(store.root)), [], 'no monitor left');
  });
});

/** The bundle without the launcher: `node -- dist/tsctl.js` (see the --env-file note above). */
function tsctlDirect(args: string[]) {
  const store = lastStore();
  return exec(process.execPath, ['--', path.join(REPO_ROOT, 'dist', 'tsctl.js'), '--root', store.root, '--runtime-root', store.runtimeRoot, ...args], {
    timeoutMs: 60_000,
    env: { DOCKER_CONFIG: store.dockerConfig, TSCTL_ROOT: undefined },
  });
}
