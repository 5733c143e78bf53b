/**
 * Port forwarding by kernel NAT: the rules of `table ip tsctl`, as nft(8)
 * script text (pure functions, unit-tested), and applying/removing them.
 *
 * Why kernel NAT and not a userspace proxy: bench/portfwd.sh measures both
 * against a direct connection (bench/results/portfwd.json): DNAT forwards
 * at the direct path's throughput (per-round ratios 105-114% in two runs on
 * a machine loaded 7-9, where single medians swing by ±20%) and adds 6-13%
 * to a connection's setup; the best proxy (splice) 79-84% at 3.3-3.8x the
 * per-connection latency, Node's pipe 64-67%, socat 32-42%.
 * And DNAT needs no process per container, where a proxy would live in the
 * monitor, against its memory budget, and show clients the proxy's address
 * instead of theirs.
 *
 * The table is ours alone: the base chains dispatch every packet addressed
 * to one of the host's own addresses (`fib daddr type local`, which covers
 * 127.0.0.1 and every interface address) to `ports`, which holds one
 * `jump c-<hash>` per container, tagged with the container id as its
 * comment; the container's DNAT rules live in its own chain. Teardown
 * removes exactly that jump and chain; the last container removes the table.
 *
 * Postrouting, in the order the rules appear:
 *  - traffic from 127.0.0.0/8 DNATed to a container is SNATed to the
 *    gateway: a container cannot answer 127.0.0.1 (and the kernel only
 *    routes such packets off lo with route_localnet=1 on the bridge);
 *  - hairpin: a container reaching a published port (its own or another's)
 *    through a host address is SNATed to the gateway, so the reply comes
 *    back through the NAT instead of straight over the bridge;
 *  - containers going out through any other interface are masqueraded, as
 *    Docker does (inert where there is no uplink, as in the tests).
 */
import { createHash } from 'node:crypto';
import { UserError } from '../../errors.js';
import type { PortSpec } from './publish.js';
import { must, run } from './run.js';

export const TABLE = 'tsctl';

export interface NatBase {
  bridge: string;
  /** CIDR */
  subnet: string;
  gateway: string;
}

/** The container's own chain: a hash (chain names are short; ids may be long). */
export function chainName(cid: string): string {
  return `c-${createHash('sha256').update(cid).digest('hex').slice(0, 12)}`;
}

/** A container id as an nft comment: it must not need quoting beyond "…". */
export function checkTag(cid: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/.test(cid)) {
    throw new UserError(`network: invalid container id for a NAT rule tag: ${JSON.stringify(cid)}`);
  }
  return cid;
}

/** Creates the table from scratch (a stale one from a crash is replaced) in one transaction. */
export function baseScript(b: NatBase): string {
  return `add table ip ${TABLE}
delete table ip ${TABLE}
table ip ${TABLE} {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    fib daddr type local jump ports
  }
  chain output {
    type nat hook output priority -100; policy accept;
    fib daddr type local jump ports
  }
  chain ports {
  }
  chain postrouting {
    type nat hook postrouting priority 100; policy accept;
    ip saddr 127.0.0.0/8 oifname "${b.bridge}" snat to ${b.gateway}
    ip saddr ${b.subnet} ip daddr ${b.subnet} ct status dnat snat to ${b.gateway}
    ip saddr ${b.subnet} oifname != "${b.bridge}" masquerade
  }
}
`;
}

/** One DNAT rule per published port (its host port already chosen). */
export function portRule(chain: string, address: string, p: PortSpec, tag: string): string {
  if (!p.hostPort) throw new Error(`portRule: host port of ${p.containerPort}/${p.proto} not chosen`);
  const daddr = p.hostIp === '0.0.0.0' ? '' : `ip daddr ${p.hostIp} `;
  return `add rule ip ${TABLE} ${chain} ${daddr}${p.proto} dport ${p.hostPort} dnat to ${address}:${p.containerPort} comment "${tag}"`;
}

/** The container's chain, its rules, and the jump to it, in one transaction. */
export function containerScript(cid: string, address: string, ports: PortSpec[]): string {
  const tag = checkTag(cid);
  const chain = chainName(cid);
  const lines = [`add chain ip ${TABLE} ${chain}`, ...ports.map((p) => portRule(chain, address, p, tag))];
  lines.push(`add rule ip ${TABLE} ports jump ${chain} comment "${tag}"`);
  return `${lines.join('\n')}\n`;
}

interface NftJson {
  nftables?: Array<{
    chain?: { name: string; table: string };
    rule?: { chain: string; handle: number; comment?: string; expr?: Array<{ jump?: { target: string } }> };
  }>;
}

/**
 * What removes the container from a listing of the table (`nft -j -a list
 * table`): the jump rules tagged with its id (or jumping to its chain) and
 * its chain. Empty when nothing of it is there.
 */
export function removalScript(listing: NftJson, cid: string): string {
  const chain = chainName(cid);
  const lines: string[] = [];
  for (const item of listing.nftables ?? []) {
    const r = item.rule;
    if (r && r.chain === 'ports' && (r.comment === cid || r.expr?.some((e) => e.jump?.target === chain))) {
      lines.push(`delete rule ip ${TABLE} ports handle ${r.handle}`);
    }
  }
  if ((listing.nftables ?? []).some((i) => i.chain?.name === chain)) {
    lines.push(`flush chain ip ${TABLE} ${chain}`, `delete chain ip ${TABLE} ${chain}`);
  }
  return lines.length ? `${lines.join('\n')}\n` : '';
}

/** The table as JSON, or undefined when it does not exist. */
export async function listTable(): Promise<NftJson | undefined> {
  const r = await run('nft', ['-j', '-a', 'list', 'table', 'ip', TABLE]);
  if (r.code !== 0) {
    if (/No such file or directory/.test(r.stderr)) return undefined;
    if (r.code === 127) throw new UserError('network: nft is not installed (Debian package nftables)');
    throw new UserError(`network: nft list table ip ${TABLE}: ${r.stderr.trim().split('\n')[0] || `exit ${r.code}`}`);
  }
  return JSON.parse(r.stdout) as NftJson;
}

export function apply(what: string, script: string): Promise<string> {
  return must(what, 'nft', ['-f', '-'], script);
}

export async function createTable(b: NatBase): Promise<void> {
  await apply(`creating nft table ip ${TABLE}`, baseScript(b));
}

export async function deleteTable(): Promise<void> {
  if ((await listTable()) !== undefined) await apply(`deleting nft table ip ${TABLE}`, `delete table ip ${TABLE}\n`);
}

export async function addContainer(cid: string, address: string, ports: PortSpec[]): Promise<void> {
  await apply(`adding port forwarding for ${cid}`, containerScript(cid, address, ports));
}

export async function removeContainer(cid: string): Promise<void> {
  const listing = await listTable();
  if (!listing) return;
  const script = removalScript(listing, cid);
  if (script) await apply(`removing port forwarding of ${cid}`, script);
}
