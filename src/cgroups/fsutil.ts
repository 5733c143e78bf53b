/**
 * The few filesystem operations cgroup placement needs, each turning a Node
 * errno error into a one-line UserError that names the file, in the
 * "cgroup: <op> <file>: <strerror>" shape runc users know.
 */
import * as fs from 'node:fs';
import { posix } from 'node:path';
import { UserError } from '../errors.js';

/** libuv's descriptions are lower-case and sometimes differ from strerror(3); these are the ones that differ. */
const STRERROR: Record<string, string> = {
  EBUSY: 'Device or resource busy',
  ESRCH: 'No such process',
  EOPNOTSUPP: 'Operation not supported',
  ENOTSUP: 'Operation not supported',
  E2BIG: 'Argument list too long',
  ERANGE: 'Numerical result out of range',
  EEXIST: 'File exists',
};

export function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A failed cgroup filesystem operation; `code` is the errno name so callers can tolerate specific ones. */
export class CgroupError extends UserError {
  constructor(message: string, readonly code: string | undefined) {
    super(message);
    this.name = 'CgroupError';
  }
}

export function cgroupError(op: string, file: string, err: unknown): CgroupError {
  const code = errnoCode(err);
  let desc: string;
  if (code && STRERROR[code]) desc = STRERROR[code];
  else {
    // "ENOENT: no such file or directory, open '/x'" -> "No such file or directory"
    const msg = err instanceof Error ? err.message : String(err);
    const bare = msg.replace(/^[A-Z0-9_]+: /, '').replace(/, [a-z]+( '.*)?$/, '');
    desc = bare.charAt(0).toUpperCase() + bare.slice(1);
  }
  return new CgroupError(`cgroup: ${op} ${file}: ${desc}`, code);
}

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw cgroupError('read', file, err);
  }
}

/**
 * Writes an existing cgroup control file. Opened without O_CREAT so that a
 * wrong path fails instead of leaving a stray regular file behind.
 */
export function writeCgroupFile(file: string, data: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY);
    fs.writeSync(fd, data);
  } catch (err) {
    throw cgroupError('write', file, err);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * Writes `value` to an existing cgroup control file; a kernel refusal becomes
 * one line naming the file and the value:
 * `cgroup: write "10 100" to /sys/fs/cgroup/c1/cpu.max: Invalid argument`.
 */
export function writeValue(file: string, value: string): void {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, fs.constants.O_WRONLY);
    fs.writeSync(fd, value);
  } catch (err) {
    throw cgroupError(`write ${JSON.stringify(value)} to`, file, err);
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/**
 * The file operations resource code needs, injectable so that the mapping
 * from linux.resources to control files can be tested without a kernel.
 * Paths are absolute; errors are CgroupErrors carrying the errno name.
 */
export interface CgroupIO {
  read(file: string): string;
  write(file: string, value: string): void;
  exists(file: string): boolean;
}

export const hostIO: CgroupIO = {
  read: readText,
  write: writeValue,
  exists: (file) => fs.existsSync(file),
};

/** The immediate child cgroups (subdirectories) of `dir`; [] if `dir` is gone. */
export function childDirs(dir: string): string[] {
  try {
    return fs
      .readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => posix.join(dir, e.name));
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return [];
    throw cgroupError('readdir', dir, err);
  }
}

/**
 * mkdir -p that reports exactly which directories it created, shallowest
 * first, so that destroy can later remove those and nothing else.
 */
export function mkdirTracked(dir: string): string[] {
  let first: string | undefined;
  try {
    first = fs.mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (err) {
    throw cgroupError('mkdir', dir, err);
  }
  if (first === undefined) return [];
  const created = [dir];
  for (let d = dir; d !== first; ) {
    d = posix.dirname(d);
    created.unshift(d);
  }
  return created;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
/** Synchronous sleep: the whole cgroups API is synchronous, and nothing will ever notify this cell. */
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

/**
 * rmdir a cgroup directory. A cgroup whose last process has just exited can
 * still report EBUSY for a moment (the kernel finishes tearing the task down
 * asynchronously), so EBUSY is retried with short, growing sleeps for about
 * a second before giving up. Returns false if it was already gone.
 */
export function rmdirRetry(dir: string, budgetMs = 1000): boolean {
  const deadline = Date.now() + budgetMs;
  for (let delay = 10; ; delay = Math.min(delay * 2, 100)) {
    try {
      fs.rmdirSync(dir);
      return true;
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT') return false;
      if (code !== 'EBUSY' || Date.now() + delay > deadline) throw cgroupError('rmdir', dir, err);
    }
    sleepMs(delay);
  }
}
