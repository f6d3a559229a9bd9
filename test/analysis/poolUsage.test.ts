// Pool usage of CollectiveKV layers in analyzeKV: counts on hand-made routes, and a router forced
// onto one row is reported as such.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { useBackend } from '../util/backends';
import { CollectiveKVAttention, analyzeKV, formatPoolUsage, poolUsage } from '../../src/internal';

beforeAll(() => useBackend('cpu'));

test('poolUsage counts valid tokens only: rows used, rows for 90%, top share, gate mean and p10', () => {
  // token 5 is padding (not in valid) and would otherwise add a fourth row
  const u = poolUsage([0, 0, 1, 2, 0, 3], [0.5, 0.6, 0.7, 0.8, 0.9, 0.1], [0, 1, 2, 3, 4], 4);
  expect(u).toMatchObject({ poolSize: 4, tokens: 5, rowsUsed: 3, rowsFor90: 3, topRowShare: 0.6 });
  expect(u.meanGate).toBeCloseTo(0.7, 10);
  expect(u.gateP10).toBeCloseTo(0.5, 10);
  expect(poolUsage([1, 1, 1, 1, 1, 1, 1, 1, 1, 2], new Array(10).fill(1), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 8).rowsFor90).toBe(1);
});

test('analyzeKV reports a pool whose router sends every token to one row', () => {
  const ids = tfl.input({ shape: [6], dtype: 'int32' });
  const embedded = tfl.layers.embedding({ inputDim: 20, outputDim: 8, embeddingsInitializer: tfl.initializers.randomNormal({ seed: 1 }) })
    .apply(ids) as tfl.SymbolicTensor;
  const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, poolSize: 16, userDim: 1, causal: true, poolSeed: 1, name: 'ckv' });
  const model = tfl.model({ inputs: ids, outputs: layer.apply(embedded) as tfl.SymbolicTensor });
  // key router: a bias of 50 on row 3 wins for every token; value router left as initialized.
  const bias = layer.weights.find((w) => w.originalName.endsWith('key_router_bias'));
  bias?.write(tf.tensor1d(Array.from({ length: 16 }, (_, j) => (j === 3 ? 50 : 0))));
  const input = tf.tensor2d(Array.from({ length: 30 }, (_, i) => 1 + (i * 7) % 19), [5, 6], 'int32');
  const analysis = analyzeKV(model, input, { maxTokens: 30 });
  const usage = analysis.layers[0].poolUsage;
  expect(usage?.key).toMatchObject({ poolSize: 16, tokens: 30, rowsUsed: 1, rowsFor90: 1, topRowShare: 1 });
  expect(usage?.key?.meanGate).toBeGreaterThan(0.999);
  expect(usage?.value?.rowsUsed).toBeGreaterThan(1);
  expect(formatPoolUsage(analysis)[0]).toMatch(/^ckv key pool: 1 of 16 rows used, 1 hold 90% of 30 tokens \(top row 100\.0%\); gate mean 1\.000/);
  input.dispose();
  model.dispose();
});
