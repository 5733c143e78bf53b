#!/usr/bin/env node
// The runner behind `npm test`: tap over test/ (unit tests), then over spec/
// (end-to-end specs that run real containers: only as root), and one closing
// line `N passed, N failed, N skipped` with the real counts of test points.
//
//   node scripts/test.mjs                 # test/ then spec/
//   node scripts/test.mjs test            # one group
//   node scripts/test.mjs spec/x.test.ts  # some files (grouped by directory)
//   node scripts/test.mjs -- --grep=foo   # arguments after -- go to tap
//
// Test files are *.test.* / *.spec.* (ts, mts, cts, js, mjs, cjs) anywhere
// under test/ or spec/; everything else there (spec/lib/, fixtures) is a
// helper. Environment:
//   TSRUN_TEST_REPORTER  default `condensed`: tap's TAP reporter, printed as
//                        one line per passing file and the failing points
//                        (with their diagnostics) of failing ones; the full
//                        TAP goes to .tap/tsrun-<group>.tap. `tap` prints all
//                        of it; any other value is passed to tap --reporter
//                        (note: tap 21's terse prints nothing at all when a
//                        file times out).
//   TSRUN_UNIT_TIMEOUT   per-file timeout for test/, seconds (default 120)
//   TSRUN_SPEC_TIMEOUT   per-file timeout for spec/, seconds (default 300)
//   TSRUN_SPEC_JOBS      spec files run at once (default 1: containers and
//                        the leak checks' view of the host stay one file's)
//   TSRUN_SKIP_SPEC=1    do not run spec/
//   TSRUN_TEST_ENGINE=1  specs run through a warm engine (spec/lib/harness.ts);
//                        the whole suite runs all of spec/ so once more
//
// The counts come from the summary tap prints at the end of a run
// (`# { total, pass, fail, todo, skip }`: every assertion, plus a failure
// for each file that crashed, timed out or broke its plan). Exit status:
// 0 when nothing failed.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
process.chdir(REPO);

const TEST_FILE = /\.(test|spec)\.(ts|mts|cts|js|mjs|cjs)$/;
const SKIP_DIRS = new Set(['node_modules', '.git', 'dist', 'build', 'tap-snapshots']);

/** Test files under `dir`, sorted (bounded walk). */
function findTests(dir) {
  const out = [];
  let budget = 20000;
  const walk = (d, depth) => {
    if (depth > 12) return;
    let entries;
    try {
      entries = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (budget-- <= 0) return;
      const p = path.join(d, e.name);
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name) && !e.name.startsWith('.')) walk(p, depth + 1);
      } else if (e.isFile() && TEST_FILE.test(e.name)) {
        out.push(p);
      }
    }
  };
  walk(dir, 0);
  return out.sort();
}

// ---- arguments
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const tapArgs = dash >= 0 ? argv.slice(dash + 1) : [];
const selectors = dash >= 0 ? argv.slice(0, dash) : argv;

const groups = [
  { name: 'test', dir: 'test', what: 'unit tests', timeout: process.env.TSRUN_UNIT_TIMEOUT ?? '120', jobs: undefined, files: [] },
  {
    name: 'spec',
    dir: 'spec',
    what: 'end-to-end specs',
    timeout: process.env.TSRUN_SPEC_TIMEOUT ?? '300',
    jobs: process.env.TSRUN_SPEC_JOBS ?? '1',
    files: [],
  },
  {
    // The whole of spec/ again with TSRUN_TEST_ENGINE=1: the harness starts a
    // resident engine for each state root (`tsrun engine start`; the shim's
    // stores and containerd's, dockerd's and podman's runtime roots too), so
    // the same assertions run through bin/tsrun's warm path (src/engine/).
    name: 'warm',
    dir: 'spec',
    dirs: ['spec/runtime', 'spec/exec', 'spec/hooks', 'spec/terminal', 'spec/security', 'spec/cgroups', 'spec/shim', 'spec/engines'],
    what: 'specs through a warm engine',
    timeout: process.env.TSRUN_SPEC_TIMEOUT ?? '300',
    jobs: process.env.TSRUN_SPEC_JOBS ?? '1',
    env: { TSRUN_TEST_ENGINE: '1' },
    files: [],
  },
  {
    // The cgroup specs again, in a throwaway VM with a pure cgroup v2
    // hierarchy (../shared/tools/run-in-v2-vm.sh): this host is hybrid.
    name: 'v2',
    dir: 'spec/cgroups',
    what: 'cgroup specs in a pure cgroup v2 VM',
    timeout: '2400',
    jobs: '1',
    files: [],
    command: ['bash', 'scripts/test-cgroup-v2.sh'],
  },
];
if (selectors.length === 0) {
  for (const g of groups) g.files = (g.dirs ?? [g.dir]).flatMap(findTests);
} else {
  // The warm and VM groups run only with the whole suite (TSRUN_TEST_ENGINE=1
  // with selectors runs the selected specs warm).
  groups.splice(groups.findIndex((g) => g.name === 'warm'));
  for (const sel of selectors) {
    const rel = path.relative(REPO, path.resolve(sel));
    const g = groups.find((g) => rel === g.dir || rel.startsWith(`${g.dir}/`));
    if (!g) {
      console.error(`test.mjs: ${sel} is not under test/ or spec/`);
      process.exit(2);
    }
    g.selected = true;
    if (rel === g.dir || fs.statSync(rel).isDirectory()) g.files.push(...findTests(rel));
    else g.files.push(rel);
  }
}

// ---- running tap
const tapBin = fs.realpathSync(path.join(REPO, 'node_modules', '.bin', 'tap'));
const reporter = process.env.TSRUN_TEST_REPORTER || 'condensed';
const SUMMARY = /^# (\{ total: \d+.*\})\s*$/;
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;
const POINT = /^(\s*)(not )?ok \d+\b/;
const indent = (l) => l.length - l.trimStart().length;

/**
 * The lines of one failing file's TAP that say why: every failing test point
 * with its diagnostics and the subtests that lead to it, comments; passing
 * points and passing subtests dropped (they are in the counts and the raw TAP).
 */
function condense(lines) {
  const out = [];
  // a YAML diagnostics block right after a test point at indent k: index past it
  const yamlEnd = (i, k) => {
    if (i < lines.length && lines[i].trim() === '---' && indent(lines[i]) === k + 2) {
      let j = i + 1;
      while (j < lines.length && !(lines[j].trim() === '...' && indent(lines[j]) === k + 2)) j++;
      return Math.min(j + 1, lines.length);
    }
    return i;
  };
  const walk = (from, to) => {
    let i = from;
    while (i < to) {
      const l = lines[i];
      const k = indent(l);
      if (/^\s*# Subtest: /.test(l)) {
        let j = i + 1;
        while (j < to && !(indent(lines[j]) === k && POINT.test(lines[j]))) j++;
        if (j >= to) {
          out.push(l); // never closed: show what it has
          walk(i + 1, to);
          return;
        }
        const after = yamlEnd(j + 1, k);
        if (/^\s*not ok/.test(lines[j])) {
          out.push(l);
          walk(i + 1, j);
          out.push(...lines.slice(j, after));
        }
        i = after;
        continue;
      }
      const m = POINT.exec(l);
      if (m) {
        const after = yamlEnd(i + 1, k);
        if (m[2]) out.push(...lines.slice(i, after));
        i = after;
        continue;
      }
      if (l.trim() !== '' && !/^\s*1\.\.\d+\s*$/.test(l)) out.push(l);
      i++;
    }
  };
  walk(0, lines.length);
  return out;
}

/**
 * Prints tap's TAP stream readably as it comes: one line per passing file,
 * the failing points (with diagnostics) of a failing one, tap's own comments.
 */
function condensedPrinter(write) {
  let block = []; // lines of the current top-level file subtest
  let yaml = false; // inside the YAML after the top-level closing point
  let closed = false; // top-level closing point seen
  const flush = () => {
    if (!block.length) return;
    const closing = block.find((l) => indent(l) === 0 && POINT.test(l));
    if (closing && !closing.startsWith('not ')) {
      write(`${closing}\n`);
    } else {
      // the file's own diagnostics: keep exitCode, signal and the like, not
      // how tap started it
      let inArgs = false;
      const lines = condense(block).filter((l) => {
        if (/^ {2}args:/.test(l)) return !(inArgs = true);
        if (inArgs && /^ {4}- /.test(l)) return false;
        inArgs = false;
        return !/^ {2}(stdio|cwd|externalID|command):/.test(l);
      });
      write(`${lines.join('\n')}\n`);
    }
    block = [];
    closed = yaml = false;
  };
  return (line) => {
    if (closed) {
      if (!yaml && line === '  ---') yaml = true;
      if (yaml) {
        block.push(line);
        if (line === '  ...') flush();
        return;
      }
      flush();
    }
    if (block.length) {
      block.push(line);
      if (indent(line) === 0 && POINT.test(line)) closed = true;
      return;
    }
    if (line.startsWith('# Subtest: ')) {
      block.push(line);
      return;
    }
    if (POINT.test(line)) {
      // a top-level point outside any file subtest (tap's "timeout!")
      block.push(line);
      closed = true;
      return;
    }
    if (line === 'TAP version 14' || /^1\.\.\d+$/.test(line) || line.trim() === '') return;
    write(`${line}\n`);
  };
}

/** Runs tap on one group's files; resolves with its counts and exit status. */
function runTap(group) {
  const condensed = reporter === 'condensed';
  const rawFile = path.join(REPO, '.tap', `tsrun-${group.name}.tap`);
  const args = group.command ? [...group.command.slice(1), ...group.files] : [
    tapBin,
    '--reporter', condensed ? 'tap' : reporter,
    '--disable-coverage',
    '--allow-empty-coverage',
    ...(process.stdout.isTTY && !condensed ? [] : ['--no-color']),
    `--timeout=${group.timeout}`,
    ...(group.jobs ? [`--jobs=${group.jobs}`] : []),
    ...tapArgs,
    ...group.files,
  ];
  return new Promise((resolve) => {
    // tap's terminal reporters redraw a progress summary unless they believe
    // they are in CI: in a log (stdout not a terminal) they should.
    const env = { ...process.env, ...(process.stdout.isTTY || process.env.CI ? {} : { CI: 'true' }), ...group.env };
    const child = spawn(group.command ? group.command[0] : process.execPath, args, { cwd: REPO, env, stdio: ['ignore', 'pipe', 'inherit'] });
    let raw;
    if (condensed) {
      fs.mkdirSync(path.dirname(rawFile), { recursive: true });
      raw = fs.createWriteStream(rawFile);
    }
    const print = condensed ? condensedPrinter((s) => process.stdout.write(s)) : undefined;
    let summary;
    let partial = '';
    const onLine = (l) => {
      const m = SUMMARY.exec(l.replace(ANSI, ''));
      if (m) summary = m[1];
      print?.(l);
    };
    child.stdout.on('data', (chunk) => {
      raw?.write(chunk);
      if (!condensed) process.stdout.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop() ?? '';
      lines.forEach(onLine);
    });
    const onSignal = (sig) => child.kill(sig);
    process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
    child.on('error', (e) => {
      console.error(`test.mjs: could not start tap: ${e.message}`);
    });
    child.on('close', (code, signal) => {
      process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      if (partial) onLine(partial);
      print?.('');
      raw?.end();
      resolve({ code: code ?? 128, signal, counts: parseSummary(summary), rawFile: condensed ? rawFile : undefined });
    });
  });
}

/** `{ total: 18, pass: 7, fail: 6, todo: 2, skip: 3 }` → numbers (absent = 0). */
function parseSummary(s) {
  if (!s) return undefined;
  const n = (k) => Number(new RegExp(`\\b${k}: (\\d+)`).exec(s)?.[1] ?? 0);
  return { total: n('total'), pass: n('pass'), fail: n('fail'), skip: n('skip'), todo: n('todo') };
}

const totals = { pass: 0, fail: 0, skip: 0 };
const notes = [];
let failed = false;

for (const g of groups) {
  const label = g.dirs ? `${g.dirs.join('/, ')}/ (${g.what})` : `${g.dir}/ (${g.what})`;
  if (selectors.length && !g.selected) continue;
  if (g.name === 'v2') {
    const vm = path.resolve(REPO, '..', 'shared', 'tools', 'run-in-v2-vm.sh');
    const why =
      process.env.TSRUN_SKIP_V2 === '1' ? 'TSRUN_SKIP_V2=1'
      : process.getuid?.() !== 0 ? 'it needs root'
      : !fs.existsSync(vm) ? `${vm} is not there`
      : undefined;
    if (why) {
      notes.push(`${label}: skipped because ${why}`);
      console.log(`\n== ${label}: skipped (${why})`);
      continue;
    }
  }
  if (g.name === 'spec' || g.name === 'warm') {
    if (process.env.TSRUN_SKIP_SPEC === '1') {
      notes.push(`${label}: skipped because TSRUN_SKIP_SPEC=1`);
      console.log(`\n== ${label}: skipped (TSRUN_SKIP_SPEC=1)`);
      continue;
    }
    if (process.getuid?.() !== 0 && g.files.length) {
      const why = `they run real containers and need root; this is uid ${process.getuid?.()}`;
      notes.push(`${label}: ${g.files.length} file(s) skipped: ${why}`);
      console.log(`\n== ${label}: SKIPPED: ${why}`);
      continue;
    }
  }
  if (g.files.length === 0) {
    notes.push(`${label}: no test files`);
    console.log(`\n== ${label}: no test files`);
    continue;
  }
  console.log(`\n== ${label}: ${g.files.length} file(s), timeout ${g.timeout} s per file${g.jobs ? `, ${g.jobs} at a time` : ''}`);
  for (const f of g.files) console.log(`   ${f}`);
  const started = Date.now();
  const r = await runTap(g);
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  if (!r.counts && g.name === 'v2' && r.code === 125) {
    // The VM itself did not come up (run-in-v2-vm.sh's 125): no test ran.
    notes.push(`${label}: skipped: the v2 VM failed to start (exit 125)`);
    continue;
  }
  if (!r.counts) {
    // tap died before its summary (killed, crashed, bad arguments)
    notes.push(`${label}: tap exited ${r.signal ?? r.code} without a summary; counted as 1 failure`);
    totals.fail += 1;
    failed = true;
    continue;
  }
  const c = r.counts;
  totals.pass += c.pass;
  totals.fail += c.fail;
  totals.skip += c.skip + c.todo;
  let line = `${label}: ${c.pass} passed, ${c.fail} failed, ${c.skip + c.todo} skipped in ${secs} s`;
  if (c.fail > 0) failed = true;
  if (c.fail > 0 && r.rawFile) line += ` (full TAP: ${path.relative(REPO, r.rawFile)})`;
  if (r.code !== 0 && c.fail === 0) {
    line += `; tap exited ${r.signal ?? r.code} with no failing test point: counted as 1 failure`;
    totals.fail += 1;
    failed = true;
  }
  notes.push(line);
}

console.log('');
for (const n of notes) console.log(`# ${n}`);
console.log(`${totals.pass} passed, ${totals.fail} failed, ${totals.skip} skipped`);
process.exit(failed ? 1 : 0);
