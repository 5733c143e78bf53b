/**
 * A person at a terminal: tmux runs `tsrun run` (and `exec -t`) with a
 * busybox shell; we type with send-keys and read the screen with
 * capture-pane, as a user would see it.
 */
import { execFileSync } from 'node:child_process';
import t, { type Test } from 'tap';
import { cleanupContainer, exec, makeBundle, rootFor, tsrun, tsrunBinary, uniqueId } from '../lib/harness.js';

const hasTmux = (() => {
  try {
    execFileSync('tmux', ['-V'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
if (process.getuid?.() !== 0) t.plan(0, 'end-to-end specs need root');
else if (!hasTmux) t.plan(0, 'tmux is not installed (scripts/setup.sh installs it)');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A tmux session running `command`, killed at teardown. */
function session(t: Test, command: string, cols = 100, rows = 30) {
  const name = uniqueId('tty');
  execFileSync('tmux', ['new-session', '-d', '-s', name, '-x', String(cols), '-y', String(rows), command]);
  t.teardown(() => {
    try {
      execFileSync('tmux', ['kill-session', '-t', name], { stdio: 'ignore' });
    } catch {
      /* already gone */
    }
  });
  const screen = () => execFileSync('tmux', ['capture-pane', '-p', '-t', name], { encoding: 'utf8' });
  return {
    type: (...keys: string[]) => execFileSync('tmux', ['send-keys', '-t', name, ...keys]),
    screen,
    resize: (x: number, y: number) => execFileSync('tmux', ['resize-window', '-t', name, '-x', String(x), '-y', String(y)]),
    /** waits (bounded) until the screen matches */
    async waitFor(re: RegExp, ms = 10_000): Promise<boolean> {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        if (re.test(screen())) return true;
        await sleep(50);
      }
      return false;
    },
  };
}

t.test('run with terminal: prompt, output, window size, Ctrl-C, exit status, tty restored', async (t) => {
  const b = await makeBundle(t, (c) => {
    c.process.terminal = true;
    c.process.args = ['sh'];
  });
  const id = uniqueId('tty');
  cleanupContainer(t, id);
  const tsrunCmd = `${tsrunBinary()} --root ${rootFor('tsrun')} run --bundle ${b.dir} ${id}`;
  const s = session(t, `${tsrunCmd}; echo EXIT=$?; stty -a | grep -o ' -\\?icanon'; sleep 60`);
  t.ok(await s.waitFor(/^\/ #\s*$/m), 'the shell prompt appears', { screen: s.screen() });
  s.type('echo hello-$((6*7)); tty', 'Enter');
  t.ok(await s.waitFor(/^hello-42$/m), 'output of a typed command', { screen: s.screen() });
  t.match(s.screen(), /^\/dev\/pts\/0$/m, 'stdin is the container pty');
  s.type('stty size', 'Enter');
  t.ok(await s.waitFor(/^30 100$/m), 'the pty has the terminal size', { screen: s.screen() });
  s.resize(80, 20);
  await sleep(200);
  s.type('clear; stty size', 'Enter');
  t.ok(await s.waitFor(/^20 80$/m), 'a window resize reaches the container', { screen: s.screen() });
  s.type('sleep 1000', 'Enter');
  await sleep(300);
  s.type('C-c');
  s.type('echo after-interrupt', 'Enter');
  t.ok(await s.waitFor(/^after-interrupt$/m), 'Ctrl-C interrupts the foreground command, not tsrun', { screen: s.screen() });
  s.type('exit 4', 'Enter');
  t.ok(await s.waitFor(/^EXIT=4$/m), 'the exit status comes through', { screen: s.screen() });
  t.ok(await s.waitFor(/^ icanon$/m), 'the caller terminal is back in canonical mode', { screen: s.screen() });
  t.equal((await tsrun(['state', id])).code, 1, 'the container is gone after run');
});

t.test('exec -t into a running container', async (t) => {
  const b = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '120'];
  });
  const id = uniqueId('tty');
  cleanupContainer(t, id);
  t.equal((await tsrun(['run', '-d', '--bundle', b.dir, id], { stdout: 'ignore' })).code, 0);
  const s = session(t, `${tsrunBinary()} --root ${rootFor('tsrun')} exec -t ${id} sh; echo EXIT=$?; sleep 60`);
  t.ok(await s.waitFor(/^\/ #\s*$/m), 'a prompt from the exec shell', { screen: s.screen() });
  s.type('echo inside-$(cat /proc/1/comm)', 'Enter');
  t.ok(await s.waitFor(/^inside-sleep$/m), 'the shell sees the container init', { screen: s.screen() });
  s.type('exit 3', 'Enter');
  t.ok(await s.waitFor(/^EXIT=3$/m), 'exit status of exec -t', { screen: s.screen() });
  const still = JSON.parse((await tsrun(['state', id])).stdout);
  t.equal(still.status, 'running', 'the container keeps running');
});

t.test('run -t without a tty on stdin still works (input piped)', async (t) => {
  const b = await makeBundle(t, (c) => {
    c.process.terminal = true;
    c.process.args = ['sh', '-c', 'read line; echo got:$line; tty'];
  });
  const id = uniqueId('tty');
  cleanupContainer(t, id);
  const r = await exec(tsrunBinary(), ['--root', rootFor('tsrun'), 'run', '--bundle', b.dir, id], { input: 'typed\n' });
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /got:typed/);
  t.match(r.stdout, /\/dev\/pts\/0/);
});

// libuv (Node 20's) takes POLLHUP plus a short read from a pty master for
// end of file while the kernel may still hold output written just before
// the slave's last close (libuv#4992); before the relay read that rest
// itself, about one `run -t` in six of this lost its tail here.
t.test('run -t and exec -t: all of the output written just before exit arrives, in order', async (t) => {
  const count = 20000;
  const want = Array.from({ length: count }, (_, i) => `${i + 1}\r\n`).join('');
  const rounds = 20;
  const b = await makeBundle(t, (c) => {
    c.process.terminal = true;
    c.process.args = ['seq', '1', String(count)];
  });
  for (let i = 0; i < rounds; i++) {
    const id = uniqueId('tty');
    cleanupContainer(t, id);
    const r = await exec(tsrunBinary(), ['--root', rootFor('tsrun'), 'run', '--bundle', b.dir, id], { input: '' });
    if (r.code !== 0 || r.stdout !== want) {
      t.fail(`run -t round ${i + 1}: exit ${r.code}, ${r.stdout.length} of ${want.length} bytes, ends ${JSON.stringify(r.stdout.slice(-24))}`);
      return;
    }
  }
  const d = await makeBundle(t, (c) => {
    c.process.args = ['sleep', '120'];
  });
  const id = uniqueId('tty');
  cleanupContainer(t, id);
  t.equal((await tsrun(['run', '-d', '--bundle', d.dir, id], { stdout: 'ignore' })).code, 0);
  for (let i = 0; i < rounds; i++) {
    const r = await exec(tsrunBinary(), ['--root', rootFor('tsrun'), 'exec', '-t', id, 'seq', '1', String(count)], { input: '' });
    if (r.code !== 0 || r.stdout !== want) {
      t.fail(`exec -t round ${i + 1}: exit ${r.code}, ${r.stdout.length} of ${want.length} bytes, ends ${JSON.stringify(r.stdout.slice(-24))}`);
      return;
    }
  }
  t.pass(`${rounds} runs and ${rounds} execs each relayed all ${want.length} bytes`);
});
