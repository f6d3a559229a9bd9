// fitCtr on the library's trainLoop: the training-time budget, the restored best weights, no leaks.
import * as tf from '@tensorflow/tfjs-core';
import { ctrSamples, generateSynthetic, withSyntheticEventFeatures } from 'collectivekv/internal';
import { useBackend } from '../../util/backends';
import { CtrModelOptions } from '../../../src/zoo/ctr/common';
import { buildDin } from '../../../src/zoo/ctr/din';
import { ctrStepsPerEpoch, evaluateCtr, fitCtr } from '../../../src/zoo/ctr/training';

beforeAll(() => useBackend('wasm'));

const data = withSyntheticEventFeatures(generateSynthetic({ numUsers: 40, numItems: 80, numTopics: 5, minLength: 20, maxLength: 60, seed: 5 }), 5);
const split = ctrSamples(data, { seed: 5 });
const tiny: CtrModelOptions = { numItems: data.numItems, embeddingDim: 8, attentionWidth: 8, numHeads: 2, shortLength: 8, longLength: 20,
  topK: 4, mlpUnits: [8], seed: 3 };

describe('fitCtr', () => {
  it('runs whole epochs, restores the best validated weights and leaks no tensor', () => {
    const model = buildDin({ ...tiny, attention: 'collectivekv' });
    const before = tf.memory().numTensors;
    const steps: number[] = [];
    const fit = fitCtr(model, split, { maxEpochs: 3, patience: 3, batchSize: 64, learningRate: 0.01, onStep: (s) => steps.push(s) });
    expect(tf.memory().numTensors).toBe(before);
    const perEpoch = ctrStepsPerEpoch(split.train.length, 64);
    expect(steps).toEqual(Array.from({ length: 3 * perEpoch }, (_, i) => i + 1));
    expect(fit.history.map((h) => h.epoch)).toEqual([1, 2, 3]);
    expect(fit.epochs).toBe(3);
    const bestReport = fit.history.find((h) => h.epoch === fit.bestEpoch)!;
    expect(bestReport.validationAuc).toBe(fit.bestValidationAuc);
    expect(Math.max(...fit.history.map((h) => h.validationAuc))).toBe(fit.bestValidationAuc);
    // The model now holds the best epoch's weights.
    expect(evaluateCtr(model, data, split.validation).auc).toBeCloseTo(fit.bestValidationAuc, 6);
    for (const h of fit.history) expect(Number.isFinite(h.loss) && Number.isFinite(h.auxLoss)).toBe(true);
    model.dispose();
  }, 60000);

  it('a training-time budget ends the epoch in progress after the step that used it up, on a fractional epoch', () => {
    const model = buildDin({ ...tiny, attention: 'mha' });
    const steps: number[] = [];
    const fit = fitCtr(model, split, { maxEpochs: 3, batchSize: 64, maxSeconds: 1e-9, onStep: (s) => steps.push(s) });
    expect(steps).toEqual([1]);
    expect(fit.history).toHaveLength(1);
    expect(fit.epochs).toBeCloseTo(64 / split.train.length, 9);
    expect(fit.bestEpoch).toBe(fit.epochs);
    expect(fit.trainSeconds).toBeGreaterThan(0);
    model.dispose();
  }, 60000);
});
