/**
 * Every call the container side makes into the network side, in one place:
 * `-p`/`-P` parsing, the /etc/hosts, /etc/hostname and /etc/resolv.conf the
 * container gets bind-mounted, setup in the created container's network
 * namespace, and teardown (idempotent: stop, rm, exit, and `rm -f` after a crash).
 */
import { UserError } from '../../errors.js';
import { containerNetworkFiles, type NetworkMode, parseNetworkMode, parsePublish, publishAll, setupNetwork, teardownNetwork } from '../network/index.js';
import type { NetworkFiles } from './config.js';
import type { ContainerRecord, PortBinding } from './store.js';

/** tsctl's own errors exit 125, as Docker's do. */
function as125<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof UserError) throw new UserError(e.message, 125);
    throw e;
  }
}

export function parseNetwork(v: string | undefined): NetworkMode {
  return as125(() => parseNetworkMode(v));
}

export function parsePorts(publish: string[], exposedForAll: string[]): PortBinding[] {
  return as125(() => [...publish.flatMap(parsePublish), ...publishAll(exposedForAll)]);
}

export async function networkFiles(root: string, rec: ContainerRecord): Promise<NetworkFiles> {
  return containerNetworkFiles(root, rec.id, { hostname: rec.config.hostname, mode: rec.hostConfig.network });
}

export async function setupContainerNetwork(root: string, rec: ContainerRecord, netnsPath: string): Promise<unknown> {
  const r = await setupNetwork({ root, cid: rec.id, mode: rec.hostConfig.network, ports: rec.hostConfig.ports, hostname: rec.config.hostname, netnsPath });
  for (const w of r.warnings) process.stderr.write(`WARNING: ${w}\n`);
  return r;
}

export async function teardownContainerNetwork(root: string, cid: string): Promise<void> {
  await teardownNetwork(root, cid);
}
