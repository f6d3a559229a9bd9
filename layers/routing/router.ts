// The router strategy of a GlobalKVPool: how a token's pool row is chosen (at inference, in
// training, with what loss), and which weights that takes. A GlobalKVPool holds one router and
// owns its weights; dense.ts and nearestProduct.ts are the two kinds (docs/routing.md).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { Initializer } from '@tensorflow/tfjs-layers/dist/initializers';
import type { ResolvedRouterConfig, RouterKind } from './config';

/** An inference route of x [..., inputDim]. */
export interface Routing {
  /** int32 [...]: the chosen pool row per token. */
  index: tf.Tensor;
  /** float32 [...]: sigmoid of the winning logit. */
  gate: tf.Tensor;
  /** float32 [..., columns]: the (equivalent) router's logits; [..., 2s] (the two sub-routers') for nearest-product. */
  logits: tf.Tensor;
}

/** A training forward: the rows the task reads, the chosen rows and the routing loss. */
export interface RoutedRows {
  /** `[..., units (+ tail width)]`: the pool rows as training reads them, joined to the tail when one was given. */
  rows: tf.Tensor;
  /** int32 [...] */
  index: tf.Tensor;
  /** null when the router has no loss to add (every weight 0). */
  loss: tf.Scalar | null;
}

/** What a router knows from its pool layer's arguments. */
export interface RouterSetup {
  poolSize: number;
  /** Width of a pool row. */
  units: number;
  /** Names the router's seeded streams (token samples, data init): the pool layer's name. */
  name: string;
  /** Seeds what the router draws from data (the nearest-product pool's start). */
  seed: number;
}

/** What a router builds its weights with; the weights belong to the pool layer. */
export interface RouterBuildContext {
  inputDim: number;
  useBias: boolean;
  /** Creates a weight of the pool layer (the layer adds its weight prefix to `name`). */
  addWeight(name: string, shape: number[], initializer: Initializer, trainable?: boolean): tfl.LayerVariable;
  /** Initializer of the router's (or encoder's) kernel. */
  kernelInitializer: Initializer;
  /** The pool's initializer; `offset` is added to its seed when it has one (so two sub-pools differ). */
  poolInitializer(offset: number): Initializer;
}

export interface Router {
  readonly kind: RouterKind;
  /** Every option; read at each call, so changing a weight in place takes effect at the next one. */
  readonly config: ResolvedRouterConfig;
  /** [name, columns] of the weights whose rows are the input's features (checked against the backend before build). */
  inputColumns(): Array<[string, number]>;
  /** Creates the pool's and the router's weights. */
  build(context: RouterBuildContext): void;
  /** The pool [poolSize, units]: a variable's value, or a new tensor (call inside a tidy). */
  pool(): tf.Tensor;
  /** The inference route (what analysis and conversion read). */
  route(x: tf.Tensor): Routing;
  /** The inference index alone (what the cache stores). */
  index(x: tf.Tensor): tf.Tensor;
  /**
   * Training forward of x [..., inputDim] (mask: x's leading shape, 1 valid, or null): the rows as
   * training reads them (gated, or straight through), joined to `tail` [..., tailWidth] when given,
   * the chosen rows and the routing loss over valid tokens.
   */
  train(x: tf.Tensor, mask: tf.Tensor | null, tail?: tf.Tensor): RoutedRows;
  /** The routing loss of x alone, over every valid token (no sample, no rows): null when it has no weight. */
  loss(x: tf.Tensor, mask: tf.Tensor | null): tf.Scalar | null;
  /** Every option, for the pool layer's getConfig. */
  getConfig(): ResolvedRouterConfig;
}
