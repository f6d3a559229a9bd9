import * as tf from '@tensorflow/tfjs-core';
import { ctrBatch, ctrSamples, generateSynthetic, withSyntheticEventFeatures } from 'collectivekv/internal';
import { useBackend } from '../../util/backends';
import { logitsOf as logitsOfSamples } from './helpers';
import { CtrModel, CtrModelOptions, cacheBytesPerToken, disposeInputs, toInputs } from '../../../src/zoo/ctr/common';
import { buildDin } from '../../../src/zoo/ctr/din';
import { buildEta } from '../../../src/zoo/ctr/eta';
import { buildHstuCtr } from '../../../src/zoo/ctr/hstuCtr';
import { buildSdim } from '../../../src/zoo/ctr/sdim';
import { buildSim } from '../../../src/zoo/ctr/sim';
import { buildTwin } from '../../../src/zoo/ctr/twin';
import { trainCtrStep } from '../../../src/zoo/ctr/training';

beforeAll(() => useBackend('wasm'));

// Long histories relative to the windows below: up to 60 events, short window 8, retrieval top-6.
const data = withSyntheticEventFeatures(generateSynthetic({ numUsers: 40, numItems: 80, numTopics: 5, minLength: 20, maxLength: 60, seed: 5 }), 5);
const split = ctrSamples(data, { seed: 5 });
const tiny: CtrModelOptions = { numItems: data.numItems, embeddingDim: 16, attentionWidth: 16, numHeads: 2, shortLength: 8, longLength: 40,
  topK: 6, mlpUnits: [16], collective: { poolSize: 16, userDim: 1 }, collectiveExact: true };

const BUILDERS: Record<string, (o: CtrModelOptions) => CtrModel> = {
  din: buildDin, sim: buildSim, eta: (o) => buildEta({ ...o, hashBits: 16 }), sdim: (o) => buildSdim({ ...o, numHashes: 8, bitsPerHash: 2 }),
  twin: buildTwin, 'hstu-ctr': (o) => buildHstuCtr({ ...o, numBlocks: 2 }),
};

function batchFor(model: CtrModel, n: number) {
  return ctrBatch(data, split.train.slice(0, n), { historyLength: model.historyLength });
}

function logitsOf(model: CtrModel, n: number): Float32Array {
  return logitsOfSamples(model, data, split.train.slice(0, n));
}

/** The variants under test: the two attentions, and CollectiveKV with the straight-through gate and with nearest-row routing over a product pool (16 = 4 x 4). */
const VARIANTS = {
  mha: { attention: 'mha' },
  collectivekv: { attention: 'collectivekv' },
  'collectivekv, straight-through gate': { attention: 'collectivekv', collective: { ...tiny.collective, router: { kind: 'dense', gate: 'straight-through' } } },
  'collectivekv, nearest rows of a product pool': { attention: 'collectivekv', collective: { ...tiny.collective, router: 'nearest-product' } },
} as const satisfies Record<string, Partial<CtrModelOptions>>;

describe.each(Object.keys(BUILDERS))('%s', (name) => {
  describe.each(Object.keys(VARIANTS) as (keyof typeof VARIANTS)[])('with %s', (variant) => {
    const { attention } = VARIANTS[variant];
    const options = { ...tiny, ...VARIANTS[variant] };
    it('trains a few steps (loss falls) without leaking tensors', () => {
      const model = BUILDERS[name]({ ...options, seed: 3 });
      const batch = batchFor(model, 64);
      const inputs = toInputs(batch);
      const labels = tf.tensor1d(batch.labels);
      const optimizer = tf.train.adam(0.01);
      model.prepare(inputs);
      const first = trainCtrStep(model, optimizer, inputs, labels);
      const before = tf.memory().numTensors;
      let last = first;
      for (let i = 0; i < 12; i++) last = trainCtrStep(model, optimizer, inputs, labels);
      expect(tf.memory().numTensors).toBe(before);
      expect(Number.isFinite(first.loss)).toBe(true);
      expect(last.loss).toBeLessThan(first.loss - 0.05);
      if (attention === 'collectivekv') expect(first.auxLoss).toBeGreaterThan(0);
      else expect(first.auxLoss).toBe(0);
      tf.dispose([labels]);
      disposeInputs(inputs);
      optimizer.dispose();
      model.dispose();
    });

    it('weights round trip into a fresh build with identical outputs', () => {
      const a = BUILDERS[name]({ ...options, seed: 3 });
      const b = BUILDERS[name]({ ...options, seed: 99 });
      const weights = a.getWeights();
      b.setWeights(weights);
      tf.dispose(weights);
      const [x, y] = [logitsOf(a, 16), logitsOf(b, 16)];
      expect(Array.from(y)).toEqual(Array.from(x));
      a.dispose();
      b.dispose();
    });

    it('caches the expected bytes per history token; disposing the model frees every tensor it made', () => {
      const before = tf.memory().numTensors;
      const model = BUILDERS[name](options);
      const layers = model.attentionLayers().length;
      // full: K and V of width 16 in fp32; CollectiveKV: a uint8 index (pool 16) + one fp32 per side.
      expect(cacheBytesPerToken(model)).toBe(layers * (attention === 'mha' ? 2 * 16 * 4 : 2 * (1 + 4)));
      model.dispose();
      expect(tf.memory().numTensors).toBe(before);
    });
  });
});

describe('HSTU-CTR reads a click logit at every item token', () => {
  it('the last item position is the candidate logit', () => {
    const model = buildHstuCtr({ ...tiny, attention: 'collectivekv' });
    const inputs = toInputs(batchFor(model, 5));
    const all = model.itemPositionLogits(inputs);
    const last = model.logits(inputs, false);
    expect(all.shape).toEqual([5, model.historyLength + 1]);
    const a = all.arraySync() as number[][];
    Array.from(last.dataSync()).forEach((x, r) => expect(a[r][model.historyLength]).toBeCloseTo(x, 5));
    tf.dispose([all, last]);
    disposeInputs(inputs);
    model.dispose();
  });
});
