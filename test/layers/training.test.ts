// End to end: a small model with CollectiveKVAttention trains with model.fit (which includes the
// aux losses) and with a custom optimizer.minimize loop; both layers save and load in a functional
// model with [query, kv, mask] inputs.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';
import { CollectiveKVAttention, MultiHeadAttention } from '../../layers/index';

const [B, T, F] = [16, 5, 6];

/**
 * features [T, F] -> causal CollectiveKV self-attention -> mean over time ([B, F]). No tfjs Dense
 * head: under IS_TEST, tfjs-backend-wasm 4.22's fusedMatMul (which Dense uses) trips tfjs's own
 * kernel leak check inside a gradient tape, independent of this package.
 */
function buildModel(): { model: tfl.LayersModel; attn: CollectiveKVAttention } {
  const input = tfl.input({ shape: [T, F] });
  const attn = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, poolSize: 8, userDim: 2, causal: true });
  const h = attn.apply(input) as tfl.SymbolicTensor;
  const out = tfl.layers.globalAveragePooling1d({}).apply(h) as tfl.SymbolicTensor;
  return { model: tfl.model({ inputs: input, outputs: out }), attn };
}

/** Target: a fixed linear mix of the time-averaged features. */
function data(): { x: tf.Tensor; y: tf.Tensor } {
  const x = randomTensor([B, T, F], 21);
  const mix = randomTensor([F, F], 22);
  const y = tf.tidy(() => tf.mul(tf.matMul(tf.mean(x, 1) as tf.Tensor2D, mix as tf.Tensor2D), 3));
  mix.dispose();
  return { x, y };
}

/** Config as JSON would carry it (undefined and null fields dropped). */
function normalized(config: object): unknown {
  return JSON.parse(JSON.stringify(config, (_k, v: unknown) => (v === null ? undefined : v)));
}

describeEachBackend('layers training', () => {
  test('model.fit: the loss falls, and the reported loss includes the aux losses of the current batch', async () => {
    const { x, y } = data();
    // lr 0 first: weights stay put, so fit's loss must equal mse(training output) + aux.
    const { model } = buildModel();
    model.compile({ optimizer: tf.train.sgd(0), loss: 'meanSquaredError' });
    const h0 = await model.fit(x, y, { epochs: 1, batchSize: B, verbose: 0, shuffle: false });
    const expected = tf.tidy(() => {
      const pred = model.apply(x, { training: true }) as tf.Tensor;
      const aux = tf.addN(model.calculateLosses());
      expect(aux.dataSync()[0]).toBeGreaterThan(1e-4);
      return tf.add(tf.losses.meanSquaredError(y, pred), aux).dataSync()[0];
    });
    expect(h0.history.loss[0] as number).toBeCloseTo(expected, 4);

    model.compile({ optimizer: tf.train.adam(0.02), loss: 'meanSquaredError' });
    const before = tf.memory().numTensors;
    const h = await model.fit(x, y, { epochs: 40, batchSize: 8, verbose: 0 });
    const losses = h.history.loss as number[];
    expect(losses[losses.length - 1]).toBeLessThan(0.5 * losses[0]);
    const afterFirst = tf.memory().numTensors;
    await model.fit(x, y, { epochs: 3, batchSize: 8, verbose: 0 });
    expect(tf.memory().numTensors).toBe(afterFirst); // no per-step leak (the first fit created optimizer slots)
    expect(afterFirst).toBeGreaterThanOrEqual(before);
    tf.dispose([x, y]);
    model.dispose();
  });

  test('custom loop with optimizer.minimize and model.calculateLosses(): the loss falls, no leaks', () => {
    const { x, y } = data();
    const { model, attn } = buildModel();
    const optimizer = tf.train.adam(0.02);
    const step = () => {
      const cost = optimizer.minimize(() => {
        const pred = model.apply(x, { training: true }) as tf.Tensor;
        // aux losses of this forward; attn.auxiliaryLoss() would give the same here
        return tf.add(tf.losses.meanSquaredError(y, pred), tf.addN(model.calculateLosses())) as tf.Scalar;
      }, true) as tf.Scalar;
      const value = cost.dataSync()[0];
      cost.dispose();
      return value;
    };
    const first = step();
    const afterFirst = tf.memory().numTensors;
    let last = first;
    for (let i = 0; i < 60; i++) last = step();
    expect(last).toBeLessThan(0.5 * first);
    expect(tf.memory().numTensors).toBe(afterFirst);
    expect(attn.auxiliaryLoss().dataSync()[0]).toBe(0); // nothing carried over from the steps
    tf.dispose([x, y]);
    model.dispose();
    optimizer.dispose();
  });

  for (const kind of ['MultiHeadAttention', 'CollectiveKVAttention'] as const) {
    test(`${kind}: save to memory and loadLayersModel give identical outputs ([query, kv, mask] inputs)`, async () => {
      const q = tfl.input({ shape: [2, 5] });
      const kv = tfl.input({ shape: [4, 3] });
      const mask = tfl.input({ shape: [4] });
      const args = { numHeads: 2, keyDim: 3, valueDim: 2, attention: 'hstu' as const, name: 'attn' };
      const layer = kind === 'MultiHeadAttention' ? new MultiHeadAttention(args)
        : new CollectiveKVAttention({ ...args, poolSize: 7, userDim: 2, share: 'k', userActivation: 'tanh', router: { kind: 'dense', peakWeight: 0.5 } });
      const out = layer.apply([q, kv, mask]) as tfl.SymbolicTensor;
      const model = tfl.model({ inputs: [q, kv, mask], outputs: out });
      let saved: tf.io.ModelArtifacts | null = null;
      await model.save(tf.io.withSaveHandler(async (artifacts) => {
        saved = artifacts;
        return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
      }));
      const loaded = await tfl.loadLayersModel(tf.io.fromMemory(saved!));
      const inputs = [randomTensor([3, 2, 5], 31), randomTensor([3, 4, 3], 32), tf.tensor2d([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 1, 0]])];
      const a = model.predict(inputs) as tf.Tensor;
      const b = loaded.predict(inputs) as tf.Tensor;
      expect(maxAbsDiff(a, b)).toBe(0);
      const restored = loaded.getLayer('attn');
      expect(restored.getClassName()).toBe(kind);
      expect(normalized(restored.getConfig())).toEqual(normalized(layer.getConfig()));
      // tfjs suffixes repeated variable names (_1, _2, ...) across models; compare the base names.
      const base = (l: { weights: tfl.LayerVariable[] }) => l.weights.map((w) => w.name.replace(/_\d+$/, ''));
      expect(base(restored)).toEqual(base(layer));
      tf.dispose([...inputs, a, b]);
      model.dispose();
      loaded.dispose();
    });
  }
});
