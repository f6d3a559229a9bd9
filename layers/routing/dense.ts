// The dense router (the paper's): logits x R + b with one column per pool row, the top-1 row, a
// sigmoid gate that the router learns through, and the peak + balance losses (docs/routing.md).
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { fusedRoutingLoss, gatherRows, routeTop1, routeWithLoss } from '../../ops/index';
import { BalanceSampler, dense, zeros } from '../common';
import type { DenseRouterConfig } from './config';
import type { RoutedRows, Router, RouterBuildContext, RouterSetup, Routing } from './router';

/** Ones shaped like gate whose gradient passes unchanged to gate (the straight-through gate). */
const straightThroughOnes = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => ({
  value: tf.onesLike(args[0] as tf.Tensor),
  gradFunc: (dy: tf.Tensor) => dy,
})) as (gate: tf.Tensor) => tf.Tensor;

/**
 * Weights (named by the pool layer's prefix): `pool` [poolSize, units], `router` [inputDim,
 * poolSize], `router_bias` [poolSize] (with useBias).
 */
export class DenseRouter implements Router {
  readonly kind = 'dense';
  private readonly sampler: BalanceSampler;
  private poolVar: tfl.LayerVariable | null = null;
  private routerVar: tfl.LayerVariable | null = null;
  private biasVar: tfl.LayerVariable | null = null;

  constructor(readonly config: Required<DenseRouterConfig>, private readonly setup: RouterSetup) {
    this.sampler = new BalanceSampler(config.balanceTokens, setup.name);
  }

  inputColumns(): Array<[string, number]> {
    return [['router', this.setup.poolSize]];
  }

  build(c: RouterBuildContext): void {
    const { poolSize, units } = this.setup;
    this.poolVar = c.addWeight('pool', [poolSize, units], c.poolInitializer(0));
    this.routerVar = c.addWeight('router', [c.inputDim, poolSize], c.kernelInitializer);
    if (c.useBias) this.biasVar = c.addWeight('router_bias', [poolSize], zeros());
  }

  pool(): tf.Tensor {
    return built(this.poolVar).read();
  }

  route(x: tf.Tensor): Routing {
    return tf.tidy(() => {
      const logits = this.logits(x);
      const { index, gate } = routeTop1(logits);
      return { index, gate, logits };
    });
  }

  index(x: tf.Tensor): tf.Tensor {
    return tf.tidy(() => routeTop1(this.logits(x)).index);
  }

  /**
   * gate * pool[index] (pool[index] with the straight-through gate), joined to the tail in the
   * same gather. Keeps no router logits for the backward pass (ops/routerStep recomputes them),
   * which is what fits a training step in the wasm heap.
   */
  train(x: tf.Tensor, mask: tf.Tensor | null, tail?: tf.Tensor): RoutedRows {
    const { gate: gateMode, peakWeight, balanceWeight } = this.config;
    const [rows, index, loss] = tf.tidy(() => {
      const sample = balanceWeight === 0 ? null : this.sampler.sample(x.size / x.shape[x.rank - 1]);
      const balanceRows = sample == null ? null : tf.tensor1d(sample, 'int32');
      const route = routeWithLoss(x, built(this.routerVar).read(), this.biasVar?.read() ?? null, mask, { peakWeight, balanceWeight }, balanceRows);
      const gate = gateMode === 'scaled' ? route.gate : straightThroughOnes(route.gate);
      const out = gatherRows(this.pool(), route.index, gate, tail);
      return route.loss == null ? [out, route.index] : [out, route.index, route.loss];
    });
    return { rows, index, loss: (loss as tf.Scalar | undefined) ?? null };
  }

  /** weighted peak + balance over every valid token (fused on cpu and wasm). */
  loss(x: tf.Tensor, mask: tf.Tensor | null): tf.Scalar | null {
    const { peakWeight, balanceWeight } = this.config;
    if (peakWeight === 0 && balanceWeight === 0) return null;
    return tf.tidy(() => fusedRoutingLoss(this.logits(x), mask, { peakWeight, balanceWeight }));
  }

  getConfig(): Required<DenseRouterConfig> {
    return { ...this.config };
  }

  private logits(x: tf.Tensor): tf.Tensor {
    return dense(x, built(this.routerVar).read(), this.biasVar?.read() ?? null);
  }
}

/** A weight the router created in build (the pool layer checks it is built before routing). */
export function built(v: tfl.LayerVariable | null): tfl.LayerVariable {
  if (v == null) throw new Error('router used before its pool layer was built');
  return v;
}
