/**
 * The lifecycle report: hyperfine's JSON (bench/lifecycle.sh) -> medians,
 * ratios against runc, crun and Node's own start, the two targets,
 * a JSON summary and an SVG bar chart. bench/report.mjs runs it; the math is
 * unit-tested in test/bench/.
 *
 * Command names (hyperfine -n) are "<runtime> <benchmark>" for the runtimes
 * (tsrun, tsrun-warm: the same bin/tsrun with a resident engine, runc, crun) and the benchmarks (run, lifecycle, state, exec), and
 * "node -e 0" and "unshare" for the two floors.
 */
import { fmt, median, quantile, ratio, table } from './stats.js';
import { barChart, type BarGroup } from './svg.js';

export const RUNTIMES = ['tsrun', 'tsrun-warm', 'runc', 'crun'] as const;
export const BENCHMARKS = ['run', 'lifecycle', 'state', 'exec'] as const;
export const NODE_FLOOR = 'node -e 0';
export const KERNEL_FLOOR = 'unshare';

export const BENCHMARK_LABELS: Record<string, string> = {
  run: 'run /bin/true',
  lifecycle: 'create→start→wait→delete',
  state: 'state',
  exec: 'exec /bin/true',
};

/** The part of a hyperfine --export-json result this report reads (times in seconds). */
export interface HyperfineResult {
  command: string;
  times?: number[];
  median?: number;
  mean: number;
  min?: number;
  max?: number;
  exit_codes?: number[];
}

export interface Row {
  name: string;
  runs: number;
  /** milliseconds */
  median: number;
  p25: number;
  p75: number;
  min: number;
  failedRuns: number;
}

export interface LifecycleSummary {
  unit: 'ms';
  rows: Row[];
  /** benchmark -> runtime -> median ms */
  medians: Record<string, Record<string, number>>;
  floors: { node?: number; unshare?: number };
  ratios: Record<string, { tsrunOverRunc: number; tsrunOverCrun: number; tsrunOverNode: number; warmOverRunc: number; warmOverCrun: number }>;
  /** tsrun state − node -e 0 (target ≤ 5 ms) */
  stateOverNode: number;
  /** tsrun run − (node -e 0 + crun run) (target ≤ 0) */
  runOverNodePlusCrun: number;
  targets: { state: { limitMs: number; ok: boolean }; run: { limitMs: number; ok: boolean } };
  /** issue 10: with the engine warm, run and create→start→wait→delete at most 1.0× crun */
  warmTargets: { run: { limit: number; ok: boolean }; lifecycle: { limit: number; ok: boolean } };
}

/** Milliseconds per run of one hyperfine result (from `times`, else its median or mean). */
export function toRow(r: HyperfineResult): Row {
  const ms = (r.times ?? []).map((t) => t * 1000);
  const failedRuns = (r.exit_codes ?? []).filter((c) => c !== 0).length;
  if (!ms.length) {
    const m = (r.median ?? r.mean) * 1000;
    return { name: r.command, runs: 0, median: m, p25: m, p75: m, min: (r.min ?? r.mean) * 1000, failedRuns };
  }
  const sorted = Float64Array.from(ms).sort();
  return {
    name: r.command,
    runs: ms.length,
    median: median(sorted),
    p25: quantile(sorted, 0.25, true),
    p75: quantile(sorted, 0.75, true),
    min: sorted[0]!,
    failedRuns,
  };
}

/** The name a round other than the first gives a command (bench/lifecycle.sh --rounds): `tsrun run #2`. */
const ROUND = / #\d+$/;

/**
 * One result per command, its rounds pooled: `--rounds N` lists every
 * command N times in the one hyperfine invocation (the second round named
 * `... #2`), so each runtime's runs are spread over the invocation instead
 * of falling in one stretch of it, and a machine that drifts meanwhile
 * biases no runtime against another.
 */
export function poolRounds(results: HyperfineResult[]): HyperfineResult[] {
  const pooled = new Map<string, HyperfineResult>();
  for (const r of results) {
    const name = r.command.replace(ROUND, '');
    const seen = pooled.get(name);
    if (!seen) {
      pooled.set(name, { ...r, command: name, times: r.times && [...r.times], exit_codes: r.exit_codes && [...r.exit_codes] });
      continue;
    }
    if (!seen.times || !r.times) throw new Error(`hyperfine result for ${r.command} has no per-run times to pool`);
    seen.times.push(...r.times);
    seen.exit_codes = [...(seen.exit_codes ?? []), ...(r.exit_codes ?? [])];
    seen.min = Math.min(seen.min ?? Infinity, r.min ?? Infinity);
  }
  return [...pooled.values()];
}

export function summarizeLifecycle(results: HyperfineResult[]): LifecycleSummary {
  const rows = poolRounds(results).map(toRow);
  const byName = new Map(rows.map((r) => [r.name, r.median]));
  const medians: LifecycleSummary['medians'] = {};
  for (const b of BENCHMARKS) {
    for (const rt of RUNTIMES) {
      const v = byName.get(`${rt} ${b}`);
      if (v !== undefined) (medians[b] ??= {})[rt] = v;
    }
  }
  const node = byName.get(NODE_FLOOR);
  const unshare = byName.get(KERNEL_FLOOR);
  const ratios: LifecycleSummary['ratios'] = {};
  for (const [b, m] of Object.entries(medians)) {
    ratios[b] = {
      tsrunOverRunc: ratio(m.tsrun, m.runc),
      tsrunOverCrun: ratio(m.tsrun, m.crun),
      tsrunOverNode: ratio(m.tsrun, node),
      warmOverRunc: ratio(m['tsrun-warm'], m.runc),
      warmOverCrun: ratio(m['tsrun-warm'], m.crun),
    };
  }
  const diff = (a: number | undefined, b: number | undefined) => (a === undefined || b === undefined ? NaN : a - b);
  const stateOverNode = diff(medians.state?.tsrun, node);
  const crunRun = medians.run?.crun;
  const runOverNodePlusCrun = diff(medians.run?.tsrun, node === undefined || crunRun === undefined ? undefined : node + crunRun);
  return {
    unit: 'ms',
    rows,
    medians,
    floors: { node, unshare },
    ratios,
    stateOverNode,
    runOverNodePlusCrun,
    targets: {
      state: { limitMs: 5, ok: stateOverNode <= 5 },
      run: { limitMs: 0, ok: runOverNodePlusCrun <= 0 },
    },
    warmTargets: {
      run: { limit: 1, ok: (ratios.run?.warmOverCrun ?? NaN) <= 1 },
      lifecycle: { limit: 1, ok: (ratios.lifecycle?.warmOverCrun ?? NaN) <= 1 },
    },
  };
}

const times = (v: number) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : '-');

/** The terminal report. */
export function formatLifecycle(s: LifecycleSummary): string {
  let out = 'Medians of every command (ms):\n\n';
  out += table(
    ['command', 'runs', 'median', 'p25', 'p75', 'min', 'failed'],
    s.rows.map((r) => [r.name, String(r.runs), fmt(r.median, 2), fmt(r.p25, 2), fmt(r.p75, 2), fmt(r.min, 2), String(r.failedRuns)]),
  );
  out += '\nRatios of medians:\n\n';
  out += table(
    ['benchmark', 'tsrun', 'tsrun-warm', 'runc', 'crun', 'tsrun/runc', 'tsrun/crun', 'tsrun/node -e 0', 'warm/runc', 'warm/crun'],
    Object.entries(s.medians).map(([b, m]) => [
      BENCHMARK_LABELS[b] ?? b,
      fmt(m.tsrun, 2),
      fmt(m['tsrun-warm'], 2),
      fmt(m.runc, 2),
      fmt(m.crun, 2),
      times(s.ratios[b]!.tsrunOverRunc),
      times(s.ratios[b]!.tsrunOverCrun),
      times(s.ratios[b]!.tsrunOverNode),
      times(s.ratios[b]!.warmOverRunc),
      times(s.ratios[b]!.warmOverCrun),
    ]),
  );
  out += `\nfloors: node -e 0 ${fmt(s.floors.node, 2)} ms, unshare of 5 namespaces ${fmt(s.floors.unshare, 2)} ms\n`;
  out += `tsrun state − node -e 0 = ${fmt(s.stateOverNode, 2)} ms (target ≤ ${s.targets.state.limitMs} ms: ${s.targets.state.ok ? 'met' : 'NOT met'})\n`;
  out += `tsrun run − (node -e 0 + crun run) = ${fmt(s.runOverNodePlusCrun, 2)} ms (target ≤ 0: ${s.targets.run.ok ? 'met' : 'NOT met'})\n`;
  if (s.medians.run?.['tsrun-warm'] !== undefined) {
    for (const b of ['run', 'lifecycle'] as const) {
      const w = s.warmTargets[b];
      out += `tsrun-warm ${BENCHMARK_LABELS[b]} / crun = ${times(s.ratios[b]?.warmOverCrun ?? NaN)} (target ≤ ${w.limit.toFixed(1)}×: ${w.ok ? 'met' : 'NOT met'})\n`;
    }
  }
  return out;
}

export const RUNTIME_COLORS: Record<string, string> = {
  tsrun: '#3178c6',
  'tsrun-warm': '#173f6e',
  runc: '#e3873b',
  crun: '#5a9e4b',
  'node -e 0': '#8e6bbf',
  'unshare (5 namespaces)': '#888888',
};

/** bench/results/lifecycle.svg: one group per benchmark, one bar per runtime, then the floors. */
export function lifecycleSvg(s: LifecycleSummary, subtitle?: string): string {
  const groups: BarGroup[] = Object.entries(s.medians).map(([b, m]) => ({
    label: BENCHMARK_LABELS[b] ?? b,
    bars: RUNTIMES.filter((rt) => m[rt] !== undefined).map((rt) => ({
      series: rt,
      value: m[rt]!,
      note:
        rt === 'tsrun'
          ? [m.runc !== undefined ? `${times(s.ratios[b]!.tsrunOverRunc)} runc` : '', m.crun !== undefined ? `${times(s.ratios[b]!.tsrunOverCrun)} crun` : '']
              .filter(Boolean)
              .join(', ')
          : rt === 'tsrun-warm' && m.crun !== undefined
            ? `${times(s.ratios[b]!.warmOverCrun)} crun`
            : undefined,
    })),
  }));
  const floors = [
    ...(s.floors.node !== undefined ? [{ series: 'node -e 0', value: s.floors.node }] : []),
    ...(s.floors.unshare !== undefined ? [{ series: 'unshare (5 namespaces)', value: s.floors.unshare }] : []),
  ];
  if (floors.length) groups.push({ label: 'floors', bars: floors.map((f) => ({ ...f, note: undefined })) });
  return barChart({
    title: 'Lifecycle latency: tsrun cold and warm, runc, crun (median, lower is better)',
    subtitle,
    unit: 'ms',
    groups,
    series: [...RUNTIMES, 'node -e 0', 'unshare (5 namespaces)'],
    colors: RUNTIME_COLORS,
  });
}
