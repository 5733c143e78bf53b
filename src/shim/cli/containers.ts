/**
 * tsctl's container commands, with Docker's flags, output and exit codes:
 * 125 for tsctl's own errors, the container's status for `run` (foreground)
 * and `start -a`, 126/127 for a command that cannot be invoked / is not found.
 */
import { type Command, InvalidArgumentError } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { copyIn, copyOut, splitCpArg } from '../container/cp.js';
import { type CreateFlags, createContainer } from '../container/create.js';
import { parseEnvArg, parseSignal } from '../container/flags.js';
import { validateName } from '../container/ids.js';
import { containerChanges, execUser, mountRootfs, unmountRootfs } from '../container/images.js';
import { cleanupContainer, killContainer, monitorGone, notRunning, removeContainer, startContainer, stopContainer, waitFor } from '../container/lifecycle.js';
import { formatEntry, logFile, parseTail, readLogFrom } from '../container/logs.js';
import { runtime, runtimeExec, runtimeMessage } from '../container/runtime.js';
import { deriveState, readExit } from '../container/status.js';
import { containerStats, statsRow, STATS_HEADER } from '../container/stats.js';
import { type ContainerRecord, containerDir, findContainer, listRecords, loadRecord, releaseName, reserveName, saveRecord } from '../container/store.js';
import { relay, stdioHandlers } from '../container/terminal.js';
import { inspectView, PS_HEADER, psRow, renderTemplate, table } from '../container/views.js';
import type { ShimContext, ShimGlobals } from './context.js';
import { addRegistrar, ShimExit } from './main.js';

const collect = (v: string, prev: string[]): string[] => [...prev, v];
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function intArg(flag: string) {
  return (v: string): number => {
    if (!/^-?\d+$/.test(v)) throw new InvalidArgumentError(`invalid argument "${v}" for "${flag}" flag`);
    return Number(v);
  };
}

/** The flags `create` and `run` share. */
function createOptions(c: Command): Command {
  return c
    .option('--name <name>', 'assign a name to the container')
    .option('-i, --interactive', 'keep STDIN open even if not attached')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-e, --env <KEY=VALUE>', 'set environment variables', collect, [])
    .option('--env-file <file>', 'read in a file of environment variables', collect, [])
    .option('-v, --volume <spec>', 'bind mount a volume (HOST:CTR[:ro], NAME:CTR, CTR)', collect, [])
    .option('-p, --publish <spec>', "publish a container's port(s) to the host ([IP:]HOST:CTR[/proto])", collect, [])
    .option('-P, --publish-all', 'publish all exposed ports to random ports')
    .option('--rm', 'automatically remove the container when it exits')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .option('-u, --user <user>', 'username or UID (format: <name|uid>[:<group|gid>])')
    .option('-h, --hostname <name>', 'container host name')
    .option('--entrypoint <cmd>', 'overwrite the default ENTRYPOINT of the image')
    .option('-m, --memory <bytes>', 'memory limit')
    .option('--cpus <n>', 'number of CPUs')
    .option('--pids-limit <n>', 'tune container pids limit (-1 for unlimited)')
    .option('--network <mode>', 'connect a container to a network: bridge, none or host', 'bridge')
    .option('--read-only', "mount the container's root filesystem as read only")
    .option('--cap-add <cap>', 'add Linux capabilities', collect, [])
    .option('--cap-drop <cap>', 'drop Linux capabilities', collect, [])
    .addHelpText('after', '\nThe image may be followed by a command and its arguments.')
    .helpOption('--help', 'display help for command')
    .passThroughOptions();
}

function find(g: ShimGlobals, ref: string): ContainerRecord {
  return findContainer(g.root, ref);
}

/** Runs `fn` for each named container, Docker-style: errors printed per container, status 1 if any. */
async function each(refs: string[], fn: (ref: string) => Promise<void>): Promise<void> {
  let failed = false;
  for (const ref of refs) {
    try {
      await fn(ref);
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      process.stderr.write(`tsctl: ${e.message}\n`);
      failed = true;
    }
  }
  if (failed) throw new ShimExit(1);
}

/** Foreground: attach, start, relay until the container exits; its status is ours. */
async function runAttached(g: ShimGlobals, rec: ContainerRecord, stdin: boolean): Promise<number> {
  const a = await startContainer(g, rec, { attach: stdioHandlers() });
  if (!a) throw new Error('no attachment');
  const code = (await relay(a, { tty: rec.config.tty, stdin, proxySignals: { g, id: rec.id } })) ?? readExit(g.root, rec.id)?.exitCode ?? 125;
  // as Docker: once `run` returns, the container is stopped and cleaned up (and gone with --rm)
  await waitFor(monitorGone(g, rec.id), 30_000);
  return code;
}

function register(program: Command, ctx: ShimContext): void {
  createOptions(program.command('run').description('create and run a new container from an image'))
    .option('-d, --detach', 'run container in background and print container ID')
    .argument('<image>')
    .argument('[command...]')
    .action(async (image: string, command: string[], o: CreateFlags & { detach?: boolean }) => {
      const g = ctx();
      const rec = await createContainer(g.root, o, image, command);
      if (o.detach) {
        try {
          await startContainer(g, rec);
        } catch (e) {
          if (rec.hostConfig.autoRemove) await removeContainer(g, rec, { force: true, volumes: true });
          throw e;
        }
        process.stdout.write(`${rec.id}\n`);
        return;
      }
      let code: number;
      try {
        code = await runAttached(g, rec, !!o.interactive);
      } catch (e) {
        if (rec.hostConfig.autoRemove) await removeContainer(g, rec, { force: true, volumes: true });
        throw e;
      }
      throw new ShimExit(code);
    });

  createOptions(program.command('create').description('create a new container'))
    .argument('<image>')
    .argument('[command...]')
    .action(async (image: string, command: string[], o: CreateFlags) => {
      const rec = await createContainer(ctx().root, o, image, command);
      process.stdout.write(`${rec.id}\n`);
    });

  program
    .command('start')
    .description('start one or more stopped containers')
    .option('-a, --attach', "attach STDOUT/STDERR and forward signals")
    .option('-i, --interactive', "attach container's STDIN")
    .argument('<container...>')
    .action(async (refs: string[], o: { attach?: boolean; interactive?: boolean }) => {
      const g = ctx();
      if (o.attach || o.interactive) {
        if (refs.length > 1) throw new UserError('you cannot start and attach multiple containers at once', 125);
        const rec = find(g, refs[0]);
        throw new ShimExit(await runAttached(g, rec, !!o.interactive && rec.config.openStdin));
      }
      await each(refs, async (ref) => {
        await startContainer(g, find(g, ref));
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('ps')
    .description('list containers')
    .option('-a, --all', 'show all containers (default shows just running)')
    .option('-q, --quiet', 'only display container IDs')
    .option('--no-trunc', "don't truncate output")
    .action((o: { all?: boolean; quiet?: boolean; trunc?: boolean }) => {
      const g = ctx();
      const now = Date.now();
      const rows = listRecords(g.root)
        .map((r) => ({ r, st: deriveState(g.root, r) }))
        .filter(({ st }) => o.all || st.status === 'running');
      if (o.quiet) {
        process.stdout.write(rows.map(({ r }) => `${o.trunc === false ? r.id : r.id.slice(0, 12)}\n`).join(''));
        return;
      }
      process.stdout.write(table([PS_HEADER, ...rows.map(({ r, st }) => {
        const row = psRow(r, st, now);
        if (o.trunc === false) row[0] = r.id;
        return row;
      })]));
    });

  program
    .command('logs')
    .description('fetch the logs of a container')
    .option('-f, --follow', 'follow log output')
    .option('-n, --tail <n>', 'number of lines to show from the end of the logs', 'all')
    .option('-t, --timestamps', 'show timestamps')
    .argument('<container>')
    .action(async (ref: string, o: { follow?: boolean; tail: string; timestamps?: boolean }) => {
      const g = ctx();
      const rec = find(g, ref);
      const tail = parseTail(o.tail);
      const file = logFile(g.root, rec.id);
      const write = (es: ReturnType<typeof readLogFrom>['entries']) => {
        for (const e of es) (e.stream === 'stderr' ? process.stderr : process.stdout).write(formatEntry(e, !!o.timestamps));
      };
      let { entries, offset } = readLogFrom(file, 0);
      write(tail === Infinity ? entries : tail === 0 ? [] : entries.slice(-tail));
      if (!o.follow) return;
      for (;;) {
        const running = deriveState(g.root, rec).status === 'running';
        ({ entries, offset } = readLogFrom(file, offset));
        write(entries);
        if (!running) return; // read once more after it stopped: nothing is missed
        await sleep(100);
      }
    });

  program
    .command('exec')
    .description('execute a command in a running container')
    .option('-i, --interactive', 'keep STDIN open even if not attached')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-d, --detach', 'detached mode: run command in the background')
    .option('-e, --env <KEY=VALUE>', 'set environment variables', collect, [])
    .option('-u, --user <user>', 'username or UID (format: <name|uid>[:<group|gid>])')
    .option('-w, --workdir <dir>', 'working directory inside the container')
    .argument('<container>')
    .argument('<command...>')
    .passThroughOptions()
    .action(async (ref: string, command: string[], o: { interactive?: boolean; tty?: boolean; detach?: boolean; env: string[]; user?: string; workdir?: string }) => {
      const g = ctx();
      const rec = find(g, ref);
      if (deriveState(g.root, rec).status !== 'running') throw new UserError(`container ${rec.id} is not running`, 1);
      if (o.workdir !== undefined && !o.workdir.startsWith('/')) throw new UserError(`the working directory '${o.workdir}' is invalid, it needs to be an absolute path`, 125);
      const args = ['exec'];
      if (o.tty) args.push('-t');
      if (o.detach) args.push('-d');
      for (const e of o.env) {
        const v = parseEnvArg(e, (k) => process.env[k]);
        if (v !== undefined) args.push('-e', v);
      }
      if (o.user !== undefined) args.push('-u', execUser(path.join(containerDir(g.root, rec.id), 'rootfs'), o.user));
      if (o.workdir) args.push('--cwd', o.workdir);
      args.push(rec.id, ...command);
      const code = await runtimeExec(g, args, o.interactive ? 'inherit' : 'ignore');
      throw new ShimExit(code);
    });

  program
    .command('stop')
    .description('stop one or more running containers')
    .option('-t, --time <seconds>', 'seconds to wait before killing the container', intArg('--time'), 10)
    .option('-s, --signal <signal>', 'signal to send to the container')
    .argument('<container...>')
    .action(async (refs: string[], o: { time: number; signal?: string }) => {
      const g = ctx();
      await each(refs, async (ref) => {
        const rec = find(g, ref);
        if (o.signal) rec.config.stopSignal = parseSignal(o.signal);
        await stopContainer(g, rec, o.time);
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('restart')
    .description('restart one or more containers')
    .option('-t, --time <seconds>', 'seconds to wait before killing the container', intArg('--time'), 10)
    .argument('<container...>')
    .action(async (refs: string[], o: { time: number }) => {
      const g = ctx();
      await each(refs, async (ref) => {
        const rec = find(g, ref);
        await stopContainer(g, rec, o.time);
        await startContainer(g, loadRecord(g.root, rec.id) ?? rec);
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('kill')
    .description('kill one or more running containers')
    .option('-s, --signal <signal>', 'signal to send to the container', 'KILL')
    .argument('<container...>')
    .action(async (refs: string[], o: { signal: string }) => {
      const g = ctx();
      const sig = parseSignal(o.signal);
      await each(refs, async (ref) => {
        await killContainer(g, find(g, ref), sig);
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('rm')
    .description('remove one or more containers')
    .option('-f, --force', 'force the removal of a running container (uses SIGKILL)')
    .option('-v, --volumes', 'remove anonymous volumes associated with the container')
    .argument('<container...>')
    .action(async (refs: string[], o: { force?: boolean; volumes?: boolean }) => {
      const g = ctx();
      await each(refs, async (ref) => {
        await removeContainer(g, find(g, ref), { force: !!o.force, volumes: !!o.volumes });
        process.stdout.write(`${ref}\n`);
      });
    });

  program
    .command('inspect')
    .description('display detailed information on one or more containers')
    .option('-f, --format <template>', 'format the output using a Go-template-like {{.Field.Path}}')
    .argument('<container...>')
    .action(async (refs: string[], o: { format?: string }) => {
      const g = ctx();
      const views: unknown[] = [];
      await each(refs, async (ref) => {
        const rec = find(g, ref);
        views.push(inspectView(rec, deriveState(g.root, rec)));
      }).finally(() => {
        if (o.format !== undefined) for (const v of views) process.stdout.write(`${renderTemplate(o.format, v)}\n`);
        else process.stdout.write(`${JSON.stringify(views, null, 4)}\n`);
      });
    });

  program
    .command('top')
    .description('display the running processes of a container')
    .argument('<container>')
    .argument('[ps-options...]')
    .passThroughOptions()
    .action((ref: string, psArgs: string[]) => {
      const g = ctx();
      const rec = find(g, ref);
      if (deriveState(g.root, rec).status !== 'running') throw notRunning(rec);
      const r = runtime(g, ['ps', rec.id, ...psArgs]);
      if (r.code !== 0) throw new UserError(runtimeMessage(r), 1);
      process.stdout.write(r.stdout);
    });

  program
    .command('rename')
    .description('rename a container')
    .argument('<container>')
    .argument('<new-name>')
    .action((ref: string, newName: string) => {
      const g = ctx();
      const rec = find(g, ref);
      const name = validateName(newName);
      if (name === rec.name) throw new UserError(`Renaming a container with the same name as its current name`, 1);
      reserveName(g.root, name, rec.id);
      const old = rec.name;
      rec.name = name;
      saveRecord(g.root, rec);
      releaseName(g.root, old, rec.id);
    });

  program
    .command('stats')
    .description('display a snapshot of containers resource usage statistics')
    .option('--no-stream', 'disable streaming stats and only pull the first result')
    .option('-a, --all', 'show all containers (default shows just running)')
    .argument('[container...]')
    .action(async (refs: string[], o: { stream?: boolean; all?: boolean }) => {
      const g = ctx();
      const recs = refs.length ? refs.map((r) => find(g, r)) : listRecords(g.root).filter((r) => o.all || deriveState(g.root, r).status === 'running');
      for (;;) {
        const stats = await containerStats(g, recs);
        const out = table([STATS_HEADER, ...recs.map((r, i) => statsRow(r, stats[i]))]);
        process.stdout.write(o.stream === false ? out : `\x1b[2J\x1b[H${out}`);
        if (o.stream === false) return;
      }
    });

  program
    .command('diff')
    .description("inspect changes to files or directories on a container's filesystem")
    .argument('<container>')
    .action((ref: string) => {
      const g = ctx();
      const rec = find(g, ref);
      process.stdout.write(containerChanges(g.root, rec.id).map((c) => `${c.kind} ${c.path}\n`).join(''));
    });

  program
    .command('cp')
    .description('copy files/folders between a container and the local filesystem')
    .argument('<src>', 'CONTAINER:SRC_PATH or a host path')
    .argument('<dest>', 'CONTAINER:DEST_PATH or a host path')
    .action(async (src: string, dst: string) => {
      const g = ctx();
      const s = splitCpArg(src);
      const d = splitCpArg(dst);
      if (!!s === !!d) throw new UserError(s ? 'copying between containers is not supported' : 'must specify at least one container source', 1);
      const rec = find(g, (s ?? d)![0]);
      const st = deriveState(g.root, rec);
      // a stopped container's rootfs is mounted for the copy only
      const mounted = st.status !== 'running';
      const { rootfs } = mounted ? await mountRootfs(g.root, rec) : { rootfs: path.join(containerDir(g.root, rec.id), 'rootfs') };
      try {
        if (s) copyOut(rootfs, s[1], dst);
        else copyIn(rootfs, src, d![1]);
      } finally {
        if (mounted && deriveState(g.root, rec).status !== 'running') await unmountRootfs(g.root, rec.id);
      }
    });

  // What a container's monitor execs once the container has exited: not for people.
  program
    .command('container-cleanup', { hidden: true })
    .argument('<id>')
    .action(async (id: string) => {
      if (!fs.existsSync(containerDir(ctx().root, id))) return;
      await cleanupContainer(ctx(), id);
    });
}

addRegistrar(register);
