/**
 * linux.seccomp end to end: real busybox containers under filters built by
 * libseccomp and loaded by the executor, compared with runc where the
 * behaviour must be the same.
 *
 * Every container has a unique id force-deleted at teardown, every bundle is
 * removed at teardown, and every command is bounded by RUN_TIMEOUT_MS.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import type { Seccomp } from '../../src/oci/seccomp-validate.js';
import {
  type BundleConfig,
  type RunResult,
  cleanupContainer,
  makeBundle,
  runtime,
  tsrun,
  uniqueId,
} from '../lib/harness.js';

const hasRunc = (process.env.PATH ?? '/usr/sbin:/usr/bin').split(':').some((d) => d && fs.existsSync(path.join(d, 'runc')));
const skip = process.getuid?.() !== 0 ? 'needs root (runs real containers)' : false;
const RUN_TIMEOUT_MS = 30_000;
const SIGSYS = 31;

/** What static busybox needs to start and run `sh -c 'echo ok'` (strace'd). */
const BUSYBOX_SYSCALLS = [
  'execve',
  'arch_prctl',
  'brk',
  'exit_group',
  'exit',
  'getpid',
  'getppid',
  'getrandom',
  'getuid',
  'mprotect',
  'newfstatat',
  'prctl',
  'prlimit64',
  'readlink',
  'rseq',
  'rt_sigaction',
  'rt_sigprocmask',
  'rt_sigreturn',
  'set_robust_list',
  'set_tid_address',
  'uname',
  'write',
];

/**
 * What the executor itself calls after loading a filter without no_new_privs
 * (the filter is loaded before the bounding set, user and capabilities
 * change, as runc does): see the comment in src/plan/compile.ts.
 */
const EXECUTOR_PRIVILEGED_SYSCALLS = ['prctl', 'setgroups', 'setresgid', 'setresuid', 'chdir', 'getcwd', 'capset', 'newfstatat', 'sendto', 'read'];

interface Run extends RunResult {
  id: string;
}

/** `<runtime> run` of `args` in a fresh bundle with linux.seccomp = profile. */
async function runWith(
  t: Test,
  profile: Seccomp | undefined,
  args: string[],
  opts: { nnp?: boolean; runtime?: string; mutate?: (c: BundleConfig) => void; flags?: string[] } = {},
): Promise<Run> {
  const rt = opts.runtime ?? 'tsrun';
  const bundle = await makeBundle(t, (c) => {
    c.process.args = args;
    c.process.noNewPrivileges = opts.nnp ?? true;
    c.root.readonly = false; // runc's default is read-only; these scripts write to /tmp
    if (profile) (c.linux as unknown as Record<string, unknown>).seccomp = profile;
    opts.mutate?.(c);
  });
  const id = uniqueId('seccomp');
  cleanupContainer(t, id, rt);
  const r = await runtime(rt, [...(opts.flags ?? []), 'run', '--bundle', bundle.dir, id], { input: '', timeoutMs: RUN_TIMEOUT_MS });
  return { ...r, id };
}

/** `tsrun create` of `bundle` with the container's stdout in <bundle>/out.txt; deleted at teardown. */
async function createWithOutput(t: Test, bundle: string, prefix: string): Promise<{ id: string; outFile: string }> {
  const id = uniqueId(prefix);
  cleanupContainer(t, id);
  const outFile = path.join(bundle, 'out.txt');
  const fd = fs.openSync(outFile, 'w');
  try {
    const c = await tsrun(['create', '--bundle', bundle, id], { stdout: fd, stderr: 'pipe', timeoutMs: RUN_TIMEOUT_MS });
    t.equal(c.code, 0, 'create', { stderr: c.stderr });
  } finally {
    fs.closeSync(fd);
  }
  return { id, outFile };
}

const allowAllBut = (names: string[], action: string, errnoRet?: number): Seccomp => ({
  defaultAction: 'SCMP_ACT_ALLOW',
  syscalls: [{ names, action, ...(errnoRet === undefined ? {} : { errnoRet }) }],
});

/** The container's own stderr lines (tsrun's warnings about unrelated unapplied features removed). */
const containerErr = (s: string) =>
  s
    .split('\n')
    .filter((l) => l && !l.startsWith('tsrun: warning:') && !/level=warning/.test(l))
    .join('\n');

t.test('seccomp in real containers', { skip }, async (t) => {
  t.test('ERRNO with errnoRet 1 (EPERM): mkdir fails, everything else works', async (t) => {
    const r = await runWith(t, allowAllBut(['mkdir', 'mkdirat'], 'SCMP_ACT_ERRNO', 1), [
      'sh',
      '-c',
      'mkdir /tmp/x; echo "mkdir=$?"; echo hello > /tmp/f && cat /tmp/f; ls -d /tmp; uname -s',
    ]);
    t.equal(r.code, 0, 'the script ran to the end', { stderr: r.stderr });
    t.equal(r.stdout, 'mkdir=1\nhello\n/tmp\nLinux\n');
    t.match(r.stderr, /mkdir: can't create directory '\/tmp\/x': Operation not permitted/);
  });

  t.test('ERRNO without errnoRet is EPERM, as runc', async (t) => {
    const r = await runWith(t, allowAllBut(['mkdir', 'mkdirat'], 'SCMP_ACT_ERRNO'), ['sh', '-c', 'mkdir /tmp/x; echo "mkdir=$?"']);
    t.equal(r.stdout, 'mkdir=1\n');
    t.match(r.stderr, /Operation not permitted/);
  });

  t.test('ERRNO with errnoRet 38 (ENOSYS): "Function not implemented"', async (t) => {
    const r = await runWith(t, allowAllBut(['mkdir', 'mkdirat'], 'SCMP_ACT_ERRNO', 38), ['sh', '-c', 'mkdir /tmp/x; echo "mkdir=$?"']);
    t.equal(r.code, 0, 'run exits 0', { stderr: r.stderr });
    t.equal(r.stdout, 'mkdir=1\n');
    t.match(r.stderr, /mkdir: can't create directory '\/tmp\/x': Function not implemented/);
  });

  t.test('KILL_PROCESS on uname: the process dies of SIGSYS, run exits 159', async (t) => {
    const r = await runWith(t, allowAllBut(['uname'], 'SCMP_ACT_KILL_PROCESS'), ['uname', '-a']);
    t.equal(r.code, 128 + SIGSYS, 'exit status 128 + SIGSYS', { stderr: r.stderr });
    t.equal(r.stdout, '');
    // (not uname here: static busybox calls uname(2) itself as it starts)
    const sh = await runWith(t, allowAllBut(['mkdir', 'mkdirat'], 'SCMP_ACT_KILL_PROCESS'), ['sh', '-c', 'echo before; mkdir /tmp/x; echo "status=$?"']);
    t.equal(sh.stdout, `before\nstatus=${128 + SIGSYS}\n`, 'a child of the shell is killed, the shell sees SIGSYS');
    t.match(sh.stderr, 'Bad system call');
  });

  t.test('TRAP also ends in SIGSYS; LOG and KILL are actions too', async (t) => {
    const trap = await runWith(t, allowAllBut(['uname'], 'SCMP_ACT_TRAP'), ['uname']);
    t.equal(trap.code, 128 + SIGSYS);
    const log = await runWith(t, allowAllBut(['mkdir', 'mkdirat'], 'SCMP_ACT_LOG'), ['sh', '-c', 'mkdir /tmp/x && echo made']);
    t.equal(log.stdout, 'made\n', 'LOG allows');
    const kill = await runWith(t, allowAllBut(['uname'], 'SCMP_ACT_KILL'), ['uname']);
    t.equal(kill.code, 128 + SIGSYS, 'KILL (thread) of a single-threaded process');
  });

  t.test('an argument filter: personality only for PER_LINUX', async (t) => {
    // personality(2) fails unless arg0 == 0 (PER_LINUX): linux64 calls
    // personality(0), linux32 personality(PER_LINUX32 = 8).
    const profile: Seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [{ names: ['personality'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0, op: 'SCMP_CMP_NE' }] }],
    };
    const r = await runWith(t, profile, ['sh', '-c', 'linux64 true; echo "linux64=$?"; linux32 true; echo "linux32=$?"']);
    t.equal(r.stdout, 'linux64=0\nlinux32=1\n', { stderr: r.stderr });
    t.match(r.stderr, /Operation not permitted/);

    // The same with an allow list and several values (runc splits two tests of one argument into two rules).
    const allow: Seccomp = {
      defaultAction: 'SCMP_ACT_ALLOW',
      syscalls: [
        {
          names: ['personality'],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: 38,
          args: [{ index: 0, value: 8, op: 'SCMP_CMP_EQ' }],
        },
        {
          names: ['personality'],
          action: 'SCMP_ACT_ERRNO',
          errnoRet: 38,
          args: [{ index: 0, value: 0xffffffff, valueTwo: 0x20008, op: 'SCMP_CMP_MASKED_EQ' }],
        },
      ],
    };
    const r2 = await runWith(t, allow, ['sh', '-c', 'linux64 true; echo "linux64=$?"; linux32 true; echo "linux32=$?"']);
    t.equal(r2.stdout, 'linux64=0\nlinux32=1\n', { stderr: r2.stderr });
    t.match(r2.stderr, /Function not implemented/);
  });

  t.test('defaultAction ERRNO with an allow list, with no_new_privs', async (t) => {
    const profile: Seccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: BUSYBOX_SYSCALLS, action: 'SCMP_ACT_ALLOW' }] };
    const r = await runWith(t, profile, ['sh', '-c', 'echo ok']);
    t.equal(r.code, 0, { stderr: r.stderr });
    t.equal(r.stdout, 'ok\n');
    // the filter is loaded right before execve: the executor's own setup is not in it
    const refused = await runWith(t, profile, ['sh', '-c', 'echo ok; read x < /etc/hostname || echo refused; echo end']);
    t.equal(refused.stdout, 'ok\nrefused\nend\n', 'what is not allowed fails (openat)');
    t.match(refused.stderr, "can't open /etc/hostname: Operation not permitted");
  });

  t.test('defaultAction ERRNO with an allow list, without no_new_privs', async (t) => {
    // Loaded while CAP_SYS_ADMIN is held, so the executor's privilege drop runs under it too.
    const names = [...new Set([...BUSYBOX_SYSCALLS, ...EXECUTOR_PRIVILEGED_SYSCALLS])];
    const profile: Seccomp = { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names, action: 'SCMP_ACT_ALLOW' }] };
    const r = await runWith(t, profile, ['sh', '-c', 'echo ok; read x < /etc/hostname || echo refused; echo end'], { nnp: false });
    t.equal(r.code, 0, { stderr: r.stderr });
    t.equal(r.stdout, 'ok\nrefused\nend\n', 'echo runs; openat is refused');

    // capset is made after the load: a profile that refuses it fails the create with a clear error
    const noCapset = names.filter((n) => n !== 'capset');
    const fail = await runWith(t, { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: noCapset, action: 'SCMP_ACT_ALLOW' }] }, ['true'], { nnp: false });
    t.equal(fail.code, 1);
    t.match(fail.stderr, /set capabilities: Operation not permitted/);
    // with no_new_privs the same profile only confines the process
    const nnp = await runWith(t, { defaultAction: 'SCMP_ACT_ERRNO', syscalls: [{ names: noCapset, action: 'SCMP_ACT_ALLOW' }] }, ['sh', '-c', 'echo ok']);
    t.equal(nnp.stdout, 'ok\n', { stderr: nnp.stderr });
  });

  t.test('/proc/self/status: Seccomp 2 (filter mode), with and without no_new_privs', async (t) => {
    for (const nnp of [true, false]) {
      const r = await runWith(t, allowAllBut(['mkdir'], 'SCMP_ACT_ERRNO'), ['grep', '-E', '^(NoNewPrivs|Seccomp|Seccomp_filters):', '/proc/self/status'], { nnp });
      t.equal(r.stdout, `NoNewPrivs:\t${nnp ? 1 : 0}\nSeccomp:\t2\nSeccomp_filters:\t1\n`, `noNewPrivileges ${nnp}`, { stderr: r.stderr });
    }
    const none = await runWith(t, undefined, ['grep', '-E', '^Seccomp:', '/proc/self/status']);
    t.equal(none.stdout, 'Seccomp:\t0\n', 'no profile, no filter');
    const empty = await runWith(t, {}, ['grep', '-E', '^Seccomp:', '/proc/self/status']);
    t.equal(empty.stdout, 'Seccomp:\t0\n', 'an empty profile is no filter (runc)');
  });

  t.test('an unknown syscall name is ignored, like runc', async (t) => {
    const profile = allowAllBut(['mkdir', 'tsrun_no_such_syscall', 'mkdirat'], 'SCMP_ACT_ERRNO');
    const r = await runWith(t, profile, ['sh', '-c', 'mkdir /tmp/x; echo "mkdir=$?"'], { flags: ['--debug'] });
    t.equal(r.code, 0, { stderr: r.stderr });
    t.equal(r.stdout, 'mkdir=1\n', 'the known names are still filtered');
    t.match(r.stderr, 'unknown seccomp syscall "tsrun_no_such_syscall" ignored', 'a debug line says so');
  });

  t.test('flags and several architectures', async (t) => {
    const profile: Seccomp = {
      ...allowAllBut(['mkdir', 'mkdirat'], 'SCMP_ACT_ERRNO'),
      architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32', 'SCMP_ARCH_AARCH64'],
      flags: ['SECCOMP_FILTER_FLAG_LOG', 'SECCOMP_FILTER_FLAG_TSYNC', 'SECCOMP_FILTER_FLAG_SPEC_ALLOW'],
    };
    const r = await runWith(t, profile, ['sh', '-c', 'mkdir /tmp/x; echo "mkdir=$?"']);
    t.equal(r.stdout, 'mkdir=1\n', { stderr: r.stderr });
  });

  t.test('create, then start: the filter holds after the exec fifo', async (t) => {
    const bundle = await makeBundle(t, (c) => {
      c.process.args = ['sh', '-c', 'mkdir /tmp/x 2>/dev/null; echo "mkdir=$?"'];
      (c.linux as unknown as Record<string, unknown>).seccomp = allowAllBut(['mkdir', 'mkdirat'], 'SCMP_ACT_ERRNO', 38);
    });
    const { id, outFile } = await createWithOutput(t, bundle.dir, 'seccomp');
    const s = await tsrun(['start', id], { timeoutMs: RUN_TIMEOUT_MS });
    t.equal(s.code, 0, 'start', { stderr: s.stderr });
    let status = '';
    for (let i = 0; i < 100; i++) {
      const st = await tsrun(['state', id], { timeoutMs: RUN_TIMEOUT_MS });
      status = st.code === 0 ? (JSON.parse(st.stdout) as { status: string }).status : 'gone';
      if (status !== 'running' && status !== 'created') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    t.equal(status, 'stopped');
    t.equal(fs.readFileSync(outFile, 'utf8'), 'mkdir=1\n');
  });

  t.test('config errors are one line and leave nothing behind', async (t) => {
    const bad = await runWith(t, { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_FOO' }] }, ['true']);
    t.equal(bad.code, 1);
    t.match(bad.stderr, `tsrun: run ${bad.id}: config.json: linux.seccomp.syscalls[0].action: unknown action "SCMP_ACT_FOO"\n`);
    const notify = await runWith(
      t,
      { defaultAction: 'SCMP_ACT_ALLOW', listenerPath: '/run/x.sock', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_NOTIFY' }] },
      ['true'],
    );
    t.equal(notify.code, 1);
    t.match(notify.stderr, `tsrun: run ${notify.id}: seccomp listener /run/x.sock: No such file or directory\n`, 'no agent at listenerPath: one line naming it');
    t.equal(notify.stderr.split('\n').filter(Boolean).filter((l) => !l.includes('warning')).length, 1, 'and nothing else');
    const list = await tsrun(['list', '-q']);
    t.notMatch(list.stdout, bad.id);
    t.notMatch(list.stdout, notify.id);
  });

  t.test('tsrun features reports seccomp', async (t) => {
    const r = await tsrun(['features']);
    const sc = (JSON.parse(r.stdout) as { linux: { seccomp: Record<string, unknown> } }).linux.seccomp;
    t.equal(sc.enabled, true);
    t.ok((sc.actions as string[]).includes('SCMP_ACT_KILL_PROCESS'));
    t.ok((sc.archs as string[]).includes('SCMP_ARCH_X86_64'));
    t.ok((sc.supportedFlags as string[]).includes('SECCOMP_FILTER_FLAG_LOG'));
  });
});

t.test('same behaviour as runc on the same profiles', { skip: skip || (!hasRunc && 'needs runc') }, async (t) => {
  const cases: [string, Seccomp, string[]][] = [
    [
      'mkdir EPERM, the rest allowed',
      allowAllBut(['mkdir', 'mkdirat', 'tsrun_no_such_syscall'], 'SCMP_ACT_ERRNO', 1),
      ['sh', '-c', 'mkdir /tmp/x; echo "mkdir=$?"; grep -E "^(NoNewPrivs|Seccomp):" /proc/self/status; echo done'],
    ],
    ['uname killed', allowAllBut(['uname'], 'SCMP_ACT_KILL_PROCESS'), ['uname']],
    [
      'errno 38 and an argument filter',
      {
        defaultAction: 'SCMP_ACT_ALLOW',
        syscalls: [
          { names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 },
          { names: ['personality'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 0, op: 'SCMP_CMP_NE' }] },
        ],
      },
      ['sh', '-c', 'mkdir /tmp/x; echo "mkdir=$?"; linux64 true; echo "64=$?"; linux32 true; echo "32=$?"'],
    ],
  ];
  for (const [name, profile, args] of cases) {
    // one bundle, run by each runtime in turn
    const bundle = await makeBundle(t, (c) => {
      c.process.args = args;
      c.root.readonly = false;
      (c.linux as unknown as Record<string, unknown>).seccomp = profile;
    });
    const runIn = async (rt: string) => {
      const id = uniqueId('seccomp-cmp');
      cleanupContainer(t, id, rt);
      return runtime(rt, ['run', '--bundle', bundle.dir, id], { input: '', timeoutMs: RUN_TIMEOUT_MS });
    };
    const ours = await runIn('tsrun');
    const theirs = await runIn('runc');
    t.equal(ours.code, theirs.code, `${name}: exit status`, { runc: theirs.stderr, tsrun: ours.stderr });
    t.equal(ours.stdout, theirs.stdout, `${name}: output`);
    t.equal(containerErr(ours.stderr), containerErr(theirs.stderr), `${name}: the container's errors`);
  }
});

// ---------------------------------------------------------------------------
// SCMP_ACT_NOTIFY: the listener fd reaches the agent at listenerPath

interface Agent {
  sock: string;
  out: string;
  exited: Promise<number | null>;
}

/** Builds and starts spec/security/fixtures/seccomp-agent.c, expecting `connections` processes. */
async function startAgent(t: Test, connections: number): Promise<Agent | undefined> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-agent-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, 'agent');
  const cc = spawnSync('cc', ['-O1', '-o', bin, path.join(__dirname, 'fixtures', 'seccomp-agent.c')], { encoding: 'utf8', timeout: 60_000 });
  if (cc.status !== 0) {
    t.fail('the agent compiles', { stderr: cc.stderr });
    return undefined;
  }
  const sock = path.join(dir, 'agent.sock');
  const out = path.join(dir, 'out');
  fs.mkdirSync(out);
  const child = spawn(bin, [sock, out, String(connections)], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  for (let i = 0; i < 100 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(fs.existsSync(sock), 'the agent listens', { stderr: err });
  return { sock, out, exited };
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms))]);

const readJson = (file: string): Record<string, unknown> | undefined => {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    return undefined;
  }
};

/** mkdir under the filter: the agent answers "0" without making the directory. */
const MKDIR_PROBE = (dir: string, tag: string) => `mkdir ${dir} && echo ${tag}=ok; [ -d ${dir} ] && echo ${tag}=exists || echo ${tag}=absent`;
const notifyProfile = (sock: string): Seccomp => ({
  defaultAction: 'SCMP_ACT_ALLOW',
  listenerPath: sock,
  listenerMetadata: 'tsrun-spec',
  syscalls: [{ names: ['mkdir', 'mkdirat'], action: 'SCMP_ACT_NOTIFY' }],
});

t.test('SCMP_ACT_NOTIFY: the agent at listenerPath gets the fd and answers the syscalls', { skip }, async (t) => {
  for (const nnp of [true, false]) {
    await t.test(`run, noNewPrivileges ${nnp}`, async (t) => {
      const agent = await startAgent(t, 1);
      if (!agent) return;
      const r = await runWith(t, notifyProfile(agent.sock), ['sh', '-c', MKDIR_PROBE('/tmp/n', 'mkdir')], { nnp });
      t.equal(r.code, 0, 'run', { stderr: r.stderr });
      t.equal(r.stdout, 'mkdir=ok\nmkdir=absent\n', 'mkdir "succeeded" and made nothing: the agent answered it');
      t.equal(await within(agent.exited, 10_000), 0, 'the agent saw the filter go away and exited 0');
      const st = readJson(path.join(agent.out, 'state.0.json'));
      t.match(st, { ociVersion: String, fds: ['seccompFd'], metadata: 'tsrun-spec', state: { id: r.id, status: 'creating' } }, 'the container process state JSON');
      t.ok(typeof st?.pid === 'number' && (st.pid as number) > 0, 'with the process pid');
      t.ok(Number(fs.readFileSync(path.join(agent.out, 'handled.0'), 'utf8')) >= 1, 'the agent answered at least one mkdir');
    });
  }

  await t.test('create, start and exec: each process sends its own fd', async (t) => {
    const agent = await startAgent(t, 2);
    if (!agent) return;
    const bundle = await makeBundle(t, (c) => {
      c.process.args = ['sh', '-c', `${MKDIR_PROBE('/tmp/a', 'init')}; sleep 30`];
      c.root.readonly = false;
      (c.linux as unknown as Record<string, unknown>).seccomp = notifyProfile(agent.sock);
    });
    const { id, outFile } = await createWithOutput(t, bundle.dir, 'notify');
    const st0 = readJson(path.join(agent.out, 'state.0.json'));
    const initPid = (JSON.parse((await tsrun(['state', id])).stdout) as { pid: number }).pid;
    t.match(st0, { fds: ['seccompFd'], pid: initPid, state: { id, status: 'creating', pid: initPid } }, 'create: the init sent its fd with the creating state');
    t.equal((await tsrun(['start', id])).code, 0, 'start');
    const e = await tsrun(['exec', id, 'sh', '-c', MKDIR_PROBE('/tmp/b', 'exec')], { timeoutMs: RUN_TIMEOUT_MS });
    t.equal(e.code, 0, 'exec', { stderr: e.stderr });
    t.equal(e.stdout, 'exec=ok\nexec=absent\n', 'the exec\'d process is under the filter, answered by the agent');
    const st1 = readJson(path.join(agent.out, 'state.1.json'));
    t.match(st1, { fds: ['seccompFd'], state: { id, status: 'running' } }, 'exec: its own fd with the running state');
    t.not(st1?.pid, initPid, 'and its own pid');
    t.equal((await tsrun(['delete', '--force', id])).code, 0, 'delete --force');
    t.equal(await within(agent.exited, 10_000), 0, 'the agent saw both filters go away');
    t.match(fs.readFileSync(outFile, 'utf8'), 'init=ok\ninit=absent\n', 'the init\'s mkdir was answered by the agent');
  });
});
