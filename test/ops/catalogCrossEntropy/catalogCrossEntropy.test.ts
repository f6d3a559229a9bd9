import * as tf from '@tensorflow/tfjs-core';
import { catalogCrossEntropy, catalogCrossEntropyComposite } from '../../../ops/catalogCrossEntropy/index';
import { restoreDefaultEmbeddingGradients, useFastEmbeddingGradients } from '../../../ops/embeddingGradients/index';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomTensor } from '../../util/backends';

function targets(rows: number, catalog: number, seed: number): tf.Tensor1D {
  return tf.tensor1d(Array.from({ length: rows }, (_, i) => (i * 7 + seed * 3) % catalog), 'int32');
}

// The composite reference differentiates tf.gather, whose gradient wasm lacks without this.
beforeAll(() => useFastEmbeddingGradients());
afterAll(() => restoreDefaultEmbeddingGradients());

describeEachBackend('catalogCrossEntropy', () => {
  it.each([[5, 3, 11], [1, 4, 2], [9, 8, 257]])('matches the composite in value and gradients (rows %i, width %i, catalog %i)',
    (rows: number, width: number, catalog: number) => {
      const h = randomTensor([rows, width], 1) as tf.Tensor2D;
      const t = randomTensor([catalog, width], 2) as tf.Tensor2D;
      const y = targets(rows, catalog, 1);
      expect(Math.abs(catalogCrossEntropy(h, t, y).dataSync()[0] - catalogCrossEntropyComposite(h, t, y).dataSync()[0])).toBeLessThan(1e-5);
      const ours = tf.grads((a: tf.Tensor, b: tf.Tensor) => catalogCrossEntropy(a as tf.Tensor2D, b as tf.Tensor2D, y))([h, t]);
      const theirs = tf.grads((a: tf.Tensor, b: tf.Tensor) => catalogCrossEntropyComposite(a as tf.Tensor2D, b as tf.Tensor2D, y))([h, t]);
      expect(maxAbsDiff(ours[0], theirs[0])).toBeLessThan(1e-5);
      expect(maxAbsDiff(ours[1], theirs[1])).toBeLessThan(1e-5);
      tf.dispose([h, t, y, ...ours, ...theirs]);
    });

  it.each([[1, 'forward'], [2, 'forward'], [4, 'forward'], [2, 'backward'], [9, 'backward']] as const)(
    'gives the same value and gradients in chunks of %i rows, gradients computed in the %s pass', (chunkRows, gradients) => {
    const h = randomTensor([5, 3], 7) as tf.Tensor2D;
    const t = randomTensor([9, 3], 8) as tf.Tensor2D;
    const y = tf.tensor1d([2, 2, 8, 0, 5], 'int32');
    const options = { chunkRows, gradients };
    expect(Math.abs(catalogCrossEntropy(h, t, y, options).dataSync()[0] - catalogCrossEntropyComposite(h, t, y).dataSync()[0])).toBeLessThan(1e-5);
    // A loss scaled after the op: the kept gradients are multiplied by the incoming dy.
    const ours = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.mul(catalogCrossEntropy(a as tf.Tensor2D, b as tf.Tensor2D, y, options), 3))([h, t]);
    const theirs = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.mul(catalogCrossEntropyComposite(a as tf.Tensor2D, b as tf.Tensor2D, y), 3))([h, t]);
    expect(maxAbsDiff(ours[0], theirs[0])).toBeLessThan(1e-5);
    expect(maxAbsDiff(ours[1], theirs[1])).toBeLessThan(1e-5);
    expect(() => catalogCrossEntropy(h, t, y, { chunkRows: 0 })).toThrow(/options.chunkRows.*positive integer.*0/);
    expect(() => catalogCrossEntropy(h, t, y, { gradients: 'later' as 'backward' })).toThrow(/options.gradients.*'forward' or 'backward'.*'later'/);
    tf.dispose([h, t, y, ...ours, ...theirs]);
  });

  it.each(['forward', 'backward'] as const)('computes the gradients (%s) of targets made inside the function tf.grads differentiates (disposed with its forward pass; webgpu needs them kept)', (gradients) => {
    const h = randomTensor([4, 3], 9) as tf.Tensor2D;
    const t = randomTensor([5, 3], 10) as tf.Tensor2D;
    const objective = (a: tf.Tensor, b: tf.Tensor) => catalogCrossEntropy(a as tf.Tensor2D, b as tf.Tensor2D, tf.tensor1d([0, 4, 4, 2], 'int32'), { gradients });
    const reference = (a: tf.Tensor, b: tf.Tensor) => catalogCrossEntropyComposite(a as tf.Tensor2D, b as tf.Tensor2D, tf.tensor1d([0, 4, 4, 2], 'int32'));
    const ours = tf.grads(objective)([h, t]);
    const theirs = tf.grads(reference)([h, t]);
    expect(maxAbsDiff(ours[0], theirs[0])).toBeLessThan(1e-5);
    expect(maxAbsDiff(ours[1], theirs[1])).toBeLessThan(1e-5);
    tf.dispose([h, t, ...ours, ...theirs]);
  });

  it('gives 0 and zero gradients for no rows', () => {
    const h = tf.zeros([0, 4]) as tf.Tensor2D;
    const t = randomTensor([5, 4], 11) as tf.Tensor2D;
    const y = tf.tensor1d([], 'int32');
    expect(catalogCrossEntropy(h, t, y).dataSync()[0]).toBe(0);
    const [dh, dt] = tf.grads((a: tf.Tensor, b: tf.Tensor) => catalogCrossEntropy(a as tf.Tensor2D, b as tf.Tensor2D, y))([h, t]);
    expect(dh.shape).toEqual([0, 4]);
    expect(Array.from(dt.dataSync())).toEqual(new Array(20).fill(0));
    tf.dispose([h, t, y, dh, dt]);
  });

  it('matches finite differences, with repeated targets', () => {
    const h = randomTensor([6, 4], 3) as tf.Tensor2D;
    const t = randomTensor([5, 4], 4) as tf.Tensor2D;
    const y = tf.tensor1d([1, 1, 4, 0, 1, 2], 'int32');
    expect(finiteDifferenceError((a) => catalogCrossEntropy(a as tf.Tensor2D, t, y), h, 1e-2)).toBeLessThan(2e-3);
    expect(finiteDifferenceError((b) => catalogCrossEntropy(h, b as tf.Tensor2D, y), t, 1e-2)).toBeLessThan(2e-3);
    tf.dispose([h, t, y]);
  });

  it('stays finite for large logits (the shift keeps exp in range)', () => {
    const h = tf.mul(randomTensor([3, 4], 5), 100) as tf.Tensor2D;
    const t = tf.mul(randomTensor([7, 4], 6), 100) as tf.Tensor2D;
    const y = targets(3, 7, 2);
    const ours = catalogCrossEntropy(h, t, y).dataSync()[0];
    expect(Number.isFinite(ours)).toBe(true);
    expect(Math.abs(ours - catalogCrossEntropyComposite(h, t, y).dataSync()[0]) / Math.max(1, Math.abs(ours))).toBeLessThan(1e-4);
    tf.dispose([h, t, y]);
  });

  it('rejects bad inputs, naming the argument', () => {
    const h = tf.zeros([2, 3]) as tf.Tensor2D;
    const t = tf.zeros([4, 3]) as tf.Tensor2D;
    expect(() => catalogCrossEntropy(h, tf.zeros([4, 2]) as tf.Tensor2D, tf.tensor1d([0, 1], 'int32'))).toThrow(/table.*width 3.*width 2/);
    expect(() => catalogCrossEntropy(h, t, tf.tensor1d([0, 1, 2], 'int32'))).toThrow(/targets.*length 2.*length 3/);
    expect(() => catalogCrossEntropy(h, t, tf.tensor1d([0, 1]))).toThrow(/targets/);
    tf.dispose([h, t]);
  });

  it('computes the value without a tape, and takes no references then', () => {
    const h = randomTensor([3, 2], 1) as tf.Tensor2D;
    const t = randomTensor([4, 2], 2) as tf.Tensor2D;
    const y = targets(3, 4, 0);
    const reference = catalogCrossEntropyComposite(h, t, y);
    const before = tf.memory().numTensors;
    const ours = catalogCrossEntropy(h, t, y);
    expect(Math.abs(ours.dataSync()[0] - reference.dataSync()[0])).toBeLessThan(1e-5);
    ours.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([h, t, y, reference]);
  });

  it('leaks no tensors', () => {
    const h = randomTensor([4, 3], 1) as tf.Tensor2D;
    const t = randomTensor([6, 3], 2) as tf.Tensor2D;
    const y = targets(4, 6, 0);
    const before = tf.memory().numTensors;
    for (const gradients of ['forward', 'backward'] as const) {
      catalogCrossEntropy(h, t, y).dispose();
      tf.grads((a: tf.Tensor, b: tf.Tensor) => catalogCrossEntropy(a as tf.Tensor2D, b as tf.Tensor2D, y, { gradients }))([h, t]).forEach((g) => g.dispose());
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([h, t, y]);
  });
});
