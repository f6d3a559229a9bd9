// Training and evaluation of the zoo's SASRec: a custom loop with optimizer.minimize (so the
// attention layers' auxiliary losses join the objective), full-ranking validation and early stopping.
import * as tf from '@tensorflow/tfjs-core';
import {
  LeaveOneOutSplit, NextItemCase, RankingEvaluator, RankingResult, SequenceBatch, batchTensor, evaluationBatches,
  seededRandom, trainingBatches, trainingExamples,
} from 'collectivekv';
import { Sasrec, forward, scoreHidden, scoreNext } from './sasrec';

/**
 * 'softmax': cross-entropy over the whole catalog at every position (best quality on small catalogs).
 * 'bce': SASRec's original loss, one sampled negative per position (cost independent of the catalog).
 */
export type SasrecLoss = 'softmax' | 'bce';

export interface TrainStepResult {
  /** The objective minimized: the main loss plus the layers' auxiliary losses. */
  loss: number;
  /** The auxiliary part (0 for MultiHeadAttention). */
  auxLoss: number;
}

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

function sumLosses(losses: tf.Scalar[]): tf.Scalar {
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

function maskedMean(perPosition: tf.Tensor, targets: tf.Tensor): tf.Scalar {
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

export interface EvaluateOptions {
  ks?: number[];
  batchSize?: number;
  filterHistory?: boolean;
}

/** Full-ranking metrics of next-item cases (history -> target) with the full forward. */
export function evaluateSasrec(sasrec: Sasrec, cases: readonly NextItemCase[], options: EvaluateOptions = {}): RankingResult {
  const evaluator = new RankingEvaluator(options.ks ?? [10], { filterHistory: options.filterHistory ?? false });
  for (const batch of evaluationBatches(cases, options.batchSize ?? 256, sasrec.options.maxLength)) {
    const ids = batchTensor(batch.inputs, batch.batchSize, batch.maxLength);
    const scores = scoreNext(sasrec, ids);
    evaluator.update(scores, batch.targets, batch.histories);
    tf.dispose([ids, scores]);
  }
  return evaluator.result();
}

// ---------------------------------------------------------------- fitting

export interface FitOptions {
  maxEpochs?: number;
  /** Epochs without a better validation NDCG@10 before stopping. */
  patience?: number;
  batchSize?: number;
  learningRate?: number;
  loss?: SasrecLoss;
  seed?: number;
  /** Stop starting new epochs after this many seconds (the budget), 0 = none. */
  timeBudgetSeconds?: number;
  onEpoch?: (report: EpochReport) => void;
}

export interface EpochReport {
  epoch: number;
  loss: number;
  auxLoss: number;
  validationNdcg10: number;
  validationHr10: number;
  seconds: number;
  best: boolean;
}

export interface FitResult {
  epochs: number;
  bestEpoch: number;
  bestValidationNdcg10: number;
  trainSeconds: number;
  history: EpochReport[];
}

/**
 * Trains with Adam, validates NDCG@10 after each epoch, stops after `patience` epochs without
 * improvement (or at the budget) and restores the best epoch's weights.
 */
export function fitSasrec(sasrec: Sasrec, split: LeaveOneOutSplit, options: FitOptions = {}): FitResult {
  const o = { maxEpochs: 20, patience: 3, batchSize: 128, learningRate: 1e-3, loss: 'softmax' as SasrecLoss, seed: 1,
    timeBudgetSeconds: 0, ...options };
  const examples = trainingExamples(split.train, sasrec.options.maxLength);
  const optimizer = tf.train.adam(o.learningRate);
  const start = performance.now();
  const history: EpochReport[] = [];
  let best: { epoch: number; ndcg: number; weights: tf.Tensor[] } = { epoch: -1, ndcg: -1, weights: [] };
  try {
    for (let epoch = 0; epoch < o.maxEpochs; epoch++) {
      const { loss, auxLoss } = runEpoch(sasrec, optimizer, trainingBatches(examples, o.batchSize, o.seed, epoch), o.loss, o.seed + epoch * 7919);
      const validation = evaluateSasrec(sasrec, split.validation, { ks: [10] });
      const improved = validation.ndcg[10] > best.ndcg;
      if (improved) {
        tf.dispose(best.weights);
        best = { epoch, ndcg: validation.ndcg[10], weights: sasrec.model.getWeights().map((w) => tf.clone(w)) };
      }
      const report = { epoch: epoch + 1, loss, auxLoss, validationNdcg10: validation.ndcg[10], validationHr10: validation.hr[10],
        seconds: (performance.now() - start) / 1000, best: improved };
      history.push(report);
      o.onEpoch?.(report);
      if (epoch - best.epoch >= o.patience) break;
      if (o.timeBudgetSeconds > 0 && report.seconds >= o.timeBudgetSeconds) break;
    }
    if (best.weights.length > 0) sasrec.model.setWeights(best.weights);
  } finally {
    tf.dispose(best.weights);
    optimizer.dispose();
  }
  return { epochs: history.length, bestEpoch: best.epoch + 1, bestValidationNdcg10: best.ndcg, trainSeconds: (performance.now() - start) / 1000, history };
}

function runEpoch(sasrec: Sasrec, optimizer: tf.Optimizer, batches: Iterable<SequenceBatch>, loss: SasrecLoss, seed: number): TrainStepResult {
  let sum = 0;
  let auxSum = 0;
  let n = 0;
  for (const batch of batches) {
    const step = trainStep(sasrec, optimizer, batch, loss, seed + n);
    sum += step.loss;
    auxSum += step.auxLoss;
    n += 1;
  }
  return { loss: n ? sum / n : 0, auxLoss: n ? auxSum / n : 0 };
}
