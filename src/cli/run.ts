import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { destroy, hookState, runStartContainerHooks } from '../lifecycle/container.js';
import { hasHooks, runHooksWarn } from '../lifecycle/hooks.js';
import { create, type Created, startRun } from '../lifecycle/create.js';
import { Foreground } from '../lifecycle/foreground.js';
import { openConsoleChannel, startRelay } from '../lifecycle/terminal.js';
import { type Context, ExitRequest, naming, parseNonNegativeInt } from './context.js';
import { trace } from '../bench/trace.js';
import { EngineFallback, processHost } from '../engine/host.js';


export function register(program: Command, ctx: () => Context): void {
  program
    .command('run')
    .description('create and start a container; without -d, wait for it and exit with its status')
    .argument('<container-id>')
    .option('-b, --bundle <path>', 'path to the root of the bundle directory', '.')
    .option('-d, --detach', 'detach from the container process')
    .option('--keep', 'do not delete the container after it exits')
    .option('--console-socket <path>', 'unix socket that receives the pty master (terminal: true)')
    .option('--pid-file <path>', 'write the init process id to this file')
    .option('--no-pivot', 'do not use pivot_root to jail the process (MS_MOVE + chroot)')
    .option('--no-new-keyring', 'accepted for runc compatibility: tsrun never creates a session keyring')
    .option('--preserve-fds <n>', 'pass N additional file descriptors (from 3) to the container', parseNonNegativeInt('--preserve-fds'), 0)
    .action((id: string, o: RunFlags) => runAction(ctx(), id, o));
}

/** run's flags as commander parses them (src/bench/fastpath-args.ts makes the same). */
export interface RunFlags {
  bundle: string;
  detach?: boolean;
  keep?: boolean;
  consoleSocket?: string;
  pidFile?: string;
  pivot: boolean;
  preserveFds: number;
}

/** `run`, once parsed: by commander or by the fast path (src/bench/fastpath.ts). */
export function runAction(c: Context, id: string, o: RunFlags): Promise<void> {
  return naming('run', id, () => run(c, id, o));
}

async function run(c: Context, id: string, o: RunFlags): Promise<void> {
  // A terminal with nobody to hand it to: the person at this terminal gets it.
  const relayed = !o.consoleSocket && !o.detach && wantsTerminal(o.bundle);
  // The terminal relay is this process's job (src/lifecycle/terminal.ts), which a launcher does not do.
  const host = processHost();
  if (relayed && host.remote) throw new EngineFallback('terminal relay');
  const channel = relayed ? openConsoleChannel() : undefined;
  // Signals are intercepted (and queued) from now on, not only once the
  // container runs; in an engine, by the launcher.
  const fg = o.detach || host.remote ? undefined : new Foreground();
  let created: Created;
  try {
    created = create(c.store, {
      id,
      bundle: o.bundle,
      pidFile: o.pidFile,
      consoleSocket: o.consoleSocket,
      consoleFd: channel?.theirs,
      noPivot: o.pivot === false,
      preserveFds: o.preserveFds,
      systemdCgroup: c.global.systemdCgroup,
      mode: 'run',
      foreground: !o.detach,
    });
  } catch (e) {
    fg?.release();
    throw e;
  }
  fg?.attach(created.rec.pid);
  try {
    runStartContainerHooks(c.store, created.rec);
    startRun(c.store, created);
    // The hook state only when there is a hook to read it (~0.1 ms of a warm run).
    if (hasHooks(created.rec.config, 'poststart')) {
      runHooksWarn('poststart', {
        spec: created.rec.config,
        state: hookState(c.store, created.rec, 'running'),
        initPid: created.rec.pid,
        dir: c.store.dir(id),
      });
    }
  } catch (e) {
    fg?.release();
    destroy(c.store, created.rec);
    throw e;
  }
  if (o.detach) return;
  // In an engine: the launcher waits for its child, then runs the delete.
  if (!fg) return host.handOver(created.rec.pid, o.keep ? undefined : id);
  const code = await fg.wait(channel ? startRelay(channel) : undefined);
  trace('run: container exited');
  if (!o.keep) destroy(c.store, c.store.load(id));
  trace('run: deleted');
  throw new ExitRequest(code);
}

function wantsTerminal(bundle: string): boolean {
  try {
    // Only process.terminal: create reads, validates and reports the whole config
    // (validating it here too cost every run ~0.5 ms).
    const config = JSON.parse(fs.readFileSync(path.join(path.resolve(bundle), 'config.json'), 'utf8')) as {
      process?: { terminal?: unknown };
    };
    return config.process?.terminal === true;
  } catch {
    return false; // create reports the problem itself
  }
}
