// Bundles each CLI into one CommonJS file: one file to read and compile at
// start, nothing resolved on disk at run time but the addon.
//
// tsrun itself is four files (src/bench/launcher.ts and startup-build.mjs
// explain them; README.md, Benchmarks, has the numbers):
//   dist/tsrun.js               the launcher bin/tsrun runs
//   dist/tsrun-main.js          the CLI, ending with its build id
//   dist/tsrun-main.<id>.cache  V8's code cache of the CLI, made by running it
//   dist/tsrun-state.js         `state` alone (src/bench/state-entry.ts)
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { buildCodeCache, builtinsPlugin } from '../src/bench/startup-build.mjs';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));

const common = { outdir: 'dist', bundle: true, platform: 'node', format: 'cjs', target: 'node20', logLevel: 'warning', write: false };
/** Replaces a file atomically: a concurrent start reads the old or the new one. */
const writeAtomic = (file, text) => {
  writeFileSync(`${file}.${process.pid}.tmp`, text);
  renameSync(`${file}.${process.pid}.tmp`, file);
};
mkdirSync('dist', { recursive: true });

const main = await build({
  ...common,
  entryPoints: { 'tsrun-main': 'src/cli/entry.ts' },
  define: { TSRUN_VERSION: JSON.stringify(version) },
  plugins: [builtinsPlugin()],
});
const code = main.outputFiles[0].text;
const id = createHash('sha256').update(code).digest('hex').slice(0, 16);
writeAtomic('dist/tsrun-main.js', `${code}\n//# tsrun-build ${id}\n`);
const launcher = await build({
  ...common,
  entryPoints: { tsrun: 'src/bench/launcher.ts' },
  define: { TSRUN_BUILD_ID: JSON.stringify(id) },
});
writeAtomic('dist/tsrun.js', launcher.outputFiles[0].text);
// `[global flags] state ID` alone: dist/tsrun.js loads it instead of the CLI.
const state = await build({
  ...common,
  entryPoints: { 'tsrun-state': 'src/bench/state-entry.ts' },
  plugins: [builtinsPlugin()],
});
writeAtomic('dist/tsrun-state.js', state.outputFiles[0].text);
// tsctl, the shim: one plain bundle (it is not on any engine's hot path).
const shim = await build({
  ...common,
  entryPoints: { tsctl: 'src/shim/cli/entry.ts' },
  define: { TSRUN_VERSION: JSON.stringify(version) },
});
writeAtomic('dist/tsctl.js', shim.outputFiles[0].text);
try {
  buildCodeCache('dist', id);
} catch (e) {
  // Only slower without it: the launcher compiles the bundle as Node would.
  console.warn(`bundle.mjs: warning: no code cache: ${e.message}`);
}
