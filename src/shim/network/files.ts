/**
 * /etc/hosts, /etc/hostname and /etc/resolv.conf for a container, kept in
 * the container's directory (<root>/containers/<cid>/, where Docker keeps
 * them too) and bind-mounted by the container commands. Rewritten in place
 * (same inode) so a bind mount already made sees the new content.
 */
import fs from 'node:fs';
import path from 'node:path';

export type NetworkMode = 'none' | 'bridge' | 'host';

export interface NetworkFiles {
  hosts: string;
  hostname: string;
  resolvConf: string;
}

const LOCALHOST = `127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
`;

/** Docker's /etc/hosts: the localhost entries, then the container's own address and name when it has one. */
export function hostsContent(hostname: string, address?: string): string {
  return address ? `${LOCALHOST}${address}\t${hostname}\n` : LOCALHOST;
}

function isLoopbackNameserver(addr: string): boolean {
  const a = addr.replace(/%.*$/, '');
  return /^127\./.test(a) || a === '::1' || /^0*:(0*:)*0*1$/.test(a) || a === '0:0:0:0:0:0:0:1';
}

/**
 * The host's resolv.conf for a container with its own network namespace:
 * loopback nameservers (a local stub like systemd-resolved's 127.0.0.53,
 * which the container cannot reach) removed, as Docker does. With none left
 * there is simply no nameserver: nothing here leaves the machine, so no
 * public default is put in.
 */
export function filterResolvConf(text: string): string {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m && isLoopbackNameserver(m[1]!)) continue;
    out.push(line);
  }
  let s = out.join('\n').replace(/\n{3,}/g, '\n\n');
  if (s.trim() === '') return '';
  if (!s.endsWith('\n')) s += '\n';
  return s;
}

function hasNameserver(text: string): boolean {
  return /^\s*nameserver\s+\S+/m.test(text);
}

function readOr(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The container's resolv.conf: the host's as is for `host` (it shares the
 * host's namespace, so loopback servers work), filtered otherwise; when the
 * host uses systemd-resolved's stub, its upstream list is what is copied.
 */
export function resolvConfFor(mode: NetworkMode, hostFile = '/etc/resolv.conf', upstreamFile = '/run/systemd/resolve/resolv.conf'): string {
  const host = readOr(hostFile) ?? '';
  if (mode === 'host') return host;
  let filtered = filterResolvConf(host);
  if (!hasNameserver(filtered)) {
    const upstream = readOr(upstreamFile);
    if (upstream !== undefined && hasNameserver(filterResolvConf(upstream))) filtered = filterResolvConf(upstream);
  }
  return filtered;
}

export function containerDir(root: string, cid: string): string {
  return path.join(root, 'containers', cid);
}

export function filesFor(root: string, cid: string): NetworkFiles {
  const dir = containerDir(root, cid);
  return { hosts: path.join(dir, 'hosts'), hostname: path.join(dir, 'hostname'), resolvConf: path.join(dir, 'resolv.conf') };
}

/** Writes in place (truncate + write keeps the inode a bind mount refers to). */
export function writeInPlace(file: string, content: string): void {
  fs.writeFileSync(file, content, { mode: 0o644 });
}

/**
 * Writes the three files (hosts without the container's address: setup
 * adds it once the address is leased) and returns their paths.
 */
export function writeNetworkFiles(root: string, cid: string, opts: { hostname: string; mode: NetworkMode }): NetworkFiles {
  const files = filesFor(root, cid);
  fs.mkdirSync(path.dirname(files.hosts), { recursive: true });
  const hosts = opts.mode === 'host' ? (readOr('/etc/hosts') ?? LOCALHOST) : hostsContent(opts.hostname);
  writeInPlace(files.hosts, hosts);
  writeInPlace(files.hostname, `${opts.hostname}\n`);
  writeInPlace(files.resolvConf, resolvConfFor(opts.mode));
  return files;
}
