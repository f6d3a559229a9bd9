// Routers as strategies of a GlobalKVPool (docs/routing.md): the interface, the two kinds and
// their configs. A new router: an implementation of Router, its config in config.ts, a case here.
import type { ResolvedRouterConfig } from './config';
import { DenseRouter } from './dense';
import { NearestProductRouter } from './nearestProduct';
import type { Router, RouterSetup } from './router';

export * from './config';
export * from './router';
export { DenseRouter } from './dense';
export { NearestProductRouter, nearestProductIndex, productKeyRouter, productPool, vqTrainingRows } from './nearestProduct';
export type { NearestProductWeights, VQLossWeights } from './nearestProduct';

/** The router of a resolved config (see resolveRouterConfig; checkRouterPoolSize first). */
export function createRouter(config: ResolvedRouterConfig, setup: RouterSetup): Router {
  return config.kind === 'dense' ? new DenseRouter(config, setup) : new NearestProductRouter(config, setup);
}
