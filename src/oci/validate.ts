/**
 * Parsing and strict validation of config.json (and exec's process.json).
 *
 * The policy: reject what the OCI runtime spec says a runtime MUST reject,
 * what runc rejects, and what contradicts itself (e.g. a hostname without a
 * UTS namespace); accept and preserve everything unknown, because the spec
 * requires runtimes to ignore unknown properties. The validated document is
 * returned as-is (same object), so extra keys and annotations survive.
 *
 * The code is table-driven: a `Check` is a function `(value, path) => void`
 * that throws a ConfigError naming the JSON path of the first problem.
 * Small combinators (str, int, arrayOf, shape, ...) build the checks for each
 * object in the spec; cross-field rules (namespaces vs. hostname, mappings,
 * rlimit duplicates, ...) are written out separately after the shapes pass.
 *
 * Validation never recurses into unknown keys, so arbitrarily deep or large
 * documents cannot overflow the stack here (JSON.parse itself is iterative).
 */
import { ConfigError } from '../errors.js';
import { validateSeccomp } from './seccomp-validate.js';
import type { NamespaceType, Process, Spec } from './types.js';

// ---------------------------------------------------------------------------
// Constant tables used elsewhere in the runtime
// ---------------------------------------------------------------------------

/** Linux capability names → capability numbers (linux/capability.h). */
export const CAPABILITIES: Readonly<Record<string, number>> = Object.freeze({
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_DAC_READ_SEARCH: 2,
  CAP_FOWNER: 3,
  CAP_FSETID: 4,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
  CAP_SETPCAP: 8,
  CAP_LINUX_IMMUTABLE: 9,
  CAP_NET_BIND_SERVICE: 10,
  CAP_NET_BROADCAST: 11,
  CAP_NET_ADMIN: 12,
  CAP_NET_RAW: 13,
  CAP_IPC_LOCK: 14,
  CAP_IPC_OWNER: 15,
  CAP_SYS_MODULE: 16,
  CAP_SYS_RAWIO: 17,
  CAP_SYS_CHROOT: 18,
  CAP_SYS_PTRACE: 19,
  CAP_SYS_PACCT: 20,
  CAP_SYS_ADMIN: 21,
  CAP_SYS_BOOT: 22,
  CAP_SYS_NICE: 23,
  CAP_SYS_RESOURCE: 24,
  CAP_SYS_TIME: 25,
  CAP_SYS_TTY_CONFIG: 26,
  CAP_MKNOD: 27,
  CAP_LEASE: 28,
  CAP_AUDIT_WRITE: 29,
  CAP_AUDIT_CONTROL: 30,
  CAP_SETFCAP: 31,
  CAP_MAC_OVERRIDE: 32,
  CAP_MAC_ADMIN: 33,
  CAP_SYSLOG: 34,
  CAP_WAKE_ALARM: 35,
  CAP_BLOCK_SUSPEND: 36,
  CAP_AUDIT_READ: 37,
  CAP_PERFMON: 38,
  CAP_BPF: 39,
  CAP_CHECKPOINT_RESTORE: 40,
});

/** RLIMIT_* names → Linux resource numbers (asm-generic/resource.h). */
export const RLIMITS: Readonly<Record<string, number>> = Object.freeze({
  RLIMIT_CPU: 0,
  RLIMIT_FSIZE: 1,
  RLIMIT_DATA: 2,
  RLIMIT_STACK: 3,
  RLIMIT_CORE: 4,
  RLIMIT_RSS: 5,
  RLIMIT_NPROC: 6,
  RLIMIT_NOFILE: 7,
  RLIMIT_MEMLOCK: 8,
  RLIMIT_AS: 9,
  RLIMIT_LOCKS: 10,
  RLIMIT_SIGPENDING: 11,
  RLIMIT_MSGQUEUE: 12,
  RLIMIT_NICE: 13,
  RLIMIT_RTPRIO: 14,
  RLIMIT_RTTIME: 15,
});

/** The namespace types the spec defines for Linux. */
export const NAMESPACE_TYPES: readonly NamespaceType[] = Object.freeze([
  'pid',
  'network',
  'mount',
  'ipc',
  'uts',
  'user',
  'cgroup',
  'time',
] as const);

export const ROOTFS_PROPAGATIONS: readonly string[] = Object.freeze([
  'shared',
  'slave',
  'private',
  'unbindable',
  'rshared',
  'rslave',
  'rprivate',
  'runbindable',
]);

export const HOOK_NAMES = Object.freeze([
  'prestart',
  'createRuntime',
  'createContainer',
  'startContainer',
  'poststart',
  'poststop',
] as const);

export const CAPABILITY_SETS = Object.freeze(['bounding', 'effective', 'inheritable', 'permitted', 'ambient'] as const);

/** HOST_NAME_MAX on Linux; sethostname(2)/setdomainname(2) fail with EINVAL above it. */
const HOST_NAME_MAX = 64;

const UINT32_MAX = 2 ** 32 - 1;
// JSON numbers are doubles: 2^63-1 and 2^64-1 parse to 2^63 and 2^64, so the
// bounds are inclusive of those to accept e.g. RLIM_INFINITY written in full.
const INT64_MAX = 2 ** 63;
const UINT64_MAX = 2 ** 64;

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/** Parses and validates a config.json text. Throws ConfigError on the first problem. */
export function parseConfig(text: string, file = 'config.json'): Spec {
  return validateConfig(parseJSON(text, file), file);
}

/**
 * Validates a parsed config.json for `create`/`run`: besides the shape rules,
 * `root` and `process` are required here (the spec makes them optional only
 * for configs that are not used to start a container).
 */
export function validateConfig(doc: unknown, file = 'config.json'): Spec {
  return withFile(file, () => {
    configShape(topLevel(doc), '');
    crossChecks(doc as Spec);
    return doc as Spec;
  });
}

/** Parses and validates a process.json text (`tsrun exec --process`). */
export function parseProcess(text: string, file = 'process.json'): Process {
  return validateProcess(parseJSON(text, file), file);
}

/**
 * Validates a process object with the same rules as config.json's `process`.
 * `pathPrefix` is prepended to error paths (`'process'` when validating the
 * process inside a config, `''` for a standalone process.json).
 */
export function validateProcess(doc: unknown, file = 'process.json', pathPrefix = ''): Process {
  return withFile(file, () => {
    if (pathPrefix === '') topLevel(doc);
    processCheck(doc, pathPrefix);
    return doc as Process;
  });
}

// ---------------------------------------------------------------------------
// Error plumbing
// ---------------------------------------------------------------------------

/**
 * Internal failure carrying the JSON path; turned into a ConfigError (which
 * needs the file name) at the API boundary so the checkers stay file-agnostic.
 */
class Invalid extends Error {
  constructor(readonly path: string, readonly problem: string) {
    super(problem);
  }
}

function fail(path: string, problem: string): never {
  throw new Invalid(path, problem);
}

/** Runs a validation, turning the first Invalid into a ConfigError for `file`. */
function withFile<T>(file: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof Invalid) throw new ConfigError(file, e.path, e.problem);
    throw e;
  }
}

function parseJSON(text: string, file: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new ConfigError(file, '', `invalid JSON: ${shortReason(msg, text)}`);
  }
}

/**
 * V8's JSON errors may embed a snippet of the input (with newlines); keep the
 * reason to one short line and translate "position N" into line:column.
 */
function shortReason(msg: string, text: string): string {
  let reason = msg.replace(/\s+/g, ' ').trim();
  // `Unexpected token 'x', "...snippet..." is not valid JSON` → drop the snippet.
  reason = reason.replace(/^(Unexpected token .*?), ".*" is not valid JSON$/, '$1');
  const m = / in JSON at position (\d+)/.exec(reason);
  if (m) {
    const pos = Number(m[1]);
    const before = text.slice(0, pos);
    const line = before.split('\n').length;
    const col = pos - before.lastIndexOf('\n');
    reason = reason.replace(m[0], ` at line ${line} column ${col}`);
  }
  return truncate(reason, 120);
}

function truncate(s: string, max: number): string {
  return s.length > max ? s.slice(0, max - 3) + '...' : s;
}

/**
 * Quotes an offending string value for a message: JSON-escaped (so it stays
 * one line and NULs are visible) and truncated. Only called after the value
 * was checked to be a string.
 */
function quote(v: unknown): string {
  return JSON.stringify(truncate(v as string, 60));
}

/** The JSON type name of a value, for "must be X, got Y" messages. */
function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

/**
 * Appends an object key to a JSON path. Keys that are not identifiers (sysctl
 * names, annotation keys like "org.opencontainers.image.os") are bracketed so
 * the path stays unambiguous: `linux.sysctl["net.ipv4.ip_forward"]`.
 */
function join(path: string, key: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(key)) return `${path}[${JSON.stringify(truncate(key, 60))}]`;
  return path ? `${path}.${key}` : key;
}

function index(path: string, i: number): string {
  return `${path}[${i}]`;
}

// ---------------------------------------------------------------------------
// Checker combinators
// ---------------------------------------------------------------------------

type Check = (v: unknown, path: string) => void;
type Obj = Record<string, unknown>;

const has = (o: Obj, key: string): boolean => Object.prototype.hasOwnProperty.call(o, key) && o[key] !== undefined;

function optional(o: Obj, key: string, path: string, check: Check): void {
  if (has(o, key)) check(o[key], join(path, key));
}

function topLevel(doc: unknown): Obj {
  if (!isObj(doc)) fail('', `must be a JSON object, got ${kind(doc)}`);
  return doc;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const obj: Check = (v, path) => {
  if (!isObj(v)) fail(path, `must be an object, got ${kind(v)}`);
};

const str: Check = (v, path) => {
  if (typeof v !== 'string') fail(path, `must be a string, got ${kind(v)}`);
};

const bool: Check = (v, path) => {
  if (typeof v !== 'boolean') fail(path, `must be a boolean, got ${kind(v)}`);
};

/**
 * A string handed to the kernel (path, argv, envp, hostname): C strings end
 * at NUL, so an embedded NUL would silently truncate — reject it instead.
 */
const kstr: Check = (v, path) => {
  str(v, path);
  if ((v as string).includes('\0')) fail(path, `must not contain a NUL byte, got ${quote(v)}`);
};

const nonEmptyKstr: Check = (v, path) => {
  kstr(v, path);
  if (v === '') fail(path, 'must not be empty');
};

/** An absolute path (spec MUST for mount destinations, ns paths, hook paths, ...). */
const absPath: Check = (v, path) => {
  kstr(v, path);
  if (!(v as string).startsWith('/')) fail(path, `must be an absolute path, got ${quote(v)}`);
};

/** An integer in [min, max]; JSON numbers are doubles, so check finiteness and integrality. */
function int(min: number, max: number): Check {
  return (v, path) => {
    if (typeof v !== 'number') fail(path, `must be an integer, got ${kind(v)}`);
    if (!Number.isFinite(v)) fail(path, `must be a finite number, got ${v}`);
    if (!Number.isInteger(v)) fail(path, `must be an integer, got ${v}`);
    if (v >= min && v <= max) return;
    // 64-bit bounds print as unhelpful doubles (18446744073709552000), so
    // those fields get a worded range instead.
    if (max >= Number.MAX_SAFE_INTEGER) {
      fail(path, v < min && min === 0 ? `must be a non-negative integer, got ${v}` : `must fit in a 64-bit integer, got ${v}`);
    }
    if (v < min && min === 1) fail(path, `must be greater than zero, got ${v}`);
    fail(path, `must be between ${min} and ${max}, got ${v}`);
  };
}

const uint32 = int(0, UINT32_MAX);
const int64 = int(-INT64_MAX, INT64_MAX);
const uint64 = int(0, UINT64_MAX);
const uint16 = int(0, 0xffff);

function oneOf(values: readonly string[], what: string): Check {
  return (v, path) => {
    str(v, path);
    if (!values.includes(v as string)) fail(path, `unknown ${what} ${quote(v)}`);
  };
}

function arrayOf(check: Check): Check {
  return (v, path) => {
    if (!Array.isArray(v)) fail(path, `must be an array, got ${kind(v)}`);
    v.forEach((el, i) => check(el, index(path, i)));
  };
}

/** An object whose every value (and key, via keyCheck) passes `check`, e.g. sysctl, annotations. */
function mapOf(check: Check, keyCheck?: (key: string, path: string) => void): Check {
  return (v, path) => {
    obj(v, path);
    for (const [key, val] of Object.entries(v as Obj)) {
      const p = join(path, key);
      keyCheck?.(key, p);
      check(val, p);
    }
  };
}

/**
 * An object with known fields: `fields` maps each key to its checker, and
 * keys listed in `req` must be present. Unknown keys are not looked at.
 * Fields are checked in table order, so the "first problem" is deterministic.
 */
function shape(fields: Record<string, Check>, req: readonly string[] = []): Check {
  return (v, path) => {
    obj(v, path);
    const o = v as Obj;
    for (const key of req) if (!has(o, key)) fail(join(path, key), 'is required');
    for (const [key, check] of Object.entries(fields)) optional(o, key, path, check);
  };
}

/** Runs several checks on the same value, in order. */
function all(...checks: Check[]): Check {
  return (v, path) => checks.forEach((c) => c(v, path));
}

const strings = arrayOf(str);
const kstrings = arrayOf(kstr);

// ---------------------------------------------------------------------------
// root, mounts, hooks, annotations
// ---------------------------------------------------------------------------

// root.path may be relative (to the bundle), but it is REQUIRED and non-empty.
const rootCheck = shape({ path: nonEmptyKstr, readonly: bool }, ['path']);

const idMapping = all(shape({ containerID: uint32, hostID: uint32, size: uint32 }, ['containerID', 'hostID', 'size']), (v, path) => {
  // A zero-length mapping is rejected by the kernel's uid_map writer (EINVAL).
  if ((v as { size: number }).size < 1) fail(join(path, 'size'), 'must be at least 1, got 0');
});
const idMappings = arrayOf(idMapping);

const hostnameCheck: Check = (v, path) => {
  kstr(v, path);
  if ((v as string).length > HOST_NAME_MAX) fail(path, `must be at most ${HOST_NAME_MAX} characters, got ${quote(v)}`);
};

// The spec says destination MUST be absolute. runc 1.1 merely warns about
// relative destinations and resolves them against "/"; we refuse instead,
// since the result silently depends on the runtime.
const mountCheck = shape(
  {
    destination: absPath,
    type: kstr,
    source: kstr,
    // Unknown options are not rejected here: plan compilation passes them to
    // the filesystem as mount data.
    options: kstrings,
    uidMappings: idMappings,
    gidMappings: idMappings,
  },
  ['destination'],
);

// Hook timeout: the spec says it MUST be greater than zero.
const hookCheck = shape(
  { path: absPath, args: kstrings, env: kstrings, timeout: int(1, UINT32_MAX) },
  ['path'],
);
const hooksCheck = shape(Object.fromEntries(HOOK_NAMES.map((name) => [name, arrayOf(hookCheck)])));

// Annotation keys MUST NOT be empty and values MUST be strings (spec).
const annotationsCheck = mapOf(str, (key, path) => {
  if (key === '') fail(path, 'annotation keys must not be empty');
});

// ---------------------------------------------------------------------------
// process
// ---------------------------------------------------------------------------

const userCheck = shape(
  { uid: uint32, gid: uint32, umask: uint32, additionalGids: arrayOf(uint32), username: str },
  ['uid', 'gid'],
);

// runc rejects env entries without '=' ("env ... must be of the form KEY=VALUE"):
// execve would pass them through, but nothing could ever look them up.
const envEntry: Check = (v, path) => {
  kstr(v, path);
  if (!(v as string).includes('=')) fail(path, `must be of the form KEY=VALUE, got ${quote(v)}`);
};

const capabilitiesCheck = shape(
  Object.fromEntries(
    CAPABILITY_SETS.map((set) => [
      set,
      arrayOf((v, path) => {
        str(v, path);
        if (!Object.prototype.hasOwnProperty.call(CAPABILITIES, v as string)) fail(path, `unknown capability ${quote(v)}`);
      }),
    ]),
  ),
);

const rlimitCheck = all(
  shape({ type: oneOf(Object.keys(RLIMITS), 'rlimit'), soft: uint64, hard: uint64 }, ['type', 'soft', 'hard']),
  (v, path) => {
    // setrlimit(2) fails with EINVAL when soft > hard; say so up front.
    const { soft, hard } = v as { soft: number; hard: number };
    if (soft > hard) fail(path, `soft limit ${soft} exceeds hard limit ${hard}`);
  },
);

const rlimitsCheck = all(arrayOf(rlimitCheck), (v, path) => {
  // The spec: "If a type is specified more than once, the runtime MUST generate an error".
  const seen = new Set<string>();
  (v as { type: string }[]).forEach((r, i) => {
    if (seen.has(r.type)) fail(join(index(path, i), 'type'), `duplicate rlimit ${quote(r.type)}`);
    seen.add(r.type);
  });
});

// ioprio_set(2) classes; the spec lists exactly these, and runc checks 0..7.
const ioPriorityCheck = shape(
  { class: oneOf(['IOPRIO_CLASS_RT', 'IOPRIO_CLASS_BE', 'IOPRIO_CLASS_IDLE'], 'I/O priority class'), priority: int(0, 7) },
  ['class'],
);

const SCHED_POLICIES = ['SCHED_OTHER', 'SCHED_FIFO', 'SCHED_RR', 'SCHED_BATCH', 'SCHED_ISO', 'SCHED_IDLE', 'SCHED_DEADLINE'];
const SCHED_FLAGS = [
  'SCHED_FLAG_RESET_ON_FORK',
  'SCHED_FLAG_RECLAIM',
  'SCHED_FLAG_DL_OVERRUN',
  'SCHED_FLAG_KEEP_POLICY',
  'SCHED_FLAG_KEEP_PARAMS',
  'SCHED_FLAG_UTIL_CLAMP_MIN',
  'SCHED_FLAG_UTIL_CLAMP_MAX',
];
const schedulerCheck = shape(
  {
    policy: oneOf(SCHED_POLICIES, 'scheduler policy'),
    nice: int(-20, 19),
    priority: int(-(2 ** 31), 2 ** 31 - 1),
    flags: arrayOf(oneOf(SCHED_FLAGS, 'scheduler flag')),
    runtime: uint64,
    deadline: uint64,
    period: uint64,
  },
  ['policy'],
);

const processShape = shape(
  {
    terminal: bool,
    consoleSize: shape({ height: uint32, width: uint32 }, ['height', 'width']),
    user: userCheck,
    args: kstrings,
    commandLine: str,
    env: arrayOf(envEntry),
    cwd: absPath, // spec: cwd MUST be an absolute path
    capabilities: capabilitiesCheck,
    rlimits: rlimitsCheck,
    noNewPrivileges: bool,
    apparmorProfile: kstr, // written to /proc/self/attr
    oomScoreAdj: int(-1000, 1000), // the range /proc/<pid>/oom_score_adj accepts
    selinuxLabel: kstr,
    ioPriority: ioPriorityCheck,
    scheduler: schedulerCheck,
    execCPUAffinity: shape({ initial: str, final: str }),
  },
  ['user', 'cwd'],
);

function processCheck(v: unknown, path: string): void {
  obj(v, path);
  const o = v as Obj;
  // args is what gets exec'd: required and non-empty unless the (Windows)
  // commandLine form is used. Check presence first so the message is precise.
  if (!has(o, 'args') && !has(o, 'commandLine')) fail(join(path, 'args'), 'is required');
  processShape(v, path);
  if (!has(o, 'commandLine') && (o.args as unknown[]).length === 0) fail(join(path, 'args'), 'must not be empty');
}

// ---------------------------------------------------------------------------
// linux
// ---------------------------------------------------------------------------

const namespaceCheck = shape({ type: oneOf(NAMESPACE_TYPES, 'namespace'), path: absPath }, ['type']);

const namespacesCheck = all(arrayOf(namespaceCheck), (v, path) => {
  // The spec: duplicated namespace types MUST cause an error.
  const seen = new Set<string>();
  (v as { type: string }[]).forEach((ns, i) => {
    if (seen.has(ns.type)) fail(index(path, i), `duplicate namespace ${quote(ns.type)}`);
    seen.add(ns.type);
  });
});

const timeOffsetCheck = shape({ secs: int64, nanosecs: uint32 });

const deviceCheck = all(
  shape(
    {
      type: oneOf(['c', 'b', 'u', 'p'], 'device type'),
      path: absPath,
      major: int64,
      minor: int64,
      fileMode: int(0, 0o7777),
      uid: uint32,
      gid: uint32,
    },
    ['type', 'path'],
  ),
  (v, path) => {
    // mknod(2) needs a device number for character/block devices (spec: REQUIRED unless type is p).
    const d = v as Obj;
    if (d.type !== 'p') {
      for (const key of ['major', 'minor']) if (!has(d, key)) fail(join(path, key), `is required for device type ${quote(d.type)}`);
    }
  },
);

// --- linux.resources: types only; interpretation belongs to the cgroup code.

const deviceRuleCheck = shape(
  {
    allow: bool,
    type: oneOf(['a', 'c', 'b'], 'device rule type'),
    major: int64,
    minor: int64,
    access: (v, path) => {
      str(v, path);
      if (!/^[rwm]*$/.test(v as string)) fail(path, `must contain only the characters "rwm", got ${quote(v)}`);
    },
  },
  ['allow'],
);

const weightDevice = shape({ major: int64, minor: int64, weight: uint16, leafWeight: uint16 }, ['major', 'minor']);
const throttleDevice = shape({ major: int64, minor: int64, rate: uint64 }, ['major', 'minor', 'rate']);

const resourcesCheck = shape({
  devices: arrayOf(deviceRuleCheck),
  memory: shape({
    limit: int64,
    reservation: int64,
    swap: int64,
    kernel: int64,
    kernelTCP: int64,
    swappiness: uint64,
    disableOOMKiller: bool,
    useHierarchy: bool,
    checkBeforeUpdate: bool,
  }),
  cpu: shape({
    shares: uint64,
    quota: int64,
    burst: uint64,
    period: uint64,
    realtimeRuntime: int64,
    realtimePeriod: uint64,
    cpus: str,
    mems: str,
    idle: int64,
  }),
  pids: shape({ limit: int64 }, ['limit']),
  blockIO: shape({
    weight: uint16,
    leafWeight: uint16,
    weightDevice: arrayOf(weightDevice),
    throttleReadBpsDevice: arrayOf(throttleDevice),
    throttleWriteBpsDevice: arrayOf(throttleDevice),
    throttleReadIOPSDevice: arrayOf(throttleDevice),
    throttleWriteIOPSDevice: arrayOf(throttleDevice),
  }),
  hugepageLimits: arrayOf(shape({ pageSize: str, limit: uint64 }, ['pageSize', 'limit'])),
  network: shape({ classID: uint32, priorities: arrayOf(shape({ name: str, priority: uint32 }, ['name', 'priority'])) }),
  rdma: mapOf(shape({ hcaHandles: uint32, hcaObjects: uint32 })),
  unified: mapOf(str),
});

// rootfsPropagation: "" means unset; anything else must be a mount propagation type.
const rootfsPropagationCheck: Check = (v, path) => {
  str(v, path);
  if (v !== '' && !ROOTFS_PROPAGATIONS.includes(v as string)) fail(path, `unknown rootfs propagation ${quote(v)}`);
};

const linuxCheck = shape({
  namespaces: namespacesCheck,
  uidMappings: idMappings,
  gidMappings: idMappings,
  timeOffsets: shape({ monotonic: timeOffsetCheck, boottime: timeOffsetCheck }),
  devices: arrayOf(deviceCheck),
  cgroupsPath: kstr,
  resources: resourcesCheck,
  rootfsPropagation: rootfsPropagationCheck,
  // Shape and names here (seccomp-validate.ts); host support when the filter is built.
  seccomp: (v, path) => validateSeccomp(v, path, fail),
  sysctl: mapOf(kstr, (key, path) => kstr(key, path)),
  maskedPaths: arrayOf(absPath),
  readonlyPaths: arrayOf(absPath),
  mountLabel: kstr,
  intelRdt: obj,
  personality: obj,
});

// ---------------------------------------------------------------------------
// The whole document
// ---------------------------------------------------------------------------

// For create/run, root and process are required (the spec leaves them
// optional only for configs that never start a container).
const configShape = shape(
  {
    ociVersion: str,
    root: rootCheck,
    process: processCheck,
    hostname: hostnameCheck,
    domainname: hostnameCheck,
    mounts: arrayOf(mountCheck),
    hooks: hooksCheck,
    annotations: annotationsCheck,
    linux: linuxCheck,
  },
  ['ociVersion', 'root', 'process'],
);

// ---------------------------------------------------------------------------
// Cross-field rules (run after every shape check passed)
// ---------------------------------------------------------------------------

function crossChecks(spec: Spec): void {
  const linux = spec.linux ?? {};
  const namespaces = linux.namespaces ?? [];
  const nsIndex = (type: NamespaceType): number => namespaces.findIndex((ns) => ns.type === type);
  const hasNs = (type: NamespaceType): boolean => nsIndex(type) >= 0;

  // runc: "unable to set hostname without a private UTS namespace" — setting
  // it would otherwise change the host's hostname.
  if (spec.hostname && !hasNs('uts')) {
    fail('hostname', 'requires a uts namespace (unable to set hostname without a private UTS namespace)');
  }
  if (spec.domainname && !hasNs('uts')) {
    fail('domainname', 'requires a uts namespace (unable to set domainname without a private UTS namespace)');
  }

  // ID mappings only make sense for a user namespace; conversely a *new* user
  // namespace without mappings leaves every ID unmapped (runc: "user
  // namespaces enabled, but no uid/gid mappings found").
  const userNs = nsIndex('user');
  for (const key of ['uidMappings', 'gidMappings'] as const) {
    const maps = linux[key] ?? [];
    if (maps.length > 0 && userNs < 0) fail(`linux.${key}`, 'requires a user namespace');
    if (userNs >= 0 && namespaces[userNs].path === undefined && maps.length === 0) {
      fail(`linux.${key}`, 'is required when creating a new user namespace');
    }
  }

  // Clock offsets are written to /proc/self/timens_offsets of a new time namespace.
  if (linux.timeOffsets !== undefined && !hasNs('time')) fail('linux.timeOffsets', 'requires a time namespace');
}
