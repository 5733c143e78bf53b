/**
 * Writing to stdout and stderr without Node's stream objects. The first use
 * of process.stdout or process.stderr builds a stream (for a file or pipe:
 * ~20 internal modules, stream and net among them), about 1.5 ms of every
 * short command's start, measured with bench/ab.c; `state` and every error
 * message paid it. Node writes to files and pipes synchronously anyway, so a
 * plain write(2) keeps the behaviour: the text is out before the call returns.
 *
 * Only when started by the launcher (bin/tsrun -> dist/tsrun.js, which leaves
 * globalThis.__tsrunLoader): a caller running main() in its own process (the
 * unit tests) keeps process.stdout and process.stderr, which it may capture.
 */
import fs from 'node:fs';

const cell = new Int32Array(new SharedArrayBuffer(4));

/**
 * Writes all of `text` to `fd`. A descriptor someone else made non-blocking
 * (EAGAIN) is waited for, as Node's stream would; other errors throw.
 */
export function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EAGAIN') throw e;
      Atomics.wait(cell, 0, 0, 1);
    }
  }
}

const direct = (): boolean => (globalThis as { __tsrunLoader?: unknown }).__tsrunLoader !== undefined;

/** stdout: a failure (EPIPE: the reader went away) throws, as a stream's 'error' would end the command. */
export function writeStdout(text: string): void {
  if (direct()) writeAll(1, text);
  else process.stdout.write(text);
}

/** stderr: best effort; a closed or broken stderr must not turn a message into a crash. */
export function writeStderr(text: string): void {
  if (!direct()) {
    process.stderr.write(text);
    return;
  }
  try {
    writeAll(2, text);
  } catch {
    /* nowhere left to report it */
  }
}
