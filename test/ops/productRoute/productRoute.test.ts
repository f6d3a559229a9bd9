// Product-key routing against the dense router it equals: logits a[i] + b[j] expanded to s*s
// columns, routed by routeTop1 and scored by the composite routing loss (values and gradients).
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../../util/backends';
import { SubRouterLogits, gatherRows, productRouteTop1, productRouteWithLoss, productRoutingLoss, productSubKeys, routeTop1, routingLossComposite } from '../../../ops/index';

/** [..., 2s] -> the two sub-routers' logits. */
function halves(logits: tf.Tensor): SubRouterLogits {
  const [a, b] = tf.split(logits, 2, -1);
  return { a, b };
}

/** [..., 2s] sub-router logits -> [..., s*s] joint logits a[i] + b[j] at column i*s + j. */
function jointLogits(logits: tf.Tensor, s: number): tf.Tensor {
  return tf.tidy(() => {
    const { a, b } = halves(logits);
    const lead = logits.shape.slice(0, -1);
    return tf.reshape(tf.add(tf.expandDims(a, -1), tf.expandDims(b, -2)), [...lead, s * s]);
  });
}

describeEachBackend('productRoute', () => {
  const s = 4;
  const weights = { peakWeight: 0.3, balanceWeight: 0.7 };

  test('index, gate and loss equal the dense router over the joint logits; padding ignored', () => {
    const before = tf.memory().numTensors;
    const logits = randomTensor([3, 5, 2 * s], 1, 2);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1], [0, 0, 1, 1, 1], [1, 1, 0, 0, 0]]);
    const joint = jointLogits(logits, s);
    const sub = halves(logits);
    const product = productRouteTop1(sub);
    const dense = routeTop1(joint);
    expect(Array.from(product.index.dataSync())).toEqual(Array.from(dense.index.dataSync()));
    expect(maxAbsDiff(product.gate, dense.gate)).toBeLessThan(1e-6);
    const loss = productRoutingLoss(sub, mask, weights) as tf.Scalar;
    const want = routingLossComposite(joint, mask, weights);
    expect(Math.abs(loss.dataSync()[0] - want.dataSync()[0])).toBeLessThan(1e-5);
    expect(productRoutingLoss(sub, mask, { peakWeight: 0, balanceWeight: 0 })).toBeNull();
    // The one-pass training form gives the same route, gate and loss.
    const both = productRouteWithLoss(sub, mask, weights);
    expect(Array.from(both.index.dataSync())).toEqual(Array.from(product.index.dataSync()));
    expect(maxAbsDiff(both.gate, product.gate)).toBe(0);
    expect(both.loss!.dataSync()[0]).toBe(loss.dataSync()[0]);
    const none = productRouteWithLoss(sub, mask, { peakWeight: 0, balanceWeight: 0 });
    expect(none.loss).toBeNull();
    tf.dispose([both.index, both.gate, both.loss!, none.index, none.gate]);
    tf.dispose([logits, mask, joint, sub.a, sub.b, product.index, product.gate, dense.index, dense.gate, loss, want]);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('gradients w.r.t. the sub-router logits equal the dense ones summed over the other key', () => {
    const logits = randomTensor([2, 6, 2 * s], 2, 2);
    const mask = tf.tensor2d([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]]);
    const probe = randomTensor([2, 6], 3);
    // The gate enters through a probe so its gradient is checked too.
    const productObjective = (l: tf.Tensor) => tf.add(productRoutingLoss(halves(l), mask, weights) as tf.Scalar,
      tf.sum(tf.mul(productRouteTop1(halves(l)).gate, probe))) as tf.Scalar;
    const onePassObjective = (l: tf.Tensor) => {
      const r = productRouteWithLoss(halves(l), mask, weights);
      return tf.add(r.loss as tf.Scalar, tf.sum(tf.mul(r.gate, probe))) as tf.Scalar;
    };
    const denseObjective = (l: tf.Tensor) => tf.add(routingLossComposite(jointLogits(l, s), mask, weights),
      tf.sum(tf.mul(routeTop1(jointLogits(l, s)).gate, probe))) as tf.Scalar;
    const got = tf.grad(productObjective)(logits);
    const want = tf.grad(denseObjective)(logits);
    expect(maxAbsDiff(got, want)).toBeLessThan(1e-5);
    const onePass = tf.grad(onePassObjective)(logits);
    expect(maxAbsDiff(onePass, want)).toBeLessThan(1e-5);
    onePass.dispose();
    expect(maxAbsDiff(want, tf.zerosLike(want))).toBeGreaterThan(1e-3);
    tf.dispose([logits, mask, probe, got, want]);
  });

  test('balanceRows: the balance term over the sampled rows only, the peak over every valid row; values and gradients', () => {
    const before = tf.memory().numTensors;
    const logits = randomTensor([3, 4, 2 * s], 4, 2);
    const mask = tf.tensor2d([[1, 1, 1, 1], [0, 1, 1, 1], [1, 1, 0, 0]]);
    const rows = [0, 2, 4, 5, 9, 10];  // flattened rows; 4 and 10 are padding
    const balanceRows = tf.tensor1d(rows, 'int32');
    const flatMask = tf.reshape(mask, [-1]);
    // Reference: the dense composite's peak over all tokens plus its balance over the sampled rows' joint logits.
    const reference = (l: tf.Tensor) => tf.tidy(() => {
      const joint = tf.reshape(jointLogits(l, s), [-1, s * s]);
      const peak = routingLossComposite(joint, flatMask, { peakWeight: weights.peakWeight, balanceWeight: 0 });
      // gatherRows: wasm has no gradient kernel for tf.gather.
      const balance = routingLossComposite(gatherRows(joint, balanceRows), tf.gather(flatMask, balanceRows), { peakWeight: 0, balanceWeight: weights.balanceWeight });
      return tf.add(peak, balance) as tf.Scalar;
    });
    const sampled = (l: tf.Tensor) => tf.tidy(() => productRouteWithLoss(halves(l), mask, weights, balanceRows).loss as tf.Scalar);
    const [got, want] = [sampled(logits), reference(logits)];
    expect(Math.abs(got.dataSync()[0] - want.dataSync()[0])).toBeLessThan(1e-5);
    // The sample changes the value (so the test can tell it is used).
    const all = tf.tidy(() => productRoutingLoss(halves(logits), mask, weights) as tf.Scalar);
    expect(Math.abs(all.dataSync()[0] - got.dataSync()[0])).toBeGreaterThan(1e-4);
    const [gGot, gWant] = [tf.grad(sampled)(logits), tf.grad(reference)(logits)];
    expect(maxAbsDiff(gGot, gWant)).toBeLessThan(1e-5);
    tf.tidy(() => expect(() => productRouteWithLoss(halves(logits), mask, weights, tf.tensor1d([0.5]))).toThrow(/balanceRows.*int32/));
    tf.dispose([logits, mask, balanceRows, flatMask, got, want, all, gGot, gWant]);
    expect(tf.memory().numTensors).toBe(before);
  });

  test('bad inputs are named', () => {
    const [a, b] = [tf.zeros([2, 4]), tf.zeros([2, 3])];
    expect(() => productRouteTop1({ a, b })).toThrow(/logits\.b.*\[2, 4\].*\[2, 3\]/s);
    expect(() => productRouteTop1({ a, b: tf.zeros([2, 4], 'int32') })).toThrow(/logits\.b/);
    expect(() => productRoutingLoss({ a, b: a }, tf.ones([3]), weights)).toThrow(/mask/);
    expect(productSubKeys(1024)).toBe(32);
    expect(productSubKeys(1000)).toBeNull();
    tf.dispose([a, b]);
  });
});
