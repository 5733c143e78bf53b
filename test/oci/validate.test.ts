import t from 'tap';
import { ConfigError } from '../../src/errors.js';
import {
  CAPABILITIES,
  NAMESPACE_TYPES,
  RLIMITS,
  parseConfig,
  parseProcess,
  validateConfig,
  validateProcess,
} from '../../src/oci/validate.js';

// Test documents are deliberately loosely typed: most of them are invalid.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Doc = any;

const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/** The config `runc spec` writes, plus a few extras exercising optional fields. */
function base(): Doc {
  return {
    ociVersion: '1.2.0',
    process: {
      terminal: true,
      consoleSize: { height: 24, width: 80 },
      user: { uid: 0, gid: 0, umask: 0o22, additionalGids: [1, 2] },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: [...CAPS], effective: [...CAPS], permitted: [...CAPS], ambient: [...CAPS] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
      oomScoreAdj: -500,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'runc',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    hooks: {
      prestart: [{ path: '/usr/bin/fix-mounts', args: ['fix-mounts', 'arg1'], env: ['key1=value1'], timeout: 5 }],
      poststop: [{ path: '/usr/sbin/cleanup.sh' }],
    },
    annotations: { 'com.example.key1': 'value1', 'org.opencontainers.image.os': 'linux' },
    linux: {
      resources: {
        devices: [{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 1, minor: 3, access: 'rw' }],
        memory: { limit: 536870912, swap: -1 },
        cpu: { shares: 1024, quota: 100000, period: 100000, cpus: '0-3' },
        pids: { limit: 100 },
        hugepageLimits: [{ pageSize: '2MB', limit: 9223372036854775807 }],
        unified: { 'memory.high': '1G' },
      },
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }],
      devices: [
        { path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 },
        { path: '/dev/myfifo', type: 'p' },
      ],
      sysctl: { 'net.ipv4.ip_forward': '1' },
      seccomp: { defaultAction: 'SCMP_ACT_ALLOW' },
      rootfsPropagation: 'rprivate',
      maskedPaths: [
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
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** runc spec --rootless: a new user namespace with mappings, no network namespace. */
function rootless(): Doc {
  const d = base();
  d.linux.namespaces = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }, { type: 'cgroup' }, { type: 'user' }];
  d.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
  d.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
  return d;
}

t.test('exported tables', async (t) => {
  t.equal(CAPABILITIES.CAP_CHOWN, 0);
  t.equal(CAPABILITIES.CAP_SYS_ADMIN, 21);
  t.equal(CAPABILITIES.CAP_CHECKPOINT_RESTORE, 40);
  t.equal(Object.keys(CAPABILITIES).length, 41);
  t.same(
    Object.values(CAPABILITIES).sort((a, b) => a - b),
    Array.from({ length: 41 }, (_, i) => i),
    'capability numbers are 0..40 without gaps',
  );
  t.equal(RLIMITS.RLIMIT_CPU, 0);
  t.equal(RLIMITS.RLIMIT_NOFILE, 7);
  t.equal(RLIMITS.RLIMIT_RTTIME, 15);
  t.equal(Object.keys(RLIMITS).length, 16);
  t.same([...NAMESPACE_TYPES].sort(), ['cgroup', 'ipc', 'mount', 'network', 'pid', 'time', 'user', 'uts']);
});

t.test('valid configs pass and are returned intact', async (t) => {
  const doc = base();
  doc.futureField = { nested: [1, 2, 3] };
  doc.process.someExtension = true;
  doc.linux.vendorThing = 'x';
  doc.mounts[0].extra = 1;
  const text = JSON.stringify(doc, null, '\t');

  const spec = parseConfig(text);
  t.same(spec, JSON.parse(text), 'parsed config equals the input document');
  t.same((spec as Doc).futureField, { nested: [1, 2, 3] }, 'unknown top-level keys preserved');
  t.equal((spec as Doc).process.someExtension, true, 'unknown nested keys preserved');
  t.equal(spec.annotations?.['org.opencontainers.image.os'], 'linux', 'annotations preserved');

  const same = validateConfig(doc);
  t.equal(same, doc, 'validateConfig returns the same object');

  t.ok(validateConfig(rootless()), 'rootless config (user ns with mappings)');

  const joined = base();
  joined.linux.namespaces.push({ type: 'user', path: '/proc/1/ns/user' });
  t.ok(validateConfig(joined), 'joining an existing user namespace needs no mappings');

  const minimal = { ociVersion: '1.0.0', root: { path: '/rootfs' }, process: { user: { uid: 0, gid: 0 }, args: ['true'], cwd: '/' } };
  t.ok(validateConfig(minimal), 'minimal config');

  const variants: [string, (d: Doc) => void][] = [
    ['empty rootfsPropagation means unset', (d) => (d.linux.rootfsPropagation = '')],
    ['empty hostname needs no uts namespace', (d) => {
      d.hostname = '';
      d.linux.namespaces = [{ type: 'mount' }];
    }],
    ['commandLine instead of args', (d) => {
      delete d.process.args;
      d.process.commandLine = 'sh -c true';
    }],
    ['time namespace with offsets', (d) => {
      d.linux.namespaces.push({ type: 'time' });
      d.linux.timeOffsets = { monotonic: { secs: -86400, nanosecs: 0 }, boottime: { secs: 1 } };
    }],
    ['unknown mount options are left to the plan', (d) => (d.mounts[0].options = ['x-some-fs-data=1', 'bogus'])],
    ['RLIM_INFINITY written in full', (d) => (d.process.rlimits = [{ type: 'RLIMIT_CORE', soft: 18446744073709551615, hard: 18446744073709551615 }])],
    ['64-char hostname', (d) => (d.hostname = 'h'.repeat(64))],
    ['a seccomp profile', (d) => (d.linux.seccomp = { defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] })],
    ['empty capability sets', (d) => (d.process.capabilities = { bounding: [], effective: [] })],
  ];
  for (const [name, mutate] of variants) {
    const d = base();
    mutate(d);
    t.doesNotThrow(() => validateConfig(d), name);
  }
});

/**
 * Each case mutates a fresh valid config; the expected value is the complete
 * error message. validateConfig must throw a ConfigError with exactly it.
 */
const bad: [string, (d: Doc) => void, string][] = [
  // --- types and required top-level fields
  ['ociVersion type', (d) => (d.ociVersion = 1), 'config.json: ociVersion: must be a string, got number'],
  ['ociVersion missing', (d) => delete d.ociVersion, 'config.json: ociVersion: is required'],
  ['root missing', (d) => delete d.root, 'config.json: root: is required'],
  ['root not object', (d) => (d.root = 'rootfs'), 'config.json: root: must be an object, got string'],
  ['root.path empty', (d) => (d.root.path = ''), 'config.json: root.path: must not be empty'],
  ['root.path missing', (d) => delete d.root.path, 'config.json: root.path: is required'],
  ['root.readonly type', (d) => (d.root.readonly = 'yes'), 'config.json: root.readonly: must be a boolean, got string'],
  ['process missing', (d) => delete d.process, 'config.json: process: is required'],
  ['process null', (d) => (d.process = null), 'config.json: process: must be an object, got null'],

  // --- process
  ['args missing', (d) => delete d.process.args, 'config.json: process.args: is required'],
  ['args empty', (d) => (d.process.args = []), 'config.json: process.args: must not be empty'],
  ['args not array', (d) => (d.process.args = 'sh'), 'config.json: process.args: must be an array, got string'],
  ['args element type', (d) => (d.process.args = ['sh', 1]), 'config.json: process.args[1]: must be a string, got number'],
  ['args NUL', (d) => (d.process.args = ['sh', 'a\0b']), 'config.json: process.args[1]: must not contain a NUL byte, got "a\\u0000b"'],
  ['cwd relative', (d) => (d.process.cwd = 'tmp'), 'config.json: process.cwd: must be an absolute path, got "tmp"'],
  ['cwd missing', (d) => delete d.process.cwd, 'config.json: process.cwd: is required'],
  [
    'long value truncated',
    (d) => (d.process.cwd = 'x'.repeat(200)),
    `config.json: process.cwd: must be an absolute path, got "${'x'.repeat(57)}..."`,
  ],
  ['terminal type', (d) => (d.process.terminal = 'true'), 'config.json: process.terminal: must be a boolean, got string'],
  ['consoleSize.width missing', (d) => (d.process.consoleSize = { height: 1 }), 'config.json: process.consoleSize.width: is required'],
  ['user missing', (d) => delete d.process.user, 'config.json: process.user: is required'],
  ['user.gid missing', (d) => delete d.process.user.gid, 'config.json: process.user.gid: is required'],
  ['uid negative', (d) => (d.process.user.uid = -1), 'config.json: process.user.uid: must be between 0 and 4294967295, got -1'],
  ['uid too large', (d) => (d.process.user.uid = 2 ** 32), 'config.json: process.user.uid: must be between 0 and 4294967295, got 4294967296'],
  ['gid fractional', (d) => (d.process.user.gid = 1.5), 'config.json: process.user.gid: must be an integer, got 1.5'],
  ['uid string', (d) => (d.process.user.uid = '0'), 'config.json: process.user.uid: must be an integer, got string'],
  ['uid not finite', (d) => (d.process.user.uid = Infinity), 'config.json: process.user.uid: must be a finite number, got Infinity'],
  ['umask negative', (d) => (d.process.user.umask = -18), 'config.json: process.user.umask: must be between 0 and 4294967295, got -18'],
  [
    'additionalGids element',
    (d) => (d.process.user.additionalGids = [0, '1']),
    'config.json: process.user.additionalGids[1]: must be an integer, got string',
  ],
  ['env without =', (d) => d.process.env.push('FOO'), 'config.json: process.env[2]: must be of the form KEY=VALUE, got "FOO"'],
  ['env NUL', (d) => (d.process.env = ['A=b\0c']), 'config.json: process.env[0]: must not contain a NUL byte, got "A=b\\u0000c"'],
  ['env element type', (d) => (d.process.env = [null]), 'config.json: process.env[0]: must be a string, got null'],
  [
    'unknown capability',
    (d) => d.process.capabilities.bounding.push('CAP_FOO'),
    'config.json: process.capabilities.bounding[3]: unknown capability "CAP_FOO"',
  ],
  [
    'capabilities are case-sensitive',
    (d) => (d.process.capabilities.effective = ['cap_kill']),
    'config.json: process.capabilities.effective[0]: unknown capability "cap_kill"',
  ],
  [
    'capability set type',
    (d) => (d.process.capabilities.ambient = 'CAP_KILL'),
    'config.json: process.capabilities.ambient: must be an array, got string',
  ],
  [
    'unknown rlimit',
    (d) => (d.process.rlimits[0].type = 'RLIMIT_FOO'),
    'config.json: process.rlimits[0].type: unknown rlimit "RLIMIT_FOO"',
  ],
  [
    'rlimit soft > hard',
    (d) => (d.process.rlimits[0].soft = 2048),
    'config.json: process.rlimits[0]: soft limit 2048 exceeds hard limit 1024',
  ],
  [
    'duplicate rlimit',
    (d) => d.process.rlimits.push({ type: 'RLIMIT_NOFILE', soft: 1, hard: 1 }),
    'config.json: process.rlimits[1].type: duplicate rlimit "RLIMIT_NOFILE"',
  ],
  ['rlimit hard missing', (d) => delete d.process.rlimits[0].hard, 'config.json: process.rlimits[0].hard: is required'],
  ['rlimit negative', (d) => (d.process.rlimits[0].soft = -1), 'config.json: process.rlimits[0].soft: must be a non-negative integer, got -1'],
  ['oomScoreAdj range', (d) => (d.process.oomScoreAdj = 1001), 'config.json: process.oomScoreAdj: must be between -1000 and 1000, got 1001'],
  ['noNewPrivileges type', (d) => (d.process.noNewPrivileges = 1), 'config.json: process.noNewPrivileges: must be a boolean, got number'],
  [
    'ioPriority class',
    (d) => (d.process.ioPriority = { class: 'IOPRIO_CLASS_FAST' }),
    'config.json: process.ioPriority.class: unknown I/O priority class "IOPRIO_CLASS_FAST"',
  ],
  [
    'scheduler policy',
    (d) => (d.process.scheduler = { policy: 'SCHED_FAST' }),
    'config.json: process.scheduler.policy: unknown scheduler policy "SCHED_FAST"',
  ],

  // --- namespaces and their cross-checks
  [
    'unknown namespace',
    (d) => (d.linux.namespaces[2].type = 'foo'),
    'config.json: linux.namespaces[2].type: unknown namespace "foo"',
  ],
  ['namespace type missing', (d) => (d.linux.namespaces[0] = {}), 'config.json: linux.namespaces[0].type: is required'],
  ['duplicate namespace', (d) => d.linux.namespaces.push({ type: 'pid' }), 'config.json: linux.namespaces[6]: duplicate namespace "pid"'],
  [
    'namespace path relative',
    (d) => (d.linux.namespaces[0].path = 'proc/1/ns/pid'),
    'config.json: linux.namespaces[0].path: must be an absolute path, got "proc/1/ns/pid"',
  ],
  ['namespaces not array', (d) => (d.linux.namespaces = { pid: {} }), 'config.json: linux.namespaces: must be an array, got object'],
  [
    'uidMappings without user ns',
    (d) => (d.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]),
    'config.json: linux.uidMappings: requires a user namespace',
  ],
  [
    'gidMappings without user ns',
    (d) => (d.linux.gidMappings = [{ containerID: 0, hostID: 1000, size: 1 }]),
    'config.json: linux.gidMappings: requires a user namespace',
  ],
  [
    'new user ns without mappings',
    (d) => d.linux.namespaces.push({ type: 'user' }),
    'config.json: linux.uidMappings: is required when creating a new user namespace',
  ],
  [
    'new user ns without gid mappings',
    (d) => {
      d.linux.namespaces.push({ type: 'user' });
      d.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 1 }];
    },
    'config.json: linux.gidMappings: is required when creating a new user namespace',
  ],
  [
    'mapping size 0',
    (d) => (d.linux.uidMappings = [{ containerID: 0, hostID: 1000, size: 0 }]),
    'config.json: linux.uidMappings[0].size: must be at least 1, got 0',
  ],
  [
    'mapping hostID negative',
    (d) => (d.linux.gidMappings = [{ containerID: 0, hostID: -1, size: 1 }]),
    'config.json: linux.gidMappings[0].hostID: must be between 0 and 4294967295, got -1',
  ],
  [
    'mapping field missing',
    (d) => (d.linux.uidMappings = [{ hostID: 1, size: 1 }]),
    'config.json: linux.uidMappings[0].containerID: is required',
  ],
  [
    'hostname without uts',
    (d) => d.linux.namespaces.splice(3, 1),
    'config.json: hostname: requires a uts namespace (unable to set hostname without a private UTS namespace)',
  ],
  [
    'domainname without uts',
    (d) => {
      delete d.hostname;
      d.domainname = 'example.com';
      d.linux.namespaces = [];
    },
    'config.json: domainname: requires a uts namespace (unable to set domainname without a private UTS namespace)',
  ],
  [
    'hostname too long',
    (d) => (d.hostname = 'h'.repeat(65)),
    `config.json: hostname: must be at most 64 characters, got "${'h'.repeat(57)}..."`,
  ],
  ['hostname type', (d) => (d.hostname = 7), 'config.json: hostname: must be a string, got number'],
  ['hostname NUL', (d) => (d.hostname = 'a\0'), 'config.json: hostname: must not contain a NUL byte, got "a\\u0000"'],
  [
    'timeOffsets without time ns',
    (d) => (d.linux.timeOffsets = { monotonic: { secs: 1 } }),
    'config.json: linux.timeOffsets: requires a time namespace',
  ],
  [
    'timeOffsets field type',
    (d) => (d.linux.timeOffsets = { boottime: { secs: 0.5 } }),
    'config.json: linux.timeOffsets.boottime.secs: must be an integer, got 0.5',
  ],

  // --- mounts
  ['mounts not array', (d) => (d.mounts = {}), 'config.json: mounts: must be an array, got object'],
  ['mount destination missing', (d) => delete d.mounts[0].destination, 'config.json: mounts[0].destination: is required'],
  ['mount destination relative', (d) => (d.mounts[1].destination = 'dev'), 'config.json: mounts[1].destination: must be an absolute path, got "dev"'],
  ['mount type', (d) => (d.mounts[0].type = 5), 'config.json: mounts[0].type: must be a string, got number'],
  ['mount source NUL', (d) => (d.mounts[0].source = 'pr\0c'), 'config.json: mounts[0].source: must not contain a NUL byte, got "pr\\u0000c"'],
  ['mount options element', (d) => (d.mounts[1].options = [1]), 'config.json: mounts[1].options[0]: must be a string, got number'],
  ['mount options type', (d) => (d.mounts[1].options = 'ro'), 'config.json: mounts[1].options: must be an array, got string'],

  // --- devices
  ['device type', (d) => (d.linux.devices[0].type = 'x'), 'config.json: linux.devices[0].type: unknown device type "x"'],
  [
    'device path relative',
    (d) => (d.linux.devices[0].path = 'dev/fuse'),
    'config.json: linux.devices[0].path: must be an absolute path, got "dev/fuse"',
  ],
  ['device major missing', (d) => delete d.linux.devices[0].major, 'config.json: linux.devices[0].major: is required for device type "c"'],
  [
    'device fileMode range',
    (d) => (d.linux.devices[0].fileMode = 0o10000),
    'config.json: linux.devices[0].fileMode: must be between 0 and 4095, got 4096',
  ],
  ['device path missing', (d) => delete d.linux.devices[1].path, 'config.json: linux.devices[1].path: is required'],

  // --- sysctl, masked/readonly paths, propagation, seccomp
  [
    'sysctl value type',
    (d) => (d.linux.sysctl['net.ipv4.ip_forward'] = 1),
    'config.json: linux.sysctl["net.ipv4.ip_forward"]: must be a string, got number',
  ],
  ['sysctl type', (d) => (d.linux.sysctl = ['a=b']), 'config.json: linux.sysctl: must be an object, got array'],
  ['maskedPaths relative', (d) => (d.linux.maskedPaths[1] = 'proc/kcore'), 'config.json: linux.maskedPaths[1]: must be an absolute path, got "proc/kcore"'],
  ['readonlyPaths element', (d) => (d.linux.readonlyPaths = [{}]), 'config.json: linux.readonlyPaths[0]: must be a string, got object'],
  [
    'rootfsPropagation',
    (d) => (d.linux.rootfsPropagation = 'bogus'),
    'config.json: linux.rootfsPropagation: unknown rootfs propagation "bogus"',
  ],
  ['seccomp type', (d) => (d.linux.seccomp = []), 'config.json: linux.seccomp: must be an object, got array'],
  ['linux type', (d) => (d.linux = true), 'config.json: linux: must be an object, got boolean'],

  // --- hooks
  ['hook path relative', (d) => (d.hooks.prestart[0].path = 'bin/hook'), 'config.json: hooks.prestart[0].path: must be an absolute path, got "bin/hook"'],
  ['hook path missing', (d) => (d.hooks.poststop = [{ args: [] }]), 'config.json: hooks.poststop[0].path: is required'],
  ['hook timeout zero', (d) => (d.hooks.prestart[0].timeout = 0), 'config.json: hooks.prestart[0].timeout: must be greater than zero, got 0'],
  ['hook args element', (d) => (d.hooks.prestart[0].args = [true]), 'config.json: hooks.prestart[0].args[0]: must be a string, got boolean'],
  ['hook env type', (d) => (d.hooks.prestart[0].env = 'A=b'), 'config.json: hooks.prestart[0].env: must be an array, got string'],
  ['hooks list type', (d) => (d.hooks.createRuntime = {}), 'config.json: hooks.createRuntime: must be an array, got object'],

  // --- annotations
  [
    'annotation value type',
    (d) => (d.annotations['com.example.n'] = 1),
    'config.json: annotations["com.example.n"]: must be a string, got number',
  ],
  ['annotation empty key', (d) => (d.annotations[''] = 'x'), 'config.json: annotations[""]: annotation keys must not be empty'],
  ['annotations type', (d) => (d.annotations = ['a']), 'config.json: annotations: must be an object, got array'],

  // --- linux.resources (types only)
  [
    'device rule access',
    (d) => (d.linux.resources.devices[0].access = 'rwx'),
    'config.json: linux.resources.devices[0].access: must contain only the characters "rwm", got "rwx"',
  ],
  ['device rule allow missing', (d) => delete d.linux.resources.devices[1].allow, 'config.json: linux.resources.devices[1].allow: is required'],
  ['device rule allow type', (d) => (d.linux.resources.devices[0].allow = 'no'), 'config.json: linux.resources.devices[0].allow: must be a boolean, got string'],
  [
    'device rule type',
    (d) => (d.linux.resources.devices[1].type = 'p'),
    'config.json: linux.resources.devices[1].type: unknown device rule type "p"',
  ],
  ['memory.limit too large', (d) => (d.linux.resources.memory.limit = 1e30), 'config.json: linux.resources.memory.limit: must fit in a 64-bit integer, got 1e+30'],
  ['memory.limit fractional', (d) => (d.linux.resources.memory.limit = 1.5), 'config.json: linux.resources.memory.limit: must be an integer, got 1.5'],
  ['pids.limit type', (d) => (d.linux.resources.pids.limit = '10'), 'config.json: linux.resources.pids.limit: must be an integer, got string'],
  ['cpu.cpus type', (d) => (d.linux.resources.cpu.cpus = 3), 'config.json: linux.resources.cpu.cpus: must be a string, got number'],
  ['cpu.shares negative', (d) => (d.linux.resources.cpu.shares = -2), 'config.json: linux.resources.cpu.shares: must be a non-negative integer, got -2'],
  [
    'unified value type',
    (d) => (d.linux.resources.unified['memory.max'] = 1),
    'config.json: linux.resources.unified["memory.max"]: must be a string, got number',
  ],
  [
    'hugepage limit missing',
    (d) => (d.linux.resources.hugepageLimits = [{ pageSize: '2MB' }]),
    'config.json: linux.resources.hugepageLimits[0].limit: is required',
  ],
  ['resources type', (d) => (d.linux.resources = 'none'), 'config.json: linux.resources: must be an object, got string'],
];

t.test('invalid configs: exact messages', async (t) => {
  t.ok(bad.length >= 40, `${bad.length} cases`);
  for (const [name, mutate, message] of bad) {
    const doc = base();
    mutate(doc);
    t.throws(() => validateConfig(doc), { name: 'ConfigError', message }, name);
    t.notMatch(message, /\n/, `${name}: one line`);
  }
});

t.test('ConfigError carries file, path and problem', async (t) => {
  const doc = base();
  doc.linux.namespaces[2].type = 'foo';
  try {
    validateConfig(doc, '/bundle/config.json');
    t.fail('should throw');
  } catch (e) {
    t.ok(e instanceof ConfigError);
    const ce = e as ConfigError;
    t.equal(ce.file, '/bundle/config.json');
    t.equal(ce.path, 'linux.namespaces[2].type');
    t.equal(ce.problem, 'unknown namespace "foo"');
    t.equal(ce.message, '/bundle/config.json: linux.namespaces[2].type: unknown namespace "foo"');
  }
});

t.test('the first problem is reported', async (t) => {
  const doc = base();
  doc.process.cwd = 'rel';
  doc.linux.namespaces[0].type = 'bogus';
  t.throws(() => validateConfig(doc), { message: 'config.json: process.cwd: must be an absolute path, got "rel"' });
});

t.test('invalid JSON and non-object documents', async (t) => {
  const cases = ['{\n  "ociVersion": "1.0.0"\n  "root": {}\n}', '', '{"a": 1,}', 'nope\nnope', '[1, 2'];
  for (const text of cases) {
    t.throws(() => parseConfig(text), { name: 'ConfigError', message: /^config\.json: invalid JSON: [^\n]+$/ }, JSON.stringify(text));
  }
  t.throws(() => parseConfig('{\n  "ociVersion": "1.0.0"\n  "root": {}\n}'), { message: /line 3 column 3$/ }, 'position → line:column');
  t.throws(() => parseConfig('{', 'x/config.json'), { message: /^x\/config\.json: invalid JSON: / }, 'file name used');

  t.throws(() => parseConfig('[]'), { message: 'config.json: must be a JSON object, got array' });
  t.throws(() => parseConfig('null'), { message: 'config.json: must be a JSON object, got null' });
  t.throws(() => parseConfig('"config"'), { message: 'config.json: must be a JSON object, got string' });
  t.throws(() => validateConfig(42), { message: 'config.json: must be a JSON object, got number' });
  t.throws(() => parseConfig('{"ociVersion": "1", "root": {"path": "r"}, "process": {"user": {"uid": 1e400, "gid": 0}, "args": ["sh"], "cwd": "/"}}'), {
    message: 'config.json: process.user.uid: must be a finite number, got Infinity',
  });
});

t.test('NUL in args via JSON text', async (t) => {
  const doc = base();
  const text = JSON.stringify(doc).replace('"args":["sh"]', '"args":["sh","-c","echo\\u0000hi"]');
  t.throws(() => parseConfig(text), { message: 'config.json: process.args[2]: must not contain a NUL byte, got "echo\\u0000hi"' });
});

t.test('deep nesting in unknown keys does not overflow the stack', async (t) => {
  const depth = 10000;
  const deep = '{"x":'.repeat(depth) + '1' + '}'.repeat(depth);
  const doc = base();
  const text = JSON.stringify(doc).replace(/^\{/, `{"deep":${deep},"deepArr":${'['.repeat(depth)}${']'.repeat(depth)},`);
  let spec: Doc;
  t.doesNotThrow(() => (spec = parseConfig(text)));
  let node = spec.deep;
  let n = 0;
  while (typeof node === 'object') {
    node = node.x;
    n++;
  }
  t.equal(n, depth, 'deep value preserved');

  // Deep values under known keys that the validator only type-checks.
  const d2 = base();
  d2.linux.seccomp = JSON.parse(deep);
  d2.process.vendor = JSON.parse(deep);
  t.doesNotThrow(() => validateConfig(d2));
  const d3 = base();
  d3.annotations.deep = JSON.parse(deep);
  t.throws(() => validateConfig(d3), { name: 'ConfigError', message: 'config.json: annotations.deep: must be a string, got object' });
});

t.test('process.json', async (t) => {
  const proc = base().process;
  proc.extra = { kept: true };
  const p = parseProcess(JSON.stringify(proc));
  t.same(p, proc, 'valid process.json returned intact');

  t.throws(() => parseProcess(JSON.stringify({ ...proc, cwd: 'tmp' })), { message: 'process.json: cwd: must be an absolute path, got "tmp"' });
  t.throws(() => parseProcess(JSON.stringify({ ...proc, env: ['X'] })), { message: 'process.json: env[0]: must be of the form KEY=VALUE, got "X"' });
  t.throws(() => parseProcess(JSON.stringify({ ...proc, args: [] })), { message: 'process.json: args: must not be empty' });
  t.throws(() => parseProcess('[]'), { message: 'process.json: must be a JSON object, got array' });
  t.throws(() => parseProcess('{'), { message: /^process\.json: invalid JSON: / });
  t.throws(() => validateProcess({ ...proc, user: { uid: 0 } }, 'p.json'), { message: 'p.json: user.gid: is required' });
  t.throws(() => validateProcess({ ...proc, capabilities: { permitted: ['CAP_X'] } }, 'config.json', 'process'), {
    message: 'config.json: process.capabilities.permitted[0]: unknown capability "CAP_X"',
  });
  t.throws(() => validateProcess(null, 'config.json', 'process'), { message: 'config.json: process: must be an object, got null' });
});
