/**
 * pause/resume: the v1 freezer controller (freezer.state) where it is
 * mounted, else cgroup v2's core freezer (cgroup.freeze), as runc's fs and
 * fs2 freezers do. Freezing waits until the kernel reports the whole cgroup
 * frozen, and undoes itself if that does not happen in time.
 */
import { posix } from 'node:path';
import { UserError } from '../errors.js';
import { type CgroupIO } from './fsutil.js';
import { UNIFIED } from './paths.js';

export type FreezerState = 'thawed' | 'frozen' | 'freezing';

interface Freezer {
  kind: 'v1' | 'v2';
  dir: string;
}

const sleepCell = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleepCell, 0, 0, ms);
}

function freezerOf(paths: Readonly<Record<string, string>>, io: CgroupIO): Freezer | undefined {
  if (paths.freezer) return { kind: 'v1', dir: paths.freezer };
  const u = paths[UNIFIED];
  if (u && io.exists(posix.join(u, 'cgroup.freeze'))) return { kind: 'v2', dir: u };
  return undefined;
}

function requireFreezer(paths: Readonly<Record<string, string>>, io: CgroupIO): Freezer {
  const f = freezerOf(paths, io);
  if (!f) throw new UserError('cgroup: pause/resume needs the freezer controller (v1) or cgroup.freeze (v2), and neither is available');
  return f;
}

/** undefined when there is no freezer (or the cgroup is gone): such a container is never paused. */
export function freezerState(paths: Readonly<Record<string, string>>, io: CgroupIO): FreezerState | undefined {
  const f = freezerOf(paths, io);
  if (!f) return undefined;
  try {
    if (f.kind === 'v1') {
      const s = io.read(posix.join(f.dir, 'freezer.state')).trim();
      return s === 'FROZEN' ? 'frozen' : s === 'FREEZING' ? 'freezing' : 'thawed';
    }
    if (io.read(posix.join(f.dir, 'cgroup.freeze')).trim() !== '1') return 'thawed';
    return v2Frozen(f.dir, io) ? 'frozen' : 'freezing';
  } catch {
    return undefined;
  }
}

function v2Frozen(dir: string, io: CgroupIO): boolean {
  return /^frozen 1$/m.test(io.read(posix.join(dir, 'cgroup.events')));
}

/** Freezes every process in the cgroup; returns once the kernel says FROZEN, or throws (thawed again) after `timeoutMs`. */
export function freeze(paths: Readonly<Record<string, string>>, io: CgroupIO, timeoutMs = 10_000): void {
  const f = requireFreezer(paths, io);
  const deadline = Date.now() + timeoutMs;
  if (f.kind === 'v2') {
    io.write(posix.join(f.dir, 'cgroup.freeze'), '1');
    for (let delay = 1; !v2Frozen(f.dir, io); delay = Math.min(delay * 2, 20)) {
      if (Date.now() > deadline) {
        thaw(paths, io);
        throw new UserError(`cgroup: ${f.dir}: not frozen after ${timeoutMs} ms; thawed it again`);
      }
      sleepMs(delay);
    }
    return;
  }
  const file = posix.join(f.dir, 'freezer.state');
  // runc's loop: re-request FROZEN while the state says FREEZING (a task
  // forking or in an uninterruptible sleep holds it up), with an occasional
  // thaw to let a stuck one move on.
  for (let i = 0; ; i++) {
    if (i % 50 === 49) {
      io.write(file, 'THAWED');
      sleepMs(10);
    }
    io.write(file, 'FROZEN');
    const state = io.read(file).trim();
    if (state === 'FROZEN') return;
    if (state !== 'FREEZING') throw new UserError(`cgroup: ${file}: unexpected state ${state} after freezing`);
    if (Date.now() > deadline) {
      io.write(file, 'THAWED');
      throw new UserError(`cgroup: ${file}: still FREEZING after ${timeoutMs} ms; thawed it again`);
    }
    sleepMs(i < 10 ? 1 : 5);
  }
}

export function thaw(paths: Readonly<Record<string, string>>, io: CgroupIO): void {
  const f = requireFreezer(paths, io);
  if (f.kind === 'v2') io.write(posix.join(f.dir, 'cgroup.freeze'), '0');
  else io.write(posix.join(f.dir, 'freezer.state'), 'THAWED');
}
