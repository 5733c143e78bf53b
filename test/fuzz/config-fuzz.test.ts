/**
 * A deterministic mutation fuzzer over config.json and process.json.
 *
 * From a valid document (runc's default config; a container's process),
 * a seeded PRNG makes cases of every kind in turn: wrong types, huge numbers
 * (1e308, 2^64, -1, 1e999, 30-digit integers), missing required fields,
 * unknown keys, 10k-deep nesting, invalid UTF-8 bytes, NUL in strings, empty
 * arrays and objects, duplicate namespaces and keys, strings from a nasty
 * pool, bloated arrays, truncated and garbage files, and combinations.
 *
 *  - unit level (no root): every case through parseConfig/parseProcess:
 *    either a document or a ConfigError/UserError with a one-line message,
 *    never another exception;
 *  - CLI level (root): `bin/tsrun --root TMP create --bundle B fuzzN` with a
 *    real rootfs: a non-zero exit with exactly one stderr line starting
 *    "tsrun: " (never "internal error", never a stack), or a created
 *    container that is then deleted; and nothing left: no state in TMP, no
 *    cgroup directory named like an id, no process, no new mount. The same
 *    for process.json through `tsrun exec --process` into a running
 *    container.
 *
 * FUZZ_CASES (default 150) is the number of CLI config cases (process.json
 * cases: a third of it); FUZZ_UNIT_CASES (default 3000) the unit cases;
 * FUZZ_SEED (default 20261125) the seed; FUZZ_JOBS (default 4) how many CLI
 * cases run at once. A failing case is reported with its number, seed and
 * description; FUZZ_KEEP=DIR writes every failing document there.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ConfigError, UserError } from '../../src/errors.js';
import { defaultSpec } from '../../src/oci/default-spec.js';
import { parseConfig, parseProcess } from '../../src/oci/validate.js';
import * as h from '../../spec/lib/harness.js';

const CLI_CASES = Math.max(0, Number(process.env.FUZZ_CASES ?? 150) | 0);
const PROCESS_CASES = Math.max(0, Math.round(CLI_CASES / 3));
const UNIT_CASES = Math.max(0, Number(process.env.FUZZ_UNIT_CASES ?? 3000) | 0);
const SEED = Number(process.env.FUZZ_SEED ?? 20261125) >>> 0;
const JOBS = Math.max(1, Math.min(16, Number(process.env.FUZZ_JOBS ?? 4) | 0));
const KEEP = process.env.FUZZ_KEEP;
const isRoot = process.getuid?.() === 0;

const BUG_STOPPED_AFTER_CREATE =
  'BUG: create exits 0 but the container is already "stopped": the init fails after it reported READY (native/executor.cc ' +
  'do_wait_start sends MSG_READY, then opens the exec fifo; with process.rlimits RLIMIT_NOFILE soft 0 that open fails ' +
  'with EMFILE and the error goes to a socket nobody reads). runc fails the create: "error closing exec fds: open ' +
  '/proc/self/fd: too many open files"';

t.setTimeout(Math.max(280_000, CLI_CASES * 2_000));

// ---------------------------------------------------------------------------
// The PRNG and the mutation engine

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let x = this.s;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };
type Key = string | number;
type JPath = Key[];

const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every node's path (breadth first, bounded). */
function allPaths(doc: Json, limit = 20_000): JPath[] {
  const out: JPath[] = [[]];
  const queue: [Json, JPath][] = [[doc, []]];
  while (queue.length && out.length < limit) {
    const [v, p] = queue.shift()!;
    const children: [Key, Json][] = Array.isArray(v) ? v.map((c, i) => [i, c]) : isObj(v) ? Object.entries(v) : [];
    for (const [k, c] of children) {
      const cp = [...p, k];
      out.push(cp);
      queue.push([c, cp]);
    }
  }
  return out;
}

function getAt(doc: Json, p: JPath): Json | undefined {
  let v: Json | undefined = doc;
  for (const k of p) {
    if (Array.isArray(v) && typeof k === 'number') v = v[k];
    else if (isObj(v) && typeof k === 'string') v = v[k];
    else return undefined;
  }
  return v;
}

/** Sets the value at `p` (the root: returns the new root). */
function setAt(doc: Json, p: JPath, value: Json): Json {
  if (!p.length) return value;
  const parent = getAt(doc, p.slice(0, -1));
  const k = p[p.length - 1]!;
  if (Array.isArray(parent) && typeof k === 'number') parent[k] = value;
  else if (isObj(parent) && typeof k === 'string') parent[k] = value;
  return doc;
}

function deleteAt(doc: Json, p: JPath): void {
  const parent = getAt(doc, p.slice(0, -1));
  const k = p[p.length - 1]!;
  if (Array.isArray(parent) && typeof k === 'number') parent.splice(k, 1);
  else if (isObj(parent) && typeof k === 'string') delete parent[k];
}

const showPath = (p: JPath) => (p.length ? p.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('').replace(/^\./, '') : '(root)');

/** A document being mutated: the JSON value, raw byte fragments for placeholders, and whole-file transforms. */
interface Draft {
  doc: Json;
  raw: Map<string, Buffer>;
  post: ((b: Buffer) => Buffer)[];
  desc: string[];
}

let placeholderSeq = 0;
function rawValue(d: Draft, bytes: Buffer | string): string {
  const ph = `__FUZZ_RAW_${++placeholderSeq}__`;
  d.raw.set(ph, Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'utf8'));
  return ph;
}

function render(d: Draft): Buffer {
  let text: Buffer = Buffer.from(JSON.stringify(d.doc, null, 1), 'utf8');
  for (const [ph, bytes] of d.raw) {
    const needle = Buffer.from(JSON.stringify(ph), 'utf8');
    const parts: Buffer[] = [];
    let from = 0;
    for (let i = 0; i < 64; i++) {
      const at = text.indexOf(needle, from);
      if (at < 0) break;
      parts.push(text.subarray(from, at), bytes);
      from = at + needle.length;
    }
    parts.push(text.subarray(from));
    text = Buffer.concat(parts);
  }
  for (const f of d.post) text = f(text);
  return text;
}

const STRINGS: readonly string[] = [
  '',
  '\u0000',
  'a\u0000b',
  'x'.repeat(5000),
  'ü€😀',
  '\ud800',
  '-1',
  'null',
  '$(id)',
  '%n%s%s',
  ' ',
  '\n',
  'a/../../b',
  '/nonexistent-tsrun-fuzz',
  'nonexistent-tsrun-fuzz',
  'RLIMIT_NOPE',
  'CAP_NOPE',
  '0x10',
  '1e3',
  'true',
];
const NUMBERS: readonly number[] = [1e308, 2 ** 64, -1, -(2 ** 63), 2 ** 53 + 1, 4294967296, 4294967295, 65536, 1.5, -0, 0, 2 ** 31, -(2 ** 31) - 1];
const RAW_NUMBERS: readonly string[] = ['1e999', '-1e999', '1e-999', '123456789012345678901234567890', '-0.0', '1E400', '18446744073709551616', '9223372036854775808'];
const VALUES: readonly Json[] = [null, true, false, 0, -1, 1.5, 1e308, 'str', [], {}, [1, 'a', null], { a: 1 }, [[]], { '': {} }];
const KEYS: readonly string[] = ['fuzzUnknown', '', '\u0000', '__proto__', 'constructor', 'toString', 'x'.repeat(300), 'ü', 'type', 'Args'];
const INVALID_UTF8: readonly number[][] = [[0xff], [0xfe, 0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xe2, 0x82], [0xc0, 0xaf], [0x80]];

function kindOf(v: Json | undefined): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v;
}

type Mutator = (r: Rng, d: Draft) => string;

function pathsWhere(d: Draft, pred: (v: Json | undefined, p: JPath) => boolean): JPath[] {
  return allPaths(d.doc).filter((p) => pred(getAt(d.doc, p), p));
}

const REQUIRED_CONFIG: JPath[] = [
  ['ociVersion'], ['process'], ['root'], ['root', 'path'], ['process', 'args'], ['process', 'user'], ['process', 'user', 'uid'],
  ['process', 'user', 'gid'], ['process', 'cwd'], ['linux', 'namespaces'], ['mounts', 0, 'destination'], ['process', 'rlimits', 0, 'type'],
  ['process', 'rlimits', 0, 'hard'], ['linux', 'resources', 'devices', 0, 'allow'], ['linux', 'namespaces', 0, 'type'], ['linux'],
];
const REQUIRED_PROCESS: JPath[] = [['args'], ['user'], ['user', 'uid'], ['user', 'gid'], ['cwd'], ['rlimits', 0, 'type'], ['capabilities']];

const MUTATORS: Record<string, Mutator> = {
  type(r, d) {
    const p = r.pick(allPaths(d.doc));
    const old = kindOf(getAt(d.doc, p));
    const choices = VALUES.filter((v) => kindOf(v) !== old);
    const v = structuredClone(r.pick(choices));
    d.doc = setAt(d.doc, p, v);
    return `${showPath(p)}: ${old} → ${JSON.stringify(v)}`;
  },
  huge(r, d) {
    const nums = pathsWhere(d, (v) => typeof v === 'number');
    const rest = allPaths(d.doc).slice(1);
    const p = nums.length && r.chance(0.8) ? r.pick(nums) : rest.length ? r.pick(rest) : [];
    if (r.chance(0.5)) {
      const n = r.pick(NUMBERS);
      d.doc = setAt(d.doc, p, n);
      return `${showPath(p)} = ${Object.is(n, -0) ? '-0' : String(n)}`;
    }
    const raw = r.pick(RAW_NUMBERS);
    d.doc = setAt(d.doc, p, rawValue(d, raw));
    return `${showPath(p)} = ${raw} (raw)`;
  },
  missing(r, d) {
    const required = isObj(d.doc) && 'ociVersion' in d.doc ? REQUIRED_CONFIG : REQUIRED_PROCESS;
    const candidates = r.chance(0.6) ? required.filter((p) => getAt(d.doc, p) !== undefined) : [];
    const rest = allPaths(d.doc).slice(1);
    if (!candidates.length && !rest.length) return MUTATORS.type!(r, d);
    const p = candidates.length ? r.pick(candidates) : r.pick(rest);
    deleteAt(d.doc, p);
    return `delete ${showPath(p)}`;
  },
  unknown(r, d) {
    const objs = pathsWhere(d, (v) => isObj(v));
    if (!objs.length) return MUTATORS.type!(r, d);
    const p = r.pick(objs);
    const k = r.pick(KEYS);
    const v = structuredClone(r.pick(VALUES));
    // defineProperty: an own key even for "__proto__" (JSON.stringify writes it as any other)
    Object.defineProperty(getAt(d.doc, p) as Obj, k, { value: v, enumerable: true, writable: true, configurable: true });
    return `${showPath(p)} += ${JSON.stringify(k.length > 20 ? `${k.slice(0, 10)}…(${k.length})` : k)}: ${JSON.stringify(v)}`;
  },
  deep(r, d) {
    const depth = r.pick([10_000, 10_000, 100_000]);
    const p = r.pick(allPaths(d.doc));
    const raw = r.chance(0.5) ? '['.repeat(depth) + ']'.repeat(depth) : '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
    d.doc = setAt(d.doc, p, rawValue(d, raw));
    return `${showPath(p)} = ${raw[0]}… nested ${depth} deep`;
  },
  utf8(r, d) {
    const bytes = Buffer.from(r.pick(INVALID_UTF8));
    const strs = pathsWhere(d, (v) => typeof v === 'string');
    if (!strs.length || r.chance(0.15)) {
      d.post.push((b) => Buffer.concat([bytes, b]));
      return `file prefixed with bytes ${bytes.toString('hex')}`;
    }
    const p = r.pick(strs);
    const s = getAt(d.doc, p) as string;
    const cut = r.int(s.length + 1);
    const json = (x: string) => JSON.stringify(x).slice(1, -1);
    d.doc = setAt(d.doc, p, rawValue(d, Buffer.concat([Buffer.from(`"${json(s.slice(0, cut))}`), bytes, Buffer.from(`${json(s.slice(cut))}"`)])));
    return `${showPath(p)}: invalid UTF-8 ${bytes.toString('hex')} at ${cut}`;
  },
  nul(r, d) {
    const strs = pathsWhere(d, (v) => typeof v === 'string');
    if (!strs.length) return MUTATORS.string!(r, d);
    const p = r.pick(strs);
    const s = getAt(d.doc, p) as string;
    const cut = r.int(s.length + 1);
    d.doc = setAt(d.doc, p, `${s.slice(0, cut)}\u0000${s.slice(cut)}`);
    return `${showPath(p)}: NUL at ${cut}`;
  },
  empty(r, d) {
    const containers = pathsWhere(d, (v) => typeof v === 'object' && v !== null);
    const p = containers.length ? r.pick(containers) : [];
    const v: Json = r.chance(0.5) ? [] : {};
    d.doc = setAt(d.doc, p, v);
    return `${showPath(p)} = ${JSON.stringify(v)}`;
  },
  dupns(r, d) {
    const ns = getAt(d.doc, ['linux', 'namespaces']);
    if (Array.isArray(ns) && ns.length) {
      const e = structuredClone(r.pick(ns));
      ns.splice(r.int(ns.length + 1), 0, e);
      return `linux.namespaces: duplicate ${JSON.stringify(e)}`;
    }
    // process.json: duplicate an rlimit or a capability instead
    const rl = getAt(d.doc, ['rlimits']);
    if (Array.isArray(rl) && rl.length) {
      rl.push(structuredClone(rl[0]!));
      return 'rlimits: duplicate entry';
    }
    return MUTATORS.dupkey!(r, d);
  },
  dupkey(r, d) {
    const keys = isObj(d.doc) ? Object.keys(d.doc) : [];
    const k = keys.length ? r.pick(keys) : 'x';
    const v = JSON.stringify(r.pick(VALUES));
    const first = r.chance(0.5);
    d.post.push((b) => {
      const s = b.toString('latin1');
      const at = first ? s.indexOf('{') + 1 : s.lastIndexOf('}');
      if (at <= 0) return b;
      const ins = first ? `${JSON.stringify(k)}:${v},` : `,${JSON.stringify(k)}:${v}`;
      return Buffer.from(s.slice(0, at) + ins + s.slice(at), 'latin1');
    });
    return `duplicate top-level key ${JSON.stringify(k)}: ${v} (${first ? 'first' : 'last'})`;
  },
  string(r, d) {
    const strs = pathsWhere(d, (v) => typeof v === 'string');
    const p = strs.length ? r.pick(strs) : [];
    const s = r.pick(STRINGS);
    d.doc = setAt(d.doc, p, s);
    return `${showPath(p)} = ${JSON.stringify(s.length > 20 ? `${s.slice(0, 10)}…(${s.length})` : s)}`;
  },
  bloat(r, d) {
    const arrays = pathsWhere(d, (v) => Array.isArray(v) && v.length > 0);
    if (!arrays.length) return MUTATORS.type!(r, d);
    const p = r.pick(arrays);
    const a = getAt(d.doc, p) as Json[];
    const n = r.pick([50, 200, 1000]);
    const e = a[r.int(a.length)]!;
    for (let i = 0; i < n; i++) a.push(structuredClone(e));
    return `${showPath(p)}: +${n} copies of an element`;
  },
  garbage(r, d) {
    const g = r.pick(['', 'null', '[]', '{', '}', '{}', '"str"', '0', 'true', '\ufeff', ' \n ', '{"ociVersion":"1.0.2",}', 'random']);
    const bytes = g === 'random' ? Buffer.from(Array.from({ length: 64 }, () => r.int(256))) : Buffer.from(g, 'utf8');
    if (g === '\ufeff') {
      d.post.push((b) => Buffer.concat([bytes, b]));
      return 'a byte-order mark before the document';
    }
    d.post.push(() => bytes);
    return `the whole file is ${g === 'random' ? `64 random bytes (${bytes.subarray(0, 8).toString('hex')}…)` : JSON.stringify(g)}`;
  },
  truncate(r, d) {
    const frac = r.next();
    d.post.push((b) => b.subarray(0, Math.floor(b.length * frac)));
    return `truncated at ${(frac * 100).toFixed(1)}%`;
  },
};

const KINDS = Object.keys(MUTATORS);

/** Case `n` of a fuzz run: the kind goes round-robin (every kind appears), the details come from the PRNG. */
function makeCase(base: Json, seed: number, n: number): { desc: string; buf: Buffer } {
  const r = new Rng((seed ^ Math.imul(n + 1, 0x9e3779b1)) >>> 0);
  const d: Draft = { doc: structuredClone(base), raw: new Map(), post: [], desc: [] };
  const combo = n % (KINDS.length + 1) === KINDS.length;
  const kinds = combo ? Array.from({ length: 2 + r.int(2) }, () => r.pick(KINDS)) : [KINDS[n % (KINDS.length + 1)]!];
  for (const k of kinds) d.desc.push(`${k}: ${MUTATORS[k]!(r, d)}`);
  return { desc: d.desc.join(' + '), buf: render(d) };
}

function keep(name: string, buf: Buffer, desc: string): void {
  if (!KEEP) return;
  fs.mkdirSync(KEEP, { recursive: true });
  fs.writeFileSync(path.join(KEEP, `${name}.json`), buf);
  fs.writeFileSync(path.join(KEEP, `${name}.txt`), `${desc}\n`);
}

// ---------------------------------------------------------------------------
// Unit level: the parser and validator

function unitBaseConfig(): Json {
  const s = defaultSpec() as unknown as Obj;
  const p = s.process as Obj;
  p.terminal = false;
  return s;
}

function unitBaseProcess(): Json {
  return structuredClone((unitBaseConfig() as Obj).process!);
}

t.test(`unit: parseConfig and parseProcess over ${UNIT_CASES} mutated documents`, async (t) => {
  const bad: { n: number; which: string; desc: string; error: string }[] = [];
  const counts = { accepted: 0, rejected: 0 };
  for (let n = 0; n < UNIT_CASES; n++) {
    const which = n % 3 === 2 ? 'process' : 'config';
    const { desc, buf } = makeCase(which === 'config' ? unitBaseConfig() : unitBaseProcess(), SEED, n);
    // The CLI reads the file as UTF-8 (invalid bytes become U+FFFD): the same here.
    const text = buf.toString('utf8');
    try {
      if (which === 'config') parseConfig(text);
      else parseProcess(text);
      counts.accepted++;
    } catch (e) {
      counts.rejected++;
      const oneLine = e instanceof Error && !/[\r\n]/.test(e.message);
      if (!(e instanceof ConfigError || e instanceof UserError) || !oneLine) {
        bad.push({ n, which, desc, error: e instanceof Error ? `${e.name}: ${e.message.slice(0, 300)}` : String(e) });
        keep(`unit-${n}`, buf, desc);
      }
    }
  }
  t.comment(`seed ${SEED}: ${counts.accepted} accepted, ${counts.rejected} rejected`);
  t.same(bad.slice(0, 20), [], 'every rejection is a ConfigError/UserError with a one-line message', { total: bad.length });
});

// ---------------------------------------------------------------------------
// CLI level: real creates (root)

t.test('cli: tsrun create and exec --process over mutated documents', { skip: !isRoot ? 'needs root (creates real containers)' : false }, async (t) => {
  const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-fuzz-root-'));
  t.teardown(async () => {
    for (const id of fs.existsSync(tmpRoot) ? fs.readdirSync(tmpRoot).slice(0, 256) : []) {
      await h.tsrun(['delete', '--force', id], { root: tmpRoot, timeoutMs: 15_000 });
    }
    fs.rmSync(tmpRoot, { recursive: true, force: true });
  });
  const tag = `${process.pid.toString(36)}${Date.now().toString(36).slice(-3)}`;
  const before = h.leakSnapshot();
  const ids: string[] = [];

  /** One bundle per worker; its config.json is rewritten for every case. */
  const bundles = await Promise.all(Array.from({ length: JOBS }, () => h.makeBundle(t)));
  const baseConfig = structuredClone(bundles[0]!.config) as unknown as Json;

  /** stdout and stderr to files: a created container inherits them. */
  async function run(args: string[], timeoutMs = 20_000): Promise<{ code: number; stderr: string; timedOut: boolean }> {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-fuzz-out-'));
    const errFile = path.join(dir, 'stderr');
    const err = fs.openSync(errFile, 'w+');
    try {
      const r = await h.tsrun(args, { root: tmpRoot, stdout: 'ignore', stderr: err, closeGraceMs: 0, timeoutMs });
      return { code: r.code, stderr: fs.readFileSync(errFile, 'utf8') + r.stderr, timedOut: r.timedOut };
    } finally {
      fs.closeSync(err);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  interface Failure {
    case: string;
    desc: string;
    problem: string;
    stderr?: string;
  }
  const failures: Failure[] = [];
  const stoppedAfterCreate: Failure[] = [];
  const stats = { created: 0, rejected: 0, execOk: 0, execRejected: 0, execNonZero: 0 };

  function checkError(name: string, desc: string, r: { code: number; stderr: string; timedOut: boolean }, buf: Buffer): boolean {
    const ls = r.stderr.split('\n').filter((l, i, a) => !(l === '' && i === a.length - 1));
    let problem = '';
    if (r.timedOut) problem = 'timed out';
    else if (ls.length !== 1) problem = `${ls.length} stderr lines`;
    else if (!ls[0]!.startsWith('tsrun: ')) problem = 'stderr does not start with "tsrun: "';
    else if (r.stderr.includes('internal error')) problem = 'internal error';
    if (r.stderr.includes('    at ')) problem ||= 'stack trace';
    if (problem) {
      failures.push({ case: name, desc, problem, stderr: r.stderr.slice(0, 600) });
      keep(name, buf, desc);
      return false;
    }
    return true;
  }

  async function configCase(n: number, bundle: (typeof bundles)[number]): Promise<void> {
    const { desc, buf } = makeCase(baseConfig, SEED, n);
    const id = `fuzz${n}-${tag}`;
    ids.push(id);
    fs.writeFileSync(bundle.configPath, buf);
    const r = await run(['create', '--bundle', bundle.dir, id]);
    if (r.code === 0 && !r.timedOut) {
      stats.created++;
      for (const l of r.stderr.split('\n').filter(Boolean)) {
        if (!l.startsWith('tsrun: ') || l.includes('internal error')) failures.push({ case: `config ${n}`, desc, problem: `created, but stderr: ${l}` });
      }
      const st = await h.tsrun(['state', id], { root: tmpRoot });
      if (st.code === 0 && /"status":\s*"stopped"/.test(st.stdout)) {
        stoppedAfterCreate.push({ case: `config ${n}`, desc, problem: 'create exited 0, the container is stopped' });
        keep(`config-${n}`, buf, desc);
      } else if (st.code !== 0 || !/"status":\s*"created"/.test(st.stdout)) {
        failures.push({ case: `config ${n}`, desc, problem: `created, state: ${st.stdout}${st.stderr}` });
      }
    } else {
      stats.rejected++;
      checkError(`config-${n}`, desc, r, buf);
    }
    const del = await h.tsrun(['delete', '--force', id], { root: tmpRoot, timeoutMs: 15_000 });
    if (r.code === 0 && del.code !== 0) failures.push({ case: `config ${n}`, desc, problem: `delete --force failed: ${del.stderr}` });
    if (fs.existsSync(path.join(tmpRoot, id))) failures.push({ case: `config ${n}`, desc, problem: 'state directory left in --root' });
  }

  /** Runs `count` cases through `JOBS` workers. */
  async function pool(count: number, each: (n: number, worker: number) => Promise<void>): Promise<void> {
    let next = 0;
    await Promise.all(
      Array.from({ length: JOBS }, async (_, w) => {
        for (;;) {
          const n = next++;
          if (n >= count) return;
          await each(n, w);
        }
      }),
    );
  }

  // A fixed case first (found by this fuzzer, seed 20261125, case 181 of 1000):
  // RLIMIT_NOFILE soft 0.
  {
    const b = bundles[0]!;
    const doc = structuredClone(baseConfig) as Obj;
    (doc.process as Obj).rlimits = [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 0 }];
    fs.writeFileSync(b.configPath, JSON.stringify(doc));
    const id = `fuzzrl-${tag}`;
    ids.push(id);
    const r = await run(['create', '--bundle', b.dir, id]);
    const st = r.code === 0 ? await h.tsrun(['state', id], { root: tmpRoot }) : undefined;
    const status = st ? ((JSON.parse(st.stdout || '{}') as { status?: string }).status ?? '?') : 'not created';
    t.ok(r.code !== 0 || status === 'created', `RLIMIT_NOFILE soft 0: create fails, or the container is created (it is ${status})`, {
      todo: BUG_STOPPED_AFTER_CREATE,
      stderr: r.stderr,
    });
    await h.tsrun(['delete', '--force', id], { root: tmpRoot });
  }

  const started = Date.now();
  await pool(CLI_CASES, (n, w) => configCase(n, bundles[w]!));
  const configMs = Date.now() - started;

  // process.json through exec into one running container
  const runBundle = bundles[0]!;
  runBundle.write((c) => {
    Object.assign(c, structuredClone(baseConfig));
    c.process.args = ['sleep', '600'];
  });
  const cid = `fuzzexec-${tag}`;
  ids.push(cid);
  const created = await run(['run', '-d', '--bundle', runBundle.dir, cid]);
  t.equal(created.code, 0, 'a container to exec into', { stderr: created.stderr });
  const baseProcess = { ...(structuredClone(baseConfig) as Obj).process as Obj, args: ['true'] } as Json;
  const procDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-fuzz-proc-'));
  t.teardown(() => fs.rmSync(procDir, { recursive: true, force: true }));
  const startedExec = Date.now();
  if (created.code === 0) {
    await pool(PROCESS_CASES, async (n) => {
      const { desc, buf } = makeCase(baseProcess, SEED ^ 0x5bd1e995, n);
      const file = path.join(procDir, `process-${n}.json`);
      fs.writeFileSync(file, buf);
      const r = await run(['exec', '--process', file, cid]);
      if (r.code === 0) stats.execOk++;
      else if (/^tsrun: /.test(r.stderr)) {
        stats.execRejected++;
        checkError(`process-${n}`, desc, r, buf);
      } else {
        // the process ran and exited non-zero (its own output, if any, is on stderr)
        stats.execNonZero++;
        if (/internal error|\n {4}at /.test(r.stderr) || r.timedOut) failures.push({ case: `process ${n}`, desc, problem: 'bad exit', stderr: r.stderr.slice(0, 600) });
      }
    });
  }
  const execMs = Date.now() - startedExec;
  await h.tsrun(['delete', '--force', cid], { root: tmpRoot });

  t.comment(
    `seed ${SEED}: ${CLI_CASES} config cases in ${configMs} ms (${stats.created} created and deleted, ${stats.rejected} rejected); ` +
      `${PROCESS_CASES} process.json cases in ${execMs} ms (${stats.execOk} ran, ${stats.execRejected} rejected, ${stats.execNonZero} ran and exited non-zero)`,
  );
  t.same(failures.slice(0, 25), [], 'every case: a one-line "tsrun: " error and a non-zero exit, or a container that was deleted', {
    total: failures.length,
  });
  t.same(stoppedAfterCreate.slice(0, 25), [], 'a create that exits 0 leaves a "created" container', {
    total: stoppedAfterCreate.length,
    todo: BUG_STOPPED_AFTER_CREATE,
  });

  // Nothing left behind by any case.
  t.same(fs.readdirSync(tmpRoot), [], `nothing left in --root ${tmpRoot}`);
  let leaks = h.leakSnapshot(ids, ids);
  for (let i = 0; i < 30 && (leaks.cgroups.length || leaks.processes.length); i++) {
    await new Promise((r) => setTimeout(r, 100));
    leaks = h.leakSnapshot(ids, ids);
  }
  t.same(leaks.cgroups, [], 'no cgroup directory named like a case id');
  t.same(leaks.processes, [], 'no process of any case');
  // Only mounts that can be ours count: another test on this host may mount meanwhile.
  const oldMounts = new Set(before.mounts);
  const newMounts = leaks.mounts.filter((m) => !oldMounts.has(m));
  const ours = [tmpRoot, procDir, ...bundles.map((b) => b.dir), 'tsrun-fuzz', ...ids];
  const mine = newMounts.filter((m) => ours.some((o) => m.includes(o)));
  if (newMounts.length > mine.length) t.comment(`${newMounts.length - mine.length} new host mount(s) of other software ignored`);
  t.same(mine, [], 'no new mount on the host (under --root, the bundles, or naming a case)');
});
