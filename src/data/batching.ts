import * as tf from '@tensorflow/tfjs-core';
import { epochSeed, seededRandom, shuffleInPlace } from './random';
import { NextItemCase } from './split';

/**
 * The last `maxLength` items of `seq`, left-padded with 0 (the padding id). Left padding keeps the
 * most recent item in the last slot, which is where a causal model reads its next-item prediction.
 */
export function padLeft(seq: readonly number[], maxLength: number, out?: Int32Array, offset = 0): Int32Array {
  const row = out ?? new Int32Array(maxLength);
  const kept = Math.min(seq.length, maxLength);
  const pad = maxLength - kept;
  row.fill(0, offset, offset + pad);
  for (let i = 0; i < kept; i++) row[offset + pad + i] = seq[seq.length - kept + i];
  return row;
}

/** A training sequence: target[t] is the item after input[t]; both left-padded to maxLength. */
export interface TrainingExample {
  input: Int32Array;
  target: Int32Array;
  /** Real (non-padding) slots, at the end of the window; older examples without it count as full. */
  length?: number;
}

/**
 * (input, target) pairs shifted by one for teacher-forced next-item training, one per user with at
 * least 2 items. Sequences longer than maxLength + 1 keep their most recent part.
 */
export function trainingExamples(train: readonly (readonly number[])[], maxLength: number): TrainingExample[] {
  const out: TrainingExample[] = [];
  for (const seq of train) {
    if (seq.length < 2) continue;
    out.push({ input: padLeft(seq.slice(0, -1), maxLength), target: padLeft(seq.slice(1), maxLength), length: Math.min(seq.length - 1, maxLength) });
  }
  return out;
}

/** A batch as flat row-major int32 arrays of shape [batchSize, maxLength]. */
export interface SequenceBatch {
  inputs: Int32Array;
  targets: Int32Array;
  batchSize: number;
  maxLength: number;
  /**
   * Multiplies the batch's mean loss (absent = 1). Length buckets make batches unequal in
   * positions (a batch of short histories has few); weighting each batch by its positions over the
   * epoch's average keeps every position's weight in an epoch what it is with mixed batches.
   */
  lossWeight?: number;
}

export interface TrainingBatchOptions {
  /**
   * Batch rows of similar length together and cut each batch's window to its longest row. Only
   * left padding is removed, so every real item keeps its slot relative to the window's end and a
   * model with masked padding computes the same outputs there; attention's cost falls with the
   * square of the window (ML-1M at 200: 41% of the padded cost). Rows are sorted by length within
   * shuffled pools of `bucketPoolBatches` batches, and the batch order is shuffled. Default false.
   */
  bucketByLength?: boolean;
  /** Batches per sorting pool when bucketing: more gives tighter windows, less keeps batches mixed. Default 64. */
  bucketPoolBatches?: number;
}

/**
 * Training batches in a seeded order: the same (seed, epoch) gives the same batches, and each epoch
 * a different order. The last batch (of each pool when bucketing) may be smaller.
 */
export function* trainingBatches(examples: readonly TrainingExample[], batchSize: number, seed: number, epoch = 0,
  options: TrainingBatchOptions = {}): Generator<SequenceBatch> {
  const lengths = examples.map((e) => Math.min(e.length ?? e.input.length, e.input.length));
  const groups = batchRows(lengths, batchSize, seed, epoch, options);
  const weights = options.bucketByLength ? positionWeights(groups, lengths) : null;
  for (let b = 0; b < groups.length; b++) {
    const batch = copyRows(examples, groups[b], options.bucketByLength ? lengths : null);
    yield weights == null ? batch : { ...batch, lossWeight: weights[b] };
  }
}

/**
 * Each batch's positions (the sum of its rows' lengths) over the average batch's: the lossWeight
 * that gives every position the same weight in an epoch of unequal batches.
 */
export function positionWeights(groups: readonly (readonly number[])[], lengths: readonly number[]): number[] {
  const positions = groups.map((rows) => rows.reduce((n, r) => n + lengths[r], 0));
  const mean = positions.reduce((a, b) => a + b, 0) / Math.max(groups.length, 1);
  return positions.map((p) => (mean > 0 ? p / mean : 1));
}

/**
 * The rows of each batch of one epoch, as indices into `lengths` (each example's real length):
 * a seeded shuffle cut into batches, or length buckets (see TrainingBatchOptions). For batch
 * builders of other shapes (BERT4Rec's cloze batches) that want the same order and bucketing.
 */
export function batchRows(lengths: readonly number[], batchSize: number, seed: number, epoch = 0, options: TrainingBatchOptions = {}): number[][] {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`trainingBatches: batchSize must be a positive integer, received ${batchSize}`);
  const poolBatches = options.bucketPoolBatches ?? 64;
  if (!Number.isInteger(poolBatches) || poolBatches < 1) {
    throw new Error(`trainingBatches: bucketPoolBatches must be a positive integer, received ${poolBatches}`);
  }
  const rand = seededRandom(epochSeed(seed, epoch));
  const order = shuffleInPlace(lengths.map((_, i) => i), rand);
  return options.bucketByLength ? lengthBuckets(lengths, order, batchSize, poolBatches, rand) : chunks(order, batchSize);
}

function chunks(order: readonly number[], size: number): number[][] {
  const out: number[][] = [];
  for (let start = 0; start < order.length; start += size) out.push(order.slice(start, start + size));
  return out;
}

/** Batches of similar-length rows: shuffled pools, each sorted by length and cut into batches; batch order shuffled. */
function lengthBuckets(lengths: readonly number[], order: readonly number[], batchSize: number, poolBatches: number,
  rand: () => number): number[][] {
  const out: number[][] = [];
  for (const pool of chunks(order, batchSize * poolBatches)) {
    pool.sort((a, b) => lengths[a] - lengths[b]);
    out.push(...chunks(pool, batchSize));
  }
  return shuffleInPlace(out, rand);
}

/** Rows copied into one batch; cut to the longest row's real length when `lengths` are given. */
function copyRows(examples: readonly TrainingExample[], rows: readonly number[], lengths: readonly number[] | null): SequenceBatch {
  const window = examples[rows[0]].input.length;
  const width = lengths == null ? window : Math.max(1, ...rows.map((r) => lengths[r]));
  const inputs = new Int32Array(rows.length * width);
  const targets = new Int32Array(rows.length * width);
  rows.forEach((r, i) => {
    inputs.set(examples[r].input.subarray(window - width), i * width);
    targets.set(examples[r].target.subarray(window - width), i * width);
  });
  return { inputs, targets, batchSize: rows.length, maxLength: width };
}

/** An evaluation batch: padded histories [batchSize, maxLength] and one target per row. */
export interface EvaluationBatch {
  inputs: Int32Array;
  targets: Int32Array;
  histories: (readonly number[])[];
  batchSize: number;
  maxLength: number;
}

/** Evaluation cases in their given order, `batchSize` at a time. */
export function* evaluationBatches(cases: readonly NextItemCase[], batchSize: number, maxLength: number): Generator<EvaluationBatch> {
  for (let start = 0; start < cases.length; start += batchSize) {
    const chunk = cases.slice(start, start + batchSize);
    const inputs = new Int32Array(chunk.length * maxLength);
    chunk.forEach((c, i) => padLeft(c.history, maxLength, inputs, i * maxLength));
    yield { inputs, targets: Int32Array.from(chunk.map((c) => c.target)), histories: chunk.map((c) => c.history), batchSize: chunk.length, maxLength };
  }
}

/** int32 tensor [batchSize, maxLength] of a batch's flat rows (the caller disposes it). */
export function batchTensor(rows: Int32Array, batchSize: number, maxLength: number): tf.Tensor2D {
  return tf.tensor2d(rows, [batchSize, maxLength], 'int32');
}
