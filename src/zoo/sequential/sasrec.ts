// SASRec (Kang & McAuley, 2018) on collectivekv's attention layers: the zoo's reference
// next-item model. `attention: 'mha' | 'collectivekv'` is the single layer swap (blocks.ts, makeAttention).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { KVCacheBlock, StreamDropout, dim, type CacheValueFormat } from '../../internal';
import {
  AttentionLayer, LayerNorm, PointwiseDense, ResolvedSasrecOptions, SasrecOptions, SequenceInputParts, makeAttention,
  resolveSasrecOptions, seedStream, sequenceInputs,
} from './blocks';

interface SasrecBlock {
  /** Normalizes the query side only (SASRec's reference: Q = LN(x), K/V from x). */
  queryNorm: tfl.layers.Layer;
  attention: AttentionLayer;
  residual1: tfl.layers.Layer;
  norm1: tfl.layers.Layer;
  ffnIn: tfl.layers.Layer;
  ffnDropout: tfl.layers.Layer;
  ffnOut: tfl.layers.Layer;
  outDropout: tfl.layers.Layer;
  residual2: tfl.layers.Layer;
}

/** The layers of a SASRec model, so that training, the full forward and the cached decode share them. */
export interface SasrecParts extends SequenceInputParts {
  blocks: SasrecBlock[];
  finalNorm: tfl.layers.Layer;
}

export interface Sasrec {
  /** ids [B, maxLength] int32 (0 = padding, left-padded) -> hidden states [B, maxLength, hiddenDim]. */
  model: tfl.LayersModel;
  /** The model's layers, shared by training, the full forward and the cached decode. @internal */
  parts: SasrecParts;
  options: ResolvedSasrecOptions;
}

// ---------------------------------------------------------------- builder

/**
 * SASRec as a tfjs-layers functional model: item embedding + learned positions, then per block
 * causal self-attention (padding mask as the third input), residual + LayerNorm, point-wise
 * feed-forward, residual + LayerNorm. Scores are dot products with the (shared) item embedding table.
 */
export function buildSasrec(options: SasrecOptions): Sasrec {
  const o = resolveSasrecOptions(options);
  const parts = makeParts(o);
  const ids = tfl.input({ shape: [o.maxLength], dtype: 'int32', name: 'item_ids' });
  const hidden = forward(parts, ids, {});
  const model = tfl.model({ inputs: ids, outputs: hidden, name: `sasrec_${o.attention}` });
  return { model, parts, options: o };
}

function makeParts(o: ResolvedSasrecOptions): SasrecParts {
  const d = o.hiddenDim;
  const { nextSeed, kernel } = seedStream(o.seed);
  const blocks: SasrecBlock[] = [];
  for (let b = 0; b < o.numBlocks; b++) {
    blocks.push({
      queryNorm: new LayerNorm({ width: d, name: `block${b}_query_norm` }),
      attention: makeAttention(o, b, kernel()),
      residual1: tfl.layers.add({ name: `block${b}_residual1` }),
      norm1: new LayerNorm({ width: d, name: `block${b}_norm1` }),
      ffnIn: new PointwiseDense({ units: d, activation: 'relu', kernelInitializer: kernel(), name: `block${b}_ffn_in` }),
      ffnDropout: new StreamDropout({ rate: o.dropout, seed: nextSeed(), name: `block${b}_ffn_dropout` }),
      ffnOut: new PointwiseDense({ units: d, kernelInitializer: kernel(), name: `block${b}_ffn_out` }),
      outDropout: new StreamDropout({ rate: o.dropout, seed: nextSeed(), name: `block${b}_out_dropout` }),
      residual2: tfl.layers.add({ name: `block${b}_residual2` }),
    });
  }
  return {
    ...sequenceInputs(o, nextSeed, o.numItems + 1),
    blocks,
    finalNorm: new LayerNorm({ width: d, name: 'final_norm' }),
  };
}

// ---------------------------------------------------------------- forward passes

type Flow = tf.Tensor | tfl.SymbolicTensor;

interface ForwardKwargs {
  training?: boolean;
}

/** layer.apply typed for one flow kind: symbolic in, symbolic out; concrete in, concrete out. */
function call<X extends Flow>(layer: tfl.layers.Layer, inputs: X | X[], kwargs: Record<string, unknown> = {}): X {
  return layer.apply(inputs as tf.Tensor | tf.Tensor[], kwargs) as X;
}

/**
 * The whole model on ids [B, L]: symbolic (to build the functional model) or concrete (the
 * training forward, which passes `training` to every layer; tfjs's model.apply does not).
 *
 * Block layout follows SASRec's reference code: q = LN(x); x' = q + Attention(q, x, mask); then
 * LN, point-wise feed-forward with its residual; a final LN. Besides matching SASRec, it keeps the
 * query and the K/V source distinct tensors: tfjs's graph executor (predict, apply) decrements a
 * tensor's reference count once per occurrence in a node's inputs but counts each consuming layer
 * once, so feeding [x, x, mask] disposes x before the residual reads it ("Tensor is disposed").
 */
export function forward<X extends Flow>(parts: SasrecParts, ids: X, kwargs: ForwardKwargs): X {
  const mask = call(parts.paddingMask, ids);
  let x = embed(parts, ids, kwargs);
  for (const block of parts.blocks) {
    const q = call(block.queryNorm, x);
    x = blockTail(block, q, call(block.attention, [q, x, mask], { ...kwargs }), kwargs);
  }
  return call(parts.finalNorm, x);
}

function embed<X extends Flow>(parts: SasrecParts, ids: X, kwargs: ForwardKwargs, start?: number): X {
  const items = call(parts.itemEmbedding, ids);
  const placed = call(parts.positions, items, start == null ? {} : { start });
  return call(parts.embeddingDropout, placed, { ...kwargs });
}

/** Everything of a block after its attention: residual on the query, norm, feed-forward with residual. */
function blockTail<X extends Flow>(block: SasrecBlock, q: X, attended: X, kwargs: ForwardKwargs): X {
  const h = call(block.norm1, call(block.residual1, [q, attended]));
  const inner = call(block.ffnDropout, call(block.ffnIn, h), { ...kwargs });
  const f = call(block.outDropout, call(block.ffnOut, inner), { ...kwargs });
  return call(block.residual2, [h, f]);
}

/** The item embedding table [numItems + 1, d] (the live variable: gradients flow through it). */
export function itemTable(sasrec: Sasrec): tf.Tensor {
  return sasrec.parts.itemEmbedding.getWeights()[0];
}

/** hidden [..., d] -> scores [..., numItems + 1] against the shared item table. */
export function scoreHidden(sasrec: Sasrec, hidden: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const d = dim(hidden, -1);
    const flat = tf.reshape(hidden, [-1, d]) as tf.Tensor2D;
    const scores = tf.matMul(flat, tf.transpose(itemTable(sasrec) as tf.Tensor2D));
    return tf.reshape(scores, [...hidden.shape.slice(0, -1), sasrec.options.numItems + 1]);
  });
}

/** Sequences (oldest first) or ids [B, maxLength] -> int32 ids [B, maxLength], left-padded. */
export function toIds(sasrec: Sasrec, sequences: readonly (readonly number[])[] | tf.Tensor): tf.Tensor2D {
  if (sequences instanceof tf.Tensor) return tf.cast(sequences, 'int32') as tf.Tensor2D;
  const L = sasrec.options.maxLength;
  const flat = new Int32Array(sequences.length * L);
  sequences.forEach((seq, row) => {
    const kept = seq.slice(-L);
    flat.set(kept, row * L + L - kept.length);
  });
  return tf.tensor2d(flat, [sequences.length, L], 'int32');
}

/** Next-item scores [B, numItems + 1] from the full forward of the functional model (last position). */
export function scoreNext(sasrec: Sasrec, sequences: readonly (readonly number[])[] | tf.Tensor): tf.Tensor2D {
  return tf.tidy(() => {
    const ids = toIds(sasrec, sequences);
    const hidden = sasrec.model.apply(ids) as tf.Tensor;
    return scoreHidden(sasrec, lastPosition(hidden)) as tf.Tensor2D;
  });
}

function lastPosition(hidden: tf.Tensor): tf.Tensor {
  const [b, t, d] = [dim(hidden, 0), dim(hidden, 1), dim(hidden, 2)];
  return tf.reshape(tf.slice(hidden, [0, t - 1, 0], [b, 1, d]), [b, d]);
}

// ---------------------------------------------------------------- cached decode

/** Per-block caches of a batch of users' prefixes; `length` = window slots already filled. */
export interface SasrecCache {
  blocks: KVCacheBlock[];
  length: number;
}

export function disposeCache(cache: SasrecCache): void {
  for (const block of cache.blocks) block.dispose();
}

/**
 * Prefill: runs the prefix ids [B, T] (window slots 0..T-1) through the model and caches every
 * block's K/V source with `computeCache` (compressed for CollectiveKV). Inference mode.
 */
export function prefill(sasrec: Sasrec, prefix: tf.Tensor2D): SasrecCache {
  const length = dim(prefix, 1);
  const blocks: KVCacheBlock[] = [];
  tf.tidy(() => {
    const mask = call(sasrec.parts.paddingMask, prefix as tf.Tensor);
    let x = embed(sasrec.parts, prefix as tf.Tensor, {}, 0);
    for (const block of sasrec.parts.blocks) {
      const cache = block.attention.computeCache(x, mask);
      cache.tensors().forEach((t) => tf.keep(t));
      blocks.push(cache);
      const q = call(block.queryNorm, x);
      x = blockTail(block, q, block.attention.attendCached(q, cache, { causal: true }), {});
    }
  });
  return { blocks, length };
}

/**
 * Decode one step: the next item ids [B] at the next window slot. Appends its K/V source to each
 * block's cache and attends from the cache (no K/V recompute for the prefix). Returns the hidden
 * state [B, d] and the extended cache; `cache` itself is disposed (its blocks are replaced).
 */
export function decodeStep(sasrec: Sasrec, cache: SasrecCache, nextIds: tf.Tensor): { hidden: tf.Tensor2D; cache: SasrecCache } {
  const batch = dim(nextIds, 0);
  const blocks: KVCacheBlock[] = [];
  const hidden = tf.tidy(() => {
    const ids = tf.reshape(tf.cast(nextIds, 'int32'), [batch, 1]);
    const mask = call(sasrec.parts.paddingMask, ids);
    let x = embed(sasrec.parts, ids, {}, cache.length);
    sasrec.parts.blocks.forEach((block, b) => {
      const grown = block.attention.appendToCache(cache.blocks[b], x, mask);
      grown.tensors().forEach((t) => tf.keep(t));
      blocks.push(grown);
      const q = call(block.queryNorm, x);
      x = blockTail(block, q, block.attention.attendCached(q, grown, { causal: true }), {});
    });
    const out = call(sasrec.parts.finalNorm, x);
    return tf.reshape(out, [batch, dim(out, 2)]) as tf.Tensor2D;
  });
  disposeCache(cache);
  return { hidden, cache: { blocks, length: cache.length + 1 } };
}

/**
 * Next-item scores [B, numItems + 1] through the cache path: prefill slots 0..L-2, decode slot L-1.
 * Equals `scoreNext` up to float rounding.
 */
export function scoreNextCached(sasrec: Sasrec, sequences: readonly (readonly number[])[] | tf.Tensor): tf.Tensor2D {
  const ids = toIds(sasrec, sequences);
  const L = sasrec.options.maxLength;
  const b = dim(ids, 0);
  const prefix = tf.slice(ids, [0, 0], [b, L - 1]);
  const last = tf.tidy(() => tf.reshape(tf.slice(ids, [0, L - 1], [b, 1]), [b]));
  const step = decodeStep(sasrec, prefill(sasrec, prefix), last);
  const scores = scoreHidden(sasrec, step.hidden) as tf.Tensor2D;
  tf.dispose([ids, prefix, last, step.hidden]);
  disposeCache(step.cache);
  return scores;
}

/**
 * Stored bytes per cached token, summed over the attention blocks, read from real cache blocks, in
 * `format` (default fp32; the cache stores fp16 by default).
 */
export function cacheBytesPerToken(sasrec: Sasrec, format: CacheValueFormat = 'fp32'): number {
  const probe = tf.tensor2d([[1, 1]], [1, 2], 'int32');
  const cache = prefill(sasrec, probe);
  const bytes = cache.blocks.reduce((sum, block) => sum + block.bytesPerToken(format), 0);
  disposeCache(cache);
  probe.dispose();
  return bytes;
}
