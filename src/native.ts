/**
 * The typed boundary to the C++ addon (native/addon.cc): the only file that
 * loads it. Everything here is a thin syscall-level primitive; policy stays
 * in TypeScript.
 */
import path from 'node:path';
import { trace } from './bench/trace.js';

/** A message from the container's init on the sync socket (native/plan.h ChildMsg). */
export interface ChildMsg {
  kind: MsgKind;
  /** index of the plan op that sent it */
  step: number;
  errno: number;
  arg: number;
}

export const enum MsgKind {
  Sync = 1,
  Ready = 2,
  Error = 3,
  Pid = 4,
  /** `arg` is the seccomp notify listener fd, now the runtime's to pass on (and close) */
  SeccompFd = 5,
}

export interface ExitStatus {
  code: number | null;
  signal: number | null;
}

export type SpawnResult = { pid: number; sync: number } | { failure: ChildMsg };

/** A seccomp filter as numbers for libseccomp (built by src/plan/seccomp.ts; native/seccomp.h). */
export interface NativeSeccompProfile {
  /** SECCOMP_RET_* value (with its data bits) */
  defaultAction: number;
  /** libseccomp arch tokens, from resolveArch() */
  archs: number[];
  /** binary-tree syscall lookup (runc: more than 32 syscalls) */
  optimize: boolean;
  rules: { syscall: number; action: number; args: { index: number; op: number; value: bigint; valueTwo: bigint }[] }[];
}

/** libseccomp and the kernel's seccomp, from the runtime process (native/seccomp.cc). */
export interface SeccompAddon {
  version: string;
  resolveArch(name: string): number;
  resolveSyscall(name: string): number;
  actionAvailable(action: number): boolean;
  flagSupported(flag: number): boolean;
  /** the classic BPF program; a refused rule throws an Error with `rule` (its index) and `errno` */
  compile(profile: NativeSeccompProfile): Buffer;
}

/** One benchmark case for NsBenchAddon.cycles (src/bench/ns.ts builds them). */
export interface NsBenchCase {
  /** CLONE_NEW* flags passed to clone() */
  cloneFlags: number;
  /** flags the child unshare()s first (CLONE_NEWTIME, as the executor does) */
  unshareFlags?: number;
  /** what the child (or, for cgroup and idmap, the parent) does and times: NsBenchAddon.steps */
  step?: number;
  /** clone fork-like, as the executor does, instead of CLONE_VM on a stack of its own */
  fork?: boolean;
  path?: string;
  source?: string;
  fstype?: string;
  mountFlags?: number;
  data?: string;
  bpf?: Buffer;
  seccompFlags?: number;
  /** leaves created (with files written) and joined per cycle, removed after it */
  cgroups?: { leaf: string; files?: [string, string][] }[];
  uidMap?: string;
  gidMap?: string;
}

/** The namespace-setup benchmark's loops (native/nsbench.cc). */
export interface NsBenchAddon {
  /** Runs `count` cycles; writes each cycle's and each step's microseconds at [offset, offset + count). */
  cycles(c: NsBenchCase, cycleUs: Float64Array, stepUs: Float64Array | null, offset: number, count: number): void;
  /** sched_setaffinity of the calling thread (clones inherit it) */
  pinCpu(cpu: number): void;
  steps: { none: number; pivot: number; mount: number; seccomp: number; cgroup: number; idmap: number };
}

export interface Addon {
  /** Clones the init, which starts running the plan; a failure in an intermediate op comes back as `failure`. */
  /** cgroupDir: an fd of the init's cgroup v2 directory, born there with clone3(CLONE_INTO_CGROUP) where possible */
  spawn(plan: Buffer, consoleSocket: number, cgroupDir?: number): SpawnResult;
  /** Acks a Sync (when ack) and waits for the next message; null when the init exec'd or died. */
  next(sync: number, ack: boolean, timeoutMs: number): ChildMsg | null;
  close(fd: number): void;
  waitPid(pid: number): Promise<ExitStatus>;
  tryWait(pid: number): ExitStatus | null;
  connectUnix(path: string): number;
  mkfifo(path: string, mode: number): void;
  /** renameat2(a, b, RENAME_EXCHANGE); false when b does not exist or the filesystem cannot exchange */
  exchange(a: string, b: string): boolean;
  strerror(errno: number): string;
  /** _exit(2): no 'exit' event, no Node teardown (src/bench/exit.ts) */
  exitNow(code: number): never;
  socketPair(): [number, number];
  recvFd(sock: number): number;
  /** another descriptor (close-on-exec) for the same open file */
  dup(fd: number): number;
  /** one message of `data` carrying `fd` (SCM_RIGHTS) */
  sendFd(sock: number, data: Buffer, fd: number): void;
  setWinsize(fd: number, rows: number, cols: number): void;
  seccomp: SeccompAddon;
  /** `tsrun bench`'s timing loops (native/nsbench.cc); absent from an addon built before them. */
  bench?: NsBenchAddon;
  /** Loads a BPF_CGROUP_DEVICE program (struct bpf_insn[]) and attaches it to a cgroup v2 directory. */
  attachDeviceFilter(cgroupDir: string, insns: Buffer, license: string): void;
  planVersion: number;
  /** mknod(2): `mode` carries the file type (S_IFCHR, S_IFBLK, S_IFIFO); `dev` from makedev() (image unpacking). */
  mknod(path: string, mode: number, dev: number): void;
  /** lsetxattr(2): never follows a symlink (image unpacking). */
  lsetxattr(path: string, name: string, value: Buffer): void;
  /** llistxattr(2): the names of a file's extended attributes. */
  llistxattr(path: string): string[];
  /** lgetxattr(2): one extended attribute's value. */
  lgetxattr(path: string, name: string): Buffer;
}

/** glibc's makedev() in float arithmetic (JS bit operators are 32-bit); exact for every dev_t below 2^53. */
export function makedev(major: number, minor: number): number {
  // dev_t: minor bits 0-7, major bits 8-19, minor bits 20-43, major bits 44-63.
  const lo = (minor & 0xff) | ((major & 0xfff) << 8);
  return (lo >>> 0) + Math.floor(minor / 0x100) * 0x100000 + Math.floor(major / 0x1000) * 0x100000000000;
}

/** glibc's major() / minor() of a dev_t (an fs.Stats rdev). */
export function devMajor(dev: number): number {
  return (Math.floor(dev / 0x100) & 0xfff) + Math.floor(dev / 0x100000000000) * 0x1000;
}
export function devMinor(dev: number): number {
  return (dev & 0xff) + (Math.floor(dev / 0x100000) % 0x1000000) * 0x100;
}

let addon: Addon | undefined;

/** The addon if something already loaded it: for shortcuts not worth a dlopen of their own. */
export function loadedNative(): Addon | undefined {
  return addon;
}

/** Loads the addon on first use so commands that never spawn (state, list) skip the dlopen. */
export function native(): Addon {
  if (!addon) {
    // Both the sources (src/) and the bundle (dist/) sit one level below the repo root.
    const file = path.join(__dirname, '..', 'build', 'Release', 'tsrun.node');
    const mod = { exports: {} as Addon };
    process.dlopen(mod, file);
    addon = mod.exports;
    trace('addon loaded (dlopen)');
  }
  return addon;
}
