// The product-key router (router: 'product'): the same layer as a dense router whose column i*s + j
// is the sum of the two sub-routers' columns i and s + j (routes, inference and training outputs,
// routing losses, gradients, cache), and the option round-trips and is validated.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';
import * as tfl from '@tensorflow/tfjs-layers';
import { CollectiveKVAttention, GlobalKVPool, routerInitScale } from '../../layers/index';
import { weightBySuffix } from './helpers';

const TOL = 2e-5;
const S = 3;

function pair(): { product: CollectiveKVAttention; dense: CollectiveKVAttention } {
  // balanceTokens 0: the dense layer's balance term over every token, as the product router's.
  const common = { numHeads: 2, keyDim: 4, valueDim: 3, poolSize: S * S, userDim: 2, causal: true, poolSeed: 3, balanceTokens: 0,
    peakWeight: 0.2, balanceWeight: 0.5, kernelInitializer: { className: 'GlorotUniform', config: { seed: 9 } } };
  return { product: new CollectiveKVAttention({ ...common, router: 'product' }), dense: new CollectiveKVAttention(common) };
}

/** [rows, 2s] sub-router columns (or [2s] biases) -> the dense [rows, s*s] (or [s*s]) equivalent. */
function expand(t: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const m = t.rank === 1 ? tf.expandDims(t, 0) : t;
    const [a, b] = tf.split(m, 2, -1);
    const joint = tf.add(tf.expandDims(a, -1), tf.expandDims(b, -2));
    // A fresh tensor, not a reshape: wasm's fused matmul reads a bias's shape from its data (here [1, S, S]).
    return tf.tensor(joint.dataSync(), t.rank === 1 ? [S * S] : [m.shape[0], S * S]);
  });
}

/** Copies every weight by name; routers and router biases expanded. */
function copyExpanded(product: CollectiveKVAttention, dense: CollectiveKVAttention): void {
  for (const w of dense.weights) {
    const name = w.originalName.split('/').pop() as string;
    const source = weightBySuffix(product, name).read();
    if (name.endsWith('_router') || name.endsWith('_router_bias')) {
      const joint = expand(source);
      w.write(joint);
      joint.dispose();
    } else {
      w.write(source);
    }
  }
}

describeEachBackend('product-key router', () => {
  test('equals the expanded dense router: routes, outputs (inference and training), routing losses, cache', () => {
    const { product, dense } = pair();
    const x = randomTensor([2, 6, 5], 1, 2);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]);
    (product.apply(x) as tf.Tensor).dispose();
    (dense.apply(x) as tf.Tensor).dispose();
    expect(weightBySuffix(product, 'key_router').shape).toEqual([5, 2 * S]);
    expect(weightBySuffix(product, 'value_router_bias').shape).toEqual([2 * S]);
    // Non-zero biases, so their expansion is exercised.
    for (const side of ['key', 'value']) {
      const b = randomTensor([2 * S], side === 'key' ? 4 : 5);
      weightBySuffix(product, `${side}_router_bias`).write(b);
      b.dispose();
    }
    copyExpanded(product, dense);
    for (const side of ['key', 'value'] as const) {
      const a = product.route(side, x);
      const b = dense.route(side, x);
      expect(Array.from(a.index.dataSync())).toEqual(Array.from(b.index.dataSync()));
      expect(maxAbsDiff(a.gate, b.gate)).toBeLessThan(TOL);
      tf.dispose([a.index, a.gate, a.logits, b.index, b.gate, b.logits]);
    }
    const y = product.apply([x, mask]) as tf.Tensor;
    expect(maxAbsDiff(y, dense.apply([x, mask]) as tf.Tensor)).toBeLessThan(TOL);
    const train = product.apply([x, mask], { training: true }) as tf.Tensor;
    const trainWant = dense.apply([x, mask], { training: true }) as tf.Tensor;
    expect(maxAbsDiff(train, trainWant)).toBeLessThan(TOL);
    const loss = product.auxiliaryLoss();
    const lossWant = dense.auxiliaryLoss();
    expect(Math.abs(loss.dataSync()[0] - lossWant.dataSync()[0])).toBeLessThan(1e-5);
    const before = tf.memory().numTensors;
    const block = product.computeCache(x, mask);
    const cached = product.attendCached(x, block);
    expect(maxAbsDiff(cached, y)).toBeLessThan(TOL);
    cached.dispose();
    block.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, mask, y, train, trainWant, loss, lossWant]);
    product.dispose();
    dense.dispose();
  });

  test('router gradients equal the dense router\'s summed over the other sub-key', () => {
    const { product, dense } = pair();
    const x = randomTensor([2, 5, 5], 6, 2);
    const mask = tf.tensor2d([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]);
    const probe = randomTensor([2, 5, 5], 7);
    (product.apply(x) as tf.Tensor).dispose();
    (dense.apply(x) as tf.Tensor).dispose();
    copyExpanded(product, dense);
    const grads = (layer: CollectiveKVAttention, names: string[]) => {
      const vars = names.map((n) => weightBySuffix(layer, n).read() as tf.Variable);
      const { value, grads: g } = tf.variableGrads(() => tf.add(tf.sum(tf.mul(layer.apply([x, mask], { training: true }) as tf.Tensor, probe)),
        layer.auxiliaryLoss()) as tf.Scalar, vars);
      value.dispose();
      return vars.map((v) => g[v.name]);
    };
    const names = ['key_router', 'value_router', 'key_router_bias', 'value_pool'];
    const got = grads(product, names);
    const want = grads(dense, names);
    for (let i = 0; i < names.length; i++) {
      // d/dA[:, i] = sum_j d/dDense[:, i*s + j]; d/dB[:, j] = sum_i d/dDense[:, i*s + j].
      const reduced = names[i].endsWith('_pool') ? tf.clone(want[i]) : tf.tidy(() => {
        const w = want[i].rank === 1 ? tf.expandDims(want[i], 0) : want[i];
        const cube = tf.reshape(w, [w.shape[0], S, S]);
        const r = tf.concat([tf.sum(cube, 2), tf.sum(cube, 1)], -1);
        return want[i].rank === 1 ? tf.squeeze(r, [0]) : r;
      });
      expect(maxAbsDiff(got[i], reduced)).toBeLessThan(1e-4);
      expect(maxAbsDiff(reduced, tf.zerosLike(reduced))).toBeGreaterThan(1e-4);
      reduced.dispose();
    }
    tf.dispose([x, mask, probe, ...got, ...want]);
    product.dispose();
    dense.dispose();
  });

  test('GlobalKVPool with product keys: rows of the route computed by hand from its sub-routers', () => {
    const layer = new GlobalKVPool({ poolSize: S * S, units: 3, router: 'product', peakWeight: 0.1, balanceWeight: 0.1 });
    const x = randomTensor([2, 4, 5], 8, 2);
    (layer.apply(x) as tf.Tensor).dispose();
    expect(weightBySuffix(layer, 'router').shape).toEqual([5, 2 * S]);
    const want = tf.tidy(() => {
      const router = weightBySuffix(layer, 'router').read();
      const a = tf.matMul(tf.reshape(x, [-1, 5]), tf.slice(router, [0, 0], [-1, S]));
      const b = tf.matMul(tf.reshape(x, [-1, 5]), tf.slice(router, [0, S], [-1, S]));
      const index = tf.add(tf.mul(tf.argMax(a, -1), tf.scalar(S, 'int32')), tf.argMax(b, -1));
      return tf.reshape(tf.gather(weightBySuffix(layer, 'pool').read(), index), [2, 4, 3]);
    });
    const got = layer.apply(x) as tf.Tensor;
    expect(maxAbsDiff(got, want)).toBe(0);
    const trained = layer.apply(x, { training: true }) as tf.Tensor;
    const loss = layer.auxiliaryLoss();
    expect(Number.isFinite(loss.dataSync()[0])).toBe(true);
    expect(layer.getConfig().router).toBe('product');
    tf.dispose([x, want, got, trained, loss]);
    layer.dispose();
  });

  test('the option round-trips through getConfig and is validated', () => {
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolSize: 16, router: 'product' }).getConfig().router).toBe('product');
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2 }).getConfig().router).toBeUndefined();
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolSize: 1000, router: 'product' })).toThrow(/poolSize.*perfect square.*1000/s);
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolSize: 16, router: 'product', routingBiasRate: 0.1 })).toThrow(/routingBiasRate/);
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, router: 'sparse' as 'dense' })).toThrow(/router.*dense.*product.*sparse/s);
    expect(() => new GlobalKVPool({ units: 2, poolSize: 8, router: 'product' })).toThrow(/poolSize.*perfect square.*8/s);
  });

  test('routerInitScale: the product router starts with the dense router\'s joint-logit variance', () => {
    const glorot = tfl.initializers.glorotUniform({});
    // glorot: var = 2 / (fanIn + fanOut); dense [32, 1024] vs sub-routers [32, 64] summed twice.
    expect(routerInitScale(glorot, 32, 1024, 32)).toBeCloseTo(Math.sqrt((2 / 1056) / (2 * 2 / 96)), 6);
    expect(routerInitScale(glorot, 32, 1024, null)).toBe(1);
    // fanIn modes and fixed-variance initializers: only the sum of two logits to undo.
    expect(routerInitScale(tfl.initializers.heNormal({}), 32, 1024, 32)).toBeCloseTo(Math.SQRT1_2, 6);
    expect(routerInitScale(tfl.initializers.randomNormal({ stddev: 0.3 }), 32, 1024, 32)).toBeCloseTo(Math.SQRT1_2, 6);
  });

  test('initial joint logits of both layers have the dense router\'s spread (std within 15%)', () => {
    const x = randomTensor([1500, 32], 12, 1);
    const jointStd = (router: tf.Tensor, subKeys: number | null): number => tf.tidy(() => {
      const logits = subKeys == null ? tf.matMul(x, router)
        : tf.add(tf.matMul(x, tf.slice(router, [0, 0], [-1, subKeys])), tf.matMul(x, tf.slice(router, [0, subKeys], [-1, subKeys])));
      return Math.sqrt(tf.moments(logits).variance.dataSync()[0]);
    });
    const init = { className: 'GlorotUniform', config: { seed: 4 } };
    const stds: Record<string, number> = {};
    for (const router of ['dense', 'product'] as const) {
      const attention = new CollectiveKVAttention({ numHeads: 4, keyDim: 64, poolSize: 1024, userDim: 1, router, kernelInitializer: init });
      const q = tf.zeros([1, 2, 32]);
      (attention.apply(q) as tf.Tensor).dispose();
      stds[`attention ${router}`] = jointStd(weightBySuffix(attention, 'key_router').read(), router === 'product' ? 32 : null);
      const pool = new GlobalKVPool({ poolSize: 1024, units: 8, router, routerInitializer: init });
      (pool.apply(q) as tf.Tensor).dispose();
      stds[`pool ${router}`] = jointStd(weightBySuffix(pool, 'router').read(), router === 'product' ? 32 : null);
      tf.dispose(q);
      attention.dispose();
      pool.dispose();
    }
    expect(stds['attention product'] / stds['attention dense']).toBeGreaterThan(0.85);
    expect(stds['attention product'] / stds['attention dense']).toBeLessThan(1.15);
    expect(stds['pool product'] / stds['pool dense']).toBeGreaterThan(0.85);
    expect(stds['pool product'] / stds['pool dense']).toBeLessThan(1.15);
    x.dispose();
  });
});
