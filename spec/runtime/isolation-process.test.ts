/**
 * The container process, checked from inside a real container: capabilities,
 * rlimits, hostname and domainname, user and groups, umask, cwd, env,
 * no_new_privs, oom_score_adj, sysctls, the descriptors it holds (with and
 * without --preserve-fds) and its dumpability after exec.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { assertNothingLeaked, leakCheck, uniqueId } from '../lib/harness.js';
import { fields, hostTempDir, inside, runInside, runInsideWithFds, section, skip } from './isolation-lib.js';

const CAPS = 'grep -E "^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):" /proc/self/status';

/** The Cap* lines as numbers (hex masks). */
function caps(out: string): Record<string, bigint> {
  const f = fields(out);
  const r: Record<string, bigint> = {};
  for (const k of ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb']) r[k] = BigInt(`0x${f.get(k) ?? 'x'}`);
  return r;
}

const hex = (n: bigint) => `0x${n.toString(16)}`;

t.test('capabilities: the default set', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-caps');
  const out = await inside(t, undefined, CAPS, { id });
  const c = caps(out);
  // CAP_AUDIT_WRITE (29), CAP_KILL (5), CAP_NET_BIND_SERVICE (10)
  for (const k of ['CapBnd', 'CapPrm', 'CapEff'] as const) t.equal(hex(c[k]!), '0x20000420', `${k} is 0x20000420`);
  t.equal(hex(c.CapInh!), '0x0', 'CapInh is empty');
  // runc's default lists them as ambient but not inheritable: the kernel cannot raise them
  t.equal(hex(c.CapAmb!), '0x0', 'CapAmb is empty (ambient without inheritable is dropped)');
  await assertNothingLeaked(t, id);
});

t.test('capabilities: a custom set with inheritable and ambient CAP_NET_RAW', { skip }, async (t) => {
  const set = ['CAP_CHOWN', 'CAP_SETUID', 'CAP_NET_RAW'];
  const out = await inside(
    t,
    (c) => {
      c.process.capabilities = {
        bounding: set,
        effective: set,
        permitted: set,
        inheritable: ['CAP_NET_RAW'],
        ambient: ['CAP_NET_RAW'],
      };
    },
    CAPS,
  );
  const c = caps(out);
  // CAP_CHOWN (0), CAP_SETUID (7), CAP_NET_RAW (13)
  for (const k of ['CapBnd', 'CapPrm', 'CapEff'] as const) t.equal(hex(c[k]!), '0x2081', `${k} is 0x2081`);
  t.equal(hex(c.CapInh!), '0x2000', 'CapInh is CAP_NET_RAW');
  t.equal(hex(c.CapAmb!), '0x2000', 'CapAmb is CAP_NET_RAW');
});

t.test('capabilities: a non-root user keeps exactly its ambient capability across exec', { skip }, async (t) => {
  const only = ['CAP_NET_RAW'];
  const withAmbient = await inside(
    t,
    (c) => {
      c.process.user = { uid: 1000, gid: 1000 };
      c.process.capabilities = { bounding: only, effective: only, permitted: only, inheritable: only, ambient: only };
    },
    CAPS,
  );
  const a = caps(withAmbient);
  for (const k of ['CapBnd', 'CapPrm', 'CapEff', 'CapInh', 'CapAmb'] as const) t.equal(hex(a[k]!), '0x2000', `${k} is CAP_NET_RAW`);

  const without = await inside(
    t,
    (c) => {
      c.process.user = { uid: 1000, gid: 1000 };
      c.process.capabilities = { bounding: only, effective: only, permitted: only };
    },
    CAPS,
  );
  const w = caps(without);
  t.equal(hex(w.CapBnd!), '0x2000', 'without ambient: CapBnd is CAP_NET_RAW');
  for (const k of ['CapPrm', 'CapEff', 'CapInh', 'CapAmb'] as const) t.equal(hex(w[k]!), '0x0', `without ambient: ${k} is empty after exec`);
});

t.test('rlimits: RLIMIT_NOFILE and RLIMIT_NPROC', { skip }, async (t) => {
  const out = await inside(
    t,
    (c) => {
      c.process.rlimits = [
        { type: 'RLIMIT_NOFILE', soft: 1234, hard: 2345 },
        { type: 'RLIMIT_NPROC', soft: 111, hard: 222 },
      ];
    },
    'echo === ulimit; ulimit -n; ulimit -Hn; ulimit -u; ulimit -Hu; echo === limits; cat /proc/self/limits',
  );
  t.same(section(out, 'ulimit').trim().split('\n'), ['1234', '2345', '111', '222'], 'ulimit -n/-Hn/-u/-Hu');
  const limits = section(out, 'limits');
  t.match(limits, /^Max open files\s+1234\s+2345\s+files\s*$/m, '/proc/self/limits: open files 1234 2345');
  t.match(limits, /^Max processes\s+111\s+222\s+processes\s*$/m, '/proc/self/limits: processes 111 222');
});

t.test('hostname and domainname in a new UTS namespace', { skip }, async (t) => {
  const hostName = os.hostname();
  const hostDomain = fs.readFileSync('/proc/sys/kernel/domainname', 'utf8');
  const out = await inside(
    t,
    (c) => {
      c.hostname = 'iso-host';
      c.domainname = 'iso.example';
    },
    'hostname; cat /proc/sys/kernel/domainname',
  );
  t.same(out.trim().split('\n'), ['iso-host', 'iso.example'], 'hostname and domainname as configured');
  t.equal(os.hostname(), hostName, 'the host\'s hostname is unchanged');
  t.equal(fs.readFileSync('/proc/sys/kernel/domainname', 'utf8'), hostDomain, 'the host\'s domainname is unchanged');
});

t.test('user: uid, gid and additional gids', { skip }, async (t) => {
  const out = await inside(
    t,
    (c) => {
      c.process.user = { uid: 1000, gid: 1001, additionalGids: [10, 2000] };
    },
    'echo === id; id -u; id -g; echo === groups; id -G; echo === status; grep -E "^(Uid|Gid|Groups):" /proc/self/status',
  );
  t.same(section(out, 'id').trim().split('\n'), ['1000', '1001'], 'id -u / id -g');
  t.same(section(out, 'groups').trim().split(/\s+/).sort(), ['1001', '10', '2000'].sort(), 'id -G: the gid and the additional gids');
  const st = fields(section(out, 'status'));
  t.same(st.get('Uid')?.split(/\s+/), ['1000', '1000', '1000', '1000'], 'real, effective, saved and fs uid are 1000');
  t.same(st.get('Gid')?.split(/\s+/), ['1001', '1001', '1001', '1001'], 'real, effective, saved and fs gid are 1001');
  t.same(st.get('Groups')?.split(/\s+/).filter(Boolean), ['10', '2000'], 'Groups: exactly the additional gids');
});

t.test('umask', { skip }, async (t) => {
  const out = await inside(
    t,
    (c) => {
      c.root.readonly = false;
      c.process.user.umask = 0o027;
    },
    'umask; touch /tmp/f; mkdir /tmp/d; stat -c %a /tmp/f /tmp/d',
  );
  t.same(out.trim().split('\n'), ['0027', '640', '750'], 'umask 0027, and new files and dirs get it');
});

t.test('cwd: an existing directory', { skip }, async (t) => {
  const out = await inside(
    t,
    (c) => {
      c.process.cwd = '/etc';
    },
    'pwd; ls passwd',
  );
  t.same(out.trim().split('\n'), ['/etc', 'passwd'], 'the process starts in /etc of the rootfs');
});

t.test(
  'cwd: a directory only root may enter still works for a non-root user',
  { skip },
  async (t) => {
    const r = await runInside(
      t,
      (c) => {
        c.process.user = { uid: 1000, gid: 1000 };
        c.process.cwd = '/root';
      },
      'pwd',
      { prepare: (b) => fs.chmodSync(path.join(b.rootfs, 'root'), 0o700) },
    );
    t.equal(r.code, 0, 'tsrun run exits 0', { stderr: r.stderr });
    t.equal(r.stdout, '/root\n', 'the process starts in /root');
  },
);

t.test('env: exactly the configured environment', { skip }, async (t) => {
  const env = ['PATH=/bin:/usr/bin', 'FOO=bar baz', 'EMPTY=', 'HOME=/root', 'MULTI=a=b=c'];
  const out = await inside(
    t,
    (c) => {
      c.process.env = env;
    },
    'echo === environ; tr "\\0" "\\n" < /proc/1/environ; echo === env; env',
  );
  t.same(section(out, 'environ').split('\n').filter(Boolean), env, 'the process was started with exactly process.env');
  const seen = section(out, 'env').split('\n').filter(Boolean);
  for (const e of env) t.ok(seen.includes(e), `env shows ${e}`);
});

t.test('noNewPrivileges', { skip }, async (t) => {
  const on = await inside(t, (c) => void (c.process.noNewPrivileges = true), CAPS);
  t.equal(fields(on).get('NoNewPrivs'), '1', 'noNewPrivileges true: NoNewPrivs 1');
  const off = await inside(t, (c) => void (c.process.noNewPrivileges = false), CAPS);
  t.equal(fields(off).get('NoNewPrivs'), '0', 'noNewPrivileges false: NoNewPrivs 0');
});

t.test('oomScoreAdj', { skip }, async (t) => {
  const out = await inside(t, (c) => void (c.process.oomScoreAdj = 123), 'cat /proc/self/oom_score_adj /proc/1/oom_score_adj');
  t.same(out.trim().split('\n'), ['123', '123'], 'oom_score_adj is 123');
});

t.test('sysctl: net.ipv4.ip_forward in the net namespace, kernel.shm_rmid_forced in the ipc namespace', { skip }, async (t) => {
  const read = (k: string) => fs.readFileSync(`/proc/sys/${k.replace(/\./g, '/')}`, 'utf8').trim();
  const before = { fwd: read('net.ipv4.ip_forward'), shm: read('kernel.shm_rmid_forced') };
  const want = { fwd: before.fwd === '1' ? '0' : '1', shm: before.shm === '1' ? '0' : '1' };
  const out = await inside(
    t,
    (c) => {
      c.linux.sysctl = { 'net.ipv4.ip_forward': want.fwd, 'kernel.shm_rmid_forced': want.shm };
    },
    'cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shm_rmid_forced',
  );
  t.same(out.trim().split('\n'), [want.fwd, want.shm], `inside: ip_forward=${want.fwd}, shm_rmid_forced=${want.shm}`);
  t.equal(read('net.ipv4.ip_forward'), before.fwd, 'the host\'s ip_forward is unchanged');
  t.equal(read('kernel.shm_rmid_forced'), before.shm, 'the host\'s shm_rmid_forced is unchanged');
});

// ---------------------------------------------------------------------------
// Descriptors

/**
 * The descriptors of the container's process (pid 1, the shell), listed by a
 * child (`ls -l` opens its directory in its own process, not in pid 1); the
 * shell itself holds nothing extra while it waits for a simple command.
 */
const FDS = 'ls -l /proc/1/fd';

/** `ls -l /proc/N/fd` output -> fd number -> link target. */
function fdMap(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const r = /\s(\d+) -> (.*)$/.exec(line);
    if (r) m.set(r[1]!, r[2]!);
  }
  return m;
}

t.test('fd hygiene: the process holds only stdio, none of it a host path', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-fds');
  const out = await inside(t, undefined, `echo === ls; ls /proc/self/fd; echo === fds; ${FDS}`, { id });
  // ls's own directory descriptor is the 3 it lists
  t.same(section(out, 'ls').trim().split('\n'), ['0', '1', '2', '3'], 'ls /proc/self/fd: 0 1 2 and ls\'s own');
  const fds = fdMap(section(out, 'fds'));
  t.same([...fds.keys()].sort(), ['0', '1', '2'], 'the process holds fds 0, 1 and 2 only');
  for (const [fd, target] of fds) t.match(target, /^(pipe|socket):\[\d+\]$/, `fd ${fd} is the pipe tsrun was given, not a file (${target})`);
  await assertNothingLeaked(t, id);
});

t.test('fd hygiene: descriptors tsrun inherits do not reach the container without --preserve-fds', { skip }, async (t) => {
  const dir = hostTempDir(t, 'iso-fds');
  const a = fs.openSync(path.join(dir, 'a'), 'w');
  const b = fs.openSync(path.join(dir, 'b'), 'w');
  t.teardown(() => {
    fs.closeSync(a);
    fs.closeSync(b);
  });
  const r = await runInsideWithFds(t, undefined, FDS, [a, b]);
  t.equal(r.code, 0, 'tsrun run exits 0', { stderr: r.stderr });
  t.same([...fdMap(r.stdout).keys()].sort(), ['0', '1', '2'], 'only 0, 1 and 2 are open inside');
  for (const [fd, target] of fdMap(r.stdout)) t.notMatch(target, dir, `fd ${fd} is not a host file (${target})`);
});

t.test('--preserve-fds: the next N descriptors reach the container and work', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-preserve');
  const dir = hostTempDir(t, 'iso-preserve');
  const files = ['a', 'b', 'c'].map((n) => path.join(dir, n));
  const fds = files.map((f) => fs.openSync(f, 'w'));
  t.teardown(() => fds.forEach((fd) => fs.closeSync(fd)));

  const two = await runInsideWithFds(t, undefined, `echo === fds; ${FDS}; echo three >&3; echo four >&4`, fds, {
    id,
    runFlags: ['--preserve-fds', '2'],
  });
  t.equal(two.code, 0, 'tsrun run --preserve-fds 2 exits 0', { stderr: two.stderr });
  const seen = fdMap(section(two.stdout, 'fds'));
  t.same([...seen.keys()].sort(), ['0', '1', '2', '3', '4'], 'fds 3 and 4 are open inside, 5 is not');
  t.equal(seen.get('3'), files[0], 'fd 3 is the first descriptor passed');
  t.equal(seen.get('4'), files[1], 'fd 4 is the second descriptor passed');
  t.equal(fs.readFileSync(files[0]!, 'utf8'), 'three\n', 'a write to fd 3 reached its file');
  t.equal(fs.readFileSync(files[1]!, 'utf8'), 'four\n', 'a write to fd 4 reached its file');
  t.equal(fs.readFileSync(files[2]!, 'utf8'), '', 'the third descriptor was not passed');
  await assertNothingLeaked(t, id);

  const one = await runInsideWithFds(t, undefined, FDS, fds, { runFlags: ['--preserve-fds', '1'] });
  t.equal(one.code, 0, 'tsrun run --preserve-fds 1 exits 0', { stderr: one.stderr });
  t.same([...fdMap(one.stdout).keys()].sort(), ['0', '1', '2', '3'], '--preserve-fds 1: fd 3 only');
});

// ---------------------------------------------------------------------------
// Dumpability

// The init is not dumpable while it runs runtime code (README, step 2), but
// that window closes at execve and cannot be observed from inside the
// container; it is not checked here. What can be: after execve the process
// is dumpable again, as any process is, so its /proc files belong to it and
// a process of the same user may read them.
t.test('after exec the container process is dumpable: /proc/1 is its own and readable', { skip }, async (t) => {
  // (cat in a pipeline: pid 1 stays the shell; a last simple command would replace it)
  const script = 'echo === owner; stat -c %u:%g /proc/1/environ; echo === environ; cat /proc/1/environ | tr "\\0" "\\n"';
  const root = await inside(t, undefined, script);
  t.equal(section(root, 'owner').trim(), '0:0', 'as root: /proc/1 is root\'s');
  t.match(section(root, 'environ'), /^PATH=/m, 'as root: /proc/1/environ can be read');

  const user = await inside(
    t,
    (c) => {
      c.process.user = { uid: 1000, gid: 1000 };
    },
    script,
  );
  // a non-dumpable process's /proc files belong to root, and a uid-1000 reader is refused
  t.equal(section(user, 'owner').trim(), '1000:1000', 'as uid 1000: /proc/1 belongs to the process (it is dumpable)');
  t.match(section(user, 'environ'), /^PATH=/m, 'as uid 1000: /proc/1/environ can be read');
});
