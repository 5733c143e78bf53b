/**
 * linux.seccomp → a classic BPF program, built before clone in the runtime
 * process with libseccomp (native/seccomp.cc), carried in the plan and loaded
 * by the executor's OP_SECCOMP with seccomp(SECCOMP_SET_MODE_FILTER, flags).
 * Where that op sits in the init sequence is compile.ts's business (see the
 * comment there); this file turns the profile into the op, the way runc's
 * libcontainer/seccomp/seccomp_linux.go builds its filter:
 *
 *  - SCMP_ACT_ERRNO and SCMP_ACT_TRACE without errnoRet use EPERM;
 *    SCMP_ACT_KILL is SCMP_ACT_KILL_THREAD;
 *  - a syscall name libseccomp does not know is skipped with a debug log
 *    ("unknown seccomp syscall %q ignored"), so a profile written for a newer
 *    kernel still works;
 *  - a rule whose action is the default action is skipped (redundant);
 *  - the args of a rule are ANDed in one libseccomp rule, unless two of them
 *    test the same argument: then each becomes its own rule (runc's "old
 *    behaviour", since libseccomp cannot AND two tests of one argument);
 *  - more than 32 syscalls turn on libseccomp's binary-tree optimization.
 *
 * What depends on the host is checked here, with the config path of the
 * culprit: an architecture this libseccomp lacks, an action or flag this
 * kernel lacks, a filter longer than the kernel's 4096 instructions.
 */
import { ConfigError } from '../errors.js';
import { log } from '../log.js';
import { native, type NativeSeccompProfile, type SeccompAddon } from '../native.js';
import {
  DEFAULT_ERRNO_RET,
  SECCOMP_ACTIONS,
  SECCOMP_ARCHS,
  SECCOMP_FLAGS,
  SECCOMP_OPERATORS,
  libseccompArchName,
  seccompEnabled,
  type Seccomp,
  type SeccompArg,
} from '../oci/seccomp-validate.js';
import { Op, type PlanOp } from './plan.js';

export interface CompiledSeccomp {
  /** the BPF program: sock_filter entries of 8 bytes */
  bpf: Buffer;
  /** SECCOMP_FILTER_FLAG_* for seccomp(2) */
  flags: number;
  /** syscall names libseccomp does not know, skipped as runc does */
  ignored: string[];
  /**
   * With SCMP_ACT_NOTIFY rules: where the runtime sends the listener fd
   * (linux.seccomp.listenerPath, with listenerMetadata), as the runtime spec
   * says. The load then asks the kernel for a listener (NEW_LISTENER).
   */
  listener?: { path: string; metadata: string };
}

/** SECCOMP_FILTER_FLAG_NEW_LISTENER: seccomp(2) returns the notify fd. */
export const FLAG_NEW_LISTENER = 1 << 3;

const FILE = 'config.json';
/** BPF_MAXINSNS: the kernel refuses longer filters. */
export const BPF_MAX_INSNS = 4096;
const SOCK_FILTER_SIZE = 8;
/** runc turns on libseccomp's binary tree above this many syscalls. */
const OPTIMIZE_ABOVE = 32;
const NR_SCMP_ERROR = -1;
const U64_MAX = (1n << 64n) - 1n;

/** The SECCOMP_RET_* value of an action: ERRNO and TRACE carry errnoRet (EPERM by default) in their low 16 bits. */
export function actionValue(name: string, errnoRet?: number): number {
  const base = SECCOMP_ACTIONS[name]!;
  if (name === 'SCMP_ACT_ERRNO' || name === 'SCMP_ACT_TRACE') {
    return (base | ((errnoRet ?? DEFAULT_ERRNO_RET) & 0xffff)) >>> 0;
  }
  return base;
}

function datum(v: number | undefined): bigint {
  if (v === undefined) return 0n;
  const b = BigInt(v);
  // 2^64-1 written in full parses as the double 2^64.
  return b > U64_MAX ? U64_MAX : b;
}

/**
 * Builds the filter of a validated profile; undefined when the profile asks
 * for none (no defaultAction and no syscalls, as runc). Throws ConfigError.
 */
export function compileSeccomp(
  validated: Seccomp | Record<string, unknown> | undefined,
  lib?: SeccompAddon,
  path = 'linux.seccomp',
): CompiledSeccomp | undefined {
  // types.ts keeps linux.seccomp opaque; validateSeccomp() checked this shape.
  const profile = validated as Seccomp | undefined;
  if (!seccompEnabled(profile)) return undefined;
  lib ??= native().seccomp;
  const available = new Map<number, boolean>();
  const checkAction = (name: string, at: string) => {
    const base = SECCOMP_ACTIONS[name]!;
    let ok = available.get(base);
    if (ok === undefined) available.set(base, (ok = lib.actionAvailable(base)));
    if (!ok) throw new ConfigError(FILE, at, `${name} is not supported by this kernel`);
  };

  checkAction(profile.defaultAction!, `${path}.defaultAction`);
  const defaultAction = actionValue(profile.defaultAction!, profile.defaultErrnoRet);

  const archs: number[] = [];
  (profile.architectures ?? []).forEach((name, i) => {
    const token = lib.resolveArch(libseccompArchName(name));
    if (!token) {
      throw new ConfigError(FILE, `${path}.architectures[${i}]`, `${name} is not supported by libseccomp ${lib.version}`);
    }
    if (!archs.includes(token)) archs.push(token);
  });

  const notify = (profile.syscalls ?? []).some((c) => c.action === 'SCMP_ACT_NOTIFY');
  let flags = 0;
  (profile.flags ?? []).forEach((name, i) => {
    const flag = SECCOMP_FLAGS[name]!;
    if (name === 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV' && !notify) {
      // It changes how a notifying task waits for the agent; without an
      // SCMP_ACT_NOTIFY rule there is no listener, and the kernel refuses the
      // flag without one (EINVAL), so it is not passed.
      log.debug(`seccomp flag ${name} has no effect without a notify listener: not passed to the kernel`);
      return;
    }
    if (!lib.flagSupported(flag)) throw new ConfigError(FILE, `${path}.flags[${i}]`, `${name} is not supported by this kernel`);
    flags |= flag;
  });

  const rules: NativeSeccompProfile['rules'] = [];
  /** for each rule: where it came from, for errors */
  const origins: { at: string; name: string }[] = [];
  const ignored: string[] = [];
  let syscallCount = 0;
  (profile.syscalls ?? []).forEach((call, i) => {
    const at = `${path}.syscalls[${i}]`;
    checkAction(call.action, `${at}.action`);
    const action = actionValue(call.action, call.errnoRet);
    syscallCount += call.names.length;
    if (action === defaultAction) return; // redundant (runc skips it; libseccomp would refuse it)
    const conds = (call.args ?? []).map((a: SeccompArg) => ({
      index: a.index,
      op: SECCOMP_OPERATORS[a.op]!,
      value: datum(a.value),
      valueTwo: datum(a.valueTwo),
    }));
    const counts = new Map<number, number>();
    for (const c of conds) counts.set(c.index, (counts.get(c.index) ?? 0) + 1);
    const split = [...counts.values()].some((n) => n > 1);
    for (const name of call.names) {
      const nr = lib.resolveSyscall(name);
      if (nr === NR_SCMP_ERROR) {
        log.debug(`unknown seccomp syscall ${JSON.stringify(name)} ignored`);
        if (!ignored.includes(name)) ignored.push(name);
        continue;
      }
      for (const args of split ? conds.map((c) => [c]) : [conds]) {
        rules.push({ syscall: nr, action, args });
        origins.push({ at, name });
      }
    }
  });

  let bpf: Buffer;
  try {
    bpf = lib.compile({ defaultAction, archs, optimize: syscallCount > OPTIMIZE_ABOVE, rules });
  } catch (e) {
    const err = e as Error & { rule?: number; arch?: number };
    if (err.rule !== undefined && origins[err.rule]) {
      const o = origins[err.rule]!;
      throw new ConfigError(FILE, o.at, `cannot add the rule for syscall ${JSON.stringify(o.name)}: ${err.message}`);
    }
    if (err.arch !== undefined) {
      throw new ConfigError(FILE, `${path}.architectures[${err.arch}]`, `cannot add the architecture: ${err.message}`);
    }
    throw new ConfigError(FILE, path, `cannot build the seccomp filter: ${err.message}`);
  }
  const insns = bpf.length / SOCK_FILTER_SIZE;
  if (bpf.length === 0 || !Number.isInteger(insns)) {
    throw new ConfigError(FILE, path, `libseccomp exported a malformed filter (${bpf.length} bytes)`);
  }
  if (insns > BPF_MAX_INSNS) {
    throw new ConfigError(FILE, path, `the seccomp filter has ${insns} instructions, more than the kernel's limit of ${BPF_MAX_INSNS}`);
  }
  if (!notify) return { bpf, flags, ignored };
  if (!lib.flagSupported(FLAG_NEW_LISTENER)) throw new ConfigError(FILE, path, 'seccomp notify listeners are not supported by this kernel');
  return { bpf, flags: flags | FLAG_NEW_LISTENER, ignored, listener: { path: profile.listenerPath!, metadata: profile.listenerMetadata ?? '' } };
}

/** The executor op that loads the filter. */
export function seccompOp(s: CompiledSeccomp): PlanOp {
  return { code: Op.SECCOMP, a: s.bpf.length, b: s.flags, s: [s.bpf], what: 'load the seccomp filter' };
}

/** The runtime-spec features "seccomp" object: what this build (and this kernel) can do. */
export function seccompFeatures(lib: SeccompAddon = native().seccomp): {
  enabled: boolean;
  actions: string[];
  operators: string[];
  archs: string[];
  knownFlags: string[];
  supportedFlags: string[];
} {
  const actions = Object.keys(SECCOMP_ACTIONS).filter((a) => lib.actionAvailable(SECCOMP_ACTIONS[a]!));
  const knownFlags = Object.keys(SECCOMP_FLAGS);
  return {
    enabled: true,
    actions: actions.sort(),
    operators: Object.keys(SECCOMP_OPERATORS).sort(),
    archs: SECCOMP_ARCHS.filter((a) => lib.resolveArch(libseccompArchName(a)) !== 0).sort(),
    knownFlags,
    supportedFlags: knownFlags.filter((f) => lib.flagSupported(SECCOMP_FLAGS[f]!)),
  };
}
