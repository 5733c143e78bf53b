/**
 * Who is the parent of the processes a command starts. Cold, it is this
 * process, through the addon. In the engine it is the launcher that sent the
 * command (native/launcher.cc): the plan goes back over its socket and the
 * launcher runs the same executor, so the init is the launcher's child (as
 * it is runc's) while every step that needs the parent's side (cgroups, id
 * maps, hooks, state) stays here, in the same code: the launcher hands us the
 * init's sync socket with its pid, and we talk to the init as cold.
 */
import fs from 'node:fs';
import { native, type ChildMsg, type SpawnResult } from '../native.js';
import { ownStartTime, sleepMs } from '../lifecycle/proc.js';
import { initExeFd, type EngineAddon } from './wire.js';
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
   * `meanwhile` runs after the ack has gone out, before the wait: work the
   * child need not wait for, done while it goes on.
   */
  next(sync: number, ack: boolean, timeoutMs: number, meanwhile?: () => void): ChildMsg | null;
  closeSync(sync: number): void;
  /** The command's caller is gone (a launcher killed mid-command); never, cold: we are the caller. */
  callerGone(): boolean;
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
  next: nextWith,
  closeSync: (sync) => native().close(sync),
  callerGone: () => false,
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

/** Margin over the launcher's own wait, so its answer (a timeout) is what we see. */
const SLACK_MS = 10_000;

function childMsg(b: Buffer): ChildMsg {
  return { kind: b.readUInt32LE(0), step: b.readUInt32LE(4), errno: b.readInt32LE(8), arg: b.readInt32LE(12) } as ChildMsg;
}

const ACK = Buffer.from([1]);

/**
 * The addon's next(), with the ack sent first on its own when there is work
 * to do before the wait: the init goes on while `meanwhile` runs. An ack
 * the init can no longer read is its EOF, as in the addon (plan_next).
 */
function nextWith(sync: number, ack: boolean, timeoutMs: number, meanwhile?: () => void): ChildMsg | null {
  if (ack && meanwhile) {
    try {
      fs.writeSync(sync, ACK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPIPE' || (e as NodeJS.ErrnoException).code === 'ECONNRESET') return null;
      throw e;
    }
    meanwhile();
    return native().next(sync, false, timeoutMs);
  }
  meanwhile?.();
  return native().next(sync, ack, timeoutMs);
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
    const r = this.ask(Em.Spawn, [consoleFd >= 0 ? 1 : 0, cgroupFd >= 0 ? 1 : 0, foreground ? 1 : 0], 60_000, plan, fds);
    if (r.type === Em.Spawned) {
      // The sync socket comes along: we talk to the init directly, as cold.
      if (r.fds.length !== 1) throw new Error('launcher: spawned without the sync socket');
      return { pid: r.a, sync: r.fds[0]! };
    }
    for (const fd of r.fds) native().close(fd);
    if (r.type === Em.SpawnFailed && r.a === 0) return { failure: childMsg(r.payload) };
    if (r.type === Em.SpawnFailed) throw errnoError(-r.a, r.a === -22 ? 'invalid plan' : 'clone');
    throw new Error(`launcher: unexpected reply ${r.type} to spawn`);
  }

  next(sync: number, ack: boolean, timeoutMs: number, meanwhile?: () => void): ChildMsg | null {
    return nextWith(sync, ack, timeoutMs, meanwhile);
  }

  closeSync(sync: number): void {
    native().close(sync);
  }

  callerGone(): boolean {
    return this.eng.peerClosed(this.fd);
  }

  reap(pid: number): void {
    try {
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
