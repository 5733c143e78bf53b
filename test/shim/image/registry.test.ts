/**
 * The distribution client against in-process fake servers on 127.0.0.1:
 * challenge parsing, bearer and basic auth, retries, redirects, manifest
 * selection and digest checks, and blobs that are corrupt or cut short never
 * entering the store.
 */
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { dockerCredentials, isInsecureHost, parseChallenges, parsePlatform, RegistryClient, selectManifest } from '../../../src/shim/image/registry.js';
import { digestOf, ImageStore } from '../../../src/shim/image/store.js';
import { MEDIA, type ImageIndex } from '../../../src/shim/image/types.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsctl-registry-unit-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const freshStore = () => new ImageStore(path.join(tmp, `store-${++seq}`)).init();

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;
async function serve(t: { teardown(fn: () => unknown): void }, handler: Handler): Promise<{ host: string; requests: http.IncomingMessage[] }> {
  const requests: http.IncomingMessage[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req);
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, requests };
}

t.test('WWW-Authenticate challenges', async (t) => {
  t.same(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/busybox:pull' } },
  ]);
  t.same(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  t.same(parseChallenges('Basic realm="a, b", Bearer realm="http://x/t", service=svc'), [
    { scheme: 'basic', params: { realm: 'a, b' } },
    { scheme: 'bearer', params: { realm: 'http://x/t', service: 'svc' } },
  ]);
  t.same(parseChallenges('Bearer realm="q\\"uote"'), [{ scheme: 'bearer', params: { realm: 'q"uote' } }]);
  t.same(parseChallenges(''), []);
});

t.test('plain http only for loopback and named insecure registries', async (t) => {
  for (const h of ['localhost', 'localhost:5000', '127.0.0.1:5000', '127.9.8.7', '[::1]:5000']) t.ok(isInsecureHost(h), h);
  for (const h of ['registry-1.docker.io', '10.0.0.1:5000', '128.0.0.1', 'localhost.example.com']) t.notOk(isInsecureHost(h), h);
  t.ok(isInsecureHost('reg.lan:5000', ['reg.lan:5000']));
  t.ok(isInsecureHost('reg.lan:5000', ['reg.lan']));
  t.equal(await new RegistryClient('quay.io', 'a/b').base(), 'https://quay.io');
  t.equal(await new RegistryClient('docker.io', 'library/busybox').base(), 'https://registry-1.docker.io');
});

t.test('credentials from $DOCKER_CONFIG/config.json', async (t) => {
  const dir = path.join(tmp, 'docker-config');
  fs.mkdirSync(dir);
  const saved = process.env.DOCKER_CONFIG;
  process.env.DOCKER_CONFIG = dir;
  t.teardown(() => (saved === undefined ? delete process.env.DOCKER_CONFIG : (process.env.DOCKER_CONFIG = saved)));
  t.equal(dockerCredentials('reg:5000'), undefined, 'no file: none');
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({
    auths: {
      'reg:5000': { auth: b64('u:p:with:colons') },
      'https://index.docker.io/v1/': { auth: b64('hub:pw') },
      'https://other.example/v2/': { username: 'o', password: 'q' },
    },
  }));
  t.same(dockerCredentials('reg:5000'), { user: 'u', password: 'p:with:colons' });
  t.same(dockerCredentials('registry-1.docker.io'), { user: 'hub', password: 'pw' }, 'Docker Hub under its legacy key');
  t.same(dockerCredentials('other.example'), { user: 'o', password: 'q' }, 'a URL key, username/password fields');
  t.equal(dockerCredentials('nope'), undefined);
  fs.writeFileSync(path.join(dir, 'config.json'), '{not json');
  t.throws(() => dockerCredentials('reg:5000'), { name: 'UserError', message: /config\.json/ });
});

t.test('manifest list selection: linux/amd64', async (t) => {
  const d = (n: string) => 'sha256:' + n.repeat(64);
  const list: ImageIndex = {
    schemaVersion: 2,
    mediaType: MEDIA.dockerManifestList,
    manifests: [
      { mediaType: MEDIA.dockerManifest, digest: d('1'), size: 1, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      { mediaType: MEDIA.dockerManifest, digest: d('2'), size: 1, platform: { os: 'windows', architecture: 'amd64' } },
      { mediaType: MEDIA.dockerManifest, digest: d('3'), size: 1, platform: { os: 'linux', architecture: 'amd64', variant: 'v3' } },
      { mediaType: MEDIA.dockerManifest, digest: d('4'), size: 1, platform: { os: 'linux', architecture: 'amd64' } },
      { mediaType: MEDIA.ociManifest, digest: d('5'), size: 1, platform: { os: 'unknown', architecture: 'unknown' } },
    ],
  };
  t.equal(selectManifest(list).digest, d('4'), 'the plain amd64 entry');
  t.equal(selectManifest({ ...list, manifests: list.manifests.filter((m) => m.digest !== d('4')) }).digest, d('3'), 'else any amd64 variant');
  t.equal(selectManifest(list, parsePlatform('linux/arm64')).digest, d('1'), '--platform linux/arm64');
  t.equal(selectManifest(list, parsePlatform('linux/amd64/v3')).digest, d('3'), 'a variant asked for');
  t.throws(() => parsePlatform('amd64'), { message: /invalid platform "amd64": want os\/arch/ });
  t.throws(() => selectManifest({ ...list, manifests: list.manifests.slice(0, 2) }), {
    message: 'no matching manifest for linux/amd64 in the manifest list entries (it has: linux/arm64/v8, windows/amd64)',
  });
});

const manifestBody = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA.ociManifest, config: {}, layers: [] }));
const blob = Buffer.from('layer bytes '.repeat(1000));
const blobDesc = { mediaType: MEDIA.ociLayer, digest: digestOf(blob), size: blob.length };

t.test('bearer token flow: one token for concurrent requests, credentials sent to the realm only', async (t) => {
  let tokens = 0;
  const srv = await serve(t, (req, res) => {
    if (req.url?.startsWith('/token')) {
      tokens++;
      if (req.headers.authorization !== `Basic ${Buffer.from('al:pw').toString('base64')}`) return void res.writeHead(401).end();
      const u = new URL(req.url, 'http://x');
      t.equal(u.searchParams.get('scope'), 'repository:team/app:pull', 'scope');
      t.equal(u.searchParams.get('service'), 'svc', 'service');
      return void res.writeHead(200).end(JSON.stringify({ access_token: 'T0K' }));
    }
    if (req.headers.authorization !== 'Bearer T0K') {
      res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${req.headers.host}/token",service="svc",scope="repository:team/app:pull"` });
      return void res.end();
    }
    if (req.url === '/v2/team/app/manifests/v1') return void res.writeHead(200, { 'Content-Type': MEDIA.ociManifest }).end(manifestBody);
    if (req.url === `/v2/team/app/blobs/${blobDesc.digest}`) return void res.writeHead(200).end(blob);
    res.writeHead(404).end();
  });
  const c = new RegistryClient(srv.host, 'team/app', { auth: { user: 'al', password: 'pw' } });
  t.teardown(() => c.close());
  const m = await c.manifest('v1');
  t.equal(m.digest, digestOf(manifestBody));
  t.equal(m.mediaType, MEDIA.ociManifest);
  const stores = [freshStore(), freshStore(), freshStore()];
  await Promise.all(stores.map((s) => c.blob(blobDesc, () => s.writer(blobDesc))));
  for (const s of stores) t.ok(s.hasBlob(blobDesc.digest, blob.length), 'blob stored');
  t.equal(tokens, 1, 'one token fetched');
  t.notOk(srv.requests.some((r) => !r.url?.startsWith('/token') && r.headers.authorization?.startsWith('Basic')), 'basic credentials never sent to the registry itself');

  const anon = new RegistryClient(srv.host, 'team/app');
  t.teardown(() => anon.close());
  await t.rejects(anon.manifest('v1'), { name: 'UserError', message: /pull access denied for .*team\/app.*token server .* refused/ });
});

t.test('basic auth challenge', async (t) => {
  const srv = await serve(t, (req, res) => {
    if (req.headers.authorization !== `Basic ${Buffer.from('u:p').toString('base64')}`) {
      return void res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="r"' }).end();
    }
    res.writeHead(200, { 'Content-Type': MEDIA.ociManifest }).end(manifestBody);
  });
  const c = new RegistryClient(srv.host, 'x', { auth: { user: 'u', password: 'p' } });
  t.teardown(() => c.close());
  t.equal((await c.manifest('latest')).digest, digestOf(manifestBody));
  const wrong = new RegistryClient(srv.host, 'x', { auth: { user: 'u', password: 'nope' } });
  t.teardown(() => wrong.close());
  await t.rejects(wrong.manifest('latest'), { message: /pull access denied/ });
});

t.test('retries: 5xx and dropped connections are retried, a 404 is not', async (t) => {
  let n = 0;
  const srv = await serve(t, (req, res) => {
    if (req.url?.includes('/flaky/')) {
      n++;
      if (n === 1) return void res.destroy();
      if (n === 2) return void res.writeHead(503).end();
      return void res.writeHead(200, { 'Content-Type': MEDIA.ociManifest }).end(manifestBody);
    }
    if (req.url?.includes('/down/')) return void res.writeHead(500).end('{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}');
    res.writeHead(404).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}');
  });
  const c = new RegistryClient(srv.host, 'flaky');
  t.teardown(() => c.close());
  t.equal((await c.manifest('1')).digest, digestOf(manifestBody), 'third attempt succeeds');
  t.equal(n, 3);
  const down = new RegistryClient(srv.host, 'down');
  t.teardown(() => down.close());
  await t.rejects(down.manifest('1'), { message: /HTTP 500: disk on fire/ });
  const before = srv.requests.length;
  const gone = new RegistryClient(srv.host, 'gone');
  t.teardown(() => gone.close());
  await t.rejects(gone.manifest('1'), { message: /manifest for .*gone:1: not found: manifest unknown/ });
  t.equal(srv.requests.length - before, 1, 'a 404 is asked once');
});

t.test('network failures are one clear error', async (t) => {
  const dead = await serve(t, () => undefined);
  const port = Number(dead.host.split(':')[1]);
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const refusedPort = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  const refused = new RegistryClient(`127.0.0.1:${refusedPort}`, 'x', { attempts: 2 });
  await t.rejects(refused.manifest('1'), { message: `http://127.0.0.1:${refusedPort}: connection refused` });
  refused.close();
  const silent = new RegistryClient(`127.0.0.1:${port}`, 'x', { attempts: 1, timeoutMs: 300 });
  await t.rejects(silent.manifest('1'), { message: /no answer in 300 ms/ });
  silent.close();
});

t.test('manifests are checked against the digest they were asked by', async (t) => {
  const srv = await serve(t, (req, res) => {
    if (req.url?.includes('/lying/')) return void res.writeHead(200, { 'Docker-Content-Digest': 'sha256:' + 'f'.repeat(64) }).end(manifestBody);
    if (req.url?.includes('/v1/')) return void res.writeHead(200).end(JSON.stringify({ schemaVersion: 1, name: 'x' }));
    if (req.url?.includes('/bare/')) {
      return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(req.url.endsWith('/idx') ? JSON.stringify({ schemaVersion: 2, manifests: [] }) : manifestBody.toString().replace(/"mediaType":"[^"]*",/, ''));
    }
    res.writeHead(200).end(manifestBody);
  });
  const c = new RegistryClient(srv.host, 'x');
  t.teardown(() => c.close());
  const other = 'sha256:' + '0'.repeat(64);
  await t.rejects(c.manifest(other), { message: /digest mismatch: the content is sha256:/ });
  const lying = new RegistryClient(srv.host, 'lying');
  t.teardown(() => lying.close());
  await t.rejects(lying.manifest('t'), { message: /the registry says its digest is sha256:f+, the content is/ });
  const v1 = new RegistryClient(srv.host, 'v1');
  t.teardown(() => v1.close());
  await t.rejects(v1.manifest('t'), { message: /schema 1 is not supported/ });
  const bare = new RegistryClient(srv.host, 'bare');
  t.teardown(() => bare.close());
  t.equal((await bare.manifest('m')).mediaType, MEDIA.ociManifest, 'no mediaType, application/json: a manifest by its shape');
  t.equal((await bare.manifest('idx')).mediaType, MEDIA.ociIndex, 'and an index by its shape');
});

t.test('blobs: a redirect drops credentials; corrupt and truncated blobs never enter the store', async (t) => {
  const cdn = await serve(t, (req, res) => void res.writeHead(200).end(blob));
  const srv = await serve(t, (req, res) => {
    if (req.url?.includes('/redirect/')) return void res.writeHead(307, { Location: `http://${cdn.host}/b` }).end();
    if (req.url?.includes('/corrupt/')) {
      const b = Buffer.from(blob);
      b[10] ^= 1;
      return void res.writeHead(200).end(b);
    }
    if (req.url?.includes('/short/')) {
      res.writeHead(200, { 'Content-Length': blob.length });
      return void res.write(blob.subarray(0, 100), () => res.destroy());
    }
    if (req.url?.includes('/long/')) return void res.writeHead(200).end(Buffer.concat([blob, blob]));
    res.writeHead(404).end();
  });
  const s = freshStore();
  const redirect = new RegistryClient(srv.host, 'redirect', { auth: { user: 'u', password: 'p' } });
  t.teardown(() => redirect.close());
  (redirect as unknown as { authHeader: string }).authHeader = 'Basic secret';
  await redirect.blob(blobDesc, () => s.writer(blobDesc));
  t.ok(s.hasBlob(blobDesc.digest), 'fetched through the redirect');
  t.equal(cdn.requests[0]?.headers.authorization, undefined, 'the other host got no credentials');

  for (const [repo, re] of [['corrupt', /digest mismatch/], ['short', /truncated: got 100 of 12000 bytes|connection closed/], ['long', /more data than the 12000 bytes/]] as const) {
    const s2 = freshStore();
    const c = new RegistryClient(srv.host, repo, { attempts: 2 });
    await t.rejects(c.blob(blobDesc, () => s2.writer(blobDesc)), { name: 'UserError', message: re }, repo);
    c.close();
    t.same(fs.readdirSync(s2.blobDir), [], `${repo}: no blob`);
    t.same(fs.readdirSync(s2.tmpDir).filter((n) => n !== 'leases'), [], `${repo}: no temp file`);
  }
});

t.test('loopback registries: https without certificate checks when spoken, else http (Docker\'s ping and fallback)', { skip: fs.existsSync('/usr/bin/openssl') ? false : 'needs openssl' }, async (t) => {
  const https = await import('node:https');
  const { execFileSync } = await import('node:child_process');
  const key = path.join(tmp, 'key.pem');
  const cert = path.join(tmp, 'cert.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=tsctl-test'], { stdio: 'ignore' });
  const server = https.createServer({ key: fs.readFileSync(key), cert: fs.readFileSync(cert) }, (req, res) => {
    res.writeHead(200, { 'Content-Type': MEDIA.ociManifest }).end(req.url === '/v2/' ? '{}' : manifestBody);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => {
    server.closeAllConnections();
    server.close(() => r());
  }));
  const host = `127.0.0.1:${(server.address() as AddressInfo).port}`;
  const tls = new RegistryClient(host, 'x');
  t.teardown(() => tls.close());
  t.equal(await tls.base(), `https://${host}`, 'a TLS registry on loopback is spoken to over https');
  t.equal((await tls.manifest('1')).digest, digestOf(manifestBody), 'its self-signed certificate is accepted (insecure registry)');
  const plain = await serve(t, (req, res) => void res.writeHead(200).end(manifestBody));
  const c = new RegistryClient(plain.host, 'x');
  t.teardown(() => c.close());
  t.equal(await c.base(), `http://${plain.host}`, 'a plain one over http');
  t.equal((await c.manifest('1')).digest, digestOf(manifestBody));
});
