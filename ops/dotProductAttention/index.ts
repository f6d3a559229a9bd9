import * as tf from '@tensorflow/tfjs-core';
import { batchedMatMul } from '../batchedMatMul/index';
import { ArgumentError, assertRank, describeShape, dim } from '../util/validate';

export type AttentionKind = 'softmax' | 'hstu';

export interface AttentionOptions {
  numHeads: number;
  /** 'softmax': scaled dot product. 'hstu': SiLU(scores) divided by the number of valid keys. */
  attention?: AttentionKind;
  /** Each query t may see keys i <= t + (Tk - Tq): queries are the last Tq positions of the keys. */
  causal?: boolean;
  /** [B, Tk], 1 for a valid key, 0 for padding. */
  mask?: tf.Tensor;
  /** Defaults to 1 / sqrt(keyDim per head). */
  scale?: number;
  /** Added to the scaled scores before the weights; broadcastable to [B, H, Tq, Tk] (a relative position bias). */
  scoreBias?: tf.Tensor;
  /** Applied to the attention weights [B, H, Tq, Tk] (dropout in training). */
  transformWeights?: (weights: tf.Tensor) => tf.Tensor;
}

/**
 * Multi-head attention on projected inputs, heads split after projection:
 * q [B, Tq, H*dk], k [B, Tk, H*dk], v [B, Tk, H*dv] -> [B, Tq, H*dv].
 * Queries with no valid key get a zero output. This is the attention of both layers and the
 * reference semantics of `collectiveAttention`. Its products are `batchedMatMul`'s (on wasm
 * several times faster than tf.matMul's for attention's batches of small matrices).
 */
export function dotProductAttention(q: tf.Tensor, k: tf.Tensor, v: tf.Tensor, options: AttentionOptions): tf.Tensor {
  const op = 'dotProductAttention';
  assertRank(op, 'query', q, [3]);
  assertRank(op, 'key', k, [3]);
  assertRank(op, 'value', v, [3]);
  const [batch, tq, dq] = [dim(q, 0), dim(q, 1), dim(q, 2)];
  const [tk, dkTotal, dvTotal] = [dim(k, 1), dim(k, 2), dim(v, 2)];
  const h = options.numHeads;
  if (dq !== dkTotal || k.shape[0] !== batch || v.shape[0] !== batch || v.shape[1] !== tk) {
    throw new ArgumentError(op, 'key', `compatible with query ${describeShape(q.shape)} and value ${describeShape(v.shape)}`,
      `shape ${describeShape(k.shape)}`);
  }
  if (dq % h !== 0 || dvTotal % h !== 0) {
    throw new ArgumentError(op, 'numHeads', `a divisor of the key width ${dq} and value width ${dvTotal}`, String(h));
  }
  const dk = dq / h;
  const dv = dvTotal / h;
  const scale = options.scale ?? 1 / Math.sqrt(dk);
  return tf.tidy(() => {
    // Heads split to [B, H, T, width]; keys straight to [B, H, dk, Tk] (one transpose, not two).
    const split = (t: tf.Tensor, len: number, width: number, perm = [0, 2, 1, 3]) =>
      tf.transpose(tf.reshape(t, [batch, len, h, width]), perm);
    const scaled = tf.mul(batchedMatMul(split(q, tq, dk), split(k, tk, dk, [0, 2, 3, 1])), scale);
    const scores = options.scoreBias == null ? scaled : tf.add(scaled, options.scoreBias);
    const valid = validKeys(batch, tq, tk, options);
    let weights = attentionWeights(scores, valid, options.attention ?? 'softmax');
    if (options.transformWeights) weights = options.transformWeights(weights);
    const out = batchedMatMul(weights, split(v, tk, dv));
    return tf.reshape(tf.transpose(out, [0, 2, 1, 3]), [batch, tq, h * dv]);
  });
}

/** [B or 1, 1, Tq or 1, Tk] float 0/1, or null when every key is valid for every query. */
export function validKeys(batch: number, tq: number, tk: number, options: Pick<AttentionOptions, 'mask' | 'causal'>): tf.Tensor | null {
  let valid: tf.Tensor | null = null;
  if (options.mask != null) {
    if (options.mask.rank !== 2 || options.mask.shape[0] !== batch || options.mask.shape[1] !== tk) {
      throw new ArgumentError('attention', 'mask', `of shape ${describeShape([batch, tk])}`, `shape ${describeShape(options.mask.shape)}`);
    }
    valid = tf.reshape(tf.cast(options.mask, 'float32'), [batch, 1, 1, tk]);
  }
  if (options.causal) {
    const offset = tk - tq;
    const rows = tf.reshape(tf.range(0, tq, 1, 'int32'), [tq, 1]);
    const cols = tf.reshape(tf.range(0, tk, 1, 'int32'), [1, tk]);
    const band = tf.reshape(tf.cast(tf.lessEqual(cols, tf.add(rows, offset)), 'float32'), [1, 1, tq, tk]);
    valid = valid == null ? band : tf.mul(valid, band);
  }
  return valid;
}

function attentionWeights(scores: tf.Tensor, valid: tf.Tensor | null, kind: AttentionKind): tf.Tensor {
  if (kind === 'hstu') {
    const act = tf.mul(scores, tf.sigmoid(scores));
    if (valid == null) return tf.div(act, dim(scores, 3));
    // Valid keys per query, counted on valid's own (broadcast) shape: no pass over [B, H, Tq, Tk].
    const count = tf.maximum(tf.sum(valid, -1, true), 1);
    return tf.mul(act, tf.div(valid, count));
  }
  if (valid == null) return tf.softmax(scores);
  const masked = tf.add(scores, tf.mul(tf.sub(1, valid), -1e9));
  return tf.mul(tf.softmax(masked), valid);
}
