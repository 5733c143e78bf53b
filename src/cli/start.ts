import type { Command } from 'commander';
import { start } from '../lifecycle/container.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('start')
    .description('start a created container: its init execs the user process')
    .argument('<container-id>')
    .action((id: string) => start(ctx().store, id));
}
