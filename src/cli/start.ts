import type { Command } from 'commander';
import { start } from '../lifecycle/container.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('start')
    .description('start a created container: its init execs the user process')
    .argument('<container-id>')
    .action((id: string) => startAction(ctx(), id));
}

/** `start`, once parsed: by commander or by the fast path (src/bench/fastpath.ts). */
export function startAction(c: Context, id: string): void {
  start(c.store, id);
}
