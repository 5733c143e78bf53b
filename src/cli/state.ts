import type { Command } from 'commander';
import { ociState } from '../lifecycle/container.js';
import { writeStdout } from '../bench/stdio.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('state')
    .description('print the state of a container as JSON')
    .argument('<container-id>')
    .action((id: string) => {
      // src/bench/fastpath.ts does the same for `[global flags] state ID` without commander: keep them alike.
      const { store } = ctx();
      writeStdout(JSON.stringify(ociState(store, store.load(id)), null, 2) + '\n');
    });
}
