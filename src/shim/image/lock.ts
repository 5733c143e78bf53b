/**
 * An exclusive lock on a file, held by a child `flock(1)` process.
 *
 * Node has no flock(2). A lock file made with O_EXCL needs stale-lock
 * breaking, and breaking it safely is itself racy (two breakers can each
 * delete the other's fresh lock). A kernel flock has no staleness: it is
 * released when its last holder dies. So a child `flock -x FILE cat` holds
 * it: it says when it has the lock (a byte on stdout) and keeps it until its
 * stdin closes — which also happens when this process dies, even by SIGKILL.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { UserError } from '../../errors.js';

export interface Lock {
  release(): Promise<void>;
}

/** Waits (at most `timeoutMs`) for the exclusive lock on `file` (created if missing). */
export function acquireLock(file: string, timeoutMs = 120_000): Promise<Lock> {
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  return new Promise<Lock>((resolve, reject) => {
    const secs = Math.max(1, Math.ceil(timeoutMs / 1000));
    // `sh -c 'echo; exec cat'`: the newline says "locked"; cat holds until EOF on stdin
    const child = spawn('flock', ['-x', '-w', String(secs), file, 'sh', '-c', 'echo; exec cat >/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let locked = false;
    let stderr = '';
    const exited = new Promise<void>((r) => child.once('close', () => r()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.once('data', () => {
      locked = true;
      resolve({
        release: async () => {
          child.stdin.end();
          await exited;
        },
      });
    });
    child.once('error', (e) => reject(new UserError(`locking ${file}: ${e.message} (is util-linux's flock installed?)`)));
    child.once('close', (code) => {
      if (!locked) {
        reject(new UserError(code === 1 && !stderr ? `timed out after ${secs} s waiting for the lock on ${file}` : `locking ${file}: ${stderr.trim() || `flock exited ${code}`}`));
      }
    });
    child.stdin.on('error', () => undefined);
  });
}

/** Runs `fn` holding the lock on `file`. */
export async function withLock<T>(file: string, fn: () => T | Promise<T>): Promise<T> {
  const lock = await acquireLock(file);
  try {
    return await fn();
  } finally {
    await lock.release();
  }
}
