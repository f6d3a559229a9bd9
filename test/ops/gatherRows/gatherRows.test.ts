import * as tf from '@tensorflow/tfjs-core';
import { GATHER_ROWS, GATHER_ROWS_GATE_GRAD, GATHER_ROWS_TABLE_GRAD, GATHER_ROWS_TAIL_GRAD, gatherRows, gatherRowsComposite } from '../../../ops/gatherRows/index';
import { describeEachBackend, useBackend, finiteDifferenceError, maxAbsDiff, randomIndex, randomTensor } from '../../util/backends';

/** Plain-loop reference: out[p, k] = gate[p] * table[index[p], k], then tail[p, :] (tailWidth columns). */
function reference(table: Float32Array, width: number, index: Int32Array, gate: Float32Array | null,
  tail: Float32Array | null = null, tailWidth = 0): Float32Array {
  const stride = width + tailWidth;
  const out = new Float32Array(index.length * stride);
  for (let p = 0; p < index.length; p++) {
    for (let k = 0; k < width; k++) out[p * stride + k] = (gate ? gate[p] : 1) * table[index[p] * width + k];
    for (let k = 0; k < tailWidth; k++) out[p * stride + width + k] = tail![p * tailWidth + k];
  }
  return out;
}

interface Case { numRows: number; width: number; indexShape: number[] }
const CASES: Case[] = [
  { numRows: 1, width: 3, indexShape: [4] }, // pool of one row: every index is 0 (all duplicates)
  { numRows: 255, width: 4, indexShape: [1] },
  { numRows: 256, width: 7, indexShape: [1, 1] },
  { numRows: 257, width: 1, indexShape: [3, 5] },
  { numRows: 257, width: 9, indexShape: [2, 3, 4] },
  { numRows: 3, width: 5, indexShape: [1, 40] }, // many duplicates
  { numRows: 33, width: 16, indexShape: [2, 7] }, // rows this wide are block-copied
  { numRows: 40, width: 255, indexShape: [3, 5] },
];

/** Reads the heap bookkeeping of the active backend (numDataIds is on every KernelBackend). */
function dataIds(): number {
  return tf.engine().backend.numDataIds();
}

describeEachBackend('gatherRows', (backend) => {
  it('has a kernel on this backend (the tests below exercise it, not the composite)', () => {
    expect(tf.getKernel(GATHER_ROWS, backend)).toBeDefined();
    expect(tf.getKernel(GATHER_ROWS_TABLE_GRAD, backend)).toBeDefined();
    expect(tf.getKernel(GATHER_ROWS_GATE_GRAD, backend)).toBeDefined();
    expect(tf.getKernel(GATHER_ROWS_TAIL_GRAD, backend)).toBeDefined();
  });

  it.each([[1, 9], [2, 9], [0, 9], [1, 255], [3, 20]])('joins a tail of width %i after each row of width %i, with and without gate', (tailWidth: number, width: number) => {
    const c = { numRows: 257, width, indexShape: [2, 3, 4] };
    const table = randomTensor([c.numRows, c.width], 21);
    const index = randomIndex(c.indexShape, c.numRows, 22);
    const gate = randomTensor(c.indexShape, 23);
    const tail = randomTensor([...c.indexShape, tailWidth], 24);
    for (const g of [undefined, gate]) {
      const out = gatherRows(table, index, g, tail);
      expect(out.shape).toEqual([...c.indexShape, c.width + tailWidth]);
      const ref = reference(table.dataSync() as Float32Array, c.width, index.dataSync() as Int32Array,
        g ? g.dataSync() as Float32Array : null, tail.dataSync() as Float32Array, tailWidth);
      expect(maxAbsDiff(out, tf.tensor(ref, out.shape))).toBeLessThan(1e-6);
      out.dispose();
    }
    tf.dispose([table, index, gate, tail]);
  });

  it('has table, gate and tail gradients matching finite differences when a tail is joined', () => {
    const table = randomTensor([4, 3], 25);
    const index = tf.tensor2d([[0, 2, 2], [3, 0, 2]], [2, 3], 'int32');
    const gate = randomTensor([2, 3], 26);
    const tail = randomTensor([2, 3, 2], 27);
    const w = randomTensor([2, 3, 5], 28);
    const loss = (t: tf.Tensor, g: tf.Tensor, u: tf.Tensor) => tf.sum(tf.mul(gatherRows(t, index, g, u), w)) as tf.Scalar;
    expect(finiteDifferenceError((t) => loss(t, gate, tail), table)).toBeLessThan(1e-3);
    expect(finiteDifferenceError((g) => loss(table, g, tail), gate)).toBeLessThan(1e-3);
    expect(finiteDifferenceError((u) => loss(table, gate, u), tail)).toBeLessThan(1e-3);
    expect(finiteDifferenceError((t) => tf.sum(tf.mul(gatherRows(t, index, undefined, tail), w)) as tf.Scalar, table)).toBeLessThan(1e-3);
  });

  it('gives the gradients of the composite (gather, mul, concat) when a tail is joined, 257-row pool', async () => {
    const table = randomTensor([257, 6], 29);
    const index = randomIndex([3, 50], 257, 30);
    const gate = randomTensor([3, 50], 31);
    const tail = randomTensor([3, 50, 1], 32);
    const w = randomTensor([3, 50, 7], 33);
    const loss = (f: typeof gatherRows) => (t: tf.Tensor, g: tf.Tensor, u: tf.Tensor) => tf.sum(tf.mul(f(t, index, g, u), w));
    const ours = tf.grads(loss(gatherRows))([table, gate, tail]);
    await useBackend('cpu');
    const reference = tf.grads(loss(gatherRowsComposite))([table, gate, tail]);
    await useBackend(backend);
    ours.forEach((d, i) => expect(maxAbsDiff(d, reference[i])).toBeLessThan(1e-5));
  });

  it('a gate with entries of exactly 1 (the copy path) among others matches the reference, forward and table gradient', () => {
    const [numRows, width] = [9, 40];
    const table = randomTensor([numRows, width], 41);
    const index = randomIndex([5, 7], numRows, 42);
    const mixed = Array.from(randomTensor([35], 43).dataSync(), (v, p) => (p % 3 === 0 ? 1 : v));
    const gate = tf.tensor2d(mixed, [5, 7]);
    const w = randomTensor([5, 7, width], 44);
    const out = gatherRows(table, index, gate);
    const ref = reference(table.dataSync() as Float32Array, width, index.dataSync() as Int32Array, gate.dataSync() as Float32Array);
    expect(maxAbsDiff(out, tf.tensor(ref, out.shape))).toBe(0);
    const ours = tf.grad((t: tf.Tensor) => tf.sum(tf.mul(gatherRows(t, index, gate), w)))(table);
    // By hand: row index[p] of the gradient gathers gate[p] * w[p].
    const [idx, g, wv] = [index.dataSync(), gate.dataSync(), w.dataSync()];
    const want = new Float32Array(numRows * width);
    idx.forEach((r, p) => { for (let k = 0; k < width; k++) want[r * width + k] += g[p] * wv[p * width + k]; });
    expect(maxAbsDiff(ours, tf.tensor2d(want, [numRows, width]))).toBeLessThan(1e-5);
    tf.dispose([table, index, gate, w, out, ours]);
  });

  it.each(CASES.map((c) => [c]))('matches the plain reference, with and without gate: %j', (c: Case) => {
    const table = randomTensor([c.numRows, c.width], c.numRows + c.width);
    const index = randomIndex(c.indexShape, c.numRows, 3 * c.numRows);
    const gate = randomTensor(c.indexShape, 17);
    const t = table.dataSync() as Float32Array;
    const i = index.dataSync() as Int32Array;
    for (const g of [undefined, gate]) {
      const out = gatherRows(table, index, g);
      expect(out.shape).toEqual([...c.indexShape, c.width]);
      const ref = reference(t, c.width, i, g ? g.dataSync() as Float32Array : null);
      expect(maxAbsDiff(out, tf.tensor(ref, out.shape))).toBeLessThan(1e-6);
      out.dispose();
    }
    tf.dispose([table, index, gate]);
  });

  it('agrees with the composite', () => {
    const table = randomTensor([256, 12], 1);
    const index = randomIndex([5, 7], 256, 2);
    const gate = randomTensor([5, 7], 3);
    expect(maxAbsDiff(gatherRows(table, index, gate), gatherRowsComposite(table, index, gate))).toBeLessThan(1e-6);
    expect(maxAbsDiff(gatherRows(table, index), gatherRowsComposite(table, index))).toBe(0);
  });

  it('has table and gate gradients matching finite differences (duplicate indices)', () => {
    const table = randomTensor([4, 3], 5);
    const index = tf.tensor2d([[0, 2, 2], [3, 0, 2]], [2, 3], 'int32');
    const gate = randomTensor([2, 3], 6);
    const w = randomTensor([2, 3, 3], 7);
    expect(finiteDifferenceError((t) => tf.sum(tf.mul(gatherRows(t, index, gate), w)) as tf.Scalar, table)).toBeLessThan(1e-3);
    expect(finiteDifferenceError((g) => tf.sum(tf.mul(gatherRows(table, index, g), w)) as tf.Scalar, gate)).toBeLessThan(1e-3);
    expect(finiteDifferenceError((t) => tf.sum(tf.mul(gatherRows(t, index), w)) as tf.Scalar, table)).toBeLessThan(1e-3);
  });

  it('gives the same gradients as autodiff through the composite on a 257-row pool', async () => {
    const table = randomTensor([257, 6], 8);
    const index = randomIndex([3, 50], 257, 9);
    const gate = randomTensor([3, 50], 10);
    const w = randomTensor([3, 50, 6], 11);
    const loss = (f: typeof gatherRows) => (t: tf.Tensor, g: tf.Tensor) => tf.sum(tf.mul(f(t, index, g), w));
    const [dt1, dg1] = tf.grads(loss(gatherRows))([table, gate]);
    // The composite's autodiff needs tfjs's UnsortedSegmentSum, which wasm lacks: take it on cpu.
    await useBackend('cpu');
    const [dt2, dg2] = tf.grads(loss(gatherRowsComposite))([table, gate]);
    await useBackend(backend);
    expect(maxAbsDiff(dt1, dt2)).toBeLessThan(1e-5);
    expect(maxAbsDiff(dg1, dg2)).toBeLessThan(1e-5);
  });

  it('rejects bad inputs with messages naming the argument', () => {
    const table = randomTensor([5, 2], 1);
    const index = tf.tensor1d([0, 4], 'int32');
    expect(() => gatherRows(table, tf.tensor1d([0, 1], 'float32'))).toThrow(/gatherRows: argument 'index' must be an int32 tensor/);
    expect(() => gatherRows(table, tf.tensor1d([0, 5], 'int32'))).toThrow(/argument 'index' must be indices in \[0, 5\), received 5 at flat position 1/);
    expect(() => gatherRows(table, tf.tensor1d([-1], 'int32'))).toThrow(/argument 'index' must be indices in \[0, 5\), received -1/);
    expect(() => gatherRows(tf.zeros([5, 2, 1]), index)).toThrow(/argument 'table' must be a tensor of rank 2/);
    expect(() => gatherRows(tf.zeros([5, 2], 'int32'), index)).toThrow(/argument 'table' must be a float32 tensor/);
    expect(() => gatherRows(table, index, tf.ones([3]))).toThrow(/argument 'gate' must be of shape \[2\]/);
    expect(() => gatherRows(table, index, tf.ones([2], 'int32'))).toThrow(/argument 'gate' must be a float32 tensor/);
    expect(() => gatherRows(table, index, undefined, tf.ones([3, 1]))).toThrow(/argument 'tail' must be of shape \[2, -1\]/);
    expect(() => gatherRows(table, index, undefined, tf.ones([2]))).toThrow(/argument 'tail' must be of shape \[2, -1\]/);
    expect(() => gatherRows(table, index, undefined, tf.ones([2, 1], 'int32'))).toThrow(/argument 'tail' must be a float32 tensor/);
  });

  it('leaks no tensors or backend memory: forward, backward, and a rejected index', () => {
    const table = randomTensor([16, 4], 1);
    const index = randomIndex([3, 5], 16, 2);
    const gate = randomTensor([3, 5], 3);
    const tail = randomTensor([3, 5, 2], 4);
    const bad = tf.tensor1d([16], 'int32');
    const before = tf.memory().numTensors;
    const idsBefore = dataIds();
    for (let i = 0; i < 5; i++) {
      gatherRows(table, index, gate).dispose();
      gatherRows(table, index).dispose();
      tf.grads((t: tf.Tensor, g: tf.Tensor) => tf.sum(gatherRows(t, index, g)))([table, gate]).forEach((x) => x.dispose());
      tf.grad((t: tf.Tensor) => tf.sum(gatherRows(t, index)))(table).dispose();
      tf.grads((t: tf.Tensor, u: tf.Tensor) => tf.sum(gatherRows(t, index, gate, u)))([table, tail]).forEach((x) => x.dispose());
      gatherRows(table, index, undefined, tail).dispose();
      expect(() => gatherRows(table, bad)).toThrow(/'index'/);
    }
    expect(tf.memory().numTensors).toBe(before);
    expect(dataIds()).toBe(idsBefore);
    tf.dispose([table, index, gate, tail, bad]);
  });
});
