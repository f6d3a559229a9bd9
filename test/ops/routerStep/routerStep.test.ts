import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from '../../../ops/gatherRows/index';
import { linear } from '../../../ops/linear/index';
import { routeTop1 } from '../../../ops/routeTop1/index';
import { fusedRoutingLoss } from '../../../ops/routingLoss/index';
import { routeWithLoss } from '../../../ops/routerStep/index';
import { permutationRouter, separatedTokens } from '../../layers/helpers';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomTensor, seededRandom } from '../../util/backends';

type Weights = { peakWeight: number; balanceWeight: number };
type Route = (x: tf.Tensor, r: tf.Tensor, b: tf.Tensor | null, mask: tf.Tensor | null, w: Weights, rows?: tf.Tensor | null) =>
  { index: tf.Tensor; gate: tf.Tensor; loss: tf.Scalar | null };

const BOTH: Weights = { peakWeight: 0.3, balanceWeight: 1.5 };
const OFF: Weights = { peakWeight: 0, balanceWeight: 0 };

/**
 * The path the layers ran before: routeTokens (linear + routeTop1) and routingLoss on the logits;
 * with balance rows, the peak term on every row plus the balance term on the logits' gathered rows.
 */
const unfused: Route = (x, r, b, mask, w, rows) => {
  const logits = linear(x, r, b);
  const { index, gate } = routeTop1(logits);
  if (w.peakWeight === 0 && w.balanceWeight === 0) return { index, gate, loss: null };
  if (rows == null || w.balanceWeight === 0) return { index, gate, loss: fusedRoutingLoss(logits, mask, w) };
  const m = logits.shape[logits.shape.length - 1];
  const flatMask = mask == null ? null : tf.reshape(tf.cast(mask, 'float32'), [-1]);
  const balance = fusedRoutingLoss(gatherRows(tf.reshape(logits, [-1, m]), rows), flatMask == null ? null : tf.gather(flatMask, rows),
    { peakWeight: 0, balanceWeight: w.balanceWeight });
  const peak = fusedRoutingLoss(logits, mask, { peakWeight: w.peakWeight, balanceWeight: 0 });
  return { index, gate, loss: tf.add(peak, balance) as tf.Scalar };
};

/** What a training step sees: the gated pool lookup times fixed coefficients, plus 2.5 * loss. */
function objective(route: Route, pool: tf.Tensor, coef: tf.Tensor, mask: tf.Tensor | null, w: Weights, balanceRows: tf.Tensor | null = null) {
  return (x: tf.Tensor, r: tf.Tensor, b: tf.Tensor): tf.Scalar => {
    const { index, gate, loss } = route(x, r, b, mask, w, balanceRows);
    const rows = tf.sum(tf.mul(gatherRows(pool, index, gate), coef));
    return (loss == null ? rows : tf.add(rows, tf.mul(loss, 2.5))) as tf.Scalar;
  };
}

function maxAbs(t: tf.Tensor): number {
  return Array.from(t.dataSync()).reduce((a, v) => Math.max(a, Math.abs(v)), 0);
}

function relErr(ours: tf.Tensor, ref: tf.Tensor): number {
  expect(ours.shape).toEqual(ref.shape);
  return maxAbsDiff(ours, ref) / Math.max(maxAbs(ref), 1e-6);
}

function makeMask(shape: number[], kind: 'none' | 'float' | 'int', seed: number): tf.Tensor | null {
  if (kind === 'none') return null;
  const rand = seededRandom(seed);
  const bits = Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => (i === 0 || rand() > 0.3 ? 1 : 0));
  return tf.tensor(bits, shape, kind === 'int' ? 'int32' : 'float32');
}

/**
 * Finite differences of the objective in x, router and bias on well-separated routes (so a step
 * never flips an argmax), with the balance term on `rows` (null = all); seed picks pool and coefficients.
 */
function expectFiniteDifferences(rows: tf.Tensor | null, seed: number): void {
  const x = separatedTokens(2, 3, 5);
  const r = tf.tensor(permutationRouter([2, 0, 3, 1]), [4, 4]);
  const b = tf.tensor1d([0.1, -0.2, 0.05, 0]);
  const pool = randomTensor([4, 2], seed, 1);
  const coef = randomTensor([2, 3, 2], seed + 1, 1);
  const mask = tf.tensor2d([[1, 1, 0], [1, 1, 1]]);
  const f = objective(routeWithLoss, pool, coef, mask, BOTH, rows);
  expect(finiteDifferenceError((xx) => f(xx, r, b), x)).toBeLessThan(2e-3);
  expect(finiteDifferenceError((rr) => f(x, rr, b), r)).toBeLessThan(2e-3);
  expect(finiteDifferenceError((bb) => f(x, r, bb), b)).toBeLessThan(2e-3);
  tf.dispose([x, r, b, pool, coef, mask]);
}

describeEachBackend('routeWithLoss', () => {
  const CASES: [number[], number, 'none' | 'float' | 'int', Weights, boolean][] = [
    [[2, 5, 6], 7, 'float', BOTH, true],
    [[12, 4], 33, 'none', BOTH, true],
    [[3, 4, 8], 257, 'int', { peakWeight: 0.01, balanceWeight: 1 }, false],
    [[2, 6, 5], 9, 'float', { peakWeight: 0, balanceWeight: 1 }, true],
    [[2, 6, 5], 9, 'none', { peakWeight: 0.7, balanceWeight: 0 }, true],
    [[4, 3, 5], 6, 'float', OFF, true],
  ];

  it.each(CASES)('equals the unfused path in value and gradients: x %j, pool %i, mask %s, weights %j, bias %s',
    (shape, m, maskKind, w, useBias) => {
      const de = shape[shape.length - 1];
      const x = randomTensor(shape, 11, 1);
      const r = randomTensor([de, m], 12, 1);
      const b = useBias ? randomTensor([m], 13, 0.5) : tf.zeros([m]);
      const pool = randomTensor([m, 3], 14, 1);
      const coef = randomTensor([...shape.slice(0, -1), 3], 15, 1);
      const mask = makeMask(shape.slice(0, -1), maskKind, 16);
      const bias = useBias ? b : null;

      const ours = routeWithLoss(x, r, bias, mask, w);
      const ref = unfused(x, r, bias, mask, w);
      expect(ours.index.dtype).toBe('int32');
      expect(Array.from(ours.index.dataSync())).toEqual(Array.from(ref.index.dataSync()));
      expect(relErr(ours.gate, ref.gate)).toBeLessThanOrEqual(1e-6);
      if (ref.loss == null) expect(ours.loss).toBeNull();
      else expect(Math.abs(ours.loss!.dataSync()[0] - ref.loss.dataSync()[0])).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(ref.loss.dataSync()[0])));

      // Without a bias the objective does not depend on b: differentiate x and router only.
      const grads = (route: Route) => {
        const f = objective((xx, rr, bb, mm, ww) => route(xx, rr, useBias ? bb : null, mm, ww), pool, coef, mask, w);
        return useBias ? tf.grads(f)([x, r, b]) : tf.grads((xx: tf.Tensor, rr: tf.Tensor) => f(xx, rr, b))([x, r]);
      };
      const g = grads(routeWithLoss);
      const gRef = grads(unfused);
      for (let i = 0; i < gRef.length; i++) {
        expect(maxAbs(gRef[i])).toBeGreaterThan(0);
        expect(relErr(g[i], gRef[i])).toBeLessThanOrEqual(1e-5);
      }
      tf.dispose([x, r, b, pool, coef, mask, ours.index, ours.gate, ours.loss, ref.index, ref.gate, ref.loss, ...g, ...gRef]
        .filter((t): t is tf.Tensor => t != null));
    });

  it('matches finite differences on separated routes (x, router, bias)', () => expectFiniteDifferences(null, 21));

  describe('with balance rows (the balance term on a sample of the rows)', () => {
    const SAMPLED: [number[], number, 'none' | 'float' | 'int', Weights, number[]][] = [
      [[2, 5, 6], 7, 'float', BOTH, [0, 3, 4, 8]],
      [[12, 4], 33, 'none', { peakWeight: 0.01, balanceWeight: 1 }, [11, 2, 5]],
      [[2, 6, 5], 9, 'int', { peakWeight: 0, balanceWeight: 1 }, [1, 7, 9, 10, 0]],
      [[3, 4, 8], 257, 'float', BOTH, [5]],
    ];
    it.each(SAMPLED)('equals the unfused path in value and gradients: x %j, pool %i, mask %s, weights %j, rows %j', (shape, m, maskKind, w, rowList) => {
      const de = shape[shape.length - 1];
      const x = randomTensor(shape, 51, 1);
      const r = randomTensor([de, m], 52, 1);
      const b = randomTensor([m], 53, 0.5);
      const pool = randomTensor([m, 3], 54, 1);
      const coef = randomTensor([...shape.slice(0, -1), 3], 55, 1);
      const mask = makeMask(shape.slice(0, -1), maskKind, 56);
      const rows = tf.tensor1d(rowList, 'int32');
      const ours = routeWithLoss(x, r, b, mask, w, rows);
      const ref = unfused(x, r, b, mask, w, rows);
      const full = routeWithLoss(x, r, b, mask, w);
      expect(Array.from(ours.index.dataSync())).toEqual(Array.from(ref.index.dataSync()));
      expect(ours.index.shape).toEqual(shape.slice(0, -1));
      const [lo, lr, lf] = [ours.loss!.dataSync()[0], ref.loss!.dataSync()[0], full.loss!.dataSync()[0]];
      expect(Math.abs(lo - lr)).toBeLessThanOrEqual(1e-6 * Math.max(1, Math.abs(lr)));
      // A sample of a few rows estimates the balance term differently from all rows.
      expect(Math.abs(lo - lf)).toBeGreaterThan(1e-4);
      const g = tf.grads(objective(routeWithLoss, pool, coef, mask, w, rows))([x, r, b]);
      const gRef = tf.grads(objective(unfused, pool, coef, mask, w, rows))([x, r, b]);
      for (let i = 0; i < gRef.length; i++) {
        expect(maxAbs(gRef[i])).toBeGreaterThan(0);
        expect(relErr(g[i], gRef[i])).toBeLessThanOrEqual(1e-5);
      }
      tf.dispose([x, r, b, pool, coef, rows, ours.index, ours.gate, ours.loss!, ref.index, ref.gate, ref.loss!, full.index, full.gate,
        full.loss!, ...g, ...gRef, ...(mask ? [mask] : [])]);
    });

    it('equal the unsampled step, value and gradients, when the rows are all rows', () => {
      const x = randomTensor([3, 5, 6], 61, 1);
      const r = randomTensor([6, 11], 62, 1);
      const b = randomTensor([11], 63, 0.5);
      const pool = randomTensor([11, 3], 64, 1);
      const coef = randomTensor([3, 5, 3], 65, 1);
      const mask = makeMask([3, 5], 'float', 66);
      const all = tf.tensor1d(Array.from({ length: 15 }, (_, i) => 14 - i), 'int32');
      const a = tf.grads(objective(routeWithLoss, pool, coef, mask, BOTH, all))([x, r, b]);
      const ref = tf.grads(objective(routeWithLoss, pool, coef, mask, BOTH))([x, r, b]);
      for (let i = 0; i < ref.length; i++) expect(relErr(a[i], ref[i])).toBeLessThanOrEqual(1e-5);
      const [la, lr] = [routeWithLoss(x, r, b, mask, BOTH, all).loss!, routeWithLoss(x, r, b, mask, BOTH).loss!];
      expect(Math.abs(la.dataSync()[0] - lr.dataSync()[0])).toBeLessThanOrEqual(1e-6);
      tf.dispose([x, r, b, pool, coef, mask!, all, ...a, ...ref, la, lr]);
    });

    it('match finite differences', () => {
      const rows = tf.tensor1d([4, 1, 2], 'int32');
      expectFiniteDifferences(rows, 71);
      rows.dispose();
    });

    it('leak no tensors and reject bad rows, naming the argument', () => {
      const x = randomTensor([2, 4, 5], 81, 1);
      const r = randomTensor([5, 16], 82, 1);
      const b = randomTensor([16], 83, 1);
      const rows = tf.tensor1d([0, 5, 6], 'int32');
      const before = tf.memory().numTensors;
      const grads = tf.grads((xx: tf.Tensor, rr: tf.Tensor, bb: tf.Tensor) => {
        const o = routeWithLoss(xx, rr, bb, null, BOTH, rows);
        return tf.add(tf.sum(o.gate), o.loss!) as tf.Scalar;
      })([x, r, b]);
      tf.dispose(grads);
      expect(tf.memory().numTensors).toBe(before);
      expect(() => routeWithLoss(x, r, b, null, BOTH, tf.tensor1d([0, 1]))).toThrow(/balanceRows.*int32/);
      expect(() => routeWithLoss(x, r, b, null, BOTH, tf.zeros([2, 1], 'int32'))).toThrow(/balanceRows/);
      expect(() => routeWithLoss(x, r, b, null, BOTH, tf.tensor1d([], 'int32'))).toThrow(/balanceRows.*at least one row/);
      tf.dispose([x, r, b, rows]);
    });
  });

  it('keeps nothing of size [N, poolSize] for the backward pass', () => {
    // N * m * 4 bytes = 1 MB of logits; everything routeWithLoss saves is ~N * (de + 3) * 4.
    const n = 64;
    const m = 4096;
    const x = randomTensor([n, 8], 31, 1);
    const r = randomTensor([8, m], 32, 1);
    const b = tf.zeros([m]);
    const held = (route: Route): number => {
      let bytes = 0;
      const grads = tf.grads((xx: tf.Tensor, rr: tf.Tensor, bb: tf.Tensor) => {
        const before = tf.memory().numBytes;
        const out = route(xx, rr, bb, null, BOTH);
        bytes = tf.memory().numBytes - before;
        return tf.add(tf.sum(out.gate), out.loss!) as tf.Scalar;
      })([x, r, b]);
      tf.dispose(grads);
      return bytes;
    };
    expect(held(unfused)).toBeGreaterThanOrEqual(n * m * 4);
    expect(held(routeWithLoss)).toBeLessThan(n * m);
    tf.dispose([x, r, b]);
  });

  it('leaks no tensors, with and without a gradient tape', () => {
    const x = randomTensor([2, 4, 5], 41, 1);
    const r = randomTensor([5, 16], 42, 1);
    const b = randomTensor([16], 43, 1);
    const mask = tf.tensor2d([[1, 1, 1, 0], [1, 0, 0, 0]]);
    const before = tf.memory().numTensors;
    tf.tidy(() => { routeWithLoss(x, r, b, mask, BOTH); });
    const out = routeWithLoss(x, r, null, null, OFF);
    tf.dispose([out.index, out.gate]);
    const grads = tf.grads((xx: tf.Tensor, rr: tf.Tensor, bb: tf.Tensor) => {
      const o = routeWithLoss(xx, rr, bb, mask, BOTH);
      return tf.add(tf.sum(o.gate), o.loss!) as tf.Scalar;
    })([x, r, b]);
    tf.dispose(grads);
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, r, b, mask]);
  });

  it('rejects inputs of the wrong shape, naming the argument', () => {
    const x = tf.zeros([2, 3, 4]);
    const r = tf.zeros([4, 6]);
    expect(() => routeWithLoss(x, tf.zeros([5, 6]), null, null, BOTH)).toThrow(/router/);
    expect(() => routeWithLoss(x, r, tf.zeros([5]), null, BOTH)).toThrow(/routerBias/);
    expect(() => routeWithLoss(x, r, null, tf.ones([2, 4]), BOTH)).toThrow(/mask/);
    expect(() => routeWithLoss(x, r, null, null, { peakWeight: -1, balanceWeight: 1 })).toThrow(/peakWeight/);
    expect(() => routeWithLoss(tf.zeros([4]), r, null, null, BOTH)).toThrow(/x/);
  });
});
