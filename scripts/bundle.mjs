// Bundles each CLI into one CommonJS file: one file to read and compile at
// start, nothing resolved on disk at run time but the addon.
//
// tsrun itself is these files (src/bench/launcher.ts and startup-build.mjs
// explain them; README.md, Benchmarks, has the numbers):
//   dist/tsrun.js                         the launcher bin/tsrun runs
//   dist/tsrun-main.js                    the CLI, ending with the build id
//   dist/tsrun-main.<id>[.full].cache     V8's code caches of the CLI, made by running it
//   dist/tsrun-lifecycle.js               create, run, start, kill, delete, exec without
//                                         commander (src/bench/lifecycle-entry.ts),
//                                         ending with the same build id
//   dist/tsrun-lifecycle.<id>.full.cache  its code cache
//   dist/tsrun-state.js                   `state` alone (src/bench/state-entry.ts)
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { buildCodeCache, builtinsPlugin, withoutCommander } from '../src/bench/startup-build.mjs';

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
// The fast paths' bundles: commander's registrations are dead code there, so
// it is dropped (withoutCommander), and the build fails if it is not; nor may
// they grow back what they were made without (`forbidden`).
const fastBundle = async (name, entry, forbidden = []) => {
  const r = await build({ ...common, entryPoints: { [name]: entry }, metafile: true, plugins: [withoutCommander(), builtinsPlugin()] });
  // Modules tree-shaking emptied are listed too, with no bytes.
  const inputs = Object.entries(Object.values(r.metafile.outputs)[0].inputs)
    .filter(([, v]) => v.bytesInOutput > 0)
    .map(([f]) => f);
  const leaked = inputs.filter((f) => f.includes('node_modules/commander/') || forbidden.includes(f));
  if (leaked.length) throw new Error(`dist/${name}.js must not contain ${leaked.join(', ')}`);
  return r.outputFiles[0].text;
};
const lifecycleCode = await fastBundle('tsrun-lifecycle', 'src/bench/lifecycle-entry.ts');
// One build id for the CLI and the lifecycle bundle: each cache is used only
// with the bundle text it was made from, and an engine only with launchers of the same build.
const id = createHash('sha256').update(code).update(lifecycleCode).digest('hex').slice(0, 16);
writeAtomic('dist/tsrun-main.js', `${code}\n//# tsrun-build ${id}\n`);
writeAtomic('dist/tsrun-lifecycle.js', `${lifecycleCode}\n//# tsrun-build ${id}\n`);
const launcher = await build({
  ...common,
  entryPoints: { tsrun: 'src/bench/launcher.ts' },
  define: { TSRUN_BUILD_ID: JSON.stringify(id) },
});
writeAtomic('dist/tsrun.js', launcher.outputFiles[0].text);
// `[global flags] state ID` alone: dist/tsrun.js loads it instead of the CLI.
// `state` reads the freezer's state, not the cgroup manager's (src/lifecycle/container.ts statusOf):
// 20 KB instead of 66, ~1 ms sooner cold.
writeAtomic('dist/tsrun-state.js', await fastBundle('tsrun-state', 'src/bench/state-entry.ts', ['src/cgroups/manager.ts']));
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
