/** The hand-written SVG charts: well-formed XML, one bar per value, escaping. */
import t from 'tap';
import { barChart, distributionChart, esc, logTicks, niceStep, shortNumber } from '../../src/bench/svg.js';
import { lifecycleSvg, summarizeLifecycle } from '../../src/bench/lifecycle.js';

/**
 * A small XML well-formedness check (no dependencies): one root element,
 * every tag closed in order, attributes quoted, no stray `<` or `&`.
 */
function wellFormed(xml: string): string | undefined {
  let s = xml.replace(/^<\?xml[^?]*\?>\s*/, '');
  const stack: string[] = [];
  let roots = 0;
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  let i = 0;
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    const text = s.slice(i, lt < 0 ? s.length : lt);
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(text)) return `bad entity in text ${JSON.stringify(text)}`;
    if (lt < 0) {
      if (text.trim()) return 'text after the root element';
      break;
    }
    tag.lastIndex = lt;
    const m = tag.exec(s);
    if (!m) return `malformed tag at ${JSON.stringify(s.slice(lt, lt + 60))}`;
    const [, close, name, attrs, selfClose] = m;
    if (/&(?!(amp|lt|gt|quot|apos|#\d+);)/.test(attrs!)) return `bad entity in attributes of <${name}>`;
    if (close) {
      if (stack.pop() !== name) return `</${name}> does not close the open element`;
    } else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name!);
    } else if (stack.length === 0) roots++;
    i = tag.lastIndex;
  }
  s = '';
  if (stack.length) return `unclosed <${stack.join('>, <')}>`;
  if (roots !== 1) return `${roots} root elements`;
  return undefined;
}

const bars = (svg: string) => [...svg.matchAll(/<rect class="bar" data-series="([^"]*)" data-value="([^"]*)"/g)].map((m) => ({ series: m[1], value: m[2] }));

t.test('the checker itself', async (t) => {
  t.equal(wellFormed('<svg><g><rect/></g></svg>'), undefined);
  t.match(wellFormed('<svg><g></svg>') ?? '', /does not close/);
  t.match(wellFormed('<svg>a & b</svg>') ?? '', /bad entity/);
  t.match(wellFormed('<svg/><svg/>') ?? '', /2 root/);
});

t.test('barChart: one bar per series value, in a well-formed document', async (t) => {
  const svg = barChart({
    title: 'Lifecycle <ms> & "ratios"',
    unit: 'ms',
    groups: [
      { label: 'run', bars: [{ series: 'tsrun', value: 40, note: '1.5× runc' }, { series: 'runc', value: 26 }, { series: 'crun', value: 9 }] },
      { label: 'state', bars: [{ series: 'tsrun', value: 27 }, { series: 'runc', value: 4 }] },
    ],
  });
  t.equal(wellFormed(svg), undefined, 'well-formed');
  t.match(svg, /^<\?xml version="1.0" encoding="UTF-8"\?>\n<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  t.ok(svg.endsWith('</svg>\n'));
  t.same(bars(svg), [
    { series: 'tsrun', value: '40' },
    { series: 'runc', value: '26' },
    { series: 'crun', value: '9' },
    { series: 'tsrun', value: '27' },
    { series: 'runc', value: '4' },
  ]);
  t.ok(svg.includes('Lifecycle &lt;ms&gt; &amp; &quot;ratios&quot;'), 'the title is escaped');
  const widths = [...svg.matchAll(/<rect class="bar"[^>]* width="([\d.]+)"/g)].map((m) => Number(m[1]));
  t.ok(widths[0]! > widths[1]! && widths[1]! > widths[2]!, 'bar length follows the value');
});

t.test('barChart with no values, NaN and zero', async (t) => {
  const svg = barChart({ title: 'x', unit: 'ms', groups: [{ label: 'g', bars: [{ series: 'a', value: NaN }, { series: 'b', value: 0 }] }] });
  t.equal(wellFormed(svg), undefined);
  t.equal(bars(svg).length, 2);
  t.equal(wellFormed(barChart({ title: 'empty', unit: 'ms', groups: [] })), undefined);
});

t.test('distributionChart: one box per row, a reference tick', async (t) => {
  const svg = distributionChart({
    title: 'ns',
    unit: 'µs',
    rows: [
      { label: 'uts', p50: 23, p90: 25, p99: 80, max: 400, reference: 21, series: 'namespace' },
      { label: 'net', p50: 400, p90: 600, p99: 4000, max: 9000, series: 'namespace' },
      { label: 'pivot_root (step)', p50: 90, p90: 150, p99: 300, max: 2000, series: 'step' },
      { label: 'failed', p50: NaN, p90: NaN, p99: NaN, max: NaN },
    ],
    referenceLabel: 'C floor p50',
  });
  t.equal(wellFormed(svg), undefined);
  t.same(
    bars(svg).map((b) => b.series),
    ['namespace', 'namespace', 'step'],
    'a box for every row with numbers',
  );
  t.ok(svg.includes('C floor p50'));
  t.ok(svg.includes('(log scale)'));
});

t.test('axis helpers', async (t) => {
  t.same(logTicks(10, 1000), [10, 20, 50, 100, 200, 500, 1000]);
  t.same(logTicks(3, 40), [5, 10, 20]);
  t.same(logTicks(0, 10), []);
  t.equal(niceStep(100), 20);
  t.equal(niceStep(7), 2);
  t.equal(niceStep(0), 1);
  t.equal(shortNumber(1234.5), '1235');
  t.equal(shortNumber(12.0), '12');
  t.equal(shortNumber(1.5), '1.5');
  t.equal(shortNumber(0.25), '0.25');
  t.equal(esc(`a<b>&"c"'`), 'a&lt;b&gt;&amp;&quot;c&quot;&apos;');
});

t.test('lifecycleSvg: a bar per runtime and benchmark, plus the floors', async (t) => {
  const r = (command: string, ms: number) => ({ command, mean: ms / 1000, times: [ms / 1000] });
  const s = summarizeLifecycle([
    r('tsrun run', 40), r('runc run', 26), r('crun run', 9),
    r('tsrun state', 27), r('runc state', 4), r('crun state', 3),
    r('node -e 0', 22), r('unshare', 2),
  ]);
  const svg = lifecycleSvg(s, 'test');
  t.equal(wellFormed(svg), undefined);
  t.same(
    bars(svg).map((b) => b.series),
    ['tsrun', 'runc', 'crun', 'tsrun', 'runc', 'crun', 'node -e 0', 'unshare (5 namespaces)'],
  );
  t.ok(svg.includes('1.54× runc'), 'the tsrun bar says its ratio');
});
