// Bundles each CLI into one CommonJS file: one file to read and compile at
// start, nothing resolved on disk at run time but the addon.
import { build } from 'esbuild';
import { readFileSync } from 'node:fs';

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));

await build({
  entryPoints: { tsrun: 'src/cli/entry.ts' },
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  define: { TSRUN_VERSION: JSON.stringify(version) },
  logLevel: 'warning',
});
