// Auxiliary losses of CollectiveKVAttention (dense router) against hand-computed values; padding
// tokens do not change them; weight 0 turns a loss off; stale losses are never carried to a later
// read. Plus UserKVProjector on its own (GlobalKVPool's: test/layers/routing/).
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, maxAbsDiff } from '../util/backends';
import { CollectiveKVAttention, GlobalKVPool, UserKVProjector } from '../../layers/index';
import { handLosses, setWeight } from './helpers';

const X = [[0.5, -1.0], [2.0, 0.3]];               // two valid tokens, width 2
const PAD = [40, -40];                               // a padding token with extreme features
const ROUTER_K = [[1, 0, -1], [0, 2, 1]];            // [2, 3]
const BIAS_K = [0.1, 0, -0.1];
const ROUTER_V = [[-1, 0.5, 2], [1, -1, 0]];
const BIAS_V = [0, 0.2, 0];


function makeLayer(peakWeight: number, balanceWeight: number, balanceTokens?: number): CollectiveKVAttention {
  const layer = new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolSize: 3, userDim: 1, router: { kind: 'dense', peakWeight, balanceWeight, balanceTokens } });
  const x = tf.zeros([1, 1, 2]);
  layer.apply(x);
  x.dispose();
  setWeight(layer, 'key_router', ROUTER_K.flat());
  setWeight(layer, 'key_router_bias', BIAS_K);
  setWeight(layer, 'value_router', ROUTER_V.flat());
  setWeight(layer, 'value_router_bias', BIAS_V);
  return layer;
}

/** The aux loss of one training call (read right after it). */
function auxOf(layer: CollectiveKVAttention, inputs: tf.Tensor[]): number {
  return tf.tidy(() => {
    layer.apply(inputs, { training: true });
    return layer.auxiliaryLoss().dataSync()[0];
  });
}

describeEachBackend('layers auxiliary losses', () => {
  test('CollectiveKVAttention: peak and balance equal hand-computed values, and padding does not change them', () => {
    const [pw, bw] = [0.3, 0.7];
    const layer = makeLayer(pw, bw);
    const k = handLosses(X, ROUTER_K, BIAS_K);
    const v = handLosses(X, ROUTER_V, BIAS_V);
    const expected = pw * (k.peak + v.peak) + bw * (k.balance + v.balance);
    expect(k.balance).toBeGreaterThan(1e-3); // the example is not trivially balanced
    const clean = tf.tensor3d([X]);
    expect(auxOf(layer, [clean])).toBeCloseTo(expected, 5);
    const padded = tf.tensor3d([[...X, PAD]]);
    const mask = tf.tensor2d([[1, 1, 0]]);
    expect(auxOf(layer, [padded, padded, mask])).toBeCloseTo(expected, 5);
    // Without the mask the padding token would count: the mask is what removes it.
    expect(Math.abs(auxOf(layer, [padded]) - expected)).toBeGreaterThan(1e-3);
    tf.dispose([clean, padded, mask]);
    layer.dispose();
  });

  test('a weight of 0 turns that loss off; both 0 gives no loss at all', () => {
    const x = tf.tensor3d([X]);
    const k = handLosses(X, ROUTER_K, BIAS_K);
    const v = handLosses(X, ROUTER_V, BIAS_V);
    const onlyBalance = makeLayer(0, 1);
    expect(auxOf(onlyBalance, [x])).toBeCloseTo(k.balance + v.balance, 5);
    const onlyPeak = makeLayer(1, 0);
    expect(auxOf(onlyPeak, [x])).toBeCloseTo(k.peak + v.peak, 5);
    const none = makeLayer(0, 0);
    expect(auxOf(none, [x])).toBe(0);
    tf.dispose(x);
    [onlyBalance, onlyPeak, none].forEach((l) => l.dispose());
  });

  test('losses come from the current call only: stale ones are dropped, reads clear, inference adds none', () => {
    const layer = makeLayer(0.3, 0.7);
    const x = tf.tensor3d([X]);
    const other = tf.tensor3d([[[3, 3], [-2, 1]]]);
    tf.tidy(() => { layer.apply(other, { training: true }); }); // never read; its scope ends
    const expected = auxOf(layer, [x]);
    tf.tidy(() => { layer.apply(other, { training: true }); });
    tf.tidy(() => {
      layer.apply(x, { training: true });
      expect(layer.auxiliaryLoss().dataSync()[0]).toBeCloseTo(expected, 6);
      expect(layer.auxiliaryLoss().dataSync()[0]).toBe(0); // the read cleared it
      layer.apply(x); // inference: no loss
      expect(layer.auxiliaryLoss().dataSync()[0]).toBe(0);
      // addLoss path (what model.fit uses) sees the same value
      layer.apply(x, { training: true });
      expect(layer.calculateLosses()[0].dataSync()[0]).toBeCloseTo(expected, 6);
    });
    tf.dispose([x, other]);
    layer.dispose();
  });

  test('UserKVProjector on its own: swish(x W + b)', () => {
    const proj = new UserKVProjector({ units: 1 });
    const x = tf.tensor3d([X]);
    proj.apply(x);
    setWeight(proj, 'kernel', [0.5, -2]);
    setWeight(proj, 'bias', [0.25]);
    const pre = X.map((t) => t[0] * 0.5 - 2 * t[1] + 0.25);
    const out = proj.apply(x) as tf.Tensor;
    expect(maxAbsDiff(out, tf.tensor3d([pre.map((z) => [z / (1 + Math.exp(-z))])]))).toBeLessThan(1e-5);
    expect(proj.trainableWeights.map((w) => w.name.split('/').pop())).toEqual(['kernel', 'bias']);
    tf.dispose([x, out]);
    proj.dispose();
  });
});

describeEachBackend('balance loss on a sample of the tokens (balanceTokens)', () => {
  const TOKENS = [[0.5, -1.0], [2.0, 0.3], [-0.7, 0.9], [1.1, 1.4], [0.2, -0.4]];

  const sampledLayer = (balanceTokens: number) => makeLayer(0.3, 0.7, balanceTokens);

  test('no sample when a call has at most balanceTokens tokens; with one token, the balance term is one token\'s, the peak every token\'s', () => {
    const x = tf.tensor3d([TOKENS]);
    const all = handLosses(TOKENS, ROUTER_K, BIAS_K);
    const allV = handLosses(TOKENS, ROUTER_V, BIAS_V);
    const full = 0.3 * (all.peak + allV.peak) + 0.7 * (all.balance + allV.balance);
    expect(auxOf(sampledLayer(5), [x])).toBeCloseTo(full, 5);
    expect(auxOf(sampledLayer(0), [x])).toBeCloseTo(full, 5);
    // One sampled token per side: the balance term is KL(softmax(z_i) || uniform) of some token i (per side).
    const single = (router: number[][], bias: number[]) => TOKENS.map((t) => handLosses([t], router, bias).balance);
    const [bk, bv] = [single(ROUTER_K, BIAS_K), single(ROUTER_V, BIAS_V)];
    const candidates = bk.flatMap((k) => bv.map((v) => 0.3 * (all.peak + allV.peak) + 0.7 * (k + v)));
    const layer = sampledLayer(1);
    for (let call = 0; call < 4; call++) {
      const got = auxOf(layer, [x]);
      expect(Math.min(...candidates.map((c) => Math.abs(c - got)))).toBeLessThan(1e-5);
    }
    x.dispose();
  });

  test('balanceTokens and poolSeed are validated and survive getConfig', () => {
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, router: { kind: 'dense', balanceTokens: -1 } })).toThrow(/router\.balanceTokens.*integer >= 0.*-1/);
    expect(() => new GlobalKVPool({ units: 2, router: { kind: 'dense', balanceTokens: 1.5 } })).toThrow(/router\.balanceTokens.*integer >= 0.*1.5/);
    expect((new CollectiveKVAttention({ numHeads: 1, keyDim: 2 }).getConfig().router as { balanceTokens: number }).balanceTokens).toBe(2048);
    expect((new GlobalKVPool({ units: 2, router: { kind: 'dense', balanceTokens: 7 } }).getConfig().router as { balanceTokens: number }).balanceTokens).toBe(7);
    expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolSeed: -2 })).toThrow(/poolSeed.*integer >= 0.*-2/);
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolSeed: 5 }).getConfig().poolSeed).toBe(5);
    // Seeded pools: equal across builds, different between the key and the value pool.
    const pools = () => {
      const layer = new CollectiveKVAttention({ numHeads: 1, keyDim: 4, poolSize: 6, poolSeed: 5 });
      tf.tidy(() => { layer.apply(tf.zeros([1, 2, 3])); });
      const [k, v] = ['key_pool', 'value_pool'].map((n) => Array.from(layer.weights.find((w) => w.name.endsWith(n))!.read().dataSync()));
      layer.dispose();
      return { k, v };
    };
    const [a, b] = [pools(), pools()];
    expect(b.k).toEqual(a.k);
    expect(a.v).not.toEqual(a.k);
  });

  test('poolStddev sets the spread of the pools\' init, is validated and survives getConfig', () => {
    for (const bad of [0, -1, Number.NaN]) {
      expect(() => new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolStddev: bad })).toThrow(new RegExp(`poolStddev.*> 0.*${bad}`));
    }
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2 }).getConfig().poolStddev).toBeUndefined();
    expect(new CollectiveKVAttention({ numHeads: 1, keyDim: 2, poolStddev: 0.05 }).getConfig().poolStddev).toBe(0.05);
    const spread = (poolStddev?: number) => {
      const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 8, poolSize: 256, poolSeed: 3, poolStddev });
      tf.tidy(() => { layer.apply(tf.zeros([1, 2, 3])); });
      const values = Array.from(layer.weights.find((w) => w.name.endsWith('value_pool'))!.read().dataSync());
      layer.dispose();
      return Math.sqrt(values.reduce((s, x) => s + x * x, 0) / values.length);
    };
    // 256 x 15 draws: the sample std is within a few percent of the requested one.
    expect(spread()).toBeCloseTo(1, 1);
    expect(spread(0.05) / 0.05).toBeCloseTo(1, 1);
  });
});
