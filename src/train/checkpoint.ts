// Best-weights checkpoint files: DIR/best.json (names, shapes, the epoch and its validation) and
// DIR/best.bin (float32 values, little endian, in manifest order). Node only: fs comes from
// process.getBuiltinModule, so this module stays importable (and unused) in browsers.
import * as tf from '@tensorflow/tfjs-core';

export interface CheckpointInfo {
  epoch: number;
  metric: string;
  value: number;
  validation: Record<string, number> | null;
}

export interface CheckpointManifest extends CheckpointInfo {
  format: 'collectivekv-checkpoint/1';
  weights: { name: string; shape: number[] }[];
}

type NodeFs = typeof import('node:fs');

function nodeFs(what: string): NodeFs {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const fs = proc?.getBuiltinModule?.('node:fs') as NodeFs | undefined;
  if (fs == null) throw new Error(`${what}: checkpoint files need Node.js >= 20.16 (process.getBuiltinModule); omit checkpointDir elsewhere`);
  return fs;
}

/** Writes the weights (float32) and a manifest into `dir`, creating it. */
export function writeCheckpoint(dir: string, weights: readonly tf.Tensor[], names: string[] | undefined, info: CheckpointInfo): void {
  const fs = nodeFs('writeCheckpoint');
  fs.mkdirSync(dir, { recursive: true });
  const arrays = weights.map((w) => (w.dtype === 'float32' ? w.dataSync() as Float32Array : Float32Array.from(w.dataSync())));
  const bytes = Buffer.concat(arrays.map((a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength)));
  const manifest: CheckpointManifest = { format: 'collectivekv-checkpoint/1', ...info,
    weights: weights.map((w, i) => ({ name: names?.[i] ?? `w${i}`, shape: w.shape.slice() })) };
  fs.writeFileSync(`${dir}/best.bin`, bytes);
  fs.writeFileSync(`${dir}/best.json`, `${JSON.stringify(manifest, null, 2)}\n`);
}

/** Reads a checkpoint written by writeCheckpoint: the manifest and one tensor per weight (caller disposes). */
export function readCheckpoint(dir: string): { manifest: CheckpointManifest; weights: tf.Tensor[] } {
  const fs = nodeFs('readCheckpoint');
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(fs.readFileSync(`${dir}/best.json`, 'utf8')) as CheckpointManifest;
  } catch (e) {
    throw new Error(`readCheckpoint: cannot read ${dir}/best.json: ${(e as Error).message}`);
  }
  if (manifest.format !== 'collectivekv-checkpoint/1') {
    throw new Error(`readCheckpoint: ${dir}/best.json: expected format 'collectivekv-checkpoint/1', received ${JSON.stringify(manifest.format)}`);
  }
  const raw = fs.readFileSync(`${dir}/best.bin`);
  const all = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength));
  const expected = manifest.weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1), 0);
  if (expected !== all.length) throw new Error(`readCheckpoint: ${dir}/best.bin holds ${all.length} floats, the manifest expects ${expected}`);
  let offset = 0;
  const weights = manifest.weights.map((w) => {
    const n = w.shape.reduce((a, b) => a * b, 1);
    const t = tf.tensor(all.subarray(offset, offset + n), w.shape, 'float32');
    offset += n;
    return t;
  });
  return { manifest, weights };
}
