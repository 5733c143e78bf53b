/**
 * The engine serves a launcher only if it shares the engine's namespaces
 * (native/engine.cc sameNamespaces): paths and pids in its command would
 * mean other things otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { engineAddon } from '../../src/engine/wire.js';
import { NAMESPACES } from '../../src/engine/server.js';

async function started(t: Test, cmd: string, args: string[]): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: 'ignore' });
  t.teardown(() => child.kill('SIGKILL'));
  // Until it runs `sleep` (unshare has made its namespace and exec'd).
  for (let i = 0; i < 250; i++) {
    try {
      if (fs.readFileSync(`/proc/${child.pid}/comm`, 'utf8').trim() === 'sleep') return child;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`${cmd} did not start sleep`);
}

t.test('sameNamespaces: ours and a plain child yes; a dead pid, pid 0 and another namespace no', async (t) => {
  const eng = engineAddon();
  t.equal(eng.sameNamespaces(process.pid, NAMESPACES), true, 'this process');
  const child = await started(t, 'sleep', ['30']);
  t.equal(eng.sameNamespaces(child.pid!, NAMESPACES), true, 'a child in our namespaces');
  t.equal(eng.sameNamespaces(0, NAMESPACES), false, 'pid 0');
  const gone = spawn('true');
  await new Promise((r) => gone.on('exit', r));
  t.equal(eng.sameNamespaces(gone.pid!, NAMESPACES), false, 'a pid that no longer exists');
});

t.test('sameNamespaces: a process in a network namespace of its own is not ours', { skip: process.getuid?.() === 0 ? false : 'unshare --net needs root' }, async (t) => {
  const eng = engineAddon();
  const child = await started(t, 'unshare', ['--net', 'sleep', '30']);
  t.equal(eng.sameNamespaces(child.pid!, ['net']), false, 'its net namespace differs');
  t.equal(eng.sameNamespaces(child.pid!, ['mnt', 'pid']), true, 'the others are ours');
  t.equal(eng.sameNamespaces(child.pid!, NAMESPACES), false, 'so it is not served');
});
