import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import {
  isFastEmbeddingGradientsEnabled, restoreDefaultEmbeddingGradients, useFastEmbeddingGradients,
} from '../../../ops/embeddingGradients/index';
import { maxAbsDiff, randomIndex, randomTensor, useBackend } from '../../util/backends';

const USS = 'UnsortedSegmentSum';
// Taken before anything in this file could replace it.
const tfjsCpuKernel = tf.getKernel(USS, 'cpu');

/** Gradient of sum(gather(table, index) * w) w.r.t. the table: tfjs's own gather gradient. */
function gatherGrad(table: tf.Tensor, index: tf.Tensor, w: tf.Tensor): tf.Tensor {
  return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.gather(t, index), w)))(table);
}

/** A small Embedding model; `seed` fixes its initial weights. */
function embeddingModel(seed: number, extras: boolean): tfl.Sequential {
  const m = tfl.sequential();
  m.add(tfl.layers.embedding({ inputDim: 40, outputDim: 6, inputLength: 5,
    embeddingsInitializer: tfl.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed }) }));
  if (extras) {
    m.add(tfl.layers.layerNormalization());
    m.add(tfl.layers.dropout({ rate: 0.1 }));
  }
  m.add(tfl.layers.flatten());
  m.add(tfl.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tfl.initializers.glorotUniform({ seed: seed + 1 }) }));
  return m;
}

/**
 * Inputs and a learnable one-hot target (class = first token mod 3). The target is built from a
 * Float32Array on purpose: tfjs 4.22's cpu Cast int32->float32 keeps the Int32Array, and moving
 * that tensor to wasm copies its int bits into a float32 heap buffer (1 becomes 1.4e-45).
 */
function embeddingData(n: number, seed: number): { x: tf.Tensor; y: tf.Tensor } {
  const x = randomIndex([n, 5], 40, seed);
  const ids = x.dataSync();
  const y = new Float32Array(n * 3);
  for (let i = 0; i < n; i++) y[i * 3 + (ids[i * 5] % 3)] = 1;
  return { x, y: tf.tensor2d(y, [n, 3]) };
}

/** Gradients of the model's cross-entropy w.r.t. all its weights, in weight order. */
function modelGrads(model: tfl.Sequential, x: tf.Tensor, y: tf.Tensor): tf.Tensor[] {
  const { grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, tf.log(model.apply(x) as tf.Tensor)) as tf.Scalar);
  return model.trainableWeights.map((w) => grads[w.originalName]);
}

beforeAll(() => useBackend('cpu'));

beforeAll(() => useBackend('cpu'));

afterEach(async () => {
  restoreDefaultEmbeddingGradients();
  tf.env().set('IS_TEST', true);
  await useBackend('cpu');
});

/**
 * tfjs's IS_TEST leak check (set by test/util/backends) misfires inside tfjs itself on whole
 * models: softmaxCrossEntropy's saved tensors on cpu, fused matMul on wasm, with or without our
 * kernels. The model tests turn it off; the kernel tests keep it on.
 */
function withoutTfjsLeakCheck(): void {
  tf.env().set('IS_TEST', false);
}

describe('useFastEmbeddingGradients', () => {
  it('is an opt-in: importing changes no kernel, and wasm cannot take a gather gradient', async () => {
    expect(isFastEmbeddingGradientsEnabled()).toBe(false);
    expect(tfjsCpuKernel).toBeDefined();
    expect(tf.getKernel(USS, 'wasm')).toBeUndefined();
    await useBackend('wasm');
    const table = randomTensor([5, 2], 1);
    expect(() => gatherGrad(table, tf.tensor1d([1, 1], 'int32'), tf.ones([2, 2])))
      .toThrow(/Kernel 'UnsortedSegmentSum' not registered for backend 'wasm'/);
  });

  it('registers on enable and restores tfjs\'s kernels, idempotently and without duplicate warnings', () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      useFastEmbeddingGradients();
      useFastEmbeddingGradients();
      expect(isFastEmbeddingGradientsEnabled()).toBe(true);
      expect(tf.getKernel(USS, 'wasm')).toBeDefined();
      expect(tf.getKernel(USS, 'cpu')?.kernelFunc).not.toBe(tfjsCpuKernel?.kernelFunc);
      restoreDefaultEmbeddingGradients();
      restoreDefaultEmbeddingGradients();
      expect(isFastEmbeddingGradientsEnabled()).toBe(false);
      expect(tf.getKernel(USS, 'wasm')).toBeUndefined();
      expect(tf.getKernel(USS, 'cpu')?.kernelFunc).toBe(tfjsCpuKernel?.kernelFunc);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });

  describe.each(['cpu', 'wasm'])('UnsortedSegmentSum [%s] equals tfjs\'s cpu kernel', (backend) => {
    // tfjs's own kernel mishandles segment ids of rank > 1 (a broadcast error), so the expected
    // value always comes from the flattened (rank-1 ids) form of the same sum.
    const cases: Array<{ name: string; make: () => [tf.Tensor, tf.Tensor, number] }> = [
      { name: '2-d x, duplicate ids, ids outside [0, n) dropped',
        make: () => [randomTensor([7, 3], 1), tf.tensor1d([0, 4, 4, -1, 5, 2, 4], 'int32'), 5] },
      { name: '3-d x with 2-d ids (odd sizes)', make: () => [randomTensor([3, 5, 7], 2), randomIndex([3, 5], 257, 3), 257] },
      { name: 'int32 x', make: () => [tf.tensor2d([[1, 2], [3, 4], [5, 6]], [3, 2], 'int32'), tf.tensor1d([1, 0, 1], 'int32'), 2] },
      { name: 'single segment, single row', make: () => [randomTensor([1, 4], 4), tf.tensor1d([0], 'int32'), 1] },
    ];
    it.each(cases)('$name', async ({ make }) => {
      const [x, ids, n] = make();
      const width = x.size / ids.size;
      const flat = tf.unsortedSegmentSum(tf.reshape(x, [ids.size, width]), tf.reshape(ids, [-1]), n); // cpu, tfjs's kernel
      const expected = tf.reshape(flat, [n, ...x.shape.slice(ids.rank)]);
      useFastEmbeddingGradients();
      await useBackend(backend);
      const actual = tf.unsortedSegmentSum(x, ids as tf.Tensor1D, n);
      expect(actual.dtype).toBe(x.dtype);
      expect(maxAbsDiff(actual, expected)).toBeLessThan(1e-5);
    });
  });

  it('rejects segment ids that do not match x\'s leading shape, naming the argument', () => {
    useFastEmbeddingGradients();
    expect(() => tf.unsortedSegmentSum(tf.zeros([3, 2]), tf.tensor1d([0, 1], 'int32'), 2))
      .toThrow(/UnsortedSegmentSum: argument 'segmentIds'/);
  });

  it('gives an Embedding model the same gradients as tfjs\'s default on cpu, on cpu and wasm', async () => {
    withoutTfjsLeakCheck();
    const model = embeddingModel(7, false);
    const { x, y } = embeddingData(24, 8);
    const expected = modelGrads(model, x, y);
    useFastEmbeddingGradients();
    for (const backend of ['cpu', 'wasm']) {
      await useBackend(backend);
      const actual = modelGrads(model, x, y);
      expect(actual.length).toBe(expected.length);
      actual.forEach((g, i) => expect(maxAbsDiff(g, expected[i])).toBeLessThan(1e-5));
      expect(tf.sum(tf.abs(actual[0])).dataSync()[0]).toBeGreaterThan(0);
    }
  });

  it('lets model.fit train an Embedding + LayerNormalization + Dropout + Dense model with Adam on wasm', async () => {
    withoutTfjsLeakCheck();
    useFastEmbeddingGradients();
    await useBackend('wasm');
    const model = embeddingModel(3, true);
    model.compile({ optimizer: tf.train.adam(0.05), loss: 'categoricalCrossentropy' });
    const { x, y } = embeddingData(64, 4);
    const before = model.getWeights()[0].dataSync().slice();
    const history = await model.fit(x, y, { epochs: 8, batchSize: 16, verbose: 0 });
    const loss = history.history.loss as number[];
    expect(loss[loss.length - 1]).toBeLessThan(loss[0] * 0.8);
    expect(maxAbsDiff(model.getWeights()[0], tf.tensor(before, [40, 6]))).toBeGreaterThan(1e-3);
  });

  it('leaks no tensors over repeated gather gradients (cpu and wasm)', async () => {
    useFastEmbeddingGradients();
    for (const backend of ['cpu', 'wasm']) {
      await useBackend(backend);
      const table = randomTensor([30, 4], 1);
      const index = randomIndex([3, 7], 30, 2);
      const w = randomTensor([3, 7, 4], 3);
      const before = tf.memory().numTensors;
      const idsBefore = tf.engine().backend.numDataIds();
      for (let i = 0; i < 5; i++) gatherGrad(table, index, w).dispose();
      expect(tf.memory().numTensors).toBe(before);
      expect(tf.engine().backend.numDataIds()).toBe(idsBefore);
    }
  });

  it('is far faster than tfjs\'s cpu kernel (one pass instead of one pass per table row)', () => {
    // Small: tfjs's kernel already takes a while here (it grows with rows x indices x width).
    const rows = randomTensor([500, 16], 1);
    const ids = randomIndex([500], 32, 2);
    const time = (reps: number): number => {
      let best = Infinity;
      for (let i = 0; i < reps; i++) {
        const t0 = performance.now();
        tf.unsortedSegmentSum(rows, ids as tf.Tensor1D, 32).dispose();
        best = Math.min(best, performance.now() - t0);
      }
      return best;
    };
    const slow = time(1);
    useFastEmbeddingGradients();
    const fast = time(5);
    expect(slow / fast).toBeGreaterThan(100);
  });
});
