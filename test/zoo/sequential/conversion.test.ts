// A warm start that forks the baseline's own run: RunSnapshots keeps its weights every N steps,
// warmStartCollective converts the snapshot instead of training a second mha model.
import * as tf from '@tensorflow/tfjs-core';
import { generateSynthetic, leaveOneOut } from 'collectivekv/internal';
import { useBackend } from '../../util/backends';
import { buildZooModel } from '../../../src/zoo/sequential/nextItem';
import { fitNextItem } from '../../../src/zoo/sequential/nextItemTraining';
import { RunSnapshots, warmStartCollective } from '../../../src/zoo/sequential/conversion';

const data = generateSynthetic({ numUsers: 48, numItems: 40, numTopics: 4, minLength: 5, maxLength: 12, seed: 5 });
const split = leaveOneOut(data);
const options = { numItems: data.numItems, maxLength: 8, hiddenDim: 16, numBlocks: 1, numHeads: 2, dropout: 0, seed: 11,
  attention: 'mha' as const, collective: { poolSize: 16, userDim: 1 } };
const fit = { maxEpochs: 2, patience: 0, batchSize: 8, learningRate: 0.01, seed: 3 };

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await useBackend('cpu');
});

describe('warm start forked from the baseline run', () => {
  test('RunSnapshots keeps every interval-th step up to lastStep; the fork converts exactly those weights', () => {
    const baseline = buildZooModel('sasrec', options);
    const snapshots = new RunSnapshots(() => baseline.model.getWeights(), 2, 7);
    const weightsAt = new Map<number, Float32Array[]>();
    const baselineFit = fitNextItem(baseline, split, {
      ...fit,
      onStep: (step, seconds, epoch) => {
        snapshots.onStep(step, seconds, epoch);
        weightsAt.set(step, baseline.model.getWeights().map((w) => w.dataSync().slice() as Float32Array));
      },
    });
    const steps = baselineFit.steps ?? 0;
    expect(steps).toBe(12); // 2 epochs of 6 batches (48 users, batch 8)
    expect(snapshots.atOrBefore(1)).toBeNull();
    expect(snapshots.atOrBefore(5)?.step).toBe(4);
    expect(snapshots.atOrBefore(100)?.step).toBe(6); // none after lastStep 7
    const fork = snapshots.atOrBefore(9);
    expect(fork?.epochs).toBe(1);
    expect(fork?.weights).toEqual(weightsAt.get(6));
    const before = tf.memory().numTensors;
    let seenByEvaluate: Float32Array[] | null = null;
    const r = warmStartCollective(() => buildZooModel('sasrec', options), split, 'softmax', fit, {
      fraction: 0.25, steps, fork, poolSize: 16, userDim: 1, sampleUsers: 16, seed: 1,
      evaluate: (m) => {
        seenByEvaluate ??= m.model.getWeights().map((w) => w.dataSync().slice() as Float32Array);
        return 0;
      },
    });
    // The mha part is the baseline at step 6 (the first evaluate call), then steps - 6 fine-tune steps.
    expect(r.forked).toBe(true);
    expect(seenByEvaluate).toEqual(weightsAt.get(6));
    expect(r.baselineFit.steps).toBe(6);
    expect(r.fineTuneFit.steps).toBe(steps - 6);
    r.model.dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(() => warmStartCollective(() => buildZooModel('sasrec', options), split, 'softmax', fit,
      { fraction: 0.25, steps, fork: { ...fork!, weights: fork!.weights.slice(1) }, poolSize: 16, userDim: 1, sampleUsers: 16, seed: 1 }))
      .toThrow(/fork.weights must be the \d+ weights of the mha model/);
    expect(() => warmStartCollective(() => buildZooModel('sasrec', options), split, 'softmax', fit,
      { fraction: 0.25, steps, fork: { ...fork!, step: steps }, poolSize: 16, userDim: 1, sampleUsers: 16, seed: 1 }))
      .toThrow(/fork.step must be an integer in \[1, 11\], received 12/);
    baseline.dispose();
  });
});
