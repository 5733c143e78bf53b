/** /etc/hosts, /etc/hostname, /etc/resolv.conf for containers: content, and rewritten in place. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { filterResolvConf, hostsContent, resolvConfFor, writeNetworkFiles } from '../../../src/shim/network/files.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-netfiles-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

t.test('resolv.conf: loopback nameservers removed, the rest kept', async (t) => {
  const host = '# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nnameserver 127.0.1.1\nsearch example.com\noptions edns0 trust-ad\n';
  t.equal(filterResolvConf(host), '# generated\nnameserver 10.0.0.2\nsearch example.com\noptions edns0 trust-ad\n');
  t.equal(filterResolvConf('nameserver 127.0.0.53\nsearch lan\n'), 'search lan\n', 'none left: no nameserver (no public default)');
  t.equal(filterResolvConf('nameserver 127.0.0.1\n'), '', 'nothing left at all: empty');
  t.equal(filterResolvConf('  nameserver   fe80::1%eth0\n'), '  nameserver   fe80::1%eth0\n', 'non-loopback IPv6 kept');
});

t.test('resolv.conf per mode; systemd-resolved upstream when the stub is all there is', async (t) => {
  const hostFile = path.join(tmp, 'resolv.conf');
  const upstream = path.join(tmp, 'upstream.conf');
  fs.writeFileSync(hostFile, 'nameserver 127.0.0.53\nsearch lan\n');
  fs.writeFileSync(upstream, 'nameserver 192.168.1.1\n');
  t.equal(resolvConfFor('host', hostFile, upstream), 'nameserver 127.0.0.53\nsearch lan\n', 'host: as is');
  t.equal(resolvConfFor('bridge', hostFile, upstream), 'nameserver 192.168.1.1\n');
  t.equal(resolvConfFor('none', hostFile, path.join(tmp, 'absent')), 'search lan\n');
});

t.test('hosts: localhost entries, then the container address and name', async (t) => {
  t.match(hostsContent('web'), /^127\.0\.0\.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n/);
  t.notMatch(hostsContent('web'), /web/);
  t.match(hostsContent('web', '172.31.0.2'), /\n172\.31\.0\.2\tweb\n$/);
});

t.test('the files, in the container directory, rewritten in place', async (t) => {
  const f = writeNetworkFiles(tmp, 'c1', { hostname: 'web', mode: 'bridge' });
  t.equal(f.hosts, path.join(tmp, 'containers', 'c1', 'hosts'));
  t.equal(fs.readFileSync(f.hostname, 'utf8'), 'web\n');
  const ino = fs.statSync(f.hosts).ino;
  writeNetworkFiles(tmp, 'c1', { hostname: 'web2', mode: 'bridge' });
  t.equal(fs.statSync(f.hosts).ino, ino, 'same inode: a bind mount of it sees the change');
  t.equal(fs.readFileSync(f.hostname, 'utf8'), 'web2\n');
  const h = writeNetworkFiles(tmp, 'c2', { hostname: 'h', mode: 'host' });
  t.equal(fs.readFileSync(h.hosts, 'utf8'), fs.readFileSync('/etc/hosts', 'utf8'), 'host mode: the host’s /etc/hosts');
});
