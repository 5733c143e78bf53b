/**
 * Hand-written SVG charts for the benchmark reports (no dependencies):
 *
 *  - barChart: grouped horizontal bars, one group per benchmark and one bar
 *    per series (runtime) in it; bench/results/lifecycle.svg.
 *  - distributionChart: one row per case on a logarithmic axis, a box from
 *    p50 to p90, a whisker to p99, a dot at the maximum and a tick at a
 *    reference (the C floor's p50); bench/results/ns.svg.
 *
 * Every bar or box is a `<rect class="bar" data-series=... data-value=...>`,
 * which is what test/bench/svg.test.ts counts.
 */

const FONT = 'font-family="sans-serif" font-size="12"';
const PALETTE = ['#3178c6', '#e3873b', '#5a9e4b', '#8e6bbf', '#c44e52', '#888888', '#4c9fb0'];

/** Escapes text for XML content and attribute values. */
export function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

const n = (v: number) => (Math.round(v * 10) / 10).toString();

/** A human number for an axis or label: 3 significant digits at most. */
export function shortNumber(v: number): string {
  if (!Number.isFinite(v)) return '-';
  const a = Math.abs(v);
  if (a >= 100) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1).replace(/\.0$/, '');
  return v.toFixed(2).replace(/\.?0+$/, '');
}

export interface Bar {
  series: string;
  value: number;
  /** text after the value, e.g. "1.4× runc" */
  note?: string;
}

export interface BarGroup {
  label: string;
  bars: Bar[];
}

export interface BarChartOptions {
  title: string;
  subtitle?: string;
  unit: string;
  groups: BarGroup[];
  /** series in legend order; default: in order of first appearance */
  series?: string[];
  colors?: Record<string, string>;
  width?: number;
}

function colorOf(series: string, order: string[], colors?: Record<string, string>): string {
  return colors?.[series] ?? PALETTE[Math.max(0, order.indexOf(series)) % PALETTE.length]!;
}

/** Nice round step for about `count` ticks up to `max`. */
export function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1;
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const f = raw / mag;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

export function barChart(o: BarChartOptions): string {
  const width = o.width ?? 760;
  const order = o.series ?? [...new Set(o.groups.flatMap((g) => g.bars.map((b) => b.series)))];
  const labelW = 190;
  const right = 150;
  const barH = 16;
  const gap = 12;
  const top = o.subtitle ? 70 : 56;
  const plotW = width - labelW - right;
  const max = Math.max(0, ...o.groups.flatMap((g) => g.bars.map((b) => (Number.isFinite(b.value) ? b.value : 0))));
  const step = niceStep(max);
  const axisMax = Math.max(step, Math.ceil(max / step) * step);
  const x = (v: number) => labelW + (Math.max(0, v) / axisMax) * plotW;
  const rows: string[] = [];
  let y = top;
  for (const g of o.groups) {
    const h = g.bars.length * barH;
    rows.push(`<text x="${labelW - 8}" y="${n(y + h / 2 + 4)}" text-anchor="end" ${FONT}>${esc(g.label)}</text>`);
    for (const b of g.bars) {
      const w = Math.max(0, x(b.value) - labelW);
      const color = colorOf(b.series, order, o.colors);
      rows.push(
        `<rect class="bar" data-series="${esc(b.series)}" data-value="${Number.isFinite(b.value) ? b.value : ''}" x="${labelW}" y="${n(y + 1)}" width="${n(w)}" height="${barH - 2}" fill="${color}"><title>${esc(`${b.series}: ${shortNumber(b.value)} ${o.unit}`)}</title></rect>`,
        `<text x="${n(labelW + w + 4)}" y="${n(y + barH - 4)}" ${FONT} fill="#333">${esc(`${shortNumber(b.value)} ${o.unit}${b.note ? `  ${b.note}` : ''}`)}</text>`,
      );
      y += barH;
    }
    y += gap;
  }
  const bottom = y + 24;
  const axis: string[] = [];
  for (let v = 0; v <= axisMax + 1e-9; v += step) {
    axis.push(
      `<line x1="${n(x(v))}" y1="${top - 6}" x2="${n(x(v))}" y2="${n(y - gap + 4)}" stroke="#ddd"/>`,
      `<text x="${n(x(v))}" y="${n(y - gap + 18)}" text-anchor="middle" ${FONT} fill="#666">${shortNumber(v)}</text>`,
    );
  }
  axis.push(`<text x="${n(labelW + plotW / 2)}" y="${n(bottom - 2)}" text-anchor="middle" ${FONT} fill="#666">${esc(o.unit)}</text>`);
  // Each entry as wide as its name (~7 px a character at 12 px), from the
  // left margin: fixed 110 px slots ran a long name past the chart's width.
  let lx = 12;
  const legend = order.map((s) => {
    const entry = `<rect x="${lx}" y="${top - 26}" width="12" height="12" fill="${colorOf(s, order, o.colors)}"/><text x="${lx + 16}" y="${top - 16}" ${FONT}>${esc(s)}</text>`;
    lx += 16 + 7 * s.length + 14;
    return entry;
  });
  return svgDoc(width, bottom + 8, o.title, o.subtitle, [...axis, ...legend, ...rows]);
}

export interface DistributionRow {
  label: string;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  /** a reference value drawn as a tick (e.g. the C floor's p50) */
  reference?: number;
  series?: string;
}

export interface DistributionChartOptions {
  title: string;
  subtitle?: string;
  unit: string;
  rows: DistributionRow[];
  referenceLabel?: string;
  colors?: Record<string, string>;
  width?: number;
}

/** Powers of ten and their 2× and 5× between lo and hi: log-axis ticks. */
export function logTicks(lo: number, hi: number): number[] {
  const out: number[] = [];
  if (!(lo > 0) || !(hi > lo)) return out;
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= lo && v <= hi) out.push(v);
    }
  }
  return out;
}

export function distributionChart(o: DistributionChartOptions): string {
  const width = o.width ?? 760;
  const labelW = 170;
  const right = 30;
  const rowH = 22;
  const top = o.subtitle ? 74 : 60;
  const plotW = width - labelW - right;
  const values = o.rows.flatMap((r) => [r.p50, r.p90, r.p99, r.max, r.reference ?? NaN]).filter((v) => Number.isFinite(v) && v > 0);
  const lo = values.length ? 10 ** Math.floor(Math.log10(Math.min(...values))) : 1;
  const hi = values.length ? 10 ** Math.ceil(Math.log10(Math.max(...values) * 1.01)) : 10;
  const x = (v: number) => labelW + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * plotW;
  const parts: string[] = [];
  const bottomAxis = top + o.rows.length * rowH + 4;
  for (const t of logTicks(lo, hi)) {
    const major = Math.abs(Math.log10(t) - Math.round(Math.log10(t))) < 1e-9;
    parts.push(`<line x1="${n(x(t))}" y1="${top - 6}" x2="${n(x(t))}" y2="${bottomAxis}" stroke="${major ? '#ccc' : '#eee'}"/>`);
    parts.push(`<text x="${n(x(t))}" y="${bottomAxis + 14}" text-anchor="middle" ${FONT} fill="#666">${shortNumber(t)}</text>`);
  }
  parts.push(`<text x="${n(labelW + plotW / 2)}" y="${bottomAxis + 30}" text-anchor="middle" ${FONT} fill="#666">${esc(o.unit)} (log scale)</text>`);
  o.rows.forEach((r, i) => {
    const y = top + i * rowH;
    const mid = y + rowH / 2;
    const color = o.colors?.[r.series ?? ''] ?? PALETTE[0]!;
    parts.push(`<text x="${labelW - 8}" y="${n(mid + 4)}" text-anchor="end" ${FONT}>${esc(r.label)}</text>`);
    if (![r.p50, r.p90, r.p99, r.max].every((v) => Number.isFinite(v) && v > 0)) return;
    parts.push(
      `<line x1="${n(x(r.p90))}" y1="${n(mid)}" x2="${n(x(r.p99))}" y2="${n(mid)}" stroke="${color}" stroke-width="2"/>`,
      `<rect class="bar" data-series="${esc(r.series ?? r.label)}" data-value="${r.p50}" x="${n(x(r.p50))}" y="${n(y + 4)}" width="${n(Math.max(1, x(r.p90) - x(r.p50)))}" height="${rowH - 8}" fill="${color}" fill-opacity="0.75"><title>${esc(`${r.label}: p50 ${shortNumber(r.p50)}, p90 ${shortNumber(r.p90)}, p99 ${shortNumber(r.p99)}, max ${shortNumber(r.max)} ${o.unit}`)}</title></rect>`,
      `<line x1="${n(x(r.p99))}" y1="${n(y + 6)}" x2="${n(x(r.p99))}" y2="${n(y + rowH - 6)}" stroke="${color}" stroke-width="2"/>`,
      `<circle cx="${n(x(r.max))}" cy="${n(mid)}" r="3" fill="none" stroke="${color}"/>`,
    );
    if (r.reference !== undefined && Number.isFinite(r.reference) && r.reference > 0) {
      parts.push(`<line x1="${n(x(r.reference))}" y1="${n(y + 2)}" x2="${n(x(r.reference))}" y2="${n(y + rowH - 2)}" stroke="#000" stroke-width="2"/>`);
    }
  });
  const ly = top - 24;
  parts.push(
    `<rect x="${labelW}" y="${ly - 9}" width="18" height="10" fill="${PALETTE[0]}" fill-opacity="0.75"/><text x="${labelW + 22}" y="${ly}" ${FONT}>p50–p90</text>`,
    `<line x1="${labelW + 90}" y1="${ly - 4}" x2="${labelW + 110}" y2="${ly - 4}" stroke="${PALETTE[0]}" stroke-width="2"/><text x="${labelW + 114}" y="${ly}" ${FONT}>to p99</text>`,
    `<circle cx="${labelW + 175}" cy="${ly - 4}" r="3" fill="none" stroke="${PALETTE[0]}"/><text x="${labelW + 182}" y="${ly}" ${FONT}>max</text>`,
  );
  if (o.rows.some((r) => r.reference !== undefined)) {
    parts.push(`<line x1="${labelW + 230}" y1="${ly - 10}" x2="${labelW + 230}" y2="${ly + 2}" stroke="#000" stroke-width="2"/><text x="${labelW + 236}" y="${ly}" ${FONT}>${esc(o.referenceLabel ?? 'reference')}</text>`);
  }
  return svgDoc(width, bottomAxis + 40, o.title, o.subtitle, parts);
}

function svgDoc(width: number, height: number, title: string, subtitle: string | undefined, body: string[]): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${n(height)}" viewBox="0 0 ${width} ${n(height)}">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="12" y="22" font-family="sans-serif" font-size="15" font-weight="bold">${esc(title)}</text>`,
    subtitle ? `<text x="12" y="40" ${FONT} fill="#555">${esc(subtitle)}</text>` : '',
    ...body,
    `</svg>`,
  ]
    .filter((l) => l !== '')
    .join('\n') + '\n';
}
