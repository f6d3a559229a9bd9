// fitCtr on the library's trainLoop: the training-time budget, the restored best weights, the
// recipe's switch for layers that start with full K/V, no leaks.
import * as tf from '@tensorflow/tfjs-core';
import { CollectiveKVAttention, ctrSamples, generateSynthetic, withSyntheticEventFeatures } from 'collectivekv/internal';
import { useBackend } from '../../util/backends';
import { CtrModelOptions, cacheBytesPerToken } from '../../../src/zoo/ctr/common';
import { buildDin } from '../../../src/zoo/ctr/din';
import { buildSim } from '../../../src/zoo/ctr/sim';
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

  it('progress lines inside an epoch carry the time left, of the epoch and of the run', () => {
    const model = buildDin({ ...tiny, attention: 'mha' });
    const lines: string[] = [];
    const fit = fitCtr(model, split, { maxEpochs: 2, batchSize: 64, progressEverySeconds: 0, onProgress: (l) => lines.push(l) });
    const within = lines.filter((l) => l.includes('samples/s, ETA'));
    expect(within.length).toBeGreaterThan(0);
    for (const l of within) expect(l).toMatch(/^din epoch [12]: \d+\/\d+ samples, loss \d\.\d{4}, \d+ samples\/s, ETA epoch \d+:\d\d, run \d+:\d\d$/);
    // Without CollectiveKV layers in their full phase there is no recipe.
    expect(fit.recipe).toBeUndefined();
    expect(fit.steps).toBe(2 * ctrStepsPerEpoch(split.train.length, 64));
    model.dispose();
  }, 60000);
});

describe('fitCtr by the recipe', () => {
  it('layers that start with full K/V switch to their pools at the end of the full phase, then fine-tune a quarter of its epochs', () => {
    const model = buildSim({ ...tiny, attention: 'collectivekv', collectiveExact: true, collective: { poolSize: 16, kvPhase: 'full' } });
    const layers = model.attentionLayers() as CollectiveKVAttention[];
    expect(layers.map((l) => l.kvPhase)).toEqual(['full', 'full']);
    const fullBytes = cacheBytesPerToken(model);
    const before = tf.memory().numTensors;
    const lines: string[] = [];
    const fit = fitCtr(model, split, { maxEpochs: 4, patience: 10, batchSize: 64, learningRate: 0.01, progressEverySeconds: 0, onProgress: (l) => lines.push(l) });
    // maxEpochs ends the full phase after 4 epochs; the fine-tune may run ceil(0.25 x 4) = 1 more.
    const perEpoch = ctrStepsPerEpoch(split.train.length, 64);
    const switched = fit.recipe!.phaseSwitch!;
    expect(switched).toMatchObject({ epochs: 4, steps: 4 * perEpoch });
    expect(fit.history.map((h) => h.phase)).toEqual([1, 1, 1, 1, 2]);
    expect(fit.steps).toBe(5 * perEpoch);
    expect(fit.stoppedBy).toBe('secondPhaseSteps');
    // The switch received the full phase's best weights, and the validation right after it was recorded.
    expect(switched.firstPhaseBest!.auc).toBe(Math.max(...fit.history.slice(0, 4).map((h) => h.validationAuc)));
    expect(Number.isFinite(switched.afterSwitch.auc)).toBe(true);
    expect(fit.recipe!.switch!.reports.map((r) => r.layer)).toEqual(['short_attention', 'exact_attention']);
    expect(fit.recipe!.switch!.seconds).toBeGreaterThan(0);
    expect(lines.some((l) => /^sim: best full-K\/V weights restored and switched to the pools in \d+\.\d s$/.test(l))).toBe(true);
    // The fine-tune's progress lines count the time left to its own end.
    const fineTune = lines.filter((l) => l.startsWith('sim epoch 5:'));
    expect(fineTune.length).toBeGreaterThan(0);
    for (const l of fineTune) expect(l).toMatch(/ETA epoch \d+:\d\d, run \d+:\d\d$/);
    // The layers end pooled, with the compressed cache; the model holds the best pooled weights.
    expect(layers.map((l) => l.kvPhase)).toEqual(['pooled', 'pooled']);
    expect(cacheBytesPerToken(model)).toBeLessThan(fullBytes / 4);
    expect(fit.bestValidationAuc).toBeGreaterThanOrEqual(switched.afterSwitch.auc);
    expect(evaluateCtr(model, data, split.validation).auc).toBeCloseTo(fit.bestValidationAuc, 6);
    expect(tf.memory().numTensors).toBe(before);
    model.dispose();
  }, 120000);

  it('a sample with fewer valid tokens than the pool fails naming the layer', () => {
    const model = buildDin({ ...tiny, attention: 'collectivekv', collective: { poolSize: 100000, kvPhase: 'full' } });
    expect(() => fitCtr(model, split, { maxEpochs: 1, batchSize: 64 })).toThrow(/poolSize = 100000 valid tokens reaching layer 'short_attention'/);
    model.dispose();
  }, 60000);
});

