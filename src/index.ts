// The public API of collectivekv: a deliberate list (test/api.test.ts holds it, so a change is a
// decision). Everything else is internal (`collectivekv/internal`, unstable).
// Importing it registers the custom kernels of the cpu and wasm backends and their gradients (the
// backends themselves stay optional peers the user imports). WebGPU kernels: `collectivekv/webgpu`.
/**
 * The main entry: layers and routers, the recipe, ops, the cache, data, metrics, training and conversion.
 * @module collectivekv
 */

// Layers and routers.
export {
  CollectiveKVAttention, GlobalKVPool, KVCacheBlock, MultiHeadAttention, RemovedOptionError, UserKVProjector,
} from './internal';
export type {
  AttendCachedOptions, CollectiveKVAttentionArgs, DenseRouterConfig, GateMode, MultiHeadAttentionArgs, NearestProductRouterConfig,
  RouterConfig, RouterKind, RouterSpec, ShareMode,
} from './internal';
// Types the layers' public signatures name (arguments, attributes, results).
export type {
  AttentionKind, CacheSide, CacheValueFormat, CollectiveSide, ConstraintSpec, GlobalKVPoolArgs, InitializerSpec, PoolLookupOptions,
  RegularizerSpec, ResolvedRouterConfig, RoutedRows, Routing, UserKVProjectorArgs,
} from './internal';

// Ops with their own kernels.
export {
  ArgumentError, catalogCrossEntropy, collectiveAttention, dotProductAttention, gatherRows, routeTop1, scatterAddRows,
  useFastEmbeddingGradients, restoreDefaultEmbeddingGradients,
} from './internal';
export type { CollectiveAttentionOptions, CompressedKV, KVPools, RouteTop1Result } from './internal';
export type { AttentionOptions, CatalogCrossEntropyOptions } from './internal';   // the ops' option types

// The cache: codec, stores, engine, history of record.
export {
  CACHE_FORMAT_VERSION, CacheConflictError, CacheCorruptError, CacheEngine, CacheError, CacheModelMismatchError, CacheStoreError,
  CacheVersionError, HistoryRequiredError, IndexedDBStore, MemoryHistoryLog, MemoryStore, RedisStore, UnknownUserError,
  appendToStore, appendTokens, cacheWindowStart, compactCache, decodeCache, encodeCache, encodedBytesFor, fromBlocks, fromBlocksAsync,
  fromBlocksBatch, fromBlocksBatchAsync, modelFingerprint, planAppend, readHeader, toBlocks,
} from './internal';
export type {
  AppendCallOptions, AppendOutcome, AppendPlan, AppendResult, CacheDtype, CacheEngineOptions, CacheHeader, CacheStore, CacheableRecommender,
  DecodeOptions, EncodeOptions, EngineStats, HistoryLog, HistorySource, LayerLayout, RedisClient, RedisPipeline, RedisStoreOptions, ReplaceResult,
  ScoreCallOptions, ScoreResult, StoreStats, UserCache, UserCacheLayer, UserCacheSide,
} from './internal';
// Types the cache's public signatures name.
export type {
  AppendOptions, CacheShareMode, DecodedCache, FullSide, IndexedDBStoreOptions, MemoryStoreOptions, PooledSide, SideLayout, ToBlocksOptions,
} from './internal';

// Data, metrics, training, conversion, analysis.
export {
  generateSynthetic, leaveOneOut, readInteractions, readSequences, seededRandom, anchorMetrics, auc, gauc, logloss, rankingMetrics, trainLoop,
  useWasmThreads, readCheckpoint, writeCheckpoint, swapAttention, convertAttentionLayer, kmeans, analyzeKV, formatKVAnalysis,
  collectiveKVRecipe, CollectiveKVRecipe, switchToPool,
} from './internal';
export type {
  SequenceBatch, SyntheticOptions, TrainLoopOptions, TrainLoopResult, TrainLoopSpec, StepOutcome, EpochRecord, SwapAttentionOptions,
  SwapAttentionResult, KVAnalysis, CollectiveKVRecipeOptions, RecipeOptions, RecipePhaseOptions, SwitchToPoolOptions, KVPhase, RecordedKVSources,
} from './internal';
// Types the public signatures of data, metrics, training, conversion and analysis name.
export type {
  AnalyzeKVOptions, AnchorKind, AnchorOptions, CheckpointInfo, CheckpointManifest, ConvertAttentionLayerOptions, CorrelationSummary, GaucResult,
  IdKind, InteractionFormat, InteractionLog, KMeansOptions, KMeansResult, Labels, LayerConversionReport, LayerKVAnalysis, LeaveOneOutSplit,
  NextItemCase, PhaseSwitch, PoolUsage, ProgressMode, ProgressSink, Quantiles, Random, RankingResult, RankOptions, ReadOptions, ReadStats,
  RecipeSwitchRecord, Scores, SecondPhase, Sequences, SideConversionReport, SkippedLine, SpectrumAnalysis, StopReason, SyntheticWorld, UserIds,
} from './internal';
