// A tfjs LayersModel as files in a directory (model.json + weights.bin, tfjs's own layout), with
// node's fs: what `model.save('file://DIR')` writes under tfjs-node, without needing tfjs-node.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';

/** Writes DIR/model.json and DIR/weights.bin. */
export async function saveModelToDir(model: tfl.LayersModel, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await model.save(tf.io.withSaveHandler(async (artifacts) => {
    const data = artifacts.weightData == null ? new ArrayBuffer(0) : tf.io.concatenateArrayBuffers(
      Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData]);
    writeFileSync(join(dir, 'weights.bin'), Buffer.from(data));
    writeFileSync(join(dir, 'model.json'), JSON.stringify({
      modelTopology: artifacts.modelTopology, format: artifacts.format, generatedBy: artifacts.generatedBy,
      convertedBy: artifacts.convertedBy, weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
    }));
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
}

/**
 * Loads DIR/model.json and the weight files its manifest names. Custom layers must be registered
 * first (import the module that defines them, e.g. the zoo's sasrec).
 */
export async function loadModelFromDir(dir: string): Promise<tfl.LayersModel> {
  let json: { modelTopology: object; weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[] };
  try {
    json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  } catch (e) {
    throw new Error(`--model: expected a directory with a tfjs model.json, could not read ${join(dir, 'model.json')}: ${(e as Error).message}`);
  }
  const manifest = json.weightsManifest ?? [];
  const buffers = manifest.flatMap((group) => group.paths.map((p) => {
    const b = readFileSync(join(dir, p));
    return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
  }));
  const weightSpecs = manifest.flatMap((group) => group.weights);
  return tfl.loadLayersModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs, weightData: tf.io.concatenateArrayBuffers(buffers),
  }));
}
