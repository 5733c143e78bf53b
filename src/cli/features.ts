import type { Command } from 'commander';
import { CAPABILITIES, NAMESPACE_TYPES } from '../oci/validate.js';
import { OCI_VERSION } from '../oci/types.js';
import { supportedMountOptions } from '../plan/mounts.js';

/**
 * The runtime-spec Features document. It claims only what this build
 * really does: seccomp, AppArmor and SELinux are not applied yet, so
 * they are reported absent or disabled.
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
      cgroup: { v1: true, v2: true, systemd: false, systemdUser: false, rdma: false },
      seccomp: { enabled: false },
      apparmor: { enabled: false },
      selinux: { enabled: false },
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
