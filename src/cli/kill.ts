import type { Command } from 'commander';
import { kill, parseSignal } from '../lifecycle/container.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('kill')
    .description('send a signal (default SIGTERM) to the container init')
    .argument('<container-id>')
    .argument('[signal]', 'signal name (KILL, SIGKILL) or number', 'SIGTERM')
    .option('-a, --all', "send the signal to every process in the container's cgroup")
    .action((id: string, signal: string, o) => kill(ctx().store, id, parseSignal(signal), !!o.all));
}
