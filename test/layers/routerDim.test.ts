// The low-rank router (routerDim): the same layer as a full router whose kernel is the product of
// the two factors, cached decode equals the full forward, gradients of both factors match finite
// differences in training (aux losses included), and the option round-trips and is validated.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, finiteDifferenceError, maxAbsDiff, randomTensor } from '../util/backends';
import { CollectiveKVAttention } from '../../layers/index';
import { permutationRouter, routeMargin, separatedTokens, setWeight, weightBySuffix, weightGradError } from './helpers';

const TOL = 2e-5;

function pair(): { lowRank: CollectiveKVAttention; full: CollectiveKVAttention } {
  const common = { numHeads: 2, keyDim: 4, valueDim: 3, poolSize: 16, userDim: 2, causal: true, poolSeed: 3,
    kernelInitializer: { className: 'GlorotUniform', config: { seed: 9 } } };
  return { lowRank: new CollectiveKVAttention({ ...common, routerDim: 3 }), full: new CollectiveKVAttention(common) };
}

describeEachBackend('low-rank router', () => {
  test('equals a full router whose kernel is projection x router (routes, outputs, cache)', () => {
    const { lowRank, full } = pair();
    const x = randomTensor([2, 6, 5], 1, 2);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]);
    (lowRank.apply(x) as tf.Tensor).dispose();
    (full.apply(x) as tf.Tensor).dispose();
    for (const side of ['key', 'value']) {
      expect(weightBySuffix(lowRank, `${side}_router_projection`).shape).toEqual([5, 3]);
      expect(weightBySuffix(lowRank, `${side}_router`).shape).toEqual([3, 16]);
    }
    // Copy every weight the two share by name; the full router gets P R.
    for (const w of full.weights) {
      const name = w.originalName.split('/').pop() as string;
      if (name.endsWith('_router')) {
        const side = name.replace('_router', '');
        const product = tf.matMul(weightBySuffix(lowRank, `${side}_router_projection`).read() as tf.Tensor2D,
          weightBySuffix(lowRank, name).read() as tf.Tensor2D);
        w.write(product);
        product.dispose();
      } else {
        w.write(weightBySuffix(lowRank, name).read());
      }
    }
    for (const side of ['key', 'value'] as const) {
      const a = lowRank.route(side, x);
      const b = full.route(side, x);
      expect(maxAbsDiff(a.logits, b.logits)).toBeLessThan(TOL);
      expect(Array.from(a.index.dataSync())).toEqual(Array.from(b.index.dataSync()));
      tf.dispose([a.index, a.gate, a.logits, b.index, b.gate, b.logits]);
    }
    const y = lowRank.apply([x, mask]) as tf.Tensor;
    const want = full.apply([x, mask]) as tf.Tensor;
    expect(maxAbsDiff(y, want)).toBeLessThan(TOL);
    const before = tf.memory().numTensors;
    const block = lowRank.computeCache(x, mask);
    const cached = lowRank.attendCached(x, block);
    expect(maxAbsDiff(cached, y)).toBeLessThan(TOL);
    cached.dispose();
    block.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, mask, y, want]);
    lowRank.dispose();
    full.dispose();
  });

  test('d/d input, projection and router match finite differences in training', () => {
    const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 2, poolSize: 4, userDim: 1, causal: true, routerDim: 4,
      peakWeight: 0.5, balanceWeight: 0.5 });
    const init = tf.zeros([1, 1, 4]);
    (layer.apply(init) as tf.Tensor).dispose();
    init.dispose();
    // projection = a permutation, router = 4 * another: routes far from ties (see helpers.separatedTokens).
    setWeight(layer, 'key_router_projection', permutationRouter([1, 0, 3, 2]).map((v) => v / 4));
    setWeight(layer, 'key_router', permutationRouter([2, 0, 3, 1]));
    setWeight(layer, 'value_router_projection', permutationRouter([0, 1, 2, 3]).map((v) => v / 4));
    setWeight(layer, 'value_router', permutationRouter([1, 3, 0, 2]));
    const x = separatedTokens(2, 3, 11);
    for (const side of ['key', 'value'] as const) {
      const r = layer.route(side, x);
      expect(routeMargin(r.logits)).toBeGreaterThan(1);
      tf.dispose([r.index, r.gate, r.logits]);
    }
    const probe = randomTensor([2, 3, 4], 12);
    const mask = tf.tensor2d([[1, 1, 1], [1, 1, 0]]);
    const objective = (xi: tf.Tensor) => tf.add(tf.sum(tf.mul(layer.apply([xi, mask], { training: true }) as tf.Tensor, probe)),
      layer.auxiliaryLoss()) as tf.Scalar;
    expect(finiteDifferenceError(objective, x)).toBeLessThan(2e-3);
    for (const name of ['key_router_projection', 'value_router_projection', 'key_router', 'value_router_bias']) {
      expect(weightGradError(layer, name, () => objective(x))).toBeLessThan(2e-3);
    }
    tf.dispose([x, probe, mask]);
    layer.dispose();
  });

  test('the option round-trips through getConfig and is validated', () => {
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2, routerDim: 8 }).getConfig().routerDim).toBe(8);
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2 }).getConfig().routerDim).toBeUndefined();
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, routerDim: -2 })).toThrow(/routerDim/);
  });
});
