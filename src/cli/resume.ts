import type { Command } from 'commander';
import { cgroupsFromPaths } from '../cgroups/manager.js';
import { UserError } from '../errors.js';
import { statusOf } from '../lifecycle/container.js';
import type { Store } from '../lifecycle/store.js';
import { type Context, naming } from './context.js';

/** `resume`: thaw a paused container. */
export function resume(store: Store, id: string): void {
  const rec = store.load(id);
  const status = statusOf(store, rec);
  if (status !== 'paused') throw new UserError(`container not paused: ${status}`);
  cgroupsFromPaths(rec.cgroups!.paths, rec.cgroups!.created).thaw();
}

export function register(program: Command, ctx: () => Context): void {
  program
    .command('resume')
    .description('resume all processes of a paused container')
    .argument('<container-id>')
    .action((id: string) => naming('resume', id, () => resume(ctx().store, id)));
}
