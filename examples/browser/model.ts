// The demo's model: its options, the files it ships as (model.json + weights.bin), and loading it.
// Shared by the training script (Node), the page (browser) and the test's Node reference run, so
// all three build exactly the same SASRec.
import * as tf from '@tensorflow/tfjs-core';
import type { SyntheticOptions } from 'collectivekv';
import { buildSasrec, type Sasrec } from '../../src/zoo/sequential/sasrec';
import { type SasrecOptions } from '../../src/zoo/sequential/blocks';
import { SasrecRecommender } from '../../src/zoo/sequential/sasrecRecommender';

export const MANIFEST_FORMAT = 'collectivekv-browser-demo/v1';

/** Small enough to train in well under a minute on the cpu backend, big enough to show structure. */
export const DEMO_DATA: SyntheticOptions = {
  numUsers: 1200, numItems: 120, numTopics: 8, minLength: 8, maxLength: 30, seed: 2026,
};

export const DEMO_SASREC: SasrecOptions = {
  numItems: 120, maxLength: 40, hiddenDim: 32, numBlocks: 2, numHeads: 2, dropout: 0.1,
  attention: 'collectivekv', collective: { poolSize: 64, userDim: 1 }, seed: 7,
};

/** Display names of the synthetic topics (the generator only numbers them). */
export const TOPIC_NAMES = ['Jazz', 'Sci-fi', 'Cooking', 'Hiking', 'Chess', 'Poetry', 'Robotics', 'Gardening'];

export interface WeightSpec {
  name: string;
  shape: number[];
}

export interface DemoManifest {
  format: typeof MANIFEST_FORMAT;
  sasrec: SasrecOptions;
  /** In model.getWeights() order; weights.bin holds them back to back as little-endian float32. */
  weights: WeightSpec[];
  /** topicOfItem[id] for ids 1..numItems (index 0 unused). */
  topicOfItem: number[];
  /** Zipf weight per item id (index 0 unused): the demo's catalog lists the popular items first. */
  popularity: number[];
  /** Held-out quality of the shipped weights (leave-one-out test, full ranking). */
  quality: { hr10: number; ndcg10: number; epochs: number; seconds: number };
  /** Hash of the training script and options the weights came from. */
  trainingKey: string;
}

export interface DemoModel {
  manifest: DemoManifest;
  sasrec: Sasrec;
  recommender: SasrecRecommender;
}

/**
 * Builds the SASRec of `manifest` and loads `weights` into it (checked against the manifest).
 * Reads tensors synchronously (the recommender's fingerprint and layouts): Node and wasm/cpu only;
 * the page uses loadDemoModelAsync.
 */
export function loadDemoModel(manifest: DemoManifest, weights: Float32Array): DemoModel {
  const sasrec = loadSasrec(manifest, weights);
  return { manifest, sasrec, recommender: new SasrecRecommender(sasrec) };
}

/**
 * loadDemoModel with asynchronous tensor reads only, for any backend: on webgpu, tfjs-backend-webgpu
 * 4.22's synchronous readback returns zeros on SwiftShader and loses the device.
 */
export async function loadDemoModelAsync(manifest: DemoManifest, weights: Float32Array): Promise<DemoModel> {
  const sasrec = loadSasrec(manifest, weights);
  return { manifest, sasrec, recommender: await SasrecRecommender.create(sasrec) };
}

function loadSasrec(manifest: DemoManifest, weights: Float32Array): Sasrec {
  if (manifest.format !== MANIFEST_FORMAT) throw new Error(`demo model: unknown format ${JSON.stringify(manifest.format)}`);
  const sasrec = buildSasrec(manifest.sasrec);
  // One call builds every layer (the cached paths never run the functional model).
  tf.tidy(() => { sasrec.model.apply(tf.ones([1, manifest.sasrec.maxLength], 'int32')); });
  const expected = sasrec.model.weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] }));
  if (expected.length !== manifest.weights.length) {
    throw new Error(`demo model: the manifest lists ${manifest.weights.length} weights, the model has ${expected.length}`);
  }
  let offset = 0;
  const tensors = manifest.weights.map((spec, i) => {
    if (spec.shape.join('x') !== expected[i].shape.join('x')) {
      throw new Error(`demo model: weight ${i} (${spec.name}) has shape [${spec.shape}], the model expects [${expected[i].shape}]`);
    }
    const size = spec.shape.reduce((a, b) => a * b, 1);
    const t = tf.tensor(weights.subarray(offset, offset + size), spec.shape);
    offset += size;
    return t;
  });
  if (offset !== weights.length) throw new Error(`demo model: weights.bin holds ${weights.length} floats, the manifest ${offset}`);
  sasrec.model.setWeights(tensors);
  tf.dispose(tensors);
  return sasrec;
}

/** The manifest's weight list and the packed float32 values of a trained model. */
export function packWeights(sasrec: Sasrec): { specs: WeightSpec[]; values: Float32Array } {
  const specs = sasrec.model.weights.map((w) => ({ name: w.originalName, shape: w.shape as number[] }));
  const arrays = sasrec.model.getWeights().map((t) => t.dataSync() as Float32Array);
  const values = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let offset = 0;
  for (const a of arrays) {
    values.set(a, offset);
    offset += a.length;
  }
  return { specs, values };
}

/** The k best items of a score row (ids 1..numItems), skipping `exclude` (already seen) and padding id 0. */
export function topItems(scores: Float32Array, k: number, exclude: readonly number[] = []): number[] {
  const skip = new Set(exclude);
  const ids: number[] = [];
  for (let id = 1; id < scores.length; id++) if (!skip.has(id)) ids.push(id);
  ids.sort((a, b) => scores[b] - scores[a] || a - b);
  return ids.slice(0, k);
}
