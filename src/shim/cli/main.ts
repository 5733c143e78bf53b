/**
 * tsctl's command line: Docker's image and container workflow on top of
 * tsrun. Each group of commands lives in its own file and registers itself
 * here; errors are handled once, as tsrun does: a UserError is one line on
 * stderr and a non-zero exit, anything else is a bug and says so.
 */
import { Command, CommanderError } from 'commander';
import { UserError } from '../../errors.js';
import { DEFAULT_RUNTIME, DEFAULT_SHIM_ROOT, type ShimContext, type ShimGlobals } from './context.js';

declare const TSRUN_VERSION: string | undefined;
const VERSION = typeof TSRUN_VERSION === 'string' ? TSRUN_VERSION : '0.0.0-dev';

/** A command group: registers its commands on the program. */
export type Registrar = (program: Command, ctx: ShimContext) => void;

const registrars: Registrar[] = [];

function buildProgram(): Command {
  const program = new Command('tsctl')
    .description('images and containers on top of the tsrun runtime, the Docker way')
    .version(`tsctl version ${VERSION}`, '-v, --version')
    .option('--root <dir>', 'store for images, snapshots and containers (env TSCTL_ROOT)', DEFAULT_SHIM_ROOT)
    .option('--runtime <path>', 'the tsrun binary (env TSCTL_RUNTIME)', DEFAULT_RUNTIME)
    .option('--runtime-root <dir>', "tsrun's --root for tsctl's containers (default <root>/runtime)")
    .option('--debug', 'print debug information')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: () => undefined })
    .showSuggestionAfterError(false);
  const ctx: ShimContext = () => {
    const o = program.opts() as { root: string; runtime: string; runtimeRoot?: string; debug?: boolean };
    const g: ShimGlobals = { root: o.root, runtime: o.runtime, runtimeRoot: o.runtimeRoot ?? `${o.root}/runtime`, debug: !!o.debug };
    return g;
  };
  for (const register of registrars) register(program, ctx);
  for (const c of program.commands) c.exitOverride().configureOutput({ outputError: () => undefined });
  return program;
}

function fatal(msg: string): void {
  process.stderr.write(`tsctl: ${msg}\n`);
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (e) {
    if (e instanceof ShimExit) return e.code;
    if (e instanceof CommanderError) {
      if (e.exitCode === 0) return 0; // --help, --version
      fatal(e.message.replace(/^error: /, ''));
      return 125; // docker's status for an error of the command itself
    }
    if (e instanceof UserError) {
      fatal(e.message);
      return e.exitCode;
    }
    fatal(`internal error${program.args[0] ? ` in ${program.args[0]}` : ''}: ${(e as Error)?.message ?? String(e)}`);
    if (program.opts().debug) process.stderr.write(`${(e as Error)?.stack ?? ''}\n`);
    return 1;
  }
}

/** Exit status a command asks for (`run`, `start -a` pass the container's through). */
export class ShimExit {
  constructor(readonly code: number) {}
}

export function addRegistrar(r: Registrar): void {
  registrars.push(r);
}
