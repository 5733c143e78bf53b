/**
 * dist/tsrun.js: the launcher bin/tsrun runs. It compiles the CLI bundle
 * (dist/tsrun-main.js) with the V8 code cache `npm run build` made for it
 * (dist/tsrun-main.<build id>.cache), so a cold start deserializes bytecode instead of
 * parsing and compiling ~300 KB of JavaScript: that was the largest single
 * cost of `tsrun state` after Node's own start (README.md, Benchmarks).
 *
 * Safe by construction: the cache is used only when the bundle ends with the
 * build id this launcher was built with, and only the cache of that id
 * (scripts/bundle.mjs writes the three files together, each atomically), and V8 itself rejects a cache made by another V8 or with
 * other flags; without a usable cache the bundle is compiled as Node would,
 * only slower.
 *
 * Two caches: run, create and exec use most of the bundle (validation, the
 * plan compiler, cgroups), so they get one of every function (compiled with
 * V8's --no-lazy at build time: -4 ms of CPU per `run` here); the other
 * commands get a smaller one of what they use (+1 ms to deserialize the big
 * one would be a fifth of `state`'s own time).
 *
 * Two smaller bundles take the commands in the exact shapes of
 * src/bench/fastpath-args.ts, without commander: `state` (dist/tsrun-state.js,
 * no cache: 64 KB) and create, run, start, kill, delete and exec
 * (dist/tsrun-lifecycle.js, with a full cache of its own).
 *
 * With TSRUN_BUILD_CODE_CACHE=<json list of argv lists> (the build does this;
 * src/bench/startup-build.mjs) it instead runs the bundle once per argv list
 * in this process, then writes the cache: functions compiled during those
 * runs are in it too, not only the top level. TSRUN_BUILD_CODE_CACHE_FULL=1
 * makes the full one; TSRUN_BUILD_CODE_CACHE_BUNDLE=lifecycle the lifecycle
 * bundle's (full, so it needs no runs).
 */
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { parseFastLifecycle, parseFastState } from './fastpath-args.js';

// Only at build time: not loaded by a normal start.
const v8 = (): typeof import('node:v8') => require('node:v8') as typeof import('node:v8');

declare const TSRUN_BUILD_ID: string;

interface LoaderMarks {
  start: number;
  read?: number;
  compiled?: number;
  cache?: string;
}

// process.uptime(): the `performance` global would load 11 modules on first use.
const now = (): number => process.uptime() * 1000;
const marks: LoaderMarks = { start: now() };
(globalThis as { __tsrunLoader?: LoaderMarks }).__tsrunLoader = marks;

const training = process.env.TSRUN_BUILD_CODE_CACHE;
// Which bundle's cache a build makes: the CLI's (the default) or the lifecycle one's.
const trainingLifecycle = process.env.TSRUN_BUILD_CODE_CACHE_BUNDLE === 'lifecycle';
const argv = process.argv.slice(2);

// `[global flags] state ID`, the command engines poll: its own small bundle
// (src/bench/state-entry.ts), ~1.7 ms sooner than reading and compiling the
// whole CLI with its cache (round robin, bench/ab.c).
if (!training && parseFastState(argv) !== undefined) {
  marks.read = marks.compiled = now();
  marks.cache = 'none: the state bundle';
  require(path.join(__dirname, 'tsrun-state.js'));
} else if (training ? trainingLifecycle : parseFastLifecycle(argv) !== undefined) {
  // create, run, start, kill, delete, exec in the shapes engines use: no commander
  // (src/bench/lifecycle-entry.ts), and a full cache of what is left.
  load('tsrun-lifecycle', true);
} else {
  const HEAVY = ['run', 'create', 'exec'];
  load('tsrun-main', training ? process.env.TSRUN_BUILD_CODE_CACHE_FULL === '1' : argv.some((a) => HEAVY.includes(a)));
}

/** Compiles dist/<name>.js with its code cache (the full one if `full`) and runs it, or trains that cache. */
function load(name: string, full: boolean): void {
  const file = path.join(__dirname, `${name}.js`);
  const cacheFile = path.join(__dirname, `${name}.${TSRUN_BUILD_ID}${full ? '.full' : ''}.cache`);
  const footer = `\n//# tsrun-build ${TSRUN_BUILD_ID}\n`;
  const source = fs.readFileSync(file, 'utf8');
  let cachedData: Buffer | undefined;
  if (!training && source.endsWith(footer)) {
    try {
      cachedData = fs.readFileSync(cacheFile);
    } catch {
      cachedData = undefined;
    }
  }
  marks.read = now();

  // Training the full cache: every function compiled now, not on first call. The
  // flag is restored before the cache is made, whose flag hash must match a normal start.
  if (training && full) v8().setFlagsFromString('--no-lazy');
  // The same wrapper Node's CommonJS loader uses, so the bundle sees require,
  // module, __filename and __dirname as if Node had loaded it.
  const script = new vm.Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: file,
    cachedData,
  });
  if (training && full) v8().setFlagsFromString('--lazy');
  const bundle = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: unknown,
    filename: string,
    dirname: string,
  ) => void;
  marks.compiled = now();
  marks.cache = `${full ? 'full, ' : ''}${!source.endsWith(footer) ? 'stale' : cachedData === undefined ? 'absent' : script.cachedDataRejected ? 'rejected' : 'accepted'}`;

  const runBundle = (): void => {
    const mod = { exports: {} };
    bundle.call(mod.exports, mod.exports, require, mod, file, __dirname);
  };

  if (training) {
    // Build time only: run each argv list to its process.exit(), then save the cache.
    const runs = JSON.parse(training) as string[][];
    const exit = process.exit;
    const argv0 = process.argv.slice(0, 2);
    void (async () => {
      for (const args of runs) {
        await new Promise<void>((resolve) => {
          process.exit = ((): void => resolve()) as typeof process.exit;
          process.argv = [...argv0, ...args];
          runBundle();
        });
      }
      process.exit = exit;
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, script.createCachedData());
      fs.renameSync(tmp, cacheFile);
      process.exit(0);
    })();
  } else {
    runBundle();
  }
}
