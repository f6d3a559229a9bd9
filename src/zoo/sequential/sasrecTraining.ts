// Training and evaluation of the zoo's SASRec: a custom loop with optimizer.minimize (so the
// attention layers' auxiliary losses join the objective), full-ranking validation and early stopping.
import * as tf from '@tensorflow/tfjs-core';
import type * as tfl from '@tensorflow/tfjs-layers';
import {
  LeaveOneOutSplit, NextItemCase, catalogCrossEntropy, linear, RankingResult, SequenceBatch, batchTensor, seededRandom, trainingBatches,
  trainingExamples,
} from '../../internal';
import { Sasrec, forward, scoreNext } from './sasrec';
import {
  EvaluateOptions, FitResult, LENGTH_BUCKETS, NextItemFitOptions, NextItemTrainable, TrainStepResult, evaluateNextItem, fitNextItem,
} from './nextItemTraining';

export type { EpochReport, EvaluateOptions, FitResult, TrainStepResult } from './nextItemTraining';

/**
 * 'softmax': cross-entropy over the whole catalog at every position (best quality on small catalogs).
 * 'sampled': cross-entropy of the target against SAMPLED_SOFTMAX_NEGATIVES items drawn uniformly
 *   per batch and shared by its positions (a draw equal to a position's target is masked there);
 *   its cost does not grow with the catalog.
 * 'bce': SASRec's original loss, one sampled negative per position (cost independent of the catalog).
 */
export type SasrecLoss = 'softmax' | 'sampled' | 'bce';

export const SASREC_LOSSES: readonly SasrecLoss[] = ['softmax', 'sampled', 'bce'];

/** Negatives per batch of the 'sampled' loss (capped at the catalog's size). */
export const SAMPLED_SOFTMAX_NEGATIVES = 512;

/**
 * What a teacher-forced (or cloze) step needs from a model: the hidden states of input ids and the
 * table that scores them (rows 0..numItems; gradients flow through both).
 */
export interface StepHost {
  model: tfl.LayersModel;
  numItems: number;
  hidden(ids: tf.Tensor, training: boolean): tf.Tensor;
  table(): tf.Tensor;
}

/** One optimizer step on a batch; returns the losses (read back, one sync). */
export function trainStep(sasrec: Sasrec, optimizer: tf.Optimizer, batch: SequenceBatch, loss: SasrecLoss = 'softmax',
  seed = 0): TrainStepResult {
  return hostStep(sasrecHost(sasrec), optimizer, batch, loss, seed);
}

export function sasrecHost(sasrec: Sasrec): StepHost {
  return { model: sasrec.model, numItems: sasrec.options.numItems, hidden: (ids, training) => forward(sasrec.parts, ids, { training }),
    table: () => sasrec.parts.itemEmbedding.getWeights()[0] };
}

/**
 * One optimizer step of any StepHost: the loss at every position whose target is not 0 (times the
 * batch's lossWeight), plus the layers' auxiliary losses (CollectiveKV's routing losses), so they
 * join the objective.
 */
export function hostStep(host: StepHost, optimizer: tf.Optimizer, batch: SequenceBatch, loss: SasrecLoss = 'softmax', seed = 0): TrainStepResult {
  const step = stepTensors(host, optimizer, batch, loss, seed);
  const result = { loss: step.total.dataSync()[0], auxLoss: step.aux?.dataSync()[0] ?? 0 };
  tf.dispose(step.tensors);
  return result;
}

/** trainStep with asynchronous reads: for backends that cannot read synchronously (webgpu in Node). */
export function trainStepAsync(sasrec: Sasrec, optimizer: tf.Optimizer, batch: SequenceBatch, loss: SasrecLoss = 'softmax',
  seed = 0): Promise<TrainStepResult> {
  return hostStepAsync(sasrecHost(sasrec), optimizer, batch, loss, seed);
}

/** hostStep with asynchronous reads (`await data()`). */
export async function hostStepAsync(host: StepHost, optimizer: tf.Optimizer, batch: SequenceBatch, loss: SasrecLoss = 'softmax',
  seed = 0): Promise<TrainStepResult> {
  const step = stepTensors(host, optimizer, batch, loss, seed);
  try {
    return { loss: (await step.total.data())[0], auxLoss: step.aux == null ? 0 : (await step.aux.data())[0] };
  } finally {
    tf.dispose(step.tensors);
  }
}

/** The step's computation, unread: the total loss, the auxiliary part, and every tensor to dispose after reading. */
function stepTensors(host: StepHost, optimizer: tf.Optimizer, batch: SequenceBatch, loss: SasrecLoss, seed: number):
  { total: tf.Scalar; aux: tf.Scalar | null; tensors: tf.Tensor[] } {
  const inputs = batchTensor(batch.inputs, batch.batchSize, batch.maxLength);
  const objective = preparedLoss(host, batch, loss, seed);
  const variables = host.model.trainableWeights.map((w) => w.read() as tf.Variable);
  let aux: tf.Scalar | null = null;
  const total = optimizer.minimize(() => {
    const mean = objective.of(host.hidden(inputs, true));
    const main = batch.lossWeight == null || batch.lossWeight === 1 ? mean : tf.mul(mean, batch.lossWeight);
    const auxiliary = sumLosses(host.model.calculateLosses());
    aux = tf.keep(tf.clone(auxiliary));
    return tf.add(main, auxiliary) as tf.Scalar;
  }, true, variables) as tf.Scalar;
  const auxTensor = aux as tf.Scalar | null;
  return { total, aux: auxTensor, tensors: [inputs, total, ...objective.tensors, ...(auxTensor ? [auxTensor] : [])] };
}

/** A batch's loss as a function of the hidden states, and the tensors it holds (disposed after the step). */
interface PreparedLoss {
  of(hidden: tf.Tensor): tf.Scalar;
  tensors: tf.Tensor[];
}

function preparedLoss(host: StepHost, batch: SequenceBatch, loss: SasrecLoss, seed: number): PreparedLoss {
  if (loss === 'bce') {
    const targets = batchTensor(batch.targets, batch.batchSize, batch.maxLength);
    const negatives = sampleNegatives(batch, host.numItems, seed);
    return { of: (hidden) => bceLoss(host, hidden, targets, negatives), tensors: [targets, negatives] };
  }
  const valid = validPositions(batch);
  const validTensors = [valid.rows, valid.targets];
  if (loss === 'softmax') return { of: (hidden) => softmaxLoss(host, hidden, valid), tensors: validTensors };
  const negatives = sharedNegatives(host.numItems, SAMPLED_SOFTMAX_NEGATIVES, seed, valid.targetIds);
  return { of: (hidden) => sampledSoftmaxLoss(host, hidden, valid, negatives), tensors: [...validTensors, negatives.ids, negatives.hitPenalty] };
}

export function sumLosses(losses: tf.Scalar[]): tf.Scalar {
  if (losses.length === 0) return tf.scalar(0);
  return losses.length === 1 ? losses[0] : (tf.addN(losses) as tf.Scalar);
}

interface ValidPositions {
  rows: tf.Tensor1D;
  targets: tf.Tensor1D;
  /** The targets, as read. */
  targetIds: number[];
}

/** Flat indices [n] of the positions with a target, and those targets [n] (int32). */
function validPositions(batch: SequenceBatch): ValidPositions {
  const rows: number[] = [];
  const targets: number[] = [];
  batch.targets.forEach((t, i) => { if (t !== 0) { rows.push(i); targets.push(t); } });
  return { rows: tf.tensor1d(rows, 'int32'), targets: tf.tensor1d(targets, 'int32'), targetIds: targets };
}

/**
 * Mean cross-entropy of the target over the positions that have one. Only those rows are scored
 * against the catalog (at window 200 on ML-1M a third of the slots are padding), by
 * `catalogCrossEntropy`, which never keeps the [positions, catalog] logits on the tape.
 */
function softmaxLoss(host: StepHost, hidden: tf.Tensor, valid: ValidPositions): tf.Scalar {
  return catalogCrossEntropy(validHidden(hidden, valid), host.table() as tf.Tensor2D, valid.targets);
}

/** The hidden states [n, d] of the positions with a target. */
function validHidden(hidden: tf.Tensor, valid: ValidPositions): tf.Tensor2D {
  const d = hidden.shape[hidden.shape.length - 1] as number;
  return tf.gather(tf.reshape(hidden, [-1, d]), valid.rows) as tf.Tensor2D;
}

/**
 * Mean over the positions with a target of  logSumExp(s(target), s(n) for the shared negatives n)
 * - s(target). A negative equal to a position's target is pushed to -1e9 there (it would count the
 * target against itself). Uniform draws need no log-probability correction (it is a constant).
 */
function sampledSoftmaxLoss(host: StepHost, hidden: tf.Tensor, valid: ValidPositions, negatives: SharedNegatives): tf.Scalar {
  const table = host.table();
  const h = validHidden(hidden, valid);
  const positive = tf.sum(tf.mul(h, tf.gather(table, valid.targets)), -1, true);
  const negativeLogits = linear(h, tf.transpose(tf.gather(table, negatives.ids)), null);
  const logits = tf.concat([positive, tf.sub(negativeLogits, negatives.hitPenalty)], 1);
  return tf.mean(tf.sub(tf.logSumExp(logits, -1), tf.reshape(positive, [-1]))) as tf.Scalar;
}

interface SharedNegatives {
  /** int32 [count]: distinct items. */
  ids: tf.Tensor1D;
  /** float32 [positions, count]: 1e9 where the negative is that position's target, else 0. */
  hitPenalty: tf.Tensor2D;
}

/** `count` distinct items of 1..numItems drawn uniformly (seeded partial Fisher-Yates), and their hits. */
function sharedNegatives(numItems: number, count: number, seed: number, targets: readonly number[]): SharedNegatives {
  const rand = seededRandom(seed);
  const ids = Int32Array.from({ length: numItems }, (_, i) => i + 1);
  const n = Math.min(count, numItems);
  for (let i = 0; i < n; i++) {
    const j = i + Math.floor(rand() * (numItems - i));
    [ids[i], ids[j]] = [ids[j], ids[i]];
  }
  const column = new Map<number, number>();
  for (let k = 0; k < n; k++) column.set(ids[k], k);
  const hits = Int32Array.from(targets, (t) => column.get(t) ?? -1);
  // A negative index gives an all-zero row.
  const hitPenalty = tf.tidy(() => tf.mul(tf.oneHot(tf.tensor1d(hits, 'int32'), n), 1e9) as tf.Tensor2D);
  return { ids: tf.tensor1d(ids.subarray(0, n), 'int32'), hitPenalty };
}

/** -log sigmoid(s(target)) - log(1 - sigmoid(s(negative))) per non-padding position (SASRec's loss). */
function bceLoss(host: StepHost, hidden: tf.Tensor, targets: tf.Tensor, negatives: tf.Tensor): tf.Scalar {
  const table = host.table();
  const score = (ids: tf.Tensor) => tf.sum(tf.mul(hidden, tf.gather(table, ids)), -1);
  // -log sigmoid(s) = softplus(-s); -log(1 - sigmoid(s)) = softplus(s). Not tf.logSigmoid: it is a
  // customGrad whose saved input is gone by the time optimizer.minimize runs the backward pass.
  const positive = tf.softplus(tf.neg(score(targets)));
  const negative = tf.softplus(score(negatives));
  return maskedMean(tf.add(positive, negative), targets);
}

export function maskedMean(perPosition: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  const valid = tf.cast(tf.notEqual(targets, 0), 'float32');
  return tf.div(tf.sum(tf.mul(perPosition, valid)), tf.maximum(tf.sum(valid), 1)) as tf.Scalar;
}

/** One uniformly random item per position, redrawn when it equals the target (seeded). */
function sampleNegatives(batch: SequenceBatch, numItems: number, seed: number): tf.Tensor2D {
  const rand = seededRandom(seed);
  const out = new Int32Array(batch.targets.length);
  for (let i = 0; i < out.length; i++) {
    let id = 1 + Math.floor(rand() * numItems);
    if (id === batch.targets[i] && numItems > 1) id = (id % numItems) + 1;
    out[i] = id;
  }
  return batchTensor(out, batch.batchSize, batch.maxLength);
}

// ---------------------------------------------------------------- evaluation

/** Full-ranking metrics of next-item cases (history -> target) with the full forward. */
export function evaluateSasrec(sasrec: Sasrec, cases: readonly NextItemCase[], options: EvaluateOptions = {}): RankingResult & { ranks?: Int32Array } {
  return evaluateNextItem(sasrecTrainable(sasrec), cases, options);
}

// ---------------------------------------------------------------- fitting

export interface FitOptions extends NextItemFitOptions {
  loss?: SasrecLoss;
}

/** SASRec as the shared fit/evaluate see it: teacher-forced next-item batches, `trainStep`, `scoreNext`. */
export function sasrecTrainable(sasrec: Sasrec, loss: SasrecLoss = 'softmax'): NextItemTrainable<SequenceBatch> {
  return {
    model: sasrec.model,
    maxLength: sasrec.options.maxLength,
    batches: (train, batchSize, seed, epoch) => trainingBatches(trainingExamples(train, sasrec.options.maxLength), batchSize, seed, epoch, LENGTH_BUCKETS),
    batchRows: (batch) => batch.batchSize,
    step: (optimizer, batch, seed) => trainStep(sasrec, optimizer, batch, loss, seed),
    scoreNext: (ids) => scoreNext(sasrec, ids),
  };
}

/**
 * Trains with Adam, validates NDCG@10 (every `validateEvery` epochs), stops after `patience`
 * validations without improvement (or at the time budget, reported in `stoppedBy`) and restores
 * the best epoch's weights. Runs on the library's trainLoop.
 */
export function fitSasrec(sasrec: Sasrec, split: LeaveOneOutSplit, options: FitOptions = {}): FitResult {
  const { loss, ...rest } = options;
  return fitNextItem(sasrecTrainable(sasrec, loss ?? 'softmax'), split, rest);
}
