import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { KVCacheBlock } from '../../layers/KVCacheBlock';
import { fromBlocks, fromBlocksAsync, fromBlocksBatch, fromBlocksBatchAsync, toBlocks } from '../../src/cache/blocks';
import { decodeCache, encodeCache } from '../../src/cache/codec';
import { modelFingerprint } from '../../src/cache/fingerprint';
import { rng } from './helpers';

tf.env().set('IS_TEST', true); // no tfjs-node banner

const FP = modelFingerprint({ m: 1 }, []);

beforeAll(async () => {
  await tf.setBackend('cpu');
});

/** Two layers for batch 3, length 5: layer 0 pooled K/V (du 2), layer 1 pooled K, full V (width 4). */
function makeBlocks(mask: number[][]): KVCacheBlock[] {
  const next = rng(11);
  const [b, t] = [mask.length, mask[0].length];
  const floats = (w: number) => tf.tensor3d(Float32Array.from({ length: b * t * w }, () => next() * 2 - 1), [b, t, w]);
  const index = (m: number) => tf.tensor2d(Int32Array.from({ length: b * t }, () => Math.floor(next() * m)), [b, t], 'int32');
  const maskT = () => tf.tensor2d(mask.flat(), [b, t]);
  return [
    new KVCacheBlock({ kind: 'pooled', index: index(300), user: floats(2), poolSize: 300 }, { kind: 'pooled', index: index(300), user: floats(2), poolSize: 300 }, maskT()),
    new KVCacheBlock({ kind: 'pooled', index: index(16), user: floats(1), poolSize: 16 }, { kind: 'full', values: floats(4) }, maskT()),
  ];
}

/** Tensor contents with padding positions zeroed, for comparison. */
function masked(t: tf.Tensor, mask: tf.Tensor): number[] {
  return tf.tidy(() => {
    const m = tf.greater(t.rank === 3 ? tf.expandDims(mask, 2) : mask, 0.5);
    return Array.from(tf.where(tf.broadcastTo(m, t.shape), t, tf.zerosLike(t)).dataSync());
  });
}

describe('KVCacheBlock <-> UserCache', () => {
  const MASK = [[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]];

  it('async reads (fromBlocksAsync, fromBlocksBatchAsync) equal the sync ones', async () => {
    const blocks = makeBlocks(MASK);
    const users = fromBlocksBatch(blocks);
    expect(await fromBlocksBatchAsync(blocks)).toEqual(users);
    expect(await fromBlocksAsync(blocks, 0)).toEqual(users[0]);
    await expect(fromBlocksAsync(blocks, 3)).rejects.toThrow(/fromBlocksAsync: argument 'batchRow' must be an integer in \[0, 3\), received 3/);
    blocks.forEach((b) => b.dispose());
  });

  it('round trips left-padded blocks through UserCache and bytes', () => {
    const before = tf.memory().numTensors;
    const blocks = makeBlocks(MASK);
    const users = fromBlocksBatch(blocks);
    expect(users.map((u) => u.length)).toEqual([3, 5, 1]);
    expect(fromBlocks(blocks, 2)).toEqual(users[2]);
    const viaBytes = users.map((u) => decodeCache(encodeCache(u, { fingerprint: FP, dtype: 'fp32' })).cache);
    const back = toBlocks(viaBytes);
    expect(back).toHaveLength(2);
    back.forEach((blk, l) => {
      expect(blk.mask.arraySync()).toEqual(MASK);
      expect(blk.keys.kind).toBe(blocks[l].keys.kind);
      const pairs = blocks[l].tensors().map((t, i) => [t, blk.tensors()[i]]);
      for (const [a, b] of pairs) {
        expect(b.shape).toEqual(a.shape);
        expect(b.dtype).toBe(a.dtype);
        expect(masked(b, blk.mask)).toEqual(masked(a, blocks[l].mask));
      }
    });
    const idx = back[1].indexK;
    expect(idx && back[1].keys.kind === 'pooled' ? back[1].keys.poolSize : 0).toBe(16);
    [...blocks, ...back].forEach((b) => b.dispose());
    expect(tf.memory().numTensors).toBe(before);
  });

  it('pads on the right when asked, and to a minimum length', () => {
    const blocks = makeBlocks(MASK);
    const back = toBlocks(fromBlocksBatch(blocks), { pad: 'right', length: 7 });
    expect(back[0].mask.arraySync()).toEqual([[1, 1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0, 0]]);
    const userRow2 = fromBlocks(back, 2);
    expect(userRow2).toEqual(fromBlocks(blocks, 2));
    [...blocks, ...back].forEach((b) => b.dispose());
  });

  it('refuses inconsistent input with errors naming the argument', () => {
    const blocks = makeBlocks(MASK);
    expect(() => fromBlocks(blocks, 3)).toThrow(/argument 'batchRow' must be an integer in \[0, 3\), received 3/);
    expect(() => fromBlocks([], 0)).toThrow(/argument 'blocks' must be a non-empty array/);
    const other = makeBlocks([[1, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]]);
    expect(() => fromBlocks([blocks[0], other[1]], 0)).toThrow(/blocks\[1\]\.mask differs from blocks\[0\]\.mask at row 0, position 0/);
    const users = fromBlocksBatch(blocks);
    const foreign = fromBlocksBatch(other.slice(0, 1));
    expect(() => toBlocks([users[0], foreign[0]])).toThrow(/toBlocks: caches\[1\] must have the layout of caches\[0\]/);
    expect(() => toBlocks(users, { pad: 'middle' as 'left' })).toThrow(/options\.pad must be 'left' or 'right', received middle/);
    [...blocks, ...other].forEach((b) => b.dispose());
  });
});
