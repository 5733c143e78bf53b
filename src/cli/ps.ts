import { spawnSync } from 'node:child_process';
import type { Command } from 'commander';
import { cgroupsFromPaths } from '../cgroups/manager.js';
import { UserError } from '../errors.js';
import type { Store } from '../lifecycle/store.js';
import { type Context, naming } from './context.js';

/** Host PIDs of every process in the container's cgroup. */
export function containerPids(store: Store, id: string): number[] {
  const rec = store.load(id);
  if (!rec.cgroups) return [];
  return cgroupsFromPaths(rec.cgroups.paths, rec.cgroups.created).pids();
}

/** runc's ps: `ps <args>` (default -ef), its header, then the lines whose PID column is one of `pids`. */
export function filterPsOutput(output: string, pids: readonly number[]): string {
  const lines = output.split('\n');
  const header = lines[0] ?? '';
  const pidIndex = header.trim().split(/\s+/).indexOf('PID');
  if (pidIndex < 0) throw new UserError("couldn't find PID field in ps output");
  const want = new Set(pids);
  const out = [header];
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const pid = Number(line.trim().split(/\s+/)[pidIndex]);
    if (want.has(pid)) out.push(line);
  }
  return out.join('\n') + '\n';
}

export function register(program: Command, ctx: () => Context): void {
  program
    .command('ps')
    .description('list the processes running in a container (ps options after the id, default -ef)')
    .argument('<container-id>')
    .argument('[ps-options...]', 'options for ps(1)')
    .option('-f, --format <format>', 'table or json (an array of host PIDs)', 'table')
    .passThroughOptions()
    .action((id: string, rest: string[], o: { format: string }) =>
      naming('ps', id, () => {
        const psArgs = rest[0] === '--' ? rest.slice(1) : rest;
        if (o.format !== 'table' && o.format !== 'json') throw new UserError(`invalid format option: ${o.format}`);
        const pids = containerPids(ctx().store, id);
        if (o.format === 'json') {
          process.stdout.write(JSON.stringify(pids) + '\n');
          return;
        }
        const r = spawnSync('ps', psArgs.length ? psArgs : ['-ef'], { encoding: 'utf8', timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
        if (r.error) throw new UserError(`ps: ${r.error.message}`);
        if (r.status !== 0) throw new UserError(`ps ${psArgs.join(' ')}: exit status ${r.status}: ${(r.stderr || r.stdout).trim()}`);
        process.stdout.write(filterPsOutput(r.stdout, pids));
      }),
    );
}
