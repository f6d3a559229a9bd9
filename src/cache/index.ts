// The compressed KV cache as bytes: codec, converters from/to the layers' KVCacheBlock, stores.
export type {
  CacheDtype, CacheHeader, FullSide, LayerLayout, PooledSide, CacheShareMode, SideLayout, UserCache, UserCacheLayer, UserCacheSide,
} from './types';
export {
  CACHE_DTYPES, CACHE_FORMAT_VERSION, CACHE_MAGIC, CHUNK_OVERHEAD, DEFAULT_CACHE_DTYPE, appendTokens, applyAppend, checkCacheDtype,
  chunkOverheadFor, compactCache, decodeCache, encodeCache, encodedBytesFor, headerBytesFor, int8Scale, layoutOf, peekHeaderBytes,
  planAppend, readHeader, recordBytesFor,
} from './codec';
export type { AppendPlan, DecodeOptions, DecodedCache, EncodeOptions } from './codec';
export {
  CacheConflictError, CacheCorruptError, CacheError, CacheModelMismatchError, CacheStoreError, CacheVersionError, HistoryRequiredError,
} from './errors';
export { modelFingerprint } from './fingerprint';
export { FP16_MAX, fromHalfBits, toHalfBits } from './fp16';
export { crc32 } from './crc32';
export { fromBlocks, fromBlocksAsync, fromBlocksBatch, fromBlocksBatchAsync, toBlocks } from './blocks';
export type { ToBlocksOptions } from './blocks';
export { appendToStore, readStoredHeader } from './store';
export type { AppendOptions, AppendResult, CacheStore, ReplaceResult, StoreStats } from './store';
export { MemoryHistoryLog } from './history';
export { MemoryStore } from './memoryStore';
export type { MemoryStoreOptions } from './memoryStore';
export { RedisStore } from './redisStore';
export type { RedisClient, RedisPipeline, RedisStoreOptions } from './redisStore';
export { CacheEngine, UnknownUserError, cacheWindowStart, emptyEngineStats } from './engine';
export type {
  AppendCallOptions, AppendOutcome, CacheEngineOptions, CacheableRecommender, EngineStats, HistoryLog, HistorySource, ScoreCallOptions, ScoreResult,
} from './engine';
export { IndexedDBStore } from './indexedDbStore';
export type { IndexedDBStoreOptions } from './indexedDbStore';
