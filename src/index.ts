// The one public entry of collectivekv: layers, ops and the library around them.
export * from '../ops/index';
export * from '../layers/index';
export * from './data/index';
export * from './metrics/index';
export * from './cache/index';
export * from './analysis/index';
export * from './convert/index';
export * from './train/index';
