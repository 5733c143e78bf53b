/**
 * tsrun's command line: runc's commands, flags and exit codes. Global flags
 * come before the command (`tsrun --root R --log L --log-format json create
 * --bundle B ID`), exactly where engines put them.
 */
import { Command, CommanderError, Option } from 'commander';
import { describeError } from '../errors.js';
import { log } from '../log.js';
import { OCI_VERSION } from '../oci/types.js';
import { DEFAULT_ROOT, Store } from '../lifecycle/store.js';
import { remove } from '../lifecycle/container.js';
import { applyGlobalFlags, type Context, exitStatus, type GlobalOptions } from './context.js';
import * as createCmd from './create.js';
import * as deleteCmd from './delete.js';
import * as execCmd from './exec.js';
import * as featuresCmd from './features.js';
import * as killCmd from './kill.js';
import * as listCmd from './list.js';
import * as runCmd from './run.js';
import * as specCmd from './spec.js';
import * as startCmd from './start.js';
import * as stateCmd from './state.js';
import * as pauseCmd from './pause.js';
import * as resumeCmd from './resume.js';
import * as updateCmd from './update.js';
import * as eventsCmd from './events.js';
import * as psCmd from './ps.js';
import * as benchCmd from './bench.js';
import * as engineCmd from './engine.js';
import { EngineFallback } from '../engine/host.js';
import { commandOf } from '../engine/server.js';
import { markMain, trace } from '../bench/trace.js';
import { parseFastState, runFastState } from '../bench/fastpath.js';

declare const TSRUN_VERSION: string | undefined;
const VERSION = typeof TSRUN_VERSION === 'string' ? TSRUN_VERSION : '0.0.0-dev';

const LIFECYCLE_COMMANDS = { create: createCmd, start: startCmd, run: runCmd, exec: execCmd, state: stateCmd, kill: killCmd, delete: deleteCmd, list: listCmd, pause: pauseCmd, resume: resumeCmd, update: updateCmd, events: eventsCmd, ps: psCmd };

/**
 * The program, with every command, or with only `only`'s: registering the
 * other sixteen costs ~0.4 ms warm and more cold, on every command, and a
 * known command's parse, errors and --help need nothing of the others. Help
 * and unknown commands (only undefined) get the whole program.
 */
function buildProgram(only?: string): Command {
  const program = new Command('tsrun')
    .description('an OCI container runtime, runc-compatible, written in TypeScript')
    .version(`tsrun version ${VERSION}\nspec: ${OCI_VERSION}\nnode: ${process.version}`, '-v, --version')
    .option('--root <dir>', 'root directory for container state', DEFAULT_ROOT)
    .option('--log <file>', 'log file (default: stderr)')
    .addOption(new Option('--log-format <format>', 'log format').choices(['text', 'json']).default('text'))
    .option('--debug', 'enable debug logging')
    .option('--systemd-cgroup', 'use the systemd cgroup driver')
    .addOption(new Option('--rootless <value>', 'ignored: tsrun detects rootless mode').hideHelp())
    .addOption(new Option('--criu <path>', 'ignored: checkpoint/restore is not supported').hideHelp())
    // Global flags only before the command, as runc parses them; this also
    // keeps `spec --rootless` from being read as the global --rootless.
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .showSuggestionAfterError(false);
  let context: Context | undefined;
  const ctx = (): Context => {
    if (!context) {
      const global = program.opts() as GlobalOptions;
      context = { global, store: new Store(global.root) };
    }
    return context;
  };
  program.hook('preAction', () => applyGlobalFlags(program.opts() as GlobalOptions));
  const all = only === undefined;
  for (const [name, cmd] of Object.entries(LIFECYCLE_COMMANDS)) if (all || only === name) cmd.register(program, ctx);
  if (all || only === 'spec') specCmd.register(program);
  if (all || only === 'features') featuresCmd.register(program);
  if (all || only === 'bench') benchCmd.register(program);
  if (all || only === 'engine') engineCmd.register(program, ctx, { main, parseOnly, deleteForced });
  for (const c of program.commands) c.exitOverride().configureOutput({ outputError: () => undefined });
  return program;
}

const KNOWN = new Set([...Object.keys(LIFECYCLE_COMMANDS), 'spec', 'features', 'bench', 'engine']);

/** The command argv names after the global flags, when it is a known one. */
function namedCommand(argv: readonly string[]): string | undefined {
  const c = commandOf(argv);
  const name = c && argv[c.index];
  return name !== undefined && KNOWN.has(name) ? name : undefined;
}

/** What commander made of a command line (parseOnly). */
export interface Parsed {
  command: string;
  operands: unknown[];
  opts: Record<string, unknown>;
  global: Record<string, unknown>;
}

/**
 * Parses argv exactly as main() does, with every action replaced by one that
 * only records what it was given: the engine's JIT warm-up
 * (src/engine/warmup.ts) runs commander's code without running a command,
 * and the fast paths' tests compare their parse with this one.
 */
export async function parseOnly(argv: string[]): Promise<Parsed | undefined> {
  const program = buildProgram(namedCommand(argv));
  let parsed: Parsed | undefined;
  for (const c of program.commands) {
    c.action((...args: unknown[]) => {
      // commander passes the operands, then the options, then the command.
      const opts = args[args.length - 2] as Record<string, unknown>;
      parsed = { command: c.name(), operands: args.slice(0, -2), opts: { ...opts }, global: { ...program.opts() } };
    });
  }
  await program.parseAsync(argv, { from: 'user' });
  return parsed;
}

export async function main(argv: string[]): Promise<number> {
  markMain();
  // `[global flags] state ID` skips commander (src/bench/fastpath.ts); the same result, ~2.5 ms sooner.
  const fast = parseFastState(argv);
  const program = fast ? undefined : buildProgram(namedCommand(argv));
  if (program) trace('cli: commands registered');
  return outcome(async () => {
    if (fast) runFastState(fast);
    else await program!.parseAsync(argv, { from: 'user' });
  }, () => (fast ? 'state' : program!.args[0]));
}

/**
 * `delete --force ID` in the state root `root`, as main() would run it, for
 * an engine that ends a foreground run on the run's own connection: the
 * logging and the global flags are the run's, already in effect, and
 * commander has nothing to parse (~0.2 ms of a warm run).
 */
export function deleteForced(root: string, id: string): Promise<number> {
  return outcome(() => remove(new Store(root), id, true), () => 'delete');
}

/** A command's exit status, its errors reported as one line (commander's too). */
function outcome(run: () => unknown, command: () => string | undefined): Promise<number> {
  return exitStatus(run, command, (e) => {
    if (e instanceof EngineFallback) throw e; // the engine's launcher runs it cold
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0; // --help, --version
      log.fatal(describeError(e));
      return 1;
    }
    return undefined;
  });
}
