// Scores from fp16 and int8 caches against scores from an fp32 cache, on a small trained SASRec:
//   npx tsx scripts/cache-format-error.ts [--dim 64] [--epochs 3] [--users 200] [--backend wasm|cpu] [--json FILE]
// Trains the zoo's SASRec (CollectiveKV, pool 256, userDim 1, and its full-KV 'mha' twin) on the
// synthetic data of the serve demo, caches every user's history once per format through
// CacheEngine (even users written whole, odd users grown by three appends), scores every item for
// every user from each cache, and reports per format: the relative error max |s - s32| / max |s32|
// over all scores, its mean, and the share of users whose top-10 items equal those of fp32.
// docs/cache.md quotes the figures.
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { CacheEngine, MemoryStore, generateSynthetic, leaveOneOut, useFastEmbeddingGradients, type CacheDtype } from '../src/internal';
import { buildSasrec } from '../src/zoo/sequential/sasrec';
import { SasrecRecommender } from '../src/zoo/sequential/sasrecRecommender';
import { fitSasrec } from '../src/zoo/sequential/sasrecTraining';

const { values } = parseArgs({
  options: { dim: { type: 'string' }, epochs: { type: 'string' }, users: { type: 'string' }, backend: { type: 'string' }, json: { type: 'string' } },
  strict: true,
});
const positive = (flag: string, raw: string | undefined, fallback: number): number => {
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) throw new Error(`--${flag} must be a positive integer, received ${JSON.stringify(raw)}`);
  return Number(raw);
};
const dim = positive('dim', values.dim, 64);
const epochs = positive('epochs', values.epochs, 3);
const scoredUsers = positive('users', values.users, 200);
const backend = values.backend ?? 'wasm';
if (backend !== 'wasm' && backend !== 'cpu') throw new Error(`--backend must be wasm or cpu, received ${JSON.stringify(backend)}`);

const FORMATS: CacheDtype[] = ['fp32', 'fp16', 'int8'];

interface FormatError {
  maxRelative: number;
  meanRelative: number;
  top10Agreement: number;
}

function top10(scores: Float32Array, row: number, cols: number): string {
  const idx = Array.from({ length: cols }, (_, i) => i);
  idx.sort((a, b) => scores[row * cols + b] - scores[row * cols + a]);
  return idx.slice(0, 10).sort((a, b) => a - b).join(',');
}

function compare(s: Float32Array, ref: Float32Array, rows: number, cols: number): FormatError {
  let scale = 0;
  let maxDiff = 0;
  let sumDiff = 0;
  for (let i = 0; i < ref.length; i++) {
    scale = Math.max(scale, Math.abs(ref[i]));
    maxDiff = Math.max(maxDiff, Math.abs(s[i] - ref[i]));
    sumDiff += Math.abs(s[i] - ref[i]);
  }
  let same = 0;
  for (let r = 0; r < rows; r++) if (top10(s, r, cols) === top10(ref, r, cols)) same++;
  return { maxRelative: maxDiff / scale, meanRelative: sumDiff / ref.length / scale, top10Agreement: same / rows };
}

async function main(): Promise<void> {
  if (!(await tf.setBackend(backend))) throw new Error(`backend ${backend} failed to initialize`);
  await tf.ready();
  useFastEmbeddingGradients();
  const numItems = 200;
  const data = generateSynthetic({ numUsers: 400, numItems, minLength: 8, maxLength: 30, seed: 2026 });
  const histories = data.sequences.slice(0, scoredUsers);
  const candidates = Array.from({ length: numItems }, (_, i) => i + 1);
  const out: Record<string, unknown> = { dim, epochs, users: histories.length, numItems, backend, formats: {} };
  for (const attention of ['collectivekv', 'mha'] as const) {
    const sasrec = buildSasrec({ numItems, maxLength: 50, hiddenDim: dim, numBlocks: 2, numHeads: 2, dropout: 0.1, attention,
      collective: { poolSize: 256, userDim: 1 }, seed: 1 });
    const started = performance.now();
    const fit = fitSasrec(sasrec, leaveOneOut(data), { maxEpochs: epochs, batchSize: 64, patience: epochs });
    console.log(`${attention}: trained ${fit.epochs} epochs in ${((performance.now() - started) / 1000).toFixed(0)} s, validation NDCG@10 ${fit.bestValidationNdcg10.toFixed(3)}`);
    const rec = new SasrecRecommender(sasrec);
    const scores: Partial<Record<CacheDtype, Float32Array>> = {};
    const bytesPerToken: Partial<Record<CacheDtype, number>> = {};
    for (const dtype of FORMATS) {
      const engine = new CacheEngine(rec, new MemoryStore({ maxBytes: 2 ** 30 }), { dtype, maxBatch: histories.length });
      bytesPerToken[dtype] = rec.attentionBytesIn(dtype);
      for (let u = 0; u < histories.length; u++) {
        const h = histories[u];
        if (u % 2 === 0 || h.length < 8) {
          await engine.prefill(`u${u}`, h);
        } else {
          await engine.prefill(`u${u}`, h.slice(0, h.length - 6));
          for (const n of [1, 2, 3]) await engine.append(`u${u}`, h.slice(h.length - 6 + (n * (n - 1)) / 2, h.length - 6 + (n * (n + 1)) / 2));
        }
      }
      const result = await engine.score(histories.map((_, u) => `u${u}`), candidates);
      if (result.sources.some((s) => s !== 'cache')) throw new Error('a score was not served from the cache');
      scores[dtype] = result.scores;
    }
    const ref = scores.fp32!;
    const errors = Object.fromEntries(FORMATS.map((f) => [f, { bytesPerToken: bytesPerToken[f], ...compare(scores[f]!, ref, histories.length, numItems) }]));
    (out.formats as Record<string, unknown>)[attention] = { validationNdcg10: fit.bestValidationNdcg10, ...errors };
    for (const f of FORMATS) {
      const e = errors[f];
      console.log(`  ${f}: ${e.bytesPerToken} B/token (attention), max relative error ${e.maxRelative.toExponential(2)}, mean ${e.meanRelative.toExponential(2)}, top-10 equal to fp32 for ${(100 * e.top10Agreement).toFixed(1)}% of users`);
    }
    sasrec.model.dispose();
  }
  if (values.json !== undefined) {
    writeFileSync(values.json, `${JSON.stringify(out, null, 2)}\n`);
    console.log(`wrote ${values.json}`);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
