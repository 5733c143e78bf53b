import type { Command } from 'commander';
import { remove } from '../lifecycle/container.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('delete')
    .description('delete a stopped container and everything it holds')
    .argument('<container-id>')
    .option('-f, --force', 'kill the container first if it is still running')
    .action((id: string, o: { force?: boolean }) => deleteAction(ctx(), id, !!o.force));
}

/** `delete`, once parsed: by commander or by the fast path (src/bench/fastpath.ts). */
export function deleteAction(c: Context, id: string, force: boolean): void {
  remove(c.store, id, force);
}
