// Top-1 routing plus its peak + balance loss for training, without keeping the router logits.
//
// The unfused path (linear -> routeTop1 -> fusedRoutingLoss) saves the logits [N, m] for the
// backward pass (105 MB per pool at N = 25600, m = 1024, and on wasm every saved tensor is a
// copy). Here the backward pass recomputes them from x and the router: one extra matmul.
import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from '../gatherRows/index';
import { LINEAR, ROUTE_TOP1, ROUTER_STEP, ROUTING_LOSS, ROUTING_LOSS_GRAD } from '../kernelNames';
import { linear } from '../linear/index';
import { routeTop1 } from '../routeTop1/index';
import type { RoutingLossWeights } from '../routingLoss/core';
import { fusedRoutingLoss } from '../routingLoss/index';
import { ArgumentError, assertFloatDtype, assertRank, assertRowSample, assertShape, dim, hasKernel } from '../util/validate';

export { ROUTER_STEP } from '../kernelNames';
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
 *
 * balanceRows (int32 [S], distinct row indices into x's flattened leading rows, or null = all):
 * the balance term's mean softmax is taken over those rows only (an estimate of the full mean),
 * while the peak term and the gate still cover every row. The balance term is the one that needs
 * every row's full softmax and a dense [N, m] gradient; with S << N the step costs about the
 * router's forward matmul plus S rows of that work.
 */
export function routeWithLoss(x: tf.Tensor, router: tf.Tensor, routerBias: tf.Tensor | null, mask: tf.Tensor | null,
  weights: RoutingLossWeights, balanceRows: tf.Tensor | null = null): RouteWithLossResult {
  checkInputs(x, router, routerBias, mask, weights, balanceRows);
  const rows = weights.balanceWeight === 0 ? null : balanceRows;
  const fused = [ROUTER_STEP, LINEAR, ROUTE_TOP1, ROUTING_LOSS, ROUTING_LOSS_GRAD].every(hasKernel);
  const [index, gate, loss] = fused ? recomputingPath(x, router, routerBias, mask, weights, rows)
    : unfusedPath(x, router, routerBias, mask, weights, rows);
  return { index, gate, loss };
}

function withLoss(w: RoutingLossWeights): boolean {
  return w.peakWeight !== 0 || w.balanceWeight !== 0;
}

type Parts = [tf.Tensor, tf.Tensor, tf.Scalar | null];

/** The reference: logits kept on the tape by the loss. */
function unfusedPath(x: tf.Tensor, router: tf.Tensor, bias: tf.Tensor | null, mask: tf.Tensor | null, w: RoutingLossWeights,
  balanceRows: tf.Tensor | null): Parts {
  const [index, gate, loss] = tf.tidy(() => {
    const logits = linear(x, router, bias);
    const top = routeTop1(logits);
    if (!withLoss(w)) return [top.index, top.gate];
    return [top.index, top.gate, balanceRows == null ? fusedRoutingLoss(logits, mask, w) : sampledLoss(logits, mask, w, balanceRows)];
  });
  return [index, gate, (loss as tf.Scalar | undefined) ?? null];
}

/** Peak over every valid row plus balance over the rows in balanceRows (the composite of what the fused kernel does). */
function sampledLoss(logits: tf.Tensor, mask: tf.Tensor | null, w: RoutingLossWeights, balanceRows: tf.Tensor): tf.Scalar {
  const m = dim(logits, -1);
  const flatMask = mask == null ? null : tf.reshape(tf.cast(mask, 'float32'), [-1]);
  // gatherRows, not tf.gather: wasm has no UnsortedSegmentSum for tf.gather's gradient.
  const balance = fusedRoutingLoss(gatherRows(tf.reshape(logits, [-1, m]), balanceRows), flatMask == null ? null : tf.gather(flatMask, balanceRows),
    { peakWeight: 0, balanceWeight: w.balanceWeight });
  if (w.peakWeight === 0) return balance;
  return tf.add(fusedRoutingLoss(logits, mask, { peakWeight: w.peakWeight, balanceWeight: 0 }), balance) as tf.Scalar;
}

/**
 * One kernel (./kernel): the logits live only inside it; the gradient (./grad) recomputes them.
 * The kernel sees rows: x [N, de], mask [N]; index and gate come back in x's leading shape.
 */
function recomputingPath(x: tf.Tensor, router: tf.Tensor, bias: tf.Tensor | null, mask: tf.Tensor | null, w: RoutingLossWeights,
  balanceRows: tf.Tensor | null): Parts {
  const attrs = { peakWeight: w.peakWeight, balanceWeight: w.balanceWeight, sampled: balanceRows != null } as unknown as tf.NamedAttrMap;
  const leading = x.shape.slice(0, -1);
  const [index, gate, loss] = tf.tidy(() => {
    // Bias, mask and balanceRows are always given: tfjs cannot save an absent input for the backward pass.
    const b = bias ?? tf.zeros([dim(router, 1)]);
    const valid = mask == null ? tf.ones([x.size / dim(x, -1)]) : tf.reshape(tf.cast(mask, 'float32'), [-1]);
    const rows = balanceRows ?? tf.zeros([1], 'int32');
    const x2 = tf.reshape(x, [-1, dim(x, -1)]);
    const [idx, g, l] = tf.engine().runKernel(ROUTER_STEP, { x: x2, router, bias: b, mask: valid, balanceRows: rows }, attrs) as tf.Tensor[];
    const shaped = [tf.reshape(idx, leading), tf.reshape(g, leading)];
    return withLoss(w) ? [...shaped, l] : shaped;
  });
  return [index, gate, (loss as tf.Scalar | undefined) ?? null];
}

function checkInputs(x: tf.Tensor, router: tf.Tensor, bias: tf.Tensor | null, mask: tf.Tensor | null, w: RoutingLossWeights,
  balanceRows: tf.Tensor | null): void {
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
  if (balanceRows != null) assertRowSample(OP, 'balanceRows', balanceRows);
  for (const key of ['peakWeight', 'balanceWeight'] as const) {
    const v = w[key];
    if (!(typeof v === 'number' && Number.isFinite(v) && v >= 0)) throw new ArgumentError(OP, key, 'a finite number >= 0', String(v));
  }
}
