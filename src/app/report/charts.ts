// The report's charts, built from report.json's results only (so each chart is reproducible from
// the JSON): quality vs compression, latency vs batch size, SVD energy curves, converted vs scratch.
import { dotChart, lineChart, Series } from './svg';
import type { EnergyLayer, ReportResults, SweepResult } from './types';

export interface Chart {
  /** File name under charts/. */
  file: string;
  title: string;
  svg: string;
  /** The series labels drawn (tests check each is present). */
  series: string[];
}

export function buildCharts(results: ReportResults): Chart[] {
  return [
    ...Object.entries(results.sweep ?? {}).map(([dataset, sweep]) => qualityChart(dataset, sweep)),
    ...latencyCharts(results),
    ...Object.entries(results.analysis ?? {}).map(([dataset, a]) => energyChart(dataset, a.model, a.layers)),
    ...convertChart(results),
  ];
}

function chart(file: string, title: string, series: string[], svg: string): Chart {
  return { file, title, svg, series };
}

/** NDCG@10 against compression ratio (log x): the userDim sweep, the pool-size sweep and the baseline. */
export function qualityChart(dataset: string, sweep: SweepResult): Chart {
  const pool = Number(sweep.settings.poolSize);
  const byUserDim = sweep.points.filter((p) => p.poolSize === pool);
  const byPool = sweep.points.filter((p) => p.userDim === 1);
  const series: Series[] = [
    { label: `userDim ${byUserDim.map((p) => p.userDim).join('/')} (pool ${pool})`, points: byUserDim.map((p) => ({ x: p.compressionRatio, y: p.ndcg10, label: `userDim ${p.userDim}, pool ${p.poolSize}: ${p.compressionRatio.toFixed(1)}x, NDCG@10 ${p.ndcg10.toFixed(4)}` })) },
    { label: 'pool size sweep (userDim 1)', points: byPool.map((p) => ({ x: p.compressionRatio, y: p.ndcg10, label: `pool ${p.poolSize}, userDim 1: ${p.compressionRatio.toFixed(1)}x, NDCG@10 ${p.ndcg10.toFixed(4)}` })) },
    { label: 'full KV (mha)', points: [{ x: 1, y: sweep.baseline.ndcg10, label: `mha: 1x, NDCG@10 ${sweep.baseline.ndcg10.toFixed(4)}` }] },
  ];
  const title = `${dataset}: ${sweep.model} test NDCG@10 vs cache compression`;
  return chart(`quality-vs-compression-${slug(dataset)}.svg`, title, series.map((s) => s.label),
    lineChart({ title, xLabel: 'compression ratio vs full KV (x, log scale)', yLabel: 'test NDCG@10', logX: true, yFromZero: true, series }));
}

/** p50 latency against batch size, one series per cache mode, one chart per history length (memory store). */
export function latencyCharts(results: ReportResults): Chart[] {
  const rows = (results.serve?.results ?? []).filter((r) => r.store === 'memory');
  const histories = [...new Set(rows.map((r) => r.historyLength))].sort((a, b) => a - b);
  return histories.map((h) => {
    const modes = ['collectivekv', 'full', 'recompute'] as const;
    const series: Series[] = modes.map((mode) => ({
      label: mode,
      points: rows.filter((r) => r.historyLength === h && r.mode === mode)
        .map((r) => ({ x: r.batchSize, y: r.p50Ms, label: `${mode}, batch ${r.batchSize}: p50 ${r.p50Ms.toFixed(2)} ms${r.extrapolatedFromBatch ? ` (scaled from batch ${r.extrapolatedFromBatch})` : ''}` })),
    }));
    const title = `Scoring latency vs batch size, history ${h} (in-memory store)`;
    return chart(`latency-vs-batch-h${h}.svg`, title, series.map((s) => s.label),
      lineChart({ title, xLabel: 'batch size (users per request, log scale)', yLabel: 'p50 latency (ms)', logX: true, yFromZero: true, series }));
  });
}

/** Cumulative energy against rank, for K and V of every attention layer. */
export function energyChart(dataset: string, model: string, layers: EnergyLayer[]): Chart {
  const series: Series[] = layers.flatMap((l) => [
    { label: `${l.layer} K`, points: l.keys.cumulativeEnergy.map((e, i) => ({ x: i + 1, y: e })) },
    { label: `${l.layer} V`, points: l.values.cumulativeEnergy.map((e, i) => ({ x: i + 1, y: e })) },
  ]);
  const title = `${dataset}: SVD energy of the trained ${model}'s K/V`;
  return chart(`svd-energy-${slug(dataset)}.svg`, title, series.map((s) => s.label),
    lineChart({ title, xLabel: 'rank r (top singular components)', yLabel: 'cumulative energy', yFromZero: true, series }));
}

/** NDCG@10 of baseline, converted (before/after fine-tune) and from-scratch CollectiveKV, per data set. */
export function convertChart(results: ReportResults): Chart[] {
  const entries = Object.entries(results.convert ?? {});
  if (entries.length === 0) return [];
  const labels = ['baseline mha', 'converted (no fine-tune)', 'converted + fine-tune', 'collectivekv from scratch'] as const;
  const series = labels.map((label) => ({
    label, values: entries.map(([, r]) => r.rows.find((row) => row.model === label)?.testNdcg10 ?? null),
  }));
  const title = 'Converted vs trained-from-scratch SASRec: test NDCG@10';
  return [chart('convert-vs-scratch.svg', title, [...labels],
    dotChart({ title, categories: entries.map(([d]) => d), xLabel: 'test NDCG@10', series }))];
}

export function slug(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}
