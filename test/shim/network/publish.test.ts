/** `-p` / `-P` parsing: Docker's forms, ranges, and one clear error per bad value. */
import t from 'tap';
import { UserError } from '../../../src/errors.js';
import { formatPort, parsePublish, publishAll } from '../../../src/shim/network/publish.js';
import { portsConflict } from '../../../src/shim/network/publish.js';
import { parseNetworkMode } from '../../../src/shim/network/index.js';

t.test('the forms Docker accepts', async (t) => {
  t.same(parsePublish('8080:80'), [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' }]);
  t.same(parsePublish('127.0.0.1:8080:80/udp'), [{ hostIp: '127.0.0.1', hostPort: 8080, containerPort: 80, proto: 'udp' }]);
  t.same(parsePublish('80'), [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 80, proto: 'tcp' }], 'CTR alone: a random host port');
  t.same(parsePublish('127.0.0.1::80'), [{ hostIp: '127.0.0.1', hostPort: 0, containerPort: 80, proto: 'tcp' }]);
  t.same(parsePublish(':8080:80'), [{ hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' }], 'empty IP is every address');
  t.same(parsePublish('53/UDP'), [{ hostIp: '0.0.0.0', hostPort: 0, containerPort: 53, proto: 'udp' }], 'protocol is case-insensitive');
});

t.test('ranges', async (t) => {
  t.same(
    parsePublish('8080-8082:80-82').map(formatPort),
    ['0.0.0.0:8080->80/tcp', '0.0.0.0:8081->81/tcp', '0.0.0.0:8082->82/tcp'],
  );
  t.same(parsePublish('80-81/udp').map((p) => [p.hostPort, p.containerPort, p.proto]), [
    [0, 80, 'udp'],
    [0, 81, 'udp'],
  ]);
});

t.test('bad values: one line naming the problem', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['', /empty value/],
    ['8080:abc', /invalid containerPort: abc/],
    ['x:80', /invalid hostPort: x/],
    ['0:80', /ports are 1-65535/],
    ['8080:70000', /ports are 1-65535/],
    ['8080:80/sctp', /sctp is not supported/],
    ['8080:80/icmp', /invalid proto: icmp/],
    ['300.1.1.1:8080:80', /invalid ip address: 300\.1\.1\.1/],
    ['[::1]:8080:80', /IPv6/],
    ['::1:8080:80', /IPv6|too many colons/],
    ['8080-8081:80', /differ in length/],
    ['81-80', /ends before it starts/],
    ['1-5000:1-5000', /at most 1024/],
    ['8080:', /no container port/],
  ];
  for (const [v, re] of cases) {
    try {
      parsePublish(v);
      t.fail(`${JSON.stringify(v)} accepted`);
    } catch (e) {
      t.ok(e instanceof UserError, `${JSON.stringify(v)}: a UserError`);
      t.match((e as Error).message, re, `${JSON.stringify(v)}: ${(e as Error).message}`);
      t.notMatch((e as Error).message, /\n/, 'one line');
    }
  }
});

t.test('-P publishes every exposed port on a random host port', async (t) => {
  // (sorted: an integer-like key such as "8443" comes first in a JS object)
  t.same(publishAll({ '80/tcp': {}, '53/udp': {}, '8443': {} }).map(formatPort).sort(), [
    '0.0.0.0:0->53/udp',
    '0.0.0.0:0->80/tcp',
    '0.0.0.0:0->8443/tcp',
  ]);
  t.same(publishAll(undefined), []);
  t.same(publishAll(['9000-9001/tcp']).length, 2);
  t.throws(() => publishAll({ 'abc/tcp': {} }), /image exposes an invalid port "abc\/tcp"/);
  t.throws(() => publishAll({ '1:2/tcp': {} }), /image exposes an invalid port/);
});

t.test('conflicts: same proto and port, overlapping addresses', async (t) => {
  const p = (hostIp: string, hostPort: number, proto: 'tcp' | 'udp' = 'tcp') => ({ hostIp, hostPort, containerPort: 1, proto });
  t.ok(portsConflict(p('0.0.0.0', 80), p('127.0.0.1', 80)));
  t.ok(portsConflict(p('127.0.0.1', 80), p('127.0.0.1', 80)));
  t.notOk(portsConflict(p('127.0.0.1', 80), p('127.0.0.2', 80)));
  t.notOk(portsConflict(p('0.0.0.0', 80), p('0.0.0.0', 80, 'udp')));
  t.notOk(portsConflict(p('0.0.0.0', 80), p('0.0.0.0', 81)));
  t.notOk(portsConflict(p('0.0.0.0', 0), p('0.0.0.0', 0)), 'unchosen ports do not conflict');
});

t.test('--network: bridge (also "default"), host, none; anything else not found', async (t) => {
  t.equal(parseNetworkMode(undefined), 'bridge');
  t.equal(parseNetworkMode('default'), 'bridge');
  t.equal(parseNetworkMode('host'), 'host');
  t.equal(parseNetworkMode('none'), 'none');
  t.throws(() => parseNetworkMode('mynet'), { message: 'network mynet not found' });
});
