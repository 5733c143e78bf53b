import t from 'tap';
import { computeCaps, DEFAULT_CAPS, parseCpus, parseEnvArg, parseEnvFile, parseMemory, parseSignal, parseVolume } from '../../../src/shim/container/flags.js';

const env: Record<string, string> = { HOME: '/root', EMPTY: '' };
const lookup = (k: string) => env[k];

t.test('-e', async (t) => {
  t.equal(parseEnvArg('A=1', lookup), 'A=1');
  t.equal(parseEnvArg('A=', lookup), 'A=');
  t.equal(parseEnvArg('A=b=c', lookup), 'A=b=c');
  t.equal(parseEnvArg('HOME', lookup), 'HOME=/root', 'a bare name takes the value from the environment');
  t.equal(parseEnvArg('EMPTY', lookup), 'EMPTY=');
  t.equal(parseEnvArg('UNSET', lookup), undefined, 'and is dropped when unset');
  t.throws(() => parseEnvArg('=x', lookup), { message: 'invalid environment variable: =x' });
  t.throws(() => parseEnvArg('A B=1', lookup), { message: "variable 'A B' contains whitespaces" });
});

t.test('--env-file', async (t) => {
  const text = '# comment\n\nA=1\n  B="quoted stays"\r\nHOME\nUNSET\nC=x # not a comment\n';
  t.same(parseEnvFile(text, 'f.env', lookup), ['A=1', 'B="quoted stays"', 'HOME=/root', 'C=x # not a comment']);
  t.throws(() => parseEnvFile('A=1\n=2\n', 'f.env', lookup), { message: "f.env:2: no variable name on line '=2'" });
});

t.test('-v', async (t) => {
  t.same(parseVolume('/srv/data:/data'), { kind: 'bind', source: '/srv/data', destination: '/data', readOnly: false });
  t.same(parseVolume('/srv/data/:/data/:ro'), { kind: 'bind', source: '/srv/data', destination: '/data', readOnly: true });
  t.same(parseVolume('cache:/var/cache'), { kind: 'named', name: 'cache', destination: '/var/cache', readOnly: false });
  t.same(parseVolume('cache:/var/cache:rw'), { kind: 'named', name: 'cache', destination: '/var/cache', readOnly: false });
  t.same(parseVolume('/scratch'), { kind: 'anonymous', destination: '/scratch', readOnly: false });
  t.throws(() => parseVolume('relative:dir'), { message: "invalid volume specification: 'relative:dir': invalid mount config: mount path must be absolute" });
  t.throws(() => parseVolume('/a:/b:rx'), { message: 'invalid mode: rx' });
  t.throws(() => parseVolume('/a:/'), /destination can't be '\/'/);
  t.throws(() => parseVolume('a:b:c:d'), /invalid volume specification/);
  t.throws(() => parseVolume('bad name:/x'), /includes invalid characters for a local volume name/);
  t.throws(() => parseVolume(''), /invalid volume specification/);
});

t.test('--memory, --cpus', async (t) => {
  t.equal(parseMemory('512m'), 512 * 1024 * 1024);
  t.equal(parseMemory('1g'), 1024 ** 3);
  t.equal(parseMemory('1.5GB'), 1.5 * 1024 ** 3);
  t.equal(parseMemory('10485760'), 10485760);
  t.throws(() => parseMemory('1k'), { message: 'Minimum memory limit allowed is 6MB' });
  t.throws(() => parseMemory('lots'), { message: "invalid size: 'lots'" });
  t.equal(parseCpus('1.5'), 1.5e9);
  t.equal(parseCpus('.5'), 0.5e9);
  t.throws(() => parseCpus('x'), /failed to parse x as a rational number/);
  t.throws(() => parseCpus('0'), /Range of CPUs/);
});

t.test('capabilities', async (t) => {
  t.same(computeCaps([], []), DEFAULT_CAPS);
  t.same(computeCaps(['net_admin'], ['CAP_CHOWN', 'kill']), [...DEFAULT_CAPS.filter((c) => c !== 'CAP_CHOWN' && c !== 'CAP_KILL'), 'CAP_NET_ADMIN']);
  t.same(computeCaps(['NET_BIND_SERVICE'], ['ALL']), ['CAP_NET_BIND_SERVICE']);
  t.ok(computeCaps(['ALL'], []).includes('CAP_SYS_ADMIN'));
  t.throws(() => computeCaps(['FOO'], []), { message: 'invalid capability: FOO' });
});

t.test('signals', async (t) => {
  t.equal(parseSignal('term'), 'SIGTERM');
  t.equal(parseSignal('SIGKILL'), 'SIGKILL');
  t.equal(parseSignal('9'), '9');
  t.equal(parseSignal('RTMIN+3'), 'SIGRTMIN+3');
  t.throws(() => parseSignal('SIGFOO'), { message: 'invalid signal: SIGFOO' });
  t.throws(() => parseSignal('0'), { message: 'invalid signal: 0' });
});
