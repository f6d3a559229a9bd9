export { epochSeed, seededRandom, shuffleInPlace } from './random';
export type { Random } from './random';
export * from './synthetic';
export * from './split';
export * from './batching';
export * from './readers/index';
export * from './ctrSamples';
