// Every random source of a zoo run follows its seed (weights, pools, every dropout, batching,
// sampling, the recipe's switch): the same run twice gives identical losses and metrics; another seed does not.
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { generateSynthetic, leaveOneOut, restoreDefaultEmbeddingGradients, useFastEmbeddingGradients } from 'collectivekv/internal';
import { ZOO_MODELS, buildZooModel } from '../../../src/zoo/sequential/nextItem';
import { fitNextItem } from '../../../src/zoo/sequential/nextItemTraining';

beforeAll(async () => {
  tf.env().set('IS_TEST', true);
  await useBackend('wasm');
  useFastEmbeddingGradients();
});
afterAll(() => restoreDefaultEmbeddingGradients());

const data = generateSynthetic({ numUsers: 40, numItems: 30, numTopics: 3, minLength: 5, maxLength: 10, seed: 4 });
const split = leaveOneOut(data);

function run(name: (typeof ZOO_MODELS)[number], seed: number) {
  const m = buildZooModel(name, { numItems: data.numItems, maxLength: 8, hiddenDim: 16, numBlocks: 2, numHeads: 2, dropout: 0.3, seed,
    attention: 'collectivekv', collective: { poolSize: 16, userDim: 1, kvPhase: 'full' } });
  try {
    const fit = fitNextItem(m, split, { maxEpochs: 3, patience: 1, batchSize: 16, learningRate: 0.01, seed, progress: 'none' });
    return { losses: fit.history.map((h) => [h.loss, h.auxLoss, h.validationNdcg10]), switched: fit.recipe?.phaseSwitch?.epochs ?? null };
  } finally {
    m.dispose();
  }
}

describe.each(ZOO_MODELS)('%s, collectivekv by the recipe, dropout 0.3', (name) => {
  test('the same seed twice: identical losses and validation metrics, through the switch; another seed: different losses', () => {
    const a = run(name, 7);
    const b = run(name, 7);
    expect(a.switched).not.toBeNull();
    expect(b).toEqual(a);
    expect(run(name, 8).losses[0][0]).not.toBe(a.losses[0][0]);
  }, 60_000);
});
