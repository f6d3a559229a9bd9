import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { generateSynthetic, restoreDefaultEmbeddingGradients, useFastEmbeddingGradients, leaveOneOut, trainingBatches, trainingExamples } from 'collectivekv/internal';
import { buildSasrec, cacheBytesPerToken, forward, scoreNext, scoreNextCached } from '../../../src/zoo/sequential/sasrec';
import { trainStep, trainStepAsync } from '../../../src/zoo/sequential/sasrecTraining';

// wasm: the training test takes about a tenth of the cpu backend's time.
beforeAll(async () => {
  await useBackend('wasm');
  useFastEmbeddingGradients();
});
afterAll(() => restoreDefaultEmbeddingGradients());

const data = generateSynthetic({ numUsers: 64, numItems: 60, numTopics: 6, minLength: 5, maxLength: 12, seed: 3 });
const split = leaveOneOut(data);
const tiny = { numItems: data.numItems, maxLength: 10, hiddenDim: 16, numBlocks: 2, numHeads: 2, dropout: 0.1, seed: 7,
  collective: { poolSize: 32, userDim: 1 } };

describe.each(['mha', 'collectivekv'] as const)('SASRec with %s', (attention) => {
  it('builds: ids [B, L] -> hidden [B, L, d]', () => {
    const m = buildSasrec({ ...tiny, attention });
    expect(m.model.inputs[0].shape).toEqual([null, 10]);
    expect(m.model.outputs[0].shape).toEqual([null, 10, 16]);
    const scores = scoreNext(m, split.train.slice(0, 3));
    expect(scores.shape).toEqual([3, data.numItems + 1]);
    scores.dispose();
    m.model.dispose();
  });

  it('the training forward in inference mode equals the functional model', () => {
    const m = buildSasrec({ ...tiny, attention });
    const ids = tf.tensor2d([[0, 0, 0, 0, 0, 0, 0, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]], [2, 10], 'int32');
    const viaModel = m.model.apply(ids) as tf.Tensor;
    const viaForward = forward(m.parts, ids as tf.Tensor, { training: false });
    expect(viaForward.shape).toEqual([2, 10, 16]);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(viaModel, viaForward))).dataSync()[0])).toBeLessThan(1e-6);
    tf.dispose([ids, viaModel, viaForward]);
    m.model.dispose();
  });

  it('a few training steps lower the loss', () => {
    const m = buildSasrec({ ...tiny, attention, dropout: 0 });
    const examples = trainingExamples(split.train, tiny.maxLength);
    const batch = trainingBatches(examples, 64, 1).next().value!;
    const optimizer = tf.train.adam(0.02);
    const first = trainStep(m, optimizer, batch);
    let last = first;
    for (let i = 0; i < 8; i++) last = trainStep(m, optimizer, batch);
    expect(Number.isFinite(first.loss)).toBe(true);
    expect(last.loss).toBeLessThan(first.loss - 0.3);
    if (attention === 'collectivekv') expect(first.auxLoss).toBeGreaterThan(0);
    else expect(first.auxLoss).toBe(0);
    optimizer.dispose();
    m.model.dispose();
  });

  it('trainStepAsync (await data(), for webgpu in Node) takes the same steps as trainStep', async () => {
    const batch = trainingBatches(trainingExamples(split.train, tiny.maxLength), 32, 4).next().value!;
    const run = async (step: typeof trainStepAsync) => {
      const m = buildSasrec({ ...tiny, attention, dropout: 0 });
      const optimizer = tf.train.adam(0.02);
      const before = tf.memory().numTensors;
      const losses = [await step(m, optimizer, batch, 'bce', 1), await step(m, optimizer, batch, 'bce', 2)];
      const leaked = tf.memory().numTensors - before;
      optimizer.dispose();
      m.model.dispose();
      return { losses, leaked };
    };
    const sync = await run(async (...args) => trainStep(...args));
    const viaAsync = await run(trainStepAsync);
    expect(viaAsync.losses).toEqual(sync.losses);
    expect(sync.losses[1].loss).not.toEqual(sync.losses[0].loss);
    expect(viaAsync.leaked).toBe(sync.leaked);
  });

  it("the 'sampled' loss is the catalog softmax when its negatives cover the catalog (hits masked)", () => {
    // 60 items < SAMPLED_SOFTMAX_NEGATIVES: the shared negatives are every item, each target among them.
    const m = buildSasrec({ ...tiny, attention, dropout: 0 });
    const batch = trainingBatches(trainingExamples(split.train, tiny.maxLength), 32, 2).next().value!;
    const expected = tf.tidy(() => {
      const ids = tf.tensor2d(batch.inputs, [batch.batchSize, batch.maxLength], 'int32');
      const hidden = tf.reshape(forward(m.parts, ids, { training: true }), [-1, 16]);
      const rows = [...batch.targets.keys()].filter((i) => batch.targets[i] !== 0);
      const table = m.parts.itemEmbedding.getWeights()[0];
      const logits = tf.matMul(tf.gather(hidden, rows), tf.slice(table, [1, 0], [data.numItems, -1]), false, true);
      const targets = tf.tensor1d(rows.map((i) => batch.targets[i] - 1), 'int32');
      return tf.mean(tf.neg(tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(targets, data.numItems)), -1))).dataSync()[0];
    });
    const optimizer = tf.train.sgd(0);
    const step = trainStep(m, optimizer, batch, 'sampled', 5);
    expect(step.loss - step.auxLoss).toBeCloseTo(expected * (batch.lossWeight ?? 1), 4);
    const before = tf.memory().numTensors;
    trainStep(m, optimizer, batch, 'sampled', 6);
    expect(tf.memory().numTensors).toBe(before);
    optimizer.dispose();
    m.model.dispose();
  });

  it("a few training steps lower the 'sampled' loss", () => {
    const m = buildSasrec({ ...tiny, numItems: 600, attention, dropout: 0 });
    const remapped = split.train.map((seq) => seq.map((id) => 1 + ((id * 37) % 600)));
    const batch = trainingBatches(trainingExamples(remapped, tiny.maxLength), 64, 1).next().value!;
    const optimizer = tf.train.adam(0.02);
    const first = trainStep(m, optimizer, batch, 'sampled', 0);
    let last = first;
    for (let i = 1; i < 9; i++) last = trainStep(m, optimizer, batch, 'sampled', i);
    expect(last.loss).toBeLessThan(first.loss - 0.3);
    optimizer.dispose();
    m.model.dispose();
  });

  it('cached decode of the last position equals the full forward', () => {
    const m = buildSasrec({ ...tiny, attention });
    const seqs = [...split.train.slice(0, 4), [5], [1, 2]];
    // Warm up: builds every layer (the cache API needs built layers) and fills tfjs's one-time per-shape caches.
    tf.dispose([scoreNext(m, seqs), scoreNextCached(m, seqs)]);
    const before = tf.memory().numTensors;
    const full = scoreNext(m, seqs);
    const cached = scoreNextCached(m, seqs);
    const diff = tf.tidy(() => tf.max(tf.abs(tf.sub(full, cached))).dataSync()[0]);
    const scale = tf.tidy(() => tf.max(tf.abs(full)).dataSync()[0]);
    expect(diff).toBeLessThan(1e-4 * Math.max(1, scale));
    tf.dispose([full, cached]);
    expect(tf.memory().numTensors).toBe(before);
    m.model.dispose();
  });

  it('reports the cache bytes per token of its layers', () => {
    const m = buildSasrec({ ...tiny, attention });
    tf.dispose(scoreNext(m, [[1, 2]]));
    // 2 blocks; full: 2 * 16 floats * 4 B; collective: (uint8 index + 1 float) * 2 sides.
    expect(cacheBytesPerToken(m)).toBe(attention === 'mha' ? 2 * 2 * 16 * 4 : 2 * 2 * (1 + 4));
    m.model.dispose();
  });
});
