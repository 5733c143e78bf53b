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
  /** resolves when the container side closed (the process and its children exited) */
  drained: Promise<void>;
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
  // A pty master is a tty, so tty.ReadStream reads it without blocking the loop.
  const out = new tty.ReadStream(master);
  const drained = new Promise<void>((resolve) => {
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
  return { drained, restore };
}
