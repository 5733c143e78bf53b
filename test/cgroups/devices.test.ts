import t from 'tap';
import {
  containerRules, DeviceEmulator, type DeviceRule, deviceFilterProgram, encodeProgram, fromSpecRule, type Insn, normalizeRules, ruleString,
  v1DeviceWrites,
} from '../../src/cgroups/devices.js';

const rule = (s: string, allow: boolean): DeviceRule => {
  const [type, mm, access] = s.split(' ');
  const [maj, min] = mm.split(':');
  return { type: type as DeviceRule['type'], major: maj === '*' ? -1 : Number(maj), minor: min === '*' ? -1 : Number(min), access, allow };
};

// What `runc run` leaves in devices.list for runc's default spec on this
// kind of host (checked against runc 1.1.5): the same list must come out.
const RUNC_DEFAULT_LIST = [
  'b *:* m', 'c *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:2 rwm', 'c 10:200 rwm', 'c 136:* rwm',
];

t.test("runc's default spec: deny all, then the default allow list", async (t) => {
  const writes = v1DeviceWrites(containerRules([{ allow: false, access: 'rwm' }]));
  t.same(writes[0], { file: 'devices.deny', value: 'a' }, 'reset to deny-all first');
  t.same(writes.slice(1).map((w) => w.file), Array(RUNC_DEFAULT_LIST.length).fill('devices.allow'));
  t.same(writes.slice(1).map((w) => w.value), RUNC_DEFAULT_LIST, 'sorted like runc, no duplicates');
});

t.test('spec defaults: type a, any major/minor, access rwm', async (t) => {
  t.same(fromSpecRule({ allow: true }, 'x'), { type: 'a', major: -1, minor: -1, access: 'rwm', allow: true });
  t.same(fromSpecRule({ allow: false, type: 'c', major: 1, access: 'mwr' }, 'x'), { type: 'c', major: 1, minor: -1, access: 'rwm', allow: false });
  t.throws(() => fromSpecRule({ allow: true, type: 'x' }, 'linux.resources.devices[0]'), /devices\[0\]\.type: invalid/);
  t.equal(ruleString(rule('c *:3 rw', true)), 'c *:3 rw');
});

t.test('linux.devices get rwm allow rules; a redefined default path replaces the default rule', async (t) => {
  const rules = containerRules([], [
    { type: 'c', path: '/dev/null', major: 1, minor: 300 },
    { type: 'b', path: '/dev/sda', major: 8, minor: 0 },
    { type: 'p', path: '/dev/fifo' },
  ]);
  const list = normalizeRules(rules).map(ruleString);
  t.ok(list.includes('c 1:300 rwm') && list.includes('b 8:0 rwm'));
  t.notOk(list.includes('c 1:3 rwm'), 'the default /dev/null rule was replaced');
});

t.test('the emulator: resets, exceptions, merges, refused holes', async (t) => {
  const e = new DeviceEmulator();
  e.apply(rule('c 1:3 r', true));
  e.apply(rule('c 1:3 w', true));
  t.same(e.minimalRules().map(ruleString), ['a *:* rwm', 'c 1:3 rw'], 'permissions merge');
  e.apply(rule('c 1:3 r', false));
  t.same(e.minimalRules().map(ruleString), ['a *:* rwm', 'c 1:3 w'], 'a deny removes part of an allow exception');
  e.apply(rule('a *:* rwm', true));
  t.same(e.minimalRules(), [{ type: 'a', major: -1, minor: -1, access: 'rwm', allow: true }], 'an "a" allow resets to allow-all');
  e.apply(rule('c 1:3 rwm', false));
  t.same(v1DeviceWrites(e.minimalRules()), [
    { file: 'devices.allow', value: 'a' },
    { file: 'devices.deny', value: 'c 1:3 rwm' },
  ], 'allow-list base: reset with devices.allow, then the denies');

  const w = new DeviceEmulator();
  w.apply(rule('c *:* rwm', true));
  t.throws(() => w.apply(rule('c 1:3 r', false)), /cannot punch a hole in the wildcard rule c \*:\* rwm/);
  w.apply(rule('c *:* rwm', false));
  t.same(w.minimalRules().map(ruleString), ['a *:* rwm'], 'removing the wildcard itself is fine');
});

// ---------------------------------------------------------------------------
// A tiny interpreter for exactly the instructions the compiler emits, so
// the program's meaning is tested here without a kernel (the specs load it
// into a real one).

function run(prog: Insn[], type: 'c' | 'b', major: number, minor: number, access: string): number {
  const acc = (access.includes('m') ? 1 : 0) | (access.includes('r') ? 2 : 0) | (access.includes('w') ? 4 : 0);
  const ctx = [(type === 'b' ? 1 : 2) | (acc << 16), major, minor];
  const r = new Array<number>(11).fill(0);
  for (let pc = 0, steps = 0; pc < prog.length && steps < 10_000; pc++, steps++) {
    const i = prog[pc];
    switch (i.code) {
      case 0x61: r[i.dst] = ctx[i.off / 4] >>> 0; break;
      case 0x54: r[i.dst] = (r[i.dst] & i.imm) >>> 0; break;
      case 0x74: r[i.dst] = r[i.dst] >>> i.imm; break;
      case 0xb4: r[i.dst] = i.imm >>> 0; break;
      case 0xbc: r[i.dst] = r[i.src] >>> 0; break;
      case 0x55: if (r[i.dst] !== i.imm) pc += i.off; break;
      case 0x5d: if (r[i.dst] !== r[i.src]) pc += i.off; break;
      case 0x95: return r[0];
      default: throw new Error(`unexpected opcode ${i.code.toString(16)}`);
    }
  }
  throw new Error('fell off the program');
}

t.test('BPF device filter: the compiled program decides as the rules say', async (t) => {
  const prog = deviceFilterProgram(containerRules([{ allow: false, access: 'rwm' }, { allow: true, type: 'c', major: 4, minor: 64, access: 'r' }]));
  t.equal(run(prog, 'c', 1, 3, 'rw'), 1, '/dev/null rw');
  t.equal(run(prog, 'c', 1, 3, 'm'), 1, 'mknod of anything');
  t.equal(run(prog, 'b', 8, 0, 'm'), 1, 'mknod of a block device');
  t.equal(run(prog, 'b', 8, 0, 'r'), 0, 'but not reading it');
  t.equal(run(prog, 'c', 1, 1, 'r'), 0, '/dev/mem denied');
  t.equal(run(prog, 'c', 136, 7, 'rw'), 1, 'any pty');
  t.equal(run(prog, 'c', 4, 64, 'r'), 1, 'the extra rule: read');
  t.equal(run(prog, 'c', 4, 64, 'w'), 0, 'but not write');
  t.equal(run(prog, 'c', 4, 64, 'rw'), 0, 'nor read+write');

  const allowAll = deviceFilterProgram([rule('a *:* rwm', true), rule('c 1:1 rwm', false)]);
  t.equal(run(allowAll, 'c', 1, 1, 'r'), 0, 'a deny exception in an allow-all base');
  t.equal(run(allowAll, 'c', 1, 2, 'r'), 1);

  const buf = encodeProgram(prog);
  t.equal(buf.length, prog.length * 8, 'struct bpf_insn is 8 bytes');
  t.equal(buf[0], 0x61, 'first: LDX_MEM_W');
  t.equal(buf[1], (1 << 4) | 2, 'src R1, dst R2 (dst in the low nibble)');
  t.equal(buf.readInt32LE((prog.length - 2) * 8 + 4), 0, 'MOV R0, 0: deny by default');
  t.equal(buf[buf.length - 8], 0x95, 'ends with EXIT');
  for (const [i, insn] of prog.entries()) {
    if (insn.toBlock !== undefined) t.ok(i + 1 + insn.off < prog.length && insn.off >= 0, `jump ${i} stays inside the program`);
  }
});
