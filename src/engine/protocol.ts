/**
 * The engine's wire protocol, mirrored from native/engine_proto.h (read its
 * comment first): message types, where an engine for a --root listens, and
 * the build id launcher and engine compare before anything else.
 */
import fs from 'node:fs';
import path from 'node:path';
import { native } from '../native.js';

/** native/engine_proto.h ENGINE_PROTO_VERSION */
export const ENGINE_PROTO_VERSION = 6;
export const ENGINE_SOCKET_DIR = '/run/tsrun-engine';

export const enum Em {
  Hello = 1,
  Exit = 2,
  Fallback = 3,
  Spawn = 4,
  Reap = 7,
  Cleanup = 8,
  Wait = 9,
  Request = 101,
  Spawned = 102,
  SpawnFailed = 103,
  Done = 105,
  Control = 106,
  Exited = 107,
}

/** FNV-1a 64 of the root, as native/launcher.cc computes it. */
export function rootKey(root: string): string {
  let h = 0xcbf29ce484222325n;
  for (const c of Buffer.from(root, 'utf8')) {
    h ^= BigInt(c);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

export function socketPath(root: string): string {
  return path.join(ENGINE_SOCKET_DIR, `${rootKey(root)}.sock`);
}

export function pidPath(root: string): string {
  return path.join(ENGINE_SOCKET_DIR, `${rootKey(root)}.pid`);
}

/**
 * This code's build: the id scripts/bundle.mjs appended to the bundle we
 * run (read once, at engine start: a rebuild later changes the file, not
 * what this process runs), the protocol and the addon's plan version.
 * Empty outside a bundle (unit tests): nothing then matches it.
 */
let cached: string | undefined;
export function buildId(): string {
  if (cached !== undefined) return cached;
  let footer = '';
  try {
    const text = fs.readFileSync(path.join(__dirname, 'tsrun-main.js'), 'utf8');
    footer = /\/\/# tsrun-build (\S+)\s*$/.exec(text.slice(-128))?.[1] ?? '';
  } catch {
    footer = '';
  }
  cached = footer ? `${footer}/p${ENGINE_PROTO_VERSION}/v${native().planVersion}` : '';
  return cached;
}

/** NUL-terminated strings, as both sides frame lists. */
export function joinNul(items: readonly string[]): Buffer {
  return Buffer.from(items.map((s) => s + '\0').join(''), 'utf8');
}

export function splitNul(buf: Buffer): string[] {
  const text = buf.toString('utf8');
  if (!text) return [];
  return (text.endsWith('\0') ? text.slice(0, -1) : text).split('\0');
}
