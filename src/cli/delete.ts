import type { Command } from 'commander';
import { remove } from '../lifecycle/container.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('delete')
    .description('delete a stopped container and everything it holds')
    .argument('<container-id>')
    .option('-f, --force', 'kill the container first if it is still running')
    .action((id: string, o) => remove(ctx().store, id, !!o.force));
}
