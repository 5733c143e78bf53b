import type { Command } from 'commander';
import { ociState } from '../lifecycle/container.js';
import { writeStdout } from '../bench/stdio.js';
import type { Store } from '../lifecycle/store.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('state')
    .description('print the state of a container as JSON')
    .argument('<container-id>')
    .action((id: string) => stateAction(ctx().store, id));
}

/** `state`, once parsed: by commander or by the fast path (src/bench/fastpath.ts). */
export function stateAction(store: Store, id: string): void {
  writeStdout(JSON.stringify(ociState(store, store.load(id)), null, 2) + '\n');
}
