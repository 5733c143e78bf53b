/**
 * `tsrun engine start|stop|status`: the resident engine (src/engine/server.ts)
 * for one --root. `start` forks it into the background and returns once it
 * answers; `start --foreground` is the engine itself (for a systemd unit).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { UserError } from '../errors.js';
import { control, serve, type EngineCli } from '../engine/server.js';
import { isAlive, sleepMs } from '../lifecycle/proc.js';
import { writeStdout } from '../bench/stdio.js';
import type { Context } from './context.js';

function seconds(v: string): number {
  if (!/^\d+(\.\d+)?$/.test(v)) throw new InvalidArgumentError('must be a number of seconds');
  return Number(v);
}

function milliseconds(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('must be a whole number of milliseconds');
  return Number(v);
}

export function register(program: Command, ctx: () => Context, cli: EngineCli): void {
  const { main, parseOnly } = cli;
  const engine = program.command('engine').description('a resident engine that serves this --root without starting Node per command');
  engine
    .command('start')
    .description('start the engine for --root (in the background unless --foreground)')
    .option('--foreground', 'serve in this process (for a service manager)')
    .option('--idle-timeout <seconds>', 'exit after this long without a command (default: never)', seconds, 0)
    .option('--warmup <ms>', "time spent warming the JIT before serving (src/engine/warmup.ts); 0: none", milliseconds, 300)
    .action(async (o: { foreground?: boolean; idleTimeout: number; warmup: number }) => {
      const root = path.resolve(ctx().global.root);
      if (process.getuid?.() !== 0) throw new UserError('engine: only root can run the engine');
      if (o.foreground) {
        await serve({ root, idleTimeoutMs: o.idleTimeout * 1000, main, deleteForced: cli.deleteForced, warmUp: { parseOnly, budgetMs: o.warmup } });
        return;
      }
      if (control(root, 'status')) throw new UserError(`an engine already serves --root ${root}`);
      // `--`: Node 20 would read an --env-file anywhere on its command line.
      const args = ['--', path.join(__dirname, 'tsrun.js'), '--root', root, 'engine', 'start', '--foreground'];
      if (o.idleTimeout) args.push('--idle-timeout', String(o.idleTimeout));
      args.push('--warmup', String(o.warmup));
      const child = spawn(process.execPath, args, { detached: true, stdio: 'ignore', cwd: '/' });
      let exited = false;
      child.on('exit', () => (exited = true));
      child.unref();
      for (let i = 0; i < 1000; i++) {
        if (control(root, 'status')) return;
        if (exited) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new UserError(`engine for --root ${root} did not start (run \`tsrun --root ${root} engine start --foreground\` to see why)`);
    });
  engine
    .command('stop')
    .description('stop the engine for --root')
    .action(() => {
      const root = path.resolve(ctx().global.root);
      const s = control(root, 'stop');
      if (!s) throw new UserError(`no engine is running for --root ${root}`);
      for (let i = 0; i < 5000 && isAlive(s.pid); i++) sleepMs(2);
    });
  engine
    .command('status')
    .description("print the engine's state as JSON (exit status 1 when none runs)")
    .action(() => {
      const root = path.resolve(ctx().global.root);
      const s = control(root, 'status');
      if (!s) throw new UserError(`no engine is running for --root ${root}`);
      writeStdout(JSON.stringify(s, null, 2) + '\n');
    });
}
