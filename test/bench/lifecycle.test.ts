/** bench/report.mjs's math: hyperfine results -> medians, ratios, the targets. */
import t from 'tap';
import { formatLifecycle, lifecycleSvg, poolRounds, summarizeLifecycle, toRow, type HyperfineResult } from '../../src/bench/lifecycle.js';

const sec = (ms: number[]) => ms.map((m) => m / 1000);
const result = (command: string, ms: number[], exit?: number[]): HyperfineResult => ({
  command,
  mean: ms.reduce((a, b) => a + b, 0) / ms.length / 1000,
  times: sec(ms),
  exit_codes: exit,
});

t.test('toRow: medians and quartiles in ms from hyperfine seconds', async (t) => {
  const row = toRow(result('tsrun state', [30, 20, 25, 100], [0, 0, 1, 0]));
  t.equal(row.name, 'tsrun state');
  t.equal(row.runs, 4);
  t.equal(row.median, 27.5);
  t.equal(row.min, 20);
  t.equal(row.p25, 23.75);
  t.equal(row.failedRuns, 1);
  const noTimes = toRow({ command: 'x', mean: 0.01, median: 0.009 });
  t.equal(noTimes.median, 9, 'hyperfine median when there are no times');
});

t.test('summarizeLifecycle: ratios and targets', async (t) => {
  const s = summarizeLifecycle([
    result('tsrun run', [40, 42, 44]),
    result('runc run', [26, 27, 28]),
    result('crun run', [9, 10, 11]),
    result('tsrun state', [26, 27, 28]),
    result('runc state', [4, 4, 4]),
    result('crun state', [3, 3, 3]),
    result('tsrun exec', [50, 50, 50]),
    result('node -e 0', [22, 23, 24]),
    result('unshare', [2, 2, 2]),
  ]);
  t.same(s.medians.run, { tsrun: 42, runc: 27, crun: 10 });
  t.same(s.medians.exec, { tsrun: 50 }, 'a benchmark without runc or crun');
  t.same(s.floors, { node: 23, unshare: 2 });
  t.equal(s.ratios.run!.tsrunOverRunc, 42 / 27);
  t.equal(s.ratios.run!.tsrunOverCrun, 4.2);
  t.equal(s.ratios.state!.tsrunOverNode, 27 / 23);
  t.ok(Number.isNaN(s.ratios.exec!.tsrunOverRunc), 'no runc: NaN');
  t.equal(s.stateOverNode, 4);
  t.equal(s.targets.state.ok, true, 'state within node + 5 ms');
  t.equal(s.runOverNodePlusCrun, 42 - (23 + 10));
  t.equal(s.targets.run.ok, false, 'run over node + crun');
  const text = formatLifecycle(s);
  t.match(text, /tsrun state − node -e 0 = 4\.00 ms \(target ≤ 5 ms: met\)/);
  t.match(text, /tsrun run − \(node -e 0 \+ crun run\) = 9\.00 ms \(target ≤ 0: NOT met\)/);
  t.match(text, /run \/bin\/true\s+42\.00\s+-\s+27\.00\s+10\.00\s+1\.56×\s+4\.20×\s+1\.83×\s+-\s+-/);
  t.notMatch(text, /tsrun-warm run/, 'no warm rows: no warm targets line');
});

t.test('summarizeLifecycle: the warm engine rows and their targets against crun', async (t) => {
  const s = summarizeLifecycle([
    result('tsrun-warm run', [8, 9, 10]),
    result('crun run', [9, 10, 11]),
    result('tsrun-warm lifecycle', [30, 30, 30]),
    result('crun lifecycle', [20, 20, 20]),
    result('runc lifecycle', [60, 60, 60]),
  ]);
  t.equal(s.ratios.run!.warmOverCrun, 0.9);
  t.equal(s.ratios.lifecycle!.warmOverCrun, 1.5);
  t.equal(s.ratios.lifecycle!.warmOverRunc, 0.5);
  t.same(s.warmTargets, { run: { limit: 1, ok: true }, lifecycle: { limit: 1, ok: false } });
  const text = formatLifecycle(s);
  t.match(text, /tsrun-warm run \/bin\/true \/ crun = 0\.90× \(target ≤ 1\.0×: met\)/);
  t.match(text, /tsrun-warm create→start→wait→delete \/ crun = 1\.50× \(target ≤ 1\.0×: NOT met\)/);
  t.match(lifecycleSvg(s), /0\.90× crun/, 'the chart labels the warm bar with its ratio to crun');
});

t.test('summarizeLifecycle: missing floors leave the targets unmet, not crashing', async (t) => {
  const s = summarizeLifecycle([result('tsrun state', [30])]);
  t.ok(Number.isNaN(s.stateOverNode));
  t.equal(s.targets.state.ok, false);
  t.ok(Number.isNaN(s.runOverNodePlusCrun));
  t.match(formatLifecycle(s), /floors: node -e 0 - ms/);
});

t.test('poolRounds: a command listed in several rounds is one row of all its runs', async (t) => {
  const pooled = poolRounds([
    result('tsrun-warm run', [8, 9, 10], [0, 0, 0]),
    result('crun run', [7, 7, 7]),
    result('tsrun-warm run #2', [20, 21, 22], [0, 1, 0]),
    result('crun run #2', [9, 9, 9]),
    result('node -e 0', [22]),
  ]);
  t.same(
    pooled.map((r) => r.command),
    ['tsrun-warm run', 'crun run', 'node -e 0'],
    'first-round names, first-round order',
  );
  t.same(pooled[0]!.times, sec([8, 9, 10, 20, 21, 22]), 'all runs of both rounds');
  t.same(pooled[0]!.exit_codes, [0, 0, 0, 0, 1, 0]);
  const s = summarizeLifecycle([
    result('tsrun-warm run', [8, 9, 10]),
    result('crun run', [7, 7, 7]),
    result('tsrun-warm run #2', [20, 21, 22]),
    result('crun run #2', [9, 9, 9]),
  ]);
  t.same(s.medians.run, { 'tsrun-warm': 15, crun: 8 }, 'medians over the pooled runs');
  t.equal(s.rows.find((r) => r.name === 'tsrun-warm run')!.runs, 6);
  t.throws(() => poolRounds([{ command: 'a', mean: 1 }, { command: 'a #2', mean: 1 }]), /no per-run times/, 'rounds need per-run times');
  // The original result objects are not changed.
  const first = result('x', [1]);
  poolRounds([first, result('x #2', [2])]);
  t.same(first.times, sec([1]));
});
