import type { Command } from 'commander';
import { UserError } from '../errors.js';
import { execProcess } from '../lifecycle/exec.js';
import fs from 'node:fs';
import { Foreground } from '../lifecycle/foreground.js';
import { openConsoleChannel, startRelay } from '../lifecycle/terminal.js';
import { type Context, ExitRequest, naming, parseNonNegativeInt } from './context.js';
import { EngineFallback, processHost } from '../engine/host.js';

const collect = (v: string, prev: string[]) => [...prev, v];

export function register(program: Command, ctx: () => Context): void {
  program
    .command('exec')
    .description('run a new process inside a running container')
    .argument('<container-id>')
    .argument('[command...]', 'the command and its arguments')
    .option('--console-socket <path>', 'unix socket that receives the pty master (with -t)')
    .option('--cwd <path>', 'working directory in the container')
    .option('-e, --env <KEY=VALUE>', 'set an environment variable (repeatable)', collect, [])
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-u, --user <uid[:gid]>', 'user to run as')
    .option('-g, --additional-gids <gid>', 'additional group (repeatable)', collect, [])
    .option('-p, --process <file>', 'a process.json describing the whole process')
    .option('-d, --detach', 'detach from the process')
    .option('--pid-file <path>', 'write the process id to this file')
    .option('--process-label <label>', 'SELinux label for the process')
    .option('--apparmor <profile>', 'AppArmor profile for the process')
    .option('--no-new-privs', 'set no_new_privs for the process')
    .option('-c, --cap <capability>', 'add a capability (repeatable)', collect, [])
    .option('--preserve-fds <n>', 'pass N additional file descriptors (from 3)', parseNonNegativeInt('--preserve-fds'), 0)
    .option('--cgroup <path>', "run in this sub-cgroup of the container's cgroup")
    .option('--ignore-paused', 'exec even if the container is paused')
    .passThroughOptions()
    .action((id: string, command: string[], o: ExecFlags) => execAction(ctx(), id, command, o));
}

/** exec's flags as commander parses them (src/bench/fastpath-args.ts makes the same). */
export interface ExecFlags {
  consoleSocket?: string;
  cwd?: string;
  env: string[];
  tty?: boolean;
  user?: string;
  additionalGids: string[];
  process?: string;
  detach?: boolean;
  pidFile?: string;
  processLabel?: string;
  apparmor?: string;
  newPrivs?: boolean;
  cap: string[];
  preserveFds: number;
  cgroup?: string;
  ignorePaused?: boolean;
}

/** `exec`, once parsed: by commander or by the fast path (src/bench/fastpath.ts). */
export function execAction(c: Context, id: string, command: string[], o: ExecFlags): Promise<void> {
  return naming('exec', id, () => exec(c, id, command, o));
}

async function exec(c: Context, id: string, command: string[], o: ExecFlags): Promise<void> {
  const gids = o.additionalGids.map((g) => {
    if (!/^\d+$/.test(g)) throw new UserError(`--additional-gids: invalid value ${JSON.stringify(g)}`);
    return Number(g);
  });
  for (const e of o.env) if (!e.includes('=')) throw new UserError(`--env: ${JSON.stringify(e)} must be KEY=VALUE`);
  const wantsTty = o.process ? processWantsTerminal(o.process) : !!o.tty;
  const relayed = wantsTty && !o.consoleSocket && !o.detach;
  // The terminal relay is this process's job (src/lifecycle/terminal.ts), which a launcher does not do.
  const host = processHost();
  if (relayed && host.remote) throw new EngineFallback('terminal relay');
  const channel = relayed ? openConsoleChannel() : undefined;
  const fg = o.detach || host.remote ? undefined : new Foreground();
  let pid: number;
  try {
    ({ pid } = execProcess(c.store, {
    id,
    processFile: o.process,
    overrides: {
      args: command,
      cwd: o.cwd,
      env: o.env,
      tty: o.tty,
      user: o.user,
      additionalGids: gids,
      caps: o.cap,
      // commander turns --no-new-privs into newPrivs: false
      noNewPrivs: o.newPrivs === false,
      apparmorProfile: o.apparmor,
      selinuxLabel: o.processLabel,
    },
    consoleSocket: o.consoleSocket,
    consoleFd: channel?.theirs,
    pidFile: o.pidFile,
    preserveFds: o.preserveFds,
    ignorePaused: !!o.ignorePaused,
    cgroup: o.cgroup,
    foreground: !o.detach,
  }));
  } catch (e) {
    fg?.release();
    throw e;
  }
  if (o.detach) return;
  if (!fg) return host.handOver(pid);
  fg.attach(pid);
  throw new ExitRequest(await fg.wait(channel ? startRelay(channel) : undefined));
}

function processWantsTerminal(file: string): boolean {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'))?.terminal === true;
  } catch {
    return false; // exec reports the problem itself
  }
}
