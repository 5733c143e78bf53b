/**
 * Container networking end to end, with real tsrun containers (busybox
 * httpd) whose network is set up by the shim's network module, run inside a
 * sandbox network namespace per test that stands in for the host (nothing
 * here touches the real host's network, nothing can leave the machine).
 * Checks content through 127.0.0.1, the bridge's address and another host
 * address, 100 parallel connections, UDP, hairpin, conflicts, and that
 * teardown (also after the container is gone) leaves no link, address, nft
 * rule or lease behind.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t, { type Test } from 'tap';
import { exec, tsrun } from '../lib/harness.js';
import type { NetworkFiles, NetworkRecord, PortSpec } from '../../src/shim/network/index.js';
import { driver, filesUnder, sandbox, type Sandbox, sandboxNetwork, webContainer } from './network-lib.js';
import { skipUnless } from './lib.js';

const skip = process.getuid?.() !== 0 ? 'needs root' : skipUnless(['ip', 'nft', 'nsenter', 'conntrack']);

function storeRoot(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-netspec-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const tcp = (hostPort: number, containerPort = 80, hostIp = '0.0.0.0'): PortSpec => ({ hostIp, hostPort, containerPort, proto: 'tcp' });

interface HttpResult {
  ok: number;
  failed: number;
  bodies: Record<string, number>;
  errors: string[];
}

const setup = (sb: Sandbox, opts: object) => sb.driver<NetworkRecord>(['setup', JSON.stringify(opts)]);

/**
 * Another address of the "host", as a LAN interface would give it: lan0
 * (paired with lan1: this kernel has no dummy links) with `cidr`.
 */
async function addLan(t: Test, sb: Sandbox, cidr: string) {
  for (const args of [['link', 'add', 'lan0', 'type', 'veth', 'peer', 'name', 'lan1'], ['addr', 'add', cidr, 'dev', 'lan0'], ['link', 'set', 'lan0', 'up']]) {
    t.equal((await sb.run('ip', args)).code, 0, `ip ${args.join(' ')}`);
  }
}

/** After the last teardown: the sandbox as it was (lo, plus what the test added), no table, no lease. */
async function assertClean(t: Test, sb: Sandbox, root: string, links: string[]) {
  const net = await sandboxNetwork(sb);
  t.same(net.links.sort(), links.sort(), 'no link left');
  t.notOk(net.addresses.some((a) => a.startsWith('tsctl0') || a.startsWith('tsv')), 'no address left', { addresses: net.addresses });
  t.equal(net.ruleset, '', 'no nft table or rule left');
  t.same(filesUnder(path.join(root, 'network')), [], 'no lease, record or bridge state left');
  const fwd = await sb.run('cat', ['/proc/sys/net/ipv4/ip_forward']);
  t.equal(fwd.stdout.trim(), '0', 'ip_forward restored');
}

t.test('bridge: TCP and UDP through every host address, 100 parallel, hairpin; teardown leaves nothing', { skip }, async (t) => {
  const sb = await sandbox(t);
  const root = storeRoot(t);
  await addLan(t, sb, '10.123.0.1/24');
  const c = await webContainer(t, 'hello from the container\n');
  const files = await sb.driver<NetworkFiles>(['files', root, c.id, 'web', 'bridge']);
  const rec = await setup(sb, {
    root,
    cid: c.id,
    mode: 'bridge',
    hostname: 'web',
    netnsPath: c.netnsPath,
    ports: [tcp(8080), { hostIp: '0.0.0.0', hostPort: 0, containerPort: 9999, proto: 'udp' }],
  });
  t.equal((await c.start()).code, 0, 'tsrun start');
  t.match(rec, { mode: 'bridge', bridge: 'tsctl0', subnet: '172.31.0.0/16', gateway: '172.31.0.1', address: '172.31.0.2', prefixLen: 16 });
  t.equal(rec.ports[0]!.hostPort, 8080);
  const udpPort = rec.ports[1]!.hostPort;
  t.ok(udpPort > 1024, `random UDP host port ${udpPort}`);
  t.match(fs.readFileSync(files.hosts, 'utf8'), /\n172\.31\.0\.2\tweb\n$/, '/etc/hosts names the container address');

  const inside = await exec('nsenter', [`--net=${c.netnsPath}`, 'ip', '-o', '-4', 'addr', 'show']);
  t.match(inside.stdout, /eth0\s+inet 172\.31\.0\.2\/16/, 'eth0 has the leased address');
  t.match(inside.stdout, /lo\s+inet 127\.0\.0\.1/, 'lo is up');
  const route = await exec('nsenter', [`--net=${c.netnsPath}`, 'ip', 'route', 'show', 'default']);
  t.match(route.stdout, /default via 172\.31\.0\.1 dev eth0/, 'default route via the bridge');

  const page = 'hello from the container\n';
  const many = await sb.driver<HttpResult>(['http', '127.0.0.1', '8080', '100'], 120_000);
  t.same(many, { ok: 100, failed: 0, bodies: { [page]: 100 }, errors: [] }, '100 parallel connections through 127.0.0.1:8080');
  for (const addr of ['172.31.0.1', '10.123.0.1']) {
    const r = await sb.driver<HttpResult>(['http', addr, '8080', '3']);
    t.same(r.bodies, { [page]: 3 }, `page through ${addr}:8080`, { errors: r.errors });
  }
  const direct = await sb.driver<HttpResult>(['http', '172.31.0.2', '80', '1']);
  t.same(direct.bodies, { [page]: 1 }, 'page at the container address directly');
  const hairpin = await tsrun(['exec', c.id, 'wget', '-qO-', 'http://172.31.0.1:8080/']);
  t.equal(hairpin.stdout, page, 'the container reaches its own published port through the host (hairpin)', { stderr: hairpin.stderr });

  // UDP: an echo server in the container's namespace (busybox's nc has no -u)
  const echo = spawn('nsenter', [`--net=${c.netnsPath}`, process.execPath, await driver(), 'udp-echo', '9999'], { stdio: 'ignore', detached: true });
  const killEcho = () => {
    try {
      process.kill(-echo.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  };
  t.teardown(killEcho);
  for (const addr of ['127.0.0.1', '10.123.0.1']) {
    const r = await sb.driver<{ reply: string }>(['udp', addr, String(udpPort), `ping-${addr}`]);
    t.equal(r.reply, `echo:ping-${addr}`, `UDP echo through ${addr}:${udpPort}`);
  }
  killEcho();
  const flows = () => sb.run('conntrack', ['-L', '-p', 'udp', '--reply-src', '172.31.0.2']);
  t.match((await flows()).stdout, /src=172\.31\.0\.2 .*sport=9999/, 'the UDP flows are in conntrack');

  await sb.driver(['teardown', root, c.id]);
  t.notMatch((await flows()).stdout, /src=172\.31\.0\.2 .*sport=9999/, 'teardown dropped them (a client kept sending would stay NATed to a gone address)');
  await assertClean(t, sb, root, ['lo', 'lan0', 'lan1']);
  const refused = await sb.driver<HttpResult>(['http', '127.0.0.1', '8080', '1']);
  t.equal(refused.ok, 0, 'the port is no longer forwarded');
  await t.resolves(sb.driver(['teardown', root, c.id]), 'teardown again: idempotent');
});

t.test('two containers set up at once: an address each, a taken port refused with nothing left, one removed leaves the other', { skip }, async (t) => {
  const sb = await sandbox(t);
  const root = storeRoot(t);
  const a = await webContainer(t, 'A\n');
  const b = await webContainer(t, 'B\n');
  // at once: both may find no bridge yet; the lock makes one create it
  const [ra, rb] = await Promise.all([
    setup(sb, { root, cid: a.id, mode: 'bridge', hostname: 'a', netnsPath: a.netnsPath, ports: [tcp(8080)] }),
    setup(sb, { root, cid: b.id, mode: 'bridge', hostname: 'b', netnsPath: b.netnsPath, ports: [tcp(8081)] }),
  ]);
  await a.start();
  await b.start();
  t.same([ra.address, rb.address].sort(), ['172.31.0.2', '172.31.0.3'], 'concurrent setups: one address each');

  const c = await webContainer(t, 'C\n');
  const before = await sandboxNetwork(sb);
  await t.rejects(
    setup(sb, { root, cid: c.id, mode: 'bridge', hostname: 'c', netnsPath: c.netnsPath, ports: [tcp(8081, 80, '127.0.0.1')] }),
    { message: 'Bind for 127.0.0.1:8081 failed: port is already allocated' },
    "another container's host port is refused, Docker's words",
  );
  t.same(await sandboxNetwork(sb), before, 'the refused setup left no link, address or rule');
  t.notOk(fs.existsSync(path.join(root, 'network', 'containers', `${c.id}.json`)), 'nor a record');
  t.same(filesUnder(path.join(root, 'network', 'leases')), ['172.31.0.2', '172.31.0.3'], 'nor a lease');

  const [pa, pb] = await Promise.all([
    sb.driver<HttpResult>(['http', '127.0.0.1', '8080', '5']),
    sb.driver<HttpResult>(['http', '127.0.0.1', '8081', '5']),
  ]);
  t.same([pa.bodies, pb.bodies], [{ 'A\n': 5 }, { 'B\n': 5 }], 'each port reaches its own container');
  // Both ways the bridge can hand packets to netfilter: with br_netfilter
  // (bridge-nf-call-iptables=1, this sandbox's default when the module is
  // loaded) and without.
  const brnf = '/proc/sys/net/bridge/bridge-nf-call-iptables';
  for (const v of fs.existsSync(brnf) ? ['1', '0'] : ['']) {
    if (v) t.equal((await sb.run('sysctl', ['-qw', `net.bridge.bridge-nf-call-iptables=${v}`])).code, 0, `bridge-nf-call-iptables=${v}`);
    const bToA = await tsrun(['exec', b.id, 'wget', '-qO-', 'http://172.31.0.1:8080/']);
    t.equal(bToA.stdout, 'A\n', `one container reaches the other through a published port (br_netfilter ${v || 'absent'})`);
    const aToA = await tsrun(['exec', a.id, 'wget', '-qO-', 'http://172.31.0.1:8080/']);
    t.equal(aToA.stdout, 'A\n', `and its own (hairpin, br_netfilter ${v || 'absent'})`);
  }

  await sb.driver(['teardown', root, a.id]);
  const mid = await sandboxNetwork(sb);
  t.notMatch(mid.ruleset, new RegExp(a.id), "a's rules are gone");
  t.match(mid.ruleset, new RegExp(`comment "${b.id}"`), "b's rules stay");
  t.ok(mid.links.includes('tsctl0'), 'the bridge stays while b uses it');
  t.equal((await sb.driver<HttpResult>(['http', '127.0.0.1', '8080', '1'])).ok, 0, "a's port no longer forwarded");
  t.same((await sb.driver<HttpResult>(['http', '127.0.0.1', '8081', '3'])).bodies, { 'B\n': 3 }, "b's still is");

  await sb.driver(['teardown', root, b.id]);
  await assertClean(t, sb, root, ['lo']);
});

t.test('the bridge subnet: the next one when the default is routed here, a configured one refused when it overlaps; a port on 127.0.0.1 only', { skip }, async (t) => {
  const sb = await sandbox(t);
  const root = storeRoot(t);
  await addLan(t, sb, '172.31.7.1/24'); // 172.31/16 now overlaps a route here
  const c = await webContainer(t, 's\n');
  await t.rejects(setup(sb, { root, cid: c.id, mode: 'bridge', hostname: 's', netnsPath: c.netnsPath, ports: [], subnet: '172.31.0.0/16' }), {
    message: 'network: subnet 172.31.0.0/16 overlaps 172.31.7.0/24, which is already routed on this host',
  });
  t.same((await sandboxNetwork(sb)).links.sort(), ['lan0', 'lan1', 'lo'], 'the refused setup made nothing');
  const rec = await setup(sb, { root, cid: c.id, mode: 'bridge', hostname: 's', netnsPath: c.netnsPath, ports: [tcp(8080, 80, '127.0.0.1')] });
  t.match(rec, { subnet: '172.30.0.0/16', gateway: '172.30.0.1', address: '172.30.0.2' }, '172.31/16 is in use here: 172.30/16');
  await c.start();
  t.same((await sb.driver<HttpResult>(['http', '127.0.0.1', '8080', '2'])).bodies, { 's\n': 2 }, '-p 127.0.0.1:8080:80 answers on 127.0.0.1');
  t.equal((await sb.driver<HttpResult>(['http', '172.30.0.1', '8080', '1'])).ok, 0, 'and on no other address');
  await sb.driver(['teardown', root, c.id]);
  await assertClean(t, sb, root, ['lo', 'lan0', 'lan1']);
});

t.test('after a crash: the container and its namespace gone, teardown from the record alone', { skip }, async (t) => {
  const sb = await sandbox(t);
  const root = storeRoot(t);
  const c = await webContainer(t, 'x\n');
  await setup(sb, { root, cid: c.id, mode: 'bridge', hostname: 'x', netnsPath: c.netnsPath, ports: [tcp(8080), tcp(0, 81)] });
  await c.start();
  t.equal((await tsrun(['delete', '--force', c.id])).code, 0, 'the container is killed and deleted');
  await sb.driver(['teardown', root, c.id]);
  await assertClean(t, sb, root, ['lo']);
});

t.test('a container that died without a teardown (killed monitor, reboot) does not hold its port or address', { skip }, async (t) => {
  const sb = await sandbox(t);
  const root = storeRoot(t);
  const dead = await webContainer(t, 'dead\n');
  await setup(sb, { root, cid: dead.id, mode: 'bridge', hostname: 'd', netnsPath: dead.netnsPath, ports: [tcp(8080)] });
  t.equal((await tsrun(['delete', '--force', dead.id])).code, 0, 'gone, and nobody tore its network down');
  const live = await webContainer(t, 'live\n');
  const rec = await setup(sb, { root, cid: live.id, mode: 'bridge', hostname: 'l', netnsPath: live.netnsPath, ports: [tcp(8080)] });
  await live.start();
  t.equal(rec.address, '172.31.0.2', "the dead one's address is free again");
  t.same((await sb.driver<HttpResult>(['http', '127.0.0.1', '8080', '2'])).bodies, { 'live\n': 2 }, 'its port too');
  t.notOk(fs.existsSync(path.join(root, 'network', 'containers', `${dead.id}.json`)), "the dead one's record is gone");
  t.notMatch((await sandboxNetwork(sb)).ruleset, new RegExp(dead.id), 'and its rules');
  await sb.driver(['teardown', root, dead.id]); // its `rm -f` later: nothing to do, no error
  await sb.driver(['teardown', root, live.id]);
  await assertClean(t, sb, root, ['lo']);
});

t.test('none: only lo; -p with none is a conflict; host: nothing made, ports discarded with a warning', { skip }, async (t) => {
  const sb = await sandbox(t);
  const root = storeRoot(t);
  const c = await webContainer(t, 'n\n');
  await t.rejects(
    setup(sb, { root, cid: c.id, mode: 'none', hostname: 'n', netnsPath: c.netnsPath, ports: [tcp(8080)] }),
    { message: 'conflicting options: port publishing and the container type network mode' },
  );
  const rec = await setup(sb, { root, cid: c.id, mode: 'none', hostname: 'n', netnsPath: c.netnsPath, ports: [] });
  t.match(rec, { mode: 'none', ports: [] });
  const links = await exec('nsenter', [`--net=${c.netnsPath}`, 'ip', '-o', 'link', 'show']);
  const names = links.stdout.split('\n').filter(Boolean).map((l) => l.split(':')[1]!.trim());
  t.same(names, ['lo'], 'only lo');
  t.match(links.stdout, /lo: <LOOPBACK,UP,LOWER_UP>/, 'lo is up');
  t.same((await sandboxNetwork(sb)).links, ['lo'], 'no bridge made');
  await sb.driver(['teardown', root, c.id]);

  const h = await setup(sb, { root, cid: 'hostmode', mode: 'host', hostname: 'h', netnsPath: '', ports: [tcp(8080)] });
  t.same(h.warnings, ['Published ports are discarded when using host network mode']);
  t.same(h.ports, []);
  t.same((await sandboxNetwork(sb)).ruleset, '', 'no rule for host mode');
  await sb.driver(['teardown', root, 'hostmode']);
  t.same(filesUnder(path.join(root, 'network')), [], 'no record left');

  await t.rejects(sb.driver(['setup', JSON.stringify({ root, cid: 'bad"id', mode: 'bridge', hostname: 'h', netnsPath: c.netnsPath, ports: [] })]), {
    message: /invalid container id/,
  });
});
