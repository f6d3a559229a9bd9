import * as tf from '@tensorflow/tfjs-core';
import { SCATTER_ADD_ROWS, scatterAddRows, scatterAddRowsComposite } from '../../../ops/scatterAddRows/index';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomIndex, randomTensor, useBackend } from '../../util/backends';

/** Plain-loop reference: out[index[p], k] += rows[p, k]. */
function reference(rows: Float32Array, width: number, index: Int32Array, numRows: number): Float32Array {
  const out = new Float32Array(numRows * width);
  for (let p = 0; p < index.length; p++) {
    for (let k = 0; k < width; k++) out[index[p] * width + k] += rows[p * width + k];
  }
  return out;
}

interface Case { numRows: number; width: number; indexShape: number[] }
const CASES: Case[] = [
  { numRows: 1, width: 3, indexShape: [5] }, // everything lands in the single row
  { numRows: 255, width: 4, indexShape: [1] },
  { numRows: 256, width: 7, indexShape: [1, 1] },
  { numRows: 257, width: 1, indexShape: [3, 5] },
  { numRows: 257, width: 9, indexShape: [2, 3, 40] },
  { numRows: 3, width: 5, indexShape: [60] }, // heavy duplicates
];

describeEachBackend('scatterAddRows', (backend) => {
  it('has a kernel on this backend (the tests below exercise it, not the composite)', () => {
    expect(tf.getKernel(SCATTER_ADD_ROWS, backend)).toBeDefined();
  });

  it.each(CASES.map((c) => [c]))('matches the plain reference: %j', (c: Case) => {
    const rows = randomTensor([...c.indexShape, c.width], c.numRows + c.width);
    const index = randomIndex(c.indexShape, c.numRows, 5 * c.numRows);
    const out = scatterAddRows(rows, index, c.numRows);
    expect(out.shape).toEqual([c.numRows, c.width]);
    const ref = reference(rows.dataSync() as Float32Array, c.width, index.dataSync() as Int32Array, c.numRows);
    expect(maxAbsDiff(out, tf.tensor(ref, out.shape))).toBeLessThan(1e-5);
    tf.dispose([rows, index, out]);
  });

  it('zeroes rows that no index hits (fresh output memory is not assumed clean)', () => {
    for (let i = 0; i < 3; i++) {
      const junk = tf.fill([64, 8], 7); // freed just below: its memory is what the next output may reuse
      junk.dispose();
      const out = scatterAddRows(tf.ones([2, 8]), tf.tensor1d([3, 3], 'int32'), 64);
      const v = out.dataSync();
      expect(Array.from(v).reduce((a, b) => a + Math.abs(b), 0)).toBe(16);
      expect(v[3 * 8]).toBe(2);
    }
  });

  it('agrees with the composite (computed on cpu: wasm has no UnsortedSegmentSum)', async () => {
    const rows = randomTensor([6, 9, 5], 1);
    const index = randomIndex([6, 9], 256, 2);
    const ours = scatterAddRows(rows, index, 256);
    await useBackend('cpu');
    const theirs = scatterAddRowsComposite(rows, index, 256);
    await useBackend(backend);
    expect(maxAbsDiff(ours, theirs)).toBeLessThan(1e-5);
  });

  it('has a rows gradient matching finite differences (duplicate indices)', () => {
    const rows = randomTensor([2, 3, 2], 3);
    const index = tf.tensor2d([[1, 1, 0], [3, 1, 0]], [2, 3], 'int32');
    const w = randomTensor([4, 2], 4);
    expect(finiteDifferenceError((r) => tf.sum(tf.mul(scatterAddRows(r, index, 4), w)) as tf.Scalar, rows)).toBeLessThan(1e-3);
    const grad = tf.grad((r: tf.Tensor) => tf.sum(tf.mul(scatterAddRows(r, index, 4), w)))(rows);
    expect(grad.shape).toEqual(rows.shape);
  });

  it('rejects bad inputs with messages naming the argument', () => {
    const rows = randomTensor([2, 3], 1);
    const index = tf.tensor1d([0, 1], 'int32');
    expect(() => scatterAddRows(rows, tf.tensor1d([0, 1]), 4)).toThrow(/scatterAddRows: argument 'index' must be an int32 tensor/);
    expect(() => scatterAddRows(rows, tf.tensor1d([0, 4], 'int32'), 4)).toThrow(/argument 'index' must be indices in \[0, 4\), received 4 at flat position 1/);
    expect(() => scatterAddRows(rows, tf.tensor1d([-2, 0], 'int32'), 4)).toThrow(/argument 'index' must be indices in \[0, 4\), received -2/);
    expect(() => scatterAddRows(rows, tf.tensor1d([0, 1, 2], 'int32'), 4)).toThrow(/argument 'rows' must be of shape \[3, -1\]/);
    expect(() => scatterAddRows(tf.zeros([2]), index, 4)).toThrow(/argument 'rows'/);
    expect(() => scatterAddRows(tf.zeros([2, 3], 'int32'), index, 4)).toThrow(/argument 'rows' must be a float32 tensor/);
    expect(() => scatterAddRows(rows, index, 0)).toThrow(/argument 'numRows' must be a positive integer/);
    expect(() => scatterAddRows(rows, index, 2.5)).toThrow(/argument 'numRows'/);
  });

  it('leaks no tensors or backend memory: forward, backward, and a rejected index', () => {
    const rows = randomTensor([3, 5, 4], 1);
    const index = randomIndex([3, 5], 16, 2);
    const bad = tf.tensor2d([[0, 1, 2, 3, 16], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], [3, 5], 'int32');
    const before = tf.memory().numTensors;
    const idsBefore = tf.engine().backend.numDataIds();
    for (let i = 0; i < 5; i++) {
      scatterAddRows(rows, index, 16).dispose();
      tf.grad((r: tf.Tensor) => tf.sum(scatterAddRows(r, index, 16)))(rows).dispose();
      expect(() => scatterAddRows(rows, bad, 16)).toThrow(/'index'/);
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.engine().backend.numDataIds()).toBe(idsBefore);
    tf.dispose([rows, index, bad]);
  });
});
