/**
 * Setting a container's network up and tearing it down, from the stored
 * record alone (so `rm -f` after a crash, with the container and its
 * namespace gone, still removes everything).
 *
 * State under <root>/network/:
 *   lock                   held while the shared parts may be created or removed
 *   bridge.json            the bridge, its subnet, and the sysctls we changed
 *   leases/<ip>            address leases (ipam.ts)
 *   containers/<cid>.json  one NetworkRecord per container whose network is set up
 *
 * The first bridge container creates the bridge and the NAT table; the last
 * one's teardown removes them and restores ip_forward if we changed it.
 * Everything acts on the network namespace this process runs in (the host's,
 * or the sandbox a test made with `ip netns exec`).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { filesFor, hostsContent, type NetworkMode, writeInPlace } from './files.js';
import { choosePorts } from './hostports.js';
import { allocate, formatSubnet, gatewayOf, leases, overlaps, parseSubnet, release, type Subnet } from './ipam.js';
import {
  addVeth,
  bridgeAddresses,
  configureContainerSide,
  createBridge,
  deleteLink,
  hostVethName,
  macFor,
  readSysctl,
  routedSubnets,
  subnetOfAddress,
  writeSysctl,
} from './links.js';
import { withLock } from './lock.js';
import * as nft from './nft.js';
import type { PortSpec } from './publish.js';
import { firstLine, run } from './run.js';

export const DEFAULT_BRIDGE = 'tsctl0';
export const DEFAULT_SUBNET = '172.31.0.0/16';

/** Tried in order when no subnet is configured and the default is routed here already. */
const CANDIDATES = [
  DEFAULT_SUBNET,
  ...Array.from({ length: 15 }, (_, i) => `172.${30 - i}.0.0/16`),
  ...Array.from({ length: 16 }, (_, i) => `10.${200 + i}.0.0/16`),
];

export interface SetupOptions {
  root: string;
  cid: string;
  mode: NetworkMode;
  ports: PortSpec[];
  hostname: string;
  /** the container's network namespace, e.g. /proc/<init pid>/ns/net (unused for `host`) */
  netnsPath: string;
  /** the bridge's subnet when it is created (default: $TSCTL_BRIDGE_SUBNET, else the first free of 172.31/16, 172.30/16, …) */
  subnet?: string;
}

/** What was set up for one container: everything teardown needs. */
export interface NetworkRecord {
  cid: string;
  mode: NetworkMode;
  hostname: string;
  /** published ports, host ports chosen */
  ports: PortSpec[];
  /** things the user should be told (Docker prints them as WARNING: …) */
  warnings: string[];
  bridge?: string;
  /** the bridge's subnet, CIDR */
  subnet?: string;
  gateway?: string;
  /** the container's eth0 address (without prefix) */
  address?: string;
  prefixLen?: number;
  mac?: string;
  /** the host end of the veth pair */
  hostVeth?: string;
  /** the container's nft chain, when it publishes ports */
  natChain?: string;
  /** the container's network namespace as setup found it (nsfs device and inode), to tell a live record from a stale one */
  netns?: { path: string; dev: number; ino: number };
  created: string;
}

interface BridgeState {
  bridge: string;
  subnet: string;
  gateway: string;
  /** net.ipv4.ip_forward before we set it to 1, when we changed it */
  ipForwardWas?: string;
}

const netDir = (root: string) => path.join(root, 'network');
const leaseDir = (root: string) => path.join(netDir(root), 'leases');
const recordDir = (root: string) => path.join(netDir(root), 'containers');
const recordFile = (root: string, cid: string) => path.join(recordDir(root), `${cid}.json`);
const bridgeFile = (root: string) => path.join(netDir(root), 'bridge.json');

function readJson<T>(file: string): T | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    if (e instanceof SyntaxError) return undefined; // torn by a crash mid-write: treated as absent
    throw e;
  }
}

function writeJson(file: string, value: unknown): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

/** The stored record of a container's network, or undefined. */
export function readNetworkRecord(root: string, cid: string): NetworkRecord | undefined {
  return readJson<NetworkRecord>(recordFile(root, cid));
}

/** Every stored record of this root. */
export function listNetworkRecords(root: string): NetworkRecord[] {
  let names: string[];
  try {
    names = fs.readdirSync(recordDir(root));
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .map((n) => readJson<NetworkRecord>(path.join(recordDir(root), n)))
    .filter((r): r is NetworkRecord => !!r);
}

function netnsIdentity(netnsPath: string): NetworkRecord['netns'] {
  try {
    const st = fs.statSync(netnsPath);
    return { path: netnsPath, dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

/**
 * A bridge record whose namespace is gone: its container died without a
 * teardown (the monitor was killed, the host rebooted: records live on disk,
 * links and rules do not). Its lease and host ports must not block others.
 * /proc/<pid>/ns/net of a reused pid is another namespace: the inode differs.
 */
function isStale(r: NetworkRecord): boolean {
  if (r.mode !== 'bridge' || !r.netns) return false;
  const now = netnsIdentity(r.netns.path);
  return !now || now.dev !== r.netns.dev || now.ino !== r.netns.ino;
}

function checkCid(cid: string): void {
  nft.checkTag(cid); // also what makes it safe as a file name
}

/** The subnet for a new bridge: the one configured (refused if routed here already), or the first free candidate. */
async function pickSubnet(bridge: string, configured: string | undefined): Promise<Subnet> {
  const routed = await routedSubnets(bridge);
  const clash = (s: Subnet) => routed.find((r) => overlaps(r, s));
  if (configured) {
    const s = parseSubnet(configured);
    const c = clash(s);
    if (c) throw new UserError(`network: subnet ${configured} overlaps ${formatSubnet(c)}, which is already routed on this host`);
    return s;
  }
  for (const cand of CANDIDATES) {
    const s = parseSubnet(cand);
    if (!clash(s)) return s;
  }
  throw new UserError('network: no free subnet for the bridge (set one with TSCTL_BRIDGE_SUBNET)');
}

/** The bridge, the NAT table and ip_forward, created when missing. Called with the lock held. */
async function ensureBase(root: string, bridge: string, configured: string | undefined, alone: boolean): Promise<BridgeState> {
  const stored = readJson<BridgeState>(bridgeFile(root));
  let addrs = await bridgeAddresses(bridge);
  if (addrs?.length && configured && formatSubnet(parseSubnet(configured)) !== formatSubnet(subnetOfAddress(addrs[0]!))) {
    const have = formatSubnet(subnetOfAddress(addrs[0]!));
    if (!alone) throw new UserError(`network: bridge ${bridge} is in use with subnet ${have}, not ${configured}`);
    await deleteLink(bridge); // nobody on it: remade with the configured subnet
    addrs = undefined;
  }
  let state: BridgeState;
  if (addrs && addrs.length > 0) {
    // It is there (ours from an earlier container, or left by a crash): adopt its subnet.
    const sub = subnetOfAddress(addrs[0]!);
    const gateway = addrs[0]!.split('/')[0]!;
    state = { bridge, subnet: formatSubnet(sub), gateway, ipForwardWas: stored?.ipForwardWas };
    writeSysctl(`net.ipv4.conf.${bridge}.route_localnet`, '1');
  } else {
    if (addrs) await deleteLink(bridge); // exists without an address: not usable as is
    const sub = await pickSubnet(bridge, configured);
    const gateway = gatewayOf(sub);
    await createBridge(bridge, sub, gateway);
    state = { bridge, subnet: formatSubnet(sub), gateway, ipForwardWas: stored?.ipForwardWas };
  }
  // Forwarding: hairpin (container → host port → container) and containers' way out.
  const was = writeSysctl('net.ipv4.ip_forward', '1');
  if (was !== '1' && state.ipForwardWas === undefined) state.ipForwardWas = was;
  writeJson(bridgeFile(root), state);
  // The first container makes the table afresh (one left by a crash may name
  // another subnet); later ones only if it is missing: recreating it would
  // drop the other containers' rules.
  if (alone || (await nft.listTable()) === undefined) {
    await nft.createTable({ bridge, subnet: state.subnet, gateway: state.gateway });
  }
  return state;
}

/**
 * Sets up a created container's network (its namespace exists, its process
 * has not started). `bridge`: a leased address on eth0 behind the bridge,
 * published ports forwarded; `none`: lo only; `host`: nothing.
 * On failure everything done so far is undone.
 */
export async function setupNetwork(opts: SetupOptions): Promise<NetworkRecord> {
  const { root, cid, mode } = opts;
  checkCid(cid);
  const base: NetworkRecord = { cid, mode, hostname: opts.hostname, ports: [], warnings: [], created: new Date().toISOString() };
  if (mode === 'host') {
    if (opts.ports.length) base.warnings.push('Published ports are discarded when using host network mode');
    writeJson(recordFile(root, cid), base);
    return base;
  }
  if (mode === 'none') {
    if (opts.ports.length) throw new UserError('conflicting options: port publishing and the container type network mode');
    await configureContainerSide(opts.netnsPath);
    writeJson(recordFile(root, cid), base);
    return base;
  }
  if (mode !== 'bridge') throw new UserError(`network ${String(mode)} not found`);
  const bridge = DEFAULT_BRIDGE;
  return withLock(netDir(root), async () => {
    if (readNetworkRecord(root, cid)) await teardownLocked(root, cid); // a start after a crash
    for (const r of listNetworkRecords(root)) if (r.cid !== cid && isStale(r)) await teardownLocked(root, r.cid);
    const others = listNetworkRecords(root).filter((r) => r.cid !== cid);
    const ports = await choosePorts(opts.ports, others.flatMap((r) => r.ports));
    const netns = netnsIdentity(opts.netnsPath);
    if (!netns) throw new UserError(`network: the container's network namespace ${opts.netnsPath} does not exist`);
    const record: NetworkRecord = { ...base, ports, bridge, hostVeth: hostVethName(cid), netns };
    // The record is written before anything is made, so a failure (or a
    // crash) at any step below can be undone from it.
    writeJson(recordFile(root, cid), record);
    try {
      const alone = !others.some((r) => r.mode === 'bridge');
      const state = await ensureBase(root, bridge, opts.subnet ?? (process.env.TSCTL_BRIDGE_SUBNET || undefined), alone);
      const subnet = parseSubnet(state.subnet);
      const address = allocate(leaseDir(root), subnet, cid);
      Object.assign(record, {
        subnet: state.subnet,
        gateway: state.gateway,
        address,
        prefixLen: subnet.prefix,
        mac: macFor(address),
        natChain: ports.length ? nft.chainName(cid) : undefined,
      });
      writeJson(recordFile(root, cid), record);
      await addVeth(record.hostVeth!, bridge, opts.netnsPath, record.mac!);
      await configureContainerSide(opts.netnsPath, { address, prefix: subnet.prefix, gateway: state.gateway });
      if (ports.length) await nft.addContainer(cid, address, ports);
      const hosts = filesFor(root, cid).hosts;
      if (fs.existsSync(hosts)) writeInPlace(hosts, hostsContent(opts.hostname, address));
      return record;
    } catch (e) {
      try {
        await teardownLocked(root, cid);
      } catch {
        /* the first error is the one to report */
      }
      throw e;
    }
  });
}

/**
 * Removes what setupNetwork made for `cid`: its veth, NAT rules, lease and
 * record; with the last bridge container gone, the bridge, the table and
 * the sysctls changed. Idempotent, and works without the container.
 */
export async function teardownNetwork(root: string, cid: string): Promise<void> {
  checkCid(cid);
  const rec = readNetworkRecord(root, cid);
  if (!rec && !fs.existsSync(netDir(root))) return;
  if (rec && rec.mode !== 'bridge') {
    fs.rmSync(recordFile(root, cid), { force: true });
    return;
  }
  await withLock(netDir(root), () => teardownLocked(root, cid));
}

/**
 * Drops the conntrack entries of UDP flows to the container's address. A UDP
 * "connection" lives on in conntrack (30-120 s) after its rule is gone, so a
 * client that keeps sending from the same port would stay NATed to the old
 * address — to the next container given it, or to nothing (Docker does the
 * same clean-up). Best effort: without conntrack(8) the entries just expire.
 */
async function forgetUdpFlows(address: string): Promise<void> {
  const r = await run('conntrack', ['-D', '-p', 'udp', '--reply-src', address]);
  // exit 1 with "0 flow entries have been deleted" is the normal nothing-to-do
  if (r.code !== 0 && r.code !== 127 && !/0 flow entries/.test(r.stderr)) {
    throw new UserError(`network: conntrack -D for ${address}: ${firstLine(r.stderr)}`);
  }
}

async function teardownLocked(root: string, cid: string): Promise<void> {
  const rec = readNetworkRecord(root, cid);
  // Every step is tried even when one fails (a missing tool, a link busy),
  // so as much as possible is removed; the first failure is reported.
  let first: unknown;
  const step = async (fn: () => unknown) => {
    try {
      await fn();
    } catch (e) {
      first ??= e;
    }
  };
  // Without a record (torn write, crash before it), everything is found by the id anyway.
  await step(() => deleteLink(rec?.hostVeth ?? hostVethName(cid)));
  await step(() => nft.removeContainer(cid));
  if (rec?.address && rec.ports.some((p) => p.proto === 'udp')) await step(() => forgetUdpFlows(rec.address!));
  await step(() => {
    for (const [ip, owner] of leases(leaseDir(root))) if (owner === cid) release(leaseDir(root), ip, cid);
  });
  await step(() => fs.rmSync(recordFile(root, cid), { force: true }));
  if (!listNetworkRecords(root).some((r) => r.mode === 'bridge')) {
    // The last one: remove the shared parts.
    const state = readJson<BridgeState>(bridgeFile(root));
    await step(() => nft.deleteTable());
    await step(() => deleteLink(state?.bridge ?? DEFAULT_BRIDGE));
    await step(() => {
      if (state?.ipForwardWas !== undefined && readSysctl('net.ipv4.ip_forward') === '1') {
        writeSysctl('net.ipv4.ip_forward', state.ipForwardWas);
      }
      fs.rmSync(bridgeFile(root), { force: true });
    });
  }
  if (first !== undefined) throw first;
}
