/**
 * Address management for the bridge's subnet: one lease file per address,
 * `<dir>/<a.b.c.d>` holding the container id. A lease is taken by creating
 * its file with O_EXCL, so two allocations can never get the same address
 * even without the network lock, and a crash leaves at worst a lease whose
 * owner is named in it (teardown of that id removes it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../errors.js';

export interface Subnet {
  /** network address as a 32-bit unsigned number */
  base: number;
  prefix: number;
}

export function ipToNumber(ip: string): number {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(ip);
  if (!m) throw new UserError(`invalid IPv4 address: ${ip}`);
  const b = m.slice(1).map(Number);
  if (b.some((x) => x > 255)) throw new UserError(`invalid IPv4 address: ${ip}`);
  return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
}

export function numberToIp(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function mask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** "172.31.0.0/16" → Subnet; host bits must be zero, and the subnet must hold a gateway and an address. */
export function parseSubnet(cidr: string): Subnet {
  const m = /^([\d.]+)\/(\d{1,2})$/.exec(cidr.trim());
  if (!m) throw new UserError(`invalid subnet "${cidr}": expected a.b.c.d/N`);
  const prefix = Number(m[2]);
  if (prefix < 8 || prefix > 30) throw new UserError(`invalid subnet "${cidr}": prefix length must be 8-30`);
  const base = ipToNumber(m[1]!);
  if ((base & ~mask(prefix)) >>> 0 !== 0) throw new UserError(`invalid subnet "${cidr}": host bits are set (did you mean ${numberToIp((base & mask(prefix)) >>> 0)}/${prefix}?)`);
  return { base, prefix };
}

export function formatSubnet(s: Subnet): string {
  return `${numberToIp(s.base)}/${s.prefix}`;
}

/** The bridge's own address: the first host address. */
export function gatewayOf(s: Subnet): string {
  return numberToIp(s.base + 1);
}

export function contains(s: Subnet, ip: string): boolean {
  return ((ipToNumber(ip) & mask(s.prefix)) >>> 0) === s.base;
}

export function overlaps(a: Subnet, b: Subnet): boolean {
  const p = Math.min(a.prefix, b.prefix);
  return ((a.base & mask(p)) >>> 0) === ((b.base & mask(p)) >>> 0);
}

/**
 * Takes the lowest free address of the subnet (gateway and broadcast
 * excluded) for `cid`. Lease files are created O_EXCL: a concurrent
 * allocation that wins a race makes this one move on to the next address.
 */
export function allocate(dir: string, subnet: Subnet, cid: string): string {
  fs.mkdirSync(dir, { recursive: true });
  const taken = new Set(fs.readdirSync(dir));
  const first = subnet.base + 2;
  const last = subnet.base + 2 ** (32 - subnet.prefix) - 2; // broadcast excluded
  for (let n = first; n <= last; n++) {
    const ip = numberToIp(n);
    if (taken.has(ip)) continue;
    try {
      fs.writeFileSync(path.join(dir, ip), `${cid}\n`, { flag: 'wx', mode: 0o644 });
      return ip;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') continue;
      throw e;
    }
  }
  throw new UserError(`no free address left in ${formatSubnet(subnet)}`);
}

/** Removes `ip`'s lease if `cid` holds it (a lease another container took since is left alone). */
export function release(dir: string, ip: string, cid: string): void {
  const file = path.join(dir, ip);
  let owner: string;
  try {
    owner = fs.readFileSync(file, 'utf8').trim();
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (owner === cid) fs.rmSync(file, { force: true });
}

/** Every lease: address → container id. */
export function leases(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return out;
  }
  for (const n of names) {
    try {
      out.set(n, fs.readFileSync(path.join(dir, n), 'utf8').trim());
    } catch {
      /* released meanwhile */
    }
  }
  return out;
}
