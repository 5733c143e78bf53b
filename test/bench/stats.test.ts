/** The report math of the benchmarks: percentiles, summaries, ratios, tables. */
import t from 'tap';
import { fmt, mean, median, overhead, quantile, ratio, summarize, table } from '../../src/bench/stats.js';

t.test('quantile interpolates between closest ranks (numpy type 7)', async (t) => {
  t.equal(quantile([1, 2, 3, 4], 0.5), 2.5);
  t.equal(quantile([4, 1, 3, 2], 0.5), 2.5, 'unsorted input is sorted');
  t.equal(quantile([1, 2, 3, 4, 5], 0.5), 3);
  t.equal(quantile([10, 20], 0.9), 19);
  t.equal(quantile([7], 0.99), 7, 'one sample is every quantile');
  t.equal(quantile([1, 2, 3], 0), 1);
  t.equal(quantile([1, 2, 3], 1), 3);
  t.ok(Number.isNaN(quantile([], 0.5)), 'no samples: NaN');
  t.throws(() => quantile([1], 1.5), RangeError);
  t.throws(() => quantile([1], -0.1), RangeError);
  // 1..100: p99 sits between 99 and 100
  const hundred = Array.from({ length: 100 }, (_, i) => i + 1);
  t.ok(Math.abs(quantile(hundred, 0.99) - 99.01) < 1e-9, 'p99 of 1..100');
  t.ok(Math.abs(quantile(hundred, 0.9) - 90.1) < 1e-9, 'p90 of 1..100');
  t.equal(quantile(Float64Array.from([3, 1, 2]), 0.5), 2, 'typed arrays');
});

t.test('median and mean', async (t) => {
  t.equal(median([5, 1, 9]), 5);
  t.equal(median([1, 2, 3, 10]), 2.5);
  t.equal(mean([1, 2, 3, 10]), 4);
  t.ok(Number.isNaN(mean([])));
});

t.test('summarize', async (t) => {
  const s = summarize([5, 1, 4, 2, 3]);
  t.same(s, { n: 5, min: 1, mean: 3, p50: 3, p90: 4.6, p99: 4.96, max: 5 });
  const input = [3, 1, 2];
  summarize(input);
  t.same(input, [3, 1, 2], 'the input is not sorted in place');
  const e = summarize([]);
  t.equal(e.n, 0);
  t.ok(Number.isNaN(e.p50) && Number.isNaN(e.max));
});

t.test('ratio and overhead', async (t) => {
  t.equal(ratio(30, 10), 3);
  t.ok(Number.isNaN(ratio(1, 0)), 'division by zero is NaN');
  t.ok(Number.isNaN(ratio(undefined, 2)));
  t.ok(Number.isNaN(ratio(NaN, 2)));
  t.equal(overhead(110, 100), 0.10000000000000009);
  t.equal(Math.round(overhead(105, 100) * 1000) / 1000, 0.05);
  t.ok(Number.isNaN(overhead(1, undefined)));
});

t.test('fmt and table', async (t) => {
  t.equal(fmt(1.234), '1.2');
  t.equal(fmt(1.235, 2), '1.24');
  t.equal(fmt(NaN), '-');
  t.equal(fmt(undefined), '-');
  const out = table(['case', 'p50'], [['uts', '12.5'], ['all', '1234.0']]);
  t.equal(out, 'case     p50\n----  ------\nuts     12.5\nall   1234.0\n');
});
