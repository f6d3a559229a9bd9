import * as tf from '@tensorflow/tfjs-core';
import { BATCHED_MAT_MUL, batchedMatMul } from '../../../ops/batchedMatMul/index';
import { MIN_MACS_PER_ENTRY } from '../../../ops/batchedMatMul/wasm';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomTensor } from '../../util/backends';

/** [batch axes, m, k, n]: small products (the backend's own kernel on wasm) and large ones (one XNNPACK call per entry). */
const CASES: Array<[string, number[], number, number, number]> = [
  ['small, rank 3', [3], 2, 4, 5],
  ['small, rank 4', [2, 3], 3, 2, 4],
  ['large, rank 3', [3], 40, 32, 30],
  ['large, rank 4', [2, 2], 33, 40, 25],
  ['large, batch 1', [1], 40, 32, 30],
];

function operands(lead: number[], m: number, k: number, n: number, transposeA: boolean, transposeB: boolean, seed: number) {
  const a = randomTensor([...lead, ...(transposeA ? [k, m] : [m, k])], seed);
  const b = randomTensor([...lead, ...(transposeB ? [n, k] : [k, n])], seed + 1);
  return { a, b };
}

describeEachBackend('batchedMatMul', (backend) => {
  it('has a kernel on this backend', () => {
    expect(tf.getKernel(BATCHED_MAT_MUL, backend)).toBeDefined();
  });

  it('covers both wasm paths: the large cases are above the per-entry threshold, the small ones below', () => {
    const macs = CASES.map(([, , m, k, n]) => m * k * n);
    expect(macs.filter((x) => x >= MIN_MACS_PER_ENTRY).length).toBe(3);
    expect(macs.filter((x) => x < MIN_MACS_PER_ENTRY).length).toBe(2);
  });

  describe.each(CASES)('%s', (_, lead, m, k, n) => {
    it.each([[false, false], [true, false], [false, true], [true, true]])('matches tf.matMul in value and gradients (transposeA %s, transposeB %s)',
      (transposeA: boolean, transposeB: boolean) => {
        const { a, b } = operands(lead, m, k, n, transposeA, transposeB, 11);
        const up = randomTensor([...lead, m, n], 13);
        const ours = batchedMatMul(a, b, transposeA, transposeB);
        const theirs = tf.matMul(a, b, transposeA, transposeB);
        expect(ours.shape).toEqual([...lead, m, n]);
        expect(maxAbsDiff(ours, theirs)).toBeLessThan(1e-4);
        const loss = (f: typeof batchedMatMul) => (x: tf.Tensor, y: tf.Tensor) => tf.sum(tf.mul(f(x, y, transposeA, transposeB), up));
        const g = tf.grads(loss(batchedMatMul))([a, b]);
        const r = tf.grads(loss((x, y, ta, tb) => tf.matMul(x, y, ta, tb)))([a, b]);
        expect(maxAbsDiff(g[0], r[0])).toBeLessThan(1e-4);
        expect(maxAbsDiff(g[1], r[1])).toBeLessThan(1e-4);
        tf.dispose([a, b, up, ours, theirs, ...g, ...r]);
      });
  });

  it('gives each batch entry its own product when entries change between calls', () => {
    // XNNPACK caches packed right operands per tensor id; stale ones would repeat the first entry's b.
    const a = randomTensor([4, 40, 32], 1);
    for (const seed of [2, 3]) {
      const b = randomTensor([4, 32, 30], seed);
      const ours = batchedMatMul(a, b);
      const theirs = tf.matMul(a, b);
      expect(maxAbsDiff(ours, theirs)).toBeLessThan(1e-4);
      tf.dispose([b, ours, theirs]);
    }
    a.dispose();
  });

  it('matches finite differences', () => {
    const a = randomTensor([2, 3, 4], 7);
    const b = randomTensor([2, 4, 5], 8);
    const up = randomTensor([2, 3, 5], 9);
    expect(finiteDifferenceError((x) => tf.sum(tf.mul(batchedMatMul(x, b), up)) as tf.Scalar, a, 1e-2)).toBeLessThan(2e-3);
    expect(finiteDifferenceError((y) => tf.sum(tf.mul(batchedMatMul(a, y), up)) as tf.Scalar, b, 1e-2)).toBeLessThan(2e-3);
    tf.dispose([a, b, up]);
  });

  it('leaks no tensors, on either path', () => {
    const pairs = [operands([3], 2, 4, 5, false, false, 1), operands([3], 40, 32, 30, false, true, 3)];
    const before = tf.memory().numTensors;
    for (const { a, b } of pairs) {
      for (let i = 0; i < 2; i++) {
        batchedMatMul(a, b, false, a.shape[2] !== b.shape[1]).dispose();
        tf.grads((x: tf.Tensor, y: tf.Tensor) => tf.sum(batchedMatMul(x, y, false, x.shape[2] !== y.shape[1])))([a, b]).forEach((g) => g.dispose());
      }
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose(pairs.flatMap(({ a, b }) => [a, b]));
  });

  it('rejects bad inputs, naming the argument', () => {
    const a = tf.zeros([2, 3, 4]);
    expect(() => batchedMatMul(tf.zeros([3, 4]), a)).toThrow(/batchedMatMul: argument 'a' must be a tensor of rank >= 3/);
    expect(() => batchedMatMul(a, tf.zeros([3, 4, 5]))).toThrow(/argument 'b' must be the batch axes of a, \[2\]/);
    expect(() => batchedMatMul(a, tf.zeros([2, 5, 5]))).toThrow(/argument 'b' must be an inner axis of 4/);
    expect(() => batchedMatMul(a, tf.zeros([2, 4, 5], 'int32'))).toThrow(/argument 'b'/);
    expect(() => batchedMatMul(a, tf.zeros([2, 3, 5]), true).dispose()).not.toThrow();
    a.dispose();
  });
});
