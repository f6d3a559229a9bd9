// `bench all` end to end on the cheapest parts (--quick, synthetic only): progress lines, the partial
// report after each part, the final report and its charts; failures recorded, not fatal.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { bestUserDim, pairedNdcgGap, runBenchAllCommand, runPart } from '../../../src/app/bench/all';
import type { ReportData } from '../../../src/app/report/report';
import type { Chart } from '../../../src/app/report/charts';
import { checkWellFormed } from '../../../src/app/report/xml';

// vega cannot load inside jest (ESM with top-level await): a stand-in draws each chart as its series
// labels. test/app/report/render.test.ts draws real ones.
jest.mock('../../../src/app/report/render', () => {
  const actual = jest.requireActual('../../../src/app/report/render');
  const { escapeXml } = jest.requireActual('../../../src/app/report/xml');
  return { ...actual, loadChartRenderer: async () => async (chart: Chart) =>
    `<svg xmlns="http://www.w3.org/2000/svg">${chart.series.map((s) => `<g data-label="${escapeXml(s)}"/>`).join('')}</svg>` };
});

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ckv-all-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

test('bench all --quick on synthetic: progress, partial report after part 1, final report.json/md and parseable charts', async () => {
  const out = join(dir, 'out');
  const lines: string[] = [];
  let partialAfterFirst: ReportData | null = null;
  await tf.setBackend('wasm');
  const tensorsBefore = tf.memory().numTensors;
  const code = await runBenchAllCommand(['--quick', '--data-dir', join(dir, 'none'), '--out', out, '--only', 'quality,sweep,convert'], (line) => {
    lines.push(line);
    if (line.startsWith('[2/3] sweep:synthetic: start')) partialAfterFirst = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportData;
  });
  expect(code).toBe(0);
  // The sweep's baseline went to the convert part, which disposed it.
  expect(tf.memory().numTensors).toBe(tensorsBefore);
  expect(lines.some((l) => /^\[1\/3\] quality:synthetic: start, budget \d+:\d\d \(elapsed \d+:\d\d, ETA \d+:\d\d\)$/.test(l))).toBe(true);
  expect(lines.some((l) => /^\[2\/3\] sweep:synthetic: ok in \d+ s \(elapsed/.test(l))).toBe(true);
  expect(lines.some((l) => l.startsWith('  [sweep:synthetic] collectivekv userDim 2 pool 32 (converted)'))).toBe(true);
  expect(lines).toContain('  [convert:synthetic] baseline mha (given)');

  const partial = partialAfterFirst as ReportData | null;
  expect(partial?.meta.partial).toBe(true);
  expect(partial?.parts.map((p) => p.name)).toEqual(['quality:synthetic']);
  expect(partial?.results.quality?.synthetic.mha.ndcg10).toBeGreaterThanOrEqual(0);

  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportData;
  expect(report.meta.partial).toBe(false);
  expect(report.meta.quick).toBe(true);
  expect(report.meta.machine.cores).toBeGreaterThan(0);
  expect(report.parts.map((p) => [p.name, p.status])).toEqual([['quality:synthetic', 'ok'], ['sweep:synthetic', 'ok'], ['convert:synthetic', 'ok']]);
  expect(report.datasets.map((d) => [d.name, d.found, d.used])).toEqual([['beauty', false, false], ['ml-1m', false, false], ['synthetic', true, true]]);
  const sweep = report.results.sweep?.synthetic;
  expect(sweep?.points.map((p) => [p.userDim, p.poolSize])).toEqual([[1, 32], [2, 32], [1, 16]]);
  expect(sweep?.points[0].compressionRatio).toBeGreaterThan(1);
  // Points are conversions of the trained baseline (no training of their own), all tested on the same users.
  expect(sweep?.baseline.epochs).toBeGreaterThan(0);
  expect(sweep?.points.every((p) => p.epochs === 0)).toBe(true);
  // Both readings of the best userDim are recorded; the noise-aware one is never larger.
  expect([1, 2]).toContain(sweep?.bestUserDimByTolerance);
  expect(sweep!.bestUserDim!).toBeLessThanOrEqual(sweep!.bestUserDimByTolerance!);
  expect(Object.keys(sweep?.gapsToTop ?? {}).sort()).toEqual(['1', '2']);
  expect(Object.values(sweep!.gapsToTop!).some((g) => g.mean === 0 && g.stdErr === 0)).toBe(true); // the top point's gap to itself
  expect(report.results.convert?.synthetic.rows[0]).toMatchObject({ model: 'baseline mha', testNdcg10: sweep?.baseline.ndcg10 });
  expect(report.results.analysis?.synthetic.layers.length).toBe(2);

  for (const [file, labels] of [['quality-vs-compression-synthetic.svg', ['userDim 1/2 (pool 32)', 'full KV (mha)']],
    ['svd-energy-synthetic.svg', ['block0_attention K', 'block1_attention V']]] as const) {
    const svg = readFileSync(join(out, 'charts', file), 'utf8');
    expect(checkWellFormed(svg).counts.g).toBeGreaterThanOrEqual(labels.length);
    for (const l of labels) expect(svg).toContain(`data-label="${l}"`);
  }
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  expect(md).toContain('](charts/svd-energy-synthetic.svg)');
  expect(md).toContain('--quick: tiny sizes');
});

test('bestUserDim: the smallest userDim within 97% of the best NDCG@10', () => {
  expect(bestUserDim([])).toBeNull();
  expect(bestUserDim([{ userDim: 1, ndcg10: 0.10 }, { userDim: 2, ndcg10: 0.12 }, { userDim: 4, ndcg10: 0.125 }, { userDim: 8, ndcg10: 0.124 }])).toBe(4);
  expect(bestUserDim([{ userDim: 1, ndcg10: 0.0975 }, { userDim: 2, ndcg10: 0.0990 }, { userDim: 8, ndcg10: 0.1 }])).toBe(1);
  expect(bestUserDim([{ userDim: 1, ndcg10: 0.0969 }, { userDim: 2, ndcg10: 0.0990 }, { userDim: 8, ndcg10: 0.1 }])).toBe(2);
});

test('pairedNdcgGap: mean and standard error of the per-case NDCG@10 difference', () => {
  // Gains: rank 1 -> 1, rank 3 -> 0.5, rank 11 -> 0. Differences a - b: 1, 0.5, 0, -0.5.
  const gap = pairedNdcgGap([1, 3, 1, 11], [11, 11, 1, 3]);
  expect(gap.mean).toBeCloseTo(0.25, 12);
  const sd = Math.sqrt(((0.75 ** 2) + (0.25 ** 2) + (0.25 ** 2) + (0.75 ** 2)) / 3);
  expect(gap.stdErr).toBeCloseTo(sd / 2, 12);
  expect(() => pairedNdcgGap([1, 2], [1])).toThrow(/pairedNdcgGap/);
});

test('bestUserDim with ranks: a point below 97% but within 2 paired standard errors of the top counts as tied', () => {
  // 100 cases: userDim 4 (top) hits rank 1 on cases 0..9; userDim 1 on cases 0..8 plus a rank 3 on case 9.
  const top = Int32Array.from({ length: 100 }, (_, i) => (i < 10 ? 1 : 50));
  const near = Int32Array.from(top, (r, i) => (i === 9 ? 3 : r));
  const far = Int32Array.from({ length: 100 }, (_, i) => (i < 2 ? 1 : 50));
  const points = [{ userDim: 1, ndcg10: 0.095 }, { userDim: 2, ndcg10: 0.02 }, { userDim: 4, ndcg10: 0.1 }];
  expect(bestUserDim(points)).toBe(4); // 0.095 < 0.097: by the 97% rule alone userDim 1 is out
  expect(bestUserDim(points, new Map([[4, top], [1, near], [2, far]]))).toBe(1);
  // Without userDim 1's ranks the rule cannot tell, and falls back to the 97% rule.
  expect(bestUserDim(points, new Map([[4, top], [2, far]]))).toBe(4);
});

test('a failing part is recorded with its error and the next one still runs', async () => {
  const failed = await runPart({ name: 'ctr:x', kind: 'ctr', dataset: 'x', weight: 1, run: async () => { throw new Error('boom'); } }, 10, () => undefined);
  expect(failed).toMatchObject({ name: 'ctr:x', status: 'failed', budgetSeconds: 10 });
  expect(failed.error?.split('\n')[0]).toBe('boom');
  const ok = await runPart({ name: 'ops', kind: 'ops', dataset: null, weight: 1, run: async () => 'a note' }, 10, () => undefined);
  expect(ok).toMatchObject({ status: 'ok', note: 'a note' });
  expect(ok.error).toBeUndefined();
});

test('an unreadable data set is recorded and skipped; bad arguments exit 2', async () => {
  mkdirSync(join(dir, 'data', 'ml-1m'), { recursive: true });
  writeFileSync(join(dir, 'data', 'ml-1m', 'ml-1m.txt'), 'this is not\tan interaction file at all\n1\n');
  const out = join(dir, 'out');
  const code = await runBenchAllCommand(['--data-dir', join(dir, 'data'), '--out', out, '--only', 'nothing'], () => undefined);
  expect(code).toBe(0);
  const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as ReportData;
  const ml = report.datasets.find((d) => d.name === 'ml-1m');
  expect(ml).toMatchObject({ found: true, used: false });
  expect(ml?.note).toMatch(/^unreadable: /);
  expect(report.parts).toEqual([]);
  const err = jest.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    expect(await runBenchAllCommand(['--max-minutes', '-1'], () => undefined)).toBe(2);
    expect(await runBenchAllCommand(['--backend', 'gpu'], () => undefined)).toBe(2);
  } finally {
    err.mockRestore();
  }
  expect(existsSync(join(out, 'report.md'))).toBe(true);
});
