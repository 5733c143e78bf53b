import { existsSync } from 'node:fs';
import t from 'tap';
import { UserError } from '../../src/errors.js';
import { detectLayout } from '../../src/cgroups/detect.js';
import { cgroupsFromPaths, openCgroups, SYSTEMD_RUN_DIR } from '../../src/cgroups/manager.js';
import * as fx from './fixtures/layouts.js';

const hybrid = detectLayout(fx.HYBRID_MOUNTINFO, fx.HYBRID_CGROUP);
const v1 = detectLayout(fx.V1_COMOUNT_MOUNTINFO, fx.V1_COMOUNT_CGROUP);
const v2 = detectLayout(fx.V2_MOUNTINFO, fx.V2_CGROUP);
const nested = detectLayout(fx.NESTED_MOUNTINFO, fx.NESTED_CGROUP);

const paths = (layout: typeof v1, cgroupsPath?: string, id = 'ctr1') =>
  openCgroups({ id, cgroupsPath, layout }).paths;

t.test('hybrid', async (t) => {
  t.same(paths(hybrid), {
    cpuset: '/sys/fs/cgroup/cpuset/ctr1',
    devices: '/sys/fs/cgroup/devices/user.slice/ctr1',
    memory: '/sys/fs/cgroup/memory/user.slice/session-1.scope/ctr1',
    cpu: '/sys/fs/cgroup/cpu/ctr1',
    cpuacct: '/sys/fs/cgroup/cpuacct/ctr1',
    pids: '/sys/fs/cgroup/pids/user.slice/session-1.scope/ctr1',
    blkio: '/sys/fs/cgroup/blkio/ctr1',
    freezer: '/sys/fs/cgroup/freezer/ctr1',
    'name=systemd': '/sys/fs/cgroup/systemd/user.slice/session-1.scope/ctr1',
    // runc: GetOwnCgroupPath("") is the hybrid mountpoint itself
    unified: '/sys/fs/cgroup/unified/ctr1',
  }, 'empty cgroupsPath = relative "<id>", under our own cgroup per v1 hierarchy');

  t.same(paths(hybrid, '/machine/c1'), {
    cpuset: '/sys/fs/cgroup/cpuset/machine/c1',
    devices: '/sys/fs/cgroup/devices/machine/c1',
    memory: '/sys/fs/cgroup/memory/machine/c1',
    cpu: '/sys/fs/cgroup/cpu/machine/c1',
    cpuacct: '/sys/fs/cgroup/cpuacct/machine/c1',
    pids: '/sys/fs/cgroup/pids/machine/c1',
    blkio: '/sys/fs/cgroup/blkio/machine/c1',
    freezer: '/sys/fs/cgroup/freezer/machine/c1',
    'name=systemd': '/sys/fs/cgroup/systemd/machine/c1',
    unified: '/sys/fs/cgroup/unified/machine/c1',
  }, 'absolute: from each hierarchy root');

  const rel = paths(hybrid, 'pod/c1');
  t.equal(rel.memory, '/sys/fs/cgroup/memory/user.slice/session-1.scope/pod/c1');
  t.equal(rel.cpu, '/sys/fs/cgroup/cpu/pod/c1');
  t.equal(rel.unified, '/sys/fs/cgroup/unified/pod/c1');
});

t.test('v1 with cpu,cpuacct co-mounted', async (t) => {
  const def = paths(v1);
  t.equal(def.cpu, '/sys/fs/cgroup/cpu,cpuacct/user.slice/ctr1');
  t.equal(def.cpuacct, def.cpu, 'one directory for both controllers');
  t.equal(def.net_cls, '/sys/fs/cgroup/net_cls,net_prio/ctr1');
  t.equal(def.net_prio, def.net_cls);
  t.equal(def.pids, '/sys/fs/cgroup/pids/user.slice/user-1000.slice/session-2.scope/ctr1');
  t.equal(def['name=systemd'], '/sys/fs/cgroup/systemd/user.slice/user-1000.slice/session-2.scope/ctr1');
  t.notOk('unified' in def, 'no cgroup2 tree on pure v1');
  t.same(Object.keys(def).sort(), [
    'cpu', 'cpuacct', 'cpuset', 'devices', 'freezer', 'memory', 'name=systemd', 'net_cls', 'net_prio', 'pids',
  ]);

  const abs = paths(v1, '/a/b/');
  t.equal(abs.cpu, '/sys/fs/cgroup/cpu,cpuacct/a/b', 'trailing slash dropped');
  t.equal(abs.memory, '/sys/fs/cgroup/memory/a/b');

  const rel = paths(v1, './x//y');
  t.equal(rel.devices, '/sys/fs/cgroup/devices/user.slice/x/y', 'relative, normalised');
});

t.test('pure v2', async (t) => {
  t.same(paths(v2), { unified: '/sys/fs/cgroup/user.slice/user-1000.slice/ctr1' },
    'relative goes under the PARENT of our own cgroup (fs2 defaultpath.go)');
  t.same(paths(v2, '/machine.slice/c1'), { unified: '/sys/fs/cgroup/machine.slice/c1' });
  t.same(paths(v2, 'c1/sub'), { unified: '/sys/fs/cgroup/user.slice/user-1000.slice/c1/sub' });
  const root = detectLayout(fx.V2_MOUNTINFO, '0::/\n');
  t.same(paths(root), { unified: '/sys/fs/cgroup/ctr1' }, 'own cgroup "/" has no parent to go to');
});

t.test('nested container: relative to the visible part of the tree', async (t) => {
  t.same(paths(nested), { devices: '/sys/fs/cgroup/devices/ctr1', memory: '/sys/fs/cgroup/memory/inner/ctr1' });
});

t.test('invalid linux.cgroupsPath', async (t) => {
  for (const bad of ['../escape', '/a/../../b', 'a/..', 'x\0y', '/', '//', '.', './']) {
    t.throws(() => paths(hybrid, bad), { name: 'UserError', message: /^linux\.cgroupsPath: / }, JSON.stringify(bad));
  }
  t.throws(() => paths(hybrid, undefined, '../x'), UserError, 'an id cannot escape either');
  t.throws(() => paths(hybrid, undefined, 'a/b'), UserError);
});

t.test('v1 without a devices hierarchy is refused, like runc', async (t) => {
  const noDevices = detectLayout(fx.V1_COMOUNT_MOUNTINFO.replace(/^.*devices.*\n/m, ''), fx.V1_COMOUNT_CGROUP);
  t.throws(() => paths(noDevices), { message: /devices controller is not mounted/ });
});

t.test('--systemd-cgroup', async (t) => {
  const expected = existsSync(SYSTEMD_RUN_DIR)
    ? /systemd cgroup driver \(--systemd-cgroup\) is not supported yet/
    : /^systemd cgroup driver requested but systemd is not running \(\/run\/systemd\/system missing\)$/;
  t.throws(() => openCgroups({ id: 'c', systemd: true, layout: hybrid }), { name: 'UserError', message: expected });
});

t.test('state round trip', async (t) => {
  const cg = openCgroups({ id: 'c', cgroupsPath: '/x/c', layout: hybrid });
  const state = JSON.parse(JSON.stringify({ cgroups: cg }));
  t.same(state.cgroups, { paths: cg.paths, created: [] });
  const again = cgroupsFromPaths(state.cgroups.paths, state.cgroups.created);
  t.same(again.paths, cg.paths);
  t.same(again.created, []);
  t.throws(() => cgroupsFromPaths({ pids: 'relative/x' }), UserError);
  t.throws(() => cgroupsFromPaths({ pids: '/sys/fs/cgroup/pids/x' }, ['/sys/fs/cgroup/../../etc']), UserError);
});

t.test('pids() picks one hierarchy', async (t) => {
  // These directories do not exist, so the choice shows in the error message.
  const pick = (p: Record<string, string>) => {
    try {
      cgroupsFromPaths(p).pids();
      return '';
    } catch (err) {
      return (err as Error).message;
    }
  };
  const base = '/nonexistent-tsrun-test';
  t.match(pick({ unified: `${base}/u` }), `read ${base}/u/cgroup.procs: No such file or directory`);
  t.match(pick({ memory: `${base}/m`, freezer: `${base}/f`, pids: `${base}/p`, unified: `${base}/u` }), `${base}/p/`);
  t.match(pick({ memory: `${base}/m`, freezer: `${base}/f`, unified: `${base}/u` }), `${base}/f/`);
  t.match(pick({ memory: `${base}/m`, unified: `${base}/u` }), `${base}/m/`);
  t.same(cgroupsFromPaths({}).pids(), []);
});

t.test('preparePlacement: the v1 tasks files the spawner joins, never the v2 directory', async (t) => {
  const cg = cgroupsFromPaths({
    cpu: '/sys/fs/cgroup/cpu,cpuacct/x',
    cpuacct: '/sys/fs/cgroup/cpu,cpuacct/x',
    pids: '/sys/fs/cgroup/pids/x',
    unified: '/sys/fs/cgroup/unified/x',
  });
  t.same(cg.preparePlacement(), ['/sys/fs/cgroup/cpu,cpuacct/x/tasks', '/sys/fs/cgroup/pids/x/tasks'], 'co-mounted once; unified by clone3');
  t.same(cgroupsFromPaths({ unified: '/sys/fs/cgroup/x' }).preparePlacement(), [], 'pure v2: nothing to join');
});
