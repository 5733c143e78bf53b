/**
 * The resident engine: the same CLI (src/cli/main.ts) kept warm behind a
 * unix socket. It serves one command at a time, each with the caller's argv,
 * cwd, environment, umask and stdio (dup2'ed onto 0, 1, 2 while it runs), so
 * a command behaves as it would cold. A launcher that finds it busy waits at
 * most a moment for its HELLO and then runs cold (native/launcher.cc): a
 * hook that calls tsrun while the engine runs that hook never deadlocks.
 *
 * Nothing lives only here: every command re-reads the on-disk state, so
 * killing the engine at any moment loses nothing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../errors.js';
import { configureLog } from '../log.js';
import { resetTrace } from '../bench/trace.js';
import { Em, buildId, joinNul, pidPath, socketPath, splitNul, ENGINE_SOCKET_DIR } from './protocol.js';
import { EngineFallback, INLINE_AFTER_MS, RemoteHost, setProcessHost } from './host.js';
import { engineAddon, initExeFd, type EngineAddon } from './wire.js';
import { warmUp, type WarmUpOptions, type WarmUpResult } from './warmup.js';

/** Commands the engine runs; the rest (spec, features, bench, engine, help) always run cold. */
const SERVED = new Set(['create', 'run', 'exec', 'start', 'state', 'kill', 'delete', 'list', 'ps', 'pause', 'resume', 'update', 'events']);
const VALUED = new Set(['--root', '--log', '--log-format', '--rootless', '--criu']);
/** A launcher must share these with us, or its paths and pids would mean other things here. */
export const NAMESPACES = ['mnt', 'pid', 'net', 'user', 'cgroup', 'ipc', 'uts'];

/** What the engine runs of the CLI (src/cli/main.ts), which imports the engine. */
export interface EngineCli {
  main: (argv: string[]) => Promise<number>;
  /** argv parsed as main() would, no action run (the warm-up) */
  parseOnly: (argv: string[]) => Promise<unknown>;
  /** `delete --force ID` in a state root, its errors reported as main() would */
  deleteForced: (root: string, id: string) => Promise<number>;
}

export interface ServeOptions {
  root: string;
  /** exit after this long without a command; 0: never */
  idleTimeoutMs: number;
  /** the CLI, injected (it imports us) */
  main: EngineCli['main'];
  deleteForced: EngineCli['deleteForced'];
  /** the JIT warm-up before serving (src/engine/warmup.ts); budgetMs 0: none */
  warmUp?: WarmUpOptions;
}

/** Where the command name is in argv, and the --root it names, as commander will parse them. */
export function commandOf(argv: readonly string[]): { index: number; root: string } | undefined {
  let root = '/run/tsrun';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('-')) return { index: i, root };
    if (a === '--debug' || a === '--systemd-cgroup') continue;
    if (VALUED.has(a)) {
      if (i + 1 >= argv.length) return undefined;
      if (a === '--root') root = argv[i + 1]!;
      i++;
    } else if (a.startsWith('--root=')) root = a.slice(7);
    else if (!a.startsWith('--log=') && !a.startsWith('--log-format=')) return undefined;
  }
  return undefined;
}

/** Why the command must run cold, or undefined when the engine can serve it. */
function refusal(argv: readonly string[], root: string): string | undefined {
  const c = commandOf(argv);
  if (!c) return 'no command';
  const name = argv[c.index]!;
  if (!SERVED.has(name)) return `${name} is not served`;
  if (path.resolve(c.root) !== root) return 'another --root';
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  // `events` without --stats streams for the container's whole life: it would hold the engine.
  if (name === 'events' && !argv.slice(c.index + 1).includes('--stats')) return 'a stream';
  return undefined;
}

function ensureDir(): void {
  fs.mkdirSync(ENGINE_SOCKET_DIR, { recursive: true, mode: 0o700 });
  const st = fs.statSync(ENGINE_SOCKET_DIR);
  if (st.uid !== 0 || !st.isDirectory()) throw new UserError(`${ENGINE_SOCKET_DIR} is not a directory owned by root`);
  if ((st.mode & 0o077) !== 0) fs.chmodSync(ENGINE_SOCKET_DIR, 0o700);
}

/**
 * Makes process.env exactly `target`, touching only what differs: every
 * write to process.env is a setenv(3) or unsetenv(3) in C, and a launcher's
 * environment is mostly the one the engine already has, so swapping it in
 * whole (and back after the command) cost a warm command ~0.2 ms.
 */
export function setEnv(target: Readonly<Record<string, string | undefined>>): void {
  const env = process.env;
  for (const k of Object.keys(env)) if (!Object.hasOwn(target, k) || target[k] === undefined) delete env[k];
  for (const [k, v] of Object.entries(target)) if (v !== undefined && env[k] !== v) env[k] = v;
}

/** The HELLO an engine at `sock` sends (its build id), or undefined when none answers in time. */
export function probe(eng: EngineAddon, sock: string, timeoutMs: number): { fd: number; build: string } | undefined {
  const fd = eng.connect(sock);
  if (fd < 0) return undefined;
  try {
    const m = eng.recv(fd, timeoutMs);
    for (const f of m?.fds ?? []) fs.closeSync(f); // the engine's tsrun-init: a launcher's
    if (m && m.type === Em.Hello) return { fd, build: m.payload.toString('utf8') };
  } catch {
    /* busy past the timeout */
  }
  fs.closeSync(fd);
  return undefined;
}

interface Status {
  pid: number;
  root: string;
  build: string;
  started: string;
  served: number;
  /** of those, run's deletes served on the run's own connection (INLINE_AFTER_MS) */
  servedInline: number;
  idleTimeoutSeconds: number;
  warmup?: WarmUpResult;
}

export async function serve(o: ServeOptions): Promise<number> {
  const eng = engineAddon();
  const root = path.resolve(o.root);
  const sock = socketPath(root);
  const build = buildId();
  if (!build) throw new UserError('engine: no build id in dist/tsrun-main.js: run `npm run build`');
  ensureDir();
  const other = probe(eng, sock, 2000);
  if (other) {
    fs.closeSync(other.fd);
    throw new UserError(`an engine already serves --root ${root}`);
  }
  // Before listening: a launcher that connected now would wait for it.
  const warmed = o.warmUp && o.warmUp.budgetMs !== 0 ? await warmUp(o.warmUp) : undefined;
  fs.rmSync(sock, { force: true });
  const listenFd = eng.listen(sock);
  // Every HELLO carries it: a launcher of a create, run or exec starts its
  // spawner with it before the plan is compiled (native/launcher.cc).
  const initFd = initExeFd();
  const pidFile = pidPath(root);
  fs.writeFileSync(pidFile, `${process.pid}\n`);
  const status: Status = { pid: process.pid, root, build, started: new Date().toISOString(), served: 0, servedInline: 0, idleTimeoutSeconds: o.idleTimeoutMs / 1000, warmup: warmed };

  // From here on 0, 1 and 2 are /dev/null between commands. process.stdout
  // and stderr are made now, on /dev/null, so Node picks its synchronous
  // file writer (fs.writeSync on fd 1/2), which follows each dup2; made on a
  // caller's pipe it would set O_NONBLOCK on the caller's pipe and keep it.
  eng.closeInherited();
  const devnull = fs.openSync('/dev/null', 'r+');
  for (const fd of [0, 1, 2]) eng.dup2(devnull, fd);
  void process.stdout;
  void process.stderr;
  process.chdir('/');
  const baseUmask = process.umask();

  let stopping = false;
  const cleanup = () => {
    // Only our own socket: a newer engine may have replaced it.
    try {
      if (fs.readFileSync(pidFile, 'utf8').trim() === String(process.pid)) {
        fs.rmSync(sock, { force: true });
        fs.rmSync(pidFile, { force: true });
      }
    } catch {
      /* already gone */
    }
  };
  const onSignal = () => {
    cleanup();
    // The accept waits in poll() on a threadpool thread, which process.exit()
    // joins: without this an idle engine hung on SIGTERM until SIGKILL.
    eng.stopListening(listenFd);
    process.exit(0);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('SIGHUP', onSignal);

  // Between commands stdio is /dev/null (released before the answer: a
  // caller reading the launcher's output waits for EOF), cwd / and our
  // umask. The environment stays the last command's: each command starts by
  // making it exactly its caller's (setEnv), and putting ours back in
  // between cost ~90 µs of setenv(3) before every answer, and as much again
  // at the next command.
  const releaseStdio = () => {
    for (const fd of [0, 1, 2]) eng.dup2(devnull, fd);
  };
  const restore = () => {
    process.chdir('/');
    process.umask(baseUmask);
    setProcessHost(undefined);
    configureLog({ file: undefined, format: 'text', debug: false });
    resetTrace();
  };

  const handle = async (fd: number, peer: number): Promise<void> => {
    const req = eng.recv(fd, 10_000);
    if (!req) return;
    if (req.type === Em.Control) {
      const [, what] = splitNul(req.payload);
      if (what === 'stop') stopping = true;
      eng.send(fd, Em.Exit, [0], Buffer.from(JSON.stringify(status)));
      return;
    }
    if (req.type !== Em.Request) return;
    const parts = splitNul(req.payload);
    const [theirBuild, cwd] = parts;
    const argv = parts.slice(2, 2 + req.b);
    const env = parts.slice(2 + req.b, 2 + req.b + req.c);
    const why =
      theirBuild !== build ? 'another build' : req.fds.length !== 3 ? 'no stdio' : !eng.sameNamespaces(peer, NAMESPACES) ? 'other namespaces' : refusal(argv, root);
    if (why !== undefined || cwd === undefined) {
      for (const f of req.fds) fs.closeSync(f);
      eng.send(fd, Em.Fallback, []);
      return;
    }
    status.served++;
    const globals = argv.slice(0, commandOf(argv)!.index);
    const host = new RemoteHost(eng, fd, peer, globals);
    let code = 1;
    let fallback = false;
    let inlineAfter = false;
    // restore() after the answer, whatever happened: the launcher does not wait for it.
    try {
      try {
        try {
          process.chdir(cwd);
        } catch {
          throw new EngineFallback('cwd');
        }
        req.fds.forEach((f, i) => eng.dup2(f, i));
        for (const f of req.fds) fs.closeSync(f);
        const theirs: Record<string, string> = {};
        for (const e of env) {
          const eq = e.indexOf('=');
          if (eq > 0) theirs[e.slice(0, eq)] = e.slice(eq + 1);
        }
        setEnv(theirs);
        process.umask(req.a);
        resetTrace();
        setProcessHost(host);
        code = await o.main(argv);
        if (host.handedOver && host.after) {
          // run's delete, on this connection, once the launcher reports the process gone.
          const after = host.after;
          host.after = undefined;
          if (exitedWithin(fd, INLINE_AFTER_MS)) {
            status.served++;
            status.servedInline++;
            resetTrace();
            setProcessHost(new RemoteHost(eng, fd, peer, globals));
            code = await o.deleteForced(root, after.id);
            inlineAfter = true;
          }
        }
      } catch (e) {
        if (!(e instanceof EngineFallback)) throw e;
        fallback = true;
      } finally {
        releaseStdio();
      }
      if (fallback) eng.send(fd, Em.Fallback, []);
      else if (!host.handedOver || inlineAfter) eng.send(fd, Em.Exit, [code]);
    } finally {
      restore();
    }
  };

  /** True when the launcher sends EM_EXITED within `ms`; otherwise it is left to run the delete anew. */
  const exitedWithin = (fd: number, ms: number): boolean => {
    try {
      return eng.recv(fd, ms)?.type === Em.Exited;
    } catch {
      return false; // not yet: the connection closes, the launcher's delete comes as a command of its own
    }
  };

  try {
    while (!stopping) {
      const c = await eng.accept(listenFd, o.idleTimeoutMs > 0 ? o.idleTimeoutMs : -1, build, initFd);
      if (!c) break; // idle for the whole timeout
      try {
        await handle(c.fd, c.pid);
      } catch {
        // The command's own errors were reported to its caller by main();
        // this is the connection failing (the launcher died): next one.
      } finally {
        fs.closeSync(c.fd);
      }
    }
  } finally {
    cleanup();
    fs.closeSync(listenFd);
  }
  return 0;
}

/** `engine stop` / `engine status`: one control message to the engine for `root`. */
export function control(root: string, what: 'status' | 'stop'): Status | undefined {
  const eng = engineAddon();
  const hello = probe(eng, socketPath(path.resolve(root)), 10_000);
  if (!hello) return undefined;
  try {
    eng.send(hello.fd, Em.Control, [], joinNul([buildId(), what]));
    const r = eng.recv(hello.fd, 10_000);
    if (!r || r.type !== Em.Exit) return undefined;
    return JSON.parse(r.payload.toString('utf8')) as Status;
  } finally {
    fs.closeSync(hello.fd);
  }
}
