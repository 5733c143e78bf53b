#!/usr/bin/env node
// The lifecycle report: reads hyperfine's JSON (bench/lifecycle.sh writes
// bench/results/hyperfine.json), prints medians and ratios, and writes
// bench/results/lifecycle.json and bench/results/lifecycle.svg.
//
//   node bench/report.mjs [HYPERFINE_JSON] [--out DIR] [--note TEXT]
//
// The math and the chart are TypeScript (src/bench/lifecycle.ts, unit-tested);
// esbuild (a devDependency) compiles them in memory, so this script needs no
// build step.
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
let input = path.join(REPO, 'bench/results/hyperfine.json');
let out = path.join(REPO, 'bench/results');
let note;
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--out') out = path.resolve(args[++i]);
  else if (args[i] === '--note') note = args[++i];
  else if (args[i] === '-h' || args[i] === '--help') {
    console.log('usage: node bench/report.mjs [HYPERFINE_JSON] [--out DIR] [--note TEXT]');
    process.exit(0);
  } else input = path.resolve(args[i]);
}

const compiled = await build({
  entryPoints: [path.join(REPO, 'src/bench/lifecycle.ts')],
  bundle: true,
  write: false,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
});
const lib = await import('data:text/javascript;base64,' + Buffer.from(compiled.outputFiles[0].text).toString('base64'));

const hyperfine = JSON.parse(fs.readFileSync(input, 'utf8'));
// bench/lifecycle.sh stores the conditions of the run beside hyperfine's results.
const meta = hyperfine.tsrunBench ?? {};
const summary = lib.summarizeLifecycle(hyperfine.results);
process.stdout.write(lib.formatLifecycle(summary));

const when = meta.date ? meta.date.slice(0, 10) : new Date().toISOString().slice(0, 10);
const load = meta.loadavgBefore ? `, load ${meta.loadavgBefore[0]}→${meta.loadavgAfter?.[0] ?? '?'} on ${meta.cpus ?? '?'} CPUs` : '';
const isolated = meta.isolateSeconds ? `, ${meta.isolateSeconds} s of quiet before each run` : '';
const runs = meta.rounds > 1 ? `${meta.rounds} rounds of ${meta.runs ?? '?'} runs each, pooled` : `${meta.runs ?? '?'} runs each`;
const subtitle = note ?? `${runs}, one hyperfine invocation${isolated}, ${when}${load}; absolute numbers are for that machine, ratios are the result`;
fs.mkdirSync(out, { recursive: true });
fs.writeFileSync(path.join(out, 'lifecycle.json'), JSON.stringify({ ...summary, conditions: meta }, null, 2) + '\n');
fs.writeFileSync(path.join(out, 'lifecycle.svg'), lib.lifecycleSvg(summary, subtitle));
console.log(`\nwrote ${path.relative(process.cwd(), path.join(out, 'lifecycle.json'))} and lifecycle.svg`);
