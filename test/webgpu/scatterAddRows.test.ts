/** @jest-environment ./test/util/webgpuEnvironment.js */
import * as tf from '@tensorflow/tfjs-core';
import { SCATTER_ADD_ROWS, scatterAddRows } from '../../ops/scatterAddRows/index';
import { compareWithCpu, describeWebGPU, indicesOnGpu, leakAcrossRepeats, randomFloats, randomInts } from '../util/webgpu';

describeWebGPU('scatterAddRows', () => {
  it('runs its own webgpu kernel', () => {
    expect(tf.getBackend()).toBe('webgpu');
    expect(tf.getKernel(SCATTER_ADD_ROWS, 'webgpu')).toBeDefined();
  });

  // [numRows, width, positions shape]. Few rows with many positions means many duplicate indices
  // (numRows 1: every position adds into the same row, maximal atomic contention).
  it.each([
    [1, 1, [1]], [1, 5, [300]], [7, 3, [4, 50]], [255, 64, [65]], [256, 65, [2, 3, 7]], [257, 2, [3000]], [4096, 8, [5000]],
    [9, 4, [0]],
  ])('matches cpu for %i rows of width %i from positions %j', async (numRows, width, shape) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const rows = randomFloats(n * width, n + width);
    const index = randomInts(n, numRows, numRows + 3);
    const [diff] = await compareWithCpu(() => scatterAddRows(tf.tensor(rows, [...shape, width]), tf.tensor(index, shape, 'int32'), numRows));
    expect(diff).toBeLessThan(1e-4);
  });

  it('sums duplicates exactly on integer-valued rows', async () => {
    const index = new Int32Array(1000).map((_, p) => p % 3);
    const out = scatterAddRows(tf.ones([1000, 2]), tf.tensor(index, [1000], 'int32'), 4);
    expect(Array.from(await out.data())).toEqual([334, 334, 333, 333, 333, 333, 0, 0]);
    out.dispose();
  });

  it('skips an out-of-range index that only exists on the GPU', async () => {
    const onGpu = indicesOnGpu([1, 102]);
    const rows = tf.ones([2, 2]);
    const out = scatterAddRows(rows, onGpu, 3);
    expect(Array.from(await out.data())).toEqual([0, 0, 1, 1, 0, 0]);
    tf.dispose([onGpu, rows, out]);
  });

  it('rejects out-of-range indices whose values are still on the CPU', () => {
    const rows = tf.ones([2, 2]);
    const index = tf.tensor([0, -1], [2], 'int32');
    expect(() => scatterAddRows(rows, index, 3)).toThrow(/indices in \[0, 3\)/);
    tf.dispose([rows, index]);
  });

  it('does not leak tensors or GPU buffers', async () => {
    const rows = randomFloats(300 * 9, 1);
    const index = randomInts(300, 50, 2);
    const growth = await leakAcrossRepeats(async () => {
      const out = tf.tidy(() => scatterAddRows(tf.tensor(rows, [300, 9]), tf.tensor(index, [300], 'int32'), 50));
      await out.data();
      out.dispose();
    });
    expect(growth).toEqual({ tensors: 0, buffers: 0 });
  });
});
