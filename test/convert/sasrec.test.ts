// The zoo's SASRec: convert a briefly trained mha model and keep training the converted one.
import * as tf from '@tensorflow/tfjs-core';
import { generateSynthetic, leaveOneOut, restoreDefaultEmbeddingGradients, trainingBatches, trainingExamples, useFastEmbeddingGradients, batchTensor, SequenceBatch } from 'collectivekv/internal';
import { analyzeKV } from '../../src/analysis/index';
import { copyWeightsByName, swapAttention } from '../../src/convert/index';
import { buildSasrec, scoreNext } from '../../src/zoo/sequential/sasrec';
import { trainStep } from '../../src/zoo/sequential/sasrecTraining';
import { maxAbsDiff, useBackend } from '../util/backends';

beforeAll(async () => {
  await useBackend('cpu');
  useFastEmbeddingGradients();
});
afterAll(() => restoreDefaultEmbeddingGradients());

const data = generateSynthetic({ numUsers: 96, numItems: 60, numTopics: 6, minLength: 6, maxLength: 14, seed: 3 });
const split = leaveOneOut(data);
const options = { numItems: data.numItems, maxLength: 12, hiddenDim: 16, numBlocks: 2, numHeads: 2, dropout: 0, seed: 7 };
const examples = trainingExamples(split.train, options.maxLength);

test('converted SASRec: same outputs as a zoo collectivekv build with copied weights, and it trains further', () => {
  const base = buildSasrec({ ...options, attention: 'mha' });
  const optimizer = tf.train.adam(0.01);
  for (const batch of trainingBatches(examples, 32, 1)) trainStep(base, optimizer, batch);
  optimizer.dispose();
  const first = trainingBatches(examples, 96, 2).next().value as SequenceBatch;
  const sample = batchTensor(first.inputs, first.batchSize, first.maxLength);
  const collective = { poolSize: 32, userDim: 2, userActivation: 'linear' };
  const { model, layers } = swapAttention(base.model, { sample, ...collective, seed: 1 });
  for (const l of layers) expect(l.key!.routingAgreement).toBeGreaterThan(0.9);
  // The zoo's own collectivekv build, with the converted weights, is the same function.
  const target = buildSasrec({ ...options, attention: 'collectivekv', collective });
  copyWeightsByName(model, target.model);
  const direct = model.predict(sample) as tf.Tensor;
  const viaZoo = target.model.predict(sample) as tf.Tensor;
  expect(maxAbsDiff(direct, viaZoo)).toBeLessThan(1e-5);

  // Fine-tune: the loss (main + routing losses) falls over a few epochs.
  const tune = tf.train.adam(0.01);
  const losses: number[] = [];
  const batch = trainingBatches(examples, 96, 5).next().value as SequenceBatch;
  for (let step = 0; step < 4; step++) losses.push(trainStep(target, tune, batch).loss);
  expect(losses[losses.length - 1]).toBeLessThan(losses[0] - 0.05);
  const scores = scoreNext(target, split.test.slice(0, 4).map((c) => c.history));
  expect(scores.shape).toEqual([4, data.numItems + 1]);
  tf.dispose([sample, direct, viaZoo, scores]);
  tune.dispose();
  [base.model, model, target.model].forEach((m) => m.dispose());
});

test('analyzeKV on SASRec: per block K and V over the valid tokens, equal to a direct SVD of the projections', () => {
  const sasrec = buildSasrec({ ...options, attention: 'mha' });
  const first = trainingBatches(examples, 64, 2).next().value as SequenceBatch;
  const ids = batchTensor(first.inputs, first.batchSize, first.maxLength);
  const analysis = analyzeKV(sasrec.model, ids, { center: true, numPairs: 300 });
  const validTokens = first.inputs.filter((id) => id !== 0).length;
  expect(analysis.layers.map((l) => l.layer)).toEqual(['block0_attention', 'block1_attention']);
  for (const l of analysis.layers) {
    for (const side of [l.keys, l.values]) {
      expect(side.tokens).toBe(validTokens);
      expect(side.width).toBe(16);
      expect(side.cumulativeEnergy[15]).toBeCloseTo(1, 9);
      expect(side.rank90).toBeLessThanOrEqual(side.rank95);
      expect(side.rank95).toBeLessThanOrEqual(side.rank99);
      expect([1, 2, 4, 8]).toContain(side.suggestedUserDim);
    }
    expect(l.reasoning).toMatch(/^K: top \d+ of 16 components hold/);
  }
  // Block 0's K/V source is the embedded ids: K = x Wk + bk, checked against a direct computation.
  const layer = sasrec.model.getLayer('block0_attention');
  const [wk, bk] = [layer.getWeights()[2], layer.getWeights()[3]];
  const x = tf.tidy(() => {
    const emb = sasrec.model.getLayer('item_embedding').apply(ids) as tf.Tensor;
    return sasrec.model.getLayer('positions').apply(emb) as tf.Tensor;
  });
  const k = tf.tidy(() => tf.add(tf.matMul(tf.reshape(x, [-1, 16]), wk), bk));
  const kData = k.dataSync();
  const rows: number[] = [];
  first.inputs.forEach((id, i) => { if (id !== 0) rows.push(...kData.slice(i * 16, i * 16 + 16)); });
  const sumSq = rows.reduce((s, v) => s + v * v, 0);
  const mean = new Array(16).fill(0).map((_, c) => rows.filter((_, i) => i % 16 === c).reduce((s, v) => s + v, 0) / validTokens);
  const centeredSq = sumSq - validTokens * mean.reduce((s, m) => s + m * m, 0);
  const svSq = analysis.layers[0].keys.singularValues.reduce((s, v) => s + v * v, 0);
  expect(svSq / centeredSq).toBeCloseTo(1, 4);
  tf.dispose([ids, x, k]);
  sasrec.model.dispose();
});
