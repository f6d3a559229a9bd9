// A small SVG chart generator for the benchmark report (no plotting dependency): line, scatter and
// dot charts with axes, ticks, axis labels, a title, a legend and <title>/<desc> text alternatives.
// Output is deterministic (same input, same bytes) so committed or diffed reports stay stable.

export interface Point {
  x: number;
  y: number;
  /** Shown as a tooltip (<title> of the marker). */
  label?: string;
}

export interface Series {
  label: string;
  points: Point[];
}

export interface ChartOptions {
  title: string;
  /** Text alternative for screen readers (the <desc>); defaults to a summary of the series. */
  description?: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Log-scale x axis (base 10 ticks over several decades, else powers of 2). */
  logX?: boolean;
  width?: number;
  height?: number;
  /** Force the y range to include 0 (quality metrics read better anchored at 0). */
  yFromZero?: boolean;
}

export interface DotChartOptions {
  title: string;
  description?: string;
  /** One row per category (e.g. data set). */
  categories: string[];
  xLabel: string;
  /** values[i] belongs to categories[i]; null = not measured (no marker). */
  series: { label: string; values: (number | null)[] }[];
  width?: number;
  height?: number;
}

// Okabe-Ito palette: distinguishable with the common colour-vision deficiencies.
const COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'];
const MARGIN = { left: 70, right: 170, top: 40, bottom: 55 };

export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;');
}

/** Series as polylines with point markers. */
export function lineChart(o: ChartOptions): string {
  return xyChart(o, true);
}

/** Series as markers only. */
export function scatterChart(o: ChartOptions): string {
  return xyChart(o, false);
}

interface Scale {
  map(v: number): number;
  ticks: number[];
}

function xyChart(o: ChartOptions, lines: boolean): string {
  const width = o.width ?? 640;
  const height = o.height ?? 400;
  const finite = o.series.map((s) => ({ ...s, points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!o.logX || p.x > 0)) }));
  const xs = finite.flatMap((s) => s.points.map((p) => p.x));
  const ys = finite.flatMap((s) => s.points.map((p) => p.y));
  const plot = { x0: MARGIN.left, x1: width - legendMargin(finite.map((s) => s.label)), y0: height - MARGIN.bottom, y1: MARGIN.top };
  const xScale = o.logX ? logScale(xs, plot.x0, plot.x1) : linearScale(xs, plot.x0, plot.x1, false);
  const yScale = linearScale(ys, plot.y0, plot.y1, o.yFromZero ?? false);
  const parts: string[] = [];
  parts.push(axes(plot, xScale, yScale, o.xLabel, o.yLabel));
  finite.forEach((s, i) => parts.push(seriesMarks(s, COLORS[i % COLORS.length], xScale, yScale, lines)));
  parts.push(legend(finite.map((s) => s.label), plot.x1 + 15, plot.y1, lines));
  return frame(width, height, o.title, o.description ?? describe(o), parts);
}

/** One row per category, one marker per series: e.g. converted vs from-scratch NDCG@10 per data set. */
export function dotChart(o: DotChartOptions): string {
  const width = o.width ?? 640;
  const height = o.height ?? Math.max(180, 60 + 40 * o.categories.length + MARGIN.bottom);
  const left = 150;
  const plot = { x0: left, x1: width - legendMargin(o.series.map((s) => s.label)), y0: height - MARGIN.bottom, y1: MARGIN.top };
  const values = o.series.flatMap((s) => s.values.filter((v): v is number => v != null && Number.isFinite(v)));
  const xScale = linearScale(values, plot.x0, plot.x1, true);
  const rowY = (i: number) => plot.y1 + ((i + 0.5) * (plot.y0 - plot.y1)) / Math.max(1, o.categories.length);
  const parts: string[] = [];
  parts.push(line(plot.x0, plot.y0, plot.x1, plot.y0, '#333'));
  for (const t of xScale.ticks) parts.push(xTick(xScale.map(t), plot.y0, plot.y1, formatTick(t)));
  parts.push(text((plot.x0 + plot.x1) / 2, plot.y0 + 40, o.xLabel, 'middle'));
  o.categories.forEach((c, i) => {
    parts.push(line(plot.x0, rowY(i), plot.x1, rowY(i), '#eee'));
    parts.push(text(plot.x0 - 8, rowY(i) + 4, c, 'end'));
  });
  o.series.forEach((s, si) => {
    const color = COLORS[si % COLORS.length];
    const marks = s.values.flatMap((v, i) => (v == null || !Number.isFinite(v) ? []
      : [marker(xScale.map(v), rowY(i) + (si - (o.series.length - 1) / 2) * 6, color, `${s.label}, ${o.categories[i]}: ${formatValue(v)}`)]));
    parts.push(`<g class="series" data-label="${escapeXml(s.label)}">${marks.join('')}</g>`);
  });
  parts.push(legend(o.series.map((s) => s.label), plot.x1 + 15, plot.y1, false));
  const description = o.description ?? `${o.title}. ${o.series.map((s) => `${s.label}: ${s.values.map((v, i) => `${o.categories[i]} ${v == null ? 'n/a' : formatValue(v)}`).join(', ')}`).join('; ')}.`;
  return frame(width, height, o.title, description, parts);
}

function frame(width: number, height: number, title: string, description: string, parts: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" role="img" font-family="sans-serif" font-size="12">`,
    `<title>${escapeXml(title)}</title>`,
    `<desc>${escapeXml(description)}</desc>`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    text(width / 2, 22, title, 'middle', 'font-size="15" font-weight="bold"'),
    ...parts,
    '</svg>',
    '',
  ].join('\n');
}

function describe(o: ChartOptions): string {
  const s = o.series.map((x) => `${x.label} (${x.points.length} points)`).join(', ');
  return `${o.title}: ${o.yLabel} against ${o.xLabel}${o.logX ? ' (log scale)' : ''}; series: ${s || 'none'}.`;
}

function axes(plot: { x0: number; x1: number; y0: number; y1: number }, xs: Scale, ys: Scale, xLabel: string, yLabel: string): string {
  const out = [line(plot.x0, plot.y0, plot.x1, plot.y0, '#333'), line(plot.x0, plot.y0, plot.x0, plot.y1, '#333')];
  for (const t of xs.ticks) out.push(xTick(xs.map(t), plot.y0, plot.y1, formatTick(t)));
  for (const t of ys.ticks) {
    const y = ys.map(t);
    out.push(line(plot.x0, y, plot.x1, y, '#eee'), line(plot.x0 - 5, y, plot.x0, y, '#333'), text(plot.x0 - 8, y + 4, formatTick(t), 'end'));
  }
  out.push(text((plot.x0 + plot.x1) / 2, plot.y0 + 40, xLabel, 'middle'));
  const cy = (plot.y0 + plot.y1) / 2;
  out.push(`<text x="18" y="${f(cy)}" text-anchor="middle" transform="rotate(-90 18 ${f(cy)})">${escapeXml(yLabel)}</text>`);
  return `<g class="axes">${out.join('')}</g>`;
}

function xTick(x: number, y0: number, y1: number, label: string): string {
  return line(x, y0, x, y1, '#eee') + line(x, y0, x, y0 + 5, '#333') + text(x, y0 + 18, label, 'middle');
}

function seriesMarks(s: Series, color: string, xs: Scale, ys: Scale, lines: boolean): string {
  const pts = [...s.points].sort((a, b) => a.x - b.x);
  const marks: string[] = [];
  if (lines && pts.length > 0) {
    const d = pts.map((p, i) => `${i === 0 ? 'M' : 'L'}${f(xs.map(p.x))},${f(ys.map(p.y))}`).join(' ');
    marks.push(`<path class="line" d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
  }
  for (const p of pts) marks.push(marker(xs.map(p.x), ys.map(p.y), color, p.label ?? `${s.label}: (${formatValue(p.x)}, ${formatValue(p.y)})`));
  return `<g class="series" data-label="${escapeXml(s.label)}">${marks.join('')}</g>`;
}

function marker(x: number, y: number, color: string, tooltip: string): string {
  return `<circle cx="${f(x)}" cy="${f(y)}" r="4" fill="${color}"><title>${escapeXml(tooltip)}</title></circle>`;
}

/** Room right of the plot for the legend: the default, or more for long labels (~7 px a character at 12 px). */
function legendMargin(labels: string[]): number {
  const longest = labels.reduce((n, l) => Math.max(n, l.length), 0);
  return Math.max(MARGIN.right, 45 + 7 * longest);
}

function legend(labels: string[], x: number, y: number, lines: boolean): string {
  const rows = labels.map((label, i) => {
    const color = COLORS[i % COLORS.length];
    const cy = y + 10 + i * 20;
    const key = lines ? line(x, cy, x + 20, cy, color, 2) : '';
    return `${key}<rect x="${f(x + 6)}" y="${f(cy - 4)}" width="8" height="8" fill="${color}"/>${text(x + 28, cy + 4, label, 'start')}`;
  });
  return `<g class="legend">${rows.join('')}</g>`;
}

function line(x1: number, y1: number, x2: number, y2: number, color: string, width = 1): string {
  return `<line x1="${f(x1)}" y1="${f(y1)}" x2="${f(x2)}" y2="${f(y2)}" stroke="${color}" stroke-width="${width}"/>`;
}

function text(x: number, y: number, content: string, anchor: 'start' | 'middle' | 'end', extra = ''): string {
  return `<text x="${f(x)}" y="${f(y)}" text-anchor="${anchor}"${extra ? ` ${extra}` : ''}>${escapeXml(content)}</text>`;
}

/** Linear scale over the data with "nice" ticks (1, 2, 5 x 10^k steps). */
function linearScale(values: number[], p0: number, p1: number, fromZero: boolean): Scale {
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (fromZero) {
    lo = Math.min(lo, 0);
    hi = Math.max(hi, 0);
  }
  if (hi - lo < 1e-12) {
    const pad = Math.abs(hi) > 0 ? Math.abs(hi) * 0.1 : 1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep((hi - lo) / 5);
  const t0 = Math.floor(lo / step) * step;
  const t1 = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let t = t0; t <= t1 + step / 2; t += step) ticks.push(Number(t.toPrecision(12)));
  return { ticks, map: (v) => p0 + ((v - t0) / (t1 - t0)) * (p1 - p0) };
}

function niceStep(raw: number): number {
  const k = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / k;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * k;
}

/** Log scale: ticks at powers of 10 when the data spans 3+ decades, else at powers of 2. */
function logScale(values: number[], p0: number, p1: number): Scale {
  const pos = values.filter((v) => v > 0);
  const lo = pos.length ? Math.min(...pos) : 1;
  const hi = pos.length ? Math.max(...pos) : 10;
  const base = Math.log10(hi / lo) >= 3 ? 10 : 2;
  const e0 = Math.floor(Math.log(lo) / Math.log(base) + 1e-9);
  const e1 = Math.max(e0 + 1, Math.ceil(Math.log(hi) / Math.log(base) - 1e-9));
  const ticks = Array.from({ length: e1 - e0 + 1 }, (_, i) => Math.pow(base, e0 + i));
  const l0 = Math.log(ticks[0]);
  const l1 = Math.log(ticks[ticks.length - 1]);
  return { ticks, map: (v) => p0 + ((Math.log(v) - l0) / (l1 - l0)) * (p1 - p0) };
}

function formatTick(v: number): string {
  if (v === 0) return '0';
  if (Math.abs(v) >= 10000) return v.toExponential(0);
  return String(Number(v.toPrecision(4)));
}

function formatValue(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(4)));
}

/** Coordinates with 2 decimals: small files, stable output. */
function f(v: number): string {
  return String(Math.round(v * 100) / 100);
}
