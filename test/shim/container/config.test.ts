import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { Spec } from '../../../src/oci/types.js';
import { applyContainerConfig } from '../../../src/shim/container/config.js';
import { computeCaps } from '../../../src/shim/container/flags.js';
import type { ContainerRecord } from '../../../src/shim/container/store.js';
import { prepareVolumes } from '../../../src/shim/container/volumes.js';

const base: Spec = {
  ociVersion: '1.2.0',
  process: { user: { uid: 0, gid: 0 }, cwd: '/', args: ['sh'] },
  root: { path: '/r' },
  mounts: [{ destination: '/proc', type: 'proc', source: 'proc' }, { destination: '/data', type: 'tmpfs', source: 'tmpfs' }],
  linux: { namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'mount' }] },
};

function rec(h: Partial<ContainerRecord['hostConfig']> = {}, c: Partial<ContainerRecord['config']> = {}): ContainerRecord {
  return {
    id: 'a'.repeat(64), name: 'x', created: '', image: 'i', imageId: 'sha256:x', chainIds: [], path: 'sh', args: [],
    config: { hostname: 'h1', user: '', env: [], workingDir: '', entrypoint: null, cmd: null, tty: false, openStdin: false, stopSignal: 'SIGTERM', labels: {}, exposedPorts: [], ...c },
    hostConfig: { network: 'bridge', ports: [], publishAll: false, mounts: [], autoRemove: false, readOnly: false, memory: 0, nanoCpus: 0, pidsLimit: 0, capAdd: [], capDrop: [], ...h },
    state: { restartCount: 0 },
  };
}

t.test('defaults: no limits, a network namespace, the network files bound', async (t) => {
  const s = applyContainerConfig(base, rec(), { hosts: '/c/hosts', hostname: '/c/hostname', resolvConf: '/c/resolv.conf' }, computeCaps([], []));
  t.same(s.linux?.resources, {});
  t.same(s.linux?.namespaces?.map((n) => n.type), ['pid', 'mount', 'network']);
  t.same(s.mounts?.slice(-3).map((m) => [m.destination, m.source]), [['/etc/hosts', '/c/hosts'], ['/etc/hostname', '/c/hostname'], ['/etc/resolv.conf', '/c/resolv.conf']]);
  t.equal(s.hostname, 'h1');
  t.equal(s.root?.readonly, false);
  t.same(s.process?.capabilities?.bounding, computeCaps([], []));
  t.equal(base.mounts?.length, 2, 'the base spec is not changed');
});

t.test('flags → config', async (t) => {
  const r = rec(
    { network: 'host', readOnly: true, memory: 64 * 1024 * 1024, nanoCpus: 1.5e9, pidsLimit: 20,
      mounts: [{ source: '/srv', destination: '/data', readOnly: true }, { source: '/v/_data', destination: '/etc/hosts', readOnly: false, volume: 'v' }] },
    { tty: true },
  );
  const s = applyContainerConfig(base, r, { hosts: '/c/hosts' }, ['CAP_KILL']);
  t.same(s.linux?.resources?.memory, { limit: 64 * 1024 * 1024, swap: 128 * 1024 * 1024 });
  t.same(s.linux?.resources?.cpu, { period: 100000, quota: 150000 });
  t.same(s.linux?.resources?.pids, { limit: 20 });
  t.same(s.linux?.namespaces?.map((n) => n.type), ['pid', 'mount'], '--network host: no network namespace');
  t.equal(s.root?.readonly, true);
  t.equal(s.process?.terminal, true);
  t.same(s.process?.capabilities, { bounding: ['CAP_KILL'], effective: ['CAP_KILL'], permitted: ['CAP_KILL'] });
  const data = s.mounts?.filter((m) => m.destination === '/data');
  t.same(data, [{ destination: '/data', type: 'bind', source: '/srv', options: ['rbind', 'rprivate', 'ro'] }], 'a volume replaces the image mount on its path');
  t.same(s.mounts?.filter((m) => m.destination === '/etc/hosts').map((m) => m.source), ['/v/_data'], "a volume on /etc/hosts wins over the network's file");
});

t.test('volumes: made on first use, image volumes anonymous unless covered', async (t) => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-vol-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const host = path.join(root, 'host', 'made');
  const m = prepareVolumes(root, [
    { kind: 'bind', source: host, destination: '/h', readOnly: true },
    { kind: 'named', name: 'cache', destination: '/cache', readOnly: false },
  ], ['/cache', '/data/']);
  t.ok(fs.statSync(host).isDirectory(), 'a missing bind source is made, as Docker does');
  t.same(m.map((v) => [v.destination, v.volume === undefined ? 'bind' : v.anonymous ? 'anon' : v.volume]), [['/h', 'bind'], ['/cache', 'cache'], ['/data', 'anon']]);
  t.ok(fs.statSync(path.join(root, 'volumes', 'cache', '_data')).isDirectory());
  t.match(m[2].volume, /^[0-9a-f]{64}$/);
  t.throws(() => prepareVolumes(root, [{ kind: 'anonymous', destination: '/a', readOnly: false }, { kind: 'anonymous', destination: '/a', readOnly: false }], []), { message: 'Duplicate mount point: /a' });
});
