// The report's charts as Vega-Lite specs, built from report.json's results only (so each chart is
// reproducible from the JSON): quality vs compression, latency vs batch size, cache bytes per user,
// SVD energy curves, converted vs scratch. Rendering to SVG is render.ts's job (it needs vega).
import type { TopLevelSpec } from 'vega-lite';
import { AxisScale, chooseScale, formatBytes, formatMs, linearTicks, short, tickAxis } from './axes';
import type { EnergyLayer, ReportResults, SweepResult } from './types';

export interface Chart {
  /** File name under charts/. */
  file: string;
  title: string;
  /** Text alternative (the SVG's <desc>): what is drawn against what, on which scales, and the series. */
  description: string;
  /** The series labels drawn, in legend order. */
  series: string[];
  spec: TopLevelSpec;
}

/** Axes whose values are sizes or ratios go log from one order of magnitude; measured values from two. */
const GEOMETRIC_ORDERS = 1;
const VALUE_ORDERS = 2;

// Okabe-Ito palette: distinguishable with the common colour-vision deficiencies.
const COLORS = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#F0E442', '#000000'];

export function buildCharts(results: ReportResults): Chart[] {
  return [
    ...Object.entries(results.sweep ?? {}).map(([dataset, sweep]) => qualityChart(dataset, sweep)),
    ...latencyCharts(results),
    ...cacheBytesChart(results),
    ...Object.entries(results.analysis ?? {}).map(([dataset, a]) => energyChart(dataset, a.model, a.layers)),
    ...convertChart(results),
  ];
}

/** One drawn point: `label` is its text alternative (aria-label in the SVG) and tooltip. */
interface Row {
  x: number;
  y: number;
  series: string;
  label: string;
}

/** How an axis shows its values: the unit decides the tick labels. */
type Unit = 'ms' | 'bytes' | 'ratio' | 'count' | 'fraction' | 'plain';

interface AxisInput {
  title: string;
  unit: Unit;
  scale: AxisScale;
  /** Linear scales: include 0 in the domain. */
  zero?: boolean;
}

/** NDCG@10 against compression ratio: the userDim sweep, the pool-size sweep and the baseline. */
export function qualityChart(dataset: string, sweep: SweepResult): Chart {
  const pool = Number(sweep.settings.poolSize);
  const byUserDim = sweep.points.filter((p) => p.poolSize === pool);
  const byPool = sweep.points.filter((p) => p.userDim === 1);
  const groups = [
    { label: `userDim ${byUserDim.map((p) => p.userDim).join('/')} (pool ${pool})`, points: byUserDim, baseline: false },
    { label: 'pool size sweep (userDim 1)', points: byPool, baseline: false },
    { label: 'full KV (mha)', points: [sweep.baseline], baseline: true },
  ];
  const rows: Row[] = groups.flatMap((g) => g.points.map((p) => (g.baseline
    ? { x: 1, y: p.ndcg10, series: g.label, label: `mha: 1x (${formatBytes(p.bytesPerToken)}/token), NDCG@10 ${p.ndcg10.toFixed(4)}` }
    : { x: p.compressionRatio, y: p.ndcg10, series: g.label,
      label: `userDim ${p.userDim}, pool ${p.poolSize}: ${p.compressionRatio.toFixed(1)}x (${formatBytes(p.bytesPerToken)}/token), NDCG@10 ${p.ndcg10.toFixed(4)}` })));
  const title = `${dataset}: ${sweep.model} test NDCG@10 vs cache compression`;
  return xyChart(`quality-vs-compression-${slug(dataset)}.svg`, title, groups.map((g) => g.label), rows,
    { title: 'compression ratio vs full KV', unit: 'ratio', scale: chooseScale(rows.map((r) => r.x), GEOMETRIC_ORDERS, 'binary') },
    { title: 'test NDCG@10', unit: 'plain', scale: { type: 'linear' }, zero: true });
}

const SERVE_MODES = ['collectivekv', 'full', 'recompute'] as const;

/** p50 latency against batch size, one series per cache mode, one chart per history length (memory store). */
export function latencyCharts(results: ReportResults): Chart[] {
  const served = (results.serve?.results ?? []).filter((r) => r.store === 'memory');
  const histories = [...new Set(served.map((r) => r.historyLength))].sort((a, b) => a - b);
  return histories.map((h) => {
    const rows: Row[] = SERVE_MODES.flatMap((mode) => served.filter((r) => r.historyLength === h && r.mode === mode).map((r) => ({
      x: r.batchSize, y: r.p50Ms, series: mode,
      label: `${mode}, batch ${r.batchSize}: p50 ${formatMs(r.p50Ms)}${r.extrapolatedFromBatch ? ` (scaled from batch ${r.extrapolatedFromBatch})` : ''}`,
    })));
    const title = `Scoring latency vs batch size, history ${h} (in-memory store)`;
    return xyChart(`latency-vs-batch-h${h}.svg`, title, [...SERVE_MODES], rows,
      { title: 'batch size (users per request)', unit: 'count', scale: chooseScale(rows.map((r) => r.x), GEOMETRIC_ORDERS, 'binary') },
      { title: 'p50 latency', unit: 'ms', scale: chooseScale(rows.map((r) => r.y), VALUE_ORDERS), zero: true });
  });
}

/** Stored bytes per user against history length, per cache mode (memory store; recompute stores the item ids). */
export function cacheBytesChart(results: ReportResults): Chart[] {
  const served = (results.serve?.results ?? []).filter((r) => r.store === 'memory' && r.bytesPerUser > 0);
  if (served.length === 0) return [];
  const rows: Row[] = SERVE_MODES.flatMap((mode) => {
    const byHistory = new Map(served.filter((r) => r.mode === mode).map((r) => [r.historyLength, r.bytesPerUser]));
    return [...byHistory].sort((a, b) => a[0] - b[0]).map(([h, bytes]) => ({
      x: h, y: bytes, series: mode, label: `${mode}, history ${h}: ${formatBytes(bytes)} per user`,
    }));
  });
  const title = 'Stored cache per user vs history length (in-memory store)';
  return [xyChart('cache-bytes-per-user.svg', title, SERVE_MODES.filter((m) => rows.some((r) => r.series === m)), rows,
    { title: 'history length (events)', unit: 'count', scale: chooseScale(rows.map((r) => r.x), GEOMETRIC_ORDERS, 'binary') },
    { title: 'stored bytes per user', unit: 'bytes', scale: chooseScale(rows.map((r) => r.y), VALUE_ORDERS, 'bytes'), zero: true })];
}

/** Cumulative energy against rank, for K and V of every attention layer. */
export function energyChart(dataset: string, model: string, layers: EnergyLayer[]): Chart {
  const curves = layers.flatMap((l) => [{ label: `${l.layer} K`, energy: l.keys.cumulativeEnergy }, { label: `${l.layer} V`, energy: l.values.cumulativeEnergy }]);
  const rows: Row[] = curves.flatMap((c) => c.energy.map((e, i) => ({ x: i + 1, y: e, series: c.label, label: `${c.label}, rank ${i + 1}: ${(100 * e).toFixed(1)}% of the energy` })));
  const title = `${dataset}: SVD energy of the trained ${model}'s K/V`;
  return xyChart(`svd-energy-${slug(dataset)}.svg`, title, curves.map((c) => c.label), rows,
    { title: 'rank r (top singular components)', unit: 'count', scale: { type: 'linear' } },
    { title: 'cumulative energy', unit: 'fraction', scale: { type: 'linear' }, zero: true }, false,
    `Ranks for 90/95/99% of the energy: ${layers.flatMap((l) => [`${l.layer} K ${l.keys.rank90}/${l.keys.rank95}/${l.keys.rank99}`,
      `${l.layer} V ${l.values.rank90}/${l.values.rank95}/${l.values.rank99}`]).join(', ')}.`);
}

const CONVERT_LABELS = ['baseline mha', 'converted (no fine-tune)', 'converted + fine-tune', 'collectivekv from scratch'] as const;

/** NDCG@10 of baseline, converted (before/after fine-tune) and from-scratch CollectiveKV, per data set: one row each. */
export function convertChart(results: ReportResults): Chart[] {
  const entries = Object.entries(results.convert ?? {});
  if (entries.length === 0) return [];
  const values = entries.flatMap(([dataset, r]) => CONVERT_LABELS.flatMap((label) => {
    const v = r.rows.find((row) => row.model === label)?.testNdcg10;
    return v == null || !Number.isFinite(v) ? [] : [{ dataset, x: v, series: label, label: `${label}, ${dataset}: NDCG@10 ${v.toFixed(4)}` }];
  }));
  const title = 'Converted vs trained-from-scratch SASRec: test NDCG@10';
  const description = `${title}, one row per data set. ${CONVERT_LABELS.map((l) => `${l}: ${entries.map(([d]) => {
    const v = values.find((x) => x.dataset === d && x.series === l);
    return `${d} ${v == null ? 'n/a' : v.x.toFixed(4)}`;
  }).join(', ')}`).join('; ')}.`;
  const spec = {
    ...frame(title, description, values),
    width: 460,
    height: { step: 12 },
    mark: { type: 'point', filled: true, size: 80 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: 'test NDCG@10', scale: { zero: true } },
      y: { field: 'dataset', type: 'nominal', title: null, sort: entries.map(([d]) => d) },
      yOffset: { field: 'series', type: 'nominal', sort: [...CONVERT_LABELS] },
      color: colorEncoding([...CONVERT_LABELS]),
      description: { field: 'label', type: 'nominal' },
      tooltip: { field: 'label', type: 'nominal' },
    },
  } as TopLevelSpec;
  return [{ file: 'convert-vs-scratch.svg', title, description, series: [...CONVERT_LABELS], spec }];
}

export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}

// ---------------------------------------------------------------- spec building

/**
 * Lines, with point markers unless `points` is false (dense curves), one colour per series;
 * non-finite points and (on a log axis) non-positive ones dropped.
 */
function xyChart(file: string, title: string, series: string[], allRows: Row[], x: AxisInput, y: AxisInput, points = true, note = ''): Chart {
  const rows = allRows.filter((r) => Number.isFinite(r.x) && Number.isFinite(r.y) && (x.scale.type !== 'log' || r.x > 0) && (y.scale.type !== 'log' || r.y > 0));
  const description = `${title}: ${y.title} against ${x.title}${scaleNote(x, y)}; series: ${
    series.map((s) => `${s} (${rows.filter((r) => r.series === s).length} points)`).join(', ') || 'none'}.${note ? ` ${note}` : ''}`;
  const spec = {
    ...frame(title, description, rows),
    width: 460,
    height: 300,
    mark: { type: 'line', strokeWidth: 2, point: points ? { filled: true, size: 45 } : false },
    encoding: {
      x: { field: 'x', type: 'quantitative', ...axisEncoding(x, rows.map((r) => r.x)) },
      y: { field: 'y', type: 'quantitative', ...axisEncoding(y, rows.map((r) => r.y)) },
      color: colorEncoding(series),
      order: { field: 'x', type: 'quantitative' },
      // Without markers a line has one label: its series (the per-point labels would name its first point).
      description: { field: points ? 'label' : 'series', type: 'nominal' },
      tooltip: { field: points ? 'label' : 'series', type: 'nominal' },
    },
  } as TopLevelSpec;
  return { file, title, description, series, spec };
}

function frame(title: string, description: string, values: object[]) {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: title, anchor: 'start' as const, fontSize: 14 },
    description,
    background: 'white',
    padding: 8,
    data: { values },
    config: { font: 'sans-serif', axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal' as const } },
  };
}

function colorEncoding(series: string[]) {
  return {
    field: 'series', type: 'nominal', title: null, sort: series,
    scale: { domain: series, range: COLORS.slice(0, Math.max(1, series.length)) },
    legend: { orient: 'bottom', direction: 'vertical', labelLimit: 0, symbolStrokeWidth: 2 },
  };
}

function scaleNote(x: AxisInput, y: AxisInput): string {
  const logs = [x.scale.type === 'log' ? 'x' : null, y.scale.type === 'log' ? 'y' : null].filter(Boolean);
  return logs.length === 0 ? '' : ` (log scale on ${logs.join(' and ')})`;
}

/** The title, scale and axis of one positional channel: explicit ticks on log scales, unit-aware labels. */
function axisEncoding(a: AxisInput, values: number[]) {
  if (a.scale.type === 'log') {
    return {
      title: `${a.title} (log scale)`,
      scale: { type: 'log', domain: a.scale.domain, nice: false },
      axis: { ...tickAxis(a.scale.ticks ?? [], formatter(a.unit)), grid: true },
    };
  }
  const axis = linearLabels(a.unit, values);
  const ticks = axis.values as number[] | undefined;
  // Explicit ticks: the domain ends on the last one, so none falls outside.
  return { title: a.title, scale: ticks ? { domain: [Math.min(0, ...values), ticks[ticks.length - 1]] } : { zero: a.zero ?? false }, axis };
}

function formatter(unit: Unit): (v: number) => string {
  switch (unit) {
    case 'ms': return formatMs;
    case 'bytes': return formatBytes;
    case 'ratio': return (v) => `${short(v)}x`;
    case 'count': return (v) => (Number.isInteger(v) ? String(v) : short(v));
    case 'fraction': return (v) => `${short(100 * v)}%`;
    default: return short;
  }
}

/**
 * Linear axes leave the ticks to vega (nice steps) and label them in one unit fitting the largest
 * value: e.g. all in s once a value reaches 1000 ms, all in KiB once one reaches 1024 B.
 */
function linearLabels(unit: Unit, values: number[]): Record<string, unknown> {
  const max = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
  const scaled = (divisor: number, suffix: string) => ({ labelExpr: `format(datum.value / ${divisor}, '~r') + '${suffix}'` });
  switch (unit) {
    case 'ms': return max >= 1000 ? scaled(1000, ' s') : scaled(1, ' ms');
    case 'bytes': {
      // Round numbers of one binary unit: vega's decimal ticks would read 19.5313 KiB.
      const power = Math.min(4, Math.max(0, Math.floor(Math.log(Math.max(1, max)) / Math.log(1024))));
      const unit = 1024 ** power;
      const ticks = linearTicks(max, unit);
      return tickAxis(ticks, (v) => `${short(v / unit)} ${['B', 'KiB', 'MiB', 'GiB', 'TiB'][power]}`);
    }
    case 'ratio': return scaled(1, 'x');
    case 'fraction': return { format: '~%' };
    case 'count': return { format: '~r', tickMinStep: 1 };
    default: return { format: '~r' };
  }
}
