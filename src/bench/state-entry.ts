/**
 * dist/tsrun-state.js: `tsrun [global flags] state ID` alone. dist/tsrun.js
 * (src/bench/launcher.ts) loads this instead of the whole CLI when argv has
 * the fast path's exact shape (src/bench/fastpath-args.ts): ~64 KB to read
 * and compile instead of ~370 KB and its code cache, for the command engines
 * call most often. It does what main() does for that shape, exit status and
 * error lines included (test/bench/fastpath.test.ts compares the two).
 */
import { exitStatus } from '../cli/context.js';
import { exitProcess } from './exit.js';
import { parseFastState, runFastState } from './fastpath.js';
import { markMain } from './trace.js';

markMain();
const fast = parseFastState(process.argv.slice(2));
void exitStatus(
  () => {
    if (!fast) throw new Error('not the state fast path: dist/tsrun.js should have loaded the CLI');
    runFastState(fast);
  },
  () => 'state',
).then((code) => exitProcess(code));
