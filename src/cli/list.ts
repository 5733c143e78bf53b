import type { Command } from 'commander';
import { ociState, ownerName } from '../lifecycle/container.js';
import { UserError } from '../errors.js';
import type { Context } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('list')
    .description('list containers')
    .option('-f, --format <format>', 'table or json', 'table')
    .option('-q, --quiet', 'print only the container ids')
    .action((o) => {
      const { store } = ctx();
      if (o.format !== 'table' && o.format !== 'json') throw new UserError(`invalid format option: ${o.format}`);
      const states = store.ids().flatMap((id) => {
        const rec = store.tryLoad(id);
        return rec ? [{ ...ociState(store, rec), owner: ownerName(store, id) }] : [];
      });
      if (o.quiet) {
        for (const s of states) process.stdout.write(s.id + '\n');
      } else if (o.format === 'json') {
        process.stdout.write(JSON.stringify(states) + '\n');
      } else {
        const rows = [['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER']];
        for (const s of states) rows.push([s.id, String(s.pid), s.status, s.bundle, s.created, s.owner]);
        // runc's tabwriter: min width 12, padding 3.
        const widths = rows[0].map((_, c) => Math.max(12, ...rows.map((r) => r[c].length + 3)));
        for (const r of rows) {
          process.stdout.write(r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('') + '\n');
        }
      }
    });
}
