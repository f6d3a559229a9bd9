// Canned bench-all results for the report's tests: every section and chart has data.
import { ReportData, collectMeta } from '../../../src/app/report/report';
import type { BenchConvertRow } from '../../../src/app/bench/convert';

export function canned(): ReportData {
  const energy = (n: number) => Array.from({ length: n }, (_, i) => Math.min(1, (i + 1) / (n - 2)));
  const row = (model: BenchConvertRow['model'], ndcg: number) => ({ model, epochs: 4, steps: 100, testNdcg10: ndcg, testHr10: 2 * ndcg, seconds: 12 });
  const point = (userDim: number, poolSize: number, bytes: number, ndcg: number) =>
    ({ userDim, poolSize, bytesPerToken: bytes, compressionRatio: 1024 / bytes, hr10: 2 * ndcg, ndcg10: ndcg, epochs: 5, trainSeconds: 30 });
  const serveRow = (mode: 'collectivekv' | 'full' | 'recompute', batchSize: number, p50Ms: number) =>
    ({ mode, store: 'memory' as const, historyLength: 200, batchSize, p50Ms, p99Ms: 2 * p50Ms, bytesPerUser: mode === 'full' ? 204800 : 2400,
      bytesPerRequest: 0, bytesFor10kUsers: 0, samples: 5 });
  return {
    meta: { ...collectMeta({ backend: 'wasm', command: 'collectivekv bench all', quick: false, maxMinutes: 110 }), date: '2026-01-02T03:04:05.000Z',
      gitCommit: 'abcdef0123456789', totalSeconds: 4000, partial: false },
    datasets: [{ name: 'ml-1m', path: '/d/ml-1m/ml-1m.txt', format: 'pairs', found: true, used: true, users: 6040, items: 3416 },
      { name: 'beauty', path: null, format: 'lines', found: false, used: false, note: 'not found' }],
    parts: [{ name: 'sweep:ml-1m', dataset: 'ml-1m', status: 'ok', seconds: 1000, budgetSeconds: 1200 },
      { name: 'ctr:ml-1m', dataset: 'ml-1m', status: 'failed', seconds: 3, budgetSeconds: 600, error: 'wasm abort | oops\n at x' }],
    settings: {},
    results: {
      quality: { 'ml-1m': { model: 'sasrec', options: { hiddenDim: 64, collective: { poolSize: 1024, userDim: 1 } },
        mha: { hr10: 0.2853, ndcg10: 0.1603, mrr10: 0.12, bytesPerToken: 1024, compressionRatio: 1, epochs: 20, trainSeconds: 600 },
        collectivekv: { hr10: 0.2811, ndcg10: 0.1577, mrr10: 0.11, bytesPerToken: 20, compressionRatio: 51.2, epochs: 20, trainSeconds: 700 },
        ndcg10Ratio: 0.1577 / 0.1603 } },
      sweep: { 'ml-1m': { model: 'sasrec', settings: { poolSize: 1024, hiddenDim: 64 }, baseline: point(0, 0, 1024, 0.16), bestUserDim: 2,
        points: [point(1, 1024, 20, 0.150), point(2, 1024, 36, 0.158), point(4, 1024, 68, 0.157), point(8, 1024, 132, 0.159),
          point(1, 64, 12, 0.120), point(1, 4096, 20, 0.152)] } },
      analysis: { 'ml-1m': { model: 'sasrec (mha)', users: 512, tokens: 20000, layers: [
        { layer: 'block0_attention', keys: { cumulativeEnergy: energy(8), rank90: 5, rank95: 6, rank99: 6 },
          values: { cumulativeEnergy: energy(8), rank90: 5, rank95: 6, rank99: 6 }, suggestedUserDim: 1, reasoning: 'r' }] } },
      convert: { 'ml-1m': { conversion: [], convertedRatio: 0.158 / 0.1603, fineTuneShare: 0.2, rows: [row('baseline mha', 0.1603), row('converted (no fine-tune)', 0.09),
        row('converted + fine-tune', 0.158), row('collectivekv from scratch', 0.1577)] } },
      ctr: { 'ml-1m': { model: 'din', data: 'ml-1m', settings: { longLength: 1000, shortLength: 50 },
        mha: { auc: 0.8, gauc: 0.7, logloss: 0.4, bytesPerToken: 2048, trainSeconds: 100 },
        collectivekv: { auc: 0.79, gauc: 0.69, logloss: 0.41, bytesPerToken: 12, trainSeconds: 110 } } },
      serve: { results: [serveRow('collectivekv', 1, 1.5), serveRow('full', 1, 2.5), serveRow('recompute', 1, 9),
        serveRow('collectivekv', 64, 10), serveRow('full', 64, 30), serveRow('recompute', 64, 400)],
        load: { clients: 8, seconds: 20, requests: 1000, failed: 0, failedDuringRestart: 3, p99Ms: 12, p50Ms: 4, restartP99Ms: 30, restartSeconds: 0.4, requestsPerSecond: 50, eventsAcknowledged: 10, eventsStored: 10, eventsLost: 0, usersInconsistent: 0, statuses: { 200: 1000 }, errors: [], exact: true, store: 'memory' },
        model: { hiddenDim: 64, numBlocks: 2, numHeads: 1, poolSize: 1024, userDim: 1, maxLength: 200, numItems: 2000, bytesPerToken: { collectivekv: 20, full: 1024, lane: 0 } },
        backend: 'wasm', notes: ['redis skipped'] },
    },
  };
}
