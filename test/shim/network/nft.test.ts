/**
 * The nft script text: the base table, one chain and one tagged jump per
 * container, and removal computed from a JSON listing touching exactly that
 * container's jump and chain. `nft -c` (check only, nothing applied) parses
 * the generated scripts when nft is installed.
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { baseScript, chainName, checkTag, containerScript, portRule, removalScript } from '../../../src/shim/network/nft.js';

const base = { bridge: 'tsctl0', subnet: '172.31.0.0/16', gateway: '172.31.0.1' };
const web = [
  { hostIp: '0.0.0.0', hostPort: 8080, containerPort: 80, proto: 'tcp' as const },
  { hostIp: '127.0.0.1', hostPort: 5353, containerPort: 53, proto: 'udp' as const },
];

t.test('base table: dispatch on local destinations, SNAT for loopback and hairpin, masquerade out', async (t) => {
  const s = baseScript(base);
  t.match(s, /^add table ip tsctl\ndelete table ip tsctl\ntable ip tsctl \{/, 'replaces a stale table in the same transaction');
  t.match(s, /type nat hook prerouting priority -100;[^}]*fib daddr type local jump ports/);
  t.match(s, /type nat hook output priority -100;[^}]*fib daddr type local jump ports/);
  t.match(s, /ip saddr 127\.0\.0\.0\/8 oifname "tsctl0" snat to 172\.31\.0\.1/);
  t.match(s, /ip saddr 172\.31\.0\.0\/16 ip daddr 172\.31\.0\.0\/16 ct status dnat snat to 172\.31\.0\.1/);
  t.match(s, /ip saddr 172\.31\.0\.0\/16 oifname != "tsctl0" masquerade/);
});

t.test('a container: its chain, one DNAT per port, the jump tagged with its id', async (t) => {
  const chain = chainName('abc123');
  t.match(chain, /^c-[0-9a-f]{12}$/);
  t.equal(chainName('abc123'), chain, 'stable');
  t.not(chainName('abc124'), chain);
  const s = containerScript('abc123', '172.31.0.2', web);
  t.equal(
    s,
    `add chain ip tsctl ${chain}\n` +
      `add rule ip tsctl ${chain} tcp dport 8080 dnat to 172.31.0.2:80 comment "abc123"\n` +
      `add rule ip tsctl ${chain} ip daddr 127.0.0.1 udp dport 5353 dnat to 172.31.0.2:53 comment "abc123"\n` +
      `add rule ip tsctl ports jump ${chain} comment "abc123"\n`,
  );
  t.throws(() => portRule(chain, '172.31.0.2', { ...web[0]!, hostPort: 0 }, 'x'), /not chosen/);
  t.throws(() => checkTag('a"; flush ruleset'), /invalid container id/, 'an id cannot inject nft syntax');
  t.throws(() => checkTag(''), /invalid container id/);
});

t.test('removal touches only that container', async (t) => {
  const a = chainName('a');
  const b = chainName('b');
  const listing = {
    nftables: [
      { chain: { name: 'ports', table: 'tsctl' } },
      { chain: { name: a, table: 'tsctl' } },
      { chain: { name: b, table: 'tsctl' } },
      { rule: { chain: 'ports', handle: 10, comment: 'a', expr: [{ jump: { target: a } }] } },
      { rule: { chain: 'ports', handle: 11, comment: 'b', expr: [{ jump: { target: b } }] } },
      { rule: { chain: a, handle: 12, comment: 'a', expr: [] } },
    ],
  };
  t.equal(removalScript(listing, 'a'), `delete rule ip tsctl ports handle 10\nflush chain ip tsctl ${a}\ndelete chain ip tsctl ${a}\n`);
  t.equal(removalScript(listing, 'c'), '', 'nothing of an unknown container: nothing to do');
  const orphan = { nftables: [{ rule: { chain: 'ports', handle: 7, expr: [{ jump: { target: b } }] } }] };
  t.equal(removalScript(orphan, 'b'), 'delete rule ip tsctl ports handle 7\n', 'a jump to its chain without the tag (or without the chain) goes too');
});

const nft = spawnSync('nft', ['--version'], { stdio: 'ignore' });
t.test('nft parses the scripts (nft -c: checked, not applied)', { skip: nft.status !== 0 ? 'nft is not installed' : process.getuid?.() !== 0 ? 'nft -c needs root' : false }, async (t) => {
  const chain = chainName('abc123');
  // -c checks against the kernel's current ruleset: the table must "exist" in the same script
  const script = `${baseScript(base)}${containerScript('abc123', '172.31.0.2', web)}`;
  const r = spawnSync('unshare', ['--net', 'nft', '-c', '-f', '-'], { input: script, encoding: 'utf8', timeout: 20_000 });
  t.equal(r.status, 0, 'valid nft syntax', { stderr: r.stderr });
  t.match(script, chain);
});
