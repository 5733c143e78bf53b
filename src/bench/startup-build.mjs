// Build-time helpers for a fast cold start (scripts/bundle.mjs uses them;
// each was measured: README.md, Benchmarks).
//
//  - builtinsPlugin: esbuild plugin for Node's built-in modules.
//      * `import x from 'node:fs'` (and `path`) in our ES modules becomes a
//        direct reference instead of esbuild's CommonJS interop, which copied
//        every export of the module into a new object with getters, once per
//        importing file (16 files import fs);
//      * child_process, tty and os are loaded on first use, not at start:
//        commander and hooks import child_process, which alone pulls in net,
//        stream, dgram and more (~5 ms per start here), yet only hooks, ps and
//        the benchmark ever call it.
//  - buildCodeCache: runs the launcher (src/bench/launcher.ts) in its
//    training mode to write dist/tsrun-main.<build id>.cache and
//    dist/tsrun-main.<build id>.full.cache.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** Built-ins loaded on first use. */
export const LAZY_BUILTINS = ['child_process', 'tty', 'os'];
/** Built-ins our ES modules import directly (no interop copy). */
export const DIRECT_BUILTINS = ['fs', 'path'];

const IDENT = /^[A-Za-z_$][\w$]*$/;
const RESERVED = new Set(['default', 'delete', 'new', 'class', 'function', 'var', 'let', 'const', 'import', 'export']);

/**
 * Own keys of a built-in that can be exported by name. With dataOnly, the
 * accessors are left out (fs.promises, fs.Dir, fs.ReadStream...: reading one
 * loads more of Node), which stay reachable through the default export. Asked
 * of a fresh Node: a lazy accessor turns into a data property once read, and
 * this build process may have read some.
 */
function exportable(name, { dataOnly }) {
  const probe = `const m = require(${JSON.stringify(`node:${name}`)}); console.log(JSON.stringify(Object.keys(m).filter((k) => ${dataOnly} ? !Object.getOwnPropertyDescriptor(m, k).get : true)))`;
  const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '' } });
  if (r.status !== 0) throw new Error(`cannot list the exports of node:${name}: ${r.stderr}`);
  return JSON.parse(r.stdout).filter((k) => IDENT.test(k) && !RESERVED.has(k));
}

function lazyEsm(name) {
  const id = JSON.stringify(`node:${name}`);
  const mod = require(`node:${name}`);
  const keys = exportable(name, { dataOnly: false });
  // Functions that are not classes become wrappers; everything else is
  // reached through the default export's getters.
  const fns = keys.filter((k) => typeof mod[k] === 'function' && !/^[A-Z]/.test(k));
  return [
    `let m;`,
    `const load = () => m || (m = require(${id}));`,
    `export default {`,
    ...keys.map((k) => `  get ${k}() { return load().${k}; },`),
    `};`,
    ...fns.map((k) => `export function ${k}() { return load().${k}.apply(this, arguments); }`),
  ].join('\n');
}

function lazyCjs(name) {
  const id = JSON.stringify(`node:${name}`);
  const keys = Object.keys(require(`node:${name}`));
  return [
    `let m;`,
    `const load = () => m || (m = require(${id}));`,
    `module.exports = {`,
    ...keys.map((k) => `  get ${JSON.stringify(k)}() { return load()[${JSON.stringify(k)}]; },`),
    `};`,
  ].join('\n');
}

function directEsm(name) {
  const id = JSON.stringify(`node:${name}`);
  const keys = exportable(name, { dataOnly: true });
  return [`const m = require(${id});`, `export default m;`, ...keys.map((k) => `export const ${k} = m.${k};`)].join('\n');
}

export function builtinsPlugin({ lazy = LAZY_BUILTINS, direct = DIRECT_BUILTINS } = {}) {
  const names = [...lazy, ...direct];
  const filter = new RegExp(`^(node:)?(${names.join('|')})$`);
  return {
    name: 'tsrun-builtins',
    setup(b) {
      b.onResolve({ filter }, (a) => {
        const name = a.path.replace(/^node:/, '');
        // The shims' own require() of the real module.
        if (a.namespace === 'tsrun-esm' || a.namespace === 'tsrun-cjs') return { path: `node:${name}`, external: true };
        if (a.kind === 'require-call') {
          // CommonJS code (commander): lazy ones get a getter object; the others stay a plain require.
          return lazy.includes(name) ? { path: name, namespace: 'tsrun-cjs' } : { path: `node:${name}`, external: true };
        }
        return { path: name, namespace: 'tsrun-esm' };
      });
      b.onLoad({ filter: /.*/, namespace: 'tsrun-esm' }, (a) => ({
        contents: lazy.includes(a.path) ? lazyEsm(a.path) : directEsm(a.path),
        loader: 'js',
      }));
      b.onLoad({ filter: /.*/, namespace: 'tsrun-cjs' }, (a) => ({ contents: lazyCjs(a.path), loader: 'js' }));
    },
  };
}

/**
 * esbuild plugin for the fast paths' bundles (dist/tsrun-lifecycle.js,
 * dist/tsrun-state.js): commander marked free of side effects, so esbuild
 * drops it where only dead code (the src/cli modules' register functions)
 * uses it. It is a CommonJS package without a `sideEffects` field, which
 * esbuild would otherwise keep whole for its require() alone.
 */
export function withoutCommander() {
  return {
    name: 'tsrun-without-commander',
    setup(b) {
      b.onResolve({ filter: /^commander$/ }, async (a) => {
        if (a.pluginData === 'tsrun-without-commander') return undefined; // our own resolve below
        const r = await b.resolve(a.path, { resolveDir: a.resolveDir, kind: a.kind, pluginData: 'tsrun-without-commander' });
        if (r.errors.length) return { errors: r.errors };
        return { path: r.path, sideEffects: false };
      });
    },
  };
}

/**
 * Commands the code cache is trained on: they compile what every start needs
 * (commander, the command table, the state store, errors and logging) and
 * config.json validation, without side effects outside a temporary directory.
 */
export function trainingRuns(tmp) {
  const root = path.join(tmp, 'root');
  const bundle = path.join(tmp, 'bundle');
  return [
    ['--root', root, 'state', 'nosuch'],
    ['--root', root, 'list'],
    ['--root', root, 'delete', 'nosuch'],
    ['spec', '--bundle', bundle],
    // config.json from `spec`, no rootfs: create validates the whole config, then stops.
    ['--root', root, 'create', '--bundle', bundle, 'c1'],
    ['--root', root, 'state', 'nosuch'],
  ];
}

/**
 * Writes the caches of build `id` by running the launcher in training mode:
 * the CLI's two, and the lifecycle bundle's full one (every function compiled
 * up front, so nothing needs running); removes other builds' caches.
 */
export function buildCodeCache(distDir, id) {
  const made = [];
  const kinds = [
    { bundle: 'main', full: false },
    { bundle: 'main', full: true },
    { bundle: 'lifecycle', full: true },
  ];
  for (const { bundle, full } of kinds) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-code-cache-'));
    try {
      fs.mkdirSync(path.join(tmp, 'bundle'));
      const env = {
        ...process.env,
        TSRUN_BUILD_CODE_CACHE: JSON.stringify(bundle === 'main' ? trainingRuns(tmp) : []),
        TSRUN_BUILD_CODE_CACHE_FULL: full ? '1' : '0',
        TSRUN_BUILD_CODE_CACHE_BUNDLE: bundle,
      };
      delete env.NODE_OPTIONS; // the cache must match the flags bin/tsrun starts node with (none)
      delete env.TSRUN_TRACE;
      const r = spawnSync(process.execPath, [path.join(distDir, 'tsrun.js')], { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
      const cache = path.join(distDir, `tsrun-${bundle}.${id}${full ? '.full' : ''}.cache`);
      if (r.status !== 0 || !fs.existsSync(cache)) {
        throw new Error(`building the code cache failed (exit ${r.status}): ${r.stderr}`);
      }
      made.push(cache);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  for (const f of fs.readdirSync(distDir)) {
    if (/^tsrun-(main|lifecycle)\..*\.cache$/.test(f) && !made.some((m) => path.basename(m) === f)) fs.rmSync(path.join(distDir, f), { force: true });
  }
  return made.map((m) => `${m}: ${fs.statSync(m).size} bytes`).join(', ');
}
