// The cache API agrees with the full forward at inference: prefill + decode, appends, padding,
// causal offsets, softmax and HSTU attention, both layers and the share modes.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';
import { CollectiveKVAttention, MultiHeadAttention, KVCacheBlock, type CacheValueFormat } from '../../layers/index';
import type { AttentionLayerBase } from '../../layers/index';

const TOL = 2e-5;
type Make = (attention: 'softmax' | 'hstu', causal: boolean) => AttentionLayerBase;

const variants: [string, Make][] = [
  ['MultiHeadAttention', (attention, causal) => new MultiHeadAttention({ numHeads: 2, keyDim: 4, valueDim: 3, attention, causal })],
  ['CollectiveKV kv', (attention, causal) => new CollectiveKVAttention({ numHeads: 2, keyDim: 4, valueDim: 3, poolSize: 16, userDim: 2, attention, causal })],
  ['CollectiveKV k', (attention, causal) => new CollectiveKVAttention({ numHeads: 2, keyDim: 4, poolSize: 16, share: 'k', attention, causal })],
  ['CollectiveKV v', (attention, causal) => new CollectiveKVAttention({ numHeads: 2, keyDim: 4, poolSize: 16, share: 'v', attention, causal })],
];

/** [B=2, T=6]: the second user has two padding positions at the end. */
function padMask(): tf.Tensor {
  return tf.tensor2d([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]);
}

describeEachBackend('layers cache API', () => {
  for (const [name, make] of variants) {
    for (const attention of ['softmax', 'hstu'] as const) {
      test(`${name} ${attention}: self-attention prefill + decode equals the full forward (causal, padded)`, () => {
        const layer = make(attention, true);
        const x = randomTensor([2, 6, 5], 1);
        const mask = padMask();
        const full = layer.apply([x, x, mask]) as tf.Tensor;
        const block = layer.computeCache(x, mask);
        const cached = layer.attendCached(x, block);
        expect(maxAbsDiff(cached, full)).toBeLessThan(TOL);
        // Decode only the last position: the causal offset puts it at the end of the block.
        const last = tf.slice(x, [0, 5, 0], [-1, 1, -1]);
        const one = layer.attendCached(last, block);
        const fullLast = tf.slice(full, [0, 5, 0], [-1, 1, -1]);
        expect(maxAbsDiff(one, fullLast)).toBeLessThan(TOL);
        tf.dispose([x, mask, full, cached, last, one, fullLast]);
        block.dispose();
        layer.dispose();
      });

      test(`${name} ${attention}: target attention prefill + decode equals the full forward (padded)`, () => {
        const layer = make(attention, false);
        const q = randomTensor([2, 3, 7], 2);
        const kv = randomTensor([2, 6, 5], 3);
        const mask = padMask();
        const full = layer.apply([q, kv, mask]) as tf.Tensor;
        expect(full.shape).toEqual([2, 3, 7]);
        const block = layer.computeCache(kv, mask);
        const cached = layer.attendCached(q, block);
        expect(maxAbsDiff(cached, full)).toBeLessThan(TOL);
        tf.dispose([q, kv, mask, full, cached]);
        block.dispose();
        layer.dispose();
      });

      test(`${name} ${attention}: appendToCache then attendCached equals recomputing on the full history`, () => {
        const layer = make(attention, true);
        const x = randomTensor([2, 6, 5], 4);
        const mask = padMask();
        (layer.apply(x) as tf.Tensor).dispose(); // builds
        const head = layer.computeCache(tf.slice(x, [0, 0, 0], [-1, 4, -1]), tf.slice(mask, [0, 0], [-1, 4]));
        const grown = layer.appendToCache(head, tf.slice(x, [0, 4, 0], [-1, 2, -1]), tf.slice(mask, [0, 4], [-1, 2]));
        expect(head.length).toBe(4); // the old block is left intact
        expect(grown.length).toBe(6);
        const fresh = layer.computeCache(x, mask);
        for (const [a, b] of fresh.tensors().map((t, i) => [t, grown.tensors()[i]] as const)) {
          expect(b.dtype).toBe(a.dtype);
          expect(maxAbsDiff(a, b)).toBeLessThan(TOL);
        }
        const q = tf.slice(x, [0, 4, 0], [-1, 2, -1]);
        const full = layer.apply([x, x, mask]) as tf.Tensor;
        const decoded = layer.attendCached(q, grown);
        expect(maxAbsDiff(decoded, tf.slice(full, [0, 4, 0], [-1, 2, -1]))).toBeLessThan(TOL);
        tf.dispose([x, mask, q, full, decoded]);
        [head, grown, fresh].forEach((b) => b.dispose());
        layer.dispose();
      });
    }
  }

  test('CollectiveKV blocks are compressed: int32 index + user part per shared side, poolSize carried', () => {
    const layer = new CollectiveKVAttention({ numHeads: 2, keyDim: 4, poolSize: 16, userDim: 2, share: 'k' });
    const x = randomTensor([2, 6, 5], 5);
    (layer.apply(x) as tf.Tensor).dispose();
    const block = layer.computeCache(x);
    expect(block.isCompressed).toBe(true);
    expect(block.keys.kind).toBe('pooled');
    expect(block.indexK?.dtype).toBe('int32');
    expect(block.indexK?.shape).toEqual([2, 6]);
    expect(block.userK?.shape).toEqual([2, 6, 2]);
    expect(block.keys.kind === 'pooled' && block.keys.poolSize).toBe(16);
    expect(block.v?.shape).toEqual([2, 6, 8]);
    expect(Array.from(block.mask.dataSync())).toEqual(new Array(12).fill(1));
    block.dispose();
    x.dispose();
    layer.dispose();
  });

  test('bytesPerToken at d=64 and d=256, userDim 1, pool 1024: 12 B fp32, 8 B fp16 (the default), 6 B int8; full K/V 8d, 4d, 2d', () => {
    const x = randomTensor([1, 3, 8], 6);
    const sizes = (layer: AttentionLayerBase): number[] => {
      (layer.apply(x) as tf.Tensor).dispose();
      const block: KVCacheBlock = layer.computeCache(x);
      const out = [block.bytesPerToken('fp32'), block.bytesPerToken('fp16'), block.bytesPerToken('int8'), block.bytesPerToken()];
      expect(() => block.bytesPerToken('bf16' as CacheValueFormat)).toThrow(/KVCacheBlock\.bytesPerToken: argument 'format' must be 'fp32', 'fp16' or 'int8', received "bf16"/);
      block.dispose();
      layer.dispose();
      return out;
    };
    for (const d of [64, 256]) {
      expect(sizes(new CollectiveKVAttention({ numHeads: 4, keyDim: d / 4, userDim: 1, poolSize: 1024 }))).toEqual([12, 8, 6, 8]);
      expect(sizes(new MultiHeadAttention({ numHeads: 4, keyDim: d / 4 }))).toEqual([8 * d, 4 * d, 2 * d, 4 * d]);
    }
    x.dispose();
  });
});
