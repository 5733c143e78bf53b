import type { Command } from 'commander';
import { ociState } from '../lifecycle/container.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('state')
    .description('print the state of a container as JSON')
    .argument('<container-id>')
    .action((id: string) => {
      const { store } = ctx();
      process.stdout.write(JSON.stringify(ociState(store, store.load(id)), null, 2) + '\n');
    });
}
