/** What every command gets from the global flags, and how a command's end becomes an exit status. */
import { InvalidArgumentError } from 'commander';
import { describeError, UserError } from '../errors.js';
import { configureLog, log } from '../log.js';
import { enableTrace, trace } from '../bench/trace.js';
import { Store } from '../lifecycle/store.js';

export interface GlobalOptions {
  root: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug: boolean;
  systemdCgroup: boolean;
}

export interface Context {
  global: GlobalOptions;
  store: Store;
}

/** Process exit code a command asks for (run passes the container's through). */
export class ExitRequest {
  constructor(readonly code: number) {}
}

export function parseNonNegativeInt(flag: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new InvalidArgumentError("must be a non-negative integer");
    return Number(v);
  };
}

/** Runs a container command so its errors name it: "create c1: mount proc on /proc: ...". */
export async function naming<T>(command: string, id: string, fn: () => T | Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof UserError && !(e instanceof NamedError)) throw new NamedError(`${command} ${id}: ${e.message}`, e.exitCode);
    throw e;
  }
}

class NamedError extends UserError {}

/**
 * A command's exit status, its errors reported as one line: main() and the
 * fast paths (src/bench/) alike. `special` may claim an error first (main()'s
 * commander and engine errors): a status, or undefined to go on.
 */
export async function exitStatus(
  run: () => unknown,
  command: () => string | undefined,
  special?: (e: unknown) => number | undefined,
): Promise<number> {
  try {
    await run();
    return 0;
  } catch (e) {
    if (e instanceof ExitRequest) return e.code;
    const claimed = special?.(e);
    if (claimed !== undefined) return claimed;
    if (e instanceof UserError) {
      log.fatal(describeError(e));
      return e.exitCode;
    }
    const cmd = command();
    // Not a user error: a bug. Keep the stack where --debug can show it.
    log.fatal(`internal error${cmd ? ` in ${cmd}` : ''}: ${describeError(e)}`);
    log.debug((e as Error)?.stack ?? '');
    return 1;
  }
}

/**
 * What the global flags set up before any command runs: main()'s preAction
 * hook and the fast paths (src/bench/) alike. Logging as they say, and with
 * --debug the per-step timing (src/bench/trace.ts), to the log file when
 * there is one. `path` names a fast path in the trace.
 */
export function applyGlobalFlags(g: { log?: string; logFormat: 'text' | 'json'; debug?: boolean }, path = ''): void {
  configureLog({ file: g.log, format: g.logFormat, debug: !!g.debug });
  if (g.debug) enableTrace(g.log ? (line) => log.debug(line) : undefined);
  trace(`cli: arguments parsed${path ? ` (${path})` : ''}`);
}
