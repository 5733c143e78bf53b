import type { Command } from 'commander';
import { cgroupsFromPaths } from '../cgroups/manager.js';
import { eventJSON } from '../cgroups/stats.js';
import { UserError } from '../errors.js';
import { statusOf } from '../lifecycle/container.js';
import type { Store } from '../lifecycle/store.js';
import { type Context, naming } from './context.js';

/** Go's time.ParseDuration for what people pass: "5s", "500ms", "1m30s", "1.5s". */
export function parseDuration(text: string): number {
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/y;
  let ms = 0;
  let pos = 0;
  while (pos < text.length) {
    re.lastIndex = pos;
    const m = re.exec(text);
    if (!m) throw new UserError(`invalid duration ${JSON.stringify(text)} (e.g. 5s, 500ms, 1m)`);
    ms += Number(m[1]) * units[m[2]];
    pos = re.lastIndex;
  }
  if (!text || ms <= 0) throw new UserError(`duration interval must be greater than 0: ${JSON.stringify(text)}`);
  return ms;
}

function load(store: Store, id: string) {
  const rec = store.load(id);
  const status = statusOf(store, rec);
  if (status === 'stopped' || status === 'creating') throw new UserError(`container with id ${id} is not running`);
  if (!rec.cgroups) throw new UserError('container has no cgroups');
  return cgroupsFromPaths(rec.cgroups.paths, rec.cgroups.created);
}

function emit(type: string, id: string, data?: unknown): void {
  process.stdout.write(eventJSON(data === undefined ? { type, id } : { type, id, data }) + '\n');
}

const OOM_POLL_MS = 200;

/**
 * `events`: a stats event every `intervalMs` and an oom event whenever the
 * kernel's OOM-kill counter of the container grows; ends (status 0) once
 * the container has stopped or been deleted.
 */
async function stream(store: Store, id: string, intervalMs: number): Promise<void> {
  const cg = load(store, id);
  let ooms = cg.oomKills() ?? 0n;
  let nextStats = Date.now() + intervalMs;
  const checkOom = () => {
    const now = cg.oomKills();
    if (now !== undefined && now > ooms) emit('oom', id);
    if (now !== undefined) ooms = now;
  };
  for (;;) {
    await new Promise((r) => setTimeout(r, Math.max(1, Math.min(OOM_POLL_MS, nextStats - Date.now()))));
    const rec = store.tryLoad(id);
    try {
      checkOom();
    } catch {
      /* the cgroup went away with the container */
    }
    if (!rec || statusOf(store, rec) === 'stopped') return;
    if (Date.now() >= nextStats) {
      try {
        emit('stats', id, cg.stats());
      } catch (e) {
        process.stderr.write(`tsrun: events ${id}: ${(e as Error).message}\n`);
      }
      nextStats += intervalMs * Math.max(1, Math.ceil((Date.now() - nextStats) / intervalMs));
    }
  }
}

export function register(program: Command, ctx: () => Context): void {
  program
    .command('events')
    .description('print container events: resource statistics every --interval, and OOM kills')
    .argument('<container-id>')
    .option('--interval <duration>', 'how often to print statistics', '5s')
    .option('--stats', 'print the statistics once and exit')
    .action((id: string, o: { interval: string; stats?: boolean }) =>
      naming('events', id, async () => {
        const intervalMs = parseDuration(o.interval);
        const store = ctx().store;
        if (o.stats) emit('stats', id, load(store, id).stats());
        else await stream(store, id, intervalMs);
      }),
    );
}
