import * as tf from '@tensorflow/tfjs-core';
import { dim } from '../../ops/util/validate';

/**
 * Full-ranking next-item metrics (HR@K, NDCG@K, MRR@K) over scores [B, numItems + 1] where column
 * 0 is the padding id and never ranked.
 *
 * Rank rule (pessimistic ties): rank = 1 + the number of other ranked items whose score is >= the
 * target's. A model that gives every item the same score therefore ranks each target last, so
 * constant or collapsed scores can never look good. A NaN target score ranks last.
 */
export interface RankOptions {
  /** Remove each row's history items (other than the target) from the ranking. Default false. */
  filterHistory?: boolean;
  /**
   * With filterHistory: remove only each history's last N items, the ones a model with an N-item
   * input window reads. This is the protocol of the published ML-1M anchors (the HSTU reference
   * code filters the ids of the input window). Default: the whole history.
   */
  historyWindow?: number;
}

/** 1-based ranks of targets [B] (int32 or numbers) in scores [B, numItems + 1]. Reads only B numbers back. */
export function rankTargets(scores: tf.Tensor, targets: ArrayLike<number>, histories?: readonly (readonly number[])[],
  options: RankOptions = {}): Int32Array {
  const [batch, width] = validateScores(scores, targets);
  if (options.filterHistory && (histories == null || histories.length !== batch)) {
    throw new Error(`rankTargets: filterHistory needs one history per row (${batch}), received ${histories?.length ?? 'none'}`);
  }
  const window = historyWindowOf(options);
  const counts = tf.tidy(() => {
    let ranked = tf.slice(scores, [0, 1], [batch, width - 1]);
    if (options.filterHistory && histories) ranked = tf.add(ranked, historyPenalty(targets, histories, width, window));
    const index = tf.tensor2d(Int32Array.from(targets, (t) => t - 1), [batch, 1], 'int32');
    const own = tf.gatherND(ranked, tf.concat([tf.reshape(tf.range(0, batch, 1, 'int32'), [batch, 1]), index], 1));
    const target = tf.reshape(own, [batch, 1]);
    // NaN target: every comparison is false; count it as ranked behind all items instead.
    const atLeast = tf.sum(tf.cast(tf.logicalNot(tf.less(ranked, target)), 'int32'), 1);
    return atLeast;
  });
  const data = counts.dataSync() as Int32Array;
  counts.dispose();
  // atLeast counts items with score >= target (or incomparable) and includes the target itself.
  return Int32Array.from(data, (n) => Math.max(1, n));
}

function validateScores(scores: tf.Tensor, targets: ArrayLike<number>): [number, number] {
  if (scores.rank !== 2) throw new Error(`rankTargets: scores must be [batch, numItems + 1], received shape [${scores.shape.join(', ')}]`);
  const batch = dim(scores, 0);
  const width = dim(scores, 1);
  if (width < 2) throw new Error(`rankTargets: scores need at least one item column after the padding column, received width ${width}`);
  if (targets.length !== batch) throw new Error(`rankTargets: ${batch} score rows but ${targets.length} targets`);
  for (let i = 0; i < targets.length; i++) {
    const t = targets[i];
    if (!Number.isInteger(t) || t < 1 || t >= width) throw new Error(`rankTargets: target ${t} at row ${i} is outside the item ids 1..${width - 1}`);
  }
  return [batch, width];
}

/** RankOptions.historyWindow, checked: a positive integer, or Infinity (the whole history) when absent. */
function historyWindowOf(options: RankOptions): number {
  const window = options.historyWindow;
  if (window == null) return Infinity;
  if (!Number.isInteger(window) || window < 1) throw new Error(`rankTargets: historyWindow must be a positive integer, received ${window}`);
  return window;
}

/** -Infinity at each row's last `window` history items except its target, 0 elsewhere: [B, numItems]. */
function historyPenalty(targets: ArrayLike<number>, histories: readonly (readonly number[])[], width: number, window: number): tf.Tensor {
  const numItems = width - 1;
  const penalty = new Float32Array(histories.length * numItems);
  histories.forEach((history, row) => {
    for (const id of history.slice(Math.max(0, history.length - window))) {
      if (id >= 1 && id <= numItems && id !== targets[row]) penalty[row * numItems + id - 1] = -Infinity;
    }
  });
  return tf.tensor2d(penalty, [histories.length, numItems]);
}

export interface RankingResult {
  /** Number of cases evaluated. */
  count: number;
  /** Keyed by K. */
  hr: Record<number, number>;
  ndcg: Record<number, number>;
  mrr: Record<number, number>;
}

/** NDCG@k of one case from its target's 1-based rank (one relevant item, so the ideal DCG is 1). */
export function ndcgAt(rank: number, k: number): number {
  return rank <= k ? 1 / Math.log2(rank + 1) : 0;
}

/**
 * Accumulates ranking metrics batch by batch so that scores for all users never need to exist at once.
 * HR@K = share of targets with rank <= K; NDCG@K = mean of 1/log2(rank + 1) for rank <= K (one relevant
 * item, so the ideal DCG is 1); MRR@K = mean of 1/rank for rank <= K. K above the item count counts every case.
 */
export interface PairedNdcgDifference {
  /** Mean over cases of NDCG@10(a) - NDCG@10(b). */
  mean: number;
  /** Its standard error (the per-case differences' sd / sqrt(cases)). */
  standardError: number;
}

/** The paired per-case NDCG@10 difference of two runs on the same cases, from their 1-based ranks (NaN when they do not pair up). */
export function pairedNdcg10(a: ArrayLike<number> | undefined, b: ArrayLike<number> | undefined): PairedNdcgDifference {
  if (a == null || b == null || a.length !== b.length || a.length === 0) return { mean: NaN, standardError: NaN };
  const n = a.length;
  let sum = 0;
  let squares = 0;
  for (let i = 0; i < n; i++) {
    const d = ndcgAt(a[i], 10) - ndcgAt(b[i], 10);
    sum += d;
    squares += d * d;
  }
  const mean = sum / n;
  const variance = n > 1 ? (squares - n * mean * mean) / (n - 1) : 0;
  return { mean, standardError: Math.sqrt(Math.max(0, variance) / n) };
}

export class RankingEvaluator {
  private readonly ks: number[];
  private readonly sums: { hr: number[]; ndcg: number[]; mrr: number[] };
  private count = 0;

  constructor(ks: readonly number[] = [10], private readonly options: RankOptions = {}) {
    for (const k of ks) {
      if (!Number.isInteger(k) || k < 1) throw new Error(`RankingEvaluator: K must be a positive integer, received ${k}`);
    }
    this.ks = ks.slice();
    this.sums = { hr: ks.map(() => 0), ndcg: ks.map(() => 0), mrr: ks.map(() => 0) };
  }

  /** Adds one batch of scores [B, numItems + 1]; does not dispose `scores`. Returns the batch's ranks. */
  update(scores: tf.Tensor, targets: ArrayLike<number>, histories?: readonly (readonly number[])[]): Int32Array {
    const ranks = rankTargets(scores, targets, histories, this.options);
    this.addRanks(ranks);
    return ranks;
  }

  /** Adds precomputed 1-based ranks. */
  addRanks(ranks: ArrayLike<number>): void {
    for (let i = 0; i < ranks.length; i++) {
      const r = ranks[i];
      this.ks.forEach((k, j) => {
        if (r > k) return;
        this.sums.hr[j] += 1;
        this.sums.ndcg[j] += ndcgAt(r, k);
        this.sums.mrr[j] += 1 / r;
      });
    }
    this.count += ranks.length;
  }

  result(): RankingResult {
    const mean = (values: number[]) => Object.fromEntries(this.ks.map((k, j) => [k, this.count ? values[j] / this.count : 0]));
    return { count: this.count, hr: mean(this.sums.hr), ndcg: mean(this.sums.ndcg), mrr: mean(this.sums.mrr) };
  }
}

/** Convenience: metrics of one batch of scores. */
export function rankingMetrics(scores: tf.Tensor, targets: ArrayLike<number>, ks: readonly number[] = [10],
  histories?: readonly (readonly number[])[], options: RankOptions = {}): RankingResult {
  const evaluator = new RankingEvaluator(ks, options);
  evaluator.update(scores, targets, histories);
  return evaluator.result();
}
