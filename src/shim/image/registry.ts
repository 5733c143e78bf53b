/**
 * A client for the OCI distribution API (what `docker pull` speaks), on
 * node:http/https:
 *
 *  - transport: https; for loopback hosts (localhost, 127.0.0.0/8, ::1)
 *    and hosts given as insecure, Docker's rule: https without certificate
 *    checks if the registry speaks it, else plain http;
 *  - auth: on a 401, the WWW-Authenticate challenge says how: Bearer (get a
 *    token from its realm for `repository:<name>:pull`, sending basic
 *    credentials when we have them) or Basic; credentials come from
 *    $DOCKER_CONFIG/config.json (default ~/.docker), `auths.<host>.auth`;
 *  - bounded: every request has an idle timeout, network errors, 429 and 5xx
 *    are retried a few times with backoff, redirects (blob CDNs) are followed
 *    a few hops, dropping credentials when the host changes;
 *  - manifests: OCI and Docker schema2 images, OCI indexes and Docker
 *    manifest lists (the linux/amd64 entry is chosen); every manifest is
 *    checked against the digest it was asked by;
 *  - blobs are streamed into a store BlobWriter, which verifies digest and
 *    size before the blob becomes visible.
 */
import http from 'node:http';
import https from 'node:https';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../../errors.js';
import { registryHost } from './reference.js';
import { digestOf, type BlobWriter } from './store.js';
import { MEDIA, type Descriptor, type ImageIndex, type Manifest } from './types.js';

export interface RegistryOptions {
  /** hosts (host[:port]) spoken to over plain http, as Docker's --insecure-registry */
  insecure?: string[];
  /** idle timeout of a request, ms (default 30 s; env TSCTL_REGISTRY_TIMEOUT_MS) */
  timeoutMs?: number;
  /** attempts per request for retryable failures (default 3) */
  attempts?: number;
  /** credentials instead of the docker config file's */
  auth?: { user: string; password: string };
}

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses a WWW-Authenticate header: `Bearer realm="...",service="...",scope="..."` (several challenges too). */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let cur: Challenge | undefined;
  let pos = 0;
  while (pos < header.length) {
    // a param first (key=value), else a scheme token
    const param = /\s*([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?/y;
    param.lastIndex = pos;
    const p = param.exec(header);
    if (p && cur) {
      cur.params[p[1]!.toLowerCase()] = p[2] !== undefined ? p[2].replace(/\\(.)/g, '$1') : p[3]!;
      pos = param.lastIndex;
      continue;
    }
    const scheme = /\s*([A-Za-z][\w-]*)\s*,?/y;
    scheme.lastIndex = pos;
    const s = scheme.exec(header);
    if (!s) break;
    cur = { scheme: s[1]!.toLowerCase(), params: {} };
    out.push(cur);
    pos = scheme.lastIndex;
  }
  return out;
}

/** Docker's rule for plain http: loopback, or named insecure. */
export function isInsecureHost(host: string, insecure: string[] = []): boolean {
  const name = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  if (name === 'localhost' || name === '::1' || /^127\.\d+\.\d+\.\d+$/.test(name)) return true;
  return insecure.some((h) => h === host || h === name);
}

/** Basic credentials for `host` from $DOCKER_CONFIG/config.json (or ~/.docker/config.json). */
export function dockerCredentials(host: string): { user: string; password: string } | undefined {
  const dir = process.env.DOCKER_CONFIG || path.join(os.homedir(), '.docker');
  let cfg: { auths?: Record<string, { auth?: string; username?: string; password?: string }> };
  try {
    cfg = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UserError(`${path.join(dir, 'config.json')}: ${(e as Error).message}`);
  }
  const keys = host === 'registry-1.docker.io' || host === 'docker.io' ? ['https://index.docker.io/v1/', 'index.docker.io', 'docker.io', host] : [host];
  for (const [k, v] of Object.entries(cfg.auths ?? {})) {
    const bare = k.replace(/^https?:\/\//, '').replace(/\/.*$/, '');
    if (!keys.includes(k) && !keys.includes(bare)) continue;
    if (v.auth) {
      const text = Buffer.from(v.auth, 'base64').toString('utf8');
      const i = text.indexOf(':');
      if (i < 0) throw new UserError(`docker config: auths.${k}.auth is not base64 "user:password"`);
      return { user: text.slice(0, i), password: text.slice(i + 1) };
    }
    if (v.username && v.password) return { user: v.username, password: v.password };
  }
  return undefined;
}

const MANIFEST_ACCEPT = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerManifestList].join(', ');
const MAX_MANIFEST = 4 * 1024 * 1024;
const RETRYABLE = new Set(['ECONNRESET', 'ECONNREFUSED', 'ETIMEDOUT', 'EPIPE', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH', 'TSCTL_TIMEOUT']);

/** A failed request: the message is the one line a user sees. */
export class RegistryError extends UserError {
  constructor(
    message: string,
    readonly status = 0,
    readonly retryable = false,
  ) {
    super(message);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface FetchedManifest {
  body: Buffer;
  mediaType: string;
  digest: string;
}

export class RegistryClient {
  readonly host: string;
  /** loopback or named insecure: https unverified, or http (see scheme()) */
  readonly insecure: boolean;
  private baseUrl: Promise<string> | undefined;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  private readonly httpsAgent: https.Agent;
  private readonly timeoutMs: number;
  private readonly attempts: number;
  private creds: { user: string; password: string } | undefined;
  private credsLoaded = false;
  private authHeader: string | undefined;
  private tokenPromise: Promise<void> | undefined;

  constructor(
    domain: string,
    readonly repo: string,
    private readonly opts: RegistryOptions = {},
  ) {
    this.host = registryHost(domain);
    this.insecure = isInsecureHost(this.host, opts.insecure);
    this.httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 8, rejectUnauthorized: !this.insecure });
    this.timeoutMs = opts.timeoutMs ?? (Number(process.env.TSCTL_REGISTRY_TIMEOUT_MS) || 30_000);
    this.attempts = opts.attempts ?? 3;
    if (opts.auth) {
      this.creds = opts.auth;
      this.credsLoaded = true;
    }
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  /**
   * "https://host" or, for an insecure registry that does not speak TLS,
   * "http://host": Docker pings /v2/ over https first and falls back.
   */
  base(): Promise<string> {
    this.baseUrl ??= (async () => {
      const https = `https://${this.host}`;
      if (!this.insecure) return https;
      try {
        const res = await this.send(`${https}/v2/`, {}, 0, Math.min(this.timeoutMs, 5000));
        res.resume();
        return https;
      } catch {
        // a refused connection is refused over http too: say so from there
        return `http://${this.host}`;
      }
    })();
    return this.baseUrl;
  }

  private credentials(): { user: string; password: string } | undefined {
    if (!this.credsLoaded) {
      this.creds = dockerCredentials(this.host);
      this.credsLoaded = true;
    }
    return this.creds;
  }

  /** One request (redirects followed); the response is returned unread whatever its status. */
  private send(url: string, headers: Record<string, string>, hops = 0, timeoutMs = this.timeoutMs): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const mod = u.protocol === 'https:' ? https : http;
      const sameHost = u.host === this.host;
      const req = mod.request(
        u,
        { method: 'GET', headers: { 'User-Agent': 'tsctl', ...headers }, agent: sameHost ? (u.protocol === 'https:' ? this.httpsAgent : this.httpAgent) : undefined },
        (res) => {
          const loc = res.headers.location;
          if (res.statusCode && [301, 302, 303, 307, 308].includes(res.statusCode) && loc) {
            res.resume();
            if (hops >= 5) return reject(new RegistryError(`${u.host}: too many redirects`));
            const next = new URL(loc, u);
            // credentials are for the registry, not the CDN it redirects to
            const h = { ...headers };
            if (next.host !== this.host) delete h.Authorization;
            resolve(this.send(next.toString(), h, hops + 1));
            return;
          }
          res.setTimeout(timeoutMs, () => res.destroy(Object.assign(new Error('timed out'), { code: 'TSCTL_TIMEOUT' })));
          resolve(res);
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error(`no answer in ${timeoutMs} ms`), { code: 'TSCTL_TIMEOUT' })));
      req.on('error', (e: NodeJS.ErrnoException) => {
        const code = e.code ?? '';
        const why = code === 'ECONNREFUSED' ? 'connection refused' : code === 'TSCTL_TIMEOUT' ? e.message : code === 'ENOTFOUND' ? 'no such host' : e.message;
        const hint = /EPROTO|wrong version number/.test(e.message) ? ` (is it plain http? then add --insecure-registry ${this.host})` : '';
        reject(new RegistryError(`${u.protocol}//${u.host}: ${why}${hint}`, 0, RETRYABLE.has(code)));
      });
      req.end();
    });
  }

  /** GET with auth (challenge answered once) and retries; resolves with a 2xx response. */
  async get(pathname: string, accept?: string, what = pathname): Promise<http.IncomingMessage> {
    let lastErr: RegistryError | undefined;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (attempt > 1) await sleep(150 * 4 ** (attempt - 2));
      try {
        return await this.getOnce(pathname, accept, what);
      } catch (e) {
        if (!(e instanceof RegistryError) || !e.retryable) throw e;
        lastErr = e;
      }
    }
    throw lastErr!;
  }

  private async getOnce(pathname: string, accept: string | undefined, what: string): Promise<http.IncomingMessage> {
    const url = `${await this.base()}${pathname}`;
    const headers = (): Record<string, string> => ({ ...(accept ? { Accept: accept } : {}), ...(this.authHeader ? { Authorization: this.authHeader } : {}) });
    let res = await this.send(url, headers());
    if (res.statusCode === 401) {
      const challenge = String(res.headers['www-authenticate'] ?? '');
      res.resume();
      const had = this.authHeader;
      await this.authenticate(challenge, had);
      res = await this.send(url, headers());
      if (res.statusCode === 401) {
        res.resume();
        throw new RegistryError(this.denied(), 401);
      }
    }
    const status = res.statusCode ?? 0;
    if (status >= 200 && status < 300) return res;
    const body = await readBody(res, 64 * 1024).catch(() => Buffer.alloc(0));
    const detail = registryMessage(body);
    if (status === 404) throw new RegistryError(`${what}: not found${detail ? `: ${detail}` : ''}`, 404);
    if (status === 403) throw new RegistryError(this.denied(), 403);
    const retryable = status === 429 || status >= 500;
    throw new RegistryError(`${this.host}: ${what}: HTTP ${status}${detail ? `: ${detail}` : ''}`, status, retryable);
  }

  private denied(): string {
    return `pull access denied for ${this.host}/${this.repo}, repository does not exist or may require authorization: authentication required`;
  }

  /** Answers a 401's challenge: fetches a bearer token, or uses basic credentials. */
  private async authenticate(header: string, had: string | undefined): Promise<void> {
    const challenges = parseChallenges(header);
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    if (bearer) {
      // one token fetch shared by the layers fetched at once
      if (!this.tokenPromise || this.authHeader === had) this.tokenPromise = this.fetchToken(bearer);
      await this.tokenPromise;
      return;
    }
    if (challenges.some((c) => c.scheme === 'basic')) {
      const c = this.credentials();
      if (!c) throw new RegistryError(this.denied(), 401);
      this.authHeader = `Basic ${Buffer.from(`${c.user}:${c.password}`).toString('base64')}`;
      return;
    }
    throw new RegistryError(`${this.host}: unauthorized, and no usable WWW-Authenticate challenge (${JSON.stringify(header)})`, 401);
  }

  private async fetchToken(ch: Challenge): Promise<void> {
    const realm = ch.params.realm;
    if (!realm) throw new RegistryError(`${this.host}: bearer challenge without a realm`, 401);
    let u: URL;
    try {
      u = new URL(realm);
    } catch {
      throw new RegistryError(`${this.host}: bearer challenge with a bad realm ${JSON.stringify(realm)}`, 401);
    }
    if (ch.params.service) u.searchParams.set('service', ch.params.service);
    u.searchParams.set('scope', ch.params.scope && ch.params.scope.includes(this.repo) ? ch.params.scope : `repository:${this.repo}:pull`);
    const c = this.credentials();
    const headers: Record<string, string> = c ? { Authorization: `Basic ${Buffer.from(`${c.user}:${c.password}`).toString('base64')}` } : {};
    let lastErr: RegistryError | undefined;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (attempt > 1) await sleep(150 * 4 ** (attempt - 2));
      let res: http.IncomingMessage;
      try {
        res = await this.send(u.toString(), headers);
      } catch (e) {
        if (e instanceof RegistryError && e.retryable) {
          lastErr = e;
          continue;
        }
        throw e;
      }
      const body = await readBody(res, 1024 * 1024);
      if (res.statusCode === 401 || res.statusCode === 403) throw new RegistryError(`${this.denied()} (token server ${u.host} refused the credentials)`, 401);
      if (res.statusCode !== 200) {
        lastErr = new RegistryError(`token server ${u.host}: HTTP ${res.statusCode}`, res.statusCode ?? 0, (res.statusCode ?? 0) >= 500);
        if (lastErr.retryable) continue;
        throw lastErr;
      }
      let token: unknown;
      try {
        const j = JSON.parse(body.toString('utf8')) as { token?: unknown; access_token?: unknown };
        token = j.token ?? j.access_token;
      } catch {
        /* below */
      }
      if (typeof token !== 'string' || !token) throw new RegistryError(`token server ${u.host}: no token in its answer`, 401);
      this.authHeader = `Bearer ${token}`;
      return;
    }
    throw lastErr!;
  }

  /** The manifest (or index) `reference` (a tag or a digest) names, checked against the digest when asked by one. */
  async manifest(reference: string): Promise<FetchedManifest> {
    const what = `manifest for ${this.host}/${this.repo}${reference.startsWith('sha256:') ? '@' : ':'}${reference}`;
    const res = await this.get(`/v2/${this.repo}/manifests/${reference}`, MANIFEST_ACCEPT, what);
    const body = await readBody(res, MAX_MANIFEST).catch((e: Error) => {
      throw new RegistryError(`${what}: ${e.message}`);
    });
    const digest = digestOf(body);
    if (reference.startsWith('sha256:') && digest !== reference) throw new RegistryError(`${what}: digest mismatch: the content is ${digest}`);
    const header = res.headers['docker-content-digest'];
    if (typeof header === 'string' && header.startsWith('sha256:') && header !== digest) {
      throw new RegistryError(`${what}: the registry says its digest is ${header}, the content is ${digest}`);
    }
    let doc: { mediaType?: unknown; schemaVersion?: unknown; manifests?: unknown; layers?: unknown };
    try {
      doc = JSON.parse(body.toString('utf8'));
    } catch {
      throw new RegistryError(`${what}: not JSON`);
    }
    const ct = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    const mediaType = typeof doc.mediaType === 'string' ? doc.mediaType : ct;
    if (doc.schemaVersion === 1 || /distribution\.manifest\.v1\+(json|prettyjws)/.test(mediaType)) {
      throw new RegistryError(`${what}: Docker image manifest schema 1 is not supported (deprecated since 2017): push it again with a current client`);
    }
    // OCI lets a manifest omit mediaType, and some registries answer application/json: go by the shape
    const known = [MEDIA.ociManifest, MEDIA.ociIndex, MEDIA.dockerManifest, MEDIA.dockerManifestList] as string[];
    const shaped = Array.isArray(doc.manifests) ? MEDIA.ociIndex : Array.isArray(doc.layers) ? MEDIA.ociManifest : mediaType;
    return { body, mediaType: known.includes(mediaType) ? mediaType : shaped, digest };
  }

  /** Streams blob `desc` into `w` (verified by w.commit()); retried from the start on network failures. */
  async blob(desc: Descriptor, open: () => BlobWriter, onData?: (n: number) => void): Promise<void> {
    let lastErr: UserError | undefined;
    for (let attempt = 1; attempt <= this.attempts; attempt++) {
      if (attempt > 1) await sleep(150 * 4 ** (attempt - 2));
      const w = open();
      try {
        const res = await this.get(`/v2/${this.repo}/blobs/${desc.digest}`, undefined, `blob ${desc.digest}`);
        await new Promise<void>((resolve, reject) => {
          res.on('data', (chunk: Buffer) => {
            try {
              w.write(chunk);
              onData?.(chunk.length);
            } catch (e) {
              reject(e); // first: destroying emits 'aborted', which must not win
              res.destroy();
            }
          });
          res.on('end', resolve);
          res.on('error', reject);
          res.on('aborted', () => reject(new RegistryError(`blob ${desc.digest}: connection closed`, 0, true)));
          res.on('close', () => (res.complete ? resolve() : reject(new RegistryError(`blob ${desc.digest}: truncated: got ${w.written} of ${desc.size} bytes`, 0, true))));
        });
        w.commit();
        return;
      } catch (e) {
        w.abort();
        if (e instanceof RegistryError && e.retryable) {
          lastErr = e;
          continue;
        }
        if (e instanceof UserError && /truncated/.test(e.message)) {
          lastErr = e;
          continue;
        }
        if ((e as NodeJS.ErrnoException).code && RETRYABLE.has((e as NodeJS.ErrnoException).code!)) {
          lastErr = new RegistryError(`blob ${desc.digest}: ${(e as Error).message}`, 0, true);
          continue;
        }
        throw e instanceof UserError ? e : new RegistryError(`blob ${desc.digest}: ${(e as Error).message}`);
      }
    }
    throw lastErr!;
  }
}

/** The registry's error text: {"errors":[{"code","message"}]}. */
function registryMessage(body: Buffer): string {
  try {
    const j = JSON.parse(body.toString('utf8')) as { errors?: { code?: string; message?: string }[] };
    return (j.errors ?? []).map((e) => e.message ?? e.code).filter(Boolean).join('; ');
  } catch {
    return '';
  }
}

function readBody(res: http.IncomingMessage, max: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    res.on('data', (b: Buffer) => {
      n += b.length;
      if (n > max) {
        res.destroy();
        reject(new Error(`answer larger than ${max} bytes`));
      } else parts.push(b);
    });
    res.on('end', () => resolve(Buffer.concat(parts)));
    res.on('error', reject);
    res.on('close', () => (res.complete ? resolve(Buffer.concat(parts)) : reject(new Error('connection closed mid-answer'))));
  });
}

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

/** The platform Docker picks on this machine: linux/amd64 (variant v1..v3 all fine). */
export const DEFAULT_PLATFORM: Platform = { os: 'linux', architecture: 'amd64' };

/** `--platform os/arch[/variant]` (Docker's spelling). */
export function parsePlatform(s: string): Platform {
  const m = /^([a-z0-9_]+)\/([a-z0-9_]+)(?:\/([a-z0-9_.]+))?$/.exec(s.toLowerCase());
  if (!m) throw new UserError(`invalid platform ${JSON.stringify(s)}: want os/arch[/variant], e.g. linux/amd64`);
  return { os: m[1]!, architecture: m[2]!, ...(m[3] ? { variant: m[3] } : {}) };
}

const platformString = (p: Platform) => `${p.os}/${p.architecture}${p.variant ? `/${p.variant}` : ''}`;

/** The manifest descriptor of an index / manifest list for `platform`, as Docker chooses it. */
export function selectManifest(index: ImageIndex, platform: Platform = DEFAULT_PLATFORM): Descriptor {
  if (!Array.isArray(index.manifests)) throw new UserError('image index has no manifests list');
  const candidates = index.manifests.filter(
    (m) => m.platform && m.platform.os === platform.os && m.platform.architecture === platform.architecture && (!platform.variant || m.platform.variant === platform.variant),
  );
  // without a variant asked for, prefer the plain one (or v1): what any machine of that arch runs
  const best = candidates.find((m) => !m.platform!.variant || m.platform!.variant === 'v1') ?? candidates[0];
  if (!best) {
    const have = index.manifests.map((m) => (m.platform ? platformString(m.platform) : 'unknown')).join(', ');
    throw new UserError(`no matching manifest for ${platformString(platform)} in the manifest list entries (it has: ${have || 'none'})`);
  }
  return best;
}

export function isIndexMediaType(mt: string): boolean {
  return mt === MEDIA.ociIndex || mt === MEDIA.dockerManifestList;
}

/** Checks an image manifest's shape (a registry or an archive could send anything). */
export function checkManifest(m: Manifest, what: string): Manifest {
  const badDesc = (d: Descriptor | undefined) => !d || typeof d.digest !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(d.digest) || typeof d.size !== 'number' || d.size < 0;
  if (!m || typeof m !== 'object' || badDesc(m.config) || !Array.isArray(m.layers) || m.layers.some(badDesc)) {
    throw new UserError(`${what}: not a valid image manifest (config and layers need sha256 digests and sizes)`);
  }
  for (const l of m.layers) {
    if (l.mediaType === MEDIA.ociLayerZstd || /zstd/.test(l.mediaType)) {
      throw new UserError(`${what}: layer ${l.digest} is zstd-compressed (${l.mediaType}): not supported, only gzip and uncompressed layers`);
    }
  }
  return m;
}
