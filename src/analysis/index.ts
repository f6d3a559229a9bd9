// The paper's K/V analysis on trained models (docs/design.md section 7).
export { analyzeKV, formatKVAnalysis, formatPoolUsage, poolUsage } from './analyzeKV';
export type { AnalyzeKVOptions, KVAnalysis, LayerKVAnalysis, PoolUsage } from './analyzeKV';
export { analyzeSpectrum, suggestUserDim, pearson, quantile, summarize, USER_DIM_OPTIONS } from './spectrum';
export type { SpectrumAnalysis, SpectrumOptions, CorrelationSummary, Quantiles } from './spectrum';
export { gram, matrix, project, symmetricEigen, thinSvd } from './linalg';
export type { Matrix, SymmetricEigen, ThinSvd } from './linalg';
export { attentionLayers, captureAttentionInputs, disposeSites, keysAndValues, recordAttentionInputs } from './capture';
export type { AttentionLayer, AttentionSite } from './capture';
