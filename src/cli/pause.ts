import type { Command } from 'commander';
import { cgroupsFromPaths } from '../cgroups/manager.js';
import { UserError } from '../errors.js';
import { statusOf } from '../lifecycle/container.js';
import type { Store } from '../lifecycle/store.js';
import { type Context, naming } from './context.js';

/** `pause`: freeze every process of a running (or created) container; `state` then says "paused". */
export function pause(store: Store, id: string): void {
  const rec = store.load(id);
  const status = statusOf(store, rec);
  if (status !== 'running' && status !== 'created') throw new UserError(`container not running or created: ${status}`);
  if (!rec.cgroups) throw new UserError('container has no cgroups to freeze');
  cgroupsFromPaths(rec.cgroups.paths, rec.cgroups.created).freeze();
}

export function register(program: Command, ctx: () => Context): void {
  program
    .command('pause')
    .description('suspend all processes in the container (cgroup freezer)')
    .argument('<container-id>')
    .action((id: string) => naming('pause', id, () => pause(ctx().store, id)));
}
