import * as tf from '@tensorflow/tfjs-core';
import { AttentionKind, dotProductAttention } from '../dotProductAttention/index';
import { gatherRows } from '../gatherRows/index';
import { COLLECTIVE_ATTENTION } from '../kernelNames';
import { ArgumentError, assertFloatDtype, assertIntDtype, assertRank, assertShape, describeShape, dim, hasKernel } from '../util/validate';

export { COLLECTIVE_ATTENTION } from '../kernelNames';
export { setCollectiveAttentionAlgorithm, getCollectiveAttentionAlgorithm } from './core';
export type { CollectiveAttentionAlgorithm } from './core';

/** A compressed per-user cache, as the attention reads it. */
export interface CompressedKV {
  /** int32 [B, Tk]: pool row of each key. */
  indexK: tf.Tensor;
  /** float32 [B, Tk, userDimK]: user-specific tail of each key. */
  userK: tf.Tensor;
  /** int32 [B, Tk]: pool row of each value. */
  indexV: tf.Tensor;
  /** float32 [B, Tk, userDimV]. */
  userV: tf.Tensor;
  /** [B, Tk], 1 valid, 0 padding. Optional. */
  mask?: tf.Tensor;
}

export interface KVPools {
  /** float32 [poolSize, H*dk - userDimK]. */
  poolK: tf.Tensor;
  /** float32 [poolSize, H*dv - userDimV]. */
  poolV: tf.Tensor;
}

export interface CollectiveAttentionOptions {
  numHeads: number;
  attention?: AttentionKind;
  causal?: boolean;
  scale?: number;
}

/**
 * Attention straight from a compressed cache: key i is concat(poolK[indexK[i]], userK[i]) and value
 * i is concat(poolV[indexV[i]], userV[i]), split into heads after the concat, but neither is
 * materialized by the kernels. query [B, Tq, H*dk] -> [B, Tq, H*dv]. Inference only (no gradient).
 * Same semantics as `dotProductAttention` on the materialized K/V.
 */
export function collectiveAttention(query: tf.Tensor, cache: CompressedKV, pools: KVPools, options: CollectiveAttentionOptions): tf.Tensor {
  validateCollectiveAttention(query, cache, pools, options);
  if (hasKernel(COLLECTIVE_ATTENTION)) {
    const inputs: tf.NamedTensorMap = { query, indexK: cache.indexK, userK: cache.userK, indexV: cache.indexV, userV: cache.userV,
      poolK: pools.poolK, poolV: pools.poolV };
    if (cache.mask != null) inputs.mask = cache.mask;
    const attrs = { numHeads: options.numHeads, attention: options.attention ?? 'softmax', causal: options.causal ?? false,
      scale: options.scale ?? -1 };
    return tf.engine().runKernel(COLLECTIVE_ATTENTION, inputs, attrs as unknown as tf.NamedAttrMap) as tf.Tensor;
  }
  return collectiveAttentionComposite(query, cache, pools, options);
}

/** Materializes K/V with gatherRows (pool row joined to the user part) and runs dotProductAttention: the reference path. */
export function collectiveAttentionComposite(query: tf.Tensor, cache: CompressedKV, pools: KVPools, options: CollectiveAttentionOptions): tf.Tensor {
  return tf.tidy(() => {
    const k = gatherRows(pools.poolK, cache.indexK, undefined, cache.userK);
    const v = gatherRows(pools.poolV, cache.indexV, undefined, cache.userV);
    return dotProductAttention(query, k, v, { ...options, mask: cache.mask });
  });
}

function validateCollectiveAttention(query: tf.Tensor, cache: CompressedKV, pools: KVPools, options: CollectiveAttentionOptions): void {
  const op = 'collectiveAttention';
  assertRank(op, 'query', query, [3]);
  assertFloatDtype(op, 'query', query);
  assertRank(op, 'cache.indexK', cache.indexK, [2]);
  assertIntDtype(op, 'cache.indexK', cache.indexK);
  assertIntDtype(op, 'cache.indexV', cache.indexV);
  assertShape(op, 'cache.indexV', cache.indexV, cache.indexK.shape);
  assertRank(op, 'pools.poolK', pools.poolK, [2]);
  assertRank(op, 'pools.poolV', pools.poolV, [2]);
  assertFloatDtype(op, 'pools.poolK', pools.poolK);
  assertFloatDtype(op, 'pools.poolV', pools.poolV);
  assertRank(op, 'cache.userK', cache.userK, [3]);
  assertRank(op, 'cache.userV', cache.userV, [3]);
  assertFloatDtype(op, 'cache.userK', cache.userK);
  assertFloatDtype(op, 'cache.userV', cache.userV);
  const batch = dim(cache.indexK, 0);
  const tk = dim(cache.indexK, 1);
  if (query.shape[0] !== batch) {
    throw new ArgumentError(op, 'query', `batch ${batch} (the cache's)`, `shape ${describeShape(query.shape)}`);
  }
  const dq = dim(query, 2);
  const duK = dim(cache.userK, 2);
  const duV = dim(cache.userV, 2);
  assertShape(op, 'cache.userK', cache.userK, [batch, tk, duK]);
  assertShape(op, 'cache.userV', cache.userV, [batch, tk, duV]);
  if (dim(pools.poolK, 1) + duK !== dq) {
    throw new ArgumentError(op, 'pools.poolK', `width ${dq - duK} (query width ${dq} minus userK width ${duK})`,
      `shape ${describeShape(pools.poolK.shape)}`);
  }
  // K and V pools may differ in size, but neither may be empty (every index would be out of range).
  if (dim(pools.poolK, 0) < 1) {
    throw new ArgumentError(op, 'pools.poolK', 'a non-empty pool', `shape ${describeShape(pools.poolK.shape)}`);
  }
  if (dim(pools.poolV, 0) < 1) {
    throw new ArgumentError(op, 'pools.poolV', 'a non-empty pool', `shape ${describeShape(pools.poolV.shape)}`);
  }
  const h = options.numHeads;
  const dvTotal = dim(pools.poolV, 1) + duV;
  if (!Number.isInteger(h) || h < 1 || dq % h !== 0 || dvTotal % h !== 0) {
    throw new ArgumentError(op, 'numHeads', `a positive divisor of the key width ${dq} and value width ${dvTotal}`, String(h));
  }
  if (cache.mask != null) assertShape(op, 'cache.mask', cache.mask, [batch, tk]);
}
