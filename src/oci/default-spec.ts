/** The config.json `tsrun spec` writes: runc 1.1's default, field for field. */
import type { Spec } from './types.js';

const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

export function defaultSpec(opts: { rootless?: boolean; uid?: number; gid?: number } = {}): Spec {
  const spec: Spec = {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: { bounding: [...CAPS], effective: [...CAPS], permitted: [...CAPS], ambient: [...CAPS] },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'tsrun',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      {
        destination: '/dev/pts',
        type: 'devpts',
        source: 'devpts',
        options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
      },
      { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
      { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
      { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [{ type: 'pid' }, { type: 'network' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
  if (opts.rootless) {
    // runc spec --rootless: a user namespace mapping only the caller, no
    // network namespace or device rules, and /sys bound from the host.
    const linux = spec.linux!;
    delete linux.resources;
    linux.namespaces = linux.namespaces!.filter((n) => n.type !== 'network');
    linux.namespaces.push({ type: 'user' });
    linux.uidMappings = [{ containerID: 0, hostID: opts.uid ?? process.getuid!(), size: 1 }];
    linux.gidMappings = [{ containerID: 0, hostID: opts.gid ?? process.getgid!(), size: 1 }];
    for (const m of spec.mounts!) {
      if (m.destination === '/dev/pts') m.options = m.options!.filter((o) => o !== 'gid=5');
      if (m.destination === '/sys') {
        m.type = 'none';
        m.source = '/sys';
        m.options = ['rbind', 'nosuid', 'noexec', 'nodev', 'ro'];
      }
    }
  }
  return spec;
}
