/**
 * Applying linux.resources to a container's cgroups: decide, per controller,
 * which directory takes the writes (its v1 hierarchy where mounted; the
 * cgroup2 tree where that offers it, which on a hybrid host covers
 * controllers that have no v1 mount), enable v2 controllers along the path,
 * then write controller by controller. A controller that is nowhere to be
 * found is an error naming it, never a silent skip.
 */
import type { Device, Resources } from '../oci/types.js';
import { UserError } from '../errors.js';
import { containerRules } from './devices.js';
import { type CgroupIO, hostIO } from './fsutil.js';
import { UNIFIED } from './paths.js';
import { type BlockIO, type Controller, ignoredWarnings, type Need, neededControllers, type Network, type Rdma } from './resources.js';
import {
  type SetContext, setBlkioV1, setCpusetV1, setCpuV1, setDevicesV1, setHugetlbV1, setMemoryV1, setNetClsV1, setNetPrioV1, setPids, setRdma,
} from './v1.js';
import {
  type AttachDeviceFilter, availableControllers, enableControllers, mountRootOf, setCpusetV2, setCpuV2, setDevicesV2, setHugetlbV2, setIoV2,
  setMemoryV2, setUnified, unifiedController,
} from './v2.js';

/** The v2 name of each controller (undefined: no v2 equivalent). */
const V2_NAME: Record<Controller, string | undefined> = {
  memory: 'memory',
  cpu: 'cpu',
  cpuset: 'cpuset',
  pids: 'pids',
  blkio: 'io',
  hugetlb: 'hugetlb',
  rdma: 'rdma',
  net_cls: undefined,
  net_prio: undefined,
};

/** Controllers enabled on pure v2 even without limits, so that `events --stats` can read their counters. */
export const STATS_CONTROLLERS = ['memory', 'pids', 'cpu', 'io'] as const;

export interface ApplyOptions {
  /** linux.devices: each one gets an rwm allow rule, as in runc */
  devices?: readonly Device[];
  /** leave device rules alone (update) */
  skipDevices?: boolean;
  io?: CgroupIO;
  /** loads and attaches a v2 device filter; without it device rules on v2 are an error */
  attachDeviceFilter?: AttachDeviceFilter;
  /** v2 controllers to enable along the path besides those the resources need */
  statsControllers?: readonly string[];
}

interface Target {
  need: Need;
  dir: string;
  v2: boolean;
}

/** True when the container's cgroups are a pure v2 tree (no v1 hierarchy at all). */
export function isPureV2(paths: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(paths);
  return keys.length > 0 && keys.every((k) => k === UNIFIED);
}

/** Where each needed controller is written; throws for one that is not there. */
export function locate(paths: Readonly<Record<string, string>>, needs: readonly Need[], io: CgroupIO): Target[] {
  const unified = paths[UNIFIED];
  const pureV2 = isPureV2(paths);
  let available: string[] | undefined;
  const offered = () => (available ??= unified ? availableControllers(unified, io) : []);
  return needs.map((need) => {
    const v1dir = pureV2 ? undefined : paths[need.controller];
    if (v1dir) return { need, dir: v1dir, v2: false };
    const v2name = V2_NAME[need.controller];
    if (unified && v2name && offered().includes(v2name)) return { need, dir: unified, v2: true };
    if (pureV2) {
      if (!v2name) throw new UserError(`cgroup: ${need.what}: not supported on cgroup v2 (there is no ${need.controller} controller)`);
      throw new UserError(
        `cgroup: ${need.what} needs the ${v2name} controller, which this cgroup v2 tree does not offer ` +
          `(${mountRootOf(unified!, io)}/cgroup.controllers: ${offered().join(' ') || 'none'})`,
      );
    }
    throw new UserError(`cgroup: ${need.what} needs the ${need.controller} controller, which is not mounted on this host`);
  });
}

/** Writes `r` into the container's cgroups; returns warnings for what was accepted but has no effect. */
export function applyResources(paths: Readonly<Record<string, string>>, r: Resources, opts: ApplyOptions = {}): string[] {
  const io = opts.io ?? hostIO;
  const warnings = ignoredWarnings(r);
  const ctx: SetContext = { io, warn: (m) => warnings.push(m) };
  const unified = paths[UNIFIED];
  const pureV2 = isPureV2(paths);

  const targets = locate(paths, neededControllers(r), io);
  const unifiedRes = r.unified && Object.keys(r.unified).length ? r.unified : undefined;
  if (unifiedRes && !unified) throw new UserError('cgroup: linux.resources.unified: this host has no cgroup v2 hierarchy');

  if (unified) {
    const enable = new Set<string>();
    for (const t of targets) if (t.v2) enable.add(V2_NAME[t.need.controller]!);
    for (const key of Object.keys(unifiedRes ?? {})) {
      const c = unifiedController(key);
      if (c) enable.add(c);
    }
    enableControllers(unified, [...enable], io);
    if (pureV2) {
      // For statistics only: best effort, one by one (a tree that cannot
      // delegate one of them still runs the container, without its counters).
      const offered = availableControllers(unified, io);
      for (const c of opts.statsControllers ?? []) {
        if (enable.has(c) || !offered.includes(c)) continue;
        try {
          enableControllers(unified, [c], io);
        } catch {
          /* no statistics for this controller */
        }
      }
    }
  }

  if (!opts.skipDevices) {
    const rules = containerRules(r.devices, opts.devices);
    if (!pureV2 && paths.devices) setDevicesV1(paths.devices, rules, ctx);
    else if (pureV2) {
      if (!opts.attachDeviceFilter) throw new UserError('cgroup: device rules cannot be applied on cgroup v2: no BPF device filter loader');
      setDevicesV2(unified!, rules, opts.attachDeviceFilter);
    } else {
      throw new UserError('cgroup: linux.resources.devices needs the devices controller, which is not mounted on this host');
    }
  }

  for (const { need, dir, v2 } of targets) {
    switch (need.controller) {
      case 'cpuset':
        (v2 ? setCpusetV2 : setCpusetV1)(dir, r.cpu!, ctx);
        break;
      case 'memory':
        (v2 ? setMemoryV2 : setMemoryV1)(dir, r.memory!, ctx);
        break;
      case 'cpu':
        (v2 ? setCpuV2 : setCpuV1)(dir, r.cpu!, ctx);
        break;
      case 'pids':
        setPids(dir, r.pids!.limit, ctx);
        break;
      case 'blkio':
        (v2 ? setIoV2 : setBlkioV1)(dir, r.blockIO as BlockIO, ctx);
        break;
      case 'hugetlb':
        (v2 ? setHugetlbV2 : setHugetlbV1)(dir, r.hugepageLimits!, ctx);
        break;
      case 'net_cls':
        setNetClsV1(dir, r.network as Network, ctx);
        break;
      case 'net_prio':
        setNetPrioV1(dir, r.network as Network, ctx);
        break;
      case 'rdma':
        setRdma(dir, r.rdma as Rdma, ctx);
        break;
    }
  }
  if (unifiedRes) setUnified(unified!, unifiedRes, ctx);
  return warnings;
}
