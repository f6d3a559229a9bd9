// The dense router (layers/routing/dense.ts) through the GlobalKVPool that holds it: rows, route
// and routing losses against hand-computed values; the straight-through gate (the training forward
// reads pool[index] as inference does, the router gets the scaled gate's gradient, the pool the
// unscaled one); routingLoss() is the training call's loss; its config and 0.1's flat form.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../../util/backends';
import { CollectiveKVAttention, GlobalKVPool, GateMode } from '../../../layers/index';
import { handLosses, setWeight, weightBySuffix } from '../helpers';

const X = [[0.5, -1.0], [2.0, 0.3]];               // two valid tokens, width 2
const PAD = [40, -40];                               // a padding token with extreme features
const ROUTER = [[1, 0, -1], [0, 2, 1]];              // [2, 3]
const BIAS = [0.1, 0, -0.1];


/** A built pool layer (no routing losses, so only the rows carry gradient) and its weights. */
function poolLayer(gate: GateMode): GlobalKVPool {
  const layer = new GlobalKVPool({ poolSize: 5, units: 3, router: { kind: 'dense', peakWeight: 0, balanceWeight: 0, gate },
    routerInitializer: tfl.initializers.randomNormal({ mean: 0, stddev: 1, seed: 4 }),
    poolInitializer: tfl.initializers.randomNormal({ mean: 0, stddev: 1, seed: 5 }) });
  tf.tidy(() => { layer.apply(tf.zeros([2, 6, 4])); });
  return layer;
}

/** Gradients of sum(rows * weights) w.r.t. the layer's pool and router. */
function gradients(layer: GlobalKVPool, x: tf.Tensor, weights: tf.Tensor): { pool: Float32Array; router: Float32Array } {
  const pool = weightBySuffix(layer, 'pool').read() as tf.Variable;
  const router = weightBySuffix(layer, 'router').read() as tf.Variable;
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(layer.apply(x, { training: true }) as tf.Tensor, weights)), [pool, router]);
  const out = { pool: grads[pool.name].dataSync() as Float32Array, router: grads[router.name].dataSync() as Float32Array };
  tf.dispose([value, grads[pool.name], grads[router.name]]);
  return out;
}

describeEachBackend('dense router', () => {
  test('GlobalKVPool: gated rows in training, plain rows at inference, route(), losses by hand; routingLoss() is the training loss', () => {
    const pool = new GlobalKVPool({ poolSize: 3, units: 2, router: { kind: 'dense', peakWeight: 0.3, balanceWeight: 0.7 } });
    const x = tf.tensor3d([[...X, PAD]]);
    pool.apply(x);
    setWeight(pool, 'router', ROUTER.flat());
    setWeight(pool, 'router_bias', BIAS);
    const table = [[1, 2], [3, 4], [5, 6]];
    setWeight(pool, 'pool', table.flat());
    const tokens = [...X, PAD];
    const logits = tokens.map((t) => BIAS.map((b, j) => b + t[0] * ROUTER[0][j] + t[1] * ROUTER[1][j]));
    const index = logits.map((l) => l.indexOf(Math.max(...l)));
    const gate = logits.map((l) => 1 / (1 + Math.exp(-Math.max(...l))));
    const r = pool.route(x);
    expect(Array.from(r.index.dataSync())).toEqual(index);
    expect(Array.from(pool.index(x).dataSync())).toEqual(index);
    expect(maxAbsDiff(r.gate, tf.tensor2d([gate]))).toBeLessThan(1e-5);
    expect(maxAbsDiff(r.logits, tf.tensor3d([logits]))).toBeLessThan(1e-5);
    const plain = pool.apply(x) as tf.Tensor;
    expect(maxAbsDiff(plain, tf.tensor3d([index.map((j) => table[j])]))).toBeLessThan(1e-6);
    const mask = tf.tensor2d([[1, 1, 0]]);
    const k = handLosses(X, ROUTER, BIAS);
    const gated = tf.tidy(() => {
      const out = pool.apply(x, { training: true, mask }) as tf.Tensor;
      expect(pool.auxiliaryLoss().dataSync()[0]).toBeCloseTo(0.3 * k.peak + 0.7 * k.balance, 5);
      expect((pool.routingLoss(x, mask) as tf.Scalar).dataSync()[0]).toBeCloseTo(0.3 * k.peak + 0.7 * k.balance, 5);
      return out;
    });
    expect(maxAbsDiff(gated, tf.tensor3d([index.map((j, i) => table[j].map((t) => t * gate[i]))]))).toBeLessThan(1e-5);
    // lookup(): the same rows joined to a tail, the loss handed back instead of added to the layer's.
    tf.tidy(() => {
      const tail = tf.tensor3d([[[7], [8], [9]]]);
      const looked = pool.lookup(x, { training: true, mask, tail });
      expect(maxAbsDiff(looked.rows, tf.concat([gated, tail], -1))).toBeLessThan(1e-6);
      expect((looked.loss as tf.Scalar).dataSync()[0]).toBeCloseTo(0.3 * k.peak + 0.7 * k.balance, 5);
      expect(pool.auxiliaryLoss().dataSync()[0]).toBe(0);
    });
    expect(pool.trainableWeights.map((w) => w.name.split('/').pop())).toEqual(['pool', 'router', 'router_bias']);
    expect(new GlobalKVPool({ units: 2, router: { kind: 'dense', peakWeight: 0, balanceWeight: 0 } }).router).toHaveProperty('balanceTokens', 2048);
    tf.dispose([x, r.index, r.gate, r.logits, plain, gated, mask]);
    pool.dispose();
  });

  test('with both weights 0 there is no loss at all', () => {
    const pool = new GlobalKVPool({ poolSize: 3, units: 2, router: { kind: 'dense', peakWeight: 0, balanceWeight: 0 } });
    const x = tf.tensor3d([X]);
    tf.tidy(() => {
      pool.apply(x);
      const looked = pool.lookup(x, { training: true });
      expect(looked.loss).toBeNull();
      expect(pool.routingLoss(x)).toBeNull();
    });
    x.dispose();
    pool.dispose();
  });
});

describeEachBackend('dense router: straight-through gate', () => {
  test('GlobalKVPool: training rows equal inference rows; pool gradient unscaled; router gradient equals the scaled gate\'s', () => {
    const before = tf.memory().numTensors;
    const x = randomTensor([2, 6, 4], 1);
    const weights = randomTensor([2, 6, 3], 2);
    const straight = poolLayer('straight-through');
    const scaled = poolLayer('scaled');
    const inference = straight.apply(x) as tf.Tensor;
    const training = straight.apply(x, { training: true }) as tf.Tensor;
    const scaledTraining = scaled.apply(x, { training: true }) as tf.Tensor;
    expect(maxAbsDiff(training, inference)).toBe(0);
    expect(maxAbsDiff(scaledTraining, inference)).toBeGreaterThan(1e-3); // the scaled gate does differ

    const st = gradients(straight, x, weights);
    const sc = gradients(scaled, x, weights);
    // Pool: each row gets the sum of the weights of the tokens routed to it (no gate factor).
    const routing = straight.route(x);
    const index = routing.index.dataSync();
    const w = weights.dataSync();
    const expected = new Float32Array(5 * 3);
    for (let t = 0; t < index.length; t++) for (let c = 0; c < 3; c++) expected[index[t] * 3 + c] += w[t * 3 + c];
    for (let i = 0; i < expected.length; i++) expect(st.pool[i]).toBeCloseTo(expected[i], 5);
    // Router: d/dgate = weights . pool[index] under both modes, so the router gradients match.
    const scale = Math.max(...Array.from(sc.router, Math.abs));
    expect(scale).toBeGreaterThan(0);
    for (let i = 0; i < sc.router.length; i++) expect(Math.abs(st.router[i] - sc.router[i])).toBeLessThan(1e-5 * scale + 1e-6);

    tf.dispose([x, weights, inference, training, scaledTraining, routing.index, routing.gate, routing.logits]);
    straight.dispose();
    scaled.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });

  test('CollectiveKVAttention: the training forward equals inference (dropout 0); the option round-trips and is validated', () => {
    const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, poolSize: 8, userDim: 1, causal: true, poolSeed: 3,
      router: { kind: 'dense', gate: 'straight-through' } });
    const x = randomTensor([2, 5, 6], 7);
    const inference = layer.apply(x) as tf.Tensor;
    const training = layer.apply(x, { training: true }) as tf.Tensor;
    layer.auxiliaryLoss().dispose();
    expect(maxAbsDiff(training, inference)).toBe(0);
    expect((layer.getConfig().router as { gate: string }).gate).toBe('straight-through');
    expect((new CollectiveKVAttention({ numHeads: 1, keyDim: 2 }).getConfig().router as { gate: string }).gate).toBe('scaled');
    const copy = CollectiveKVAttention.fromConfig(CollectiveKVAttention, layer.getConfig()) as CollectiveKVAttention;
    expect(copy.router).toEqual(layer.router);
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, router: { kind: 'dense', gate: 'hard' as GateMode } })).toThrow(/router\.gate.*scaled.*straight-through.*hard/s);
    tf.dispose([x, inference, training]);
    layer.dispose();
  });
});

describe('dense router config', () => {
  test('defaults, validation by name, round trip through getConfig', () => {
    const layer = new CollectiveKVAttention({ numHeads: 1, keyDim: 2 });
    expect(layer.router).toEqual({ kind: 'dense', gate: 'scaled', peakWeight: 0.01, balanceWeight: 1, balanceTokens: 2048 });
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2, router: 'dense' }).router).toEqual(layer.router);
    const custom = new CollectiveKVAttention({ numHeads: 1, keyDim: 2, router: { kind: 'dense', peakWeight: 0.2, balanceTokens: 0 } });
    expect(custom.getConfig().router).toEqual({ kind: 'dense', gate: 'scaled', peakWeight: 0.2, balanceWeight: 1, balanceTokens: 0 });
    const copy = CollectiveKVAttention.fromConfig(CollectiveKVAttention, custom.getConfig()) as CollectiveKVAttention;
    expect(copy.router).toEqual(custom.router);
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, router: { kind: 'dense', balanceWeight: -1 } }))
      .toThrow(/^CollectiveKVAttention: argument 'router\.balanceWeight' must be a finite number >= 0, received -1$/);
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, router: { kind: 'dense', quantizationWeight: 1 } as never }))
      .toThrow(/argument 'router\.quantizationWeight' must be an option of the 'dense' router: gate, peakWeight, balanceWeight, balanceTokens \('quantizationWeight' belongs to the 'nearest-product' router\), received 1$/);
  });

  test("0.1's flat options map to the nested config; beside a config object they are refused", () => {
    const flat = { numHeads: 1, keyDim: 2, gate: 'straight-through', peakWeight: 0.5, balanceWeight: 0.25, balanceTokens: 16, quantizationWeight: 3 };
    const layer = new CollectiveKVAttention(flat as never);
    // quantizationWeight had no effect on a dense layer in 0.1: dropped.
    expect(layer.router).toEqual({ kind: 'dense', gate: 'straight-through', peakWeight: 0.5, balanceWeight: 0.25, balanceTokens: 16 });
    expect(layer.getConfig()).not.toHaveProperty('peakWeight');
    expect(new GlobalKVPool({ units: 2, router: 'dense', peakWeight: 0 } as never).router).toHaveProperty('peakWeight', 0);
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, router: { kind: 'dense' }, peakWeight: 0.5 } as never))
      .toThrow(/^CollectiveKVAttention: argument 'peakWeight' must be inside the router config \(router: \{ kind: "dense", peakWeight: \.\.\. \}\), received 0\.5$/);
  });
});
