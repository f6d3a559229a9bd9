export * from './util/validate';
export * from './routeTop1/index';
export * from './gatherRows/index';
export * from './scatterAddRows/index';
export * from './dotProductAttention/index';
export * from './collectiveAttention/index';
export * from './embeddingGradients/index';
export * from './routingLoss/index';
