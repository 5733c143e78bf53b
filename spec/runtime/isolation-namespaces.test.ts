/**
 * Namespaces, checked from inside a real container: new ones differ from the
 * host's, joined ones are the very namespace given by path, and what each
 * namespace hides (pids, interfaces, ids, cgroup paths, the clock) is hidden.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import t from 'tap';
import { assertNothingLeaked, exec, leakCheck, uniqueId } from '../lib/harness.js';
import { bundleReachable, fields, hostNs, inUserns, inside, parseMountinfo, section, skip } from './isolation-lib.js';

const NS_TYPES = ['pid', 'net', 'ipc', 'uts', 'mnt', 'cgroup', 'user', 'time'] as const;
const nsScript = NS_TYPES.map((n) => `echo ${n}=$(readlink /proc/self/ns/${n})`).join('; ');

t.test('new namespaces differ from the host, the others are the host\'s', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-ns');
  const out = await inside(
    t,
    (c) => {
      c.linux.namespaces.push({ type: 'cgroup' });
    },
    nsScript,
    { id },
  );
  const ns = fields(out, '=');
  for (const type of ['pid', 'net', 'ipc', 'uts', 'mnt', 'cgroup']) {
    t.match(ns.get(type), new RegExp(`^${type}:\\[\\d+\\]$`), `${type} namespace is readable inside`);
    t.not(ns.get(type), hostNs(type), `${type} namespace differs from the host's`);
  }
  // not in the config: shared with the host
  t.equal(ns.get('user'), hostNs('user'), 'user namespace is the host\'s');
  t.equal(ns.get('time'), hostNs('time'), 'time namespace is the host\'s');
  await assertNothingLeaked(t, id);
});

t.test('the process is PID 1 and sees only its own processes', { skip }, async (t) => {
  const out = await inside(t, undefined, 'echo pid=$$; echo === ps; ls /proc | grep -E "^[0-9]+$"');
  t.match(out, /^pid=1$/m, 'the shell is PID 1');
  const pids = section(out, 'ps').split('\n').filter(Boolean).map(Number);
  t.ok(pids.includes(1), 'PID 1 is listed in /proc');
  t.ok(pids.length <= 4, `only the container's processes are in /proc (${pids.join(' ')})`);
});

t.test('a new network namespace has only lo', { skip }, async (t) => {
  const out = await inside(t, undefined, 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "');
  t.same(out.split('\n').filter(Boolean), ['lo'], 'only lo in /proc/net/dev');
});

t.test('user namespace: mapped ids, root inside, unmapped owners show as nobody', { skip }, async (t) => {
  leakCheck(t);
  const id = uniqueId('iso-userns');
  const out = await inside(
    t,
    inUserns,
    [
      'echo === uid_map; cat /proc/self/uid_map',
      'echo === gid_map; cat /proc/self/gid_map',
      'echo === id; id -u; id -g',
      'echo === owner; stat -c %u:%g /bin/busybox',
      'echo === userns; readlink /proc/self/ns/user',
    ].join('; '),
    { id, prepare: bundleReachable },
  );
  t.same(section(out, 'uid_map').trim().split(/\s+/), ['0', '100000', '65536'], 'uid_map is 0 100000 65536');
  t.same(section(out, 'gid_map').trim().split(/\s+/), ['0', '100000', '65536'], 'gid_map is 0 100000 65536');
  t.same(section(out, 'id').trim().split('\n'), ['0', '0'], 'id shows uid 0 and gid 0');
  t.equal(section(out, 'owner').trim(), '65534:65534', 'a file owned by host root shows as 65534 (overflow id)');
  t.not(section(out, 'userns').trim(), hostNs('user'), 'a user namespace of its own');
  await assertNothingLeaked(t, id);
});

t.test(
  'user namespace: /sys is a sysfs of the container\'s own network namespace, with nothing of the host\'s /sys under it',
  { skip },
  async (t) => {
    const out = await inside(
      t,
      inUserns,
      'echo === net; ls /sys/class/net; echo === mountinfo; cat /proc/self/mountinfo',
      { prepare: bundleReachable },
    );
    t.same(section(out, 'net').split('\n').filter(Boolean), ['lo'], '/sys/class/net lists only the container\'s lo');
    const sysMounts = parseMountinfo(section(out, 'mountinfo')).filter((m) => m.mountpoint.startsWith('/sys'));
    const sys = sysMounts.find((m) => m.mountpoint === '/sys');
    t.ok(sys?.options.includes('ro'), '/sys is read-only');
    const writable = sysMounts.filter((m) => !m.options.includes('ro')).map((m) => `${m.mountpoint} (${m.fstype})`);
    t.same(writable, [], 'no writable mount under /sys');
    // each path once: the host's /sys/fs/cgroup tree is not stacked under the container's
    const paths = sysMounts.map((m) => m.mountpoint);
    t.same(paths.filter((p, i) => paths.indexOf(p) !== i), [], 'no mount point under /sys appears twice');
  },
);

t.test('cgroup namespace: the container\'s cgroup is its "/"', { skip }, async (t) => {
  const withNs = await inside(
    t,
    (c) => {
      c.linux.namespaces.push({ type: 'cgroup' });
    },
    'cat /proc/self/cgroup',
  );
  const lines = withNs.split('\n').filter(Boolean);
  t.ok(lines.length > 0, 'prints /proc/self/cgroup');
  for (const l of lines) t.match(l, /^\d+:[^:]*:\/$/, `"${l}" is at the namespace root`);

  // without a cgroup namespace the host's path of the container's cgroup shows
  const id = uniqueId('iso-nocgns');
  const without = await inside(t, undefined, 'cat /proc/self/cgroup', { id });
  t.ok(
    without.split('\n').some((l) => l.endsWith(`/${id}`)),
    'without a cgroup namespace the cgroup path (named after the id) is visible',
    { found: without },
  );
});

t.test('time namespace: the offsets are set, and boottime moves /proc/uptime', { skip }, async (t) => {
  const out = await inside(
    t,
    (c) => {
      c.linux.namespaces.push({ type: 'time' });
      c.linux.timeOffsets = { boottime: { secs: 1_000_000, nanosecs: 0 }, monotonic: { secs: 5000, nanosecs: 123 } };
    },
    'echo === uptime; cat /proc/uptime; echo === ns; readlink /proc/self/ns/time; echo === offsets; cat /proc/self/timens_offsets',
  );
  const offsets = new Map(
    section(out, 'offsets')
      .split('\n')
      .filter(Boolean)
      .map((l) => {
        const [clock, ...rest] = l.trim().split(/\s+/);
        return [clock, rest.join(' ')] as [string, string];
      }),
  );
  t.equal(offsets.get('boottime'), '1000000 0', 'timens_offsets: boottime 1000000 s');
  t.equal(offsets.get('monotonic'), '5000 123', 'timens_offsets: monotonic 5000 s 123 ns');
  const up = Number(section(out, 'uptime').trim().split(/\s+/)[0]);
  const hostUp = Number(fs.readFileSync('/proc/uptime', 'utf8').split(/\s+/)[0]);
  t.ok(up >= 1_000_000, `uptime inside is at least 1000000 s (${up})`);
  t.ok(up >= hostUp + 999_000, `uptime inside is about the host's + 1000000 s (inside ${up}, host ${hostUp})`);
  t.not(section(out, 'ns').trim(), hostNs('time'), 'a time namespace of its own');
});

t.test('joins an existing network namespace by path', { skip }, async (t) => {
  const name = uniqueId('iso-netns');
  const add = await exec('ip', ['netns', 'add', name], { timeoutMs: 10_000 });
  t.equal(add.code, 0, `ip netns add ${name}`, { stderr: add.stderr });
  if (add.code !== 0) return;
  t.teardown(() => exec('ip', ['netns', 'delete', name], { timeoutMs: 10_000 }));
  const nsPath = `/run/netns/${name}`;
  const ino = fs.statSync(nsPath).ino;
  // a mark on it: an address on its lo that no new namespace has
  const mark = await exec('ip', ['netns', 'exec', name, 'ip', 'addr', 'add', '10.213.7.9/32', 'dev', 'lo'], {
    timeoutMs: 10_000,
  });
  t.equal(mark.code, 0, 'an address added to lo in that namespace', { stderr: mark.stderr });
  const script = 'echo === ns; readlink /proc/self/ns/net; echo === addr; ip -o addr show dev lo';
  const out = await inside(
    t,
    (c) => {
      c.linux.namespaces = c.linux.namespaces.map((n) => (n.type === 'network' ? { type: 'network', path: nsPath } : n));
    },
    script,
  );
  t.equal(section(out, 'ns').trim(), `net:[${ino}]`, 'the container\'s net namespace is the one at the path');
  t.match(section(out, 'addr'), /10\.213\.7\.9/, 'the address set in that namespace is there');

  // and a new namespace (the default) does not have it: the mark means something
  const fresh = await inside(t, undefined, script);
  t.not(section(fresh, 'ns').trim(), `net:[${ino}]`, 'a new network namespace is another one');
  t.notMatch(section(fresh, 'addr'), /10\.213\.7\.9/, 'and has no such address');
});

t.test('joins an existing cgroup namespace by path', { skip }, async (t) => {
  // The init joins it after its cgroup placement, from a descriptor its
  // spawner opened (src/plan/namespaces.ts cgroupnsJoinOps).
  const holder: ChildProcess = spawn('unshare', ['--cgroup', 'sleep', '600'], { stdio: 'ignore' });
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  const nsPath = `/proc/${holder.pid}/ns/cgroup`;
  let want = '';
  for (let i = 0; i < 100 && (want === '' || want === hostNs('cgroup')); i++) {
    await new Promise((r) => setTimeout(r, 50));
    want = fs.readlinkSync(nsPath);
  }
  t.not(want, hostNs('cgroup'), 'the holder is in a cgroup namespace of its own');
  const out = await inside(
    t,
    (c) => {
      c.linux.namespaces = c.linux.namespaces.filter((n) => n.type !== 'cgroup');
      c.linux.namespaces.push({ type: 'cgroup', path: nsPath });
    },
    'readlink /proc/self/ns/cgroup',
  );
  t.equal(out.trim(), want, "the container's cgroup namespace is the one at the path");
});

t.test('joins an existing pid namespace by path', { skip }, async (t) => {
  const marker = uniqueId('iso-pidns');
  // `unshare --fork` makes a child, PID 1 of the new namespace: a shell
  // whose command line carries the marker (and that does not exec sleep)
  const holder: ChildProcess = spawn(
    'unshare',
    ['--pid', '--fork', '--mount-proc', 'sh', '-c', `sleep 600; exit 0 # ${marker}`],
    { detached: true, stdio: 'ignore' },
  );
  t.teardown(() => {
    try {
      process.kill(-holder.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  // find the shell (the unshare's child), bounded
  let sleeper = 0;
  for (let i = 0; i < 100 && !sleeper; i++) {
    await new Promise((r) => setTimeout(r, 50));
    for (const p of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(p) || Number(p) === holder.pid) continue;
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'utf8');
        if (cmd.startsWith('sh\0') && cmd.includes(marker)) sleeper = Number(p);
      } catch {
        /* gone */
      }
    }
  }
  t.ok(sleeper > 0, 'the namespace holder (sleep in a new pid namespace) is running');
  if (!sleeper) return;
  const nsPath = `/proc/${sleeper}/ns/pid`;
  const want = fs.readlinkSync(nsPath);
  t.not(want, hostNs('pid'), 'the holder is in a pid namespace of its own');
  const out = await inside(
    t,
    (c) => {
      c.linux.namespaces = c.linux.namespaces.map((n) => (n.type === 'pid' ? { type: 'pid', path: nsPath } : n));
    },
    'echo === ns; readlink /proc/self/ns/pid; echo === self; echo $$; echo === one; tr "\\0" " " < /proc/1/cmdline',
  );
  t.equal(section(out, 'ns').trim(), want, 'the container\'s pid namespace is the one at the path');
  t.not(section(out, 'self').trim(), '1', 'the container process is not PID 1 there');
  t.match(section(out, 'one'), marker, 'PID 1 in there is the holder\'s shell');
});
