import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { CollectiveKVAttention, MultiHeadAttention } from '../../src/internal';
import { convertAttentionLayer, copyWeightsByName, swapAttention } from '../../src/convert/index';
import { recordAttentionInputs } from '../../src/analysis/index';
import type { Kwargs } from '@tensorflow/tfjs-layers/dist/types';
import { describeEachBackend, maxAbsDiff } from '../util/backends';

const [B, T, E] = [24, 10, 8];

/** Functional: x -> dense -> MHA([q, x, mask]) -> dense, with a padding mask input. */
function functionalModel(useBias = true): tfl.LayersModel {
  const x = tfl.input({ shape: [T, E], name: 'x' });
  const mask = tfl.input({ shape: [T], name: 'mask' });
  const h = tfl.layers.dense({ units: E, name: 'embed', kernelInitializer: tfl.initializers.glorotUniform({ seed: 1 }) }).apply(x) as tfl.SymbolicTensor;
  const q = tfl.layers.dense({ units: E, name: 'q_proj', kernelInitializer: tfl.initializers.glorotUniform({ seed: 2 }) }).apply(h) as tfl.SymbolicTensor;
  const att = new MultiHeadAttention({ numHeads: 2, keyDim: 4, causal: true, useBias, name: 'att',
    kernelInitializer: tfl.initializers.glorotUniform({ seed: 3 }) }).apply([q, h, mask]) as tfl.SymbolicTensor;
  const y = tfl.layers.dense({ units: 3, name: 'head', kernelInitializer: tfl.initializers.glorotUniform({ seed: 4 }) }).apply(att) as tfl.SymbolicTensor;
  return tfl.model({ inputs: [x, mask], outputs: y, name: 'functional' });
}

/** Sequential: dense -> MHA (self-attention) -> MHA -> dense. */
function sequentialModel(): tfl.Sequential {
  return tfl.sequential({
    name: 'seq',
    layers: [
      tfl.layers.dense({ units: E, inputShape: [T, E], name: 'in', kernelInitializer: tfl.initializers.glorotUniform({ seed: 5 }) }),
      new MultiHeadAttention({ numHeads: 2, keyDim: 4, name: 'att1', kernelInitializer: tfl.initializers.glorotUniform({ seed: 6 }) }),
      new MultiHeadAttention({ numHeads: 1, keyDim: 8, valueDim: 6, name: 'att2', kernelInitializer: tfl.initializers.glorotUniform({ seed: 7 }) }),
      tfl.layers.dense({ units: 2, name: 'out', kernelInitializer: tfl.initializers.glorotUniform({ seed: 8 }) }),
    ],
  });
}

function sampleInputs(seed: number): { x: tf.Tensor; mask: tf.Tensor } {
  const x = tf.randomNormal([B, T, E], 0, 1, 'float32', seed);
  // Left padding of 0..4 positions per row.
  const m = new Float32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = b % 5; t < T; t++) m[b * T + t] = 1;
  return { x, mask: tf.tensor2d(m, [B, T]) };
}

function weightOf(layer: tfl.layers.Layer, suffix: string): tf.Tensor {
  const i = layer.weights.findIndex((w) => w.originalName.endsWith(`/${suffix}`));
  if (i < 0) throw new Error(`no weight ${suffix} in ${layer.name}`);
  return layer.getWeights()[i];
}

describeEachBackend('swapAttention', () => {
  test('functional model: MHA becomes CollectiveKVAttention; query/output/user weights copied; router picks the nearest centroid', () => {
    const model = functionalModel();
    const { x, mask } = sampleInputs(1);
    const before = model.predict([x, mask]) as tf.Tensor;
    const { model: converted, layers } = swapAttention(model, { sample: [x, mask], poolSize: 16, userDim: 2, seed: 3 });
    const att = converted.getLayer('att');
    expect(att).toBeInstanceOf(CollectiveKVAttention);
    expect((att as CollectiveKVAttention).poolSize).toBe(16);
    expect((att as CollectiveKVAttention).causal).toBe(true);
    expect(converted.name).toBe('functional_collectivekv');
    const old = model.getLayer('att');
    for (const w of ['query_kernel', 'query_bias', 'output_kernel', 'output_bias']) expect(maxAbsDiff(weightOf(att, w), weightOf(old, w))).toBe(0);
    const userKernel = tf.slice(weightOf(old, 'key_kernel'), [0, 6], [E, 2]);
    expect(maxAbsDiff(weightOf(att, 'key_user_kernel'), userKernel)).toBe(0);
    for (const name of ['embed', 'q_proj', 'head']) {
      converted.getLayer(name).getWeights().forEach((w, i) => expect(maxAbsDiff(w, model.getLayer(name).getWeights()[i])).toBe(0));
    }
    expect(layers).toHaveLength(1);
    for (const side of [layers[0].key, layers[0].value]) {
      expect(side).not.toBeNull();
      expect(side!.tokens).toBe(B * T - [0, 1, 2, 3, 4].reduce((s, p) => s + p, 0) * (B / 5 | 0) - (B % 5 === 4 ? 0 + 1 + 2 + 3 : 0));
      expect(side!.minClusterSize).toBeGreaterThan(0);
      expect(side!.poolWidth).toBe(6);
      expect(side!.routingAgreement).toBeGreaterThan(0.9);
      expect(side!.relativeInertia).toBeLessThan(1);
    }
    // The original model is untouched.
    const after = model.predict([x, mask]) as tf.Tensor;
    expect(maxAbsDiff(before, after)).toBe(0);
    const out = converted.predict([x, mask]) as tf.Tensor;
    expect(out.shape).toEqual([B, T, 3]);
    tf.dispose([x, mask, before, after, out, userKernel]);
    converted.dispose();
    model.dispose();
  });

  test('self-attention called as [x, mask]: the K/V source is x, the mask masks (full width reproduces outputs)', () => {
    // Without the rank check the capture took the [B, T] mask for the K/V source (HSTU's zoo model
    // calls its attention this way) and the conversion failed.
    const x = tfl.input({ shape: [T, E], name: 'x' });
    const mask = tfl.input({ shape: [T], name: 'mask' });
    const att = new MultiHeadAttention({ numHeads: 2, keyDim: 4, causal: true, name: 'att',
      kernelInitializer: tfl.initializers.glorotUniform({ seed: 9 }) }).apply([x, mask]) as tfl.SymbolicTensor;
    const model = tfl.model({ inputs: [x, mask], outputs: att, name: 'self_with_mask' });
    const sample = sampleInputs(4);
    const { model: converted, layers } = swapAttention(model, { sample: [sample.x, sample.mask], poolSize: 4, userDim: 8 });
    const padded = [0, 1, 2, 3, 4].reduce((n, p) => n + p, 0) * Math.floor(B / 5) + [0, 1, 2, 3, 4].slice(0, B % 5).reduce((n, p) => n + p, 0);
    expect(layers[0].key!.tokens).toBe(B * T - padded);
    const [a, b] = [model.predict([sample.x, sample.mask]) as tf.Tensor, converted.predict([sample.x, sample.mask]) as tf.Tensor];
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    tf.dispose([sample.x, sample.mask, a, b]);
    converted.dispose();
    model.dispose();
  });

  test('full width (userDim = H*keyDim, linear user part): the converted model reproduces the outputs', () => {
    const model = functionalModel();
    const { x, mask } = sampleInputs(2);
    const { model: converted, layers } = swapAttention(model, { sample: [x, mask], poolSize: 4, userDim: 8 });
    expect(layers[0].key!.poolWidth).toBe(0);
    expect(layers[0].key!.routingAgreement).toBeNull();
    const [a, b] = [model.predict([x, mask]) as tf.Tensor, converted.predict([x, mask]) as tf.Tensor];
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    tf.dispose([x, mask, a, b]);
    converted.dispose();
    model.dispose();
  });

  test('sequential model with two attention layers (self-attention, no mask); full width reproduces outputs', () => {
    const model = sequentialModel();
    const { x, mask } = sampleInputs(3);
    mask.dispose();
    const { model: converted, layers } = swapAttention(model, { sample: x, poolSize: 32, userDim: 1, seed: 2 });
    expect(converted).toBeInstanceOf(tfl.Sequential);
    expect(converted.layers.map((l) => l.getClassName())).toEqual(['Dense', 'CollectiveKVAttention', 'CollectiveKVAttention', 'Dense']);
    expect(layers.map((l) => l.layer)).toEqual(['att1', 'att2']);
    expect(layers[1].value!.poolWidth).toBe(5);
    for (const l of layers) for (const s of [l.key!, l.value!]) {
      expect(s.tokens).toBe(B * T);
      expect(s.routingAgreement).toBeGreaterThan(0.9);
    }
    // Per-layer userDim at each layer's full V width; share 'v': keys keep their full projection.
    const exact = swapAttention(model, { sample: x, poolSize: 4, userDim: { att1: 8, att2: 6 }, share: 'v' });
    expect(exact.layers.map((l) => l.userDim)).toEqual([8, 6]);
    expect(exact.layers[1].key).toBeNull();
    const [a, b] = [model.predict(x) as tf.Tensor, exact.model.predict(x) as tf.Tensor];
    expect(maxAbsDiff(a, b)).toBeLessThan(1e-5);
    tf.dispose([x, a, b]);
    [converted, exact.model, model].forEach((m) => m.dispose());
  });

  test.each(['dense', 'nearest-product'] as const)('router %s: no tensor leaks beyond the new model\'s weights', (router) => {
    const model = functionalModel();
    const { x, mask } = sampleInputs(4);
    const options = { sample: [x, mask], poolSize: router === 'nearest-product' ? 9 : 8, router };
    swapAttention(model, options).model.dispose(); // warm-up
    const before = tf.memory().numTensors;
    const { model: converted } = swapAttention(model, options);
    expect(tf.memory().numTensors - before).toBe(converted.weights.length);
    converted.dispose();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, mask]);
    model.dispose();
  });

  test('clear errors: no MHA layer, too few tokens, userDim too wide, missing sample', () => {
    const plain = tfl.sequential({ layers: [tfl.layers.dense({ units: 2, inputShape: [3] })] });
    const model = functionalModel();
    const { x, mask } = sampleInputs(5);
    expect(() => swapAttention(plain, { sample: tf.zeros([1, 3]) })).toThrow(/'model' must be a model with at least one MultiHeadAttention layer/);
    expect(() => swapAttention(model, { sample: [x, mask], poolSize: 1000 })).toThrow(/'options.sample' must be at least poolSize = 1000 valid tokens, received 194/);
    expect(() => swapAttention(model, { sample: [x, mask], userDim: 9 })).toThrow(/'userDim' must be at most numHeads\*keyDim = 8/);
    expect(() => swapAttention(model, {} as never)).toThrow(/'options.sample'/);
    expect(() => swapAttention(model, { sample: [x, mask], poolSize: 2.5 })).toThrow(/'options.poolSize' must be a positive integer, received 2.5/);
    tf.dispose([x, mask]);
    model.dispose();
    plain.dispose();
  });

  test('useBias false: the router lacks the -||c||^2 term; agreement is still measured and reported', () => {
    const model = functionalModel(false);
    const { x, mask } = sampleInputs(6);
    const { model: converted, layers } = swapAttention(model, { sample: [x, mask], poolSize: 8 });
    const agreementK = layers[0].key!.routingAgreement as number;
    expect(agreementK).toBeGreaterThanOrEqual(0);
    expect(agreementK).toBeLessThanOrEqual(1);
    tf.dispose([x, mask]);
    converted.dispose();
    model.dispose();
  });

  test.each(['nearest-product'] as const)("router '%s': centroid sub-pools, the trained projection as encoder, exact nearest routing, no data re-init", (router) => {
    for (const useBias of [true, false]) {
      const model = functionalModel(useBias);
      const { x, mask } = sampleInputs(7);
      const { model: converted, layers } = swapAttention(model, { sample: [x, mask], poolSize: 16, userDim: 2, seed: 3, router, quantizationWeight: 0.5 });
      const att = converted.getLayer('att') as CollectiveKVAttention;
      expect(att.router).toEqual({ kind: router, commitmentWeight: 0.25, quantizationWeight: 0.5, lossTokens: 2048 });
      const old = model.getLayer('att');
      const trainedCollective = tf.slice(weightOf(old, 'key_kernel'), [0, 0], [E, 6]);
      expect(maxAbsDiff(weightOf(att, 'key_encoder_kernel'), trainedCollective)).toBe(0);
      if (useBias) expect(tf.tidy(() => maxAbsDiff(weightOf(att, 'key_encoder_bias'), tf.slice(weightOf(old, 'key_bias'), [0], [6])))).toBe(0);
      expect(weightOf(att, 'value_pool_ready').dataSync()[0]).toBe(1);
      for (const side of [layers[0].key!, layers[0].value!]) {
        // The derived router is exact nearest-centroid assignment (float32 against k-means' float64: near-ties aside).
        expect(side.routingAgreement).toBeGreaterThanOrEqual(0.98);
        expect(side.relativeInertia).toBeGreaterThan(0);
        expect(side.relativeInertia).toBeLessThan(1);
        expect(side.logitShift).toBe(0);
      }
      // A training call keeps the centroids (the pool is marked set, not re-initialized from data).
      const poolNames = ['key_pool_a', 'key_pool_b'];
      const pools = poolNames.map((n) => weightOf(att, n).clone()); // weightOf reads the variable itself
      tf.tidy(() => { converted.apply([x, mask], { training: true }); });
      poolNames.forEach((n, i) => expect(maxAbsDiff(weightOf(att, n), pools[i])).toBe(0));
      tf.dispose([x, mask, trainedCollective, ...pools]);
      converted.dispose();
      model.dispose();
    }
  });

  test('router: a kind swapAttention cannot convert to is refused by name', () => {
    const model = functionalModel();
    const { x, mask } = sampleInputs(8);
    expect(() => swapAttention(model, { sample: [x, mask], poolSize: 16, router: 'product' as never })).toThrow(/'options.router' must be one of dense, nearest-product, received product/);
    tf.dispose([x, mask]);
    model.dispose();
  });

  test('convertAttentionLayer on inputs recorded from a forward gives swapAttention\'s layer; recordAttentionInputs restores the layer', () => {
    const model = functionalModel();
    const { x, mask } = sampleInputs(9);
    const { model: converted } = swapAttention(model, { sample: [x, mask], poolSize: 16, userDim: 2, seed: 3, router: 'nearest-product' });
    const old = model.getLayer('att') as MultiHeadAttention;
    const target = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, causal: true, poolSize: 16, userDim: 2, userActivation: 'linear', router: 'nearest-product' });
    tf.tidy(() => { target.apply([x, x, mask]); });
    // Two calls of 12 rows each: the recording joins them along the batch.
    const forward = () => {
      for (const start of [0, 12]) tf.tidy(() => { model.predict([tf.slice(x, start, 12), tf.slice(mask, start, 12)]); });
    };
    const before = tf.memory().numTensors;
    const sites = recordAttentionInputs([old], forward);
    expect(Object.prototype.hasOwnProperty.call(old, 'call')).toBe(false);
    expect(sites[0].kvSource.shape).toEqual([B, T, E]);
    const report = convertAttentionLayer(old, target, sites[0], { seed: 3 });
    expect(report.key!.poolWidth).toBe(6);
    const reference = converted.getLayer('att');
    for (const w of ['query_kernel', 'key_pool_a', 'key_pool_b', 'key_encoder_kernel', 'key_user_kernel', 'value_pool_a', 'value_user_kernel', 'output_kernel']) {
      expect(maxAbsDiff(weightOf(target, w), weightOf(reference, w))).toBeLessThan(1e-6);
    }
    tf.dispose(sites.flatMap((site) => [site.kvSource, site.mask!]));
    expect(tf.memory().numTensors).toBe(before);
    // Clear errors, and nothing left wrapped when the forward never reaches the layer.
    expect(() => recordAttentionInputs([old], () => undefined)).toThrow(/'run' must be a forward that calls layer 'att', received no call/);
    expect(Object.prototype.hasOwnProperty.call(old, 'call')).toBe(false);
    // A mask passed in kwargs (as tfjs's executor does) is recorded as the layer reads it; a
    // caller's own wrapper of call is put back afterwards.
    const callerWrapper = function wrapped(this: MultiHeadAttention, inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor | tf.Tensor[] {
      return MultiHeadAttention.prototype.call.call(this, inputs, kwargs);
    };
    old.call = callerWrapper;
    const viaKwargs = recordAttentionInputs([old], () => tf.tidy(() => { old.call(x, { mask }); }));
    expect(old.call).toBe(callerWrapper);
    expect(maxAbsDiff(viaKwargs[0].mask!, mask)).toBe(0);
    expect(maxAbsDiff(viaKwargs[0].kvSource, x)).toBe(0);
    tf.dispose([viaKwargs[0].kvSource, viaKwargs[0].mask!]);
    Reflect.deleteProperty(old, 'call');
    const narrow = new CollectiveKVAttention({ numHeads: 1, keyDim: 4, poolSize: 16 });
    tf.tidy(() => { narrow.apply([x, x]); });
    const site = { kvSource: x, mask };
    expect(() => convertAttentionLayer(old, narrow, site)).toThrow(/'target.numHeads' must be 2 \(the trained layer's\), received 1/);
    expect(() => convertAttentionLayer(old, new CollectiveKVAttention({ numHeads: 2, keyDim: 4 }), site)).toThrow(/'target' must be a built layer/);
    [narrow, target].forEach((l) => l.dispose());
    tf.dispose([x, mask]);
    converted.dispose();
    model.dispose();
  });

  test('copyWeightsByName copies the weights of same-named layers', () => {
    const a = functionalModel();
    const b = functionalModel();
    b.getLayer('head').setWeights(b.getLayer('head').getWeights().map((w) => tf.zerosLike(w)));
    copyWeightsByName(a, b);
    expect(maxAbsDiff(b.getLayer('head').getWeights()[0], a.getLayer('head').getWeights()[0])).toBe(0);
    a.dispose();
    b.dispose();
  });
});
