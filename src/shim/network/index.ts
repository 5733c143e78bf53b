/**
 * The shim's container networking, as the container commands use it:
 *
 *   const ports = [...flags.publish.flatMap(parsePublish), ...(flags.publishAll ? publishAll(image.config?.ExposedPorts) : [])];
 *   const files = containerNetworkFiles(root, cid, { hostname, mode });   // bind-mount these
 *   // tsrun create (with a network namespace unless mode is 'host')
 *   const rec = await setupNetwork({ root, cid, mode, ports, hostname, netnsPath: `/proc/${pid}/ns/net` });
 *   // tsrun start; rec.ports has the chosen host ports, rec.warnings what to print
 *   await teardownNetwork(root, cid);                                      // on stop, exit, rm, rm -f
 *
 * Port forwarding is kernel NAT (nftables DNAT, nft.ts says why), so
 * nothing has to run for it while the container runs.
 */
import { UserError } from '../../errors.js';
import { type NetworkFiles, type NetworkMode, writeNetworkFiles } from './files.js';

export type { NetworkFiles, NetworkMode } from './files.js';
export { formatPort, parsePublish, publishAll, type PortProto, type PortSpec } from './publish.js';
export {
  DEFAULT_BRIDGE,
  DEFAULT_SUBNET,
  listNetworkRecords,
  readNetworkRecord,
  setupNetwork,
  teardownNetwork,
  type NetworkRecord,
  type SetupOptions,
} from './setup.js';

export const NETWORK_MODES: readonly NetworkMode[] = ['bridge', 'host', 'none'];

/** `--network` (Docker's spelling `default` is bridge); anything else is Docker's "network X not found". */
export function parseNetworkMode(value: string | undefined): NetworkMode {
  const v = value ?? 'bridge';
  if (v === 'default') return 'bridge';
  if ((NETWORK_MODES as readonly string[]).includes(v)) return v as NetworkMode;
  throw new UserError(`network ${v} not found`);
}

/**
 * Writes the container's /etc/hosts, /etc/hostname and /etc/resolv.conf
 * under <root>/containers/<cid>/ and returns their paths, for bind mounts.
 * Call it before every `tsrun create` (setupNetwork then adds the leased
 * address to hosts, in place).
 */
export function containerNetworkFiles(root: string, cid: string, opts: { hostname: string; mode: NetworkMode }): NetworkFiles {
  return writeNetworkFiles(root, cid, opts);
}
