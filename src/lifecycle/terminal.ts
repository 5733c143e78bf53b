/**
 * The person-at-a-terminal case of `run` and `exec` (terminal: true and no
 * --console-socket): tsrun receives the pty master itself over a socketpair,
 * puts the caller's terminal in raw mode, copies both ways, follows window
 * size changes, and restores the terminal on every way out.
 */
import fs from 'node:fs';
import tty from 'node:tty';
import { UserError } from '../errors.js';
import { native } from '../native.js';

export interface ConsoleChannel {
  /** our end: the pty master arrives here */
  ours: number;
  /** handed to the init/exec process as its console socket */
  theirs: number;
}

/**
 * The console descriptor to hand to the init or exec process: our own
 * channel's end, a connection to --console-socket, or -1 for none.
 */
export function connectConsole(opts: { consoleSocket?: string; consoleFd?: number }): number {
  if (opts.consoleFd !== undefined) return opts.consoleFd;
  if (!opts.consoleSocket) return -1;
  try {
    return native().connectUnix(opts.consoleSocket);
  } catch (e) {
    throw new UserError(`console socket ${opts.consoleSocket}: ${(e as Error).message.replace(/^connect [^:]*: /, '')}`);
  }
}

export function openConsoleChannel(): ConsoleChannel {
  const [ours, theirs] = native().socketPair();
  return { ours, theirs };
}

export interface Relay {
  /**
   * Call once the process has exited: waits (up to `graceMs`) for the
   * container side to close, copies out whatever it left in the pty,
   * and restores the caller's terminal.
   */
  finish(graceMs: number): Promise<void>;
  /** restores the caller's terminal; idempotent */
  restore(): void;
}

/** Receives the master and starts copying; call after the process has sent it (create/exec returned). */
export function startRelay(channel: ConsoleChannel): Relay {
  const master = native().recvFd(channel.ours);
  native().close(channel.ours);
  const stdin = process.stdin;
  const isTty = stdin.isTTY === true;
  const resize = () => {
    if (process.stdout.isTTY) native().setWinsize(master, process.stdout.rows, process.stdout.columns);
  };
  resize();
  process.stdout.on('resize', resize);
  if (isTty) (stdin as tty.ReadStream).setRawMode(true);
  const onInput = (chunk: Buffer) => {
    try {
      fs.writeSync(master, chunk);
    } catch {
      /* the container side is gone */
    }
  };
  stdin.on('data', onInput);
  stdin.resume();
  let restored = false;
  const restore = () => {
    if (restored) return;
    restored = true;
    stdin.off('data', onInput);
    stdin.pause();
    process.stdout.off('resize', resize);
    if (isTty) (stdin as tty.ReadStream).setRawMode(false);
  };
  process.once('exit', restore);
  // Node 20's libuv takes POLLHUP plus a short read from a pty master for
  // end of file, though the kernel may still hold output the slave wrote
  // just before its last close (libuv#4992): under load, `run -t` lost
  // the tail of its output. So the stream reads the master only while the
  // process runs; `finish` reads what is left through a second descriptor
  // that the stream's close does not take with it.
  const rest = native().dup(master);
  // A pty master is a tty, so tty.ReadStream reads it without blocking the loop.
  const out = new tty.ReadStream(master);
  const closed = new Promise<void>((resolve) => {
    const done = () => {
      out.destroy();
      resolve();
    };
    out.on('data', (d: Buffer) => process.stdout.write(d));
    // EIO is how a pty master reports that every slave fd is closed.
    out.on('error', done);
    out.on('end', done);
    out.on('close', done);
  });
  const finish = async (graceMs: number) => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([closed, new Promise((r) => (timer = setTimeout(r, graceMs)))]);
    clearTimeout(timer);
    out.destroy();
    drainPty(rest);
    native().close(rest);
    restore();
  };
  return { finish, restore };
}

/**
 * Copies to stdout what a pty master still holds. The descriptor is
 * non-blocking (libuv made it so): once the last slave has closed, a read
 * returns the remaining output (the kernel flushes its pending buffers
 * first) and then EIO; while some process still holds the slave it ends
 * at EAGAIN. Bounded, for a process that keeps writing.
 */
function drainPty(fd: number, limitBytes = 16 << 20): void {
  for (let total = 0; total < limitBytes; ) {
    const buf = Buffer.allocUnsafe(64 * 1024); // not reused: a write may still hold the last one
    let n: number;
    try {
      n = fs.readSync(fd, buf, 0, buf.length, null);
    } catch {
      return; // EIO: every slave closed and nothing left; EAGAIN: nothing more for now
    }
    if (n <= 0) return;
    process.stdout.write(buf.subarray(0, n));
    total += n;
  }
}
