import * as tf from '@tensorflow/tfjs-core';
import { CollectiveKVAttention, ctrSamples, generateSynthetic, withSyntheticEventFeatures } from 'collectivekv/internal';
import { useBackend } from '../../util/backends';
import { CtrModel, CtrModelBase, CtrModelOptions } from '../../../src/zoo/ctr/common';
import { logitsOf } from './helpers';
import { convertCtrModel } from '../../../src/zoo/ctr/conversion';
import { buildDin } from '../../../src/zoo/ctr/din';
import { buildEta } from '../../../src/zoo/ctr/eta';
import { buildHstuCtr } from '../../../src/zoo/ctr/hstuCtr';
import { buildSdim } from '../../../src/zoo/ctr/sdim';
import { buildSim } from '../../../src/zoo/ctr/sim';
import { buildTwin } from '../../../src/zoo/ctr/twin';
import { fitCtr } from '../../../src/zoo/ctr/training';

beforeAll(() => useBackend('wasm'));

const data = withSyntheticEventFeatures(generateSynthetic({ numUsers: 40, numItems: 80, numTopics: 5, minLength: 20, maxLength: 60, seed: 5 }), 5);
const split = ctrSamples(data, { seed: 5 });
const width = 16;
const tiny: CtrModelOptions = { numItems: data.numItems, embeddingDim: 16, attentionWidth: width, numHeads: 2, shortLength: 8, longLength: 40,
  topK: 6, mlpUnits: [16], collectiveExact: true, seed: 3 };

const BUILDERS: Record<string, (o: CtrModelOptions) => CtrModelBase> = {
  din: buildDin, sim: buildSim, eta: (o) => buildEta({ ...o, hashBits: 16 }), sdim: (o) => buildSdim({ ...o, numHashes: 8, bitsPerHash: 2 }),
  twin: buildTwin, 'hstu-ctr': (o) => buildHstuCtr({ ...o, numBlocks: 2 }),
};

function testLogits(model: CtrModel): Float32Array {
  return logitsOf(model, data, split.test.slice(0, 32));
}

function maxDiff(a: Float32Array, b: Float32Array): number {
  return a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);
}

describe.each(Object.keys(BUILDERS))('convertCtrModel (%s)', (name) => {
  it('at full width (userDim = attention width, empty pools) the converted model gives the trained one\'s logits', () => {
    const before = tf.memory().numTensors;
    const trained = BUILDERS[name]({ ...tiny, attention: 'mha' });
    // Training moves every weight off its initial value, so a weight left uncopied would show.
    fitCtr(trained, split, { maxEpochs: 1, batchSize: 64, learningRate: 0.01 });
    const target = BUILDERS[name]({ ...tiny, attention: 'collectivekv', collective: { poolSize: 4, userDim: width, userActivation: 'linear' } });
    const layers = convertCtrModel(trained, target, split.data, split.train, { sampleSize: 64 });
    expect(layers).toHaveLength(trained.attentionLayers().length);
    expect(maxDiff(testLogits(target), testLogits(trained))).toBeLessThan(1e-4);
    trained.dispose();
    target.dispose();
    expect(tf.memory().numTensors).toBe(before);
  }, 60000);
});

describe('convertCtrModel', () => {
  it('userDim 1 with nearest-product routing: pools from k-means of the recorded K/V, reported per layer and side', () => {
    const before = tf.memory().numTensors;
    const trained = buildSim({ ...tiny, attention: 'mha' });
    const collective = { poolSize: 16, userDim: 1, userActivation: 'linear', router: 'nearest-product' } as const;
    const target = buildSim({ ...tiny, attention: 'collectivekv', collective });
    const layers = convertCtrModel(trained, target, split.data, split.train, { sampleSize: 128, seed: 2 });
    expect(layers.map((l) => l.layer)).toEqual(['short_attention', 'exact_attention']);
    for (const side of layers.flatMap((l) => [l.key, l.value])) {
      expect(side!.tokens).toBeGreaterThanOrEqual(16);
      expect(side!.poolWidth).toBe(width - 1);
      expect(side!.relativeInertia).toBeGreaterThan(0);
      expect(side!.relativeInertia).toBeLessThan(1);
      expect(side!.routingAgreement).toBeGreaterThan(0.9);
    }
    // The recording wrapper is gone from the trained layers.
    for (const layer of trained.attentionLayers()) expect(Object.prototype.hasOwnProperty.call(layer, 'call')).toBe(false);
    // Only the exact layer swapped: the short-term layer's weights are copied as they are.
    const partial = buildSim({ ...tiny, attention: 'collectivekv', collective, collectiveExact: false });
    expect(convertCtrModel(trained, partial, split.data, split.train, { sampleSize: 128 }).map((l) => l.layer)).toEqual(['short_attention']);
    expect(partial.attentionLayers()[1]).not.toBeInstanceOf(CollectiveKVAttention);
    [trained, target, partial].forEach((m) => m.dispose());
    expect(tf.memory().numTensors).toBe(before);
  }, 60000);

  it('refuses a target of another builder or attention layout, by name', () => {
    const trained = buildSim({ ...tiny, attention: 'mha' });
    const twin = buildTwin({ ...tiny, attention: 'collectivekv', collective: { poolSize: 16 } });
    const swappedBack = buildSim({ ...tiny, attention: 'collectivekv', collective: { poolSize: 16 } });
    expect(() => convertCtrModel(trained, twin, split.data, split.train)).toThrow('target must be a sim model (the trained one\'s builder), received twin');
    expect(() => convertCtrModel(swappedBack, trained, split.data, split.train)).toThrow(/layer 'short_attention' of the trained model must be a MultiHeadAttention/);
    expect(() => convertCtrModel(trained, swappedBack, split.data, split.train, { sampleSize: 0 })).toThrow('sampleSize must be a positive integer, received 0');
    [trained, twin, swappedBack].forEach((m) => m.dispose());
  }, 60000);
});
