/**
 * `-p/--publish` and `-P/--publish-all`, with Docker's syntax and meanings:
 *
 *   -p [IP:][HOST:]CTR[/tcp|udp]     HOST empty or absent: a random free host port
 *   -p 8080-8081:80-81               ranges of equal length map one to one
 *   -p 80-81                         a range of container ports, each on a random host port
 *
 * Only IPv4 host addresses: the bridge and the NAT table are IPv4 (`table ip tsctl`).
 */
import net from 'node:net';
import { UserError } from '../../errors.js';

export type PortProto = 'tcp' | 'udp';

/** One published port. `hostPort` 0 = pick a free one when the network is set up. */
export interface PortSpec {
  /** the host address it is reachable on; '0.0.0.0' = every address of the host */
  hostIp: string;
  hostPort: number;
  containerPort: number;
  proto: PortProto;
}

const MAX_RANGE = 1024; // a typo like 1-65535 should not make 65535 NAT rules

function bad(value: string, why: string): UserError {
  return new UserError(`invalid publish "${value}": ${why}`);
}

/** "80" or "8000-8010" → [first, last]; undefined for "" (no host port given). */
function parseRange(value: string, text: string, what: string): [number, number] | undefined {
  if (text === '') return undefined;
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) throw bad(value, `invalid ${what}: ${text}`);
  const a = Number(m[1]);
  const b = m[2] === undefined ? a : Number(m[2]);
  if (a < 1 || a > 65535 || b < 1 || b > 65535) throw bad(value, `invalid ${what}: ${text} (ports are 1-65535)`);
  if (b < a) throw bad(value, `invalid ${what}: ${text} (the range ends before it starts)`);
  if (b - a + 1 > MAX_RANGE) throw bad(value, `invalid ${what}: ${text} (at most ${MAX_RANGE} ports in a range)`);
  return [a, b];
}

/** Parses one `-p` value into the ports it publishes (several for a range). */
export function parsePublish(value: string): PortSpec[] {
  const raw = value.trim();
  if (raw === '') throw bad(value, 'empty value');
  let rest = raw;
  let proto: PortProto = 'tcp';
  const slash = rest.lastIndexOf('/');
  if (slash >= 0) {
    const p = rest.slice(slash + 1).toLowerCase();
    if (p === 'sctp') throw bad(value, 'protocol sctp is not supported (tcp or udp)');
    if (p !== 'tcp' && p !== 'udp') throw bad(value, `invalid proto: ${rest.slice(slash + 1)}`);
    proto = p;
    rest = rest.slice(0, slash);
  }
  if (rest.startsWith('[')) throw bad(value, 'IPv6 host addresses are not supported');
  const parts = rest.split(':');
  if (parts.length > 3) throw bad(value, 'too many colons (IPv6 host addresses are not supported)');
  const ctrText = parts[parts.length - 1]!;
  const hostText = parts.length >= 2 ? parts[parts.length - 2]! : '';
  let hostIp = parts.length === 3 ? parts[0]! : '0.0.0.0';
  if (hostIp === '') hostIp = '0.0.0.0';
  if (net.isIPv6(hostIp)) throw bad(value, 'IPv6 host addresses are not supported');
  if (!net.isIPv4(hostIp)) throw bad(value, `invalid ip address: ${hostIp}`);
  const ctr = parseRange(value, ctrText, 'containerPort');
  if (!ctr) throw bad(value, 'no container port');
  const host = parseRange(value, hostText, 'hostPort');
  const n = ctr[1] - ctr[0] + 1;
  if (host && host[1] - host[0] + 1 !== n) {
    throw bad(value, `invalid ranges specified for container and host ports: ${hostText} and ${ctrText} differ in length`);
  }
  const out: PortSpec[] = [];
  for (let i = 0; i < n; i++) {
    out.push({ hostIp, hostPort: host ? host[0] + i : 0, containerPort: ctr[0] + i, proto });
  }
  return out;
}

/**
 * `-P`: every port the image exposes (`ExposedPorts` keys like "80/tcp",
 * "53/udp", "8000-8001/tcp"), each on a random host port of every address.
 */
export function publishAll(exposedPorts: Record<string, unknown> | string[] | undefined | null): PortSpec[] {
  const keys = Array.isArray(exposedPorts) ? exposedPorts : Object.keys(exposedPorts ?? {});
  const out: PortSpec[] = [];
  for (const k of keys) {
    const spec = k.includes('/') ? k : `${k}/tcp`;
    let parsed: PortSpec[];
    try {
      parsed = parsePublish(spec);
    } catch (e) {
      throw new UserError(`image exposes an invalid port "${k}": ${(e as Error).message.replace(/^invalid publish "[^"]*": /, '')}`);
    }
    if (spec.includes(':')) throw new UserError(`image exposes an invalid port "${k}"`);
    out.push(...parsed);
  }
  return out;
}

/** Docker's `ps`/`port` rendering: `0.0.0.0:8080->80/tcp`. */
export function formatPort(p: PortSpec): string {
  return `${p.hostIp}:${p.hostPort}->${p.containerPort}/${p.proto}`;
}

/** Two specs claim the same host port (0.0.0.0 overlaps every address). */
export function portsConflict(a: PortSpec, b: PortSpec): boolean {
  if (a.proto !== b.proto || a.hostPort !== b.hostPort || a.hostPort === 0) return false;
  return a.hostIp === b.hostIp || a.hostIp === '0.0.0.0' || b.hostIp === '0.0.0.0';
}
