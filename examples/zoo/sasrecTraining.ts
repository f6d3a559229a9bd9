// Training and evaluation of the zoo's SASRec: a custom loop with optimizer.minimize (so the
// attention layers' auxiliary losses join the objective), full-ranking validation and early stopping.
import * as tf from '@tensorflow/tfjs-core';
import {
  LeaveOneOutSplit, NextItemCase, RankingResult, SequenceBatch, batchTensor, seededRandom, trainingBatches, trainingExamples,
} from 'collectivekv';
import { Sasrec, forward, scoreHidden, scoreNext } from './sasrec';
import {
  EvaluateOptions, FitResult, NextItemFitOptions, NextItemTrainable, TrainStepResult, evaluateNextItem, fitNextItem,
} from './nextItemTraining';

export type { EpochReport, EvaluateOptions, FitResult, TrainStepResult } from './nextItemTraining';

/**
 * 'softmax': cross-entropy over the whole catalog at every position (best quality on small catalogs).
 * 'bce': SASRec's original loss, one sampled negative per position (cost independent of the catalog).
 */
export type SasrecLoss = 'softmax' | 'bce';

/** One optimizer step on a batch; returns the losses (read back, one sync). */
export function trainStep(sasrec: Sasrec, optimizer: tf.Optimizer, batch: SequenceBatch, loss: SasrecLoss = 'softmax',
  seed = 0): TrainStepResult {
  const inputs = batchTensor(batch.inputs, batch.batchSize, batch.maxLength);
  const targets = batchTensor(batch.targets, batch.batchSize, batch.maxLength);
  const negatives = loss === 'bce' ? sampleNegatives(batch, sasrec.options.numItems, seed) : null;
  const variables = sasrec.model.trainableWeights.map((w) => w.read() as tf.Variable);
  let aux: tf.Scalar | null = null;
  const total = optimizer.minimize(() => {
    const hidden = forward(sasrec.parts, inputs as tf.Tensor, { training: true });
    const main = loss === 'softmax' ? softmaxLoss(sasrec, hidden, targets) : bceLoss(sasrec, hidden, targets, negatives as tf.Tensor);
    const auxiliary = sumLosses(sasrec.model.calculateLosses());
    aux = tf.keep(tf.clone(auxiliary));
    return tf.add(main, auxiliary) as tf.Scalar;
  }, true, variables) as tf.Scalar;
  const [lossValue, auxValue] = [total.dataSync()[0], (aux as tf.Scalar | null)?.dataSync()[0] ?? 0];
  tf.dispose([inputs, targets, total, ...(negatives ? [negatives] : []), ...(aux ? [aux] : [])]);
  return { loss: lossValue, auxLoss: auxValue };
}

export function sumLosses(losses: tf.Scalar[]): tf.Scalar {
  if (losses.length === 0) return tf.scalar(0);
  return losses.length === 1 ? losses[0] : (tf.addN(losses) as tf.Scalar);
}

/** Mean cross-entropy of the next item over the non-padding positions. */
function softmaxLoss(sasrec: Sasrec, hidden: tf.Tensor, targets: tf.Tensor): tf.Scalar {
  const logits = scoreHidden(sasrec, hidden);
  const logProbs = tf.logSoftmax(logits);
  const picked = tf.sum(tf.mul(logProbs, tf.oneHot(targets as tf.Tensor2D, sasrec.options.numItems + 1)), -1);
  return maskedMean(tf.neg(picked), targets);
}

/** -log sigmoid(s(target)) - log(1 - sigmoid(s(negative))) per non-padding position (SASRec's loss). */
function bceLoss(sasrec: Sasrec, hidden: tf.Tensor, targets: tf.Tensor, negatives: tf.Tensor): tf.Scalar {
  const table = sasrec.parts.itemEmbedding.getWeights()[0];
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
export function evaluateSasrec(sasrec: Sasrec, cases: readonly NextItemCase[], options: EvaluateOptions = {}): RankingResult {
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
    batches: (train, batchSize, seed, epoch) => trainingBatches(trainingExamples(train, sasrec.options.maxLength), batchSize, seed, epoch),
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
