/** What /proc says about a process: liveness that survives PID reuse. */
import fs from 'node:fs';

export interface ProcStat {
  state: string;
  startTime: string;
}

export function procStat(pid: number): ProcStat | undefined {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let text: string;
  try {
    // utf8: Node reads that in one C++ call (readFileUtf8); any other
    // encoding takes its JavaScript path (fstat, 64 KiB chunks), ~4x the
    // time, and a warm run reads four of these. Only comm could hold bytes
    // that are not UTF-8, and the fields are taken after its last ')'.
    text = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // comm may contain spaces and parentheses: fields start after the last ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0], startTime: fields[19] };
}

let selfStartTime: string | undefined;

/**
 * This process's starttime, read once: it never changes, and reading
 * /proc/<pid>/stat of a many-threaded Node process costs a few tenths of a
 * millisecond, which a warm engine would pay on every create.
 */
export function ownStartTime(): string | undefined {
  return (selfStartTime ??= procStat(process.pid)?.startTime);
}

/** True when `pid` is the same live (non-zombie) process that started at `startTime`. */
export function isAlive(pid: number, startTime?: string): boolean {
  // Ourselves (a record an engine wrote): alive, and no /proc read.
  if (pid === process.pid) return startTime === undefined || startTime === ownStartTime();
  const st = procStat(pid);
  if (!st || st.state === 'Z' || st.state === 'X') return false;
  return startTime === undefined || st.startTime === startTime;
}

/** Sleeps synchronously; the CLI commands are sequential by nature. */
export function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Waits (bounded) for a process we may not be the parent of to die. */
export function waitGone(pid: number, startTime: string | undefined, timeoutMs: number): boolean {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid, startTime)) {
    if (Date.now() > deadline) return false;
    sleepMs(2);
  }
  return true;
}
