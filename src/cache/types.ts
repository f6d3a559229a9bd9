// Plain typed-array view of one user's KV cache over all attention layers of a model. The codec
// works on this shape only, so it stays independent of tfjs (see blocks.ts for the converters).

/**
 * How stored floats are written: fp16 (the default; round to nearest even), fp32 (exact), int8
 * (symmetric, one absmax scale per chunk and side). The same formats as CacheValueFormat.
 */
export type CacheDtype = 'fp32' | 'fp16' | 'int8';

/** Which sides of a layer are pooled: both, keys only, values only (the layer's `share`), or none (the full-KV baseline). */
export type CacheShareMode = 'kv' | 'k' | 'v' | 'none';

/** A side taken from a global pool: per token one pool row index and `userDim` user-specific floats. */
export interface PooledSide {
  kind: 'pooled';
  poolSize: number;
  userDim: number;
  /** [T] pool row per token, each in [0, poolSize). */
  index: Int32Array;
  /** [T * userDim] token-major. */
  user: Float32Array;
}

/** A side cached in full: per token `width` floats (the baseline, or the unshared side of 'k'/'v'). */
export interface FullSide {
  kind: 'full';
  width: number;
  /** [T * width] token-major. */
  values: Float32Array;
}

export type UserCacheSide = PooledSide | FullSide;

/** One attention layer's cache for one user (names follow KVCacheBlock: `keys` and `values` sides). */
export interface UserCacheLayer {
  keys: UserCacheSide;
  values: UserCacheSide;
}

/** One user's cache: `length` tokens, the same tokens in every layer. */
export interface UserCache {
  length: number;
  layers: UserCacheLayer[];
}

/** The shape of a side without its data: what the header records. */
export interface SideLayout {
  kind: 'pooled' | 'full';
  /** userDim for pooled sides, the vector width for full sides. */
  width: number;
  /** 0 for full sides. */
  poolSize: number;
  /** Bytes per stored index: 1, 2 or 4 (from the pool size); 0 for full sides. */
  indexBytes: 0 | 1 | 2 | 4;
}

export interface LayerLayout {
  share: CacheShareMode;
  keys: SideLayout;
  values: SideLayout;
}

/** Everything the header of an encoded cache says. */
export interface CacheHeader {
  version: number;
  /** Hex of the 16-byte model fingerprint (see modelFingerprint). */
  fingerprint: string;
  dtype: CacheDtype;
  layers: LayerLayout[];
  /** Tokens stored. */
  length: number;
  /** Appended chunks (1 after encode, +1 per append). */
  chunks: number;
  /** Hex of the 8-byte entry id: the first 8 bytes of SHA-256 of the key it was written for ('' key: zeros). */
  entryId: string;
  /** Hex of the 8-byte write id, new at every whole-entry write (kept by appends). */
  writeId: string;
  /** History events the entry reflects: its tokens plus those a window slide dropped. */
  events: number;
  /** Bytes of one token's record over all layers and sides. */
  recordBytes: number;
  /** Bytes of the header itself, CRC included. */
  headerBytes: number;
}
