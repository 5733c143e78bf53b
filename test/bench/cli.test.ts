/**
 * `tsrun bench` and TSRUN_TRACE through the built CLI (bin/tsrun), with tiny
 * counts: they show the tools work and what their output looks like. No
 * timing is ever asserted. Root only (namespaces, mounts, cgroups).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';

const REPO = path.resolve(__dirname, '..', '..');
const TSRUN = path.join(REPO, 'bin', 'tsrun');
const built = fs.existsSync(path.join(REPO, 'dist', 'tsrun.js')) && fs.existsSync(path.join(REPO, 'build', 'Release', 'tsrun.node'));
const root = process.getuid?.() === 0;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tsrun-bench-test-'));
t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

const tsrun = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(TSRUN, args, { encoding: 'utf8', env: { ...process.env, TSRUN_TRACE: '', ...env }, timeout: 120_000 });

t.test('TSRUN_TRACE prints the steps of a start on stderr; off, nothing', { skip: !built && 'npm run build first' }, async (t) => {
  const args = ['--root', path.join(tmp, 'root'), 'state', 'nosuch'];
  const off = tsrun(args);
  t.equal(off.status, 1);
  t.equal(off.stderr, 'tsrun: container "nosuch" does not exist\n', 'only the error without tracing');
  const on = tsrun(args, { TSRUN_TRACE: '1' });
  t.equal(on.status, 1);
  const lines = on.stderr.trim().split('\n');
  t.same(lines.filter((l) => !l.startsWith('tsrun-trace: ')), ['tsrun: container "nosuch" does not exist'], 'the error line as without tracing');
  // The process' end is traced last, after the error (src/bench/exit.ts).
  t.match(lines.at(-1), /^tsrun-trace: .* exit 1 \((reallyExit|_exit|process\.exit)\)$/, 'the exit is the last line');
  const trace = lines.filter((l) => l.startsWith('tsrun-trace: '));
  t.ok(trace.length >= 5, `${trace.length} trace lines`);
  for (const step of ['node: started', 'loader: bundle compiled (code cache', 'main: bundle evaluated', 'cli: arguments parsed']) {
    t.ok(trace.some((l) => l.includes(step)), step);
  }
  // bin/tsrun's own lines (native/launcher.cc) are in ms since it started, without steps.
  t.ok(trace.some((l) => /^tsrun-trace: launcher +\d+\.\d\d ms {2}cold: exec node$/.test(l)), 'the launcher says it went cold');
  for (const l of trace) {
    if (l.startsWith('tsrun-trace: launcher ')) t.match(l, /^tsrun-trace: launcher +\d+\.\d\d ms {2}\S/);
    else t.match(l, /^tsrun-trace: +-?\d+\.\d ms +(\+-?\d+\.\d)? +\S/);
  }
  const debug = tsrun(['--debug', ...args]);
  t.ok(debug.stderr.includes('tsrun-trace: '), '--debug traces too');
});

t.test('tsrun bench --list names the cases', { skip: !built && 'npm run build first' }, async (t) => {
  const r = tsrun(['bench', '--list']);
  t.equal(r.status, 0, r.stderr);
  const names = r.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]);
  for (const n of ['none', 'pid', 'mount', 'uts', 'ipc', 'net', 'user', 'cgroup', 'time', 'runc', 'all', 'pivot_root', 'mount-proc', 'seccomp', 'cgroup-join', 'idmap']) {
    t.ok(names.includes(n), n);
  }
  const bad = tsrun(['bench', '--kinds', 'nosuch']);
  t.equal(bad.status, 1);
  t.match(bad.stderr, /^tsrun: bench: unknown kind "nosuch"/);
});

t.test('tsrun bench --iterations 5 --kinds uts: the JSON shape', { skip: (!built && 'npm run build first') || (!root && 'needs root') }, async (t) => {
  const out = path.join(tmp, 'ns.json');
  const svg = path.join(tmp, 'ns.svg');
  const r = tsrun(['bench', '--iterations', '5', '--warmup', '1', '--kinds', 'uts', '--output', out, '--svg', svg]);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /\nuts +\d+\.\d +\d+\.\d/, 'the table has a uts row');
  t.match(r.stderr, /\[1\/1\] uts: p50 \d+\.\d µs/, 'progress on stderr');
  const report = JSON.parse(fs.readFileSync(out, 'utf8'));
  t.equal(report.tool, 'tsrun bench');
  t.equal(report.unit, 'us');
  t.same(report.options, { iterations: 5, warmup: 1, fork: false });
  t.type(report.host.kernel, 'string');
  t.equal(report.results.length, 1);
  const uts = report.results[0];
  t.equal(uts.name, 'uts');
  t.equal(uts.group, 'namespace');
  t.same(uts.namespaces, ['uts']);
  t.equal(uts.clone, 'vm');
  t.equal(uts.iterations, 5);
  t.equal(uts.cycle.n, 5);
  for (const k of ['min', 'mean', 'p50', 'p90', 'p99', 'max']) t.ok(uts.cycle[k] > 0, `cycle.${k} > 0`);
  t.ok(uts.cycle.min <= uts.cycle.p50 && uts.cycle.p50 <= uts.cycle.p90 && uts.cycle.p90 <= uts.cycle.p99 && uts.cycle.p99 <= uts.cycle.max, 'ordered');
  t.same(report.skipped, []);
  t.match(fs.readFileSync(svg, 'utf8'), /<rect class="bar" data-series="namespace"/);
});

t.test('step cases and the C floor, tiny counts', { skip: (!built && 'npm run build first') || (!root && 'needs root') }, async (t) => {
  const floor = path.join(tmp, 'ns-floor');
  const cc = spawnSync('cc', ['-O2', '-o', floor, path.join(REPO, 'bench', 'ns-floor.c')], { encoding: 'utf8' });
  if (cc.status !== 0) {
    t.pass(`skipped: no C compiler: ${cc.error?.message ?? cc.stderr}`);
    return;
  }
  const r = tsrun(['bench', '--iterations', '3', '--warmup', '0', '--kinds', 'none,time,pivot_root,idmap,seccomp', '--floor', floor, '--json']);
  t.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const byName = Object.fromEntries(report.results.map((x: { name: string }) => [x.name, x]));
  for (const name of ['none', 'time']) {
    t.ok(byName[name]?.floor?.p50 > 0, `${name}: the floor ran`);
    t.type(byName[name]?.harnessOverhead, 'number');
  }
  for (const name of ['pivot_root', 'idmap']) t.ok(byName[name]?.step?.p50 > 0, `${name}: the step is timed`);
  const seccomp = byName.seccomp ?? report.skipped.find((s: { name: string }) => s.name === 'seccomp');
  t.ok(seccomp, 'seccomp ran or says why not');
});
