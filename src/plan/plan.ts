/**
 * The plan: what the container's init must do, in order, as data. Built by
 * compile.ts, encoded here into the byte layout of native/plan.h, executed by
 * native/executor.cc. Each op carries a human description so a failure
 * reported by the child as (step, errno) becomes one readable line.
 */

/** Op codes: keep in sync with native/plan.h (PlanOpCode). */
export const Op = {
  PRCTL: 1,
  CLOSE_FDS: 2,
  SYNC: 3,
  SETNS: 4,
  UNSHARE: 5,
  SETRESID: 6,
  WRITE_FILE: 7,
  SETHOSTNAME: 8,
  SETDOMAINNAME: 9,
  MOUNT: 10,
  OPEN_SLOT: 11,
  MOUNT_IN_ROOT: 12,
  MKNOD_IN_ROOT: 13,
  SYMLINK_IN_ROOT: 14,
  MASK_IN_ROOT: 15,
  READONLY_IN_ROOT: 16,
  CONSOLE: 17,
  PIVOT_ROOT: 18,
  SETRLIMIT: 19,
  SETSID: 20,
  CAP_BOUNDING: 21,
  SETGROUPS: 22,
  SETUSER: 23,
  CAPSET: 24,
  CAP_AMBIENT: 25,
  UMASK: 26,
  CHDIR: 27,
  SECCOMP: 28,
  RESOLVE_EXEC: 29,
  WAIT_START: 30,
  EXEC: 31,
  REPORT_READY: 32,
  DUP2: 40,
  LOOPBACK_UP: 41,
  MKDIR_IN_ROOT: 42,
} as const;
export type OpCode = (typeof Op)[keyof typeof Op];

/** native/plan.h PlanSlot */
/** The exec fifo in a container's state directory: create's init blocks opening it until `start`. */
export const EXEC_FIFO = 'exec.fifo';

export const Slot = { SYNC: 0, CONSOLE_SOCKET: 1, EXEC_FIFO: 2, ROOT: 3, PTY: 4, CGROUP_NS: 6 } as const;

/** native/plan.h MountFlags */
export const MountFlag = {
  CREATE_DIR: 1,
  CREATE_FILE: 2,
  BIND: 4,
  SOURCE_IN_ROOT: 8,
  IGNORE_ENOENT: 16,
} as const;

export const PIVOT_NO_PIVOT = 1;
export const CONSOLE_NO_DEVCONSOLE = 1;
export const SETNS_FROM_SLOT = 1;
export const CHDIR_AS_ROOT = 1;

/** Tags of the sync points the runtime process acts on. */
export const SyncTag = {
  /** init exists: place it in cgroups, write its id maps */
  CLONED: 1,
  /** namespaces and mounts are ready, before pivot_root: createRuntime/createContainer hooks */
  PRE_PIVOT: 2,
  /** `run`: everything is ready; the ack means "start" */
  START: 3,
} as const;

export interface PlanOp {
  code: OpCode;
  flags?: number;
  a?: number | bigint;
  b?: number | bigint;
  c?: number | bigint;
  /** strings (or, for SECCOMP's s[0], a binary blob) */
  s?: (string | Buffer | undefined)[];
  l?: (string[] | undefined)[];
  /** what the step does, for error messages: "mount proc on /proc" */
  what: string;
  /** the whole message when the step fails with ENOENT (runc's wording for a missing binary) */
  enoent?: string;
}

export interface Plan {
  cloneFlags: number;
  /** ops [0, intermediateOps) run in an intermediate process (setns into existing namespaces) */
  intermediateOps: number;
  ops: PlanOp[];
  /** where the runtime sends the seccomp notify fd the init reports (not encoded: the runtime's business) */
  seccompListener?: { path: string; metadata: string };
}

const HEADER_SIZE = 48;
const OP_SIZE = 56;
const NONE = 0xffffffff;
const MAGIC = 0x4c505354;
export const PLAN_VERSION = 2;

const U64_MAX = (1n << 64n) - 1n;

/** A number or bigint as the int64 the executor reads (values ≥ 2^64 saturate, as the kernel's RLIM_INFINITY). */
function int64(v: number | bigint | undefined): bigint {
  let b = BigInt(v ?? 0);
  if (b > U64_MAX) b = U64_MAX;
  return BigInt.asIntN(64, b);
}

/** Serializes a plan into native/plan.h's layout. */
export function encodePlan(plan: Plan): Buffer {
  const pool: Buffer[] = [];
  let poolLen = 0;
  const strings = new Map<string, number>();
  const addBytes = (b: Buffer): number => {
    const off = poolLen;
    pool.push(b);
    poolLen += b.length;
    return off;
  };
  const addString = (s: string): number => {
    let off = strings.get(s);
    if (off === undefined) {
      off = addBytes(Buffer.from(s + '\0', 'utf8'));
      strings.set(s, off);
    }
    return off;
  };
  const lists: Buffer[] = [];
  let listsLen = 0;
  const addList = (items: string[]): number => {
    const b = Buffer.alloc(4 + 4 * items.length);
    b.writeUInt32LE(items.length, 0);
    items.forEach((s, i) => b.writeUInt32LE(addString(s), 4 + 4 * i));
    const off = listsLen;
    lists.push(b);
    listsLen += b.length;
    return off;
  };

  const ops = Buffer.alloc(OP_SIZE * plan.ops.length);
  plan.ops.forEach((op, i) => {
    const base = i * OP_SIZE;
    ops.writeUInt32LE(op.code, base);
    ops.writeUInt32LE(op.flags ?? 0, base + 4);
    // Values are 64-bit patterns: RLIM_INFINITY (2^64-1) is stored as -1.
    ops.writeBigInt64LE(int64(op.a), base + 8);
    ops.writeBigInt64LE(int64(op.b), base + 16);
    ops.writeBigInt64LE(int64(op.c), base + 24);
    for (let k = 0; k < 4; k++) {
      const v = op.s?.[k];
      const off = v === undefined ? NONE : typeof v === 'string' ? addString(v) : addBytes(v);
      ops.writeUInt32LE(off, base + 32 + 4 * k);
    }
    for (let k = 0; k < 2; k++) {
      const v = op.l?.[k];
      ops.writeUInt32LE(v === undefined ? NONE : addList(v), base + 48 + 4 * k);
    }
  });

  const header = Buffer.alloc(HEADER_SIZE);
  const opsOffset = HEADER_SIZE;
  const poolOffset = opsOffset + ops.length;
  const listsOffset = poolOffset + poolLen;
  header.writeUInt32LE(MAGIC, 0);
  header.writeUInt32LE(PLAN_VERSION, 4);
  header.writeUInt32LE(plan.ops.length, 8);
  header.writeUInt32LE(opsOffset, 12);
  header.writeUInt32LE(poolOffset, 16);
  header.writeUInt32LE(poolLen, 20);
  header.writeUInt32LE(listsOffset, 24);
  header.writeUInt32LE(listsLen, 28);
  header.writeBigUInt64LE(BigInt(plan.cloneFlags), 32);
  header.writeUInt32LE(plan.intermediateOps, 40);
  return Buffer.concat([header, ops, ...pool, ...lists]);
}
