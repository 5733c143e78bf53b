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
import { configureLog, log } from '../log.js';
import { ociState } from '../lifecycle/container.js';
import { DEFAULT_ROOT, Store } from '../lifecycle/store.js';
import { writeStdout } from './stdio.js';
import { enableTrace, trace } from './trace.js';

export interface FastState {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  id: string;
}

/** The parsed arguments when argv has the exact fast-path shape, else undefined. */
export function parseFastState(argv: readonly string[]): FastState | undefined {
  const out: FastState = { root: DEFAULT_ROOT, logFormat: 'text', debug: false, id: '' };
  const seen = new Set<string>();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) break;
    if (seen.has(a)) return undefined;
    seen.add(a);
    if (a === '--debug') out.debug = true;
    else if (a === '--systemd-cgroup') continue;
    else if (a === '--root' || a === '--log' || a === '--log-format') {
      const v = argv[++i];
      if (v === undefined || v.startsWith('-')) return undefined;
      if (a === '--root') out.root = v;
      else if (a === '--log') out.log = v;
      else if (v === 'text' || v === 'json') out.logFormat = v;
      else return undefined;
    } else return undefined;
  }
  if (argv[i] !== 'state' || i + 2 !== argv.length) return undefined;
  const id = argv[i + 1]!;
  if (id.startsWith('-')) return undefined;
  out.id = id;
  return out;
}

/** Runs `state` as the commander path would (preAction, then the action). */
export function runFastState(o: FastState): void {
  configureLog({ file: o.log, format: o.logFormat, debug: o.debug });
  if (o.debug) enableTrace(o.log ? (line) => log.debug(line) : undefined);
  trace('cli: arguments parsed (state fast path)');
  const store = new Store(o.root);
  writeStdout(JSON.stringify(ociState(store, store.load(o.id)), null, 2) + '\n');
}
