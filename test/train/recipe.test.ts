// The recipe as a model.fit callback: full K/V until the monitor plateaus, best weights restored,
// switch to the pools, a bounded fine-tune, best pooled weights kept; save/load in both phases.
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { maxAbsDiff, randomTensor, useBackend } from '../util/backends';
import { CollectiveKVAttention } from '../../layers/index';
import { collectiveKVRecipe } from '../../src/train/index';

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await useBackend('cpu');
});

function build() {
  const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, userDim: 1, poolSize: 16, poolSeed: 1, causal: true, name: 'att' });
  const input = tfl.input({ shape: [8, 6] });
  const model = tfl.model({ inputs: input, outputs: layer.apply(input) as tfl.SymbolicTensor });
  model.compile({ optimizer: tf.train.adam(1e-2), loss: 'meanSquaredError' });
  return { layer, model };
}

/** Writes a scripted value into the logs under `score` and keeps a copy of the weights at each epoch end. */
function scripted(scores: number[], snapshots: tf.Tensor[][], model: () => tfl.LayersModel): tfl.CustomCallback {
  return new tfl.CustomCallback({
    onEpochEnd: (epoch, logs) => {
      if (logs != null) logs.score = scores[epoch];
      snapshots.push(model().getWeights().map((w) => tf.clone(w)));
    },
  });
}

function sameWeights(a: tf.Tensor[], b: tf.Tensor[]): number {
  return Math.max(...a.map((w, i) => maxAbsDiff(w, b[i])));
}

test('switches at the plateau with the best full-phase weights, fine-tunes at most a quarter more, ends with the best pooled weights', async () => {
  const { layer, model } = build();
  const x = randomTensor([32, 8, 6], 1);
  const y = randomTensor([32, 8, 6], 2);
  const snapshots: tf.Tensor[][] = [];
  // Best full-phase epoch 3, plateau after epoch 5 (patience 2); pooled: epoch 6 best, the phase ends after ceil(5 / 4) = 2 epochs.
  const scores = [5, 4, 3, 3.5, 3.6, 2, 2.5, 1, 1, 1];
  const recipe = collectiveKVRecipe({ sample: x, monitor: 'score', patience: 2, log: null });
  let phaseAtSwitch: string | null = null;
  let queryAtSwitch: tf.Tensor | null = null;
  const watch = new tfl.CustomCallback({ onEpochEnd: (epoch) => {
    if (epoch !== 4) return;
    phaseAtSwitch = layer.kvPhase;
    queryAtSwitch = tf.clone(model.getWeights()[0]);
  } });
  const history = await model.fit(x, y, { epochs: 10, batchSize: 8, verbose: 0, callbacks: [scripted(scores, snapshots, () => model), recipe, watch] });
  expect(history.epoch).toHaveLength(7);
  expect(recipe.switchedAfterEpoch).toBe(5);
  expect(phaseAtSwitch).toBe('pooled');
  expect(layer.kvPhase).toBe('pooled');
  expect(recipe.switchReports).toHaveLength(1);
  expect(recipe.switchReports[0].key?.tokens).toBe(256);
  expect(layer.router.kind === 'dense' && layer.router.balanceWeight).toBe(0);
  // The final weights are epoch 6's (the best pooled one), which started from epoch 3's full-phase weights.
  expect(sameWeights(model.getWeights(), snapshots[5])).toBe(0);
  // Right after the switch the query projection is epoch 3's (restored), not epoch 5's.
  expect(maxAbsDiff(queryAtSwitch as unknown as tf.Tensor, snapshots[2][0])).toBe(0);
  expect(maxAbsDiff(snapshots[4][0], snapshots[2][0])).toBeGreaterThan(0);
  (queryAtSwitch as unknown as tf.Tensor).dispose();
  snapshots.flat().forEach((t) => t.dispose());
  tf.dispose([x, y]);
  model.dispose();
});

test('without the monitored value in the logs, fit fails naming the monitor', async () => {
  const { model } = build();
  const x = randomTensor([4, 8, 6], 1);
  await expect(model.fit(x, x, { epochs: 2, verbose: 0, callbacks: [collectiveKVRecipe({ sample: x, log: null })] }))
    .rejects.toThrow(/options.monitor.*'val_loss'/s);
  tf.dispose(x);
  model.dispose();
});

test('bad options are named; a model without CollectiveKVAttention is refused', async () => {
  const x = randomTensor([4, 8, 6], 1);
  expect(() => collectiveKVRecipe({} as never)).toThrow(/options.sample/);
  expect(() => collectiveKVRecipe({ sample: x, patience: 0 })).toThrow(/options.patience/);
  expect(() => collectiveKVRecipe({ sample: x, fineTuneShare: 2 })).toThrow(/options.fineTuneShare/);
  const input = tfl.input({ shape: [8, 6] });
  const plain = tfl.model({ inputs: input, outputs: tfl.layers.dense({ units: 6 }).apply(input) as tfl.SymbolicTensor });
  plain.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
  await expect(plain.fit(x, x, { epochs: 1, verbose: 0, callbacks: [collectiveKVRecipe({ sample: x, log: null })] })).rejects.toThrow(/CollectiveKVAttention/);
  tf.dispose(x);
  plain.dispose();
});

test('a model saves and loads in either phase, predicting the same', async () => {
  const { layer, model } = build();
  const x = randomTensor([32, 8, 6], 3);
  const roundTrip = async () => {
    let artifacts: tf.io.ModelArtifacts | null = null;
    await model.save(tf.io.withSaveHandler(async (a) => { artifacts = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
    const loaded = await tfl.loadLayersModel(tf.io.fromMemory(artifacts as unknown as tf.io.ModelArtifacts));
    const loadedLayer = loaded.getLayer('att') as CollectiveKVAttention;
    const diff = tf.tidy(() => maxAbsDiff(model.predict(x) as tf.Tensor, loaded.predict(x) as tf.Tensor));
    const phase = loadedLayer.kvPhase;
    loaded.dispose();
    return { diff, phase };
  };
  layer.setKVPhase('full');
  expect(await roundTrip()).toEqual({ diff: 0, phase: 'full' });
  const { switchToPool } = await import('../../src/convert/index');
  switchToPool([layer], () => tf.dispose(model.predict(x)));
  expect(await roundTrip()).toEqual({ diff: 0, phase: 'pooled' });
  tf.dispose(x);
  model.dispose();
});
