import * as tf from '@tensorflow/tfjs-core';
import { ROUTING_LOSS, ROUTING_LOSS_GRAD, fusedRoutingLoss, routingLossComposite } from '../../../ops/routingLoss/index';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomTensor, seededRandom } from '../../util/backends';

type Weights = { peakWeight: number; balanceWeight: number };
type MaskKind = 'none' | 'float' | 'int' | 'bool' | 'allMasked';

const BOTH: Weights = { peakWeight: 0.3, balanceWeight: 1.5 };
const WEIGHTS: Weights[] = [BOTH, { peakWeight: 0.01, balanceWeight: 1 }, { peakWeight: 0, balanceWeight: 1 }, { peakWeight: 0.7, balanceWeight: 0 }];

/** A 0/1 mask of the given shape with about a third padding (first entry always valid). */
function makeMask(shape: number[], kind: MaskKind, seed: number): tf.Tensor | null {
  if (kind === 'none') return null;
  const rand = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const bits = Array.from({ length: n }, (_, i) => (kind === 'allMasked' ? 0 : i === 0 || rand() > 0.35 ? 1 : 0));
  if (kind === 'bool') return tf.tensor(bits, shape, 'bool');
  return tf.tensor(bits, shape, kind === 'int' ? 'int32' : 'float32');
}

/** Gradients of w * loss (w != 1 checks that the upstream gradient is applied) by kernel and composite. */
function bothGradients(logits: tf.Tensor, mask: tf.Tensor | null, weights: Weights): [tf.Tensor, tf.Tensor] {
  const ours = tf.grad((l: tf.Tensor) => tf.mul(fusedRoutingLoss(l, mask, weights), 2.5) as tf.Scalar)(logits);
  const theirs = tf.grad((l: tf.Tensor) => tf.mul(routingLossComposite(l, mask, weights), 2.5) as tf.Scalar)(logits);
  return [ours, theirs];
}

function maxAbs(t: tf.Tensor): number {
  return Array.from(t.dataSync()).reduce((a, v) => Math.max(a, Math.abs(v)), 0);
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

describeEachBackend('fusedRoutingLoss', (backend) => {
  it('has a forward and a gradient kernel on this backend (the tests below exercise them)', () => {
    expect(tf.getKernel(ROUTING_LOSS, backend)).toBeDefined();
    expect(tf.getKernel(ROUTING_LOSS_GRAD, backend)).toBeDefined();
  });

  it('equals a hand-computed loss', () => {
    // Row 0: logits [0, 0] -> peak -log sigmoid(0) = log 2; row 1: [ln 3, 0] -> p = [3/4, 1/4],
    // peak -log sigmoid(ln 3) = log(4/3). Row 2 is padding. q = [5/8, 3/8].
    const logits = tf.tensor2d([[0, 0], [Math.log(3), 0], [9, -9]]);
    const mask = tf.tensor1d([1, 1, 0]);
    const peak = (Math.log(2) + Math.log(4 / 3)) / 2;
    const kl = (5 / 8) * Math.log((5 / 8) * 2) + (3 / 8) * Math.log((3 / 8) * 2);
    const loss = fusedRoutingLoss(logits, mask, { peakWeight: 0.2, balanceWeight: 3 });
    expect(loss.shape).toEqual([]);
    expect(loss.dtype).toBe('float32');
    expect(loss.dataSync()[0]).toBeCloseTo(0.2 * peak + 3 * kl, 6);
    tf.dispose([logits, mask, loss]);
  });

  const CASES: [number[], MaskKind][] = [
    [[6, 1], 'float'], [[5, 2], 'none'], [[4, 2], 'int'], [[3, 4, 257], 'float'], [[2, 3, 257], 'bool'],
    [[9], 'none'], [[2, 1, 3, 5], 'float'], [[4, 7], 'allMasked'], [[0, 3], 'none'],
  ];

  it.each(CASES)('matches the composite in value and gradient for logits %j, mask %s', (shape: number[], kind: MaskKind) => {
    const logits = randomTensor(shape, 3 + shape.length, 4);
    const mask = makeMask(shape.slice(0, -1), kind, 17);
    for (const weights of WEIGHTS) {
      const a = fusedRoutingLoss(logits, mask, weights);
      const b = routingLossComposite(logits, mask, weights);
      expect(Math.abs(a.dataSync()[0] - b.dataSync()[0])).toBeLessThan(1e-5 * Math.max(1, Math.abs(b.dataSync()[0])));
      const [ours, theirs] = bothGradients(logits, mask, weights);
      expect(ours.shape).toEqual(shape);
      expect(maxAbsDiff(ours, theirs)).toBeLessThan(1e-6 + 1e-4 * maxAbs(theirs));
      tf.dispose([a, b, ours, theirs]);
    }
    tf.dispose([logits, ...(mask ? [mask] : [])]);
  });

  it('gives 0 and a zero gradient when every token is padding', () => {
    const logits = randomTensor([3, 5], 9, 2);
    const mask = tf.zeros([3]);
    const loss = fusedRoutingLoss(logits, mask, BOTH);
    const grad = tf.grad((l: tf.Tensor) => fusedRoutingLoss(l, mask, BOTH))(logits);
    expect(loss.dataSync()[0]).toBe(0);
    expect(Array.from(grad.dataSync()).every((v) => v === 0)).toBe(true);
    tf.dispose([logits, mask, loss, grad]);
  });

  it('matches central finite differences (masked, both terms)', () => {
    const logits = randomTensor([2, 3, 4], 41, 2);
    const mask = tf.tensor2d([[1, 0, 1], [1, 1, 0]]);
    const f = (l: tf.Tensor) => fusedRoutingLoss(l, mask, { peakWeight: 0.8, balanceWeight: 2 });
    expect(finiteDifferenceError(f, logits, 1e-3)).toBeLessThan(3e-3);
    // Padding rows get exactly zero gradient.
    const g = tf.grad(f)(logits).arraySync() as number[][][];
    expect(g[0][1].every((v) => v === 0) && g[1][2].every((v) => v === 0)).toBe(true);
    expect(g[0][0].some((v) => v !== 0)).toBe(true);
    tf.dispose([logits, mask]);
  });

  it('matches finite differences for m = 257 (spot check of the balance term)', () => {
    const logits = randomTensor([2, 257], 43, 3);
    const f = (l: tf.Tensor) => fusedRoutingLoss(l, null, { peakWeight: 0, balanceWeight: 50 });
    expect(finiteDifferenceError(f, logits, 1e-2)).toBeLessThan(5e-3);
    tf.dispose(logits);
  });

  it('puts the peak gradient on the first of tied maxima only (as routeTop1)', () => {
    const logits = tf.tensor2d([[2, 5, 5, 1], [0, 0, 0, 0], [-1, -3, -1, -2]]);
    const weights = { peakWeight: 0.5, balanceWeight: 0 };
    const grad = tf.grad((l: tf.Tensor) => fusedRoutingLoss(l, null, weights))(logits).arraySync() as number[][];
    const expected = [[0, -0.5 / 3 * (1 - sigmoid(5)), 0, 0], [-0.5 / 3 * 0.5, 0, 0, 0], [-0.5 / 3 * (1 - sigmoid(-1)), 0, 0, 0]];
    grad.forEach((row, r) => row.forEach((v, j) => expect(v).toBeCloseTo(expected[r][j], 7)));
    // The value does not depend on the tie rule: the same as the composite.
    const a = fusedRoutingLoss(logits, null, BOTH);
    const b = routingLossComposite(logits, null, BOTH);
    expect(a.dataSync()[0]).toBeCloseTo(b.dataSync()[0], 6);
    // With ties the balance gradient still matches the composite (its tf.max tie rule only touches the peak term).
    const [ours, theirs] = bothGradients(logits, null, { peakWeight: 0, balanceWeight: 1 });
    expect(maxAbsDiff(ours, theirs)).toBeLessThan(1e-6);
    tf.dispose([logits, a, b, ours, theirs]);
  });

  it('stays finite for extreme logits where the softmax underflows', () => {
    const logits = tf.tensor2d([[200, -200, 0], [-150, 150, 0], [90, 90, -300]]);
    const loss = fusedRoutingLoss(logits, null, BOTH);
    const grad = tf.grad((l: tf.Tensor) => fusedRoutingLoss(l, null, BOTH))(logits);
    const ref = routingLossComposite(logits, null, BOTH);
    expect(Number.isFinite(loss.dataSync()[0])).toBe(true);
    expect(loss.dataSync()[0]).toBeCloseTo(ref.dataSync()[0], 5);
    expect(Array.from(grad.dataSync()).every(Number.isFinite)).toBe(true);
    tf.dispose([logits, loss, grad, ref]);
  });

  it('gives the mask a zero gradient', () => {
    const logits = randomTensor([3, 4], 5);
    const mask = tf.tensor1d([1, 0, 1]);
    const grads = tf.grads((l: tf.Tensor, v: tf.Tensor) => fusedRoutingLoss(l, v, BOTH))([logits, mask]);
    expect(Array.from(grads[1].dataSync())).toEqual([0, 0, 0]);
    tf.dispose([logits, mask, ...grads]);
  });

  it('leaks no tensors over repeated forward and backward calls', () => {
    const logits = randomTensor([3, 16], 3);
    const mask = tf.tensor1d([1, 0, 1]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 4; i++) {
      fusedRoutingLoss(logits, i % 2 ? mask : null, BOTH).dispose();
      tf.grad((l: tf.Tensor) => fusedRoutingLoss(l, i % 2 ? mask : null, BOTH))(logits).dispose();
      const v = tf.variable(logits);
      const opt = tf.train.sgd(0.1);
      opt.minimize(() => fusedRoutingLoss(v, mask, BOTH), false, [v]);
      v.dispose();
      opt.dispose();
    }
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([logits, mask]);
  });

  it('rejects bad inputs, naming the argument', () => {
    const ints = tf.tensor2d([[1, 2]], [1, 2], 'int32');
    const scalar = tf.scalar(1);
    const empty = tf.zeros([3, 0]);
    const logits = tf.zeros([3, 4]);
    const wrongMask = tf.ones([4]);
    const stringMask = tf.tensor(['a', 'b', 'c']);
    expect(() => fusedRoutingLoss(ints, null, BOTH)).toThrow(/fusedRoutingLoss: argument 'logits' must be a float32 tensor/);
    expect(() => fusedRoutingLoss(scalar, null, BOTH)).toThrow(/argument 'logits' must be a tensor of rank >= 1/);
    expect(() => fusedRoutingLoss(empty, null, BOTH)).toThrow(/argument 'logits' must be a non-empty pool axis/);
    expect(() => fusedRoutingLoss(logits, wrongMask, BOTH)).toThrow(/argument 'mask' must be of shape \[3\], received shape \[4\]/);
    expect(() => fusedRoutingLoss(logits, stringMask, BOTH)).toThrow(/argument 'mask' must be a float32, int32 or bool tensor/);
    expect(() => fusedRoutingLoss(logits, null, { peakWeight: -1, balanceWeight: 1 })).toThrow(/argument 'peakWeight' must be a finite number >= 0, received -1/);
    expect(() => fusedRoutingLoss(logits, null, { peakWeight: 0, balanceWeight: NaN })).toThrow(/argument 'balanceWeight'/);
    tf.dispose([ints, scalar, empty, logits, wrongMask, stringMask]);
  });
});
