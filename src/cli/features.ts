import type { Command } from 'commander';
import { CAPABILITIES, NAMESPACE_TYPES } from '../oci/validate.js';
import { OCI_VERSION } from '../oci/types.js';
import { apparmorEnabled, selinuxEnabled } from '../plan/lsm.js';
import { supportedMountOptions } from '../plan/mounts.js';
import { seccompFeatures } from '../plan/seccomp.js';

/**
 * The runtime-spec Features document. It claims only what this build and
 * this kernel really do: an LSM is "enabled" only when the kernel has it
 * (tsrun refuses a label otherwise), and idmapped mounts, Intel RDT and the
 * systemd cgroup driver are reported absent.
 */
export function features(): object {
  return {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'],
    mountOptions: supportedMountOptions(),
    linux: {
      namespaces: [...NAMESPACE_TYPES],
      capabilities: Object.keys(CAPABILITIES),
      // linux.resources are applied on v1, hybrid and v2 (src/cgroups/apply.ts), rdma.max included.
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false, rdma: true },
      // libseccomp's archs and this kernel's actions and flags
      seccomp: seccompFeatures(),
      // Applied when the kernel has the LSM, refused with an error when not.
      apparmor: { enabled: apparmorEnabled() },
      selinux: { enabled: selinuxEnabled() },
      intelRdt: { enabled: false },
      mountExtensions: { idmap: { enabled: false } },
    },
    annotations: {},
  };
}

export function register(program: Command): void {
  program
    .command('features')
    .description('print the features this runtime supports (runtime-spec features JSON)')
    .action(() => {
      process.stdout.write(JSON.stringify(features(), null, 4) + '\n');
    });
}
