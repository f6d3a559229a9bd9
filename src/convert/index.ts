// Converting trained MultiHeadAttention models to CollectiveKV (DESIGN.md section 4).
export { swapAttention, copyWeightsByName } from './swapAttention';
export type { SwapAttentionOptions, SwapAttentionResult, SwapRouterKind, LayerConversionReport, SideConversionReport } from './swapAttention';
export { kmeans } from './kmeans';
export type { KMeansOptions, KMeansResult } from './kmeans';
