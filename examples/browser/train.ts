// Trains the demo's SASRec (CollectiveKV attention) on the synthetic data set. Run by
// scripts/browser-demo-build.ts in Node on the cpu backend.
//
// Alignment. The page's cache gives the i-th click window slot i (see sasrecRecommender.ts), while
// the zoo's training batches left-pad, so short histories would only ever be trained at the end
// slots and the first slots' position vectors would stay random. So the batches here are moved to
// the left (item i at slot i, padding after: with causal attention nothing sees the padding), and
// validation scores through the recommender, i.e. exactly the path the page runs.
import * as tf from '@tensorflow/tfjs-core';
import { generateSynthetic, leaveOneOut, useFastEmbeddingGradients, type SequenceBatch } from 'collectivekv';
import { evaluateNextItem, fitNextItem, type NextItemTrainable } from '../../src/zoo/sequential/nextItemTraining';
import { buildSasrec } from '../../src/zoo/sequential/sasrec';
import { sasrecTrainable } from '../../src/zoo/sequential/sasrecTraining';
import { SasrecRecommender } from '../../src/zoo/sequential/sasrecRecommender';
import { DEMO_DATA, DEMO_SASREC, MANIFEST_FORMAT, packWeights, type DemoManifest } from './model';

export interface TrainOptions {
  maxEpochs?: number;
  /** Wall-clock cap in seconds. */
  timeBudgetSeconds?: number;
  log?: (line: string) => void;
}

export interface TrainedDemo {
  manifest: DemoManifest;
  weights: Float32Array;
}

export function trainDemo(trainingKey: string, options: TrainOptions = {}): TrainedDemo {
  useFastEmbeddingGradients();
  const data = generateSynthetic(DEMO_DATA);
  const split = leaveOneOut(data);
  const sasrec = buildSasrec(DEMO_SASREC);
  const recommender = new SasrecRecommender(sasrec);
  const trainable = leftAligned(sasrecTrainable(sasrec), recommender);
  const fit = fitNextItem(trainable, split, {
    maxEpochs: options.maxEpochs ?? 30, patience: 3, batchSize: 64, learningRate: 3e-3, seed: 1, validationUsers: 400,
    timeBudgetSeconds: options.timeBudgetSeconds ?? 120,
    onEpoch: (r) => options.log?.(`epoch ${r.epoch}: loss ${r.loss.toFixed(3)}, validation NDCG@10 ${r.validationNdcg10.toFixed(4)}`),
  });
  const test = evaluateNextItem(trainable, split.test.slice(0, 600), { ks: [10] });
  const { specs, values } = packWeights(sasrec);
  sasrec.model.dispose();
  return {
    manifest: {
      format: MANIFEST_FORMAT, sasrec: DEMO_SASREC, weights: specs,
      topicOfItem: Array.from(data.world.topicOfItem), popularity: Array.from(data.world.popularity),
      quality: { hr10: test.hr[10], ndcg10: test.ndcg[10], epochs: fit.epochs, seconds: fit.trainSeconds }, trainingKey,
    },
    weights: values,
  };
}

/** The zoo's trainable with batches moved to slot 0 and scoring through the recommender (cache path). */
function leftAligned(base: NextItemTrainable<SequenceBatch>, recommender: SasrecRecommender): NextItemTrainable<SequenceBatch> {
  return {
    ...base,
    maxLength: recommender.maxLength,
    *batches(train, batchSize, seed, epoch) {
      for (const batch of base.batches(train, batchSize, seed, epoch)) yield shiftLeft(batch, recommender.maxLength);
    },
    scoreNext: (ids) => {
      const histories = unpad(ids.arraySync() as number[][]);
      const candidates = Int32Array.from({ length: recommender.numItems + 1 }, (_, i) => i);
      return tf.tensor2d(recommender.recompute(histories, candidates), [histories.length, candidates.length]);
    },
  };
}

/**
 * Left-padded rows (of a length-bucketed batch: width w <= window) -> the same items from slot 0
 * on, padding after, at the full window width: the model's positions then start at slot 0, as the
 * recommender's cache expects (inputs and targets alike).
 */
function shiftLeft(batch: SequenceBatch, window: number): SequenceBatch {
  const { batchSize: b, maxLength: w } = batch;
  const inputs = new Int32Array(b * window);
  const targets = new Int32Array(b * window);
  for (let row = 0; row < b; row++) {
    let start = row * w;
    while (start < (row + 1) * w && batch.inputs[start] === 0) start++;
    inputs.set(batch.inputs.subarray(start, (row + 1) * w), row * window);
    targets.set(batch.targets.subarray(start, (row + 1) * w), row * window);
  }
  return { ...batch, inputs, targets, maxLength: window };
}

function unpad(rows: number[][]): number[][] {
  return rows.map((r) => {
    const items = r.filter((id) => id !== 0);
    return items.length > 0 ? items : [1];
  });
}
