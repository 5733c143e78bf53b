/**
 * encodePlan writes native/plan.h's byte layout. The reader below is written
 * from plan.h alone (not from plan.ts), so a drift between the two shows up here.
 */
import t from 'tap';
import { Op, PLAN_VERSION, encodePlan, type Plan, type PlanOp, utf8Length, writeUtf8 } from '../../src/plan/plan.js';

const MAGIC = 0x4c505354; // "TSPL"
const NONE = 0xffffffff;
const HEADER_SIZE = 48;
const OP_SIZE = 56;

interface RawHeader {
  magic: number;
  version: number;
  opCount: number;
  opsOffset: number;
  poolOffset: number;
  poolLength: number;
  listsOffset: number;
  listsLength: number;
  cloneFlags: bigint;
  intermediateOps: number;
  reserved: number;
}

interface RawOp {
  code: number;
  flags: number;
  a: bigint;
  b: bigint;
  c: bigint;
  s: number[];
  l: number[];
}

function readHeader(buf: Buffer): RawHeader {
  return {
    magic: buf.readUInt32LE(0),
    version: buf.readUInt32LE(4),
    opCount: buf.readUInt32LE(8),
    opsOffset: buf.readUInt32LE(12),
    poolOffset: buf.readUInt32LE(16),
    poolLength: buf.readUInt32LE(20),
    listsOffset: buf.readUInt32LE(24),
    listsLength: buf.readUInt32LE(28),
    cloneFlags: buf.readBigUInt64LE(32),
    intermediateOps: buf.readUInt32LE(40),
    reserved: buf.readUInt32LE(44),
  };
}

function readOp(buf: Buffer, h: RawHeader, i: number): RawOp {
  const base = h.opsOffset + i * OP_SIZE;
  return {
    code: buf.readUInt32LE(base),
    flags: buf.readUInt32LE(base + 4),
    a: buf.readBigInt64LE(base + 8),
    b: buf.readBigInt64LE(base + 16),
    c: buf.readBigInt64LE(base + 24),
    s: [0, 1, 2, 3].map((k) => buf.readUInt32LE(base + 32 + 4 * k)),
    l: [0, 1].map((k) => buf.readUInt32LE(base + 48 + 4 * k)),
  };
}

/** The NUL-terminated string at pool offset `off`; throws when it runs past the pool. */
function readString(buf: Buffer, h: RawHeader, off: number): string {
  const start = h.poolOffset + off;
  const end = buf.indexOf(0, start);
  if (off >= h.poolLength || end < 0 || end >= h.poolOffset + h.poolLength) {
    throw new Error(`string at pool offset ${off} is not NUL-terminated inside the pool`);
  }
  return buf.subarray(start, end).toString('utf8');
}

function readList(buf: Buffer, h: RawHeader, off: number): string[] {
  if (off + 4 > h.listsLength) throw new Error(`list at ${off} out of bounds`);
  const n = buf.readUInt32LE(h.listsOffset + off);
  if (off + 4 + 4 * n > h.listsLength) throw new Error(`list at ${off} (${n} items) out of bounds`);
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push(readString(buf, h, buf.readUInt32LE(h.listsOffset + off + 4 + 4 * i)));
  return out;
}

const toBig = (v: number | bigint | undefined): bigint => BigInt(v ?? 0);

interface Decoded {
  code: number;
  flags: number;
  a: bigint;
  b: bigint;
  c: bigint;
  s: (string | undefined)[];
  l: (string[] | undefined)[];
}

/** Every op read back from the bytes, strings and lists resolved (NONE → undefined). */
function decode(buf: Buffer): Decoded[] {
  const h = readHeader(buf);
  const out: Decoded[] = [];
  for (let i = 0; i < h.opCount; i++) {
    const raw = readOp(buf, h, i);
    out.push({
      code: raw.code,
      flags: raw.flags,
      a: raw.a,
      b: raw.b,
      c: raw.c,
      s: raw.s.map((off) => (off === NONE ? undefined : readString(buf, h, off))),
      l: raw.l.map((off) => (off === NONE ? undefined : readList(buf, h, off))),
    });
  }
  return out;
}

/** What decode() must return for these ops (string-only s[]). */
function expected(ops: PlanOp[]): Decoded[] {
  return ops.map((op) => ({
    code: op.code,
    flags: op.flags ?? 0,
    a: toBig(op.a),
    b: toBig(op.b),
    c: toBig(op.c),
    s: [0, 1, 2, 3].map((k) => op.s?.[k] as string | undefined),
    l: [0, 1].map((k) => op.l?.[k]),
  }));
}

t.test('an empty plan is a bare header', async (t) => {
  const buf = encodePlan({ cloneFlags: 0, intermediateOps: 0, ops: [] });
  t.equal(buf.length, HEADER_SIZE);
  t.strictSame(readHeader(buf), {
    magic: MAGIC,
    version: 2,
    opCount: 0,
    opsOffset: 48,
    poolOffset: 48,
    poolLength: 0,
    listsOffset: 48,
    listsLength: 0,
    cloneFlags: 0n,
    intermediateOps: 0,
    reserved: 0,
  });
  t.equal(PLAN_VERSION, 2, 'PLAN_VERSION matches TSRUN_PLAN_VERSION');
  t.equal(buf.subarray(0, 4).toString('latin1'), 'TSPL', 'magic reads "TSPL" in memory order');
});

t.test('header, op table, pool and lists are laid out back to back', async (t) => {
  const plan: Plan = {
    cloneFlags: 0x20000 | 0x20000000 | 0x40000000 | 0x08000000 | 0x04000000,
    intermediateOps: 2,
    ops: [
      { code: Op.SETNS, a: 0x10000000, s: ['/proc/1/ns/user'], what: 'join user' },
      { code: Op.SETNS, a: 0x40000000, s: ['/proc/1/ns/net'], what: 'join net' },
      { code: Op.SETHOSTNAME, s: ['box'], what: 'hostname' },
      { code: Op.EXEC, l: [['sh', '-c', 'true'], ['PATH=/bin']], what: 'exec' },
    ],
  };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  t.equal(h.magic, MAGIC, 'magic');
  t.equal(h.version, 2, 'version');
  t.equal(h.opCount, 4, 'op_count');
  t.equal(h.opsOffset, 48, 'ops start right after the 48-byte header');
  t.equal(h.poolOffset, 48 + 4 * 56, 'pool starts after 56 bytes per op');
  // Pool: the 3 s[] strings and the 4 list items, each with its NUL.
  const poolStrings = ['/proc/1/ns/user', '/proc/1/ns/net', 'box', 'sh', '-c', 'true', 'PATH=/bin'];
  t.equal(h.poolLength, poolStrings.reduce((n, s) => n + Buffer.byteLength(s) + 1, 0), 'pool length');
  t.equal(h.listsOffset, h.poolOffset + h.poolLength, 'lists follow the pool');
  t.equal(h.listsLength, 4 + 3 * 4 + 4 + 1 * 4, 'two lists: u32 count + u32 offsets');
  t.equal(buf.length, h.listsOffset + h.listsLength, 'nothing after the lists');
  t.equal(h.cloneFlags, BigInt(plan.cloneFlags), 'clone_flags');
  t.equal(h.intermediateOps, 2, 'intermediate_ops');
  t.equal(h.reserved, 0, 'reserved is zero');
  // The pool is exactly the NUL-terminated strings in first-use order.
  t.equal(
    buf.subarray(h.poolOffset, h.poolOffset + h.poolLength).toString('utf8'),
    poolStrings.map((s) => s + '\0').join(''),
    'pool bytes',
  );
  t.strictSame(decode(buf), expected(plan.ops), 'decodes back to the input');
});

t.test('strings are NUL-terminated and deduplicated across ops and lists', async (t) => {
  const plan: Plan = {
    cloneFlags: 0,
    intermediateOps: 0,
    ops: [
      { code: Op.MOUNT_IN_ROOT, s: ['tmpfs', '/dev', 'tmpfs', 'mode=755'], what: 'mount' },
      { code: Op.MOUNT_IN_ROOT, s: ['tmpfs', '/tmp', 'tmpfs', 'mode=755'], what: 'mount' },
      { code: Op.EXEC, l: [['tmpfs', '/dev'], ['/dev']], what: 'exec' },
      { code: Op.CHDIR, s: [''], what: 'chdir to the empty string' },
    ],
  };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  const op0 = readOp(buf, h, 0);
  const op1 = readOp(buf, h, 1);
  const op2 = readOp(buf, h, 2);
  t.equal(op0.s[0], op0.s[2], '"tmpfs" twice in one op: one pool entry');
  t.equal(op1.s[0], op0.s[0], '"tmpfs" in another op: the same pool entry');
  t.equal(op1.s[3], op0.s[3], '"mode=755" shared');
  t.not(op1.s[1], op0.s[1], '"/tmp" and "/dev" are distinct');
  const l0 = h.listsOffset + op2.l[0];
  t.equal(buf.readUInt32LE(l0 + 4), op0.s[0], 'list item "tmpfs" points at the same pool entry');
  t.equal(buf.readUInt32LE(l0 + 8), op0.s[1], 'list item "/dev" points at the same pool entry');
  t.equal(buf.readUInt32LE(h.listsOffset + op2.l[1] + 4), op0.s[1], 'second list reuses "/dev" too');
  // Each distinct string once: tmpfs /dev mode=755 /tmp "" → 6+5+9+5+1 bytes.
  t.equal(h.poolLength, 26, 'pool holds each distinct string once');
  const op3 = readOp(buf, h, 3);
  t.not(op3.s[0], NONE, 'the empty string is present, not absent');
  t.equal(buf[h.poolOffset + op3.s[0]], 0, 'the empty string is a lone NUL');
  for (const off of [op0.s[0], op0.s[1], op0.s[3], op1.s[1]]) {
    const end = buf.indexOf(0, h.poolOffset + off);
    t.ok(end >= 0 && end < h.poolOffset + h.poolLength, `string at ${off} ends with a NUL inside the pool`);
  }
  t.strictSame(decode(buf), expected(plan.ops), 'decodes back to the input');
});

t.test('absent strings and lists are NONE; holes in s[] stay holes', async (t) => {
  const plan: Plan = {
    cloneFlags: 0,
    intermediateOps: 0,
    ops: [
      { code: Op.SETSID, what: 'no s, no l' },
      { code: Op.MOUNT, a: 1 << 19, s: [undefined, '/', undefined, undefined], what: 'hole at 0, 2, 3' },
      { code: Op.EXEC, l: [undefined, ['A=1']], what: 'list hole at 0' },
    ],
  };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  t.strictSame(readOp(buf, h, 0).s, [NONE, NONE, NONE, NONE]);
  t.strictSame(readOp(buf, h, 0).l, [NONE, NONE]);
  const m = readOp(buf, h, 1);
  t.equal(m.s[0], NONE);
  t.equal(readString(buf, h, m.s[1]), '/');
  t.equal(m.s[2], NONE);
  t.equal(m.s[3], NONE);
  const e = readOp(buf, h, 2);
  t.equal(e.l[0], NONE);
  t.strictSame(readList(buf, h, e.l[1]), ['A=1']);
  t.equal(e.l[1], 0, 'the only list sits at lists offset 0');
});

t.test('empty lists are a zero count', async (t) => {
  const plan: Plan = { cloneFlags: 0, intermediateOps: 0, ops: [{ code: Op.SETGROUPS, l: [[]], what: 'setgroups' }] };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  const op = readOp(buf, h, 0);
  t.equal(op.l[0], 0);
  t.equal(h.listsLength, 4);
  t.equal(buf.readUInt32LE(h.listsOffset), 0, 'count 0');
  t.equal(op.l[1], NONE);
});

t.test('a, b and c are signed 64-bit: bigint and negative values round-trip', async (t) => {
  const big = (1n << 62n) + 12345n;
  const plan: Plan = {
    cloneFlags: 0,
    intermediateOps: 0,
    ops: [
      { code: Op.SETRLIMIT, a: 7, b: big, c: -1n, what: 'bigints' },
      { code: Op.WRITE_FILE, a: -1, b: -2147483648, c: 2 ** 53 - 1, what: 'negative and max safe numbers' },
      { code: Op.MKNOD_IN_ROOT, a: 0o20666, b: 259n, c: (1000n << 32n) | 1001n, what: 'uid<<32|gid' },
      { code: Op.CAP_BOUNDING, a: -(1n << 63n), b: (1n << 63n) - 1n, what: 'int64 extremes' },
    ],
  };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  const o0 = readOp(buf, h, 0);
  t.equal(o0.a, 7n);
  t.equal(o0.b, big);
  t.equal(o0.c, -1n);
  t.equal(buf.readBigUInt64LE(h.opsOffset + 24), 0xffffffffffffffffn, '-1 is all ones (RLIM_INFINITY as u64)');
  const o1 = readOp(buf, h, 1);
  t.equal(o1.a, -1n);
  t.equal(o1.b, -2147483648n);
  t.equal(o1.c, 9007199254740991n);
  const o2 = readOp(buf, h, 2);
  t.equal(o2.c >> 32n, 1000n, 'uid in the high half');
  t.equal(o2.c & 0xffffffffn, 1001n, 'gid in the low half');
  const o3 = readOp(buf, h, 3);
  t.equal(o3.a, -(1n << 63n));
  t.equal(o3.b, (1n << 63n) - 1n);
  t.equal(o3.c, 0n, 'absent c is 0');
  t.equal(o0.flags, 0, 'absent flags are 0');
  t.strictSame(decode(buf), expected(plan.ops), 'decodes back to the input');
});

t.test('unsigned 64-bit values at or above 2^63 (RLIM_INFINITY, uid >= 2^31 in MKNOD owner)', async (t) => {
  // RLIM_INFINITY written in full in config.json (18446744073709551615) parses
  // to 2^64 and validate.ts accepts it; rlimitOps passes BigInt(2^64) through.
  const plan: Plan = {
    cloneFlags: 0,
    intermediateOps: 0,
    ops: [
      { code: Op.SETRLIMIT, a: 7, b: 0xffffffffffffffffn, c: BigInt(2 ** 64), what: 'RLIM_INFINITY' },
      { code: Op.MKNOD_IN_ROOT, a: 0o20666, b: 259n, c: (3000000000n << 32n) | 5n, what: 'uid 3e9' },
    ],
  };
  let buf: Buffer | undefined;
  let err: unknown;
  try {
    buf = encodePlan(plan);
  } catch (e) {
    err = e;
  }
  t.equal(err, undefined, 'encodes without throwing');
  if (buf) {
    const h = readHeader(buf);
    t.equal(buf.readBigUInt64LE(h.opsOffset + 16), 0xffffffffffffffffn, 'soft = RLIM_INFINITY');
    t.equal(buf.readBigUInt64LE(h.opsOffset + 24), 0xffffffffffffffffn, 'hard 2^64 saturates to RLIM_INFINITY');
    t.equal(buf.readBigUInt64LE(h.opsOffset + 56 + 24) >> 32n, 3000000000n, 'uid 3e9 in the high half');
  }
});

t.test('a Buffer in s[0] is stored raw: no NUL appended, not deduplicated', async (t) => {
  const blob = Buffer.from([0x20, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x7f]);
  const plan: Plan = {
    cloneFlags: 0,
    intermediateOps: 0,
    ops: [
      { code: Op.SETHOSTNAME, s: ['x'], what: 'a string before the blob' },
      { code: Op.SECCOMP, a: blob.length, b: 0, s: [blob], what: 'load seccomp filter' },
      { code: Op.SECCOMP, a: blob.length, b: 0, s: [Buffer.from(blob)], what: 'same bytes again' },
      { code: Op.SETHOSTNAME, s: ['y'], what: 'a string after the blobs' },
    ],
  };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  const o1 = readOp(buf, h, 1);
  const o2 = readOp(buf, h, 2);
  t.equal(o1.s[0], 2, 'blob follows "x\\0"');
  t.strictSame(
    buf.subarray(h.poolOffset + o1.s[0], h.poolOffset + o1.s[0] + blob.length),
    blob,
    'blob bytes verbatim (embedded NULs included)',
  );
  t.equal(o2.s[0], o1.s[0] + blob.length, 'the second blob is its own copy, right after the first (no NUL)');
  t.equal(readString(buf, h, readOp(buf, h, 3).s[0]), 'y');
  t.equal(readOp(buf, h, 3).s[0], o2.s[0] + blob.length, 'the next string starts right after the blob');
  t.equal(h.poolLength, 2 + 2 * blob.length + 2, 'pool length');
  t.equal(o1.a, BigInt(blob.length), 'a carries the blob length');
});

t.test('UTF-8 strings: byte lengths, not character counts', async (t) => {
  const plan: Plan = {
    cloneFlags: 0,
    intermediateOps: 0,
    ops: [
      { code: Op.SETHOSTNAME, s: ['héllo'], what: 'h' },
      { code: Op.CHDIR, s: ['/ünï/ç'], what: 'c' },
    ],
  };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  t.equal(readOp(buf, h, 1).s[0], Buffer.byteLength('héllo') + 1);
  t.equal(h.poolLength, Buffer.byteLength('héllo') + 1 + Buffer.byteLength('/ünï/ç') + 1);
  t.strictSame(decode(buf), expected(plan.ops), 'decodes back to the input');
});

t.test('clone_flags keeps the high bits (CLONE_NEWNET = 0x40000000, all of them set)', async (t) => {
  const all = 0x80 | 0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000;
  const buf = encodePlan({ cloneFlags: all, intermediateOps: 0, ops: [] });
  t.equal(buf.readBigUInt64LE(32), BigInt(all));
  t.equal(buf.readUInt32LE(36), 0, 'upper half of the u64 is zero');
});

t.test('a plan compiled from many ops keeps the op order', async (t) => {
  const ops: PlanOp[] = [];
  for (let i = 0; i < 100; i++) ops.push({ code: Op.WRITE_FILE, a: i, s: [`/proc/sys/k${i % 10}`, String(i)], what: `w${i}` });
  const plan: Plan = { cloneFlags: 0, intermediateOps: 0, ops };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  t.equal(h.poolOffset, 48 + 100 * 56);
  for (let i = 0; i < 100; i += 33) t.equal(readOp(buf, h, i).a, BigInt(i), `op ${i} in place`);
  t.strictSame(decode(buf), expected(plan.ops), 'decodes back to the input');
});

t.test("the pool's UTF-8 is Buffer.from(s, 'utf8') byte for byte", async (t) => {
  const cases = [
    '',
    'plain ascii /usr/bin/env',
    'ü é ß',
    '€ ✓ 中文',
    '😀 rocket 🚀',
    'lone high \ud800 end',
    'lone low \udc00 mid',
    '\ud83d',
    'x\udfff\ud800y',
    'nul\0inside',
    String.fromCharCode(0x7f, 0x80, 0x7ff, 0x800, 0xffff),
  ];
  for (const s of cases) {
    const want = Buffer.from(s, 'utf8');
    t.equal(utf8Length(s), want.length, `${JSON.stringify(s)}: length`);
    const out = new Uint8Array(want.length + 2);
    t.equal(writeUtf8(out, 1, s), 1 + want.length, `${JSON.stringify(s)}: end offset`);
    t.same(Buffer.from(out.subarray(1, 1 + want.length)), want, `${JSON.stringify(s)}: bytes`);
  }
  // And through a plan: the pool holds exactly those bytes and a NUL.
  const plan: Plan = { cloneFlags: 0, intermediateOps: 0, ops: [{ code: Op.SETHOSTNAME, s: ['h€st😀'], what: 'x' }] };
  const buf = encodePlan(plan);
  const h = readHeader(buf);
  t.same(buf.subarray(h.poolOffset, h.poolOffset + h.poolLength), Buffer.from('h€st😀\0', 'utf8'), 'the pool');
});
