/**
 * Where a container lives on disk, and its record.
 *
 *   <root>/containers/<cid>/container.json   the record (names its imageId: rmi scans it)
 *   <root>/containers/<cid>/config.json      the OCI config; the directory is the bundle
 *   <root>/containers/<cid>/<cid>-json.log   the json-file log the monitor writes
 *   <root>/containers/<cid>/exit.json        the monitor's record of the init's exit
 *   <root>/containers/<cid>/monitor.pid      "pid starttime" of the monitor
 *   <root>/containers/.names/<name>          the name reservation (content: the id),
 *                                            created O_EXCL so two runs cannot share a name
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { nameConflict, type Named, resolveRef } from './ids.js';

export interface VolumeMount {
  /** host path (bind), or the volume's _data directory */
  source: string;
  destination: string;
  readOnly: boolean;
  /** named or anonymous volume name; absent for a bind mount */
  volume?: string;
  anonymous?: boolean;
}

export interface PortBinding {
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: 'tcp' | 'udp';
}

export interface ContainerRecord extends Named {
  created: string;
  /** as the user wrote it, and the image's config digest */
  image: string;
  imageId: string;
  /** the image's layers' chain ids, bottom first (the rootfs lowers) */
  chainIds: string[];
  path: string;
  args: string[];
  config: {
    hostname: string;
    user: string;
    env: string[];
    workingDir: string;
    entrypoint: string[] | null;
    cmd: string[] | null;
    tty: boolean;
    openStdin: boolean;
    stopSignal: string;
    labels: Record<string, string>;
    exposedPorts: string[];
  };
  hostConfig: {
    network: 'none' | 'bridge' | 'host';
    ports: PortBinding[];
    publishAll: boolean;
    mounts: VolumeMount[];
    autoRemove: boolean;
    readOnly: boolean;
    memory: number;
    nanoCpus: number;
    pidsLimit: number;
    capAdd: string[];
    capDrop: string[];
  };
  state: {
    startedAt?: string;
    finishedAt?: string;
    exitCode?: number;
    pid?: number;
    error?: string;
    restartCount: number;
  };
  /** what the network setup returned (addresses, forwarded ports) */
  network?: unknown;
  /** overlay or copy: how the rootfs was made */
  rootfsKind?: string;
}

export const containersDir = (root: string): string => path.join(root, 'containers');
export const containerDir = (root: string, id: string): string => path.join(root, 'containers', id);
const namesDir = (root: string): string => path.join(root, 'containers', '.names');
const recordFile = (root: string, id: string): string => path.join(containerDir(root, id), 'container.json');

export function writeFileAtomic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

export function saveRecord(root: string, rec: ContainerRecord): void {
  writeFileAtomic(recordFile(root, rec.id), JSON.stringify(rec, null, 2) + '\n');
}

export function loadRecord(root: string, id: string): ContainerRecord | undefined {
  try {
    return JSON.parse(fs.readFileSync(recordFile(root, id), 'utf8')) as ContainerRecord;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`container ${id}: unreadable container.json: ${(e as Error).message}`);
  }
}

export function listRecords(root: string): ContainerRecord[] {
  let ids: string[];
  try {
    ids = fs.readdirSync(containersDir(root)).filter((n) => /^[0-9a-f]{64}$/.test(n));
  } catch {
    return [];
  }
  const out: ContainerRecord[] = [];
  for (const id of ids) {
    const r = loadRecord(root, id);
    if (r) out.push(r); // a directory without a record is a create in progress or a removal
  }
  return out.sort((a, b) => b.created.localeCompare(a.created));
}

export function findContainer(root: string, ref: string): ContainerRecord {
  return resolveRef(listRecords(root), ref);
}

/** Takes a name for an id, atomically; Docker's conflict error when it is taken. */
export function reserveName(root: string, name: string, id: string): void {
  fs.mkdirSync(namesDir(root), { recursive: true });
  const file = path.join(namesDir(root), name);
  try {
    fs.writeFileSync(file, id, { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    let holder = '';
    try {
      holder = fs.readFileSync(file, 'utf8').trim();
    } catch {
      /* released meanwhile */
    }
    // a reservation whose container is gone (a crash between reserve and record) is stale
    if (holder && !fs.existsSync(containerDir(root, holder))) {
      fs.rmSync(file, { force: true });
      return reserveName(root, name, id);
    }
    throw nameConflict(name, holder);
  }
}

export function releaseName(root: string, name: string, id: string): void {
  const file = path.join(namesDir(root), name);
  try {
    if (fs.readFileSync(file, 'utf8').trim() === id) fs.rmSync(file, { force: true });
  } catch {
    /* already released */
  }
}

export function nameTaken(root: string, name: string): boolean {
  return fs.existsSync(path.join(namesDir(root), name));
}
