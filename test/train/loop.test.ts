import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../util/backends';
import { TrainLoopOptions, TrainLoopSpec, readCheckpoint, seededRandom, trainLoop } from 'collectivekv/internal';

beforeAll(() => useBackend('cpu'));

/**
 * A toy model: one variable that each step adds its batch value to. Validation metrics come from a
 * script (one per validated epoch), so the best epoch and the restored weight are known in advance.
 */
function toySpec(metrics: number[], opts: { batchesPerEpoch?: number; clock?: { t: number; perStep: number } } = {}) {
  const w = tf.variable(tf.scalar(0));
  const seeds: number[] = [];
  const orders: number[][] = [];
  const valuesAtValidation: number[] = [];
  let validations = 0;
  const n = opts.batchesPerEpoch ?? 3;
  const spec: TrainLoopSpec<number> = {
    batchesPerEpoch: n,
    batches: (epoch, seed) => {
      const rand = seededRandom(seed * 31 + epoch);
      const order = Array.from({ length: n }, () => Math.floor(rand() * 100));
      orders.push(order);
      return order;
    },
    step: (batch, seed) => {
      seeds.push(seed);
      tf.tidy(() => w.assign(tf.add(w, 1)));
      if (opts.clock) opts.clock.t += opts.clock.perStep;
      return { loss: batch, items: 2 };
    },
    validate: () => {
      valuesAtValidation.push(w.dataSync()[0]);
      return { ndcg10: metrics[Math.min(validations++, metrics.length - 1)], hr10: 0 };
    },
    getWeights: () => [w],
    setWeights: (weights) => w.assign(weights[0] as tf.Scalar),
    weightNames: () => ['toy/w'],
  };
  return { spec, w, seeds, orders, valuesAtValidation, dispose: () => w.dispose() };
}

const quiet: TrainLoopOptions = { progress: 'none' };

describe('trainLoop', () => {
  it('with a second phase: at the plateau restores the best weights, enters, validates, trains a bounded second phase, keeps its best', () => {
    // Phase 1: best at epoch 2 (w = 6), plateau after epoch 4. After the switch: 0.05 (switched), then 0.2, 0.4, 0.3 ...
    const toy = toySpec([0.1, 0.3, 0.2, 0.25, 0.05, 0.2, 0.4, 0.3, 0.9]);
    const entered: number[] = [];
    const r = trainLoop(toy.spec, { ...quiet, maxEpochs: 20, patience: 2, secondPhase: {
      maxEpochs: (first) => Math.ceil(first * 0.75), enter: () => { entered.push(toy.w.dataSync()[0]); },
    } });
    expect(entered).toEqual([6]);
    expect(r.phaseSwitch).toEqual({ epochs: 4, steps: 12, firstPhaseBestEpoch: 2, firstPhaseBest: { ndcg10: 0.3, hr10: 0 }, afterSwitch: { ndcg10: 0.05, hr10: 0 } });
    // Second phase: 3 epochs at most (ceil(4 * 0.75)); the values 0.2, 0.4, 0.3 -> the best is its 2nd epoch (w = 6 + 6 = 12).
    expect(r.epochs).toBe(7);
    expect(r.history.map((h) => h.phase)).toEqual([1, 1, 1, 1, 2, 2, 2]);
    expect(r.stoppedBy).toBe('maxEpochs');
    expect(r.bestEpoch).toBe(6);
    expect(r.bestMetric).toBeCloseTo(0.4);
    expect(toy.w.dataSync()[0]).toBe(12);
    toy.dispose();
  });

  it('latestSwitchStep ends the first phase mid-epoch without a plateau, validating the partial epoch, and training goes on', () => {
    // Improving every epoch: no plateau; the first phase is cut at step 5 (epoch 2, step 2 of 3).
    const toy = toySpec([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
    const entered: number[] = [];
    const r = trainLoop(toy.spec, { ...quiet, maxEpochs: 20, patience: 2, secondPhase: {
      maxEpochs: () => 2, latestSwitchStep: 5, enter: () => { entered.push(toy.w.dataSync()[0]); },
    } });
    expect(r.phaseSwitch).toMatchObject({ epochs: 2, steps: 5 });
    expect(entered).toEqual([5]);
    expect(r.history.map((h) => [h.phase, h.partial])).toEqual([[1, false], [1, true], [2, false], [2, false]]);
    expect(r.stoppedBy).toBe('maxEpochs');
    toy.dispose();
  });

  it('a second phase stops at its own step budget, mid-epoch, validating the partial epoch', () => {
    const toy = toySpec([0.1, 0.3, 0.2, 0.25, 0.05, 0.2, 0.4]);
    const r = trainLoop(toy.spec, { ...quiet, maxEpochs: 20, patience: 2, secondPhase: {
      maxEpochs: () => 5, maxSteps: (first) => Math.floor(first / 4), enter: () => {},
    } });
    // First phase: 4 epochs of 3 steps; second: floor(12 / 4) = 3 steps, one epoch.
    expect(r.phaseSwitch?.steps).toBe(12);
    expect(r.steps).toBe(15);
    expect(r.stoppedBy).toBe('secondPhaseSteps');
    expect(r.epochs).toBe(5);
    toy.dispose();
  });

  it('with a second phase and an exhausted step budget: switches, validates, and stops', () => {
    const toy = toySpec([0.1, 0.3, 0.5]);
    let entered = 0;
    const r = trainLoop(toy.spec, { ...quiet, maxEpochs: 20, maxSteps: 6, secondPhase: { maxEpochs: () => 5, enter: () => { entered++; } } });
    expect(entered).toBe(1);
    expect(r.stoppedBy).toBe('maxSteps');
    expect(r.phaseSwitch?.afterSwitch).toEqual({ ndcg10: 0.5, hr10: 0 });
    expect(r.bestMetric).toBeCloseTo(0.5);
    expect(r.steps).toBe(6);
    toy.dispose();
  });

  it('stops after `patience` validations without improvement and restores the best weights', () => {
    const toy = toySpec([0.1, 0.3, 0.2, 0.25, 0.9]);
    const r = trainLoop(toy.spec, { ...quiet, maxEpochs: 10, patience: 2 });
    expect(r.stoppedBy).toBe('patience');
    expect(r.epochs).toBe(4);
    expect(r.bestEpoch).toBe(2);
    expect(r.bestMetric).toBeCloseTo(0.3);
    expect(r.history.map((h) => h.best)).toEqual([true, true, false, false]);
    // 3 steps per epoch: the weight after epoch 2 is 6; training went on to 12 and was restored.
    expect(toy.valuesAtValidation).toEqual([3, 6, 9, 12]);
    expect(toy.w.dataSync()[0]).toBe(6);
    expect(r.steps).toBe(12);
    toy.dispose();
  });

  it('validates every N epochs and always after the last one', () => {
    const toy = toySpec([0.1, 0.2, 0.3]);
    const r = trainLoop(toy.spec, { ...quiet, maxEpochs: 5, validateEvery: 2, patience: 0 });
    expect(r.stoppedBy).toBe('maxEpochs');
    expect(r.history.map((h) => h.validation != null)).toEqual([false, true, false, true, true]);
    expect(r.bestEpoch).toBe(5);
    toy.dispose();
  });

  it('is reproducible: the same seed gives the same batches and step seeds, another seed others', () => {
    const run = (seed: number) => {
      const toy = toySpec([0.1, 0.2, 0.3]);
      trainLoop(toy.spec, { ...quiet, maxEpochs: 3, seed });
      toy.dispose();
      return { seeds: toy.seeds, orders: toy.orders };
    };
    const a = run(7);
    expect(run(7)).toEqual(a);
    const b = run(8);
    expect(b.seeds).not.toEqual(a.seeds);
    expect(b.orders).not.toEqual(a.orders);
    expect(new Set(a.seeds).size).toBe(a.seeds.length);
  });

  it('maxMinutes cuts the running epoch, validates it and says so', () => {
    const clock = { t: 0, perStep: 10_000 };
    const toy = toySpec([0.1, 0.2, 0.3, 0.4], { batchesPerEpoch: 4, clock });
    const r = trainLoop(toy.spec, { ...quiet, maxEpochs: 10, maxMinutes: 1, now: () => clock.t });
    expect(r.stoppedBy).toBe('maxMinutes');
    expect(r.steps).toBe(6);
    expect(r.epochs).toBe(2);
    expect(r.history[1]).toMatchObject({ partial: true, steps: 2 });
    expect(r.history[1].validation).not.toBeNull();
    toy.dispose();
  });

  it('maxSteps gives an exact step budget', () => {
    const toy = toySpec([0.1, 0.2, 0.3]);
    const r = trainLoop(toy.spec, { ...quiet, maxEpochs: 10, maxSteps: 7 });
    expect(r.stoppedBy).toBe('maxSteps');
    expect(r.steps).toBe(7);
    expect(r.epochs).toBe(3);
    toy.dispose();
  });

  it('writes the best weights to the checkpoint directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ckv-ckpt-'));
    const toy = toySpec([0.5, 0.1, 0.2]);
    try {
      trainLoop(toy.spec, { ...quiet, maxEpochs: 3, patience: 5, checkpointDir: dir });
      const { manifest, weights } = readCheckpoint(dir);
      expect(manifest).toMatchObject({ epoch: 1, metric: 'ndcg10', value: 0.5, weights: [{ name: 'toy/w', shape: [] }] });
      expect(weights[0].dataSync()[0]).toBe(3);
      tf.dispose(weights);
    } finally {
      toy.dispose();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('leaks no tensors (snapshots are disposed)', () => {
    const toy = toySpec([0.1, 0.3, 0.2]);
    const before = tf.memory().numTensors;
    trainLoop(toy.spec, { ...quiet, maxEpochs: 3 });
    expect(tf.memory().numTensors).toBe(before);
    toy.dispose();
  });

  it('rejects a validation without the metric and bad options, naming them', () => {
    const toy = toySpec([0.1]);
    expect(() => trainLoop(toy.spec, { ...quiet, metric: 'auc' })).toThrow(/must return the metric 'auc', received keys \["ndcg10","hr10"\]/);
    expect(() => trainLoop(toy.spec, { ...quiet, maxEpochs: 0 })).toThrow(/maxEpochs must be a positive integer, received 0/);
    toy.dispose();
  });
});

describe('progress display', () => {
  const capture = (isTTY: boolean) => {
    const chunks: string[] = [];
    return { sink: { isTTY, columns: 200, write: (s: string) => chunks.push(s) }, text: () => chunks.join('') };
  };

  it('prints plain periodic lines with items/s, loss and ETA when not on a TTY', () => {
    const out = capture(false);
    const toy = toySpec([0.1, 0.2]);
    trainLoop(toy.spec, { maxEpochs: 2, output: out.sink, logEverySeconds: 0, label: 'toy' });
    const text = out.text();
    expect(text).not.toMatch(/\r/);
    expect(text).toMatch(/\[toy\] epoch 1\/2 step 2\/3: \d+ items\/s, loss \d+\.\d{4}, ETA \d+:\d\d\n/);
    expect(text).toMatch(/\[toy\] epoch 2: loss [\d.]+, valid ndcg10 0\.2000 hr10 0\.0000 \*, \d+ s\n/);
    toy.dispose();
  });

  it('redraws a bar in place on a TTY', () => {
    const out = capture(true);
    const toy = toySpec([0.1]);
    trainLoop(toy.spec, { maxEpochs: 1, output: out.sink });
    expect(out.text()).toMatch(/\repoch 1\/1 \[#+\.*\] 1\/3 \d+ items\/s, loss [\d.]+, ETA/);
    toy.dispose();
  });
});
