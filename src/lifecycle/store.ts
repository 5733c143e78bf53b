/**
 * The state directory: <root>/<id>/state.json plus the exec fifo. On-disk
 * state is the only truth; every command re-reads it. Creating the directory
 * is the lock that lets exactly one of two concurrent `create`s win.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Spec } from '../oci/types.js';
import type { CgroupsState } from '../cgroups/manager.js';
import { UserError } from '../errors.js';
import { loadedNative } from '../native.js';
import { EXEC_FIFO } from '../plan/plan.js';

export const DEFAULT_ROOT = '/run/tsrun';
const STATE_FILE = 'state.json';

/** What tsrun records about a container (not the OCI state: see container.ts for that). */
export interface ContainerRecord {
  id: string;
  bundle: string;
  rootfs: string;
  created: string;
  /** the init's host pid, 0 until cloned */
  pid: number;
  /** /proc/<pid>/stat starttime, so a reused pid is not mistaken for our init */
  pidStartTime?: string;
  /** 'creating' until create finishes; then the lifecycle step last completed */
  phase: 'creating' | 'created' | 'running';
  /** the `create` process, so a crashed create is recognisable */
  creatorPid: number;
  creatorStartTime?: string;
  /** a create served by a warm engine (src/engine/): it goes on only while this engine lives too */
  enginePid?: number;
  engineStartTime?: string;
  annotations?: Record<string, string>;
  cgroups?: CgroupsState;
  config: Spec;
}

// runc's rule: letters, digits, and _ + - . (but not "." or "..").
const ID_PATTERN = /^[\w+.-]+$/;

export function checkId(id: string): void {
  if (!id) throw new UserError('container id cannot be empty');
  if (!ID_PATTERN.test(id) || id === '.' || id === '..' || id.length > 1024) {
    throw new UserError(`invalid container id format: ${JSON.stringify(id)}`);
  }
}

export class Store {
  constructor(readonly root: string = DEFAULT_ROOT) {}

  dir(id: string): string {
    return path.join(this.root, id);
  }

  /** Claims the id atomically; the loser of a race gets runc's error. */
  claim(id: string): string {
    checkId(id);
    fs.mkdirSync(this.root, { recursive: true, mode: 0o711 });
    const dir = this.dir(id);
    try {
      fs.mkdirSync(dir, { mode: 0o711 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new UserError(`container with id exists: ${id}`);
      throw e;
    }
    return dir;
  }

  exists(id: string): boolean {
    return fs.existsSync(this.dir(id));
  }

  /** The record, or undefined while a create has claimed the id but not written it yet. */
  tryLoad(id: string): ContainerRecord | undefined {
    try {
      return JSON.parse(fs.readFileSync(path.join(this.dir(id), STATE_FILE), 'utf8')) as ContainerRecord;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      if (e instanceof SyntaxError) return undefined; // only ever written by rename, so this is foreign
      throw e;
    }
  }

  load(id: string): ContainerRecord {
    checkId(id);
    const rec = this.tryLoad(id);
    if (!rec) throw new UserError(`container "${id}" does not exist`);
    return rec;
  }

  /**
   * Atomic replace: readers see the old or the new record, never half of
   * one. Where the addon is loaded anyway (create, run, exec, the engine)
   * the new file is exchanged with the old (RENAME_EXCHANGE) and the old one
   * unlinked: a rename over an existing file makes ext4 start writing the new
   * one out (auto_da_alloc), ~0.2 ms per save, and the unlink at delete
   * then waits for that write. State needs no durability: it lives on a
   * tmpfs (/run) on most hosts and means nothing after a reboot.
   */
  save(rec: ContainerRecord): void {
    const file = path.join(this.dir(rec.id), STATE_FILE);
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(rec), { mode: 0o600 });
    if (loadedNative()?.exchange(tmp, file)) fs.unlinkSync(tmp);
    else fs.renameSync(tmp, file);
  }

  /**
   * The state directory and all in it. It holds state.json and, until
   * start, the exec fifo: both unlinked by name and the directory removed
   * takes three syscalls, where fs.rmSync's walk (lstat, readdir, a retry
   * loop, in JavaScript) was a third of a warm delete. Anything else there
   * (a crash's temporary file, say) makes rmdir fail, and the walk does it.
   */
  remove(id: string): void {
    const dir = this.dir(id);
    try {
      for (const name of [STATE_FILE, EXEC_FIFO]) {
        try {
          fs.unlinkSync(path.join(dir, name));
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        }
      }
      fs.rmdirSync(dir);
    } catch {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  ids(): string[] {
    try {
      return fs
        .readdirSync(this.root, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => d.name)
        .sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
  }
}

/** Writes a pid file the way runc does: ASCII, no newline, atomically. */
export function writePidFile(file: string, pid: number): void {
  const abs = path.resolve(file);
  const tmp = path.join(path.dirname(abs), `.${path.basename(abs)}.${process.pid}`);
  fs.writeFileSync(tmp, String(pid));
  fs.renameSync(tmp, abs);
}
