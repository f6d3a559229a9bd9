// `collectivekv demo`: one data set, one split, one seed and one budget for both attention layers,
// then quality, cache bytes and decode latency side by side.
import * as tf from '@tensorflow/tfjs-core';
import {
  LeaveOneOutSplit, NextItemCase, RankingEvaluator, SyntheticOptions, evaluationBatches, generateSynthetic,
  leaveOneOut, useFastEmbeddingGradients,
} from '../../internal';
import { Sasrec, buildSasrec, cacheBytesPerToken, decodeStep, disposeCache, prefill, scoreHidden, scoreNext, toIds } from '../../zoo/sequential/sasrec';
import { evaluateSasrec, fitSasrec } from '../../zoo/sequential/sasrecTraining';
import { formatTable, median } from '../bench/ops';

export interface DemoOptions {
  numUsers?: number;
  maxEpochs?: number;
  seed?: number;
  data?: SyntheticOptions;
  maxLength?: number;
  hiddenDim?: number;
  poolSize?: number;
  batchSize?: number;
  /**
   * Safety net only: training seconds per model after which training is cut. Both models get the
   * same epoch budget and early-stopping rule; a cut breaks that, so it is reported loudly
   * (a warning line and `cutByTime` in the row). 0 = none.
   */
  timeBudgetSeconds?: number;
  /** Users in the latency measurement. */
  latencyUsers?: number;
  log?: (line: string) => void;
}

export interface DemoRow {
  attention: 'mha' | 'collectivekv';
  hr10: number;
  ndcg10: number;
  bytesPerToken: number;
  decodeMsPerUserCached: number;
  decodeMsPerUserRecompute: number;
  trainSeconds: number;
  epochs: number;
  bestEpoch: number;
  /** True when the safety-net time cap cut training (the comparison is then not at equal epochs). */
  cutByTime: boolean;
}

export interface DemoResult {
  rows: DemoRow[];
  popularityNdcg10: number;
  popularityHr10: number;
  users: number;
  items: number;
  hiddenDim: number;
  maxLength: number;
  poolSize: number;
  backend: string;
  maxEpochs: number;
  patience: number;
}

const DEMO_DEFAULTS = { numUsers: 1500, maxEpochs: 8, seed: 2026, maxLength: 30, hiddenDim: 32, poolSize: 256, batchSize: 64,
  patience: 2, timeBudgetSeconds: 600, latencyUsers: 256 };

export async function runDemo(options: DemoOptions = {}): Promise<DemoResult> {
  const o = { ...DEMO_DEFAULTS, ...definedOnly(options) };
  const log = options.log ?? (() => undefined);
  // tfjs's Embedding layer has no gradient kernel on wasm and a very slow one on cpu: opt in to ours.
  useFastEmbeddingGradients();
  const data = generateSynthetic({ ...o.data, numUsers: o.numUsers, seed: o.seed });
  const split = leaveOneOut(data);
  log(`synthetic data: ${data.sequences.length} users, ${data.numItems} items, ${split.test.length} test cases; backend ${tf.getBackend()}`);
  const popularity = popularityMetrics(split);
  log(`popularity baseline: test HR@10 ${popularity.hr10.toFixed(4)}, NDCG@10 ${popularity.ndcg10.toFixed(4)}`);
  const rows: DemoRow[] = [];
  for (const attention of ['mha', 'collectivekv'] as const) {
    rows.push(trainAndMeasure(attention, split, o, log));
  }
  return { rows, popularityNdcg10: popularity.ndcg10, popularityHr10: popularity.hr10, users: data.sequences.length, items: data.numItems,
    hiddenDim: o.hiddenDim, maxLength: o.maxLength, poolSize: o.poolSize, backend: tf.getBackend(), maxEpochs: o.maxEpochs, patience: o.patience };
}

export function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function trainAndMeasure(attention: 'mha' | 'collectivekv', split: LeaveOneOutSplit, o: typeof DEMO_DEFAULTS, log: (line: string) => void): DemoRow {
  const sasrec = buildSasrec({ numItems: split.numItems, maxLength: o.maxLength, hiddenDim: o.hiddenDim, numBlocks: 2, numHeads: 2,
    dropout: 0.2, attention, collective: { poolSize: o.poolSize, userDim: 1 }, seed: o.seed });
  try {
    log(`\ntraining SASRec with ${attention === 'mha' ? 'MultiHeadAttention' : 'CollectiveKVAttention'} ...`);
    const fit = fitSasrec(sasrec, split, {
      maxEpochs: o.maxEpochs, patience: o.patience, batchSize: o.batchSize, learningRate: 5e-3, loss: 'softmax', seed: o.seed,
      timeBudgetSeconds: o.timeBudgetSeconds,
      onEpoch: (r) => log(`  [${attention}] epoch ${r.epoch}: loss ${r.loss.toFixed(4)}${r.auxLoss ? ` (aux ${r.auxLoss.toFixed(4)})` : ''}, ` +
        `valid NDCG@10 ${r.validationNdcg10.toFixed(4)} HR@10 ${r.validationHr10.toFixed(4)}${r.best ? ' *' : ''}, ${r.seconds.toFixed(0)} s`),
    });
    const cutByTime = fit.stoppedBy === 'maxMinutes';
    if (cutByTime) {
      log(`  WARNING [${attention}]: the ${o.timeBudgetSeconds} s safety cap cut training after ${fit.epochs} of at most ${o.maxEpochs} epochs; ` +
        'the two models are NOT compared at the same epoch budget.');
    }
    const test = evaluateSasrec(sasrec, split.test, { ks: [10] });
    log(`  [${attention}] best epoch ${fit.bestEpoch}; test HR@10 ${test.hr[10].toFixed(4)}, NDCG@10 ${test.ndcg[10].toFixed(4)}`);
    const latency = decodeLatency(sasrec, split.test.slice(0, o.latencyUsers));
    return { attention, hr10: test.hr[10], ndcg10: test.ndcg[10], bytesPerToken: cacheBytesPerToken(sasrec, 'fp32'),
      decodeMsPerUserCached: latency.cached, decodeMsPerUserRecompute: latency.recompute, trainSeconds: fit.trainSeconds,
      epochs: fit.epochs, bestEpoch: fit.bestEpoch, cutByTime };
  } finally {
    sasrec.model.dispose();
  }
}

/** Test metrics of scoring every item by its training count (the same for every user). */
function popularityMetrics(split: LeaveOneOutSplit): { hr10: number; ndcg10: number } {
  const counts = new Float32Array(split.numItems + 1);
  for (const seq of split.train) for (const id of seq) counts[id] += 1;
  const evaluator = new RankingEvaluator([10]);
  const row = tf.tensor2d(counts, [1, split.numItems + 1]);
  for (const batch of evaluationBatches(split.test, 256, 1)) {
    const scores = tf.tile(row, [batch.batchSize, 1]);
    evaluator.update(scores, batch.targets);
    scores.dispose();
  }
  row.dispose();
  const r = evaluator.result();
  return { hr10: r.hr[10], ndcg10: r.ndcg[10] };
}

/**
 * Per-user milliseconds to score the next item once the latest event arrives, for a batch of users:
 * cached = append the event to the prefilled cache and attend from it (decodeStep + scoring);
 * recompute = the full forward over the whole window. Median of a few repeats, divided by the batch.
 */
function decodeLatency(sasrec: Sasrec, cases: readonly NextItemCase[]): { cached: number; recompute: number } {
  const histories = cases.map((c) => [...c.history, c.target]);
  const ids = toIds(sasrec, histories);
  const [b, L] = ids.shape;
  const prefix = tf.slice(ids, [0, 0], [b, L - 1]) as tf.Tensor2D;
  const last = tf.tidy(() => tf.reshape(tf.slice(ids, [0, L - 1], [b, 1]), [b]));
  const cachedOnce = () => {
    const cache = prefill(sasrec, prefix);
    const start = performance.now();
    const step = decodeStep(sasrec, cache, last);
    const scores = scoreHidden(sasrec, step.hidden);
    scores.dataSync();
    const ms = performance.now() - start;
    tf.dispose([scores, step.hidden]);
    disposeCache(step.cache);
    return ms;
  };
  const recomputeOnce = () => {
    const start = performance.now();
    const scores = scoreNext(sasrec, ids);
    scores.dataSync();
    const ms = performance.now() - start;
    scores.dispose();
    return ms;
  };
  try {
    cachedOnce();
    recomputeOnce();
    const repeats = 5;
    const cached = median(Array.from({ length: repeats }, cachedOnce)) / b;
    const recompute = median(Array.from({ length: repeats }, recomputeOnce)) / b;
    return { cached, recompute };
  } finally {
    tf.dispose([ids, prefix, last]);
  }
}

export function formatDemo(r: DemoResult): string {
  const [mha, ckv] = r.rows;
  const f4 = (x: number) => x.toFixed(4);
  const us = (ms: number) => `${(ms * 1000).toFixed(0)} us`;
  const rows: string[][] = [
    ['', 'MultiHeadAttention', 'CollectiveKVAttention'],
    ['test HR@10', f4(mha.hr10), f4(ckv.hr10)],
    ['test NDCG@10', f4(mha.ndcg10), f4(ckv.ndcg10)],
    ['popularity NDCG@10', f4(r.popularityNdcg10), f4(r.popularityNdcg10)],
    [`cache bytes/token (2 blocks, d=${r.hiddenDim}, fp32)`, `${mha.bytesPerToken}`, `${ckv.bytesPerToken}`],
    ['cache compression vs full', '1x', `${(mha.bytesPerToken / ckv.bytesPerToken).toFixed(1)}x (${((100 * ckv.bytesPerToken) / mha.bytesPerToken).toFixed(2)}%)`],
    ['decode latency/user, cached', us(mha.decodeMsPerUserCached), us(ckv.decodeMsPerUserCached)],
    ['decode latency/user, recompute', us(mha.decodeMsPerUserRecompute), us(ckv.decodeMsPerUserRecompute)],
    ['train seconds (epochs, best)', `${mha.trainSeconds.toFixed(0)} (${mha.epochs}, ${mha.bestEpoch})`,
      `${ckv.trainSeconds.toFixed(0)} (${ckv.epochs}, ${ckv.bestEpoch})`],
    ['SASRec / popularity NDCG@10', `${(mha.ndcg10 / r.popularityNdcg10).toFixed(2)}x`, `${(ckv.ndcg10 / r.popularityNdcg10).toFixed(2)}x`],
  ];
  const cut = r.rows.filter((row) => row.cutByTime).map((row) => row.attention);
  const budget = `same epoch budget (${r.maxEpochs}) and early stopping (patience ${r.patience}) for both` +
    (cut.length ? `\nWARNING: the safety time cap cut ${cut.join(' and ')}: NOT an equal-epoch comparison` : '');
  return `SASRec on synthetic data: ${r.users} users, ${r.items} items, window ${r.maxLength}, d=${r.hiddenDim}, ` +
    `pool ${r.poolSize}, userDim 1, backend ${r.backend}; ${budget}\n${formatTable(rows)}`;
}
