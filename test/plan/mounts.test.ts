/**
 * parseMountOptions against the mount(8)/runc option table. Flag values are
 * the kernel's (include/uapi/linux/mount.h), written out here rather than
 * imported so a wrong constant in src/plan/linux.ts fails too.
 */
import t from 'tap';
import { parseMountOptions, supportedMountOptions } from '../../src/plan/mounts.js';

const MS_RDONLY = 1;
const MS_NOSUID = 2;
const MS_NODEV = 4;
const MS_NOEXEC = 8;
const MS_SYNCHRONOUS = 16;
const MS_MANDLOCK = 64;
const MS_DIRSYNC = 128;
const MS_NOSYMFOLLOW = 256;
const MS_NOATIME = 1024;
const MS_NODIRATIME = 2048;
const MS_REC = 16384;
const MS_UNBINDABLE = 1 << 17;
const MS_PRIVATE = 1 << 18;
const MS_SLAVE = 1 << 19;
const MS_SHARED = 1 << 20;
const MS_RELATIME = 1 << 21;
const MS_STRICTATIME = 1 << 24;

// option → [flags it sets, flags it clears]
const TABLE: [string, number, number][] = [
  ['async', 0, MS_SYNCHRONOUS],
  ['atime', 0, MS_NOATIME],
  ['defaults', 0, 0],
  ['dev', 0, MS_NODEV],
  ['diratime', 0, MS_NODIRATIME],
  ['dirsync', MS_DIRSYNC, 0],
  ['exec', 0, MS_NOEXEC],
  ['mand', MS_MANDLOCK, 0],
  ['noatime', MS_NOATIME, 0],
  ['nodev', MS_NODEV, 0],
  ['nodiratime', MS_NODIRATIME, 0],
  ['noexec', MS_NOEXEC, 0],
  ['nomand', 0, MS_MANDLOCK],
  ['norelatime', 0, MS_RELATIME],
  ['nostrictatime', 0, MS_STRICTATIME],
  ['nosuid', MS_NOSUID, 0],
  ['nosymfollow', MS_NOSYMFOLLOW, 0],
  ['relatime', MS_RELATIME, 0],
  ['ro', MS_RDONLY, 0],
  ['rw', 0, MS_RDONLY],
  ['strictatime', MS_STRICTATIME, 0],
  ['suid', 0, MS_NOSUID],
  ['sync', MS_SYNCHRONOUS, 0],
];

const PROPAGATION: [string, number][] = [
  ['private', MS_PRIVATE],
  ['rprivate', MS_PRIVATE | MS_REC],
  ['shared', MS_SHARED],
  ['rshared', MS_SHARED | MS_REC],
  ['slave', MS_SLAVE],
  ['rslave', MS_SLAVE | MS_REC],
  ['unbindable', MS_UNBINDABLE],
  ['runbindable', MS_UNBINDABLE | MS_REC],
];

t.test('no options', async (t) => {
  const empty = { flags: 0, clear: 0, propagation: [], data: [], bind: false, recursive: false };
  t.strictSame(parseMountOptions(), empty, 'undefined');
  t.strictSame(parseMountOptions([]), empty, 'empty array');
});

t.test('every flag option alone', async (t) => {
  for (const [opt, set, clear] of TABLE) {
    t.strictSame(
      parseMountOptions([opt]),
      { flags: set, clear, propagation: [], data: [], bind: false, recursive: false },
      `${opt}: sets ${set}, clears ${clear}`,
    );
  }
});

t.test('a clearing option undoes an earlier setting one, and vice versa', async (t) => {
  for (const [a, b, bit] of [
    ['ro', 'rw', MS_RDONLY],
    ['nosuid', 'suid', MS_NOSUID],
    ['nodev', 'dev', MS_NODEV],
    ['noexec', 'exec', MS_NOEXEC],
    ['sync', 'async', MS_SYNCHRONOUS],
    ['noatime', 'atime', MS_NOATIME],
    ['nodiratime', 'diratime', MS_NODIRATIME],
    ['mand', 'nomand', MS_MANDLOCK],
    ['relatime', 'norelatime', MS_RELATIME],
    ['strictatime', 'nostrictatime', MS_STRICTATIME],
  ] as [string, string, number][]) {
    const off = parseMountOptions([a, b]);
    t.equal(off.flags & bit, 0, `${a},${b}: bit cleared from flags`);
    t.equal(off.clear & bit, bit, `${a},${b}: bit recorded in clear`);
    const on = parseMountOptions([b, a]);
    t.equal(on.flags & bit, bit, `${b},${a}: bit set`);
    t.equal(on.clear & bit, 0, `${b},${a}: bit no longer in clear`);
  }
  t.equal(parseMountOptions(['ro', 'rw']).flags, 0, 'rw after ro: read-write');
  t.equal(parseMountOptions(['rw', 'ro']).flags, MS_RDONLY, 'ro after rw: read-only');
  t.equal(parseMountOptions(['ro', 'rw', 'ro']).flags, MS_RDONLY, 'the last one wins');
});

t.test('flags accumulate', async (t) => {
  const o = parseMountOptions(['nosuid', 'noexec', 'nodev', 'relatime', 'ro']);
  t.equal(o.flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY);
  t.equal(o.clear, 0);
  const d = parseMountOptions(['nosuid', 'strictatime', 'mode=755', 'size=65536k']);
  t.equal(d.flags, MS_NOSUID | MS_STRICTATIME, '/dev tmpfs flags');
  t.strictSame(d.data, ['mode=755', 'size=65536k'], '/dev tmpfs data in order');
  t.equal(parseMountOptions(['defaults']).flags, 0, 'defaults sets nothing');
  t.equal(parseMountOptions(['ro', 'defaults']).flags, MS_RDONLY, 'defaults does not clear ro');
});

t.test('propagation values, recursive ones included', async (t) => {
  for (const [opt, flag] of PROPAGATION) {
    t.strictSame(
      parseMountOptions([opt]),
      { flags: 0, clear: 0, propagation: [flag], data: [], bind: false, recursive: false },
      `${opt} → ${flag.toString(16)}`,
    );
  }
  const both = parseMountOptions(['rprivate', 'nosuid', 'rslave']);
  t.strictSame(both.propagation, [MS_PRIVATE | MS_REC, MS_SLAVE | MS_REC], 'kept in order, one entry each');
  t.equal(both.flags, MS_NOSUID, 'propagation never leaks into flags');
  t.equal(parseMountOptions(['rshared']).recursive, false, 'rshared does not make a bind recursive');
});

t.test('bind and rbind', async (t) => {
  t.strictSame(parseMountOptions(['bind']), {
    flags: 0,
    clear: 0,
    propagation: [],
    data: [],
    bind: true,
    recursive: false,
  });
  t.strictSame(parseMountOptions(['rbind']), {
    flags: 0,
    clear: 0,
    propagation: [],
    data: [],
    bind: true,
    recursive: true,
  });
  t.equal(parseMountOptions(['rbind', 'bind']).recursive, true, 'bind after rbind stays recursive');
  t.equal(parseMountOptions(['bind', 'rbind']).recursive, true, 'rbind after bind is recursive');
  const ro = parseMountOptions(['rbind', 'ro', 'nosuid']);
  t.equal(ro.flags, MS_RDONLY | MS_NOSUID, 'flags of a bind are still parsed (applied by remount)');
  t.equal(ro.bind, true);
});

t.test('anything else is filesystem data, in order', async (t) => {
  const o = parseMountOptions(['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']);
  t.strictSame(o.data, ['newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']);
  t.equal(o.flags, MS_NOSUID | MS_NOEXEC);
  t.strictSame(parseMountOptions(['size=0k', 'uid=1000', 'context="x"']).data, ['size=0k', 'uid=1000', 'context="x"']);
  t.strictSame(parseMountOptions(['RO']).data, ['RO'], 'options are case-sensitive: RO is data');
  t.strictSame(parseMountOptions(['tmpcopyup', 'idmap']).data, ['tmpcopyup', 'idmap'], 'unsupported runc extensions are data');
  t.equal(parseMountOptions(['tmpcopyup']).flags, 0);
  t.strictSame(parseMountOptions(['']).data, [''], 'an empty option is data');
});

t.test('supportedMountOptions', async (t) => {
  const opts = supportedMountOptions();
  t.strictSame(opts, [...opts].sort(), 'sorted');
  t.equal(new Set(opts).size, opts.length, 'no duplicates');
  for (const o of ['bind', 'rbind', 'ro', 'rw', 'private', 'rprivate', 'nosuid', 'strictatime', 'runbindable']) {
    t.ok(opts.includes(o), `contains ${o}`);
  }
  t.equal(opts.length, TABLE.length + PROPAGATION.length + 2, 'flag table + propagation + bind/rbind');
  t.strictSame(
    opts,
    [...TABLE.map(([o]) => o), ...PROPAGATION.map(([o]) => o), 'bind', 'rbind'].sort(),
    'exactly the options parseMountOptions understands',
  );
  t.notOk(opts.includes('tmpcopyup'), 'tmpcopyup (ignored with a warning) is not advertised');
  t.notOk(opts.includes('idmap'), 'idmap is not advertised');
  // Every advertised option is understood: none of them lands in data.
  for (const o of opts) t.strictSame(parseMountOptions([o]).data, [], `${o} is not data`);
});
