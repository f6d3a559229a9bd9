// A trained mha baseline of `bench ctr` kept on disk (--baseline-dir), so runs that change only the
// CollectiveKV side (pool size, router, user width, training kind: the paper's ablations) reuse it
// instead of training it again. The directory holds baseline.json (what the baseline was trained on
// and with, and its figures) and the final (restored best) weights.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { readJsonFile } from '../../zoo/fileIO';

/** Everything the baseline's training depended on; a saved baseline is reused only when this matches. */
export type CtrBaselineKey = Record<string, unknown>;

export interface SavedCtrBaseline<V> {
  key: CtrBaselineKey;
  /** The baseline's figures as `bench ctr` reports them. */
  variant: V;
  /** When it was saved (ISO time). */
  savedAt: string;
}

const BASELINE_FILE = 'baseline.json';
/** The name (writeWeights / readWeights) of the baseline's final, restored-best weights. */
export const FINAL_WEIGHTS = 'final';

/** The saved baseline in `dir`, or null when there is none. Refuses one trained on or with anything else. */
export function readCtrBaseline<V>(dir: string, key: CtrBaselineKey): SavedCtrBaseline<V> | null {
  const path = join(dir, BASELINE_FILE);
  if (!existsSync(path)) return null;
  const saved = readJsonFile<SavedCtrBaseline<V>>(path, 'a bench ctr baseline');
  const differing = Object.keys({ ...key, ...saved.key }).filter((k) => JSON.stringify(key[k]) !== JSON.stringify(saved.key?.[k]));
  if (differing.length > 0) {
    const show = (v: unknown) => (v === undefined ? 'unset' : JSON.stringify(v));
    throw new Error(`--baseline-dir ${dir}: its baseline was trained with other settings (${differing.map((k) => `${k} ${show(saved.key?.[k])}, here ${show(key[k])}`).join('; ')}); `
      + 'use another directory, or the same settings');
  }
  return saved;
}

/** Writes the baseline's record (after its weights: a directory with a baseline.json is complete). */
export function writeCtrBaseline<V>(dir: string, baseline: SavedCtrBaseline<V>): void {
  atomicWrite(join(dir, BASELINE_FILE), `${JSON.stringify(baseline, null, 2)}\n`);
}

/** writeWeights of a model's current weights (copies, freed after the write). */
export function writeModelWeights(dir: string, name: string, model: { getWeights(): tf.Tensor[] }): void {
  const weights = model.getWeights();
  try {
    writeWeights(dir, name, weights);
  } finally {
    tf.dispose(weights);
  }
}

/** Writes `weights` as DIR/NAME.bin (float32 and int32 values, in order) and DIR/NAME.json (their shapes and dtypes). */
export function writeWeights(dir: string, name: string, weights: readonly tf.Tensor[]): void {
  mkdirSync(dir, { recursive: true });
  const specs = weights.map((w) => ({ shape: w.shape, dtype: w.dtype }));
  const parts = weights.map((w) => {
    if (w.dtype !== 'float32' && w.dtype !== 'int32') throw new Error(`writeWeights: dtype ${w.dtype} is not stored (float32 or int32 expected)`);
    const values = w.dataSync() as Float32Array | Int32Array;
    return Buffer.from(values.buffer, values.byteOffset, values.byteLength);
  });
  atomicWrite(join(dir, `${name}.bin`), Buffer.concat(parts));
  atomicWrite(join(dir, `${name}.json`), JSON.stringify(specs));
}

/** The tensors writeWeights stored under NAME (the caller disposes them). */
export function readWeights(dir: string, name: string): tf.Tensor[] {
  const specs = readJsonFile<{ shape: number[]; dtype: 'float32' | 'int32' }[]>(join(dir, `${name}.json`), 'weight shapes written by bench ctr');
  const bytes = readFileSync(join(dir, `${name}.bin`));
  const expected = specs.reduce((n, s) => n + 4 * s.shape.reduce((a, b) => a * b, 1), 0);
  if (bytes.byteLength !== expected) throw new Error(`${join(dir, `${name}.bin`)}: ${bytes.byteLength} bytes, expected ${expected} (its .json's shapes)`);
  // A copy at offset 0: the typed arrays need aligned, owned memory.
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  let offset = 0;
  return specs.map((s) => {
    const size = s.shape.reduce((a, b) => a * b, 1);
    const values = s.dtype === 'int32' ? new Int32Array(buffer, offset, size) : new Float32Array(buffer, offset, size);
    offset += 4 * size;
    return tf.tensor(values, s.shape, s.dtype);
  });
}

/** Write to a temporary name, then rename: an interrupted run never leaves a truncated file under the real name. */
function atomicWrite(path: string, data: string | Buffer): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data);
  renameSync(tmp, path);
}
