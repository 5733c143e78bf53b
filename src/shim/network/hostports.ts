/**
 * Choosing host ports: a port asked for must be free (no other container
 * of this root publishes it, and nothing on the host listens on it, or the
 * DNAT rule would silently steal its traffic); a random one (`-p 80`, `-P`)
 * is drawn from the kernel's ephemeral range, as Docker does, until one is
 * free (bounded).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { UserError } from '../../errors.js';
import { portsConflict, type PortSpec } from './publish.js';
import { readSysctl } from './links.js';

/** Why `ip:port` cannot be bound now ('' when it can), probed by binding and closing. */
export function bindError(ip: string, port: number, proto: 'tcp' | 'udp'): Promise<string> {
  return new Promise((resolve) => {
    const fail = (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error');
    if (proto === 'tcp') {
      const s = net.createServer();
      s.once('error', fail);
      s.listen({ host: ip, port, exclusive: true }, () => s.close(() => resolve('')));
    } else {
      const s = dgram.createSocket('udp4');
      s.once('error', (e) => {
        s.close();
        fail(e);
      });
      s.bind({ address: ip, port, exclusive: true }, () => s.close(() => resolve('')));
    }
  });
}

export function ephemeralRange(): [number, number] {
  const v = readSysctl('net.ipv4.ip_local_port_range')?.split(/\s+/).map(Number);
  if (v && v.length === 2 && v[0]! > 0 && v[1]! >= v[0]!) return [v[0]!, v[1]!];
  return [32768, 60999];
}

function inUse(p: PortSpec, taken: PortSpec[]): boolean {
  return taken.some((t) => portsConflict(t, p));
}

const allocated = (p: PortSpec) => `Bind for ${p.hostIp}:${p.hostPort} failed: port is already allocated`;

/**
 * The specs with every host port chosen. `taken`: what the root's other
 * containers publish. Throws Docker's "port is already allocated" for a
 * port in use.
 */
export async function choosePorts(specs: PortSpec[], taken: PortSpec[], random = Math.random): Promise<PortSpec[]> {
  const out: PortSpec[] = [];
  const all = [...taken];
  for (const s of specs) {
    let chosen: PortSpec | undefined;
    if (s.hostPort) {
      const why = inUse(s, all) ? 'EADDRINUSE' : await bindError(s.hostIp, s.hostPort, s.proto);
      if (why === 'EADDRNOTAVAIL') {
        throw new UserError(`listen ${s.proto}4 ${s.hostIp}:${s.hostPort}: bind: cannot assign requested address`);
      }
      if (why) throw new UserError(allocated(s));
      chosen = { ...s };
    } else {
      const [lo, hi] = ephemeralRange();
      for (let i = 0; i < 200 && !chosen; i++) {
        const c = { ...s, hostPort: lo + Math.floor(random() * (hi - lo + 1)) };
        if (!inUse(c, all) && (await bindError(c.hostIp, c.hostPort, c.proto)) === '') chosen = c;
      }
      if (!chosen) throw new UserError(`no free host port for ${s.containerPort}/${s.proto} in ${lo}-${hi}`);
    }
    all.push(chosen);
    out.push(chosen);
  }
  return out;
}
