/** Host ports: a taken one is refused Docker's way, a random one is free and in the ephemeral range. */
import net from 'node:net';
import t from 'tap';
import { choosePorts, ephemeralRange } from '../../../src/shim/network/hostports.js';

const spec = (hostPort: number, hostIp = '127.0.0.1', proto: 'tcp' | 'udp' = 'tcp') => ({ hostIp, hostPort, containerPort: 80, proto });

t.test('a port something listens on is already allocated', async (t) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => srv.close());
  const port = (srv.address() as net.AddressInfo).port;
  await t.rejects(choosePorts([spec(port)], []), { message: `Bind for 127.0.0.1:${port} failed: port is already allocated` });
  await t.resolves(choosePorts([spec(port, '127.0.0.1', 'udp')], []), 'the other protocol is free');
});

t.test("another container's port, or the same one twice, is already allocated", async (t) => {
  await t.rejects(choosePorts([spec(18080)], [spec(18080, '0.0.0.0')]), /Bind for 127\.0\.0\.1:18080 failed: port is already allocated/);
  await t.rejects(choosePorts([spec(18081), spec(18081)], []), /port is already allocated/);
});

t.test('an address the host does not have', async (t) => {
  await t.rejects(choosePorts([spec(18082, '192.0.2.1')], []), /listen tcp4 192\.0\.2\.1:18082: bind: cannot assign requested address/);
});

t.test('random ports: in the ephemeral range, distinct', async (t) => {
  const [lo, hi] = ephemeralRange();
  const got = await choosePorts([spec(0), spec(0), spec(0, '127.0.0.1', 'udp')], []);
  for (const p of got) t.ok(p.hostPort >= lo && p.hostPort <= hi, `${p.hostPort} in ${lo}-${hi}`);
  t.equal(new Set(got.slice(0, 2).map((p) => p.hostPort)).size, 2);
  // a generator that always draws the same taken port gives up, bounded
  await t.rejects(choosePorts([spec(0)], [spec(lo, '0.0.0.0')], () => 0), /no free host port for 80\/tcp/);
});
