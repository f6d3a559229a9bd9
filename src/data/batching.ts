import * as tf from '@tensorflow/tfjs-core';
import { seededRandom, shuffleInPlace } from './random';
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
}

/**
 * (input, target) pairs shifted by one for teacher-forced next-item training, one per user with at
 * least 2 items. Sequences longer than maxLength + 1 keep their most recent part.
 */
export function trainingExamples(train: readonly (readonly number[])[], maxLength: number): TrainingExample[] {
  const out: TrainingExample[] = [];
  for (const seq of train) {
    if (seq.length < 2) continue;
    out.push({ input: padLeft(seq.slice(0, -1), maxLength), target: padLeft(seq.slice(1), maxLength) });
  }
  return out;
}

/** A batch as flat row-major int32 arrays of shape [batchSize, maxLength]. */
export interface SequenceBatch {
  inputs: Int32Array;
  targets: Int32Array;
  batchSize: number;
  maxLength: number;
}

/**
 * Training batches in a seeded order: the same (seed, epoch) gives the same batches, and each epoch
 * a different order. The last batch may be smaller.
 */
export function* trainingBatches(examples: readonly TrainingExample[], batchSize: number, seed: number, epoch = 0): Generator<SequenceBatch> {
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new Error(`trainingBatches: batchSize must be a positive integer, received ${batchSize}`);
  if (examples.length === 0) return;
  const maxLength = examples[0].input.length;
  const order = shuffleInPlace(examples.map((_, i) => i), seededRandom(mixSeed(seed, epoch)));
  for (let start = 0; start < order.length; start += batchSize) {
    const rows = order.slice(start, start + batchSize);
    const inputs = new Int32Array(rows.length * maxLength);
    const targets = new Int32Array(rows.length * maxLength);
    rows.forEach((r, i) => {
      inputs.set(examples[r].input, i * maxLength);
      targets.set(examples[r].target, i * maxLength);
    });
    yield { inputs, targets, batchSize: rows.length, maxLength };
  }
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

function mixSeed(seed: number, epoch: number): number {
  return (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(epoch + 1, 0x85ebca6b)) >>> 0;
}
