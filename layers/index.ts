export * from './KVCacheBlock';
