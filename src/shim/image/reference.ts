/**
 * Image references the way Docker reads them (distribution/reference's
 * grammar and its "familiar" normalization):
 *
 *   busybox                      → docker.io/library/busybox:latest
 *   user/app:1.2                 → docker.io/user/app:1.2
 *   localhost:5000/x             → localhost:5000/x:latest
 *   quay.io/a/b@sha256:<64 hex>  → quay.io/a/b@sha256:<64 hex> (no tag implied)
 *
 * The first path component is a registry host only if it has a "." or a
 * ":" or is "localhost" — otherwise it is part of a Docker Hub name.
 */
import { UserError } from '../../errors.js';

export const DEFAULT_DOMAIN = 'docker.io';
export const DEFAULT_TAG = 'latest';
/** Docker Hub's API host: docker.io names a namespace, not a server. */
export const DOCKER_HUB_REGISTRY = 'registry-1.docker.io';

export interface Reference {
  /** registry host[:port], e.g. "docker.io", "127.0.0.1:5000" */
  domain: string;
  /** repository path in that registry, e.g. "library/busybox" */
  path: string;
  tag?: string;
  /** "sha256:<hex>" */
  digest?: string;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_COMPONENT = /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])$/;
const TAG = /^[\w][\w.-]{0,127}$/;
export const DIGEST = /^sha256:[a-f0-9]{64}$/;
const MAX_NAME = 255;

function invalid(ref: string, why: string): UserError {
  return new UserError(`invalid reference format: ${why}: "${ref}"`);
}

function validDomain(d: string): boolean {
  if (/^\[[0-9a-fA-F:]+\](?::\d+)?$/.test(d)) return true; // [IPv6]:port
  const m = /^([^:]+)(?::(\d+))?$/.exec(d);
  return !!m && m[1]!.split('.').every((c) => DOMAIN_COMPONENT.test(c)) && (m[2] === undefined || Number(m[2]) < 65536);
}

/** Parses and normalizes `ref`; a malformed one is a UserError naming it. */
export function parseReference(ref: string): Reference {
  if (ref === '') throw new UserError('invalid reference format: empty image name');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw invalid(ref, /^sha256:/.test(digest) ? 'digest must be sha256 with 64 lowercase hex digits' : 'unsupported digest algorithm');
    }
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(ref, 'invalid tag');
  }
  let domain = DEFAULT_DOMAIN;
  let repoPath = rest;
  const slash = rest.indexOf('/');
  if (slash >= 0) {
    const first = rest.slice(0, slash);
    if (first.includes('.') || first.includes(':') || first === 'localhost' || /[A-Z]/.test(first)) {
      domain = first;
      repoPath = rest.slice(slash + 1);
      if (!validDomain(domain)) throw invalid(ref, 'invalid registry host');
    }
  }
  if (domain === 'index.docker.io') domain = DEFAULT_DOMAIN;
  if (repoPath === '') throw invalid(ref, 'empty repository name');
  if (/[A-Z]/.test(repoPath)) throw invalid(ref, 'repository name must be lowercase');
  if (!repoPath.split('/').every((c) => COMPONENT.test(c))) throw invalid(ref, 'invalid repository name');
  if (domain === DEFAULT_DOMAIN && !repoPath.includes('/')) repoPath = `library/${repoPath}`;
  if (`${domain}/${repoPath}`.length > MAX_NAME) throw invalid(ref, `repository name longer than ${MAX_NAME} characters`);
  if (tag === undefined && digest === undefined) tag = DEFAULT_TAG;
  return { domain, path: repoPath, tag, digest };
}

/** "docker.io/library/busybox" */
export function repository(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** The normalized full form: repo:tag, repo@digest or repo:tag@digest. */
export function formatReference(r: Reference): string {
  return `${repository(r)}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The short form Docker prints: "busybox:latest", "user/app:1", "localhost:5000/x:y". */
export function familiarName(r: Reference): string {
  let name = repository(r);
  if (r.domain === DEFAULT_DOMAIN) name = r.path.startsWith('library/') ? r.path.slice(8) : r.path;
  return name;
}

/** familiarName with its tag or digest. */
export function familiarString(r: Reference): string {
  return `${familiarName(r)}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** The host to speak the distribution API to for a reference's domain. */
export function registryHost(domain: string): string {
  return domain === DEFAULT_DOMAIN ? DOCKER_HUB_REGISTRY : domain;
}

/** Whether `s` parses as a reference (for telling names from ids). */
export function isReference(s: string): boolean {
  try {
    parseReference(s);
    return true;
  } catch {
    return false;
  }
}
