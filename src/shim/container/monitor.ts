/**
 * Starting a container's monitor (native/monitor.cc, built as
 * build/Release/tsrun-monitor) and talking to it.
 *
 * The monitor is spawned detached (its own session, not tsctl's child once
 * tsctl exits); it runs `tsrun create` and reports "ok PID" or the runtime's
 * error on fd 3, then serves attach clients on <dir>/attach.sock with frames
 * of [type u8][len u32 BE][data] (1 stdout, 2 stderr, 3 exit code; from the
 * client 0 stdin, 1 stdin closed, 2 resize rows/cols u16 BE).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { ShimGlobals } from '../cli/context.js';
import { runtimeArgv } from './runtime.js';
import { procStartTime } from './status.js';
import { writeFileAtomic } from './store.js';

export const MONITOR_BINARY = process.env.TSCTL_MONITOR || path.resolve(__dirname, '..', 'build', 'Release', 'tsrun-monitor');
const TSCTL_BINARY = path.resolve(__dirname, '..', 'bin', 'tsctl');

export interface MonitorStart {
  dir: string;
  id: string;
  tty: boolean;
  openStdin: boolean;
}

export type MonitorOutcome = { ok: true; pid: number; monitorPid: number } | { ok: false; code: number; message: string };

/** tsctl's own cleanup, which the monitor execs once the container has exited. */
export function cleanupArgv(g: ShimGlobals, id: string): string[] {
  return [TSCTL_BINARY, '--root', g.root, '--runtime', g.runtime, '--runtime-root', g.runtimeRoot, 'container-cleanup', id];
}

export async function startMonitor(g: ShimGlobals, m: MonitorStart): Promise<MonitorOutcome> {
  if (!fs.existsSync(MONITOR_BINARY)) throw new Error(`monitor binary ${MONITOR_BINARY} is missing: run npm run build`);
  const create = runtimeArgv(g, [
    '--log', path.join(m.dir, 'runtime.log'), '--log-format', 'json',
    'create', '--bundle', m.dir, '--pid-file', path.join(m.dir, 'init.pid'),
    // relative: the runtime runs in the monitor's cwd, the container dir (a socket path has 108 bytes)
    ...(m.tty ? ['--console-socket', 'console.sock'] : []), m.id,
  ]);
  const args = ['-d', m.dir, '-i', m.id, '-S', '3', ...(m.tty ? ['-t'] : []), ...(m.openStdin ? ['-s'] : []), '--', ...create, '---', ...cleanupArgv(g, m.id)];
  const errFd = fs.openSync(path.join(m.dir, 'monitor.log'), 'a');
  const child = spawn(MONITOR_BINARY, args, { detached: true, stdio: ['ignore', 'ignore', errFd, 'pipe'] });
  fs.closeSync(errFd);
  const pid = child.pid;
  if (!pid) throw new Error('could not spawn the monitor');
  // recorded at once: whoever looks next can tell a live monitor from a dead one
  const start = procStartTime(pid);
  writeFileAtomic(path.join(m.dir, 'monitor.pid'), `${pid} ${start ?? ''}\n`);
  const sync = child.stdio[3] as NodeJS.ReadableStream;
  const text = await new Promise<string>((resolve) => {
    let buf = '';
    sync.setEncoding('utf8');
    sync.on('data', (d: string) => (buf += d));
    sync.on('end', () => resolve(buf));
    sync.on('error', () => resolve(buf));
  });
  (sync as unknown as net.Socket).destroy?.();
  const ok = /^ok (\d+)\n/.exec(text);
  if (ok) {
    child.unref(); // it outlives us
    return { ok: true, pid: Number(ok[1]), monitorPid: pid };
  }
  const err = /^err (\d+)\n([\s\S]*)$/.exec(text);
  // the monitor exits at once after a failed create; reap it so it leaves no zombie
  await new Promise<void>((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', () => resolve())));
  const message = err ? lastError(m.dir, err[2]) : `monitor failed: ${fs.readFileSync(path.join(m.dir, 'monitor.log'), 'utf8').trim() || 'no report'}`;
  return { ok: false, code: err ? Number(err[1]) : 1, message };
}

/** The runtime's error: from its json log (one `level:error` line), else what it printed. */
function lastError(dir: string, printed: string): string {
  try {
    const lines = fs.readFileSync(path.join(dir, 'runtime.log'), 'utf8').trim().split('\n').reverse();
    for (const l of lines) {
      const j = JSON.parse(l) as { level?: string; msg?: string };
      // "create <id>: <what>": the id is the container's, which the caller names already
      if (j.level === 'error' && j.msg) return j.msg.replace(/^create [0-9a-f]{64}: /, '');
    }
  } catch {
    /* no log: use the output */
  }
  const lines = printed.trim().split('\n').filter(Boolean);
  return (lines[lines.length - 1] ?? 'create failed').replace(/^tsrun: /, '').replace(/^create [0-9a-f]{64}: /, '');
}

export interface AttachHandlers {
  stdout(b: Buffer): void;
  stderr(b: Buffer): void;
}

export interface Attachment {
  /** resolves with the container's exit code, or undefined if the monitor went away without one */
  done: Promise<number | undefined>;
  send(data: Buffer): void;
  closeStdin(): void;
  resize(rows: number, cols: number): void;
  close(): void;
}

function frame(type: number, data: Buffer): Buffer {
  const h = Buffer.alloc(5);
  h[0] = type;
  h.writeUInt32BE(data.length, 1);
  return Buffer.concat([h, data]);
}

export function attach(dir: string, h: AttachHandlers): Promise<Attachment> {
  return new Promise((resolve, reject) => {
    // through a directory fd: <root>/containers/<64 hex>/attach.sock may exceed a socket path's 108 bytes
    const dirFd = fs.openSync(dir, 'r');
    const sock = net.connect(`/proc/self/fd/${dirFd}/attach.sock`);
    const closeDir = () => fs.closeSync(dirFd);
    let buf = Buffer.alloc(0);
    let exitCode: number | undefined;
    let finish: (c: number | undefined) => void = () => undefined;
    const done = new Promise<number | undefined>((r) => (finish = r));
    let connected = false;
    sock.on('connect', () => {
      connected = true;
      closeDir();
      resolve({
        done,
        send: (d) => sock.write(frame(0, d)),
        closeStdin: () => sock.write(frame(1, Buffer.alloc(0))),
        resize: (rows, cols) => {
          const b = Buffer.alloc(4);
          b.writeUInt16BE(rows, 0);
          b.writeUInt16BE(cols, 2);
          sock.write(frame(2, b));
        },
        close: () => sock.destroy(),
      });
    });
    sock.on('error', (e) => {
      if (connected) return; // 'close' follows and ends the attachment
      closeDir();
      reject(e);
    });
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 5) {
        const len = buf.readUInt32BE(1);
        if (buf.length < 5 + len) break;
        const type = buf[0];
        const data = buf.subarray(5, 5 + len);
        if (type === 1) h.stdout(data);
        else if (type === 2) h.stderr(data);
        else if (type === 3) exitCode = Number(data.toString());
        buf = buf.subarray(5 + len);
      }
    });
    sock.on('close', () => finish(exitCode));
  });
}
