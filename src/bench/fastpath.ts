/**
 * A fast path for `tsrun [global flags] state <id>`, the command engines call
 * most often (and poll): it skips building and running commander's parser,
 * ~2.5 ms of a ~30 ms start here (bench/ab.c, TSRUN_TRACE=1), and does
 * exactly what the commander path does (src/cli/main.ts, state.ts).
 *
 * Conservative on purpose: only the exact shape
 *   [--root DIR] [--log FILE] [--log-format text|json] [--debug] [--systemd-cgroup] state ID
 * (each flag at most once, separate values, an id that is not an option)
 * takes it. Anything else, including --help, `--root=DIR` and a bad
 * --log-format, goes to commander, which owns every error message.
 */
export { parseFastState, type FastState } from './fastpath-args.js';
import { Store } from '../lifecycle/store.js';
import { applyGlobalFlags } from '../cli/context.js';
import { stateAction } from '../cli/state.js';
import type { FastState } from './fastpath-args.js';

/** Runs `state` as the commander path would (preAction, then the action). */
export function runFastState(o: FastState): void {
  applyGlobalFlags(o, 'state fast path');
  stateAction(new Store(o.root), o.id);
}
