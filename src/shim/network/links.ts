/**
 * The links: the bridge, one veth pair per container (the host end enslaved
 * to the bridge, the other end created directly in the container's network
 * namespace as eth0), and the container side's address, route and lo.
 * Everything through ip(8), batched: one process per side.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { UserError } from '../../errors.js';
import { ipToNumber, numberToIp, parseSubnet, type Subnet } from './ipam.js';
import { must, run } from './run.js';

/** The host end of a container's veth: "tsv" + a hash of the id (IFNAMSIZ is 16). */
export function hostVethName(cid: string): string {
  return `tsv${createHash('sha256').update(cid).digest('hex').slice(0, 10)}`;
}

/** A MAC derived from the address (Docker's 02:42:… scheme): a reused address keeps neighbours' ARP entries right. */
export function macFor(address: string): string {
  const n = ipToNumber(address);
  const b = [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
  return ['02', '42', ...b.map((x) => x.toString(16).padStart(2, '0'))].join(':');
}

export async function linkExists(name: string): Promise<boolean> {
  const r = await run('ip', ['-j', 'link', 'show', 'dev', name]);
  return r.code === 0;
}

/** Removes a link; one that is already gone is fine (teardown is idempotent). */
export async function deleteLink(name: string): Promise<void> {
  const r = await run('ip', ['link', 'del', 'dev', name]);
  if (r.code !== 0 && !/Cannot find device|does not exist/.test(r.stderr)) {
    throw new UserError(`network: ip link del ${name}: ${r.stderr.trim().split('\n')[0]}`);
  }
}

/** Writes a /proc/sys value of this network namespace; returns what was there. */
export function writeSysctl(key: string, value: string): string {
  const file = `/proc/sys/${key.replace(/\./g, '/')}`;
  const old = fs.readFileSync(file, 'utf8').trim();
  if (old !== value) fs.writeFileSync(file, `${value}\n`);
  return old;
}

export function readSysctl(key: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * The bridge with the gateway address, up. route_localnet=1 on it lets
 * connections to 127.0.0.1:HOST be DNATed out of it (the kernel otherwise
 * drops packets with a loopback source on a non-loopback interface); it is
 * the bridge's own setting, so it goes with the bridge.
 */
export async function createBridge(name: string, subnet: Subnet, gateway: string): Promise<void> {
  await must(
    `creating bridge ${name}`,
    'ip',
    ['-batch', '-'],
    `link add ${name} type bridge\naddr add ${gateway}/${subnet.prefix} dev ${name}\nlink set ${name} up\n`,
  );
  writeSysctl(`net.ipv4.conf.${name}.route_localnet`, '1');
}

/** The bridge's IPv4 addresses ("a.b.c.d/N"), or undefined when it does not exist. */
export async function bridgeAddresses(name: string): Promise<string[] | undefined> {
  const r = await run('ip', ['-j', '-4', 'addr', 'show', 'dev', name]);
  if (r.code !== 0) return undefined;
  const j = JSON.parse(r.stdout || '[]') as Array<{ addr_info?: Array<{ local: string; prefixlen: number }> }>;
  return j.flatMap((l) => (l.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
}

/** Every IPv4 destination routed in this namespace but the default route and those on `except`. */
export async function routedSubnets(except: string): Promise<Subnet[]> {
  const out = await must('listing routes', 'ip', ['-j', '-4', 'route', 'show', 'table', 'all']);
  const routes = JSON.parse(out || '[]') as Array<{ dst?: string; dev?: string; type?: string }>;
  const subnets: Subnet[] = [];
  for (const r of routes) {
    if (!r.dst || r.dst === 'default' || r.dev === except) continue;
    if (r.type === 'broadcast' || r.type === 'multicast') continue;
    const [ip, len] = r.dst.split('/');
    try {
      const prefix = len === undefined ? 32 : Number(len);
      const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
      subnets.push({ base: (ipToNumber(ip!) & mask) >>> 0, prefix });
    } catch {
      /* not an IPv4 route */
    }
  }
  return subnets;
}

/**
 * The veth pair: created with its peer already in the container's namespace
 * (ip(8) takes a namespace path) as eth0, the host end enslaved and up, with
 * hairpin on so a container can reach its own published port through a host
 * address when the bridge hands packets to iptables (br_netfilter).
 */
export async function addVeth(hostName: string, bridge: string, netnsPath: string, mac: string): Promise<void> {
  await must(
    `creating veth ${hostName}`,
    'ip',
    ['-batch', '-'],
    `link add ${hostName} type veth peer name eth0 address ${mac} netns ${netnsPath}\n` +
      `link set ${hostName} master ${bridge}\n` +
      `link set ${hostName} type bridge_slave hairpin on\n` +
      `link set ${hostName} up\n`,
  );
}

/** Inside the container's namespace: lo up, and for bridge mode eth0's address and the default route. */
export async function configureContainerSide(
  netnsPath: string,
  eth0?: { address: string; prefix: number; gateway: string },
): Promise<void> {
  let script = 'link set lo up\n';
  if (eth0) {
    script += `addr add ${eth0.address}/${eth0.prefix} dev eth0\nlink set eth0 up\nroute add default via ${eth0.gateway} dev eth0\n`;
  }
  await must('configuring the container network namespace', 'nsenter', [`--net=${netnsPath}`, 'ip', '-batch', '-'], script);
}

/** The subnet a bridge address "a.b.c.d/N" belongs to. */
export function subnetOfAddress(cidr: string): Subnet {
  const [ip, len] = cidr.split('/');
  const prefix = Number(len);
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  return parseSubnet(`${numberToIp((ipToNumber(ip!) & mask) >>> 0)}/${prefix}`);
}
