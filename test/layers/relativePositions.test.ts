// The relative position bias (relativePositions, HSTU's): it enters the scores by slot distance as a
// hand-built bias does, cached decode still equals the full forward, its gradient matches finite
// differences, and it survives a config round trip.
import * as tf from '@tensorflow/tfjs-core';
import { describeEachBackend, maxAbsDiff, randomTensor } from '../util/backends';
import { CollectiveKVAttention, MultiHeadAttention } from '../../layers/index';
import type { AttentionLayerBase } from '../../layers/index';
import { dotProductAttention } from '../../ops/index';
import { setWeight, weightBySuffix, weightGradError } from './helpers';

const TOL = 2e-5;
const R = 3;
const HEADS = 2;

function makeLayer(kind: 'mha' | 'collectivekv', causal: boolean): AttentionLayerBase {
  const common = { numHeads: HEADS, keyDim: 4, valueDim: 3, attention: 'hstu' as const, causal, relativePositions: R };
  return kind === 'mha' ? new MultiHeadAttention(common) : new CollectiveKVAttention({ ...common, poolSize: 16, userDim: 2, poolSeed: 5 });
}

/** Builds the layer on x and gives its bias distinct values (the initializer's zeros would hide a wrong index). */
function withRandomBias(layer: AttentionLayerBase, query: tf.Tensor, source?: tf.Tensor): void {
  (layer.apply(source == null ? query : [query, source]) as tf.Tensor).dispose();
  expect(weightBySuffix(layer, 'relative_position_bias').shape).toEqual([HEADS, 2 * R - 1]);
  setWeight(layer, 'relative_position_bias', Array.from({ length: HEADS * (2 * R - 1) }, (_, i) => Math.sin(3 * i + 1)));
}

/** [1, H, Tq, Tk] written out with loops: bias[h, clip(query slot - key slot)] with query slots the last Tq. */
function referenceBias(layer: AttentionLayerBase, tq: number, tk: number): tf.Tensor {
  const w = weightBySuffix(layer, 'relative_position_bias').read().arraySync() as number[][];
  const out: number[][][][] = [w.map((row) => Array.from({ length: tq }, (_, i) => Array.from({ length: tk }, (_, j) => {
    const distance = Math.min(R - 1, Math.max(-(R - 1), i + (tk - tq) - j));
    return row[distance + R - 1];
  })))];
  return tf.tensor4d(out);
}

/** [B=2, T=6]: the second user has two padding positions. */
function padMask(): tf.Tensor {
  return tf.tensor2d([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]]);
}

describeEachBackend('relative position bias', () => {
  test('MultiHeadAttention: equals attention with the hand-built bias, causal and target attention', () => {
    for (const causal of [true, false]) {
      const layer = makeLayer('mha', causal);
      const q = randomTensor([2, causal ? 6 : 2, 5], 1);
      const kv = causal ? q : randomTensor([2, 6, 5], 2);
      withRandomBias(layer, q, causal ? undefined : kv);
      const mask = padMask();
      const got = layer.apply([q, kv, mask]) as tf.Tensor;
      const want = tf.tidy(() => {
        const wts = new Map(layer.weights.map((w) => [w.originalName.split('/').pop() as string, w.read()]));
        const dense = (x: tf.Tensor, k: string, b: string) => tf.add(tf.matMul(tf.reshape(x, [-1, x.shape[2] as number]), wts.get(k) as tf.Tensor2D), wts.get(b) as tf.Tensor);
        const [tq, tk] = [q.shape[1] as number, kv.shape[1] as number];
        const split = (t: tf.Tensor, len: number) => tf.reshape(t, [2, len, -1]);
        const attended = dotProductAttention(split(dense(q, 'query_kernel', 'query_bias'), tq), split(dense(kv, 'key_kernel', 'key_bias'), tk),
          split(dense(kv, 'value_kernel', 'value_bias'), tk), { numHeads: HEADS, attention: 'hstu', causal, mask, scoreBias: referenceBias(layer, tq, tk) });
        return tf.reshape(dense(attended, 'output_kernel', 'output_bias'), got.shape);
      });
      expect(maxAbsDiff(got, want)).toBeLessThan(TOL);
      // and the bias matters: zeroing it changes the output
      setWeight(layer, 'relative_position_bias', new Array(HEADS * (2 * R - 1)).fill(0));
      const unbiased = layer.apply([q, kv, mask]) as tf.Tensor;
      expect(maxAbsDiff(unbiased, got)).toBeGreaterThan(1e-3);
      tf.dispose([q, kv, mask, got, want, unbiased]);
      layer.dispose();
    }
  });

  for (const kind of ['mha', 'collectivekv'] as const) {
    test(`${kind}: prefill + decode with the bias equals the full forward (causal, padded)`, () => {
      const layer = makeLayer(kind, true);
      const x = randomTensor([2, 6, 5], 3);
      withRandomBias(layer, x);
      const mask = padMask();
      const full = layer.apply([x, mask]) as tf.Tensor;
      const [headX, headMask] = [tf.slice(x, [0, 0, 0], [-1, 5, -1]), tf.slice(mask, [0, 0], [-1, 5])];
      const [last, lastMask] = [tf.slice(x, [0, 5, 0], [-1, 1, -1]), tf.slice(mask, [0, 5], [-1, 1])];
      const fullLast = tf.slice(full, [0, 5, 0], [-1, 1, -1]);
      const before = tf.memory().numTensors;
      const head = layer.computeCache(headX, headMask);
      const grown = layer.appendToCache(head, last, lastMask);
      const decoded = layer.attendCached(last, grown);
      expect(maxAbsDiff(decoded, fullLast)).toBeLessThan(TOL);
      const all = layer.attendCached(x, grown);
      expect(maxAbsDiff(all, full)).toBeLessThan(TOL);
      tf.dispose([decoded, all]);
      head.dispose();
      grown.dispose();
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([headX, headMask, last, lastMask, fullLast]);
      tf.dispose([x, mask, full]);
      layer.dispose();
    });

    test(`${kind}: d/d relative_position_bias matches finite differences`, () => {
      const layer = makeLayer(kind, true);
      const x = randomTensor([2, 5, 5], 4);
      withRandomBias(layer, x);
      const probe = randomTensor([2, 5, 5], 5);
      const mask = tf.tensor2d([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1]]);
      const loss = () => tf.sum(tf.mul(layer.apply([x, mask]) as tf.Tensor, probe)) as tf.Scalar;
      expect(weightGradError(layer, 'relative_position_bias', loss)).toBeLessThan(2e-3);
      tf.dispose([x, probe, mask]);
      layer.dispose();
    });
  }

  test('the option round-trips through getConfig and is validated', () => {
    const layer = makeLayer('collectivekv', true);
    expect(layer.getConfig().relativePositions).toBe(R);
    expect(new MultiHeadAttention({ numHeads: 1, keyDim: 2 }).getConfig().relativePositions).toBeUndefined();
    expect(() => new MultiHeadAttention({ numHeads: 1, keyDim: 2, relativePositions: -1 })).toThrow(/relativePositions/);
    expect(() => new MultiHeadAttention({ numHeads: 1, keyDim: 2, relativePositions: 1.5 })).toThrow(/relativePositions/);
  });
});
