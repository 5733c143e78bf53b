import t from 'tap';
import { UserError } from '../../src/errors.js';
import { detectLayout, parseMountinfo, parseProcCgroup } from '../../src/cgroups/detect.js';
import * as fx from './fixtures/layouts.js';

const obj = (m: Map<string, string>) => Object.fromEntries(m);

t.test('hybrid: one mountpoint per controller, cgroup2 at unified, own cgroup per hierarchy', async (t) => {
  const l = detectLayout(fx.HYBRID_MOUNTINFO, fx.HYBRID_CGROUP);
  t.equal(l.mode, 'hybrid');
  t.equal(l.unified, '/sys/fs/cgroup/unified');
  t.same(obj(l.v1), {
    cpu: '/sys/fs/cgroup/cpu', cpuacct: '/sys/fs/cgroup/cpuacct', cpuset: '/sys/fs/cgroup/cpuset',
    memory: '/sys/fs/cgroup/memory', devices: '/sys/fs/cgroup/devices', freezer: '/sys/fs/cgroup/freezer',
    blkio: '/sys/fs/cgroup/blkio', pids: '/sys/fs/cgroup/pids', 'name=systemd': '/sys/fs/cgroup/systemd',
  });
  t.equal(l.own.get('memory'), '/user.slice/session-1.scope');
  t.equal(l.own.get('devices'), '/user.slice');
  t.equal(l.own.get('name=systemd'), '/user.slice/session-1.scope');
  t.equal(l.own.get('unified'), '/user.slice/session-1.scope');
});

t.test('v1 with co-mounted controllers: both names map to the one mountpoint', async (t) => {
  const l = detectLayout(fx.V1_COMOUNT_MOUNTINFO, fx.V1_COMOUNT_CGROUP);
  t.equal(l.mode, 'v1');
  t.equal(l.unified, undefined);
  t.equal(l.v1.get('cpu'), '/sys/fs/cgroup/cpu,cpuacct');
  t.equal(l.v1.get('cpuacct'), '/sys/fs/cgroup/cpu,cpuacct');
  t.equal(l.v1.get('net_cls'), '/sys/fs/cgroup/net_cls,net_prio');
  t.equal(l.v1.get('net_prio'), '/sys/fs/cgroup/net_cls,net_prio');
  t.equal(l.v1.get('name=systemd'), '/sys/fs/cgroup/systemd');
  t.notOk(l.v1.has('xattr'), 'mount flags are not controllers');
  t.notOk(l.v1.has('clone_children'));
  t.equal(l.own.get('cpuacct'), '/user.slice');
});

t.test('pure v2', async (t) => {
  const l = detectLayout(fx.V2_MOUNTINFO, fx.V2_CGROUP);
  t.equal(l.mode, 'v2');
  t.equal(l.unified, '/sys/fs/cgroup');
  t.equal(l.v1.size, 0);
  t.same(obj(l.own), { unified: '/user.slice/user-1000.slice/session-2.scope' });
});

t.test('v2 at /sys/fs/cgroup wins over a stray v1 name=systemd mount', async (t) => {
  const mi = fx.V2_MOUNTINFO + '90 24 0:50 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n';
  const l = detectLayout(mi, fx.V2_CGROUP + '1:name=systemd:/\n');
  t.equal(l.mode, 'v2');
  t.equal(l.v1.size, 0);
  t.notOk(l.own.has('name=systemd'));
});

t.test('nested container: own cgroup is made relative to the mount root', async (t) => {
  const l = detectLayout(fx.NESTED_MOUNTINFO, fx.NESTED_CGROUP);
  t.equal(l.own.get('devices'), '/');
  t.equal(l.own.get('memory'), '/inner');
});

t.test('a cgroup outside the mounted subtree anchors at the mountpoint', async (t) => {
  const l = detectLayout(fx.NESTED_MOUNTINFO, '5:devices:/elsewhere\n4:memory:/docker/abc\n');
  t.equal(l.own.get('devices'), '/');
});

t.test('a mount hidden by another on the same mountpoint is skipped', async (t) => {
  const mi = fx.V1_COMOUNT_MOUNTINFO + '99 31 0:77 /sub /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n';
  const l = detectLayout(mi, fx.V1_COMOUNT_CGROUP.replace('5:memory:/user.slice', '5:memory:/sub/x'));
  t.equal(l.v1.get('memory'), '/sys/fs/cgroup/memory');
  t.equal(l.own.get('memory'), '/x', 'resolved against the visible mount (root /sub)');
});

t.test('parsers', async (t) => {
  const [m] = parseMountinfo('40 31 0:37 / /mnt/with\\040space rw shared:1 master:2 - cgroup cgroup rw,name=x\nbogus line\n');
  t.equal(m.mountpoint, '/mnt/with space', 'octal escapes decoded');
  t.equal(m.fstype, 'cgroup', 'optional fields before "-" skipped');
  t.same(m.superOptions, ['rw', 'name=x']);
  t.same(obj(parseProcCgroup('3:cpu,cpuacct:/a\n0::/b\n1:name=systemd:/c\n')), {
    cpu: '/a', cpuacct: '/a', unified: '/b', 'name=systemd': '/c',
  });
});

t.test('no cgroup mounts at all', async (t) => {
  t.throws(() => detectLayout('23 1 0:21 / /sys rw - sysfs sysfs rw\n', '0::/\n'), UserError);
});

t.test('defaults read this host', async (t) => {
  const l = detectLayout();
  t.ok(['v1', 'hybrid', 'v2'].includes(l.mode));
});
