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
    .action((id: string, signal: string, o: { all?: boolean }) => killAction(ctx(), id, signal, !!o.all));
}

/** `kill`, once parsed: by commander or by the fast path (src/bench/fastpath.ts). */
export function killAction(c: Context, id: string, signal: string, all: boolean): void {
  kill(c.store, id, parseSignal(signal), all);
}
