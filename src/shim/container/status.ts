/**
 * A container's state is derived, never trusted: the monitor's pid is checked
 * against its /proc start time (a reused pid cannot fake a running container),
 * and exit.json, written by the monitor when the init exits, says how it ended.
 * The text `ps` shows is Docker's (`Up 3 seconds`, `Exited (0) 5 seconds ago`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { type ContainerRecord, containerDir } from './store.js';

export type ContainerStatus = 'created' | 'running' | 'exited';

export interface ExitInfo {
  exitCode: number;
  finishedAt: string;
  pid?: number;
}

/** Field 22 of /proc/<pid>/stat (after the parenthesised comm, which may hold spaces). */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined; // a zombie has exited
    return fields[19];
  } catch {
    return undefined;
  }
}

export interface MonitorRef {
  pid: number;
  start: string;
}

export function readMonitor(root: string, id: string): MonitorRef | undefined {
  try {
    const [pid, start] = fs.readFileSync(path.join(containerDir(root, id), 'monitor.pid'), 'utf8').trim().split(' ');
    return { pid: Number(pid), start };
  } catch {
    return undefined;
  }
}

export function monitorAlive(m: MonitorRef | undefined): boolean {
  return !!m && m.pid > 0 && procStartTime(m.pid) === m.start;
}

export function readExit(root: string, id: string): ExitInfo | undefined {
  try {
    return JSON.parse(fs.readFileSync(path.join(containerDir(root, id), 'exit.json'), 'utf8')) as ExitInfo;
  } catch {
    return undefined;
  }
}

export interface DerivedState {
  status: ContainerStatus;
  exitCode: number;
  finishedAt?: string;
  /** the monitor (or its cleanup, which keeps its pid) is still there */
  monitorRunning: boolean;
  /** the monitor died without recording an exit: state lost, as after a crash */
  lost: boolean;
}

export function deriveState(root: string, rec: ContainerRecord): DerivedState {
  const mon = monitorAlive(readMonitor(root, rec.id));
  const exit = readExit(root, rec.id);
  if (exit) return { status: 'exited', exitCode: exit.exitCode, finishedAt: exit.finishedAt, monitorRunning: mon, lost: false };
  if (mon) return { status: 'running', exitCode: 0, monitorRunning: true, lost: false };
  if (!rec.state.startedAt) return { status: 'created', exitCode: 0, monitorRunning: false, lost: false };
  if (rec.state.finishedAt) return { status: 'exited', exitCode: rec.state.exitCode ?? 0, finishedAt: rec.state.finishedAt, monitorRunning: false, lost: false };
  // started, no exit recorded and no monitor: it crashed (or the machine rebooted)
  return { status: 'exited', exitCode: 255, monitorRunning: false, lost: true };
}

/** Go's units.HumanDuration, which Docker's STATUS and CREATED columns use. */
export function humanDuration(ms: number): string {
  const seconds = Math.floor(ms / 1000);
  if (seconds < 1) return 'Less than a second';
  if (seconds === 1) return '1 second';
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.floor(seconds / 60);
  if (minutes === 1) return 'About a minute';
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.round(ms / 3_600_000);
  if (hours === 1) return 'About an hour';
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.floor(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.floor(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.floor(hours / 24 / 30)} months`;
  return `${Math.floor(ms / 3_600_000 / 24 / 365)} years`;
}

export function statusText(s: DerivedState, rec: ContainerRecord, now = Date.now()): string {
  switch (s.status) {
    case 'created':
      return 'Created';
    case 'running':
      return `Up ${humanDuration(now - Date.parse(rec.state.startedAt ?? rec.created))}`;
    case 'exited':
      return s.finishedAt ? `Exited (${s.exitCode}) ${humanDuration(now - Date.parse(s.finishedAt))} ago` : `Exited (${s.exitCode})`;
  }
}
