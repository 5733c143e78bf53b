/** Docker-style reference parsing and normalization (distribution/reference's rules). */
import t from 'tap';
import { familiarString, formatReference, parseReference, registryHost } from '../../../src/shim/image/reference.js';

const D = 'sha256:' + 'a'.repeat(64);

t.test('normalization', async (t) => {
  const cases: [string, string][] = [
    ['busybox', 'docker.io/library/busybox:latest'],
    ['busybox:1.36', 'docker.io/library/busybox:1.36'],
    ['library/busybox', 'docker.io/library/busybox:latest'],
    ['user/app', 'docker.io/user/app:latest'],
    ['docker.io/busybox', 'docker.io/library/busybox:latest'],
    ['index.docker.io/user/app:x', 'docker.io/user/app:x'],
    ['localhost/x', 'localhost/x:latest'],
    ['localhost:5000/x', 'localhost:5000/x:latest'],
    ['127.0.0.1:5000/a/b/c:v1.2-rc_3', '127.0.0.1:5000/a/b/c:v1.2-rc_3'],
    ['quay.io/org/img', 'quay.io/org/img:latest'],
    [`busybox@${D}`, `docker.io/library/busybox@${D}`],
    [`busybox:1@${D}`, `docker.io/library/busybox:1@${D}`],
    ['my-reg.example.com:443/a__b/c.d-e', 'my-reg.example.com:443/a__b/c.d-e:latest'],
    ['[::1]:5000/x', '[::1]:5000/x:latest'],
  ];
  for (const [input, want] of cases) t.equal(formatReference(parseReference(input)), want, input);
});

t.test('the first component is a host only with a dot, a colon, or localhost', async (t) => {
  t.equal(parseReference('foo/bar').domain, 'docker.io');
  t.equal(parseReference('foo.bar/baz').domain, 'foo.bar');
  t.equal(parseReference('foo:1/baz').domain, 'foo:1');
  t.equal(parseReference('localhost/baz').path, 'baz');
});

t.test('familiar form and registry host', async (t) => {
  t.equal(familiarString(parseReference('docker.io/library/busybox:latest')), 'busybox:latest');
  t.equal(familiarString(parseReference('docker.io/user/app:1')), 'user/app:1');
  t.equal(familiarString(parseReference('localhost:5000/x')), 'localhost:5000/x:latest');
  t.equal(registryHost('docker.io'), 'registry-1.docker.io');
  t.equal(registryHost('127.0.0.1:5000'), '127.0.0.1:5000');
});

t.test('invalid references are one clear error', async (t) => {
  const bad: [string, RegExp][] = [
    ['', /empty image name/],
    ['Busybox', /repository name must be lowercase/],
    ['localhost:5000/Foo', /repository name must be lowercase/],
    ['busybox:', /invalid tag/],
    ['busybox:-x', /invalid tag/],
    [`busybox:${'t'.repeat(129)}`, /invalid tag/],
    ['busybox@sha256:abc', /digest must be sha256 with 64/],
    ['busybox@md5:' + 'a'.repeat(32), /unsupported digest algorithm/],
    ['a//b', /invalid repository name/],
    ['a/-b', /invalid repository name/],
    ['foo_/bar', /invalid repository name/],
    ['bad_host.com:99999/x', /invalid registry host/],
    ['localhost:5000/', /empty repository name/],
    [`x/${'a'.repeat(260)}`, /longer than 255/],
  ];
  for (const [input, re] of bad) t.throws(() => parseReference(input), { name: 'UserError', message: re }, JSON.stringify(input));
});
