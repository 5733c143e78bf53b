/**
 * linux.seccomp: validation (exact messages), the filter libseccomp builds
 * (src/plan/seccomp.ts + native/seccomp.cc), where compile() puts the load,
 * and the features object. Constants are the kernel's, written out here.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { ConfigError } from '../../src/errors.js';
import { native, type SeccompAddon } from '../../src/native.js';
import { defaultSpec } from '../../src/oci/default-spec.js';
import type { Seccomp } from '../../src/oci/seccomp-validate.js';
import type { Spec } from '../../src/oci/types.js';
import { validateConfig } from '../../src/oci/validate.js';
import { compile } from '../../src/plan/compile.js';
import { Op, encodePlan, type PlanOp } from '../../src/plan/plan.js';
import { BPF_MAX_INSNS, FLAG_NEW_LISTENER, actionValue, compileSeccomp, seccompFeatures } from '../../src/plan/seccomp.js';

// SECCOMP_RET_* (linux/seccomp.h)
const RET_KILL_PROCESS = 0x80000000;
const RET_KILL_THREAD = 0;
const RET_TRAP = 0x00030000;
const RET_ERRNO = 0x00050000;
const RET_TRACE = 0x7ff00000;
const RET_LOG = 0x7ffc0000;
const RET_ALLOW = 0x7fff0000;
const EPERM = 1;
const ENOSYS = 38;
// SECCOMP_FILTER_FLAG_*
const FLAG_TSYNC = 1;
const FLAG_LOG = 2;
const FLAG_SPEC_ALLOW = 4;
// classic BPF: BPF_RET | BPF_K
const BPF_RET_K = 0x06;

/** A config with runc's defaults and `seccomp` as linux.seccomp. */
function config(seccomp: unknown): Spec {
  const s = defaultSpec();
  (s.linux as Record<string, unknown>).seccomp = seccomp;
  return s;
}

function rejects(t: Test, seccomp: unknown, message: string, name?: string): void {
  t.throws(() => validateConfig(config(seccomp)), { name: 'ConfigError', message }, name ?? message);
}

/** The constant return values of a BPF program. */
function returns(bpf: Buffer): number[] {
  const out: number[] = [];
  for (let i = 0; i + 8 <= bpf.length; i += 8) {
    if (bpf.readUInt16LE(i) === BPF_RET_K) out.push(bpf.readUInt32LE(i + 4));
  }
  return out;
}

const mkdirErrno = (errnoRet?: number): Seccomp => ({
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', ...(errnoRet === undefined ? {} : { errnoRet }) }],
});

t.test('validation: exact messages with JSON paths', async (t) => {
  const ok = { names: ['read'], action: 'SCMP_ACT_ALLOW' };
  rejects(
    t,
    { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [ok, ok, ok, { names: ['mkdir'], action: 'SCMP_ACT_FOO' }] },
    'config.json: linux.seccomp.syscalls[3].action: unknown action "SCMP_ACT_FOO"',
  );
  rejects(t, { defaultAction: 'SCMP_ACT_NOPE' }, 'config.json: linux.seccomp.defaultAction: unknown action "SCMP_ACT_NOPE"');
  rejects(t, { defaultAction: 42 }, 'config.json: linux.seccomp.defaultAction: must be a string, got number');
  rejects(
    t,
    { defaultAction: 'SCMP_ACT_NOTIFY' },
    'config.json: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be used as default action',
  );
  rejects(
    t,
    { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] },
    'config.json: linux.seccomp.listenerPath: is required when a syscall uses SCMP_ACT_NOTIFY',
  );
  rejects(
    t,
    { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] },
    'config.json: linux.seccomp.listenerPath: must not be empty',
  );
  rejects(t, { syscalls: [ok] }, 'config.json: linux.seccomp.defaultAction: is required');
  rejects(t, [], 'config.json: linux.seccomp: must be an object, got array');
  rejects(
    t,
    { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_Z80'] },
    'config.json: linux.seccomp.architectures[1]: unknown architecture "SCMP_ARCH_Z80"',
  );
  rejects(t, { defaultAction: 'SCMP_ACT_ALLOW', architectures: 'SCMP_ARCH_X86_64' }, 'config.json: linux.seccomp.architectures: must be an array, got string');
  rejects(
    t,
    { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_NOPE'] },
    'config.json: linux.seccomp.flags[1]: unknown flag "SECCOMP_FILTER_FLAG_NOPE"',
  );
  rejects(t, { defaultAction: 'SCMP_ACT_ALLOW', defaultErrnoRet: -1 }, 'config.json: linux.seccomp.defaultErrnoRet: must be a non-negative integer, got -1');
  rejects(t, { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: 7 }, 'config.json: linux.seccomp.listenerPath: must be a string, got number');
  rejects(t, { defaultAction: 'SCMP_ACT_ALLOW', syscalls: {} }, 'config.json: linux.seccomp.syscalls: must be an array, got object');
  rejects(t, { defaultAction: 'SCMP_ACT_ALLOW', syscalls: ['mkdir'] }, 'config.json: linux.seccomp.syscalls[0]: must be an object, got string');

  // names: an array of non-empty strings
  const call = (c: object) => ({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [c] });
  rejects(t, call({ action: 'SCMP_ACT_ERRNO' }), 'config.json: linux.seccomp.syscalls[0].names: is required');
  rejects(t, call({ names: 'mkdir', action: 'SCMP_ACT_ERRNO' }), 'config.json: linux.seccomp.syscalls[0].names: must be an array, got string');
  rejects(t, call({ names: ['mkdir', 3], action: 'SCMP_ACT_ERRNO' }), 'config.json: linux.seccomp.syscalls[0].names[1]: must be a string, got number');
  rejects(t, call({ names: [''], action: 'SCMP_ACT_ERRNO' }), 'config.json: linux.seccomp.syscalls[0].names[0]: must not be empty');
  rejects(t, call({ names: ['mkdir'] }), 'config.json: linux.seccomp.syscalls[0].action: is required');
  rejects(t, call({ names: ['mkdir'], action: 'SCMP_ACT_ERRNO', errnoRet: 'EPERM' }), 'config.json: linux.seccomp.syscalls[0].errnoRet: must be an integer, got string');

  // args: index 0..5, value and op required, known operators
  const arg = (a: object) => call({ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [a] });
  rejects(t, arg({ index: 6, value: 0, op: 'SCMP_CMP_EQ' }), 'config.json: linux.seccomp.syscalls[0].args[0].index: must be between 0 and 5, got 6');
  rejects(t, arg({ index: -1, value: 0, op: 'SCMP_CMP_EQ' }), 'config.json: linux.seccomp.syscalls[0].args[0].index: must be a non-negative integer, got -1');
  rejects(t, arg({ index: 1.5, value: 0, op: 'SCMP_CMP_EQ' }), 'config.json: linux.seccomp.syscalls[0].args[0].index: must be an integer, got 1.5');
  rejects(t, arg({ value: 0, op: 'SCMP_CMP_EQ' }), 'config.json: linux.seccomp.syscalls[0].args[0].index: is required');
  rejects(t, arg({ index: 0, op: 'SCMP_CMP_EQ' }), 'config.json: linux.seccomp.syscalls[0].args[0].value: is required');
  rejects(t, arg({ index: 0, value: 0 }), 'config.json: linux.seccomp.syscalls[0].args[0].op: is required');
  rejects(t, arg({ index: 0, value: -5, op: 'SCMP_CMP_EQ' }), 'config.json: linux.seccomp.syscalls[0].args[0].value: must be a non-negative integer, got -5');
  rejects(t, arg({ index: 0, value: 0, valueTwo: 'x', op: 'SCMP_CMP_MASKED_EQ' }), 'config.json: linux.seccomp.syscalls[0].args[0].valueTwo: must be an integer, got string');
  rejects(t, arg({ index: 0, value: 0, op: 'SCMP_CMP_FOO' }), 'config.json: linux.seccomp.syscalls[0].args[0].op: unknown operator "SCMP_CMP_FOO"');
  rejects(t, arg({ index: 0, value: 0, op: 'eq' }), 'config.json: linux.seccomp.syscalls[0].args[0].op: unknown operator "eq"');
});

t.test('validation: what is accepted', async (t) => {
  const good: [string, unknown][] = [
    ['empty object (no filter, as runc)', {}],
    ['only a default action', { defaultAction: 'SCMP_ACT_ALLOW' }],
    ['SCMP_ACT_KILL is an alias', { defaultAction: 'SCMP_ACT_KILL' }],
    ['empty names (no rule)', { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: [], action: 'SCMP_ACT_ERRNO' }] }],
    ['unknown syscall names are left to the compiler', { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['no_such_call'], action: 'SCMP_ACT_ERRNO' }] }],
    ['unknown keys are kept', { defaultAction: 'SCMP_ACT_ALLOW', vendorExtension: { a: 1 } }],
    [
      'a full profile',
      {
        defaultAction: 'SCMP_ACT_ERRNO',
        defaultErrnoRet: 38,
        architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64'],
        flags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW', 'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
        listenerMetadata: 'x',
        syscalls: [
          { names: ['read', 'write'], action: 'SCMP_ACT_ALLOW' },
          { names: ['personality'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 4294967295, op: 'SCMP_CMP_EQ' }] },
          { names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 2114060288, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }] },
          { names: ['ptrace'], action: 'SCMP_ACT_TRACE', errnoRet: 7 },
          { names: ['uname'], action: 'SCMP_ACT_KILL_PROCESS' },
          { names: ['getpid'], action: 'SCMP_ACT_LOG' },
          { names: ['kill'], action: 'SCMP_ACT_TRAP' },
          { names: ['tkill'], action: 'SCMP_ACT_KILL_THREAD' },
          { names: ['mmap'], action: 'SCMP_ACT_ALLOW', args: [{ index: 5, value: 18446744073709551615, op: 'SCMP_CMP_LE' }] },
        ],
      },
    ],
  ];
  for (const [name, s] of good) t.doesNotThrow(() => validateConfig(config(s)), name);
});

t.test('actions are the kernel values, ERRNO/TRACE default to EPERM', async (t) => {
  t.equal(actionValue('SCMP_ACT_ALLOW'), RET_ALLOW);
  t.equal(actionValue('SCMP_ACT_KILL'), RET_KILL_THREAD);
  t.equal(actionValue('SCMP_ACT_KILL_THREAD'), RET_KILL_THREAD);
  t.equal(actionValue('SCMP_ACT_KILL_PROCESS'), RET_KILL_PROCESS);
  t.equal(actionValue('SCMP_ACT_TRAP'), RET_TRAP);
  t.equal(actionValue('SCMP_ACT_LOG'), RET_LOG);
  t.equal(actionValue('SCMP_ACT_ERRNO'), RET_ERRNO | EPERM);
  t.equal(actionValue('SCMP_ACT_ERRNO', ENOSYS), RET_ERRNO | ENOSYS);
  t.equal(actionValue('SCMP_ACT_TRACE'), RET_TRACE | EPERM);
  t.equal(actionValue('SCMP_ACT_TRACE', 9), RET_TRACE | 9);
});

t.test('compileSeccomp: libseccomp builds a BPF program', async (t) => {
  t.equal(compileSeccomp(undefined), undefined, 'no profile, no filter');
  t.equal(compileSeccomp({}), undefined, 'no defaultAction and no syscalls: no filter (runc)');

  const eperm = compileSeccomp(mkdirErrno())!;
  t.ok(eperm.bpf.length > 0, 'not empty');
  t.equal(eperm.bpf.length % 8, 0, 'a whole number of 8-byte sock_filter entries');
  t.ok(eperm.bpf.length / 8 <= BPF_MAX_INSNS);
  t.equal(eperm.flags, 0);
  t.strictSame(eperm.ignored, []);
  t.ok(returns(eperm.bpf).includes(RET_ERRNO | EPERM), 'ERRNO without errnoRet returns EPERM');
  t.ok(returns(eperm.bpf).includes(RET_ALLOW), 'default action ALLOW');

  const enosys = compileSeccomp(mkdirErrno(ENOSYS))!;
  t.equal(enosys.bpf.length % 8, 0);
  t.ok(returns(enosys.bpf).includes(RET_ERRNO | ENOSYS), 'errnoRet 38');
  t.notSame(enosys.bpf, eperm.bpf, 'a different errnoRet changes the program');

  const rmdir = compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['rmdir'], action: 'SCMP_ACT_ERRNO' }] })!;
  t.notSame(rmdir.bpf, compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] })!.bpf, 'another syscall changes it');
  const more = compileSeccomp({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [...mkdirErrno().syscalls!, { names: ['uname'], action: 'SCMP_ACT_KILL_PROCESS' }],
  })!;
  t.ok(more.bpf.length > eperm.bpf.length, 'another rule makes it longer');
  t.ok(returns(more.bpf).includes(RET_KILL_PROCESS));

  t.same(compileSeccomp(mkdirErrno())!.bpf, eperm.bpf, 'deterministic');
  t.same(
    compileSeccomp({ defaultAction: 'SCMP_ACT_KILL', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] })!.bpf,
    compileSeccomp({ defaultAction: 'SCMP_ACT_KILL_THREAD', syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] })!.bpf,
    'SCMP_ACT_KILL is KILL_THREAD',
  );

  const withDefaultErrno = compileSeccomp({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: ENOSYS, syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }] })!;
  t.ok(returns(withDefaultErrno.bpf).includes(RET_ERRNO | ENOSYS), 'defaultErrnoRet');

  // runc: unknown names are skipped, a rule with the default action is redundant
  const unknown = compileSeccomp({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [{ names: ['mkdir', 'no_such_syscall_xyz', 'mkdirat'], action: 'SCMP_ACT_ERRNO' }],
  })!;
  t.strictSame(unknown.ignored, ['no_such_syscall_xyz']);
  t.same(unknown.bpf, eperm.bpf, 'an unknown syscall name is ignored');
  const redundant = compileSeccomp({
    defaultAction: 'SCMP_ACT_ALLOW',
    syscalls: [...mkdirErrno().syscalls!, { names: ['getpid'], action: 'SCMP_ACT_ALLOW' }],
  })!;
  t.same(redundant.bpf, eperm.bpf, 'a rule with the default action adds nothing');

  // args
  const argProfile = (args: object[]): Seccomp => ({
    defaultAction: 'SCMP_ACT_ERRNO',
    syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ALLOW', args: args as never }],
  });
  const eq = compileSeccomp(argProfile([{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_EQ' }]))!;
  const eq8 = compileSeccomp(argProfile([{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }]))!;
  const ne = compileSeccomp(argProfile([{ index: 0, value: 0xffffffff, op: 'SCMP_CMP_NE' }]))!;
  const masked = compileSeccomp(argProfile([{ index: 0, value: 0xff, valueTwo: 8, op: 'SCMP_CMP_MASKED_EQ' }]))!;
  for (const b of [eq, eq8, ne, masked]) t.equal(b.bpf.length % 8, 0);
  t.notSame(eq.bpf, eq8.bpf, 'the value is in the program');
  t.notSame(eq.bpf, ne.bpf, 'the operator is in the program');
  t.notSame(eq.bpf, masked.bpf);
  // two tests of the same argument: one rule each (OR), as runc
  const two = compileSeccomp(argProfile([
    { index: 0, value: 0, op: 'SCMP_CMP_EQ' },
    { index: 0, value: 8, op: 'SCMP_CMP_EQ' },
  ]))!;
  t.ok(two.bpf.length > eq.bpf.length);
  t.doesNotThrow(() => compileSeccomp(argProfile([{ index: 5, value: 18446744073709551615, op: 'SCMP_CMP_LE' }])), 'u64 max');

  // several architectures
  const multi = compileSeccomp({ ...mkdirErrno(), architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32'] })!;
  t.ok(multi.bpf.length > eperm.bpf.length, 'one branch per architecture');

  // flags
  t.equal(compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG'] })!.flags, FLAG_LOG);
  t.equal(
    compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'] })!.flags,
    FLAG_TSYNC | FLAG_SPEC_ALLOW,
  );
  t.equal(
    compileSeccomp({ defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'] })!.flags,
    0,
    'WAIT_KILLABLE_RECV is not passed without a notify listener (the kernel would refuse it)',
  );

  // SCMP_ACT_NOTIFY: the load asks for a listener, and the runtime learns where to send it.
  const notify = compileSeccomp({
    defaultAction: 'SCMP_ACT_ALLOW',
    listenerPath: '/run/agent.sock',
    listenerMetadata: 'meta',
    flags: ['SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV'],
    syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }],
  })!;
  t.equal(notify.flags & FLAG_NEW_LISTENER, FLAG_NEW_LISTENER, 'NOTIFY rules: SECCOMP_FILTER_FLAG_NEW_LISTENER');
  t.strictSame(notify.listener, { path: '/run/agent.sock', metadata: 'meta' }, 'listenerPath and listenerMetadata are carried');
  if (native().seccomp.flagSupported(1 << 5)) t.equal(notify.flags & (1 << 5), 1 << 5, 'WAIT_KILLABLE_RECV is passed with a listener');
  t.equal(compileSeccomp(mkdirErrno())!.listener, undefined, 'no NOTIFY rule: no listener');
});

t.test('compileSeccomp: what the host lacks is a config error with a path', async (t) => {
  const real = native().seccomp;
  const fake = (o: Partial<SeccompAddon>): SeccompAddon => ({ ...real, ...o });
  const err = (profile: Seccomp, lib: SeccompAddon, message: string) =>
    t.throws(() => compileSeccomp(profile, lib), { name: 'ConfigError', message }, message);

  err(
    { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['read'], action: 'SCMP_ACT_LOG' }] },
    fake({ actionAvailable: (a) => a !== RET_LOG }),
    'config.json: linux.seccomp.syscalls[0].action: SCMP_ACT_LOG is not supported by this kernel',
  );
  err(
    { defaultAction: 'SCMP_ACT_KILL_PROCESS' },
    fake({ actionAvailable: (a) => a !== RET_KILL_PROCESS }),
    'config.json: linux.seccomp.defaultAction: SCMP_ACT_KILL_PROCESS is not supported by this kernel',
  );
  err(
    { defaultAction: 'SCMP_ACT_ALLOW', flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'] },
    fake({ flagSupported: (f) => f !== FLAG_SPEC_ALLOW }),
    'config.json: linux.seccomp.flags[1]: SECCOMP_FILTER_FLAG_SPEC_ALLOW is not supported by this kernel',
  );
  err(
    { defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_RISCV64'] },
    fake({ resolveArch: (n) => (n === 'riscv64' ? 0 : real.resolveArch(n)), version: '2.4.0' }),
    'config.json: linux.seccomp.architectures[1]: SCMP_ARCH_RISCV64 is not supported by libseccomp 2.4.0',
  );
  err(
    { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }, { names: ['getpid', 'uname'], action: 'SCMP_ACT_TRAP' }] },
    fake({
      compile: () => {
        throw Object.assign(new Error('seccomp_rule_add: Invalid argument'), { rule: 2, errno: 22 });
      },
    }),
    'config.json: linux.seccomp.syscalls[1]: cannot add the rule for syscall "uname": seccomp_rule_add: Invalid argument',
  );
  err(
    mkdirErrno(),
    fake({ compile: () => Buffer.alloc(8 * (BPF_MAX_INSNS + 1)) }),
    `config.json: linux.seccomp: the seccomp filter has ${BPF_MAX_INSNS + 1} instructions, more than the kernel's limit of ${BPF_MAX_INSNS}`,
  );
  err(mkdirErrno(), fake({ compile: () => Buffer.alloc(12) }), 'config.json: linux.seccomp: libseccomp exported a malformed filter (12 bytes)');
  t.ok(new ConfigError('config.json', 'x', 'y') instanceof Error);

  // An architecture the linked libseccomp really lacks, if it is old enough to lack one.
  const missing = ['SCMP_ARCH_LOONGARCH64', 'SCMP_ARCH_M68K', 'SCMP_ARCH_SH'].find((a) => real.resolveArch(a.slice(10).toLowerCase()) === 0);
  if (missing) {
    err(
      { defaultAction: 'SCMP_ACT_ALLOW', architectures: [missing] },
      real,
      `config.json: linux.seccomp.architectures[0]: ${missing} is not supported by libseccomp ${real.version}`,
    );
  }
});

t.test('compile(): where the filter is loaded', async (t) => {
  const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-seccomp-plan-'));
  fs.mkdirSync(path.join(bundle, 'rootfs'));
  t.teardown(() => fs.rmSync(bundle, { recursive: true, force: true }));
  const opts = (mode: 'create' | 'run') => ({
    bundle,
    mode,
    stateDir: '/run/tsrun/c1',
    consoleSocket: false,
    noPivot: false,
    preserveFds: 0,
    cgroups: { mode: 'v2' as const, hierarchies: [{ name: '', hostPath: '/sys/fs/cgroup/c1' }] },
    joinCgroups: [],
    capLastCap: 40,
    rootfsParentMount: '/',
  });
  const plan = (nnp: boolean, mode: 'create' | 'run', seccomp: unknown = mkdirErrno()) => {
    const s = config(seccomp);
    if (seccomp === 'none') delete s.linux!.seccomp;
    s.process!.terminal = false;
    s.process!.noNewPrivileges = nnp;
    return compile(validateConfig(s), opts(mode)).plan.ops;
  };
  const at = (ops: PlanOp[], code: number) => ops.findIndex((o) => o.code === code);
  const expected = compileSeccomp(mkdirErrno())!;

  for (const mode of ['create', 'run'] as const) {
    // no_new_privs: as late as possible, after the start wait, right before execve
    const nnp = plan(true, mode);
    const i = at(nnp, Op.SECCOMP);
    t.equal(nnp.filter((o) => o.code === Op.SECCOMP).length, 1, `${mode}: one load`);
    t.equal(nnp[i + 1]!.code, Op.EXEC, `${mode}, noNewPrivileges: the load is the op before exec`);
    t.ok(i > at(nnp, mode === 'create' ? Op.WAIT_START : Op.SYNC), `${mode}: after the start wait`);
    t.ok(i > nnp.findIndex((o) => o.code === Op.PRCTL && o.a === 38), `${mode}: after PR_SET_NO_NEW_PRIVS`);
    t.ok(i > at(nnp, Op.CAPSET), `${mode}: after the capabilities`);
    t.same(nnp[i]!.s?.[0], expected.bpf, 'the blob is the compiled filter');
    t.equal(nnp[i]!.a, expected.bpf.length, 'a = its length in bytes');
    t.equal(nnp[i]!.b, 0, 'b = the seccomp(2) flags');

    // without no_new_privs: while CAP_SYS_ADMIN is held, before the bounding set, user and capabilities change
    const priv = plan(false, mode);
    const j = at(priv, Op.SECCOMP);
    t.ok(j >= 0 && j < at(priv, Op.CAP_BOUNDING), `${mode}, privileged: before CAP_BOUNDING`);
    t.ok(j < at(priv, Op.SETUSER) && j < at(priv, Op.CAPSET), `${mode}: before SETUSER and CAPSET`);
    t.ok(j > at(priv, Op.PIVOT_ROOT), `${mode}: after pivot_root`);
    t.equal(priv.filter((o) => o.code === Op.SECCOMP).length, 1);
  }
  const flagged = plan(true, 'create', { ...mkdirErrno(), flags: ['SECCOMP_FILTER_FLAG_LOG'] });
  t.equal(flagged[at(flagged, Op.SECCOMP)]!.b, FLAG_LOG, 'flags reach the op');
  t.equal(at(plan(true, 'create', {}), Op.SECCOMP), -1, 'an empty profile loads nothing');
  t.equal(at(plan(true, 'create', 'none'), Op.SECCOMP), -1, 'no profile loads nothing');

  // The blob survives encoding (the executor reads `a` bytes at s0).
  const ops = plan(true, 'create');
  const buf = encodePlan({ cloneFlags: 0, intermediateOps: 0, ops });
  t.ok(buf.includes(expected.bpf), 'the encoded plan carries the filter bytes');
});

t.test('features: what this build and kernel support', async (t) => {
  const f = seccompFeatures();
  t.equal(f.enabled, true);
  t.ok(f.actions.includes('SCMP_ACT_ERRNO') && f.actions.includes('SCMP_ACT_ALLOW') && f.actions.includes('SCMP_ACT_KILL'));
  t.equal(f.actions.includes('SCMP_ACT_NOTIFY'), native().seccomp.actionAvailable(0x7fc00000), 'NOTIFY is claimed exactly when the kernel has it');
  t.strictSame(f.operators, ['SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_LE', 'SCMP_CMP_LT', 'SCMP_CMP_MASKED_EQ', 'SCMP_CMP_NE']);
  t.ok(f.archs.includes('SCMP_ARCH_X86_64') && f.archs.includes('SCMP_ARCH_AARCH64'));
  t.strictSame(f.knownFlags, [
    'SECCOMP_FILTER_FLAG_TSYNC',
    'SECCOMP_FILTER_FLAG_LOG',
    'SECCOMP_FILTER_FLAG_SPEC_ALLOW',
    'SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV',
  ]);
  t.ok(f.supportedFlags.every((x) => f.knownFlags.includes(x)), 'supported ⊆ known');
  t.ok(f.supportedFlags.includes('SECCOMP_FILTER_FLAG_TSYNC'), 'TSYNC (Linux 3.17) is supported here');
  const none = seccompFeatures({ ...native().seccomp, actionAvailable: () => false, flagSupported: () => false });
  t.strictSame(none.actions, [], 'actions follow the kernel');
  t.strictSame(none.supportedFlags, [], 'flags follow the kernel');
});
