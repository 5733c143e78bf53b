/**
 * Mounts, /dev and path hardening: turns config.mounts, linux.devices,
 * maskedPaths and readonlyPaths into MOUNT_IN_ROOT / MKNOD / SYMLINK / MASK
 * ops. Every destination is resolved by the executor inside the rootfs
 * (openat2 RESOLVE_IN_ROOT), so a symlink in the image cannot redirect a
 * mount onto the host.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Device, Mount, Spec } from '../oci/types.js';
import { ConfigError } from '../errors.js';
import { MS, S_IFBLK, S_IFCHR, S_IFIFO, makedev } from './linux.js';
import { MountFlag, Op, type PlanOp } from './plan.js';

interface ParsedOptions {
  flags: number;
  clear: number;
  propagation: number[];
  data: string[];
  bind: boolean;
  recursive: boolean;
}

// Option → [flags to set, flags to clear], the same table runc and mount(8) use.
const FLAG_OPTIONS: Record<string, [number, number]> = {
  async: [0, MS.SYNCHRONOUS],
  atime: [0, MS.NOATIME],
  defaults: [0, 0],
  dev: [0, MS.NODEV],
  diratime: [0, MS.NODIRATIME],
  dirsync: [MS.DIRSYNC, 0],
  exec: [0, MS.NOEXEC],
  mand: [MS.MANDLOCK, 0],
  noatime: [MS.NOATIME, 0],
  nodev: [MS.NODEV, 0],
  nodiratime: [MS.NODIRATIME, 0],
  noexec: [MS.NOEXEC, 0],
  nomand: [0, MS.MANDLOCK],
  norelatime: [0, MS.RELATIME],
  nostrictatime: [0, MS.STRICTATIME],
  nosuid: [MS.NOSUID, 0],
  nosymfollow: [MS.NOSYMFOLLOW, 0],
  relatime: [MS.RELATIME, 0],
  ro: [MS.RDONLY, 0],
  rw: [0, MS.RDONLY],
  strictatime: [MS.STRICTATIME, 0],
  suid: [0, MS.NOSUID],
  sync: [MS.SYNCHRONOUS, 0],
};

export const PROPAGATION: Record<string, number> = {
  private: MS.PRIVATE,
  rprivate: MS.PRIVATE | MS.REC,
  shared: MS.SHARED,
  rshared: MS.SHARED | MS.REC,
  slave: MS.SLAVE,
  rslave: MS.SLAVE | MS.REC,
  unbindable: MS.UNBINDABLE,
  runbindable: MS.UNBINDABLE | MS.REC,
};

/** Every mount option the compiler understands, for `tsrun features`. */
export function supportedMountOptions(): string[] {
  return [...Object.keys(FLAG_OPTIONS), ...Object.keys(PROPAGATION), 'bind', 'rbind'].sort();
}

export function parseMountOptions(options: string[] = []): ParsedOptions {
  const r: ParsedOptions = { flags: 0, clear: 0, propagation: [], data: [], bind: false, recursive: false };
  for (const o of options) {
    if (o === 'bind' || o === 'rbind') {
      r.bind = true;
      r.recursive ||= o === 'rbind';
    } else if (o in FLAG_OPTIONS) {
      const [set, clear] = FLAG_OPTIONS[o];
      r.flags = (r.flags & ~clear) | set;
      r.clear = (r.clear & ~set) | clear;
    } else if (o in PROPAGATION) {
      r.propagation.push(PROPAGATION[o]);
    } else if (o === 'tmpcopyup' || o === 'remount' || o === 'idmap' || o === 'ridmap') {
      // runc extensions / id-mapped mounts: not supported; the caller warns.
      r.data.push(o);
    } else {
      // Anything else is filesystem data (size=65536k, mode=755, newinstance...).
      r.data.push(o);
    }
  }
  return r;
}

const UNSUPPORTED_OPTIONS = new Set(['tmpcopyup', 'remount', 'idmap', 'ridmap']);

export interface CgroupMountSource {
  /** 'v2': a single unified hierarchy; 'v1'/'hybrid': one bind per hierarchy */
  mode: 'v1' | 'hybrid' | 'v2';
  /** hierarchy directory name under /sys/fs/cgroup → the container's cgroup dir on the host */
  hierarchies: { name: string; hostPath: string }[];
}

export interface MountContext {
  bundle: string;
  userns: boolean;
  cgroupns: boolean;
  /** a new network namespace is created with the container (a user namespace then owns it) */
  ownNetns: boolean;
  cgroups: CgroupMountSource;
  /** linux.mountLabel (only set when SELinux is enabled: compile checks) */
  mountLabel?: string;
  warn(msg: string): void;
}

// Filesystems that take an SELinux context= option for the container's label.
const LABELLED_FS = new Set(['tmpfs', 'devpts', 'mqueue']);

function isBind(m: Mount, o: ParsedOptions): boolean {
  return o.bind || m.type === 'bind';
}

/** A bind's source is relative to the bundle; a file source needs a file mount point. */
function bindSource(m: Mount, i: number, ctx: MountContext): { source: string; isFile: boolean } {
  const source = path.resolve(ctx.bundle, m.source ?? '');
  let st: fs.Stats;
  try {
    st = fs.statSync(source);
  } catch {
    throw new ConfigError('config.json', `mounts[${i}].source`, `bind source "${source}" does not exist`);
  }
  return { source, isFile: !st.isDirectory() };
}

export function mountOps(spec: Spec, ctx: MountContext): PlanOp[] {
  const ops: PlanOp[] = [];
  (spec.mounts ?? []).forEach((m, i) => {
    const o = parseMountOptions(m.options);
    for (const opt of m.options ?? []) {
      if (UNSUPPORTED_OPTIONS.has(opt)) ctx.warn(`mounts[${i}]: option "${opt}" is not supported and was ignored`);
    }
    const dataOpts = o.data.filter((d) => !UNSUPPORTED_OPTIONS.has(d));
    if (ctx.mountLabel && LABELLED_FS.has(m.type ?? '')) dataOpts.push(`context="${ctx.mountLabel}"`);
    const data = dataOpts.join(',') || undefined;
    const dest = m.destination;
    if (m.type === 'cgroup' || m.type === 'cgroup2') {
      ops.push(...cgroupMountOps(dest, o, ctx));
      return;
    }
    const what = `mount ${m.source ?? m.type ?? 'none'} on ${dest}`;
    // The kernel takes one propagation type per mount(2) call (runc makes one
    // call each); the first rides on the mount op, the rest follow it.
    const [propagation = 0, ...moreProps] = o.propagation;
    const propagationOps = (): PlanOp[] =>
      moreProps.map((p) => ({ code: Op.MOUNT_IN_ROOT, a: p, s: [undefined, dest], what: `set propagation of ${dest}` }));
    if (isBind(m, o)) {
      const { source, isFile } = bindSource(m, i, ctx);
      // Bind mounts ignore flags on the first mount(2); a remount applies them.
      const remountFlags = o.flags ? MS.REMOUNT | MS.BIND | o.flags | (o.recursive ? MS.REC : 0) : 0;
      ops.push({
        code: Op.MOUNT_IN_ROOT,
        flags: MountFlag.BIND | (isFile ? MountFlag.CREATE_FILE : MountFlag.CREATE_DIR),
        a: MS.BIND | (o.recursive ? MS.REC : 0),
        b: propagation,
        c: remountFlags,
        s: [source, dest, undefined, undefined],
        what,
      });
      ops.push(...propagationOps());
      return;
    }
    // sysfs cannot be mounted from a user namespace that does not own the
    // network namespace; runc falls back to a recursive bind of the host's.
    if (m.type === 'sysfs' && ctx.userns && !ctx.ownNetns) {
      ops.push({
        code: Op.MOUNT_IN_ROOT,
        flags: MountFlag.CREATE_DIR,
        a: MS.BIND | MS.REC,
        b: propagation,
        c: MS.REMOUNT | MS.BIND | MS.REC | o.flags,
        s: ['/sys', dest, undefined, undefined],
        what,
      });
      ops.push(...propagationOps());
      return;
    }
    ops.push({
      code: Op.MOUNT_IN_ROOT,
      flags: MountFlag.CREATE_DIR,
      a: o.flags,
      b: propagation,
      s: [m.source ?? m.type ?? 'none', dest, m.type ?? 'none', data],
      what,
    });
    ops.push(...propagationOps());
  });
  return ops;
}

/**
 * cgroup mounts. On v2 a cgroup2 mount (its root is the container's cgroup
 * when a cgroup namespace exists) or a bind of the container's cgroup; on v1
 * and hybrid hosts a tmpfs with one bind per hierarchy, as runc does, so the
 * container sees its own cgroup at the top of each.
 */
function cgroupMountOps(dest: string, o: ParsedOptions, ctx: MountContext): PlanOp[] {
  const ops: PlanOp[] = [];
  const bindFlags = MS.REMOUNT | MS.BIND | (o.flags & (MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC));
  if (ctx.cgroups.mode === 'v2') {
    const h = ctx.cgroups.hierarchies[0];
    if (ctx.cgroupns) {
      ops.push({
        code: Op.MOUNT_IN_ROOT,
        flags: MountFlag.CREATE_DIR,
        a: o.flags,
        s: ['cgroup2', dest, 'cgroup2', undefined],
        what: `mount cgroup2 on ${dest}`,
      });
    } else if (h) {
      ops.push({
        code: Op.MOUNT_IN_ROOT,
        flags: MountFlag.CREATE_DIR,
        a: MS.BIND | MS.REC,
        c: bindFlags,
        s: [h.hostPath, dest, undefined, undefined],
        what: `bind cgroup ${h.hostPath} on ${dest}`,
      });
    }
    return ops;
  }
  ops.push({
    code: Op.MOUNT_IN_ROOT,
    flags: MountFlag.CREATE_DIR,
    a: MS.NOSUID | MS.NODEV | MS.NOEXEC,
    s: ['tmpfs', dest, 'tmpfs', 'mode=755'],
    what: `mount tmpfs on ${dest}`,
  });
  for (const h of ctx.cgroups.hierarchies) {
    const target = path.posix.join(dest, h.name);
    ops.push({
      code: Op.MOUNT_IN_ROOT,
      flags: MountFlag.CREATE_DIR,
      a: MS.BIND | MS.REC,
      c: bindFlags,
      s: [h.hostPath, target, undefined, undefined],
      what: `bind cgroup ${h.hostPath} on ${target}`,
    });
  }
  if (o.flags & MS.RDONLY) {
    ops.push({
      code: Op.MOUNT_IN_ROOT,
      a: MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC,
      s: [undefined, dest, undefined, 'mode=755'],
      what: `remount ${dest} read-only`,
    });
  }
  return ops;
}

const DEFAULT_DEVICES: Device[] = [
  { type: 'c', path: '/dev/null', major: 1, minor: 3, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/zero', major: 1, minor: 5, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/full', major: 1, minor: 7, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/random', major: 1, minor: 8, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/urandom', major: 1, minor: 9, fileMode: 0o666, uid: 0, gid: 0 },
  { type: 'c', path: '/dev/tty', major: 5, minor: 0, fileMode: 0o666, uid: 0, gid: 0 },
];

/** Whether the runtime owns /dev (runc: unless /dev is a bind mount from the host). */
export function ownsDev(spec: Spec): boolean {
  return !(spec.mounts ?? []).some((m) => m.destination === '/dev' && isBind(m, parseMountOptions(m.options)));
}

/** Device nodes (mknod, or binds from the host inside a user namespace) and runc's /dev symlinks. */
export function devOps(spec: Spec, ctx: MountContext): PlanOp[] {
  const ops: PlanOp[] = [];
  if (!ownsDev(spec)) return ops;
  const configured = spec.linux?.devices ?? [];
  const byPath = new Map<string, Device>();
  for (const d of [...DEFAULT_DEVICES, ...configured]) byPath.set(d.path, d);
  for (const d of byPath.values()) {
    if (ctx.userns) {
      // mknod is refused inside a user namespace: bind the host's node instead.
      ops.push({
        code: Op.MOUNT_IN_ROOT,
        flags: MountFlag.CREATE_FILE | MountFlag.BIND,
        a: MS.BIND,
        s: [d.path, d.path],
        what: `bind device ${d.path}`,
      });
      continue;
    }
    const typeBits = d.type === 'b' ? S_IFBLK : d.type === 'p' ? S_IFIFO : S_IFCHR;
    const mode = typeBits | (d.fileMode ?? 0o666);
    const owner = (BigInt(d.uid ?? 0) << 32n) | BigInt(d.gid ?? 0);
    ops.push({
      code: Op.MKNOD_IN_ROOT,
      a: mode,
      b: d.type === 'p' ? 0n : makedev(d.major ?? 0, d.minor ?? 0),
      c: owner,
      s: [undefined, d.path],
      what: `create device ${d.path}`,
    });
  }
  const links: [string, string][] = [
    ['/proc/self/fd', '/dev/fd'],
    ['/proc/self/fd/0', '/dev/stdin'],
    ['/proc/self/fd/1', '/dev/stdout'],
    ['/proc/self/fd/2', '/dev/stderr'],
    ['pts/ptmx', '/dev/ptmx'],
  ];
  if (fs.existsSync('/proc/kcore')) links.push(['/proc/kcore', '/dev/core']);
  for (const [target, link] of links) {
    ops.push({ code: Op.SYMLINK_IN_ROOT, s: [target, link], what: `symlink ${link} -> ${target}` });
  }
  return ops;
}

export function hardeningOps(spec: Spec): PlanOp[] {
  const ops: PlanOp[] = [];
  for (const p of spec.linux?.readonlyPaths ?? []) {
    ops.push({ code: Op.READONLY_IN_ROOT, s: [undefined, p], what: `make ${p} read-only` });
  }
  for (const p of spec.linux?.maskedPaths ?? []) {
    ops.push({ code: Op.MASK_IN_ROOT, s: [undefined, p], what: `mask ${p}` });
  }
  return ops;
}
