/**
 * dist/tsrun-lifecycle.js: the commands engines call on every container
 * (create, start, kill, delete, exec) and `run`, without commander. dist/tsrun.js
 * (src/bench/launcher.ts) loads this instead of the whole CLI when argv has
 * one of the exact shapes src/bench/fastpath-args.ts takes: commander is a
 * third of the CLI bundle and its parse ~1.5 ms of a cold start. Each
 * command runs the same action function commander's path runs (src/cli/),
 * after the same setup of the global flags (applyGlobalFlags), and ends through
 * the same exitStatus(): status, stdout and stderr are the CLI's
 * (test/bench/fastpath.test.ts compares the two).
 *
 * Built without commander (scripts/bundle.mjs checks): the src/cli modules
 * imported here register their commands with it, but only their actions are
 * used.
 */
import { Store } from '../lifecycle/store.js';
import { applyGlobalFlags, type Context, exitStatus } from '../cli/context.js';
import { createAction } from '../cli/create.js';
import { runAction } from '../cli/run.js';
import { startAction } from '../cli/start.js';
import { deleteAction } from '../cli/delete.js';
import { killAction } from '../cli/kill.js';
import { execAction } from '../cli/exec.js';
import { type FastLifecycle, parseFastLifecycle } from './fastpath-args.js';
import { markMain } from './trace.js';
import { exitProcess } from './exit.js';

function act(o: FastLifecycle): unknown {
  const { global } = o;
  applyGlobalFlags(global, `${o.command} fast path`);
  const c: Context = { global, store: new Store(global.root) };
  switch (o.command) {
    case 'create':
      return createAction(c, o.id, o.flags);
    case 'run':
      return runAction(c, o.id, o.flags);
    case 'start':
      return startAction(c, o.id);
    case 'delete':
      return deleteAction(c, o.id, o.force);
    case 'kill':
      return killAction(c, o.id, o.signal, o.all);
    case 'exec':
      return execAction(c, o.id, o.args, o.flags);
  }
}

markMain();
const argv = process.argv.slice(2);
const fast = parseFastLifecycle(argv);
void exitStatus(
  () => {
    if (!fast) throw new Error('not a lifecycle fast path: dist/tsrun.js should have loaded the CLI');
    return act(fast);
  },
  () => fast?.command,
).then((code) => exitProcess(code));
