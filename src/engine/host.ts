/**
 * Who is the parent of the processes a command starts. Cold, it is this
 * process, through the addon. In the engine it is the launcher that sent the
 * command (native/launcher.cc): the plan goes back over its socket and the
 * launcher runs the same executor, so the init is the launcher's child (as
 * it is runc's) while every step that needs the parent's side (cgroups, id
 * maps, hooks, state) stays here, in the same code.
 */
import { MsgKind, native, type ChildMsg, type SpawnResult } from '../native.js';
import { ownStartTime, sleepMs } from '../lifecycle/proc.js';
import { initExeFd, type EngineAddon, type WireMsg } from './wire.js';
import { Em, joinNul } from './protocol.js';

export interface ProcessHost {
  readonly remote: boolean;
  /**
   * The process whose death means "this create will never finish" (the
   * record's creatorPid): us cold; in an engine, the launcher, so a killed
   * create reads as stopped at once, as it does cold.
   */
  readonly creatorPid: number;
  /** the engine serving the command, if one does, and its /proc/<pid>/stat starttime */
  readonly enginePid?: number;
  readonly engineStartTime?: string;
  spawn(plan: Buffer, consoleFd: number, cgroupFd: number, foreground: boolean): SpawnResult;
  /**
   * Acks the child's last message (if `ack`) and waits for its next one.
   * `meanwhile` runs after the ack has gone out where the host can overlap
   * the two (the launcher does the wait): work the child need not wait for.
   */
  next(sync: number, ack: boolean, timeoutMs: number, meanwhile?: () => void): ChildMsg | null;
  closeSync(sync: number): void;
  /** Waits (bounded) until `pid`, already sent SIGKILL, is reaped. */
  reap(pid: number): void;
  /** create claimed `id`: if the engine dies now, the launcher deletes it cold. */
  claimed(id: string): void;
  /** The foreground process is the launcher's to wait for; `deleteId`: run's delete afterwards. */
  handOver(pid: number, deleteId?: string): void;
}

/** Thrown before a command has done anything the engine cannot serve: the launcher runs it cold. */
export class EngineFallback extends Error {
  constructor(why: string) {
    super(`engine fallback: ${why}`);
  }
}

const local: ProcessHost = {
  remote: false,
  creatorPid: process.pid,
  spawn: (plan, consoleFd, cgroupFd) => native().spawn(plan, consoleFd, cgroupFd),
  next: (sync, ack, timeoutMs, meanwhile) => {
    // The addon acks and waits in one call.
    meanwhile?.();
    return native().next(sync, ack, timeoutMs);
  },
  closeSync: (sync) => native().close(sync),
  reap(pid) {
    // We are its parent: reap it so no zombie outlives us.
    for (let i = 0; i < 2500 && native().tryWait(pid) === null; i++) sleepMs(2);
  },
  claimed: () => undefined,
  handOver: () => {
    throw new Error('handOver without an engine');
  },
};

let current: ProcessHost = local;

export function processHost(): ProcessHost {
  return current;
}

export function setProcessHost(h: ProcessHost | undefined): void {
  current = h ?? local;
}

/**
 * How long the engine keeps a foreground `run`'s connection after handing
 * the process over, for the launcher's EM_EXITED: a process gone by then
 * (a short command) has its delete run on the same connection, sparing the
 * launcher a second connection and the engine a second request (~0.5 ms of a
 * warm run). A longer one finds the connection closed and its launcher
 * sends the delete as a new command, as before. Short, because the engine
 * serves nothing else meanwhile.
 */
export const INLINE_AFTER_MS = 25;

/** The sync socket stays in the launcher; create only needs a number that is not -1. */
const REMOTE_SYNC = 1 << 30;
/** Margin over the launcher's own wait, so its answer (a timeout) is what we see. */
const SLACK_MS = 10_000;
/** create's and exec's step timeout (STEP_TIMEOUT_MS there), for the first message the launcher fetches unasked */
const FIRST_MSG_TIMEOUT_MS = 60_000;

function childMsg(b: Buffer): ChildMsg {
  return { kind: b.readUInt32LE(0), step: b.readUInt32LE(4), errno: b.readInt32LE(8), arg: b.readInt32LE(12) } as ChildMsg;
}

/** An EM_CHILD_MSG; a seccomp listener fd arrives beside it and is ours now, as the addon's next() makes it. */
function relayed(r: WireMsg): ChildMsg | null {
  if (r.type !== Em.ChildMsg) throw new Error(`launcher: unexpected reply ${r.type} to next`);
  if (r.a < 0) throw errnoError(-r.a, 'waiting for container init');
  if (r.a === 0) return null;
  const m = childMsg(r.payload);
  if (m.kind === MsgKind.SeccompFd) {
    if (r.fds.length !== 1) throw new Error('launcher: a seccomp listener message without its descriptor');
    m.arg = r.fds[0]!;
  } else {
    for (const fd of r.fds) native().close(fd);
  }
  return m;
}

function errnoError(errno: number, what: string): Error {
  return Object.assign(new Error(`${what}: ${native().strerror(errno)}`), { errno });
}

/** The launcher on the other end of one command's connection. */
export class RemoteHost implements ProcessHost {
  readonly remote = true;
  readonly enginePid = process.pid;
  readonly engineStartTime = ownStartTime();
  handedOver = false;
  /** run's delete, handed over with the process: the engine runs it on this connection if it can (server.ts) */
  after: { id: string } | undefined;
  /** the launcher sends the init's first message right after spawning it (EM_SPAWN d) */
  private prefetched = false;

  constructor(
    private readonly eng: EngineAddon,
    private readonly fd: number,
    /** the launcher (SO_PEERCRED) */
    readonly creatorPid: number,
    /** the command's global flags, for the delete that undoes or ends it */
    private readonly globals: string[],
  ) {}

  private ask(type: Em, nums: number[], timeoutMs: number, payload?: Buffer, fds?: number[]) {
    this.eng.send(this.fd, type, nums, payload, fds);
    const reply = this.eng.recv(this.fd, timeoutMs);
    if (!reply) throw new Error('the launcher went away');
    return reply;
  }

  spawn(plan: Buffer, consoleFd: number, cgroupFd: number, foreground: boolean): SpawnResult {
    const fds = [initExeFd(), ...[consoleFd, cgroupFd].filter((f) => f >= 0)];
    const r = this.ask(Em.Spawn, [consoleFd >= 0 ? 1 : 0, cgroupFd >= 0 ? 1 : 0, foreground ? 1 : 0, FIRST_MSG_TIMEOUT_MS], 60_000, plan, fds);
    if (r.type === Em.Spawned) {
      this.prefetched = true;
      return { pid: r.a, sync: REMOTE_SYNC };
    }
    if (r.type === Em.SpawnFailed && r.a === 0) return { failure: childMsg(r.payload) };
    if (r.type === Em.SpawnFailed) throw errnoError(-r.a, r.a === -22 ? 'invalid plan' : 'clone');
    throw new Error(`launcher: unexpected reply ${r.type} to spawn`);
  }

  next(_sync: number, ack: boolean, timeoutMs: number, meanwhile?: () => void): ChildMsg | null {
    const wait = this.prefetched ? FIRST_MSG_TIMEOUT_MS : timeoutMs;
    if (this.prefetched) {
      // create and exec always begin with next(ack = false): the launcher has sent it already.
      if (ack) throw new Error('launcher: an ack before the first message');
      this.prefetched = false;
    } else {
      this.eng.send(this.fd, Em.Next, [ack ? 1 : 0, timeoutMs]);
    }
    meanwhile?.();
    const r = this.eng.recv(this.fd, wait + SLACK_MS);
    if (!r) throw new Error('the launcher went away');
    return relayed(r);
  }

  /** Failed between spawn and its first message: take that message off the wire first. */
  private drain(): void {
    if (!this.prefetched) return;
    this.prefetched = false;
    this.eng.recv(this.fd, FIRST_MSG_TIMEOUT_MS + SLACK_MS);
  }

  closeSync(): void {
    this.drain();
    this.eng.send(this.fd, Em.CloseSync, []);
  }

  reap(pid: number): void {
    try {
      this.drain();
      this.ask(Em.Reap, [pid, 5000], 5000 + SLACK_MS);
    } catch {
      /* the launcher is gone: its subreaper reaps the orphan */
    }
  }

  claimed(id: string): void {
    this.eng.send(this.fd, Em.Cleanup, [], joinNul([...this.globals, 'delete', '--force', id]));
  }

  handOver(pid: number, deleteId?: string): void {
    const after = deleteId === undefined ? undefined : [...this.globals, 'delete', '--force', deleteId];
    this.eng.send(this.fd, Em.Wait, [pid, after ? INLINE_AFTER_MS : 0], after ? joinNul(after) : Buffer.alloc(0));
    this.after = deleteId === undefined ? undefined : { id: deleteId };
    this.handedOver = true;
  }
}
