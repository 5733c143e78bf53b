/**
 * The shapes of the commands that skip commander (src/bench/fastpath.ts),
 * in a module of its own that imports nothing: dist/tsrun.js checks argv
 * against them before loading anything else, to load a small bundle instead
 * of the whole CLI.
 *
 *   [global flags] state ID                                 dist/tsrun-state.js
 *   [global flags] create|run|start|kill|delete|exec ...    dist/tsrun-lifecycle.js
 *
 * The lifecycle commands are what engines call on every container
 * (containerd's shim, conmon, `docker run` through containerd): `create
 * --bundle B --pid-file P [--console-socket S] ID`, `start ID`, `kill ID
 * SIG`, `delete [--force] ID`, `exec --process F --detach --pid-file P ID`,
 * and `run` or `exec ID CMD...` for a person. Commander is a third of the
 * CLI bundle; without it these start sooner (README.md, Benchmarks).
 *
 * Conservative on purpose: only the exact shapes below (each flag at most
 * once, as a separate argument, values and ids that do not start with '-')
 * are taken. Anything else, including --help, `--root=DIR`, `-db`, `--`, a
 * bad --log-format or --preserve-fds, goes to commander, which owns every
 * error message.
 */

/** src/lifecycle/store.ts DEFAULT_ROOT (not imported: that would bring the store into dist/tsrun.js). */
const DEFAULT_ROOT = '/run/tsrun';

/** The global flags, as commander's program.opts() has them for these shapes. */
export interface FastGlobal {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
}

export interface FastState {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  id: string;
}

/** create's and run's flags, named as commander names them (src/cli/create.ts, run.ts). */
export interface FastCreateFlags {
  bundle: string;
  consoleSocket?: string;
  pidFile?: string;
  /** false with --no-pivot */
  pivot: boolean;
  preserveFds: number;
  /** run only */
  detach?: boolean;
  keep?: boolean;
}

/** exec's flags, named as commander names them (src/cli/exec.ts); the repeatable ones are commander's to fill. */
export interface FastExecFlags {
  process?: string;
  detach?: boolean;
  pidFile?: string;
  consoleSocket?: string;
  tty?: boolean;
  cwd?: string;
  user?: string;
  /** false with --no-new-privs */
  newPrivs: boolean;
  preserveFds: number;
  env: string[];
  additionalGids: string[];
  cap: string[];
}

export type FastLifecycle =
  | { command: 'create' | 'run'; global: FastGlobal; id: string; flags: FastCreateFlags }
  | { command: 'exec'; global: FastGlobal; id: string; args: string[]; flags: FastExecFlags }
  | { command: 'start'; global: FastGlobal; id: string }
  | { command: 'delete'; global: FastGlobal; id: string; force: boolean }
  | { command: 'kill'; global: FastGlobal; id: string; signal: string; all: boolean };

/** A value or an id as commander would take it here: present and not an option. */
const plain = (v: string | undefined): v is string => v !== undefined && v !== '' && !v.startsWith('-');

/** The global flags before the command, and where the command is; undefined if not the simple shape. */
function parseGlobal(argv: readonly string[]): { global: FastGlobal; at: number } | undefined {
  const global: FastGlobal = { root: DEFAULT_ROOT, logFormat: 'text', debug: false, systemdCgroup: false };
  const seen = new Set<string>();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) break;
    if (seen.has(a)) return undefined;
    seen.add(a);
    if (a === '--debug') global.debug = true;
    else if (a === '--systemd-cgroup') global.systemdCgroup = true;
    else if (a === '--root' || a === '--log' || a === '--log-format') {
      const v = argv[++i];
      if (!plain(v)) return undefined;
      if (a === '--root') global.root = v;
      else if (a === '--log') global.log = v;
      else if (v === 'text' || v === 'json') global.logFormat = v;
      else return undefined;
    } else return undefined;
  }
  return { global, at: i };
}

/** The parsed arguments when argv has the exact `state` fast-path shape, else undefined. */
export function parseFastState(argv: readonly string[]): FastState | undefined {
  const g = parseGlobal(argv);
  if (!g || argv[g.at] !== 'state' || g.at + 2 !== argv.length) return undefined;
  const id = argv[g.at + 1]!;
  if (id.startsWith('-')) return undefined;
  const { root, log, logFormat, debug } = g.global;
  return { root, ...(log === undefined ? {} : { log }), logFormat, debug, id };
}

// Each command's flags: those that take a value, and those that do not.
const CREATE_VALUES = ['-b', '--bundle', '--console-socket', '--pid-file', '--preserve-fds'];
const CREATE_SWITCHES = ['--no-pivot', '--no-new-keyring'];
const RUN_SWITCHES = [...CREATE_SWITCHES, '-d', '--detach', '--keep'];
const EXEC_VALUES = ['-p', '--process', '--pid-file', '--console-socket', '--cwd', '-u', '--user', '--preserve-fds'];
const EXEC_SWITCHES = ['-d', '--detach', '-t', '--tty', '--no-new-privs'];
// Short and long spellings of one flag count as one (`-b B --bundle C` is commander's).
const SAME: Record<string, string> = {
  '-b': '--bundle',
  '-d': '--detach',
  '-f': '--force',
  '-a': '--all',
  '-p': '--process',
  '-t': '--tty',
  '-u': '--user',
};

/**
 * The command's flags (before its operands) and its operands; undefined when
 * anything is not the simple shape.
 */
function parseCommand(
  rest: readonly string[],
  values: readonly string[],
  switches: readonly string[],
  /** exec: after the id, the command and its arguments, passed through as they are (commander's passThroughOptions) */
  passThrough = false,
): { opts: Map<string, string | true>; operands: string[] } | undefined {
  const opts = new Map<string, string | true>();
  let i = 0;
  for (; i < rest.length; i++) {
    const a = rest[i]!;
    if (!a.startsWith('-')) break;
    const name = SAME[a] ?? a;
    if (opts.has(name)) return undefined;
    if (values.includes(a)) {
      const v = rest[++i];
      if (!plain(v)) return undefined;
      opts.set(name, v);
    } else if (switches.includes(a)) opts.set(name, true);
    else return undefined;
  }
  const operands = rest.slice(i);
  // Options after an operand are commander's to place; after exec's id they are the command's,
  // but `--` is still commander's.
  if (passThrough ? !plain(operands[0]) || operands.includes('--') : operands.some((o) => !plain(o))) return undefined;
  return { opts, operands };
}

/** --preserve-fds as commander makes it (0 when absent); undefined when not digits: commander's error to give. */
function preserveFdsOf(opts: Map<string, string | true>): number | undefined {
  const v = opts.get('--preserve-fds');
  if (v === undefined) return 0;
  return typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Copies the given flags' values, where given, into `into` under commander's names. */
function copyValues<T>(opts: Map<string, string | true>, into: T, names: readonly (readonly [string, keyof T])[]): void {
  for (const [flag, key] of names) {
    const v = opts.get(flag);
    if (typeof v === 'string') into[key] = v as T[keyof T];
  }
}

/** The parsed arguments when argv has one of the lifecycle fast-path shapes, else undefined. */
export function parseFastLifecycle(argv: readonly string[]): FastLifecycle | undefined {
  const g = parseGlobal(argv);
  if (!g) return undefined;
  const { global } = g;
  const command = argv[g.at];
  const rest = argv.slice(g.at + 1);
  switch (command) {
    case 'create':
    case 'run': {
      const p = parseCommand(rest, CREATE_VALUES, command === 'run' ? RUN_SWITCHES : CREATE_SWITCHES);
      const preserveFds = p && preserveFdsOf(p.opts);
      if (!p || p.operands.length !== 1 || preserveFds === undefined) return undefined;
      const flags: FastCreateFlags = { bundle: '.', pivot: !p.opts.has('--no-pivot'), preserveFds };
      copyValues(p.opts, flags, [
        ['--bundle', 'bundle'],
        ['--console-socket', 'consoleSocket'],
        ['--pid-file', 'pidFile'],
      ]);
      if (p.opts.has('--detach')) flags.detach = true;
      if (p.opts.has('--keep')) flags.keep = true;
      return { command, global, id: p.operands[0]!, flags };
    }
    case 'start': {
      const p = parseCommand(rest, [], []);
      if (!p || p.operands.length !== 1) return undefined;
      return { command, global, id: p.operands[0]! };
    }
    case 'delete': {
      const p = parseCommand(rest, [], ['-f', '--force']);
      if (!p || p.operands.length !== 1) return undefined;
      return { command, global, id: p.operands[0]!, force: p.opts.has('--force') };
    }
    case 'exec': {
      const p = parseCommand(rest, EXEC_VALUES, EXEC_SWITCHES, true);
      const preserveFds = p && preserveFdsOf(p.opts);
      if (!p || p.operands.length < 1 || preserveFds === undefined) return undefined;
      const flags: FastExecFlags = { newPrivs: !p.opts.has('--no-new-privs'), preserveFds, env: [], additionalGids: [], cap: [] };
      copyValues(p.opts, flags, [
        ['--process', 'process'],
        ['--pid-file', 'pidFile'],
        ['--console-socket', 'consoleSocket'],
        ['--cwd', 'cwd'],
        ['--user', 'user'],
      ]);
      if (p.opts.has('--detach')) flags.detach = true;
      if (p.opts.has('--tty')) flags.tty = true;
      return { command, global, id: p.operands[0]!, args: p.operands.slice(1), flags };
    }
    case 'kill': {
      const p = parseCommand(rest, [], ['-a', '--all']);
      if (!p || p.operands.length < 1 || p.operands.length > 2) return undefined;
      return { command, global, id: p.operands[0]!, signal: p.operands[1] ?? 'SIGTERM', all: p.opts.has('--all') };
    }
    default:
      return undefined;
  }
}
