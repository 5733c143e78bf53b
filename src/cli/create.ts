import type { Command } from 'commander';
import { create } from '../lifecycle/create.js';
import { type Context, naming, parseNonNegativeInt } from './context.js';

export function register(program: Command, ctx: () => Context): void {
  program
    .command('create')
    .description('create a container; its init waits for `start`')
    .argument('<container-id>')
    .option('-b, --bundle <path>', 'path to the root of the bundle directory', '.')
    .option('--console-socket <path>', 'unix socket that receives the pty master (terminal: true)')
    .option('--pid-file <path>', 'write the init process id to this file')
    .option('--no-pivot', 'do not use pivot_root to jail the process (MS_MOVE + chroot)')
    .option('--no-new-keyring', 'accepted for runc compatibility: tsrun never creates a session keyring')
    .option('--preserve-fds <n>', 'pass N additional file descriptors (from 3) to the container', parseNonNegativeInt('--preserve-fds'), 0)
    .action((id: string, o: CreateFlags) => createAction(ctx(), id, o));
}

/** create's flags as commander parses them (src/bench/fastpath-args.ts makes the same). */
export interface CreateFlags {
  bundle: string;
  consoleSocket?: string;
  pidFile?: string;
  /** false with --no-pivot */
  pivot: boolean;
  preserveFds: number;
}

/** `create`, once parsed: by commander or by the fast path (src/bench/fastpath.ts). */
export async function createAction(c: Context, id: string, o: CreateFlags): Promise<void> {
  await naming('create', id, () =>
    create(c.store, {
      id,
      bundle: o.bundle,
      pidFile: o.pidFile,
      consoleSocket: o.consoleSocket,
      noPivot: o.pivot === false,
      preserveFds: o.preserveFds,
      systemdCgroup: c.global.systemdCgroup,
      mode: 'create',
    }),
  );
}
