export * from './KVCacheBlock';
export type { InitializerSpec } from './common';
export * from './attentionBase';
export * from './routing/index';
export * from './GlobalKVPool';
export * from './UserKVProjector';
export * from './MultiHeadAttention';
export * from './CollectiveKVAttention';
