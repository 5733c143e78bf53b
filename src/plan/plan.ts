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

/** Bytes of `s` in UTF-8, as Buffer.from(s, 'utf8') encodes it (a lone surrogate as U+FFFD). */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Writes `s` as UTF-8 at `off` (utf8Length(s) bytes); returns the offset after it. */
export function writeUtf8(out: Uint8Array, off: number, s: string): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) {
      out[off++] = c;
    } else if (c < 0x800) {
      out[off++] = 0xc0 | (c >> 6);
      out[off++] = 0x80 | (c & 0x3f);
    } else {
      if (c >= 0xd800 && c <= 0xdfff) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c <= 0xdbff && (d & 0xfc00) === 0xdc00) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          out[off++] = 0xf0 | (cp >> 18);
          out[off++] = 0x80 | ((cp >> 12) & 0x3f);
          out[off++] = 0x80 | ((cp >> 6) & 0x3f);
          out[off++] = 0x80 | (cp & 0x3f);
          i++;
          continue;
        }
        c = 0xfffd;
      }
      out[off++] = 0xe0 | (c >> 12);
      out[off++] = 0x80 | ((c >> 6) & 0x3f);
      out[off++] = 0x80 | (c & 0x3f);
    }
  }
  return off;
}

/**
 * Serializes a plan into native/plan.h's layout: header, ops, the string
 * pool (strings deduplicated and NUL-terminated, blobs raw), the lists.
 * Laid out first, then written into one zeroed buffer through a DataView
 * and our own UTF-8 writer: Node's Buffer helpers (from, alloc, the
 * write*LE family, concat) are JavaScript that a cold process compiles on
 * first use, half of a cold create's encode (TSRUN_TRACE=1: a second encode
 * in the same process took 0.4 ms of the first one's 0.9).
 */
export function encodePlan(plan: Plan): Buffer {
  const strings = new Map<string, number>();
  const pool: (string | Uint8Array)[] = [];
  let poolLen = 0;
  const addString = (s: string): number => {
    let off = strings.get(s);
    if (off === undefined) {
      off = poolLen;
      strings.set(s, off);
      pool.push(s);
      poolLen += utf8Length(s) + 1;
    }
    return off;
  };
  const addBytes = (b: Uint8Array): number => {
    const off = poolLen;
    pool.push(b);
    poolLen += b.length;
    return off;
  };
  /** each list as the pool offsets of its strings */
  const lists: number[][] = [];
  let listsLen = 0;
  const addList = (items: string[]): number => {
    const off = listsLen;
    lists.push(items.map(addString));
    listsLen += 4 + 4 * items.length;
    return off;
  };
  // Per op: the pool offsets of s[0..3], then the list offsets of l[0..1].
  const refs: number[] = [];
  for (const op of plan.ops) {
    for (let k = 0; k < 4; k++) {
      const v = op.s?.[k];
      refs.push(v === undefined ? NONE : typeof v === 'string' ? addString(v) : addBytes(v));
    }
    for (let k = 0; k < 2; k++) {
      const v = op.l?.[k];
      refs.push(v === undefined ? NONE : addList(v));
    }
  }

  const opsOffset = HEADER_SIZE;
  const poolOffset = opsOffset + OP_SIZE * plan.ops.length;
  const listsOffset = poolOffset + poolLen;
  const out = Buffer.alloc(listsOffset + listsLen);
  const dv = new DataView(out.buffer, out.byteOffset, out.length);
  dv.setUint32(0, MAGIC, true);
  dv.setUint32(4, PLAN_VERSION, true);
  dv.setUint32(8, plan.ops.length, true);
  dv.setUint32(12, opsOffset, true);
  dv.setUint32(16, poolOffset, true);
  dv.setUint32(20, poolLen, true);
  dv.setUint32(24, listsOffset, true);
  dv.setUint32(28, listsLen, true);
  dv.setBigUint64(32, BigInt(plan.cloneFlags), true);
  dv.setUint32(40, plan.intermediateOps, true);
  plan.ops.forEach((op, i) => {
    const base = opsOffset + i * OP_SIZE;
    dv.setUint32(base, op.code, true);
    dv.setUint32(base + 4, op.flags ?? 0, true);
    // Values are 64-bit patterns: RLIM_INFINITY (2^64-1) is stored as -1.
    dv.setBigInt64(base + 8, int64(op.a), true);
    dv.setBigInt64(base + 16, int64(op.b), true);
    dv.setBigInt64(base + 24, int64(op.c), true);
    for (let k = 0; k < 6; k++) dv.setUint32(base + 32 + 4 * k, refs[i * 6 + k]!, true);
  });
  let at = poolOffset;
  for (const item of pool) {
    if (typeof item === 'string') {
      at = writeUtf8(out, at, item);
      out[at++] = 0;
    } else {
      out.set(item, at);
      at += item.length;
    }
  }
  at = listsOffset;
  for (const list of lists) {
    dv.setUint32(at, list.length, true);
    at += 4;
    for (const off of list) {
      dv.setUint32(at, off, true);
      at += 4;
    }
  }
  return out;
}
