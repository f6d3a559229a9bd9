import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from '../../../ops/gatherRows/index';
import { ROUTE_TOP1, ROUTE_TOP1_GRAD, routeTop1, routeTop1Composite } from '../../../ops/routeTop1/index';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomTensor, seededRandom } from '../../util/backends';

/** Plain-loop reference: first maximum per row and its sigmoid. */
function reference(values: Float32Array, poolSize: number): { index: number[]; gate: number[] } {
  const index: number[] = [];
  const gate: number[] = [];
  for (let base = 0; base < values.length; base += poolSize) {
    let best = 0;
    for (let j = 1; j < poolSize; j++) if (values[base + j] > values[base + best]) best = j;
    index.push(best);
    gate.push(1 / (1 + Math.exp(-values[base + best])));
  }
  return { index, gate };
}

/** Logits whose entries per row are distinct by >= 0.25, so finite differences never flip the argmax. */
function separatedLogits(rows: number, poolSize: number, seed: number): tf.Tensor {
  const rand = seededRandom(seed);
  const data = new Float32Array(rows * poolSize);
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: poolSize }, (_, j) => j).sort(() => rand() - 0.5);
    for (let j = 0; j < poolSize; j++) data[r * poolSize + j] = (order[j] - poolSize / 2) * 0.25 + rand() * 0.01;
  }
  return tf.tensor2d(data, [rows, poolSize]);
}

const SHAPES: number[][] = [[1], [7], [1, 1], [1, 255], [3, 256], [2, 5, 257], [2, 3, 1], [2, 1, 3, 9]];

describeEachBackend('routeTop1', (backend) => {
  it('has a kernel on this backend (the tests below exercise it, not the composite)', () => {
    expect(tf.getKernel(ROUTE_TOP1, backend)).toBeDefined();
    expect(tf.getKernel(ROUTE_TOP1_GRAD, backend)).toBeDefined();
  });

  it('gradient kernel: writes dgate * g * (1 - g) at the first maximum and zero elsewhere', () => {
    const logits = tf.tensor3d([[[2, 5, 5, 1], [0, 0, 0, 0]], [[-1, -3, -1, -2], [7, 1, 2, 3]]]);
    const w = tf.tensor2d([[1, -2], [3, 0.5]]);
    const grad = tf.grad((l: tf.Tensor) => tf.sum(tf.mul(routeTop1(l).gate, w)))(logits).arraySync() as number[][][];
    const local = (x: number, dg: number) => dg * (1 / (1 + Math.exp(-x))) * (1 - 1 / (1 + Math.exp(-x)));
    const expected = [[[0, local(5, 1), 0, 0], [local(0, -2), 0, 0, 0]], [[local(-1, 3), 0, 0, 0], [local(7, 0.5), 0, 0, 0]]];
    grad.forEach((a, i) => a.forEach((row, r) => row.forEach((v, j) => expect(v).toBeCloseTo(expected[i][r][j], 7))));
    tf.dispose([logits, w]);
  });

  it('gives logits a zero gradient when only the index reaches the loss', () => {
    const logits = randomTensor([3, 5], 12);
    const pool = randomTensor([5, 2], 13);
    const grad = tf.grad((l: tf.Tensor) => tf.sum(gatherRows(pool, routeTop1(l).index)) as tf.Scalar)(logits);
    expect(grad.shape).toEqual([3, 5]);
    expect(Array.from(grad.dataSync()).every((v) => v === 0)).toBe(true);
    tf.dispose([logits, pool, grad]);
  });

  it.each(SHAPES.map((s) => [s]))('matches the plain reference for logits of shape %j', (shape: number[]) => {
    const logits = randomTensor(shape, 11 + shape.length, 3);
    const { index, gate } = routeTop1(logits);
    const ref = reference(logits.dataSync() as Float32Array, shape[shape.length - 1]);
    expect(index.dtype).toBe('int32');
    expect(gate.dtype).toBe('float32');
    expect(index.shape).toEqual(shape.slice(0, -1));
    expect(gate.shape).toEqual(shape.slice(0, -1));
    expect(Array.from(index.dataSync())).toEqual(ref.index);
    const g = gate.dataSync();
    ref.gate.forEach((v, i) => expect(g[i]).toBeCloseTo(v, 6));
    tf.dispose([logits, index, gate]);
  });

  it('resolves ties to the lowest index, like tf.argMax', () => {
    const logits = tf.tensor2d([[2, 5, 5, 1], [0, 0, 0, 0], [-1, -3, -1, -2]]);
    const { index, gate } = routeTop1(logits);
    expect(Array.from(index.dataSync())).toEqual([1, 0, 0]);
    expect(gate.dataSync()[1]).toBeCloseTo(0.5, 6);
    tf.dispose([logits, index, gate]);
  });

  it('agrees with the composite on 257-wide pools', () => {
    const logits = randomTensor([4, 6, 257], 5);
    const a = routeTop1(logits);
    const b = routeTop1Composite(logits);
    expect(Array.from(a.index.dataSync())).toEqual(Array.from(b.index.dataSync()));
    expect(maxAbsDiff(a.gate, b.gate)).toBeLessThan(1e-6);
    tf.dispose([logits, a.index, a.gate, b.index, b.gate]);
  });

  it('back-propagates through the gate only, matching finite differences', () => {
    const logits = separatedLogits(3, 5, 7);
    const weights = randomTensor([3], 8);
    const f = (l: tf.Tensor) => tf.sum(tf.mul(routeTop1(l).gate, weights)) as tf.Scalar;
    expect(finiteDifferenceError(f, logits, 1e-3)).toBeLessThan(2e-3);
    const grad = tf.grad(f)(logits);
    const nonzero = Array.from(grad.dataSync()).filter((v) => v !== 0).length;
    expect(nonzero).toBe(3); // one winning column per row
    tf.dispose([logits, weights, grad]);
  });

  it('back-propagates through routeTop1 -> gatherRows (the index output gets a zero gradient)', () => {
    const logits = separatedLogits(4, 6, 31);
    const pool = randomTensor([6, 3], 32);
    const w = randomTensor([4, 3], 33);
    const f = (l: tf.Tensor) => {
      const { index, gate } = routeTop1(l);
      return tf.sum(tf.mul(gatherRows(pool, index, gate), w)) as tf.Scalar;
    };
    expect(finiteDifferenceError(f, logits, 1e-3)).toBeLessThan(2e-3);
    tf.dispose([logits, pool, w]);
  });

  it('gives the same gradient as autodiff through the composite', () => {
    const logits = randomTensor([2, 4, 256], 21, 2);
    const w = randomTensor([2, 4], 22);
    const ours = tf.grad((l: tf.Tensor) => tf.sum(tf.mul(routeTop1(l).gate, w)))(logits);
    const theirs = tf.grad((l: tf.Tensor) => tf.sum(tf.mul(routeTop1Composite(l).gate, w)))(logits);
    expect(maxAbsDiff(ours, theirs)).toBeLessThan(1e-6);
    tf.dispose([logits, w, ours, theirs]);
  });

  it('rejects non-float logits and unsupported ranks, naming the argument', () => {
    const ints = tf.tensor2d([[1, 2]], [1, 2], 'int32');
    const rank5 = tf.zeros([1, 1, 1, 1, 2]);
    const scalar = tf.scalar(1);
    expect(() => routeTop1(ints)).toThrow(/routeTop1: argument 'logits' must be a float32 tensor/);
    expect(() => routeTop1(rank5)).toThrow(/argument 'logits' must be a tensor of rank 1 or 2 or 3 or 4/);
    expect(() => routeTop1(scalar)).toThrow(/argument 'logits'/);
    tf.dispose([ints, rank5, scalar]);
  });

  it('leaks no tensors over repeated forward and backward calls', () => {
    const logits = randomTensor([3, 16], 3);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      const { index, gate } = routeTop1(logits);
      tf.dispose([index, gate]);
      tf.grad((l: tf.Tensor) => tf.sum(routeTop1(l).gate))(logits).dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    logits.dispose();
  });
});
