/**
 * Reading the json-file log the monitor writes: one JSON object a line,
 * `{"log": "...", "stream": "stdout"|"stderr", "time": RFC3339Nano}`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { containerDir } from './store.js';

export interface LogEntry {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;
}

export const logFile = (root: string, id: string): string => path.join(containerDir(root, id), `${id}-json.log`);

export function parseLogLine(line: string): LogEntry | undefined {
  try {
    const j = JSON.parse(line) as LogEntry;
    if (typeof j.log !== 'string' || (j.stream !== 'stdout' && j.stream !== 'stderr') || typeof j.time !== 'string') return undefined;
    return j;
  } catch {
    return undefined; // a line being written right now, or damage: skipped as Docker does
  }
}

/** `--tail`: "all" or a non-negative count. */
export function parseTail(v: string | undefined): number {
  if (v === undefined || v === 'all') return Infinity;
  if (!/^\d+$/.test(v)) throw new UserError(`invalid value for "tail": ${v}`, 125);
  return Number(v);
}

export function formatEntry(e: LogEntry, timestamps: boolean): string {
  return timestamps ? `${e.time} ${e.log}` : e.log;
}

/** Complete lines from `offset`; returns them and the offset after the last complete one. */
export function readLogFrom(file: string, offset: number): { entries: LogEntry[]; offset: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return { entries: [], offset };
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size <= offset) return { entries: [], offset };
    const buf = Buffer.alloc(size - offset);
    fs.readSync(fd, buf, 0, buf.length, offset);
    const end = buf.lastIndexOf(0x0a);
    if (end < 0) return { entries: [], offset };
    const entries = buf
      .subarray(0, end)
      .toString('utf8')
      .split('\n')
      .map(parseLogLine)
      .filter((e): e is LogEntry => !!e);
    return { entries, offset: offset + end + 1 };
  } finally {
    fs.closeSync(fd);
  }
}
