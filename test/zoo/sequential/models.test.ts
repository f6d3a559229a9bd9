import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { generateSynthetic, leaveOneOut, restoreDefaultEmbeddingGradients, useFastEmbeddingGradients } from 'collectivekv/internal';
import { ZOO_MODELS, buildZooModel, loadZooModel, saveZooModel } from '../../../src/zoo/sequential/nextItem';
import { clozeBatches, buildBert4rec, bert4recHost } from '../../../src/zoo/sequential/bert4rec';
import { buildSasrec } from '../../../src/zoo/sequential/sasrec';
import { buildHstu, hstuHost } from '../../../src/zoo/sequential/hstu';
import { StepHost, sasrecHost, sumLosses } from '../../../src/zoo/sequential/sasrecTraining';

beforeAll(async () => {
  await useBackend('wasm');
  useFastEmbeddingGradients();
});
afterAll(() => restoreDefaultEmbeddingGradients());

const data = generateSynthetic({ numUsers: 48, numItems: 40, numTopics: 4, minLength: 5, maxLength: 12, seed: 5 });
const split = leaveOneOut(data);
const tiny = { numItems: data.numItems, maxLength: 8, hiddenDim: 16, numBlocks: 2, numHeads: 2, dropout: 0, seed: 11,
  collective: { poolSize: 16, userDim: 1 } };
let histories: tf.Tensor2D;
beforeAll(() => {
  histories = tf.tensor2d([[0, 0, 0, 0, 0, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7, 8], [0, 0, 0, 0, 0, 0, 0, 9]], [3, 8], 'int32');
});
afterAll(() => histories.dispose());

const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);

describe.each(ZOO_MODELS.flatMap((name) => (['mha', 'collectivekv'] as const).map((attention) => [name, attention] as const)))(
  '%s with %s', (name, attention) => {
    it('trains (loss falls), saves, loads with identical predictions', async () => {
      const m = buildZooModel(name, { ...tiny, attention });
      const optimizer = tf.train.adam(0.02);
      const batch = m.batches(split.train, 48, 1, 0)[Symbol.iterator]().next().value!;
      const first = m.step(optimizer, batch, 1);
      let last = first;
      for (let i = 0; i < 6; i++) last = m.step(optimizer, batch, 1);
      expect(Number.isFinite(first.loss)).toBe(true);
      expect(last.loss).toBeLessThan(first.loss - 0.2);
      expect(first.auxLoss > 0).toBe(attention === 'collectivekv');
      optimizer.dispose();

      const dir = mkdtempSync(join(tmpdir(), 'ckv-zoo-'));
      try {
        await saveZooModel(m, dir);
        const loaded = await loadZooModel(dir);
        expect(loaded.name).toBe(name);
        const [a, b] = [m.scoreNext(histories), loaded.scoreNext(histories)];
        expect(a.shape).toEqual([3, data.numItems + 1]);
        expect(maxDiff(a, b)).toBe(0);
        tf.dispose([a, b]);
        loaded.dispose();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      m.dispose();
    });

    if (name !== 'bert4rec') {
      it('cached decode of the next position equals the full forward, without leaks', () => {
        const m = buildZooModel(name, { ...tiny, attention });
        tf.dispose([m.scoreNext(histories), m.scoreNextCached!(histories)]);
        const before = tf.memory().numTensors;
        const full = m.scoreNext(histories);
        const cached = m.scoreNextCached!(histories);
        const scale = tf.tidy(() => tf.max(tf.abs(full)).dataSync()[0]);
        expect(scale).toBeGreaterThan(0);
        expect(maxDiff(full, cached)).toBeLessThan(1e-4 * Math.max(1, scale));
        tf.dispose([full, cached]);
        expect(tf.memory().numTensors).toBe(before);
        m.dispose();
      });
    }

    it('two builds with one seed take identical training steps (reproducible runs)', () => {
      const run = () => {
        const m = buildZooModel(name, { ...tiny, attention });
        const optimizer = tf.train.adam(0.02);
        const batches = [...m.batches(split.train, 16, 3, 0)].slice(0, 3);
        const losses = batches.map((b) => m.step(optimizer, b, 1).loss);
        const weights = m.model.getWeights().map((w) => Array.from(w.dataSync()));
        optimizer.dispose();
        m.dispose();
        return { losses, weights };
      };
      const [a, b] = [run(), run()];
      expect(b.losses).toEqual(a.losses);
      expect(b.weights).toEqual(a.weights);
    });

    it('reports bytes per cached token (collectivekv at most 1/20 of full KV at d=64)', () => {
      const m = buildZooModel(name, { ...tiny, hiddenDim: 64, attention, collective: { poolSize: 1024, userDim: 1 } });
      // 2 blocks; full: K and V of 64 floats; collective: uint16 index + 1 float per side.
      expect(m.bytesPerToken()).toBe(attention === 'mha' ? 2 * 2 * 64 * 4 : 2 * 2 * (2 + 4));
      m.dispose();
    });
  });

describe('batch loss weights', () => {
  it('a batch\'s lossWeight multiplies its main loss', () => {
    const step = (lossWeight?: number) => {
      const m = buildZooModel('sasrec', { ...tiny, attention: 'mha' });
      const batch = m.batches(split.train, 48, 1, 0)[Symbol.iterator]().next().value!;
      const optimizer = tf.train.adam(0.01);
      const r = m.step(optimizer, { ...batch, lossWeight }, 1);
      optimizer.dispose();
      m.dispose();
      return r.loss;
    };
    expect(step(2.5) / step(1)).toBeCloseTo(2.5, 5);
    expect(step(undefined)).toBeCloseTo(step(1), 6);
  });
});

describe('BERT4Rec cloze batches', () => {
  it('mask only item slots, keep the originals as targets, and repeat with the seed', () => {
    const m = buildBert4rec({ ...tiny, maskProbability: 0.3 });
    const take = (seed: number) => [...clozeBatches(m, split.train, 16, seed, 0)];
    const a = take(3);
    expect(take(3)).toEqual(a);
    expect(take(4)).not.toEqual(a);
    let masked = 0;
    for (const batch of a) {
      for (let i = 0; i < batch.inputs.length; i++) {
        if (batch.targets[i] !== 0) {
          expect(batch.inputs[i]).toBe(m.maskId);
          masked += 1;
        } else {
          expect(batch.inputs[i]).not.toBe(m.maskId);
        }
      }
      const w = batch.maxLength;
      expect(w).toBeLessThanOrEqual(8);
      for (let r = 0; r < batch.batchSize; r++) {
        expect(batch.targets.subarray(r * w, r * w + w).some((t) => t !== 0)).toBe(true);
      }
      // Cut to the longest row: some row fills the first slot of the window.
      expect(Array.from({ length: batch.batchSize }, (_, r) => batch.inputs[r * w]).some((id) => id !== 0)).toBe(true);
    }
    expect(masked).toBeGreaterThan(0);
    expect(a.reduce((n, b) => n + b.batchSize, 0)).toBe(split.train.filter((s) => s.length > 0).length);
    m.model.dispose();
  });
});

describe('a window cut to its longest row (length-bucketed training batches)', () => {
  const hosts: Record<string, (attention: 'mha' | 'collectivekv') => StepHost> = {
    sasrec: (attention) => sasrecHost(buildSasrec({ ...tiny, attention })),
    hstu: (attention) => hstuHost(buildHstu({ ...tiny, attention })),
    bert4rec: (attention) => bert4recHost(buildBert4rec({ ...tiny, attention })),
  };
  it.each(ZOO_MODELS.flatMap((name) => (['mha', 'collectivekv'] as const).map((attention) => [name, attention] as const)))(
    '%s with %s: same hidden states at every item and the same auxiliary loss as the full window', (name, attention) => {
      const host = hosts[name](attention);
      const full = tf.tensor2d([[0, 0, 0, 0, 0, 3, 4, 5], [0, 0, 0, 1, 2, 3, 4, 5], [0, 0, 0, 0, 6, 7, 8, 9]], [3, 8], 'int32');
      const cut = tf.slice(full, [0, 3], [3, 5]);
      const run = (ids: tf.Tensor) => {
        const hidden = host.hidden(ids, true);
        return { hidden, aux: sumLosses(host.model.calculateLosses()) };
      };
      const a = run(full);
      const b = run(cut);
      const items = tf.tidy(() => tf.expandDims(tf.cast(tf.notEqual(cut, 0), 'float32'), -1));
      const diff = tf.tidy(() => tf.max(tf.abs(tf.mul(tf.sub(tf.slice(a.hidden, [0, 3, 0], [3, 5, 16]), b.hidden), items))).dataSync()[0]);
      expect(b.hidden.shape).toEqual([3, 5, 16]);
      expect(diff).toBeLessThan(1e-5);
      expect(Math.abs(a.aux.dataSync()[0] - b.aux.dataSync()[0])).toBeLessThan(1e-6);
      expect(a.aux.dataSync()[0] > 0).toBe(attention === 'collectivekv');
      tf.dispose([full, cut, items, a.hidden, b.hidden, a.aux, b.aux]);
      host.model.dispose();
    });
});
