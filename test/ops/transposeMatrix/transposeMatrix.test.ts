import * as tf from '@tensorflow/tfjs-core';
import { transposeMatrix } from '../../../ops/transposeMatrix/index';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomTensor } from '../../util/backends';

describeEachBackend('transposeMatrix', () => {
  // Shapes around the 16-wide tiles: partial tiles on either axis, a single row or column.
  it.each([[1, 1], [1, 7], [7, 1], [16, 16], [17, 33], [40, 3]])('equals tf.transpose for [%i, %i]', (rows: number, cols: number) => {
    const x = randomTensor([rows, cols], rows * 100 + cols) as tf.Tensor2D;
    const ours = transposeMatrix(x);
    const reference = tf.transpose(x);
    expect(ours.shape).toEqual([cols, rows]);
    expect(maxAbsDiff(ours, reference)).toBe(0);
    tf.dispose([x, ours, reference]);
  });

  it('keeps int32 values and dtype', () => {
    const x = tf.tensor2d([[1, 2, 3], [4, 5, 6]], [2, 3], 'int32');
    const y = transposeMatrix(x);
    expect(y.dtype).toBe('int32');
    expect(Array.from(y.dataSync())).toEqual([1, 4, 2, 5, 3, 6]);
    tf.dispose([x, y]);
  });

  it('has the transpose as its gradient', () => {
    const x = randomTensor([5, 3], 2) as tf.Tensor2D;
    const weights = randomTensor([3, 5], 3);
    expect(finiteDifferenceError((a) => tf.sum(tf.mul(transposeMatrix(a as tf.Tensor2D), weights)), x, 1e-2)).toBeLessThan(1e-3);
    tf.dispose([x, weights]);
  });

  it('rejects a tensor that is not a matrix, and leaks nothing', () => {
    const v = tf.zeros([4]);
    expect(() => transposeMatrix(v as unknown as tf.Tensor2D)).toThrow(/transposeMatrix.*x/);
    const x = randomTensor([6, 4], 1) as tf.Tensor2D;
    const before = tf.memory().numTensors;
    transposeMatrix(x).dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([v, x]);
  });
});
