/**
 * The image's part of a container's config.json: runc's default spec, with
 * the image config's Entrypoint/Cmd, Env, WorkingDir and User applied under
 * Docker's override rules, the labels as annotations; the parts that are not
 * config.json (exposed ports, volumes, stop signal) returned to the caller.
 *
 * User names are resolved through the image's own /etc/passwd and /etc/group
 * as runc's libcontainer/user does for Docker (GetExecUser): the first
 * matching entry wins, a numeric user without an entry is used as is with
 * gid 0, supplementary groups come from /etc/group membership only when no
 * group is given. The files are found inside the rootfs with every symlink
 * resolved inside it (an image cannot make the shim read a host file).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { defaultSpec } from '../../oci/default-spec.js';
import type { Spec, User } from '../../oci/types.js';
import type { ImageConfig } from './types.js';

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** What `docker create/run` flags change of the image config. */
export interface ImageOverrides {
  /** --entrypoint: replaces the image's Entrypoint and resets its Cmd; '' or [] clears it */
  entrypoint?: string | string[];
  /** the arguments after the image name: replace the Cmd when given */
  cmd?: string[];
  /** -e KEY=VALUE (a bare KEY takes this process's value, or removes KEY when it has none) */
  env?: string[];
  /** -w (must be absolute) */
  workingDir?: string;
  /** -u: name, uid, uid:gid, name:group, ... */
  user?: string;
  hostname?: string;
  /** -t */
  tty?: boolean;
  /** --label, over the image's labels */
  labels?: Record<string, string>;
}

export interface ExposedPort {
  port: number;
  proto: 'tcp' | 'udp' | 'sctp';
}

export interface ImageRuntimeConfig {
  spec: Spec;
  /** the image's ExposedPorts, parsed and sorted ("80/tcp" → { port: 80, proto: 'tcp' }) */
  exposedPorts: ExposedPort[];
  /** the image's Volumes: absolute container paths, sorted (each wants an anonymous volume) */
  volumes: string[];
  /** the image's StopSignal as written ("SIGQUIT", "3", ...), undefined when unset */
  stopSignal?: string;
}

export function specFromImage(image: ImageConfig, rootfs: string, overrides: ImageOverrides = {}): ImageRuntimeConfig {
  const c = image.config ?? {};
  const spec = defaultSpec();
  const proc = spec.process!;

  proc.args = commandLine(c.Entrypoint, c.Cmd, overrides);
  const hostname = overrides.hostname ?? spec.hostname;
  spec.hostname = hostname;
  // Docker's order: PATH and HOSTNAME (and TERM with a terminal) first, then
  // the image's env, then the user's, each replacing keys already set.
  const base = [DEFAULT_PATH, `HOSTNAME=${hostname}`, ...(overrides.tty ? ['TERM=xterm'] : [])];
  proc.env = mergeEnv(mergeEnv(base, c.Env ?? []), overrides.env ?? [], true);
  proc.cwd = workingDir(c.WorkingDir, overrides.workingDir);
  proc.user = resolveUser(rootfs, overrides.user ?? c.User ?? '');
  proc.terminal = overrides.tty ?? false;
  // Docker runs images without no_new_privs: their setuid binaries (su, ping) work.
  proc.noNewPrivileges = false;
  spec.root = { path: rootfs, readonly: false };

  const labels = { ...(c.Labels ?? {}), ...(overrides.labels ?? {}) };
  if (Object.keys(labels).length) spec.annotations = { ...spec.annotations, ...labels };

  return {
    spec,
    exposedPorts: exposedPorts(c.ExposedPorts),
    volumes: Object.keys(c.Volumes ?? {})
      .map((v) => path.posix.join('/', v).replace(/(.)\/+$/, '$1'))
      .sort(),
    stopSignal: c.StopSignal || undefined,
  };
}

/** Docker: --entrypoint resets the image's Cmd; arguments after the image replace Cmd. */
export function commandLine(entrypoint: string[] | null | undefined, cmd: string[] | null | undefined, o: ImageOverrides): string[] {
  let ep = entrypoint ?? [];
  let args = cmd ?? [];
  if (o.entrypoint !== undefined) {
    ep = typeof o.entrypoint === 'string' ? (o.entrypoint === '' ? [] : [o.entrypoint]) : o.entrypoint;
    args = [];
  }
  if (o.cmd && o.cmd.length) args = o.cmd;
  const argv = [...ep, ...args];
  if (argv.length === 0) throw new UserError('no command specified (the image has neither Entrypoint nor Cmd)');
  return argv;
}

/** Docker's ReplaceOrAppendEnvValues: a later KEY=VALUE replaces KEY; a bare KEY (from the command line) is looked up or removed. */
export function mergeEnv(into: string[], over: string[], fromCommandLine = false): string[] {
  const out = into.slice();
  const key = (e: string) => (e.includes('=') ? e.slice(0, e.indexOf('=')) : e);
  for (let e of over) {
    const k = key(e);
    if (k === '') throw new UserError(`invalid environment variable ${JSON.stringify(e)}`);
    if (!e.includes('=') && fromCommandLine) {
      const v = process.env[k];
      if (v === undefined) {
        const i = out.findIndex((x) => key(x) === k);
        if (i >= 0) out.splice(i, 1);
        continue;
      }
      e = `${k}=${v}`;
    }
    const i = out.findIndex((x) => key(x) === k);
    if (i >= 0) out[i] = e;
    else out.push(e);
  }
  return out;
}

function workingDir(image: string | undefined, override: string | undefined): string {
  if (override !== undefined && override !== '') {
    if (!override.startsWith('/')) throw new UserError(`the working directory ${JSON.stringify(override)} is invalid, it needs to be an absolute path`);
    return path.posix.normalize(override);
  }
  // Docker cleans an image's WorkingDir and makes it absolute.
  return image ? path.posix.join('/', image) : '/';
}

function exposedPorts(ports: Record<string, object> | undefined): ExposedPort[] {
  const out = new Map<string, ExposedPort>();
  for (const spec of Object.keys(ports ?? {})) {
    const m = /^(\d+)(?:-(\d+))?(?:\/(tcp|udp|sctp))?$/i.exec(spec);
    const lo = m ? Number(m[1]) : NaN;
    const hi = m?.[2] ? Number(m[2]) : lo;
    if (!m || lo < 1 || hi > 65535 || hi < lo) throw new UserError(`image config: invalid exposed port ${JSON.stringify(spec)}`);
    const proto = (m[3]?.toLowerCase() ?? 'tcp') as ExposedPort['proto'];
    for (let p = lo; p <= hi; p++) out.set(`${p}/${proto}`, { port: p, proto });
  }
  return [...out.values()].sort((a, b) => a.port - b.port || a.proto.localeCompare(b.proto));
}

// ---------------------------------------------------------------------------
// Users and groups

const MAX_ID = 2 ** 31 - 1;

/**
 * Resolves `p` (absolute, inside the container) to a host path under
 * `rootfs`, every symlink resolved as the container would see it, never
 * above the rootfs (`..` stops at its top, absolute targets restart there);
 * null when some component does not exist.
 */
export function resolveInRoot(rootfs: string, p: string): string | null {
  const root = path.resolve(rootfs);
  const todo = p.split('/').filter(Boolean);
  const done: string[] = [];
  let links = 0;
  while (todo.length) {
    const part = todo.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      done.pop();
      continue;
    }
    const here = path.join(root, ...done, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(here);
    } catch {
      return null; // as the kernel would: a missing component ends the lookup
    }
    if (st.isSymbolicLink()) {
      if (++links > 40) throw new UserError(`${p}: too many levels of symbolic links in the image`);
      const target = fs.readlinkSync(here);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter(Boolean));
      continue;
    }
    done.push(part);
  }
  return path.join(root, ...done);
}

/** A regular file of the image, or null when it has none (a FIFO or device there would block or lie). */
function readImageFile(rootfs: string, p: string): string | null {
  const file = resolveInRoot(rootfs, p);
  if (file === null) return null;
  try {
    if (!fs.lstatSync(file).isFile()) return null;
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
}
interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

function idOf(s: string | undefined): number {
  const n = Number(s);
  return s !== undefined && /^\d+$/.test(s) && n <= MAX_ID ? n : NaN;
}

function lines(text: string | null): string[][] {
  return (text ?? '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(':'));
}

function parsePasswd(text: string | null): PasswdEntry[] {
  return lines(text)
    .map((f) => ({ name: f[0], uid: idOf(f[2]), gid: idOf(f[3]) }))
    .filter((e) => !Number.isNaN(e.uid) && !Number.isNaN(e.gid));
}

function parseGroup(text: string | null): GroupEntry[] {
  return lines(text)
    .map((f) => ({ name: f[0], gid: idOf(f[2]), members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) }))
    .filter((e) => !Number.isNaN(e.gid));
}

/** Docker's `--user` / image `User`: "", name, uid, name:group, uid:gid, ... → uid, gid, supplementary gids. */
export function resolveUser(rootfs: string, spec: string): User {
  const colon = spec.indexOf(':');
  const userArg = colon < 0 ? spec : spec.slice(0, colon);
  const groupArg = colon < 0 ? '' : spec.slice(colon + 1);
  const uidArg = idOf(userArg);
  const gidArg = idOf(groupArg);
  if (userArg !== '' && Number.isNaN(uidArg) && /^\d+$/.test(userArg)) throw new UserError(`user ${JSON.stringify(userArg)}: uid out of range`);

  const passwd = parsePasswd(readImageFile(rootfs, '/etc/passwd'));
  // No user given: root, with root's entry (and so its groups) if there is one.
  const match = passwd.find((u) => (userArg === '' ? u.uid === 0 : Number.isNaN(uidArg) ? u.name === userArg : u.uid === uidArg));
  let uid = 0;
  let gid = 0;
  if (match) {
    uid = match.uid;
    gid = match.gid;
  } else if (userArg !== '') {
    if (Number.isNaN(uidArg)) throw new UserError(`unable to find user ${userArg}: no matching entries in passwd file`);
    uid = uidArg;
  }

  const groups = parseGroup(readImageFile(rootfs, '/etc/group'));
  const user: User = { uid, gid };
  if (groupArg !== '') {
    const g = groups.find((e) => (Number.isNaN(gidArg) ? e.name === groupArg : e.gid === gidArg));
    if (g) user.gid = g.gid;
    else if (Number.isNaN(gidArg)) throw new UserError(`unable to find group ${groupArg}: no matching entries in group file`);
    else user.gid = gidArg;
  } else if (match) {
    // Supplementary groups only in the implicit form, from membership lists.
    const sgids = [...new Set(groups.filter((g) => g.members.includes(match.name)).map((g) => g.gid))];
    if (sgids.length) user.additionalGids = sgids;
  }
  return user;
}
