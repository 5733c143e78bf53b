/**
 * dist/tsrun-state.js: `tsrun [global flags] state ID` alone. dist/tsrun.js
 * (src/bench/launcher.ts) loads this instead of the whole CLI when argv has
 * the fast path's exact shape (src/bench/fastpath-args.ts): ~64 KB to read
 * and compile instead of ~370 KB and its code cache, for the command engines
 * call most often. It does what main() does for that shape, exit status and
 * error lines included (test/bench/fastpath.test.ts compares the two).
 */
import { describeError, UserError } from '../errors.js';
import { log } from '../log.js';
import { parseFastState, runFastState } from './fastpath.js';
import { markMain } from './trace.js';

function state(argv: string[]): number {
  markMain();
  const fast = parseFastState(argv);
  try {
    if (!fast) throw new Error('not the state fast path: dist/tsrun.js should have loaded the CLI');
    runFastState(fast);
    return 0;
  } catch (e) {
    if (e instanceof UserError) {
      log.fatal(describeError(e));
      return e.exitCode;
    }
    // Not a user error: a bug, reported as main() reports one.
    log.fatal(`internal error in state: ${describeError(e)}`);
    log.debug((e as Error)?.stack ?? '');
    return 1;
  }
}

process.exit(state(process.argv.slice(2)));
