// Top-1 routing plus its peak + balance loss for training, without keeping the router logits.
//
// The unfused path (linear -> routeTop1 -> fusedRoutingLoss) saves the logits [N, m] for the
// backward pass (105 MB per pool at N = 25600, m = 1024, and on wasm every saved tensor is a
// copy). Here the backward pass recomputes them from x and the router: one extra matmul.
import * as tf from '@tensorflow/tfjs-core';
import { LINEAR, linear } from '../linear/index';
import { ROUTE_TOP1, routeTop1 } from '../routeTop1/index';
import type { RoutingLossWeights } from '../routingLoss/core';
import { ROUTING_LOSS, ROUTING_LOSS_GRAD, fusedRoutingLoss } from '../routingLoss/index';
import './grad';
import './kernel';
import { ArgumentError, assertFloatDtype, assertRank, assertShape, dim, hasKernel } from '../util/validate';

export const ROUTER_STEP = 'CollectiveKVRouterStep';
const OP = 'routeWithLoss';

export interface RouteWithLossResult {
  /** int32 [...]: chosen pool row per token (x's leading shape). */
  index: tf.Tensor;
  /** float32 [...]: sigmoid of the winning logit, differentiable. */
  gate: tf.Tensor;
  /** Weighted peak + balance loss over valid tokens; null when both weights are 0. */
  loss: tf.Scalar | null;
}

/**
 * Training-time routing of x [..., de] through router [de, m] (+ routerBias [m]): the top-1 index,
 * its gate and the routing loss (as `fusedRoutingLoss`; mask of x's leading shape, null = all
 * valid). Values and gradients equal linear + routeTop1 + fusedRoutingLoss, but nothing of size
 * [N, m] outlives the forward pass. Backends without the fused kernels run that unfused path.
 */
export function routeWithLoss(x: tf.Tensor, router: tf.Tensor, routerBias: tf.Tensor | null, mask: tf.Tensor | null,
  weights: RoutingLossWeights): RouteWithLossResult {
  checkInputs(x, router, routerBias, mask, weights);
  const fused = [ROUTER_STEP, LINEAR, ROUTE_TOP1, ROUTING_LOSS, ROUTING_LOSS_GRAD].every(hasKernel);
  const [index, gate, loss] = fused ? recomputingPath(x, router, routerBias, mask, weights) : unfusedPath(x, router, routerBias, mask, weights);
  return { index, gate, loss };
}

function withLoss(w: RoutingLossWeights): boolean {
  return w.peakWeight !== 0 || w.balanceWeight !== 0;
}

type Parts = [tf.Tensor, tf.Tensor, tf.Scalar | null];

/** The reference: logits kept on the tape by the loss. */
function unfusedPath(x: tf.Tensor, router: tf.Tensor, bias: tf.Tensor | null, mask: tf.Tensor | null, w: RoutingLossWeights): Parts {
  const [index, gate, loss] = tf.tidy(() => {
    const logits = linear(x, router, bias);
    const top = routeTop1(logits);
    return withLoss(w) ? [top.index, top.gate, fusedRoutingLoss(logits, mask, w)] : [top.index, top.gate];
  });
  return [index, gate, (loss as tf.Scalar | undefined) ?? null];
}

/** One kernel (./kernel): the logits live only inside it; the gradient (./grad) recomputes them. */
function recomputingPath(x: tf.Tensor, router: tf.Tensor, bias: tf.Tensor | null, mask: tf.Tensor | null, w: RoutingLossWeights): Parts {
  const attrs = { peakWeight: w.peakWeight, balanceWeight: w.balanceWeight } as unknown as tf.NamedAttrMap;
  const [index, gate, loss] = tf.tidy(() => {
    // Bias and mask are always given: tfjs cannot save an absent input for the backward pass.
    const b = bias ?? tf.zeros([dim(router, 1)]);
    const valid = mask == null ? tf.ones(x.shape.slice(0, -1)) : tf.cast(mask, 'float32');
    const [idx, g, l] = tf.engine().runKernel(ROUTER_STEP, { x, router, bias: b, mask: valid }, attrs) as tf.Tensor[];
    return withLoss(w) ? [idx, g, l] : [idx, g];
  });
  return [index, gate, (loss as tf.Scalar | undefined) ?? null];
}

function checkInputs(x: tf.Tensor, router: tf.Tensor, bias: tf.Tensor | null, mask: tf.Tensor | null, w: RoutingLossWeights): void {
  if (x.rank < 2) throw new ArgumentError(OP, 'x', 'a tensor of rank >= 2 ([..., inputDim])', `rank ${x.rank}`);
  assertFloatDtype(OP, 'x', x);
  assertRank(OP, 'router', router, [2]);
  assertFloatDtype(OP, 'router', router);
  assertShape(OP, 'router', router, [dim(x, -1), dim(router, 1)]);
  if (bias != null) {
    assertFloatDtype(OP, 'routerBias', bias);
    assertShape(OP, 'routerBias', bias, [dim(router, 1)]);
  }
  if (mask != null) {
    assertShape(OP, 'mask', mask, x.shape.slice(0, -1));
    if (mask.dtype !== 'float32' && mask.dtype !== 'int32' && mask.dtype !== 'bool') {
      throw new ArgumentError(OP, 'mask', 'a float32, int32 or bool tensor', `dtype ${mask.dtype}`);
    }
  }
  for (const key of ['peakWeight', 'balanceWeight'] as const) {
    const v = w[key];
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new ArgumentError(OP, key, 'a finite number >= 0', String(v));
  }
}
