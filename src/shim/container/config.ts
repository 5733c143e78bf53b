/**
 * The container's part of config.json, on top of what the image gives
 * (specFromImage): terminal, capabilities, volumes and the network's files as
 * bind mounts, a read-only root, resource limits, and the namespaces the
 * network mode asks for. Pure: a Spec in, a Spec out.
 */
import type { Mount, Spec } from '../../oci/types.js';
import type { ContainerRecord } from './store.js';

export interface NetworkFiles {
  hosts?: string;
  hostname?: string;
  resolvConf?: string;
}

export const CPU_PERIOD = 100_000;

export function applyContainerConfig(base: Spec, rec: ContainerRecord, netFiles: NetworkFiles, caps: string[]): Spec {
  const spec: Spec = structuredClone(base);
  const h = rec.hostConfig;
  const proc = spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' };
  proc.terminal = rec.config.tty;
  proc.capabilities = { bounding: [...caps], effective: [...caps], permitted: [...caps] };
  spec.process = proc;
  spec.hostname = rec.config.hostname;
  if (spec.root) spec.root.readonly = h.readOnly;

  const mounts: Mount[] = (spec.mounts ?? []).filter((m) => !h.mounts.some((v) => v.destination === m.destination));
  const files: [string, string | undefined][] = [['/etc/hosts', netFiles.hosts], ['/etc/hostname', netFiles.hostname], ['/etc/resolv.conf', netFiles.resolvConf]];
  for (const [dest, src] of files) {
    // a volume the user put on the same path wins, as in Docker
    if (src && !h.mounts.some((v) => v.destination === dest)) mounts.push({ destination: dest, type: 'bind', source: src, options: ['rbind', 'rprivate'] });
  }
  for (const v of h.mounts) {
    mounts.push({ destination: v.destination, type: 'bind', source: v.source, options: ['rbind', 'rprivate', ...(v.readOnly ? ['ro'] : [])] });
  }
  spec.mounts = mounts;

  const linux = spec.linux ?? {};
  const resources = linux.resources ?? {};
  if (h.memory > 0) resources.memory = { ...resources.memory, limit: h.memory, swap: h.memory * 2 }; // Docker: swap = 2 × memory by default
  if (h.nanoCpus > 0) resources.cpu = { ...resources.cpu, period: CPU_PERIOD, quota: Math.round((h.nanoCpus * CPU_PERIOD) / 1e9) };
  if (h.pidsLimit > 0) resources.pids = { limit: h.pidsLimit };
  linux.resources = resources;
  const ns = (linux.namespaces ?? []).filter((n) => n.type !== 'network');
  if (h.network !== 'host') ns.push({ type: 'network' });
  linux.namespaces = ns;
  spec.linux = linux;
  return spec;
}
