/**
 * The statistics of the benchmarks: percentiles of samples and the ratios
 * the lifecycle report prints. Pure functions, unit-tested in
 * test/bench/stats.test.ts.
 */

/**
 * The q-quantile (0 <= q <= 1) of samples by linear interpolation between
 * the closest ranks (numpy's default, "type 7"): percentile([1, 2, 3, 4], 0.5)
 * is 2.5. NaN for no samples. `sorted` skips the sort when the caller did it.
 */
export function quantile(samples: ArrayLike<number>, q: number, sorted = false): number {
  const n = samples.length;
  if (n === 0) return NaN;
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile: q must be in [0, 1], got ${q}`);
  const s = sorted ? samples : Float64Array.from(samples).sort();
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  return s[lo]! + (s[hi]! - s[lo]!) * (pos - lo);
}

export function median(samples: ArrayLike<number>): number {
  return quantile(samples, 0.5);
}

export function mean(samples: ArrayLike<number>): number {
  if (samples.length === 0) return NaN;
  let sum = 0;
  for (let i = 0; i < samples.length; i++) sum += samples[i]!;
  return sum / samples.length;
}

export interface Summary {
  n: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** min, mean, p50, p90, p99 and max of samples (all NaN but n for none). */
export function summarize(samples: ArrayLike<number>): Summary {
  const s = Float64Array.from(samples).sort();
  return {
    n: s.length,
    min: s.length ? s[0]! : NaN,
    mean: mean(s),
    p50: quantile(s, 0.5, true),
    p90: quantile(s, 0.9, true),
    p99: quantile(s, 0.99, true),
    max: s.length ? s[s.length - 1]! : NaN,
  };
}

/** a / b, NaN when either is missing or b is 0. */
export function ratio(a: number | undefined, b: number | undefined): number {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b === 0) return NaN;
  return a / b;
}

/** Relative overhead of `measured` over `reference`: 0.07 means 7 % slower. */
export function overhead(measured: number | undefined, reference: number | undefined): number {
  const r = ratio(measured, reference);
  return Number.isNaN(r) ? NaN : r - 1;
}

/** A number for a table: `digits` decimals, "-" for NaN. */
export function fmt(v: number | undefined, digits = 1): string {
  return v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(digits);
}

/** Renders rows as an aligned text table (first column left-aligned, the rest right-aligned). */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}
