// report.json / report.md / charts from canned results (the renderer), and the README table script
// run as users run it (node scripts/readme-results.mjs), on copies of the README.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CAVEAT, ChartRenderer, writeReport, withinOneStep } from '../../../src/app/report/report';
import { canned } from './fixtures';

let dir: string;
beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ckv-report-')); });
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Draws nothing: records the charts it is given, returns a stand-in SVG naming the file. */
function recorder(): { render: ChartRenderer; drawn: string[] } {
  const drawn: string[] = [];
  return { drawn, render: async (c) => { drawn.push(c.file); return `<svg xmlns="http://www.w3.org/2000/svg"><desc>${c.file}</desc></svg>\n`; } };
}

describe('writeReport (canned results)', () => {
  test('writes report.json, report.md and one chart per kind, drawn by the renderer given', async () => {
    const data = canned();
    const { render, drawn } = recorder();
    const written = await writeReport(dir, data, render);
    expect(JSON.parse(readFileSync(written.json, 'utf8'))).toEqual(data);
    const files = ['cache-bytes-per-user.svg', 'convert-vs-scratch.svg', 'latency-vs-batch-h200.svg', 'quality-vs-compression-ml-1m.svg', 'svd-energy-ml-1m.svg'];
    expect(readdirSync(join(dir, 'charts')).sort()).toEqual(files);
    expect([...drawn].sort()).toEqual(files);
    expect(written.charts.map((c) => c.slice(dir.length + 1)).sort()).toEqual(files.map((f) => `charts/${f}`));
    expect(readFileSync(join(dir, 'charts', 'svd-energy-ml-1m.svg'), 'utf8')).toContain('<desc>svd-energy-ml-1m.svg</desc>');
  });

  test('a renderer returning malformed SVG fails before the chart is written', async () => {
    await expect(writeReport(dir, canned(), async () => '<svg><g></svg>')).rejects.toThrow(/not well-formed/);
    expect(readdirSync(join(dir, 'charts'))).toEqual([]);
  });

  test('report.md: sections, embedded charts, JSON paths, caveat, numbers from report.json, failures and targets', async () => {
    const md = readFileSync((await writeReport(dir, canned(), recorder().render)).markdown, 'utf8');
    for (const h of ['## Data sets', '## Parts', '## Next-item quality', '## Quality vs compression', '## SVD analysis', '## Converting',
      '## CTR', '## Serving', '`results.sweep.ml-1m`', '`results.quality.<data set>`']) expect(md).toContain(h);
    expect(md).toContain(CAVEAT);
    for (const f of ['quality-vs-compression-ml-1m.svg', 'latency-vs-batch-h200.svg', 'cache-bytes-per-user.svg', 'svd-energy-ml-1m.svg', 'convert-vs-scratch.svg']) {
      expect(md).toContain(`](charts/${f})`);
    }
    expect(md).toContain('| ml-1m | sasrec | collectivekv | 0.2811 | 0.1577 |');
    expect(md).toContain('| ctr:ml-1m | failed | 3 | 600 | wasm abort \\| oops |');
    expect(md).toContain('98.6% of the baseline NDCG@10 after 20.0% of its training steps (target: at least 97%: met)');
    expect(md).toContain('1 vs 2 (within one step: target met)');
    expect(md).toContain('| beauty | no | no |');
    expect(md).toContain('abcdef0123456789');
    expect(md).not.toContain('Partial report');
    expect(md).not.toMatch(/NaN|undefined/);
  });

  test('a partial report with no results says so and draws no chart (nor loads vega)', async () => {
    const data = { ...canned(), results: {} };
    data.meta.partial = true;
    const w = await writeReport(dir, data);
    expect(w.charts).toEqual([]);
    expect(readFileSync(w.markdown, 'utf8')).toContain('Partial report');
  });

  test('withinOneStep over 1, 2, 4, 8', () => {
    expect(withinOneStep(1, 2)).toBe(true);
    expect(withinOneStep(8, 4)).toBe(true);
    expect(withinOneStep(1, 4)).toBe(false);
  });
});

describe('scripts/readme-results.mjs', () => {
  const script = join(__dirname, '../../../scripts/readme-results.mjs');
  const readme = '# x\n\nbefore\n<!-- results:start -->\nold\n<!-- results:end -->\nafter\n';
  const run = (json: string, md: string) => spawnSync(process.execPath, [script, json, md], { encoding: 'utf8' });

  test('report.json: table generated between the markers, idempotent, rest of the README untouched', () => {
    const json = join(dir, 'report.json');
    writeFileSync(json, JSON.stringify(canned()));
    const md = join(dir, 'README.md');
    writeFileSync(md, readme);
    expect(run(json, md).status).toBe(0);
    const once = readFileSync(md, 'utf8');
    expect(once).not.toContain('\nold\n');
    expect(once.startsWith('# x\n\nbefore\n<!-- results:start -->\n| Measure |')).toBe(true);
    expect(once.endsWith('<!-- results:end -->\nafter\n')).toBe(true);
    expect(once).toContain('| Next-item test NDCG@10, sasrec on ml-1m (d=64, pool 1024, userDim 1) | 0.1577 (20 B/token) | 0.1603 (1024 B/token, full KV) | 98.4% of NDCG@10, 51.2x smaller cache |');
    expect(once).toContain('Scoring p50 latency, batch 64, history 200');
    expect(once).toContain('CTR test AUC, din on ml-1m');
    expect(run(json, md).status).toBe(0);
    expect(readFileSync(md, 'utf8')).toBe(once);
  });

  test('train runs: a loss other than the catalog softmax is named in the row', () => {
    const train = (loss?: string) => ({ model: 'sasrec', attention: 'mha', data: 'x/ml-1m.txt', format: 'pairs', ...(loss ? { loss } : {}),
      options: {}, test: { hr10: 0.2, ndcg10: 0.1, mrr10: 0.05, users: 10, filterHistory: false }, bytesPerToken: 1024, epochs: 3,
      steps: 30, trainSeconds: 120 });
    const md = join(dir, 'README.md');
    for (const [loss, note] of [[undefined, ''], ['softmax', ''], ['sampled', ', sampled loss']]) {
      const json = join(dir, 'train.json');
      writeFileSync(json, JSON.stringify(train(loss)));
      writeFileSync(md, readme);
      expect(run(json, md).status).toBe(0);
      expect(readFileSync(md, 'utf8')).toContain(`| Test NDCG@10, sasrec (mha) on ml-1m.txt, 3 epochs in 2.0 min${note} | 0.1000 | HR@10 0.2000 |  |`);
    }
  });

  test('bench ops JSON still supported (detected by shape), idempotent', () => {
    const ops = { bytesPerToken: { d256: { full: 2048, collectivekv: 12, ratio: 12 / 2048 }, d64: { full: 512, collectivekv: 12, ratio: 12 / 512 } },
      embeddingGradient: { oursMs: 1.5, tfjsMs: 120000, speedup: 80000 }, collectiveAttention: { fusedMs: 3, compositeMs: 9, speedup: 3 },
      trainStep: { mhaMs: 100, collectivekvMs: 130, ratio: 1.3 } };
    const json = join(dir, 'ops.json');
    writeFileSync(json, JSON.stringify(ops));
    const md = join(dir, 'README.md');
    writeFileSync(md, readme);
    expect(run(json, md).status).toBe(0);
    const once = readFileSync(md, 'utf8');
    expect(once).toContain('| Bytes per cached token, d=256, userDim 1 (fp32, uint16 index) | 12 B | 2048 B (full KV) | 0.59% |');
    expect(once).not.toContain("Attention's two products"); // an older file without the measurement
    run(json, md);
    expect(readFileSync(md, 'utf8')).toBe(once);
    const newer = { ...ops, attentionMatMul: { oursMs: 150, tfjsMs: 900, speedup: 6, maxRelativeError: 1e-7, backend: 'wasm', entries: 1024, length: 101, headDim: 64, rounds: 3 } };
    writeFileSync(json, JSON.stringify(newer));
    expect(run(json, md).status).toBe(0);
    expect(readFileSync(md, 'utf8')).toContain("| Attention's two products and their gradients (wasm; 1024 x [101 x 64] per-head matrices) | 150.0 ms (batchedMatMul) | 900.0 ms (tf.matMul) | 6.00x faster |");
    expect(readFileSync(md, 'utf8')).not.toContain('catalog softmax loss');
    const newest = { ...newer, catalogLoss: { oursMs: 500, compositeMs: 2000, speedup: 4, maxRelativeError: 1e-6, backend: 'wasm', rows: 6400, catalog: 3417, width: 64, rounds: 3 } };
    writeFileSync(json, JSON.stringify(newest));
    expect(run(json, md).status).toBe(0);
    expect(readFileSync(md, 'utf8')).toContain('| Next-item catalog softmax loss and its gradients (wasm; 6400 positions x 3417 items, d=64) | 500.0 ms (catalogCrossEntropy) | 2000.0 ms (matMul + logSumExp) | 4.00x faster |');
  });

  test('several files (bench quality, bench convert, train): one table in file order, idempotent', () => {
    const quality = { model: 'hstu', data: '/d/Beauty.txt', options: { maxLength: 50, hiddenDim: 64, collective: { poolSize: 256, userDim: 1 } },
      mha: { ndcg10: 0.04, bytesPerToken: 512, epochs: 9, steps: 900 },
      collectivekv: { ndcg10: 0.041, bytesPerToken: 20, compressionRatio: 25.6, epochs: 9, steps: 900 } };
    const convert = { convertedRatio: 0.98, fineTuneShare: 0.2, conversion: [],
      rows: [{ model: 'baseline mha', testNdcg10: 0.15 }, { model: 'converted + fine-tune', testNdcg10: 0.147 }] };
    const train = { model: 'sasrec', attention: 'mha', data: '/d/ml-1m.txt', epochs: 4, trainSeconds: 1800, test: { ndcg10: 0.1312, hr10: 0.25 } };
    const paths = ['q.json', 'c.json', 't.json'].map((f) => join(dir, f));
    [quality, convert, train].forEach((j, i) => writeFileSync(paths[i], JSON.stringify(j)));
    const md = join(dir, 'README.md');
    writeFileSync(md, readme);
    const args = [script, ...paths, md];
    expect(spawnSync(process.execPath, args, { encoding: 'utf8' }).status).toBe(0);
    const once = readFileSync(md, 'utf8');
    const q = once.indexOf('| Next-item test NDCG@10, hstu on Beauty.txt (L=50, d=64, pool 256, userDim 1; 9 vs 9 epochs, 900 vs 900 steps; q.json) | 0.0410 (20 B/token) | 0.0400 (512 B/token, full KV) | 102.5% of NDCG@10, 25.6x smaller cache |');
    const c = once.indexOf("| Converted SASRec + fine-tune (20% of the baseline's steps), test NDCG@10 (c.json) | 0.1470 | 0.1500 (trained mha) | 98.0% |");
    const t = once.indexOf('| Test NDCG@10, sasrec (mha) on ml-1m.txt, 4 epochs in 30.0 min | 0.1312 | HR@10 0.2500 |  |');
    expect([q > 0, c > q, t > c]).toEqual([true, true, true]);
    expect(spawnSync(process.execPath, args, { encoding: 'utf8' }).status).toBe(0);
    expect(readFileSync(md, 'utf8')).toBe(once);
    // A bench quality --warm-start file says how its collectivekv model was trained.
    const warm = { ...quality, collectivekv: { ...quality.collectivekv, warmStart: { fraction: 0.2, mhaSteps: 720, fineTuneSteps: 180, convertSeconds: 30 } } };
    writeFileSync(paths[0], JSON.stringify(warm));
    expect(spawnSync(process.execPath, [script, paths[0], md], { encoding: 'utf8' }).status).toBe(0);
    expect(readFileSync(md, 'utf8')).toContain('900 vs 900 steps; collectivekv by warm start: 720 mha steps, converted, 180 steps; q.json) | 0.0410');
    // A non-dense router is named.
    const nearest = { ...quality, options: { ...quality.options, collective: { ...quality.options.collective, router: 'nearest' } } };
    writeFileSync(paths[0], JSON.stringify(nearest));
    writeFileSync(md, readme);
    expect(spawnSync(process.execPath, [script, paths[0], md], { encoding: 'utf8' }).status).toBe(0);
    expect(readFileSync(md, 'utf8')).toContain('(L=50, d=64, pool 256, userDim 1, nearest router; 9 vs 9 epochs');
    const weighted = { ...quality, options: { ...quality.options, collective: { ...nearest.options.collective, quantizationWeight: 0.015625 } } };
    writeFileSync(paths[0], JSON.stringify(weighted));
    expect(spawnSync(process.execPath, [script, paths[0], md], { encoding: 'utf8' }).status).toBe(0);
    expect(readFileSync(md, 'utf8')).toContain('userDim 1, nearest router (quantizationWeight 0.015625); 9 vs 9 epochs');
  });

  test('an mha train run followed by the collectivekv run of the same model and data: one comparison row', () => {
    const run = (attention: string, ndcg: number, bytes: number) => ({ model: 'sasrec', attention, data: '/d/ml-1m.txt', epochs: 5, steps: 900,
      trainSeconds: 1800, bytesPerToken: bytes, test: { ndcg10: ndcg, hr10: 0.2 } });
    const paths = ['m.json', 'k.json'].map((f) => join(dir, f));
    writeFileSync(paths[0], JSON.stringify(run('mha', 0.1, 1024)));
    writeFileSync(paths[1], JSON.stringify({ ...run('collectivekv', 0.098, 20), total: { epochs: 9, steps: 1700, trainSeconds: 3600 } }));
    const md = join(dir, 'README.md');
    writeFileSync(md, readme);
    expect(spawnSync(process.execPath, [script, ...paths, md], { encoding: 'utf8' }).status).toBe(0);
    const out = readFileSync(md, 'utf8');
    expect(out).toContain('| Next-item test NDCG@10, sasrec on ml-1m.txt (train runs: mha 5 epochs / 900 steps in 30.0 min; collectivekv 9 epochs / 1700 steps in 60.0 min (k.json)) | 0.0980 (20 B/token) | 0.1000 (1024 B/token, full KV) | 98.0% of NDCG@10, 51.2x smaller cache |');
    expect(out.match(/\| Next-item/g)?.length).toBe(1);
  });

  test('eval files (history filtered) pair into one row; a bench ctr file gives AUC and throughput rows', () => {
    const evalRun = (attention: string, ndcg: number, bytes: number) => ({ model: 'sasrec', attention, modelDir: `/runs/${attention}-model`,
      data: '/d/ml-1m.txt', bytesPerToken: bytes, test: { ndcg10: ndcg, hr10: 0.2, filterHistory: true } });
    const ctr = { model: 'sim', data: '/d/ml-1m.txt', users: 600, settings: { attentionWidth: 256, collective: { poolSize: 1024, balanceTokens: 2048 } },
      popularity: { auc: 0.8 }, mha: { auc: 0.67, gauc: 0.69, bytesPerToken: 4096, epochs: 1, samplesPerSecond: 350 },
      collectivekv: { auc: 0.66, gauc: 0.68, bytesPerToken: 24, epochs: 1, samplesPerSecond: 110 }, comparison: { throughputRatio: 110 / 350 } };
    // A newer bench ctr file: product keys and the side-by-side step timing.
    const ctrProduct = { ...ctr, settings: { attentionWidth: 256, collective: { poolSize: 1024, router: 'product' } },
      comparison: { throughputRatio: 0.82, stepThroughputRatio: 0.62 } };
    const ctrNearest = { ...ctr, settings: { attentionWidth: 256, collective: { poolSize: 1024, router: 'nearest' } } };
    const ctrNearestProduct = { ...ctr, settings: { attentionWidth: 256, collective: { poolSize: 1024, router: 'nearest-product', quantizationWeight: 0.25 } },
      comparison: { throughputRatio: 0.9, aucDelta: -0.01, gaucDelta: -0.01, aucDeltaStandardError: 0.0042, gaucDeltaStandardError: 0.0051 } };
    const paths = ['em.json', 'ek.json', 'ctr.json', 'ctr2.json', 'ctr3.json', 'ctr4.json'].map((f) => join(dir, f));
    [evalRun('mha', 0.15, 1024), evalRun('collectivekv', 0.14, 20), ctr, ctrProduct, ctrNearest, ctrNearestProduct].forEach((j, i) => writeFileSync(paths[i], JSON.stringify(j)));
    const md = join(dir, 'README.md');
    writeFileSync(md, readme);
    expect(spawnSync(process.execPath, [script, ...paths, md], { encoding: 'utf8' }).status).toBe(0);
    const out = readFileSync(md, 'utf8');
    expect(out).toContain('| Next-item test NDCG@10, sasrec on ml-1m.txt (saved models mha-model, collectivekv-model, history items filtered from the ranking) | 0.1400 (20 B/token) | 0.1500 (1024 B/token, full KV) | 93.3% of NDCG@10, 51.2x smaller cache |');
    expect(out).toContain('| CTR test AUC / gAUC, sim on ml-1m.txt, 600 users, 1 epoch(s), pool 1024, width 256, balanceTokens 2048 | 0.6600 / 0.6800 (24 B/token) | 0.6700 / 0.6900 (4096 B/token); popularity 0.8000 | -0.0100 AUC |');
    expect(out).toContain('| CTR training throughput, sim on ml-1m.txt, 600 users, 1 epoch(s), pool 1024, width 256, balanceTokens 2048 | 110 samples/s | 350 samples/s | 0.31x |');
    expect(out).toContain('| CTR training throughput, sim on ml-1m.txt, 600 users, 1 epoch(s), pool 1024, width 256, product-key router | 110 samples/s | 350 samples/s | 0.82x (steps timed side by side: 0.62x) |');
    expect(out).toContain('| CTR test AUC / gAUC, sim on ml-1m.txt, 600 users, 1 epoch(s), pool 1024, width 256, nearest-row router, quantizationWeight 1 | 0.6600 / 0.6800'); // files without it ran at the then default
    expect(out).toContain('| CTR test AUC / gAUC, sim on ml-1m.txt, 600 users, 1 epoch(s), pool 1024, width 256, nearest-row router over a product-quantized pool, quantizationWeight 0.25 | 0.6600 / 0.6800');
    // History windows other than the defaults are named (HSTU-CTR reads only the short one).
    const windows = [{ ...ctr, settings: { ...ctr.settings, longLength: 200, shortLength: 50 } },
      { ...ctr, model: 'hstu-ctr', settings: { ...ctr.settings, longLength: 200, shortLength: 20 } },
      // A learning rate other than the default, and collectivekv by warm start.
      { ...ctr, settings: { ...ctr.settings, learningRate: 0.003 }, collectivekv: { ...ctr.collectivekv,
        warmStart: { forkStep: 1510, budgetSteps: 1888, fineTuneSteps: 378, fineTuneRate: 1 } } }];
    const windowPaths = windows.map((j, i) => { const p = join(dir, `w${i}.json`); writeFileSync(p, JSON.stringify(j)); return p; });
    writeFileSync(md, readme);
    expect(spawnSync(process.execPath, [script, ...windowPaths, md], { encoding: 'utf8' }).status).toBe(0);
    const windowed = readFileSync(md, 'utf8');
    expect(windowed).toContain('| CTR test AUC / gAUC, sim on ml-1m.txt, 600 users, 1 epoch(s), pool 1024, width 256, long history 200, balanceTokens 2048 |');
    expect(windowed).toContain('| CTR test AUC / gAUC, hstu-ctr on ml-1m.txt, 600 users, 1 epoch(s), pool 1024, width 256, short history 20, balanceTokens 2048 |');
    expect(windowed).toContain('| CTR test AUC / gAUC, sim on ml-1m.txt, 600 users, 1 epoch(s), pool 1024, width 256, balanceTokens 2048, lr 0.003; '
      + 'collectivekv by warm start: the mha run to step 1510 of 1888, converted, 378 steps at 1 of the learning rate |');
    // Newer files record the paired standard errors of the differences.
    expect(out).toContain('quantizationWeight 0.25 | 0.6600 / 0.6800 (24 B/token) | 0.6700 / 0.6900 (4096 B/token); popularity 0.8000 | -0.0100 +- 0.0042 AUC, -0.0100 +- 0.0051 gAUC |');
  });

  test('unknown JSON shape or missing markers: exit 1, README unchanged', () => {
    const json = join(dir, 'x.json');
    writeFileSync(json, '{"a":1}');
    const md = join(dir, 'README.md');
    writeFileSync(md, readme);
    const r = run(json, md);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/neither a bench-all report.json nor a bench ops, bench quality, bench convert, bench ctr, train or eval JSON/);
    expect(readFileSync(md, 'utf8')).toBe(readme);
    writeFileSync(json, JSON.stringify(canned()));
    writeFileSync(md, 'no markers\n');
    expect(run(json, md).status).toBe(1);
    expect(readFileSync(md, 'utf8')).toBe('no markers\n');
    expect(() => execFileSync(process.execPath, [script], { stdio: 'pipe' })).toThrow();
  });
});
