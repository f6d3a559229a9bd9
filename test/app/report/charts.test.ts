// The report's Vega-Lite chart specs (no vega needed): log scales where the data span orders of
// magnitude, human units on the axes, the series, and the text alternatives.
import { Chart, buildCharts, cacheBytesChart, convertChart, latencyCharts, qualityChart } from '../../../src/app/report/charts';
import type { ReportResults } from '../../../src/app/report/types';
import { canned } from './fixtures';

interface Channel { title: string; scale: { type?: string; domain?: number[]; zero?: boolean }; axis?: { values?: number[]; labelExpr?: string; format?: string } }
interface Spec { encoding: Record<'x' | 'y', Channel> & { color: { scale: { domain: string[] } } }; data: { values: { series: string; label: string }[] }; description: string }

const spec = (c: Chart) => c.spec as unknown as Spec;
/** The tick labels of an axis with explicit ticks (the lookup table of its labelExpr). */
const labels = (ch: Channel) => JSON.parse(/^(\[.*?\])\[indexof/.exec(ch.axis?.labelExpr ?? '')?.[1] ?? 'null') as string[] | null;

type ServeRow = NonNullable<ReportResults['serve']>['results'][number];
const serve = (rows: [ServeRow['mode'], number, number, number?][]): ReportResults => {
  const base = canned().results.serve!;
  return { serve: { ...base, results: rows.map(([mode, batchSize, p50Ms, bytes]) => ({ ...base.results[0], mode, batchSize, p50Ms, p99Ms: 2 * p50Ms, bytesPerUser: bytes ?? base.results[0].bytesPerUser })) } };
};

describe('latency charts', () => {
  test('latencies spanning 3 orders: log y with ticks in ms and s, log x at powers of 2; the old chart\'s flat lines are gone', () => {
    const [chart] = latencyCharts(serve([['collectivekv', 1, 5.9], ['collectivekv', 512, 348], ['full', 1, 9.5], ['full', 512, 3658],
      ['recompute', 1, 306], ['recompute', 512, 120682]]));
    const { x, y } = spec(chart).encoding;
    expect(y.scale.type).toBe('log');
    expect(y.axis?.values).toEqual([10, 100, 1000, 10000, 100000]);
    expect(labels(y)).toEqual(['10 ms', '100 ms', '1 s', '10 s', '100 s']);
    expect(y.title).toBe('p50 latency (log scale)');
    expect(x.scale.type).toBe('log');
    expect(labels(x)).toEqual(['1', '2', '4', '8', '16', '32', '64', '128', '256', '512']);
    expect(chart.series).toEqual(['collectivekv', 'full', 'recompute']);
    expect(spec(chart).data.values.find((r) => r.series === 'recompute' && r.label.includes('512'))?.label).toBe('recompute, batch 512: p50 121 s');
  });

  test('latencies within 2 orders: linear y from 0, labelled in ms, or in s once a value reaches 1000 ms', () => {
    const [ms] = latencyCharts(serve([['collectivekv', 1, 1.5], ['collectivekv', 64, 10], ['full', 1, 2.5], ['full', 64, 30]]));
    expect(spec(ms).encoding.y.scale).toEqual({ zero: true });
    expect(spec(ms).encoding.y.axis?.labelExpr).toBe("format(datum.value / 1, '~r') + ' ms'");
    const [s] = latencyCharts(serve([['full', 1, 900], ['full', 64, 9000]]));
    expect(spec(s).encoding.y.axis?.labelExpr).toBe("format(datum.value / 1000, '~r') + ' s'");
  });
});

test('cache bytes per user: log y in KiB/MiB across 3 orders, one point per mode and history', () => {
  const [chart] = cacheBytesChart(serve([['collectivekv', 1, 1, 5512], ['full', 1, 1, 1027112], ['recompute', 1, 1, 800], ['full', 64, 1, 1027112]]));
  const { y } = spec(chart).encoding;
  expect(y.scale.type).toBe('log');
  expect(labels(y)).toEqual(['1 KiB', '10 KiB', '100 KiB', '1 MiB']);
  expect(spec(chart).data.values.map((r) => r.label)).toEqual(['collectivekv, history 200: 5.38 KiB per user', 'full, history 200: 0.98 MiB per user',
    'recompute, history 200: 800 B per user']);
  expect(cacheBytesChart({})).toEqual([]);
});

test('quality vs compression: log x labelled as ratios, linear NDCG@10 from 0, the three series and the baseline at 1x', () => {
  const sweep = canned().results.sweep!['ml-1m'];
  const chart = qualityChart('ml-1m', sweep);
  const { x, y } = spec(chart).encoding;
  expect(x.scale.type).toBe('log');
  expect(labels(x)).toEqual(['1x', '2x', '4x', '8x', '16x', '32x', '64x']);
  expect(y.scale).toEqual({ zero: true });
  expect(chart.series).toEqual(['userDim 1/2/4/8 (pool 1024)', 'pool size sweep (userDim 1)', 'full KV (mha)']);
  expect(spec(chart).data.values.filter((r) => r.series === 'full KV (mha)').map((r) => r.label)).toEqual(['mha: 1x (1 KiB/token), NDCG@10 0.1600']);
  // A sweep whose points sit within one order of magnitude of the baseline stays linear.
  const narrow = qualityChart('x', { ...sweep, points: sweep.points.map((p) => ({ ...p, compressionRatio: 2 })) });
  expect(spec(narrow).encoding.x.scale.type).toBeUndefined();
});

test('convert chart: one marker per measured value, missing ones left out and named n/a in the description', () => {
  const results = canned().results;
  const rows = results.convert!['ml-1m'].rows.filter((r) => r.model !== 'converted (no fine-tune)');
  const [chart] = convertChart({ convert: { 'ml-1m': { ...results.convert!['ml-1m'], rows } } });
  expect(spec(chart).data.values).toHaveLength(3);
  expect(chart.description).toContain('converted (no fine-tune): ml-1m n/a');
  expect(chart.description).toContain('baseline mha: ml-1m 0.1603');
});

test('every chart of a full report: a description naming its axes, scales and series; no label in exponent notation', () => {
  const charts = buildCharts(canned().results);
  expect(charts.map((c) => c.file)).toEqual(['quality-vs-compression-ml-1m.svg', 'latency-vs-batch-h200.svg', 'cache-bytes-per-user.svg',
    'svd-energy-ml-1m.svg', 'convert-vs-scratch.svg']);
  for (const c of charts) {
    expect(spec(c).description).toBe(c.description);
    expect(c.description.startsWith(c.title)).toBe(true);
    for (const s of c.series) expect(c.description).toContain(s);
    expect(spec(c).encoding.color.scale.domain).toEqual(c.series);
    for (const ch of [spec(c).encoding.x, spec(c).encoding.y]) for (const l of labels(ch) ?? []) expect(l).not.toMatch(/e[+-]?\d/);
  }
  expect(charts[1].description).toBe('Scoring latency vs batch size, history 200 (in-memory store): p50 latency against batch size (users per request) '
    + '(log scale on x and y); series: collectivekv (2 points), full (2 points), recompute (2 points).');
  expect(charts[3].description).toContain('Ranks for 90/95/99% of the energy: block0_attention K 5/6/6, block0_attention V 5/6/6.');
});
