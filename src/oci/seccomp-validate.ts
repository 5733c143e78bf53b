/**
 * linux.seccomp: the profile's types, the tables of the names the runtime
 * spec defines for it, and its validation (called from validate.ts for
 * `linux.seccomp`, with the same JSON-path errors as the rest of config.json).
 *
 * What is checked here is the shape and the names; what depends on the host
 * (an architecture this libseccomp lacks, a flag or action this kernel lacks)
 * is checked when the filter is built (src/plan/seccomp.ts).
 *
 * As runc: a profile with neither defaultAction nor syscalls means "no
 * filter"; unknown syscall *names* are not an error here (they are skipped
 * when the filter is built, so one profile serves several kernels).
 */

/** OCI action names → the kernel's SECCOMP_RET_* values (libseccomp's SCMP_ACT_*). */
export const SECCOMP_ACTIONS: Readonly<Record<string, number>> = Object.freeze({
  SCMP_ACT_KILL: 0x00000000, // = KILL_THREAD, as in libseccomp and runc
  SCMP_ACT_KILL_PROCESS: 0x80000000,
  SCMP_ACT_KILL_THREAD: 0x00000000,
  SCMP_ACT_TRAP: 0x00030000,
  SCMP_ACT_ERRNO: 0x00050000,
  SCMP_ACT_TRACE: 0x7ff00000,
  SCMP_ACT_ALLOW: 0x7fff0000,
  SCMP_ACT_LOG: 0x7ffc0000,
  SCMP_ACT_NOTIFY: 0x7fc00000,
});

/** OCI operator names → libseccomp's enum scmp_compare. */
export const SECCOMP_OPERATORS: Readonly<Record<string, number>> = Object.freeze({
  SCMP_CMP_NE: 1,
  SCMP_CMP_LT: 2,
  SCMP_CMP_LE: 3,
  SCMP_CMP_EQ: 4,
  SCMP_CMP_GE: 5,
  SCMP_CMP_GT: 6,
  SCMP_CMP_MASKED_EQ: 7,
});

/**
 * The architectures the runtime spec names. libseccomp's name for each is
 * the lower-cased suffix ("SCMP_ARCH_X86_64" → "x86_64"); whether the linked
 * libseccomp knows it is asked when the filter is built.
 */
export const SECCOMP_ARCHS: readonly string[] = Object.freeze([
  'SCMP_ARCH_X86',
  'SCMP_ARCH_X86_64',
  'SCMP_ARCH_X32',
  'SCMP_ARCH_ARM',
  'SCMP_ARCH_AARCH64',
  'SCMP_ARCH_MIPS',
  'SCMP_ARCH_MIPS64',
  'SCMP_ARCH_MIPS64N32',
  'SCMP_ARCH_MIPSEL',
  'SCMP_ARCH_MIPSEL64',
  'SCMP_ARCH_MIPSEL64N32',
  'SCMP_ARCH_PPC',
  'SCMP_ARCH_PPC64',
  'SCMP_ARCH_PPC64LE',
  'SCMP_ARCH_S390',
  'SCMP_ARCH_S390X',
  'SCMP_ARCH_PARISC',
  'SCMP_ARCH_PARISC64',
  'SCMP_ARCH_RISCV64',
  'SCMP_ARCH_LOONGARCH64',
  'SCMP_ARCH_M68K',
  'SCMP_ARCH_SH',
  'SCMP_ARCH_SHEB',
]);

/** libseccomp's name of an OCI architecture. */
export function libseccompArchName(oci: string): string {
  return oci.replace(/^SCMP_ARCH_/, '').toLowerCase();
}

/** OCI filter flag names → SECCOMP_FILTER_FLAG_* (linux/seccomp.h). */
export const SECCOMP_FLAGS: Readonly<Record<string, number>> = Object.freeze({
  SECCOMP_FILTER_FLAG_TSYNC: 1 << 0,
  SECCOMP_FILTER_FLAG_LOG: 1 << 1,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW: 1 << 2,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: 1 << 5,
});

/** The default errno of SCMP_ACT_ERRNO (and SCMP_ACT_TRACE's value) without errnoRet: EPERM, as runc. */
export const DEFAULT_ERRNO_RET = 1;

/** A syscall has at most 6 arguments. */
export const MAX_SYSCALL_ARGS = 6;

export interface SeccompArg {
  index: number;
  value: number;
  valueTwo?: number;
  op: string;
}

export interface SeccompSyscall {
  names: string[];
  action: string;
  errnoRet?: number;
  args?: SeccompArg[];
}

/** config.json linux.seccomp (runtime-spec config-linux.md "Seccomp"). */
export interface Seccomp {
  defaultAction?: string;
  defaultErrnoRet?: number;
  architectures?: string[];
  flags?: string[];
  listenerPath?: string;
  listenerMetadata?: string;
  syscalls?: SeccompSyscall[];
}

/** Whether a (validated) profile asks for a filter at all: runc's rule. */
export function seccompEnabled(s: Seccomp | undefined): s is Seccomp {
  return !!s && (s.defaultAction !== undefined || (s.syscalls ?? []).length > 0);
}

type Fail = (path: string, problem: string) => never;
type Obj = Record<string, unknown>;

const UINT32_MAX = 2 ** 32 - 1;
// JSON numbers are doubles: 2^64-1 written in full parses as 2^64.
const UINT64_MAX = 2 ** 64;

/**
 * Validates `linux.seccomp` (at `path`), reporting the first problem with
 * `fail(path, problem)` (validate.ts's, which names the file).
 */
export function validateSeccomp(v: unknown, path: string, fail: Fail): void {
  const kind = (x: unknown): string => (x === null ? 'null' : Array.isArray(x) ? 'array' : typeof x);
  const quote = (x: unknown): string => {
    const s = x as string;
    return JSON.stringify(s.length > 60 ? s.slice(0, 57) + '...' : s);
  };
  const isObj = (x: unknown): x is Obj => typeof x === 'object' && x !== null && !Array.isArray(x);
  const has = (o: Obj, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key) && o[key] !== undefined;
  const obj = (x: unknown, p: string): Obj => {
    if (!isObj(x)) fail(p, `must be an object, got ${kind(x)}`);
    return x;
  };
  const str = (x: unknown, p: string): string => {
    if (typeof x !== 'string') fail(p, `must be a string, got ${kind(x)}`);
    return x;
  };
  const arr = (x: unknown, p: string): unknown[] => {
    if (!Array.isArray(x)) fail(p, `must be an array, got ${kind(x)}`);
    return x;
  };
  const int = (x: unknown, p: string, min: number, max: number): number => {
    if (typeof x !== 'number') fail(p, `must be an integer, got ${kind(x)}`);
    if (!Number.isFinite(x) || !Number.isInteger(x)) fail(p, `must be an integer, got ${x}`);
    if (x < min) fail(p, min === 0 ? `must be a non-negative integer, got ${x}` : `must be at least ${min}, got ${x}`);
    if (x > max) fail(p, max >= Number.MAX_SAFE_INTEGER ? `must fit in a 64-bit integer, got ${x}` : `must be between ${min} and ${max}, got ${x}`);
    return x;
  };
  const action = (x: unknown, p: string, isDefault: boolean): void => {
    const name = str(x, p);
    if (!Object.prototype.hasOwnProperty.call(SECCOMP_ACTIONS, name)) fail(p, `unknown action ${quote(name)}`);
    // runc: the notify agent could never get the fd if write(2) itself notified.
    if (isDefault && name === 'SCMP_ACT_NOTIFY') fail(p, 'SCMP_ACT_NOTIFY cannot be used as default action');
  };

  const s = obj(v, path);
  const at = (key: string): string => `${path}.${key}`;
  // A filter needs a default action; only "no syscalls either" means none (runc).
  if (!has(s, 'defaultAction') && Array.isArray(s.syscalls) && s.syscalls.length > 0) fail(at('defaultAction'), 'is required');
  if (has(s, 'defaultAction')) action(s.defaultAction, at('defaultAction'), true);
  if (has(s, 'defaultErrnoRet')) int(s.defaultErrnoRet, at('defaultErrnoRet'), 0, UINT32_MAX);
  if (has(s, 'architectures')) {
    arr(s.architectures, at('architectures')).forEach((a, i) => {
      const p = `${at('architectures')}[${i}]`;
      if (!SECCOMP_ARCHS.includes(str(a, p))) fail(p, `unknown architecture ${quote(a)}`);
    });
  }
  if (has(s, 'flags')) {
    arr(s.flags, at('flags')).forEach((f, i) => {
      const p = `${at('flags')}[${i}]`;
      if (!Object.prototype.hasOwnProperty.call(SECCOMP_FLAGS, str(f, p))) fail(p, `unknown flag ${quote(f)}`);
    });
  }
  if (has(s, 'listenerPath')) str(s.listenerPath, at('listenerPath'));
  if (has(s, 'listenerMetadata')) str(s.listenerMetadata, at('listenerMetadata'));
  const syscalls = has(s, 'syscalls') ? arr(s.syscalls, at('syscalls')) : [];
  // The notify fd has nowhere to go without a listener (runc: "seccomp listenerPath is not set").
  const notifies = syscalls.some((c) => isObj(c) && c.action === 'SCMP_ACT_NOTIFY');
  if (notifies && !has(s, 'listenerPath')) fail(at('listenerPath'), 'is required when a syscall uses SCMP_ACT_NOTIFY');
  if (has(s, 'listenerPath') && !s.listenerPath) fail(at('listenerPath'), 'must not be empty');
  syscalls.forEach((c, i) => {
    const p = `${at('syscalls')}[${i}]`;
    const call = obj(c, p);
    if (!has(call, 'names')) fail(`${p}.names`, 'is required');
    arr(call.names, `${p}.names`).forEach((n, j) => {
      const np = `${p}.names[${j}]`;
      str(n, np);
      // runc: "empty string is not a valid syscall"
      if (n === '') fail(np, 'must not be empty');
      if ((n as string).includes('\0')) fail(np, `must not contain a NUL byte, got ${quote(n)}`);
    });
    if (!has(call, 'action')) fail(`${p}.action`, 'is required');
    action(call.action, `${p}.action`, false);
    if (has(call, 'errnoRet')) int(call.errnoRet, `${p}.errnoRet`, 0, UINT32_MAX);
    if (has(call, 'args')) {
      arr(call.args, `${p}.args`).forEach((a, k) => {
        const ap = `${p}.args[${k}]`;
        const arg = obj(a, ap);
        for (const key of ['index', 'value', 'op']) if (!has(arg, key)) fail(`${ap}.${key}`, 'is required');
        int(arg.index, `${ap}.index`, 0, MAX_SYSCALL_ARGS - 1);
        int(arg.value, `${ap}.value`, 0, UINT64_MAX);
        if (has(arg, 'valueTwo')) int(arg.valueTwo, `${ap}.valueTwo`, 0, UINT64_MAX);
        const op = str(arg.op, `${ap}.op`);
        if (!Object.prototype.hasOwnProperty.call(SECCOMP_OPERATORS, op)) fail(`${ap}.op`, `unknown operator ${quote(op)}`);
      });
    }
  });
}
