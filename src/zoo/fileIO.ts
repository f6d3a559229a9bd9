// `file://` save and load for tfjs in plain Node (tfjs-node registers these; the wasm and cpu
// backends do not): `model.save('file://DIR')` writes DIR/model.json + DIR/weights.bin in tfjs's
// own layout, and `tf.loadLayersModel('file://DIR/model.json')` reads them back.
import * as tf from '@tensorflow/tfjs-core';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

const SCHEME = 'file://';
let registered = false;

/** Registers the file:// routers once, unless another handler (tfjs-node) already serves file://. */
export function registerFileIO(): void {
  if (registered) return;
  registered = true;
  // tfjs types routers as returning IOHandler, but its router registry skips null (not mine).
  if (tf.io.getSaveHandlers(`${SCHEME}probe`).length === 0) {
    tf.io.registerSaveRouter((url) => (typeof url === 'string' && url.startsWith(SCHEME) ? saveHandler(url.slice(SCHEME.length)) : (null as unknown as tf.io.IOHandler)));
  }
  if (tf.io.getLoadHandlers(`${SCHEME}probe/model.json`).length === 0) {
    tf.io.registerLoadRouter((url) => (typeof url === 'string' && url.startsWith(SCHEME) ? loadHandler(url.slice(SCHEME.length)) : (null as unknown as tf.io.IOHandler)));
  }
}

function saveHandler(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts) => {
      mkdirSync(dir, { recursive: true });
      const parts = artifacts.weightData == null ? [] : Array.isArray(artifacts.weightData) ? artifacts.weightData : [artifacts.weightData];
      writeFileSync(join(dir, 'weights.bin'), Buffer.from(tf.io.concatenateArrayBuffers(parts)));
      writeFileSync(join(dir, 'model.json'), JSON.stringify({
        modelTopology: artifacts.modelTopology, format: artifacts.format, generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy, weightsManifest: [{ paths: ['weights.bin'], weights: artifacts.weightSpecs ?? [] }],
        userDefinedMetadata: artifacts.userDefinedMetadata,
      }));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
  };
}

interface ModelJson {
  modelTopology: object;
  format?: string;
  userDefinedMetadata?: { [key: string]: {} };
  weightsManifest?: { paths: string[]; weights: tf.io.WeightsManifestEntry[] }[];
}

function loadHandler(path: string): tf.io.IOHandler {
  return {
    load: async () => {
      const json = readJsonFile<ModelJson>(path, 'a tfjs model.json');
      const dir = dirname(path);
      const manifest = json.weightsManifest ?? [];
      const buffers = manifest.flatMap((group) => group.paths.map((p) => {
        const b = readFileSync(join(dir, p));
        return b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;
      }));
      return { modelTopology: json.modelTopology, format: json.format, weightSpecs: manifest.flatMap((g) => g.weights),
        weightData: tf.io.concatenateArrayBuffers(buffers), userDefinedMetadata: json.userDefinedMetadata };
    },
  };
}

/** Parses a JSON file; the error names the file and what was expected there. */
export function readJsonFile<T>(path: string, expected: string): T {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`cannot read ${path} (expected ${expected}): ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch (e) {
    throw new Error(`${path}: not valid JSON (expected ${expected}): ${(e as Error).message}`);
  }
}
