import * as tf from '@tensorflow/tfjs-core';
import { ArgumentError, describeShape, dim } from '../ops/util/validate';

/**
 * Storage format of the cached floats (user parts, or full K/V for the baseline): 'fp16' by
 * default, 'fp32', or 'int8' (1 B per value plus a 4 B scale per side and stored chunk,
 * which bytesPerToken leaves out: a chunk holds many tokens).
 */
export type CacheValueFormat = 'fp32' | 'fp16' | 'int8';

/** Bytes of one stored pool index: uint8 up to 256 rows, uint16 up to 65536, else uint32. */
export function indexBytesForPool(poolSize: number): 1 | 2 | 4 {
  if (poolSize <= 256) return 1;
  if (poolSize <= 65536) return 2;
  return 4;
}

/** Bytes of one stored float in `format`; anything else is an ArgumentError of `op`'s argument 'format'. */
export function bytesPerValue(format: CacheValueFormat, op = 'bytesPerValue'): number {
  switch (format) {
    case 'fp32': return 4;
    case 'fp16': return 2;
    case 'int8': return 1;
    default: throw new ArgumentError(op, 'format', "'fp32', 'fp16' or 'int8'", JSON.stringify(format) ?? String(format));
  }
}

/**
 * One side (K or V) of a cache: either full vectors [B, T, width], or a pool index [B, T] (int32)
 * plus a user-specific part [B, T, userDim].
 */
export type CacheSide =
  | { kind: 'full'; values: tf.Tensor }
  | { kind: 'pooled'; index: tf.Tensor; user: tf.Tensor; poolSize: number };

/**
 * The cached keys and values of one attention module for a batch of users (prefill result).
 * Full for `MultiHeadAttention`; compressed for `CollectiveKVAttention` (a side left unshared by
 * `share: 'k' | 'v'` stays full). Owns its tensors: call `dispose()`.
 */
export class KVCacheBlock {
  constructor(
    readonly keys: CacheSide,
    readonly values: CacheSide,
    /** float32 [B, T]: 1 valid, 0 padding. */
    readonly mask: tf.Tensor,
  ) {
    if (!(mask instanceof tf.Tensor) || mask.rank !== 2) {
      throw new ArgumentError('KVCacheBlock', 'mask', 'a float32 tensor of rank 2 [batch, time] (1 valid, 0 padding)',
        mask instanceof tf.Tensor ? `shape ${describeShape(mask.shape)} (rank ${mask.rank})` : String(mask));
    }
  }

  get batchSize(): number { return dim(this.mask, 0); }
  get length(): number { return dim(this.mask, 1); }
  get isCompressed(): boolean { return this.keys.kind === 'pooled' || this.values.kind === 'pooled'; }

  /** Full keys [B, T, H*dk] for the baseline (undefined when compressed). */
  get k(): tf.Tensor | undefined { return this.keys.kind === 'full' ? this.keys.values : undefined; }
  get v(): tf.Tensor | undefined { return this.values.kind === 'full' ? this.values.values : undefined; }
  get indexK(): tf.Tensor | undefined { return this.keys.kind === 'pooled' ? this.keys.index : undefined; }
  get userK(): tf.Tensor | undefined { return this.keys.kind === 'pooled' ? this.keys.user : undefined; }
  get indexV(): tf.Tensor | undefined { return this.values.kind === 'pooled' ? this.values.index : undefined; }
  get userV(): tf.Tensor | undefined { return this.values.kind === 'pooled' ? this.values.user : undefined; }

  /**
   * Stored bytes per cached token of this module (both sides) in `format`, by default fp16 (what
   * the cache stores by default; docs/cache.md): pool indices take 1, 2 or 4 B by pool size.
   */
  bytesPerToken(format: CacheValueFormat = 'fp16'): number {
    const perValue = bytesPerValue(format, 'KVCacheBlock.bytesPerToken');
    return sideBytesPerToken(this.keys, perValue) + sideBytesPerToken(this.values, perValue);
  }

  /** Whether `dispose()` was called (or any of the block's tensors was disposed): the block can no longer be read. */
  get isDisposed(): boolean {
    return this.tensors().some((t) => t.isDisposed);
  }

  /** All tensors this block owns. */
  tensors(): tf.Tensor[] {
    const side = (s: CacheSide) => (s.kind === 'full' ? [s.values] : [s.index, s.user]);
    return [...side(this.keys), ...side(this.values), this.mask];
  }

  dispose(): void {
    tf.dispose(this.tensors());
  }
}

function sideBytesPerToken(side: CacheSide, perValue: number): number {
  if (side.kind === 'full') return dim(side.values, 2) * perValue;
  return indexBytesForPool(side.poolSize) + dim(side.user, 2) * perValue;
}

/**
 * A new block with `next`'s tokens after `prev`'s (time axis 1). Neither input is disposed: the
 * caller decides whether the old block is still needed (e.g. to serve an in-flight request).
 */
export function concatBlocks(prev: KVCacheBlock, next: KVCacheBlock): KVCacheBlock {
  for (const [arg, block] of [['prev', prev], ['next', next]] as const) {
    if (block.isDisposed) {
      throw new ArgumentError('concatBlocks', arg, 'a cache block that is not disposed', 'a disposed block (the block was disposed, or one of its tensors was)');
    }
  }
  if (prev.batchSize !== next.batchSize) {
    throw new Error(`concatBlocks: batch sizes differ (${prev.batchSize} vs ${next.batchSize})`);
  }
  const parts = tf.tidy(() => ({
    keys: concatSides(prev.keys, next.keys, 'keys'),
    values: concatSides(prev.values, next.values, 'values'),
    mask: tf.concat([prev.mask, next.mask], 1),
  }));
  return new KVCacheBlock(parts.keys, parts.values, parts.mask);
}

function concatSides(a: CacheSide, b: CacheSide, which: string): CacheSide {
  if (a.kind === 'full' && b.kind === 'full') return { kind: 'full', values: tf.concat([a.values, b.values], 1) };
  if (a.kind === 'pooled' && b.kind === 'pooled' && a.poolSize === b.poolSize) {
    return { kind: 'pooled', index: tf.concat([a.index, b.index], 1), user: tf.concat([a.user, b.user], 1), poolSize: a.poolSize };
  }
  throw new Error(`concatBlocks: ${which} sides are not compatible (${a.kind} vs ${b.kind})`);
}
