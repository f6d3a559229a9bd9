// A model saved by collectivekv 0.1 (fixtures/legacy-0.1: flat router options, the dense and
// nearest-product routers, a straight-through gate) loads with today's code under the same weight
// names and order, and predicts (and trains, first call) as 0.1 did. A saved config that uses a
// removed option fails naming it.
import * as fs from 'fs';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { useBackend } from '../util/backends';
import { CollectiveKVAttention, RemovedOptionError } from '../../layers/index';

const DIR = path.join(__dirname, 'fixtures', 'legacy-0.1');

interface Expected {
  input: { x: number[]; xShape: number[]; mask: number[][] };
  predict: number[];
  predictShape: number[];
  train: number[];
  trainLoss: number;
  weightNames: string[];
  layerWeights: Record<string, string[]>;
}

const expected = JSON.parse(fs.readFileSync(path.join(DIR, 'expected.json'), 'utf8')) as Expected;

type ModelJson = { modelTopology: { config: { layers: Array<{ class_name: string; config: Record<string, unknown> }> } }; weightsManifest: Array<{ weights: tf.io.WeightsManifestEntry[] }> };

function modelJson(): ModelJson {
  return JSON.parse(fs.readFileSync(path.join(DIR, 'model.json'), 'utf8')) as ModelJson;
}

async function load(json: ModelJson = modelJson()): Promise<tfl.LayersModel> {
  const bin = fs.readFileSync(path.join(DIR, 'weights.bin'));
  const weightData = bin.buffer.slice(bin.byteOffset, bin.byteOffset + bin.byteLength);
  return tfl.loadLayersModel(tf.io.fromMemory({ modelTopology: json.modelTopology as unknown as object, weightSpecs: json.weightsManifest[0].weights, weightData }));
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('a model saved by 0.1', () => {
  beforeAll(() => useBackend('cpu'));

  test('loads under the same weight names and order, with its flat options mapped to router configs', async () => {
    const model = await load();
    expect(model.weights.map((w) => w.originalName)).toEqual(expected.weightNames);
    const layers = model.layers.filter((l): l is CollectiveKVAttention => l instanceof CollectiveKVAttention);
    expect(layers.map((l) => l.name)).toEqual(Object.keys(expected.layerWeights));
    for (const layer of layers) expect(layer.weights.map((w) => w.originalName)).toEqual(expected.layerWeights[layer.name]);
    const [dense, nearest, straight] = layers;
    expect(dense.router).toEqual({ kind: 'dense', gate: 'scaled', peakWeight: 0.02, balanceWeight: 1, balanceTokens: 4 });
    expect(nearest.router).toEqual({ kind: 'nearest-product', commitmentWeight: 0.5, quantizationWeight: 0.1, lossTokens: 4 });
    expect(straight.router).toEqual({ kind: 'dense', gate: 'straight-through', peakWeight: 0.01, balanceWeight: 0.5, balanceTokens: 2048 });
    expect(straight.poolStddev).toBe(0.5);
    model.dispose();
  });

  test('predicts, and trains its first call (output and routing losses), as 0.1 did', async () => {
    const model = await load();
    const x = tf.tensor(expected.input.x, expected.input.xShape);
    const mask = tf.tensor2d(expected.input.mask);
    const predict = model.predict([x, mask]) as tf.Tensor;
    expect(predict.shape).toEqual(expected.predictShape);
    expect(maxDiff(predict.dataSync(), expected.predict)).toBeLessThan(1e-5);
    const [train, loss] = tf.tidy(() => [model.apply([x, mask], { training: true }) as tf.Tensor, tf.addN(model.calculateLosses())]);
    expect(maxDiff(train.dataSync(), expected.train)).toBeLessThan(1e-5);
    expect(Math.abs(loss.dataSync()[0] - expected.trainLoss)).toBeLessThan(1e-5);
    tf.dispose([x, mask, predict, train, loss]);
    model.dispose();
  });

  test('saved again, it loads with nested router configs and predicts the same', async () => {
    const model = await load();
    let saved: tf.io.ModelArtifacts | null = null;
    await model.save(tf.io.withSaveHandler(async (a) => { saved = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }; }));
    const artifacts = saved as unknown as tf.io.ModelArtifacts;
    const layers = (artifacts.modelTopology as ModelJson['modelTopology']).config.layers.filter((l) => l.class_name === 'CollectiveKVAttention');
    expect(layers[1].config.router).toEqual({ kind: 'nearest-product', commitment_weight: 0.5, quantization_weight: 0.1, loss_tokens: 4 });
    expect(layers.every((l) => !('peak_weight' in l.config) && !('gate' in l.config))).toBe(true);
    const again = await tfl.loadLayersModel(tf.io.fromMemory(artifacts));
    const x = tf.tensor(expected.input.x, expected.input.xShape);
    const mask = tf.tensor2d(expected.input.mask);
    const y = again.predict([x, mask]) as tf.Tensor;
    expect(maxDiff(y.dataSync(), expected.predict)).toBeLessThan(1e-5);
    tf.dispose([x, mask, y]);
    model.dispose();
    again.dispose();
  });

  test.each([
    ['routing_bias_rate', 0.01, /^CollectiveKVAttention: option 'routingBiasRate' was removed in 0\.2 \(it gave no gain.*see docs\/routing\.md\); retrain without it$/],
    ['router_dim', 32, /^CollectiveKVAttention: option 'routerDim' was removed in 0\.2 \(.*see docs\/routing\.md\); retrain without it$/],
    ['router', 'nearest', /^CollectiveKVAttention: router 'nearest' was removed in 0\.2 \(.*see docs\/routing\.md\); retrain with router 'dense' or 'nearest-product'$/],
    ['router', 'product', /^CollectiveKVAttention: router 'product' was removed in 0\.2 \(.*0\.033 AUC.*\)/],
  ])("a saved config with %s = %p fails naming it", async (key, value, message) => {
    const json = modelJson();
    json.modelTopology.config.layers[2].config[key] = value;
    const before = tf.memory().numTensors;
    let error: unknown = null;
    try {
      (await load(json)).dispose();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RemovedOptionError);
    expect((error as Error).message).toMatch(message);
    expect(tf.memory().numTensors).toBe(before);
  });
});
