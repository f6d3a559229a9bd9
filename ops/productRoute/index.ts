// Product-key routing: a pool of s*s rows addressed by two sub-routers of s keys each, as in
// product-key memories (Lample et al., 2019). The score of row i*s + j is a[i] + b[j] (a, b: the two
// sub-routers' logits), so the top-1 row is (argmax a, argmax b) and the router costs 2s instead of
// s*s columns per token. It is exactly a dense router whose kernel column i*s + j is
// A[:, i] + B[:, j]: gate, peak and balance losses are the paper's, taken over those joint logits.
// Built from tfjs ops (autodiff gives the gradient): everything here is [N, 2s] or [s, s].
import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from '../gatherRows/index';
import type { RoutingLossWeights } from '../routingLoss/core';
import { ArgumentError, assertFloatDtype, assertRowSample, assertShape, describeShape, dim } from '../util/validate';

const OP = 'productRoute';

export interface ProductRoute {
  /** int32 [...]: the chosen pool row, i * s + j. */
  index: tf.Tensor;
  /** float32 [...]: sigmoid(a[i] + b[j]), the joint winning logit's sigmoid; differentiable. */
  gate: tf.Tensor;
}

/**
 * The two sub-routers' logits, each float32 [..., s] of one leading shape: a scores the row block i,
 * b the row j within it. (Two tensors, not one [..., 2s] split here: on wasm the split and its
 * gradient's concat of the token-sized logits cost as much as the rest of the routing.)
 */
export interface SubRouterLogits {
  a: tf.Tensor;
  b: tf.Tensor;
}

/** Top-1 route of the joint logits a[i] + b[j]: index i * s + j and its gate, in a's leading shape. */
export function productRouteTop1(logits: SubRouterLogits): ProductRoute {
  const s = checkLogits(logits);
  const lead = logits.a.shape.slice(0, -1);
  const [index, gate] = tf.tidy(() => {
    const top = topPair(tf.reshape(logits.a, [-1, s]), tf.reshape(logits.b, [-1, s]));
    return [tf.reshape(top.index, lead), tf.reshape(tf.sigmoid(top.winner), lead)];
  });
  return { index, gate };
}

/**
 * Per row of a, b [N, s]: the joint index i*s + j and the winning logit a[i] + b[j] ([N]). The
 * winners are read with gatherRows (gradient: scatterAddRows) rather than tf.max, whose gradient
 * compares every logit with the max (tfjs's broadcast Equal: most of a training step on wasm).
 */
function topPair(a: tf.Tensor, b: tf.Tensor): { index: tf.Tensor; winner: tf.Tensor } {
  const [n, s] = [dim(a, 0), dim(a, 1)];
  const ia = tf.argMax(a, -1);
  const ib = tf.argMax(b, -1);
  const rowStart = tf.mul(tf.range(0, n, 1, 'int32'), tf.scalar(s, 'int32'));
  const pick = (part: tf.Tensor, column: tf.Tensor) => tf.reshape(gatherRows(tf.reshape(part, [n * s, 1]), tf.add(rowStart, column)), [n]);
  return { index: tf.add(tf.mul(ia, tf.scalar(s, 'int32')), ib), winner: tf.add(pick(a, ia), pick(b, ib)) };
}

/**
 * Weighted peak + balance loss (as fusedRoutingLoss) of the joint logits a[i] + b[j], without
 * forming them: the joint softmax is softmax(a) outer softmax(b), so its mean over valid tokens is
 * softmax(a)^T diag(mask) softmax(b) / count, an [s, s] matmul. mask: the logits' leading shape or
 * null. Returns null when both weights are 0.
 */
export function productRoutingLoss(logits: SubRouterLogits, mask: tf.Tensor | null, weights: RoutingLossWeights): tf.Scalar | null {
  const s = checkInputs(logits, mask);
  if (weights.peakWeight === 0 && weights.balanceWeight === 0) return null;
  return tf.tidy(() => {
    const [a, b] = [tf.reshape(logits.a, [-1, s]), tf.reshape(logits.b, [-1, s])];
    return routingLossOf(a, b, weights.peakWeight !== 0 ? topPair(a, b).winner : null, mask, weights);
  });
}

/**
 * productRouteTop1 and productRoutingLoss in one pass (training): the winners are found once, for
 * the route, the gate and the peak loss. balanceRows (int32 [S], distinct indices into the
 * flattened leading rows, or null = all): the balance term's mean joint softmax is taken over
 * those rows only (as routeWithLoss's), the peak term still over every valid row. The balance
 * term's [s, s] matmul costs N * poolSize: at a 16384-row pool and 25k tokens it was 1.5 s of a
 * 2.3 s training step on wasm.
 */
export function productRouteWithLoss(logits: SubRouterLogits, mask: tf.Tensor | null, weights: RoutingLossWeights,
  balanceRows: tf.Tensor | null = null): ProductRoute & { loss: tf.Scalar | null } {
  const s = checkInputs(logits, mask);
  if (balanceRows != null) assertRowSample(OP, 'balanceRows', balanceRows);
  const lead = logits.a.shape.slice(0, -1);
  const withLoss = weights.peakWeight !== 0 || weights.balanceWeight !== 0;
  const [index, gate, loss] = tf.tidy(() => {
    const [a, b] = [tf.reshape(logits.a, [-1, s]), tf.reshape(logits.b, [-1, s])];
    const top = topPair(a, b);
    const route = [tf.reshape(top.index, lead), tf.reshape(tf.sigmoid(top.winner), lead)];
    return withLoss ? [...route, routingLossOf(a, b, top.winner, mask, weights, balanceRows)] : route;
  });
  return { index, gate, loss: (loss as tf.Scalar | undefined) ?? null };
}

/**
 * The loss of flat a, b [N, s] given the winning joint logits [N] (needed only with a peak weight),
 * the balance term over balanceRows when given. Inside a tidy.
 */
function routingLossOf(a: tf.Tensor, b: tf.Tensor, winner: tf.Tensor | null, mask: tf.Tensor | null, weights: RoutingLossWeights,
  balanceRows: tf.Tensor | null = null): tf.Scalar {
  const s = dim(a, 1);
  const valid = mask == null ? tf.ones([dim(a, 0), 1]) : tf.reshape(tf.cast(mask, 'float32'), [-1, 1]);
  let loss: tf.Tensor = tf.scalar(0);
  if (weights.peakWeight !== 0 && winner != null) {
    // -log sigmoid(z) = softplus(-z) (tf.logSigmoid's customGrad loses its input in a tidy).
    const peak = tf.sum(tf.mul(tf.softplus(tf.neg(tf.reshape(winner, [-1, 1]))), valid));
    loss = tf.add(loss, tf.mul(weights.peakWeight, tf.div(peak, validCount(valid))));
  }
  if (weights.balanceWeight !== 0) {
    // gatherRows, not tf.gather: wasm has no UnsortedSegmentSum for tf.gather's gradient.
    const [ba, bb, bv] = balanceRows == null ? [a, b, valid] : [gatherRows(a, balanceRows), gatherRows(b, balanceRows), tf.gather(valid, balanceRows)];
    const meanProb = tf.div(tf.matMul(tf.mul(tf.softmax(ba), bv), tf.softmax(bb), true, false), validCount(bv));
    const kl = tf.sum(tf.mul(meanProb, tf.log(tf.mul(tf.maximum(meanProb, 1e-30), s * s))));
    loss = tf.add(loss, tf.mul(weights.balanceWeight, kl));
  }
  return loss as tf.Scalar;
}

/** max(count, 1): a batch of pure padding contributes 0 instead of NaN. */
function validCount(valid: tf.Tensor): tf.Tensor {
  return tf.maximum(tf.sum(valid), 1);
}

/** s with s * s = poolSize, or null when poolSize is not a perfect square. */
export function productSubKeys(poolSize: number): number | null {
  const s = Math.round(Math.sqrt(poolSize));
  return s * s === poolSize ? s : null;
}

/** checkLogits, and mask of the logits' leading shape when given; returns s. */
function checkInputs(logits: SubRouterLogits, mask: tf.Tensor | null): number {
  const s = checkLogits(logits);
  if (mask != null) assertShape(OP, 'mask', mask, logits.a.shape.slice(0, -1));
  return s;
}

/** Validates a and b (float, one shape [..., s]); returns s. */
function checkLogits(logits: SubRouterLogits): number {
  if (logits == null || !(logits.a instanceof tf.Tensor) || !(logits.b instanceof tf.Tensor)) {
    throw new ArgumentError(OP, 'logits', 'an object { a, b } of two tensors', String(logits));
  }
  const { a, b } = logits;
  assertFloatDtype(OP, 'logits.a', a);
  assertFloatDtype(OP, 'logits.b', b);
  if (a.rank < 1 || dim(a, -1) < 1) throw new ArgumentError(OP, 'logits.a', 'a tensor of shape [..., s], s >= 1', `shape ${describeShape(a.shape)}`);
  assertShape(OP, 'logits.b', b, a.shape);
  return dim(a, -1);
}
