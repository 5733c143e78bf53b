/**
 * compile(): config.json → the init's op sequence. Constants are the kernel's
 * values, written out in ./abi.ts so that a wrong constant fails as well as
 * a wrong sequence.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ConfigError } from '../../src/errors.js';
import { defaultSpec } from '../../src/oci/default-spec.js';
import type { Spec } from '../../src/oci/types.js';
import { compile, EXEC_FIFO, type CompileOptions, type Compiled } from '../../src/plan/compile.js';
import type { CgroupMountSource } from '../../src/plan/mounts.js';
import { capMask } from '../../src/plan/process.js';
import { Op, encodePlan, type PlanOp } from '../../src/plan/plan.js';
import {
  MS_RDONLY,
  MS_NOSUID,
  MS_NODEV,
  MS_NOEXEC,
  MS_REMOUNT,
  MS_BIND,
  MS_REC,
  MS_PRIVATE,
  MS_SLAVE,
  MS_SHARED,
  MS_RELATIME,
  MS_STRICTATIME,
  CLONE_NEWTIME,
  CLONE_NEWNS,
  CLONE_NEWCGROUP,
  CLONE_NEWUTS,
  CLONE_NEWIPC,
  CLONE_NEWUSER,
  CLONE_NEWPID,
  CLONE_NEWNET,
  O_DIRECTORY,
  O_PATH,
  PR_SET_PDEATHSIG,
  PR_SET_DUMPABLE,
  PR_SET_NO_NEW_PRIVS,
  SLOT_CONSOLE_SOCKET,
  SLOT_EXEC_FIFO,
  SLOT_ROOT,
  SLOT_CGROUP_NS,
  SETNS_FROM_SLOT,
  MNT_CREATE_DIR,
  MNT_CREATE_FILE,
  MNT_BIND,
  SYNC_CLONED,
  CHDIR_AS_ROOT,
  SYNC_PRE_PIVOT,
  SYNC_START,
  PIVOT_NO_PIVOT,
  S_IFCHR,
} from './abi.js';


const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_CAPS = (1n << 29n) | (1n << 5n) | (1n << 10n); // AUDIT_WRITE, KILL, NET_BIND_SERVICE
const STATE_DIR = '/run/tsrun/c1';
const V2: CgroupMountSource = { mode: 'v2', hierarchies: [{ name: '', hostPath: '/sys/fs/cgroup/tsrun/c1' }] };
const HYBRID: CgroupMountSource = {
  mode: 'hybrid',
  hierarchies: [
    { name: 'cpu,cpuacct', hostPath: '/sys/fs/cgroup/cpu,cpuacct/tsrun/c1' },
    { name: 'memory', hostPath: '/sys/fs/cgroup/memory/tsrun/c1' },
    { name: 'unified', hostPath: '/sys/fs/cgroup/unified/tsrun/c1' },
  ],
};

const bundle = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-compile-'));
const rootfs = path.join(bundle, 'rootfs');
fs.mkdirSync(rootfs);
fs.mkdirSync(path.join(bundle, 'data'));
fs.writeFileSync(path.join(bundle, 'hosts.txt'), '127.0.0.1 localhost\n');
t.teardown(() => fs.rmSync(bundle, { recursive: true, force: true }));

function spec(): Spec {
  const s = defaultSpec();
  s.process!.terminal = false;
  return s;
}

function options(o: Partial<CompileOptions> = {}): CompileOptions {
  return {
    bundle,
    mode: 'create',
    stateDir: STATE_DIR,
    consoleSocket: false,
    noPivot: false,
    preserveFds: 0,
    cgroups: V2,
    joinCgroups: [],
    capLastCap: 40,
    rootfsParentMount: '/',
    ...o,
  };
}

/** Every plan any test compiled, for the "every op says what it does" check at the end. */
const compiled: Compiled[] = [];

function build(s: Spec, o: Partial<CompileOptions> = {}): Compiled {
  const c = compile(s, options(o));
  compiled.push(c);
  return c;
}

/** An op without its human description, for exact comparison. */
function bare(op: PlanOp): Omit<PlanOp, 'what' | 'enoent'> {
  const { what: _w, enoent: _e, ...rest } = op;
  return rest;
}

const codeName = (code: number): string => Object.entries(Op).find(([, v]) => v === code)?.[0] ?? String(code);
const codes = (ops: PlanOp[]) => ops.map((o) => codeName(o.code));
const indexOf = (ops: PlanOp[], pred: (o: PlanOp) => boolean): number => ops.findIndex(pred);
const isSync = (tag: number) => (o: PlanOp) => o.code === Op.SYNC && o.a === tag;

const DEVICES: [string, number, number][] = [
  ['/dev/null', 1, 3],
  ['/dev/zero', 1, 5],
  ['/dev/full', 1, 7],
  ['/dev/random', 1, 8],
  ['/dev/urandom', 1, 9],
  ['/dev/tty', 5, 0],
];
const SYMLINKS: [string, string][] = [
  ['/proc/self/fd', '/dev/fd'],
  ['/proc/self/fd/0', '/dev/stdin'],
  ['/proc/self/fd/1', '/dev/stdout'],
  ['/proc/self/fd/2', '/dev/stderr'],
  ['pts/ptmx', '/dev/ptmx'],
  ...(fs.existsSync('/proc/kcore') ? ([['/proc/kcore', '/dev/core']] as [string, string][]) : []),
];
const READONLY = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
const MASKED = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/sys/firmware',
  '/proc/scsi',
];

/** The whole expected plan for defaultSpec() with terminal false on a v2 host. */
function expectedDefault(mode: 'create' | 'run'): Omit<PlanOp, 'what' | 'enoent'>[] {
  const u = undefined;
  return [
    { code: Op.PRCTL, a: PR_SET_DUMPABLE, b: 0 },
    { code: Op.PRCTL, a: PR_SET_PDEATHSIG, b: 9 },
    { code: Op.CLOSE_FDS, a: 3 },
    { code: Op.SYNC, a: SYNC_CLONED },
    { code: Op.LOOPBACK_UP },
    { code: Op.MOUNT, a: MS_SLAVE | MS_REC, s: [u, '/', u, u] },
    { code: Op.MOUNT, a: MS_PRIVATE, s: [u, '/', u, u] },
    { code: Op.MOUNT, a: MS_BIND | MS_REC, s: [rootfs, rootfs, 'bind', u] },
    { code: Op.OPEN_SLOT, a: SLOT_ROOT, b: O_PATH | O_DIRECTORY, s: [rootfs] },
    // the fifo itself, never its directory (a walkable host fd)
    ...(mode === 'create' ? [{ code: Op.OPEN_SLOT, a: SLOT_EXEC_FIFO, b: O_PATH, s: [`${STATE_DIR}/exec.fifo`] }] : []),
    { code: Op.MOUNT_IN_ROOT, flags: MNT_CREATE_DIR, a: 0, b: 0, s: ['proc', '/proc', 'proc', u] },
    {
      code: Op.MOUNT_IN_ROOT,
      flags: MNT_CREATE_DIR,
      a: MS_NOSUID | MS_STRICTATIME,
      b: 0,
      s: ['tmpfs', '/dev', 'tmpfs', 'mode=755,size=65536k'],
    },
    {
      code: Op.MOUNT_IN_ROOT,
      flags: MNT_CREATE_DIR,
      a: MS_NOSUID | MS_NOEXEC,
      b: 0,
      s: ['devpts', '/dev/pts', 'devpts', 'newinstance,ptmxmode=0666,mode=0620,gid=5'],
    },
    {
      code: Op.MOUNT_IN_ROOT,
      flags: MNT_CREATE_DIR,
      a: MS_NOSUID | MS_NOEXEC | MS_NODEV,
      b: 0,
      s: ['shm', '/dev/shm', 'tmpfs', 'mode=1777,size=65536k'],
    },
    {
      code: Op.MOUNT_IN_ROOT,
      flags: MNT_CREATE_DIR,
      a: MS_NOSUID | MS_NOEXEC | MS_NODEV,
      b: 0,
      s: ['mqueue', '/dev/mqueue', 'mqueue', u],
    },
    {
      code: Op.MOUNT_IN_ROOT,
      flags: MNT_CREATE_DIR,
      a: MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
      b: 0,
      s: ['sysfs', '/sys', 'sysfs', u],
    },
    // v2 without a cgroup namespace: bind the container's own cgroup, read-only.
    {
      code: Op.MOUNT_IN_ROOT,
      flags: MNT_CREATE_DIR,
      a: MS_BIND | MS_REC,
      c: MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
      s: ['/sys/fs/cgroup/tsrun/c1', '/sys/fs/cgroup', u, u],
    },
    ...DEVICES.map(([p, major, minor]) => ({
      code: Op.MKNOD_IN_ROOT,
      a: S_IFCHR | 0o666,
      b: BigInt((major << 8) | minor),
      c: 0n,
      s: [u, p],
    })),
    ...SYMLINKS.map(([target, link]) => ({ code: Op.SYMLINK_IN_ROOT, s: [target, link] })),
    { code: Op.SETHOSTNAME, s: ['tsrun'] },
    ...READONLY.map((p) => ({ code: Op.READONLY_IN_ROOT, s: [u, p] })),
    ...MASKED.map((p) => ({ code: Op.MASK_IN_ROOT, s: [u, p] })),
    { code: Op.MKDIR_IN_ROOT, s: [u, '/'] },
    { code: Op.PIVOT_ROOT, flags: 0 },
    { code: Op.MOUNT, a: MS_REMOUNT | MS_BIND | MS_RDONLY, s: [u, '/', u, u] },
    { code: Op.SETSID },
    { code: Op.SETRLIMIT, a: 7, b: 1024n, c: 1024n },
    { code: Op.CAP_BOUNDING, a: DEFAULT_CAPS, b: 40 },
    { code: Op.CHDIR, flags: CHDIR_AS_ROOT, s: ['/'] },
    { code: Op.SETGROUPS, l: [[]] },
    { code: Op.SETUSER, a: 0, b: 0 },
    { code: Op.CHDIR, s: ['/'] },
    { code: Op.CAPSET, a: DEFAULT_CAPS, b: DEFAULT_CAPS, c: 0n },
    { code: Op.UMASK, a: 0o022 },
    { code: Op.PRCTL, a: PR_SET_NO_NEW_PRIVS, b: 1 },
    { code: Op.RESOLVE_EXEC, s: ['sh', DEFAULT_PATH] },
    ...(mode === 'create'
      ? [{ code: Op.WAIT_START, s: [EXEC_FIFO] }]
      : [{ code: Op.SYNC, a: SYNC_START }, { code: Op.PRCTL, a: PR_SET_PDEATHSIG, b: 0 }]),
    // runc adds HOME (from the image's /etc/passwd; this rootfs has none: "/")
    { code: Op.EXEC, l: [['sh'], [`PATH=${DEFAULT_PATH}`, 'TERM=xterm', 'HOME=/']] },
  ];
}

t.test('default spec, create: the whole sequence', async (t) => {
  const { plan, warnings } = build(spec());
  t.strictSame(warnings, [], 'no warnings');
  t.equal(plan.cloneFlags, CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS, 'cloneFlags');
  t.equal(plan.cloneFlags, 0x6c020000);
  t.equal(plan.intermediateOps, 0, 'no intermediate process');
  const want = expectedDefault('create');
  t.strictSame(codes(plan.ops), codes(want as PlanOp[]), 'op codes in order');
  t.strictSame(plan.ops.map(bare), want, 'every op exactly');
  t.equal(EXEC_FIFO, 'exec.fifo');
  const resolve = plan.ops.find((o) => o.code === Op.RESOLVE_EXEC)!;
  t.equal(resolve.enoent, 'exec: "sh": executable file not found in $PATH', "runc's wording for a missing binary");
  t.equal(plan.ops.at(-1)!.code, Op.EXEC, 'exec is last');
  t.doesNotThrow(() => encodePlan(plan), 'the compiled plan encodes');
});

t.test('default spec, run: no state dir, SYNC(START) instead of WAIT_START', async (t) => {
  const { plan } = build(spec(), { mode: 'run', stateDir: undefined });
  t.strictSame(plan.ops.map(bare), expectedDefault('run'));
  t.notOk(plan.ops.some((o) => o.code === Op.WAIT_START), 'no WAIT_START');
  t.notOk(plan.ops.some((o) => o.code === Op.OPEN_SLOT && o.a === SLOT_EXEC_FIFO), 'no exec fifo slot');
  t.strictSame(codes(plan.ops.slice(-4)), ['RESOLVE_EXEC', 'SYNC', 'PRCTL', 'EXEC']);
  t.equal(plan.ops.at(-3)!.a, SYNC_START);
  t.strictSame(plan.ops.at(-2), { code: Op.PRCTL, a: PR_SET_PDEATHSIG, b: 0, what: 'clear parent death signal' }, 'started: the init outlives run');
});

t.test('the init sequence, step by step, as landmarks', async (t) => {
  const { plan } = build(spec());
  const ops = plan.ops;
  const at = (pred: (o: PlanOp) => boolean, name: string) => {
    const i = indexOf(ops, pred);
    t.ok(i >= 0, `${name} present`);
    return i;
  };
  const landmarks = [
    at((o) => o.code === Op.PRCTL && o.a === PR_SET_DUMPABLE, 'dumpable'),
    at((o) => o.code === Op.PRCTL && o.a === PR_SET_PDEATHSIG, 'pdeathsig'),
    at((o) => o.code === Op.CLOSE_FDS, 'close fds'),
    at(isSync(SYNC_CLONED), 'sync cloned'),
    at((o) => o.code === Op.OPEN_SLOT && o.a === SLOT_ROOT, 'open root'),
    at((o) => o.code === Op.MOUNT_IN_ROOT && o.s?.[1] === '/proc', 'first mount'),
    at((o) => o.code === Op.MKNOD_IN_ROOT, 'devices'),
    at((o) => o.code === Op.SETHOSTNAME, 'hostname'),
    at((o) => o.code === Op.READONLY_IN_ROOT, 'readonly paths'),
    at((o) => o.code === Op.MASK_IN_ROOT, 'masked paths'),
    at((o) => o.code === Op.PIVOT_ROOT, 'pivot_root'),
    at((o) => o.code === Op.SETSID, 'setsid'),
    at((o) => o.code === Op.SETRLIMIT, 'rlimits'),
    at((o) => o.code === Op.CAP_BOUNDING, 'bounding'),
    at((o) => o.code === Op.SETGROUPS, 'setgroups'),
    at((o) => o.code === Op.SETUSER, 'setuser'),
    at((o) => o.code === Op.CHDIR && !o.flags, 'chdir'),
    at((o) => o.code === Op.CAPSET, 'capset'),
    at((o) => o.code === Op.PRCTL && o.a === PR_SET_NO_NEW_PRIVS, 'no_new_privs'),
    at((o) => o.code === Op.RESOLVE_EXEC, 'resolve exec'),
    at((o) => o.code === Op.WAIT_START, 'wait start'),
    at((o) => o.code === Op.EXEC, 'exec'),
  ];
  t.strictSame(landmarks, [...landmarks].sort((a, b) => a - b), 'landmarks in init order');
  t.equal(landmarks[0], 0, 'dumpable is the very first op');
  // Every mount is done before the first device node; every mask before pivot_root.
  const lastMount = ops.findLastIndex((o) => o.code === Op.MOUNT_IN_ROOT);
  t.ok(lastMount < landmarks[6], 'all mounts before devices');
  const lastMask = ops.findLastIndex((o) => o.code === Op.MASK_IN_ROOT);
  t.equal(ops[lastMask + 1].code, Op.MKDIR_IN_ROOT, 'the cwd is created after the masks');
  t.equal(lastMask + 2, landmarks[10], 'then pivot_root (no hooks)');
});

t.test('--preserve-fds: CLOSE_FDS keeps [3, 3+n)', async (t) => {
  for (const n of [0, 1, 5]) {
    const { plan } = build(spec(), { preserveFds: n });
    t.strictSame(bare(plan.ops[2]), { code: Op.CLOSE_FDS, a: 3 + n }, `preserveFds ${n}`);
  }
});

t.test('rootfsParentMount is made private', async (t) => {
  const { plan } = build(spec(), { rootfsParentMount: '/var/lib' });
  const op = plan.ops[indexOf(plan.ops, (o) => o.code === Op.MOUNT && o.a === MS_PRIVATE)];
  t.strictSame(bare(op), { code: Op.MOUNT, a: MS_PRIVATE, s: [undefined, '/var/lib', undefined, undefined] });
  t.equal(op.what, 'make /var/lib private');
});

t.test('root.path relative to the bundle, or absolute', async (t) => {
  const s = spec();
  s.root = { path: rootfs, readonly: false };
  const { plan } = build(s);
  const bind = plan.ops[indexOf(plan.ops, (o) => o.code === Op.MOUNT && o.a === (MS_BIND | MS_REC))];
  t.strictSame(bind.s, [rootfs, rootfs, 'bind', undefined], 'absolute root.path kept');
  t.notOk(
    plan.ops.some((o) => o.code === Op.MOUNT && typeof o.a === 'number' && o.a & MS_REMOUNT),
    'root.readonly false: no read-only remount of /',
  );
});

t.test('bind mounts', async (t) => {
  const s = spec();
  const base = s.mounts!.length;
  s.mounts!.push(
    { destination: '/data', type: 'bind', source: 'data', options: ['bind', 'ro'] },
    { destination: '/etc/hosts', source: 'hosts.txt', options: ['bind'] },
    { destination: '/rdata', source: path.join(bundle, 'data'), options: ['rbind', 'ro', 'nosuid', 'rprivate'] },
    { destination: '/plain', type: 'bind', source: './data' },
    { destination: '/rw', type: 'none', source: 'data', options: ['rbind', 'rw'] },
  );
  const { plan } = build(s);
  const mounts = plan.ops.filter((o) => o.code === Op.MOUNT_IN_ROOT);
  const at = (dest: string) => mounts.find((o) => o.s?.[1] === dest)!;
  const data = path.join(bundle, 'data');
  t.strictSame(bare(at('/data')), {
    code: Op.MOUNT_IN_ROOT,
    flags: MNT_BIND | MNT_CREATE_DIR,
    a: MS_BIND,
    b: 0,
    c: MS_REMOUNT | MS_BIND | MS_RDONLY,
    s: [data, '/data', undefined, undefined],
  }, 'relative source resolved against the bundle; ro → remount flags in c');
  t.equal(at('/data').what, 'mount data on /data');
  t.strictSame(bare(at('/etc/hosts')), {
    code: Op.MOUNT_IN_ROOT,
    flags: MNT_BIND | MNT_CREATE_FILE,
    a: MS_BIND,
    b: 0,
    c: 0,
    s: [path.join(bundle, 'hosts.txt'), '/etc/hosts', undefined, undefined],
  }, 'a file source needs a file mount point; no flags → no remount');
  t.strictSame(bare(at('/rdata')), {
    code: Op.MOUNT_IN_ROOT,
    flags: MNT_BIND | MNT_CREATE_DIR,
    a: MS_BIND | MS_REC,
    b: MS_PRIVATE | MS_REC,
    c: MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_REC,
    s: [data, '/rdata', undefined, undefined],
  }, 'rbind: recursive bind and recursive remount; propagation in b');
  t.strictSame(at('/plain').s, [data, '/plain', undefined, undefined], 'type bind without options is a bind');
  t.equal(at('/plain').a, MS_BIND, 'type bind alone is not recursive');
  t.equal(at('/rw').c, 0, 'rw bind: nothing to remount');
  t.equal(at('/rw').a, MS_BIND | MS_REC);
  // The binds come right after the default mounts, in config order.
  const dests = mounts.map((o) => o.s?.[1]);
  t.strictSame(dests.slice(base), ['/data', '/etc/hosts', '/rdata', '/plain', '/rw']);
});

t.test('bind mount with two propagation options', async (t) => {
  const s = spec();
  s.mounts!.push({ destination: '/data', source: 'data', options: ['rbind', 'rprivate', 'rslave'] });
  const { plan } = build(s);
  const b = Number(plan.ops.find((o) => o.s?.[1] === '/data')!.b);
  const kinds = [MS_PRIVATE, MS_SLAVE, MS_SHARED, 1 << 17].filter((f) => b & f).length;
  // runc applies each propagation option with its own mount(2); OR-ing them
  // into one mount(2) call gets EINVAL from the kernel.
  t.equal(kinds, 1, 'at most one propagation type per mount(2) call (the last one, rslave)');
});

t.test('a missing bind source is a ConfigError naming the mount', async (t) => {
  const s = spec();
  s.mounts!.push({ destination: '/x', type: 'bind', source: 'nope', options: ['bind'] });
  const index = s.mounts!.length - 1;
  t.throws(() => build(s), new ConfigError('config.json', `mounts[${index}].source`, `bind source "${path.join(bundle, 'nope')}" does not exist`));
  try {
    compile(s, options());
    t.fail('should throw');
  } catch (e) {
    t.type(e, ConfigError);
    t.equal((e as Error).message, `config.json: mounts[7].source: bind source "${bundle}/nope" does not exist`);
  }
});

t.test('unsupported mount options warn and are dropped from data', async (t) => {
  const s = spec();
  s.mounts!.push({ destination: '/tmp', type: 'tmpfs', source: 'tmpfs', options: ['tmpcopyup', 'mode=1777', 'idmap'] });
  const { plan, warnings } = build(s);
  t.strictSame(warnings, [
    'mounts[7]: option "tmpcopyup" is not supported and was ignored',
    'mounts[7]: option "idmap" is not supported and was ignored',
  ]);
  t.strictSame(plan.ops.find((o) => o.s?.[1] === '/tmp')!.s, ['tmpfs', '/tmp', 'tmpfs', 'mode=1777']);
});

t.test('a /dev bind from the host: no device nodes, no /dev symlinks', async (t) => {
  const s = spec();
  s.mounts![1] = { destination: '/dev', type: 'bind', source: '/dev', options: ['rbind'] };
  const { plan } = build(s);
  t.notOk(plan.ops.some((o) => o.code === Op.MKNOD_IN_ROOT), 'no mknod');
  t.notOk(plan.ops.some((o) => o.code === Op.SYMLINK_IN_ROOT), 'no symlinks');
});

t.test('configured devices: added after the defaults, overriding a default with the same path', async (t) => {
  const s = spec();
  s.linux!.devices = [
    { type: 'c', path: '/dev/fuse', major: 10, minor: 229, fileMode: 0o600, uid: 1000, gid: 1001 },
    { type: 'b', path: '/dev/loop0', major: 7, minor: 0 },
    { type: 'p', path: '/dev/fifo0', fileMode: 0o644 },
    { type: 'c', path: '/dev/null', major: 1, minor: 3, fileMode: 0o600 },
    { type: 'c', path: '/dev/big', major: 259, minor: 300 },
  ];
  const { plan } = build(s);
  const nodes = plan.ops.filter((o) => o.code === Op.MKNOD_IN_ROOT);
  t.strictSame(
    nodes.map((o) => o.s?.[1]),
    ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty', '/dev/fuse', '/dev/loop0', '/dev/fifo0', '/dev/big'],
  );
  const node = (p: string) => bare(nodes.find((o) => o.s?.[1] === p)!);
  t.strictSame(node('/dev/null'), { code: Op.MKNOD_IN_ROOT, a: S_IFCHR | 0o600, b: 259n, c: 0n, s: [undefined, '/dev/null'] });
  t.strictSame(node('/dev/fuse'), {
    code: Op.MKNOD_IN_ROOT,
    a: S_IFCHR | 0o600,
    b: BigInt((10 << 8) | 229),
    c: (1000n << 32n) | 1001n,
    s: [undefined, '/dev/fuse'],
  });
  t.equal(node('/dev/loop0').a, 0o060000 | 0o666, 'block device, default mode 0666');
  t.equal(node('/dev/loop0').b, 7n << 8n);
  t.equal(node('/dev/fifo0').a, 0o010000 | 0o644, 'fifo');
  t.equal(node('/dev/fifo0').b, 0n, 'a fifo has no device number');
  // glibc makedev: minor 300 → low 8 bits in 0..7, the rest at 20..; major 259 in 8..19.
  t.equal(node('/dev/big').b, (259n << 8n) | (300n & 0xffn) | ((300n & ~0xffn) << 12n), 'makedev for major/minor > 255');
});

t.test('namespaces with a path are joined first, in an intermediate process', async (t) => {
  const s = spec();
  s.linux!.namespaces = [
    { type: 'pid', path: '/proc/1/ns/pid' },
    { type: 'network', path: '/proc/1/ns/net' },
    { type: 'ipc' },
    { type: 'uts', path: '/proc/1/ns/uts' },
    { type: 'mount' },
    { type: 'user', path: '/proc/1/ns/user' },
    { type: 'cgroup', path: '/proc/1/ns/cgroup' },
  ];
  const { plan } = build(s);
  t.equal(plan.intermediateOps, 5, 'intermediateOps = number of joins');
  t.strictSame(
    plan.ops.slice(0, 5).map(bare),
    [
      { code: Op.SETNS, a: CLONE_NEWUSER, s: ['/proc/1/ns/user'] },
      { code: Op.SETNS, a: CLONE_NEWUTS, s: ['/proc/1/ns/uts'] },
      { code: Op.SETNS, a: CLONE_NEWNET, s: ['/proc/1/ns/net'] },
      { code: Op.SETNS, a: CLONE_NEWPID, s: ['/proc/1/ns/pid'] },
      { code: Op.OPEN_SLOT, a: SLOT_CGROUP_NS, b: 0, s: ['/proc/1/ns/cgroup'] },
    ],
    'user first, then the rest in JOIN_ORDER; the cgroup namespace is only opened',
  );
  t.equal(plan.ops[0].what, 'join user namespace /proc/1/ns/user');
  t.strictSame(bare(plan.ops[5]), { code: Op.PRCTL, a: PR_SET_DUMPABLE, b: 0 }, 'the init proper starts after the joins');
  t.equal(plan.cloneFlags, CLONE_NEWIPC | CLONE_NEWNS, 'only the new namespaces are cloned');
  const afterSync = plan.ops[indexOf(plan.ops, isSync(SYNC_CLONED)) + 1];
  // Joined by the init, after its cgroup placement: from the spawner, the
  // kernel refuses that placement on an nsdelegate cgroup2 (namespaces.ts).
  t.strictSame(
    bare(afterSync),
    { code: Op.SETNS, flags: SETNS_FROM_SLOT, a: CLONE_NEWCGROUP, b: SLOT_CGROUP_NS },
    'a joined user namespace: no SETRESID; the cgroup namespace is joined first thing after the placement, from its slot',
  );
  t.notOk(plan.ops.some((o) => o.code === Op.UNSHARE && o.a === CLONE_NEWCGROUP), 'a joined cgroupns: no UNSHARE');
  t.equal(plan.ops[indexOf(plan.ops, isSync(SYNC_CLONED)) + 2].code, Op.MOUNT, 'then the rootfs');
  // Joining a user namespace makes devices binds, as a new one does.
  t.notOk(plan.ops.some((o) => o.code === Op.MKNOD_IN_ROOT), 'no mknod in a joined user namespace');
});

t.test('the mount namespace must be new', async (t) => {
  const msg = 'config.json: linux.namespaces: a new mount namespace (without path) is required';
  const none = spec();
  none.linux!.namespaces = none.linux!.namespaces!.filter((n) => n.type !== 'mount');
  t.throws(() => compile(none, options()), { name: 'ConfigError', message: msg }, 'no mount namespace');
  const joined = spec();
  joined.linux!.namespaces = joined.linux!.namespaces!.map((n) => (n.type === 'mount' ? { type: 'mount', path: '/proc/1/ns/mnt' } : n));
  t.throws(() => compile(joined, options()), { name: 'ConfigError', message: msg }, 'a mount namespace with a path');
  const nolinux = spec();
  delete nolinux.linux;
  t.throws(() => compile(nolinux, options()), { message: msg }, 'no linux section at all');
});

t.test('a new user namespace', async (t) => {
  const s = spec();
  s.linux!.namespaces!.push({ type: 'user' });
  s.linux!.uidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  s.linux!.gidMappings = [{ containerID: 0, hostID: 100000, size: 65536 }];
  const { plan } = build(s);
  t.equal(plan.cloneFlags & CLONE_NEWUSER, CLONE_NEWUSER, 'cloned into a new user namespace');
  const sync = indexOf(plan.ops, isSync(SYNC_CLONED));
  t.strictSame(bare(plan.ops[sync + 1]), { code: Op.SETRESID, a: 0, b: 0 }, 'become root right after the maps are written');
  t.notOk(plan.ops.some((o) => o.code === Op.MKNOD_IN_ROOT), 'no mknod');
  const binds = plan.ops.filter((o) => o.code === Op.MOUNT_IN_ROOT && o.what.startsWith('bind device'));
  t.strictSame(
    binds.map(bare),
    DEVICES.map(([p]) => ({ code: Op.MOUNT_IN_ROOT, flags: MNT_CREATE_FILE | MNT_BIND, a: MS_BIND, s: [p, p] })),
    'each device is a bind of the host node',
  );
  t.equal(
    plan.ops.find((o) => o.s?.[1] === '/sys')!.s?.[2],
    'sysfs',
    'with its own network namespace the user namespace mounts a real sysfs',
  );
  const shared = spec();
  shared.linux!.namespaces = shared.linux!.namespaces!.filter((n) => n.type !== 'network');
  shared.linux!.namespaces.push({ type: 'user' });
  shared.linux!.uidMappings = s.linux!.uidMappings;
  shared.linux!.gidMappings = s.linux!.gidMappings;
  t.strictSame(
    bare(build(shared).plan.ops.find((o) => o.s?.[1] === '/sys')!),
    {
      code: Op.MOUNT_IN_ROOT,
      flags: MNT_CREATE_DIR,
      a: MS_BIND | MS_REC,
      b: 0,
      c: MS_REMOUNT | MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
      s: ['/sys', '/sys', undefined, undefined],
    },
    "without one (the host's network namespace) sysfs becomes a read-only rbind of the host /sys, as in runc",
  );
});

t.test('a user namespace without 0 mapped for both uid and gid: no SETRESID', async (t) => {
  const s = spec();
  s.linux!.namespaces!.push({ type: 'user' });
  s.linux!.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
  s.linux!.gidMappings = [{ containerID: 1, hostID: 1000, size: 1 }];
  const { plan } = build(s);
  t.notOk(plan.ops.some((o) => o.code === Op.SETRESID), 'gid 0 unmapped');
  const none = spec();
  none.linux!.namespaces!.push({ type: 'user' });
  t.notOk(build(none).plan.ops.some((o) => o.code === Op.SETRESID), 'no mappings at all');
});

t.test('rootless default spec compiles: /sys is an rbind of the host', async (t) => {
  const s = defaultSpec({ rootless: true, uid: 1000, gid: 1000 });
  s.process!.terminal = false;
  const { plan } = build(s);
  t.equal(plan.cloneFlags, CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNS | CLONE_NEWUSER);
  const sys = plan.ops.find((o) => o.s?.[1] === '/sys')!;
  t.strictSame(bare(sys), {
    code: Op.MOUNT_IN_ROOT,
    flags: MNT_BIND | MNT_CREATE_DIR,
    a: MS_BIND | MS_REC,
    b: 0,
    c: MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY | MS_REC,
    s: ['/sys', '/sys', undefined, undefined],
  });
  t.strictSame(plan.ops.find((o) => o.s?.[1] === '/dev/pts')!.s?.[3], 'newinstance,ptmxmode=0666,mode=0620', 'gid=5 dropped');
});

t.test('cgroup namespace: UNSHARE after SYNC(CLONED), never a clone flag', async (t) => {
  const s = spec();
  s.linux!.namespaces!.push({ type: 'cgroup' });
  const { plan } = build(s);
  t.equal(plan.cloneFlags & CLONE_NEWCGROUP, 0, 'not cloned: the init must be placed in its cgroup first');
  const sync = indexOf(plan.ops, isSync(SYNC_CLONED));
  t.strictSame(bare(plan.ops[sync + 1]), { code: Op.UNSHARE, a: CLONE_NEWCGROUP });
  t.strictSame(
    bare(plan.ops.find((o) => o.s?.[1] === '/sys/fs/cgroup')!),
    {
      code: Op.MOUNT_IN_ROOT,
      flags: MNT_CREATE_DIR,
      a: MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY,
      s: ['cgroup2', '/sys/fs/cgroup', 'cgroup2', undefined],
    },
    'v2 with a cgroup namespace: a real cgroup2 mount',
  );
});

t.test('cgroup mount on a hybrid (and v1) host: tmpfs, one bind per hierarchy, read-only remount', async (t) => {
  for (const mode of ['hybrid', 'v1'] as const) {
    const { plan } = build(spec(), { cgroups: { ...HYBRID, mode } });
    const from = indexOf(plan.ops, (o) => o.s?.[1] === '/sys/fs/cgroup');
    const cg = plan.ops.slice(from, from + 5).map(bare);
    const bindC = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    t.strictSame(
      cg,
      [
        {
          code: Op.MOUNT_IN_ROOT,
          flags: MNT_CREATE_DIR,
          a: MS_NOSUID | MS_NODEV | MS_NOEXEC,
          s: ['tmpfs', '/sys/fs/cgroup', 'tmpfs', 'mode=755'],
        },
        ...HYBRID.hierarchies.map((h) => ({
          code: Op.MOUNT_IN_ROOT,
          flags: MNT_CREATE_DIR,
          a: MS_BIND | MS_REC,
          c: bindC,
          s: [h.hostPath, `/sys/fs/cgroup/${h.name}`, undefined, undefined],
        })),
        {
          code: Op.MOUNT_IN_ROOT,
          a: MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
          s: [undefined, '/sys/fs/cgroup', undefined, 'mode=755'],
        },
      ],
      mode,
    );
    t.equal(plan.ops[from + 5].code, Op.MKNOD_IN_ROOT, `${mode}: devices follow`);
  }
  // Without "ro" there is no final remount and the binds stay writable.
  const s = spec();
  s.mounts![6].options = ['nosuid', 'noexec', 'nodev'];
  const { plan } = build(s, { cgroups: HYBRID });
  const cgOps = plan.ops.filter((o) => String(o.s?.[1]).startsWith('/sys/fs/cgroup'));
  t.equal(cgOps.length, 4, 'tmpfs + 3 binds, no remount');
  t.equal(cgOps[1].c, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_NOEXEC, 'writable binds');
});

t.test('time namespace: UNSHARE(NEWTIME) and the offsets', async (t) => {
  const s = spec();
  s.linux!.namespaces!.push({ type: 'time' });
  s.linux!.timeOffsets = { monotonic: { secs: 86400, nanosecs: 0 }, boottime: { secs: -5, nanosecs: 123 } };
  const { plan } = build(s);
  t.equal(plan.cloneFlags & CLONE_NEWTIME, 0, 'CLONE_NEWTIME is never passed to clone()');
  const sync = indexOf(plan.ops, isSync(SYNC_CLONED));
  t.strictSame(plan.ops.slice(sync + 1, sync + 3).map(bare), [
    { code: Op.UNSHARE, a: CLONE_NEWTIME },
    { code: Op.WRITE_FILE, s: ['/proc/self/timens_offsets', 'monotonic 86400 0\nboottime -5 123\n'] },
  ]);
  const bare0 = spec();
  bare0.linux!.namespaces!.push({ type: 'time' });
  const p0 = build(bare0).plan;
  const i0 = indexOf(p0.ops, isSync(SYNC_CLONED));
  t.strictSame(bare(p0.ops[i0 + 1]), { code: Op.UNSHARE, a: CLONE_NEWTIME }, 'no offsets: only the unshare');
  t.notOk(p0.ops.some((o) => o.s?.[0] === '/proc/self/timens_offsets'), 'no offsets file written');
});

t.test('user + cgroup + time namespaces: after-map ops in order', async (t) => {
  const s = spec();
  s.linux!.namespaces!.push({ type: 'user' }, { type: 'cgroup' }, { type: 'time' });
  s.linux!.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
  s.linux!.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
  s.linux!.timeOffsets = { boottime: { secs: 1 } };
  const { plan } = build(s);
  const sync = indexOf(plan.ops, isSync(SYNC_CLONED));
  t.strictSame(plan.ops.slice(sync + 1, sync + 5).map(bare), [
    { code: Op.SETRESID, a: 0, b: 0 },
    { code: Op.UNSHARE, a: CLONE_NEWCGROUP },
    { code: Op.UNSHARE, a: CLONE_NEWTIME },
    { code: Op.WRITE_FILE, s: ['/proc/self/timens_offsets', 'boottime 1 0\n'] },
  ]);
});

t.test('sysctl, domainname and oom_score_adj', async (t) => {
  const s = spec();
  s.domainname = 'example.org';
  s.linux!.sysctl = { 'net.ipv4.ip_forward': '1', 'kernel.shm_rmid_forced': '1', 'net/ipv4/tcp_syncookies': '0' };
  s.process!.oomScoreAdj = -500;
  const { plan } = build(s);
  const host = indexOf(plan.ops, (o) => o.code === Op.SETHOSTNAME);
  t.strictSame(plan.ops.slice(host, host + 6).map(bare), [
    { code: Op.SETHOSTNAME, s: ['tsrun'] },
    { code: Op.SETDOMAINNAME, s: ['example.org'] },
    { code: Op.WRITE_FILE, s: ['/proc/sys/net/ipv4/ip_forward', '1'] },
    { code: Op.WRITE_FILE, s: ['/proc/sys/kernel/shm_rmid_forced', '1'] },
    { code: Op.WRITE_FILE, s: ['/proc/sys/net/ipv4/tcp_syncookies', '0'] },
    { code: Op.WRITE_FILE, s: ['/proc/self/oom_score_adj', '-500'] },
  ]);
  t.equal(plan.ops[host + 2].what, 'set sysctl net.ipv4.ip_forward=1');
  t.equal(plan.ops[host + 6].code, Op.READONLY_IN_ROOT, 'hardening follows');
  const nohost = spec();
  delete nohost.hostname;
  t.notOk(build(nohost).plan.ops.some((o) => o.code === Op.SETHOSTNAME), 'no hostname: no SETHOSTNAME');
});

t.test('capabilities', async (t) => {
  t.equal(capMask(['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE']), 0x20000420n);
  t.equal(capMask([]), 0n);
  t.equal(capMask(undefined), 0n);
  t.equal(capMask(['CAP_CHECKPOINT_RESTORE', 'CAP_CHOWN']), (1n << 40n) | 1n, 'bit 40 needs 64-bit masks');
  const s = spec();
  s.process!.capabilities = {
    bounding: ['CAP_CHOWN', 'CAP_KILL', 'CAP_SYS_ADMIN', 'CAP_BPF'],
    effective: ['CAP_KILL'],
    permitted: ['CAP_CHOWN', 'CAP_KILL', 'CAP_SYS_ADMIN'],
    inheritable: ['CAP_KILL', 'CAP_SYS_ADMIN', 'CAP_NET_RAW'],
    ambient: ['CAP_CHOWN', 'CAP_KILL', 'CAP_NET_RAW'],
  };
  const { plan } = build(s, { capLastCap: 38 });
  const op = (code: number) => bare(plan.ops.find((o) => o.code === code)!);
  t.strictSame(op(Op.CAP_BOUNDING), { code: Op.CAP_BOUNDING, a: (1n << 0n) | (1n << 5n) | (1n << 21n) | (1n << 39n), b: 38 });
  t.strictSame(op(Op.CAPSET), {
    code: Op.CAPSET,
    a: 1n << 5n,
    b: (1n << 0n) | (1n << 5n) | (1n << 21n),
    c: (1n << 5n) | (1n << 21n) | (1n << 13n),
  });
  t.strictSame(op(Op.CAP_AMBIENT), { code: Op.CAP_AMBIENT, a: 1n << 5n }, 'ambient ∩ permitted ∩ inheritable = KILL only');
  const capset = indexOf(plan.ops, (o) => o.code === Op.CAPSET);
  t.equal(plan.ops[capset + 1].code, Op.CAP_AMBIENT, 'ambient right after capset');
  // The default spec has no inheritable set, so its ambient caps are all dropped.
  t.notOk(build(spec()).plan.ops.some((o) => o.code === Op.CAP_AMBIENT), 'default spec: no ambient op');
  const none = spec();
  delete none.process!.capabilities;
  const np = build(none).plan;
  t.equal(np.ops.find((o) => o.code === Op.CAP_BOUNDING)!.a, 0n, 'no capabilities: empty bounding set');
  t.strictSame(bare(np.ops.find((o) => o.code === Op.CAPSET)!), { code: Op.CAPSET, a: 0n, b: 0n, c: 0n });
});

t.test('rlimits', async (t) => {
  const s = spec();
  s.process!.rlimits = [
    { type: 'RLIMIT_NOFILE', soft: 1024, hard: 4096 },
    { type: 'RLIMIT_CORE', soft: 0, hard: 0 },
    { type: 'RLIMIT_NPROC', soft: 512, hard: 1024 },
    { type: 'RLIMIT_AS', soft: 2 ** 40, hard: 2 ** 53 },
    { type: 'RLIMIT_RTTIME', soft: 1, hard: 2 },
  ];
  const { plan } = build(s);
  t.strictSame(
    plan.ops.filter((o) => o.code === Op.SETRLIMIT).map(bare),
    [
      { code: Op.SETRLIMIT, a: 7, b: 1024n, c: 4096n },
      { code: Op.SETRLIMIT, a: 4, b: 0n, c: 0n },
      { code: Op.SETRLIMIT, a: 6, b: 512n, c: 1024n },
      { code: Op.SETRLIMIT, a: 9, b: 1n << 40n, c: 1n << 53n },
      { code: Op.SETRLIMIT, a: 15, b: 1n, c: 2n },
    ],
    'kernel resource numbers, values as bigints, in config order',
  );
  t.equal(plan.ops.find((o) => o.code === Op.SETRLIMIT)!.what, 'set RLIMIT_NOFILE to 1024:4096');
  const setsid = indexOf(plan.ops, (o) => o.code === Op.SETSID);
  t.strictSame(codes(plan.ops.slice(setsid, setsid + 7)), ['SETSID', ...Array(5).fill('SETRLIMIT'), 'CAP_BOUNDING']);
});

t.test('rlimit RLIM_INFINITY (18446744073709551615 in config.json) compiles and encodes', async (t) => {
  const s = spec();
  // JSON.parse('18446744073709551615') === 2 ** 64, which validate.ts accepts.
  s.process!.rlimits = [{ type: 'RLIMIT_CORE', soft: JSON.parse('18446744073709551615'), hard: JSON.parse('18446744073709551615') }];
  const { plan } = build(s);
  let buf: Buffer | undefined;
  let err: unknown;
  try {
    buf = encodePlan(plan);
  } catch (e) {
    err = e;
  }
  t.equal(err, undefined, 'encodePlan does not throw');
  if (buf) {
    const i = plan.ops.findIndex((o) => o.code === Op.SETRLIMIT);
    t.equal(buf.readBigUInt64LE(48 + i * 56 + 16), 0xffffffffffffffffn, 'soft = RLIM_INFINITY');
  }
});

t.test('HOME from the image passwd, never through a symlink', async (t) => {
  const passwd = path.join(rootfs, 'etc', 'passwd');
  fs.mkdirSync(path.dirname(passwd), { recursive: true });
  fs.writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/sh\nu:x:1000:1000::/home/u:/bin/sh\n');
  const envOf = (mutate: (s: Spec) => void) => {
    const s = spec();
    mutate(s);
    return build(s).plan.ops.at(-1)!.l![1]!;
  };
  t.same(envOf(() => {}).at(-1), 'HOME=/root', 'root: /root');
  t.same(envOf((s) => (s.process!.user = { uid: 1000, gid: 1000 })).at(-1), 'HOME=/home/u', 'uid 1000: its home');
  t.same(envOf((s) => (s.process!.user = { uid: 4242, gid: 1000 })).at(-1), 'HOME=/', 'unknown uid: /');
  t.notOk(envOf((s) => s.process!.env!.push('HOME=/mine')).includes('HOME=/root'), 'a HOME in the config wins');
  fs.rmSync(passwd);
  fs.symlinkSync('/etc/passwd', passwd);
  t.same(envOf(() => {}).at(-1), 'HOME=/', 'a symlinked passwd is not followed (it could point at the host)');
  fs.rmSync(passwd);
});

t.test('user, groups, cwd, umask, env PATH', async (t) => {
  const s = spec();
  s.process!.user = { uid: 1000, gid: 1001, additionalGids: [5, 100], umask: 0o27 };
  s.process!.cwd = '/home/user';
  s.process!.args = ['app', '--flag'];
  s.process!.env = ['PATH=/first', 'A=1', 'PATH=/opt/bin:/bin'];
  s.process!.noNewPrivileges = false;
  const { plan } = build(s);
  const from = indexOf(plan.ops, (o) => o.code === Op.SETGROUPS);
  t.strictSame(plan.ops.slice(from).map(bare), [
    { code: Op.SETGROUPS, l: [['5', '100']] },
    { code: Op.SETUSER, a: 1000, b: 1001 },
    { code: Op.CHDIR, s: ['/home/user'] },
    { code: Op.CAPSET, a: DEFAULT_CAPS, b: DEFAULT_CAPS, c: 0n },
    { code: Op.UMASK, a: 0o27 },
    { code: Op.RESOLVE_EXEC, s: ['app', '/opt/bin:/bin'] },
    { code: Op.WAIT_START, s: ['exec.fifo'] },
    { code: Op.EXEC, l: [['app', '--flag'], ['PATH=/first', 'A=1', 'PATH=/opt/bin:/bin', 'HOME=/']] },
  ], 'the last PATH wins; no PRCTL(NO_NEW_PRIVS) when noNewPrivileges is false');
  t.equal(plan.ops[from].what, 'set additional groups [5 100]');
  t.equal(plan.ops[from + 2].what, 'chdir to cwd "/home/user"');
  t.equal(plan.ops[from + 4].what, 'set umask 0027');
  t.equal(plan.ops[from + 5].enoent, 'exec: "app": executable file not found in $PATH');
  const noPath = spec();
  noPath.process!.env = ['TERM=xterm'];
  t.strictSame(build(noPath).plan.ops.find((o) => o.code === Op.RESOLVE_EXEC)!.s, ['sh', DEFAULT_PATH], 'no PATH: the default');
});

t.test('noNewPrivileges → PRCTL 38 after the capabilities', async (t) => {
  const { plan } = build(spec());
  const i = indexOf(plan.ops, (o) => o.code === Op.PRCTL && o.a === 38);
  t.strictSame(bare(plan.ops[i]), { code: Op.PRCTL, a: 38, b: 1 });
  t.equal(plan.ops[i - 1].code, Op.UMASK, 'after the umask (0022 by default, as runc)');
  t.equal(plan.ops[i - 2].code, Op.CAPSET);
  t.equal(plan.ops[i + 1].code, Op.RESOLVE_EXEC);
});

t.test('root.readonly → a read-only remount of / right after pivot_root', async (t) => {
  const { plan } = build(spec());
  const pivot = indexOf(plan.ops, (o) => o.code === Op.PIVOT_ROOT);
  t.strictSame(bare(plan.ops[pivot + 1]), {
    code: Op.MOUNT,
    a: MS_REMOUNT | MS_BIND | MS_RDONLY,
    s: [undefined, '/', undefined, undefined],
  });
  t.equal(plan.ops[pivot + 2].code, Op.SETSID);
});

t.test('rootfsPropagation: applied to / before and after pivot_root', async (t) => {
  const s = spec();
  s.linux!.rootfsPropagation = 'rshared';
  s.root!.readonly = false;
  const { plan } = build(s);
  // The first MOUNT of the plan sets the propagation of /.
  const firstMount = (p: typeof plan) => p.ops[indexOf(p.ops, (o) => o.code === Op.MOUNT)];
  t.strictSame(bare(firstMount(plan)), { code: Op.MOUNT, a: MS_SHARED | MS_REC, s: [undefined, '/', undefined, undefined] });
  const pivot = indexOf(plan.ops, (o) => o.code === Op.PIVOT_ROOT);
  t.strictSame(bare(plan.ops[pivot + 1]), { code: Op.MOUNT, a: MS_SHARED | MS_REC, s: [undefined, '/', undefined, undefined] });
  const priv = spec();
  priv.linux!.rootfsPropagation = 'private';
  t.equal(firstMount(build(priv).plan).a, MS_PRIVATE);
});

t.test('terminal → CONSOLE op after the devices, before the hostname', async (t) => {
  const s = spec();
  s.process!.terminal = true;
  s.process!.consoleSize = { height: 24, width: 80 };
  const { plan } = build(s, { consoleSocket: true });
  const i = indexOf(plan.ops, (o) => o.code === Op.CONSOLE);
  t.strictSame(bare(plan.ops[i]), { code: Op.CONSOLE, a: SLOT_CONSOLE_SOCKET, b: 24, c: 80 });
  t.equal(plan.ops[i - 1].code, Op.SYMLINK_IN_ROOT, 'after /dev is populated');
  t.equal(plan.ops[i + 1].code, Op.SETHOSTNAME);
  t.equal(plan.ops.find((o) => o.code === Op.SETSID)!.what, 'make the console the controlling terminal');
  const nosize = spec();
  nosize.process!.terminal = true;
  t.strictSame(bare(build(nosize).plan.ops.find((o) => o.code === Op.CONSOLE)!), {
    code: Op.CONSOLE,
    a: SLOT_CONSOLE_SOCKET,
    b: 0,
    c: 0,
  }, 'no consoleSize: 0x0');
  t.notOk(build(spec()).plan.ops.some((o) => o.code === Op.CONSOLE), 'terminal false: no console');
});

t.test('hooks → SYNC(PRE_PIVOT) right before PIVOT_ROOT', async (t) => {
  for (const kind of ['prestart', 'createRuntime', 'createContainer'] as const) {
    const s = spec();
    s.hooks = { [kind]: [{ path: '/bin/true' }] };
    const { plan } = build(s);
    const pivot = indexOf(plan.ops, (o) => o.code === Op.PIVOT_ROOT);
    t.strictSame(bare(plan.ops[pivot - 1]), { code: Op.SYNC, a: SYNC_PRE_PIVOT }, kind);
    t.equal(plan.ops[pivot - 2].code, Op.MKDIR_IN_ROOT, `${kind}: after the cwd is created`);
    t.equal(plan.ops[pivot - 3].code, Op.MASK_IN_ROOT, `${kind}: after the hardening`);
  }
  for (const kind of ['startContainer', 'poststart', 'poststop'] as const) {
    const s = spec();
    s.hooks = { [kind]: [{ path: '/bin/true' }] };
    t.notOk(build(s).plan.ops.some(isSync(SYNC_PRE_PIVOT)), `${kind} alone: no PRE_PIVOT sync`);
  }
  const empty = spec();
  empty.hooks = { createRuntime: [] };
  t.notOk(build(empty).plan.ops.some(isSync(SYNC_PRE_PIVOT)), 'empty hook list: no PRE_PIVOT sync');
});

t.test('--no-pivot', async (t) => {
  const on = build(spec(), { noPivot: true }).plan.ops.find((o) => o.code === Op.PIVOT_ROOT)!;
  t.equal(on.flags, PIVOT_NO_PIVOT);
  const off = build(spec()).plan.ops.find((o) => o.code === Op.PIVOT_ROOT)!;
  t.equal(off.flags, 0);
  t.equal(off.what, `pivot_root to ${rootfs}`);
});

t.test('compile does not modify the spec', async (t) => {
  const s = spec();
  s.linux!.namespaces!.push({ type: 'user' }, { type: 'time' });
  s.linux!.timeOffsets = { monotonic: { secs: 1 } };
  const before = JSON.stringify(s);
  build(s, { cgroups: HYBRID });
  t.equal(JSON.stringify(s), before);
});

t.test('v1 cgroups: the spawner joins them first, before any namespace', async (t) => {
  const s = spec();
  s.linux!.namespaces = s.linux!.namespaces!.map((n) => (n.type === 'network' ? { type: 'network', path: '/proc/1/ns/net' } : n));
  const tasks = ['/sys/fs/cgroup/pids/c1/tasks', '/sys/fs/cgroup/cpu,cpuacct/c1/tasks'];
  const { plan } = build(s, { cgroups: HYBRID, joinCgroups: tasks });
  t.same(
    plan.ops.slice(0, 2).map((o) => [o.code, o.s]),
    tasks.map((f) => [Op.WRITE_FILE, [f, '0']]),
    'a "0" written to each tasks file moves the single-threaded spawner itself',
  );
  t.equal(plan.ops[0].what, 'join cgroup /sys/fs/cgroup/pids/c1');
  t.equal(plan.ops[2].code, Op.SETNS, 'then the joined namespace');
  t.equal(plan.intermediateOps, 3, 'all of it in the spawner, not the init');
  t.equal(build(spec()).plan.intermediateOps, 0, 'nothing to join: nothing in the spawner');
});

// Last: every op of every plan compiled above has a description.
t.test('every op has a non-empty `what`', async (t) => {
  t.ok(compiled.length > 30, `checked ${compiled.length} plans`);
  let n = 0;
  for (const c of compiled) {
    for (const op of c.plan.ops) {
      n++;
      if (typeof op.what !== 'string' || !op.what.trim()) t.fail(`op ${codeName(op.code)} has no what`);
      if (/undefined|\[object /.test(op.what)) t.fail(`op ${codeName(op.code)}: "${op.what}"`);
    }
  }
  t.ok(n > 1000, `${n} ops checked`);
});
