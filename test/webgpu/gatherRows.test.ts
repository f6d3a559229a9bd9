/** @jest-environment ./test/util/webgpuEnvironment.js */
import * as tf from '@tensorflow/tfjs-core';
import { GATHER_ROWS, gatherRows } from '../../ops/gatherRows/index';
import { compareWithCpu, describeWebGPU, indicesOnGpu, leakAcrossRepeats, randomFloats, randomInts } from '../util/webgpu';

describeWebGPU('gatherRows', () => {
  it('runs its own webgpu kernel', () => {
    expect(tf.getBackend()).toBe('webgpu');
    expect(tf.getKernel(GATHER_ROWS, 'webgpu')).toBeDefined();
  });

  // [numRows, width, index shape]: pool sizes 1, 255, 256, 257, 4096; widths around 64; index ranks 1-3.
  it.each([
    [1, 1, [1]], [255, 7, [3, 11]], [256, 64, [65]], [257, 65, [2, 3, 5]], [4096, 16, [1000]], [3, 5, [0]],
  ])('matches cpu for a %i x %i table and index %j, with and without gate', async (numRows, width, indexShape) => {
    const n = indexShape.reduce((a, b) => a * b, 1);
    const table = randomFloats(numRows * width, numRows + width);
    const index = randomInts(n, numRows, n + 1);
    const gate = randomFloats(n, n + 2);
    const diffs = await compareWithCpu(() => {
      const t = tf.tensor(table, [numRows, width]);
      const i = tf.tensor(index, indexShape, 'int32');
      return [gatherRows(t, i), gatherRows(t, i, tf.tensor(gate, indexShape))];
    });
    expect(Math.max(...diffs)).toBeLessThan(1e-4);
  });

  it.each([[257, 9, [2, 3, 5], 1], [256, 64, [65], 3], [4, 2, [7], 0]])(
    'matches cpu joining a tail: %i x %i table, index %j, tail width %i', async (numRows, width, indexShape, tailWidth) => {
      const n = indexShape.reduce((a, b) => a * b, 1);
      const table = randomFloats(numRows * width, numRows + 1);
      const index = randomInts(n, numRows, n + 3);
      const gate = randomFloats(n, n + 4);
      const tail = randomFloats(n * tailWidth, n + 5);
      const diffs = await compareWithCpu(() => {
        const t = tf.tensor(table, [numRows, width]);
        const i = tf.tensor(index, indexShape, 'int32');
        const u = tf.tensor(tail, [...indexShape, tailWidth]);
        return [gatherRows(t, i, undefined, u), gatherRows(t, i, tf.tensor(gate, indexShape), u)];
      });
      expect(Math.max(...diffs)).toBeLessThan(1e-4);
    });

  it('rejects out-of-range indices whose values are still on the CPU, like the cpu kernel', () => {
    const table = tf.ones([4, 2]);
    const index = tf.tensor([0, 4], [2], 'int32');
    expect(() => gatherRows(table, index)).toThrow(/indices in \[0, 4\)/);
    tf.dispose([table, index]);
  });

  it('reads a zero row for an out-of-range index that only exists on the GPU', async () => {
    const table = tf.ones([4, 2]);
    const onGpu = indicesOnGpu([1, 102]); // computed on webgpu
    const out = gatherRows(table, onGpu);
    expect(Array.from(await out.data())).toEqual([1, 1, 0, 0]);
    tf.dispose([table, onGpu, out]);
  });

  it('does not leak tensors or GPU buffers', async () => {
    const table = randomFloats(257 * 9, 1);
    const index = randomInts(100, 257, 2);
    const growth = await leakAcrossRepeats(async () => {
      const out = tf.tidy(() => gatherRows(tf.tensor(table, [257, 9]), tf.tensor(index, [100], 'int32'), tf.ones([100])));
      await out.data();
      out.dispose();
    });
    expect(growth).toEqual({ tensors: 0, buffers: 0 });
  });
});
