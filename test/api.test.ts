// The public API is a deliberate list: this test fails on any change to it, so adding or removing
// a name is a decision (and a CHANGELOG line), not a side effect. Internals: collectivekv/internal.
import * as api from '../src/index';
import * as internal from '../src/internal';

const PUBLIC_VALUES = [
  'ArgumentError', 'CACHE_FORMAT_VERSION', 'CacheConflictError', 'CacheCorruptError', 'CacheEngine', 'CacheError', 'CacheModelMismatchError',
  'CacheStoreError', 'CacheVersionError', 'CollectiveKVAttention', 'CollectiveKVRecipe', 'collectiveKVRecipe', 'switchToPool', 'GlobalKVPool', 'HistoryRequiredError', 'IndexedDBStore', 'KVCacheBlock',
  'MemoryHistoryLog', 'MemoryStore', 'MultiHeadAttention', 'RedisStore', 'RemovedOptionError', 'UnknownUserError', 'UserKVProjector',
  'analyzeKV', 'anchorMetrics', 'appendToStore', 'appendTokens', 'auc', 'cacheWindowStart', 'catalogCrossEntropy', 'collectiveAttention', 'compactCache',
  'convertAttentionLayer', 'decodeCache', 'dotProductAttention', 'encodeCache', 'encodedBytesFor', 'formatKVAnalysis', 'fromBlocks',
  'fromBlocksAsync', 'fromBlocksBatch', 'fromBlocksBatchAsync', 'gatherRows', 'gauc', 'generateSynthetic', 'kmeans', 'leaveOneOut',
  'logloss', 'modelFingerprint', 'planAppend', 'rankingMetrics', 'readCheckpoint', 'readHeader', 'readInteractions', 'readSequences',
  'restoreDefaultEmbeddingGradients', 'routeTop1', 'scatterAddRows', 'seededRandom', 'swapAttention', 'toBlocks', 'trainLoop',
  'useFastEmbeddingGradients', 'useWasmThreads', 'writeCheckpoint',
];

describe('public API', () => {
  it('exports exactly the listed values', () => {
    expect(Object.keys(api).sort()).toEqual([...PUBLIC_VALUES].sort());
  });

  it('stays small, and every public value is the internal one (one copy of each class)', () => {
    expect(PUBLIC_VALUES.length).toBeLessThanOrEqual(80);
    const all = internal as unknown as Record<string, unknown>;
    for (const [name, value] of Object.entries(api)) expect(value).toBe(all[name]);
    expect(Object.keys(internal).length).toBeGreaterThan(PUBLIC_VALUES.length);
  });
});
