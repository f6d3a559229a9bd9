import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../../util/backends';
import { readCtrBaseline, readWeights, writeCtrBaseline, writeWeights } from '../../../src/app/bench/ctrBaseline';

beforeAll(() => useBackend('cpu'));

describe('bench ctr baseline files', () => {
  let dir: string;
  beforeEach(() => { dir = mkdtempSync(join(tmpdir(), 'ckv-baseline-files-')); });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('weights round trip bit-exact (float32 and int32, any shapes); a truncated file is an error naming it', () => {
    const weights = [tf.tensor2d([[1.5, -2.25e-8], [3.4e38, Number.NaN]]), tf.tensor1d([7, -3], 'int32'), tf.scalar(0.1), tf.zeros([0, 4])];
    writeWeights(dir, 'w', weights);
    const back = readWeights(dir, 'w');
    back.forEach((t, i) => {
      expect(t.shape).toEqual(weights[i].shape);
      expect(t.dtype).toBe(weights[i].dtype);
      expect(Array.from(t.dataSync())).toEqual(Array.from(weights[i].dataSync()));
    });
    writeFileSync(join(dir, 'w.bin'), Buffer.alloc(8));
    expect(() => readWeights(dir, 'w')).toThrow(`${join(dir, 'w.bin')}: 8 bytes, expected 28 (its .json's shapes)`);
    tf.dispose([...weights, ...back]);
  });

  it('a record is reused only under the same key', () => {
    expect(readCtrBaseline(dir, { a: 1 })).toBeNull();
    writeCtrBaseline(dir, { key: { a: 1, b: 'x' }, variant: { auc: 0.7 }, savedAt: 'now' });
    expect(readCtrBaseline(dir, { a: 1, b: 'x' })).toMatchObject({ variant: { auc: 0.7 }, savedAt: 'now' });
    expect(() => readCtrBaseline(dir, { a: 2, b: 'x', c: true })).toThrow(`--baseline-dir ${dir}: its baseline was trained with other settings (a 1, here 2; c unset, here true)`);
  });
});
