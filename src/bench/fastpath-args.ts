/**
 * The shape of `tsrun [global flags] state <id>` (src/bench/fastpath.ts), in
 * a module of its own that imports nothing: dist/tsrun.js checks it before
 * loading anything else, to load the small state bundle instead of the CLI.
 */

/** src/lifecycle/store.ts DEFAULT_ROOT (not imported: that would bring the store into dist/tsrun.js). */
const DEFAULT_ROOT = '/run/tsrun';

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

