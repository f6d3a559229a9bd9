// Converting trained MultiHeadAttention models to CollectiveKV (docs/design.md section 6).
export { swapAttention, convertAttentionLayer, copyWeightsByName } from './swapAttention';
export type { ConvertAttentionLayerOptions, SwapAttentionOptions, SwapAttentionResult, SwapRouterKind, LayerConversionReport, SideConversionReport } from './swapAttention';
export { kmeans } from './kmeans';
export type { KMeansOptions, KMeansResult } from './kmeans';
export { switchToPool } from './switchToPool';
export type { SwitchToPoolOptions } from './switchToPool';
