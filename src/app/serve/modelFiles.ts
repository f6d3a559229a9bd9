// Saving and loading a zoo SASRec as a directory in tfjs's layers-model format (model.json +
// weights.bin), plus the tiny synthetic demo model `serve --demo-model` trains at start.
//
// Saving goes through the zoo's file:// handler (src/zoo/fileIO.ts), so the files are the
// ones tfjs-node's `model.save('file://DIR')` writes and tf.loadLayersModel reads. SASRec's serving path needs its
// parts (layers by role), not just a LayersModel, so loading rebuilds the model from the options
// stored in model.json's userDefinedMetadata and sets the weights in the saved order.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { generateSynthetic, leaveOneOut, useFastEmbeddingGradients } from '../../internal';
import { buildSasrec, type Sasrec } from '../../zoo/sequential/sasrec';
import { type SasrecOptions } from '../../zoo/sequential/blocks';
import { fitSasrec } from '../../zoo/sequential/sasrecTraining';
import { registerFileIO } from '../../zoo/fileIO';

const FORMAT = 'collectivekv-sasrec/1';

interface SavedMetadata {
  collectivekv?: { format?: string; options?: SasrecOptions };
}

/** Writes DIR/model.json and DIR/weights.bin, with the SASRec options in userDefinedMetadata. */
export async function saveSasrecModel(sasrec: Sasrec, dir: string): Promise<void> {
  const { seed: _seed, ...options } = sasrec.options;
  void _seed;
  const metadata: SavedMetadata = { collectivekv: { format: FORMAT, options } };
  sasrec.model.setUserDefinedMetadata(metadata as unknown as { [key: string]: {} });
  registerFileIO();
  await sasrec.model.save(`file://${dir}`);
}

/** Loads a directory written by saveSasrecModel. Errors name the file and what is wrong. */
export function loadSasrecModel(dir: string): Sasrec {
  const path = join(dir, 'model.json');
  let json: { weightsManifest?: Array<{ paths: string[]; weights: tf.io.WeightsManifestEntry[] }>; userDefinedMetadata?: SavedMetadata };
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`--model: cannot read ${path}: ${(e as Error).message}`);
  }
  const meta = json.userDefinedMetadata?.collectivekv;
  if (meta?.format !== FORMAT || meta.options === undefined) {
    throw new Error(`--model: ${path} has no collectivekv SASRec options (userDefinedMetadata.collectivekv, format ${FORMAT}); save models with saveSasrecModel`);
  }
  const manifest = json.weightsManifest?.[0];
  if (!manifest || manifest.paths.length !== 1) throw new Error(`--model: ${path} must list one weights file`);
  const buffer = readFileSync(join(dir, manifest.paths[0]));
  const sasrec = buildSasrec(meta.options);
  const named = tf.io.decodeWeights(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength), manifest.weights);
  try {
    const values = manifest.weights.map((w) => named[w.name]);
    if (values.length !== sasrec.model.weights.length) {
      throw new Error(`--model: ${path} holds ${values.length} weights, the model has ${sasrec.model.weights.length}`);
    }
    sasrec.model.setWeights(values);
  } finally {
    tf.dispose(Object.values(named));
  }
  return sasrec;
}

export interface DemoModelOptions {
  numItems?: number;
  maxLength?: number;
  attention?: 'mha' | 'collectivekv';
  epochs?: number;
  log?: (line: string) => void;
}

/** A tiny SASRec trained for a few seconds on the seeded synthetic data (for trying `serve`). */
export function trainDemoModel(options: DemoModelOptions = {}): Sasrec {
  const numItems = options.numItems ?? 200;
  const data = generateSynthetic({ numUsers: 400, numItems, minLength: 8, maxLength: 30, seed: 2026 });
  const sasrec = buildSasrec({ numItems, maxLength: options.maxLength ?? 50, hiddenDim: 32, numBlocks: 2, numHeads: 2,
    dropout: 0.1, attention: options.attention ?? 'collectivekv', collective: { poolSize: 256, userDim: 1 }, seed: 1 });
  useFastEmbeddingGradients();
  const result = fitSasrec(sasrec, leaveOneOut(data), { maxEpochs: options.epochs ?? 2, batchSize: 64, patience: 1 });
  options.log?.(`demo model: SASRec (${sasrec.options.attention}) trained ${result.epochs} epochs on synthetic data, validation NDCG@10 ${result.bestValidationNdcg10.toFixed(3)}`);
  return sasrec;
}
