import * as tf from '@tensorflow/tfjs-core';
import { ROUTE_TOP1 } from '../kernelNames';
import { assertFloatDtype, assertRank, hasKernel } from '../util/validate';

export { ROUTE_TOP1, ROUTE_TOP1_GRAD } from '../kernelNames';

export interface RouteTop1Result {
  /** int32 [...], the winning pool row per token. */
  index: tf.Tensor;
  /** float32 [...], sigmoid of the winning logit (the training-time gate). */
  gate: tf.Tensor;
}

/**
 * Top-1 routing: argmax over the last axis of `logits` [..., poolSize] and the sigmoid of the
 * winning logit. The gradient flows through `gate` only (the index is piecewise constant).
 * Ties resolve to the lowest index, as tf.argMax does.
 */
export function routeTop1(logits: tf.Tensor): RouteTop1Result {
  assertRank('routeTop1', 'logits', logits, [1, 2, 3, 4]);
  assertFloatDtype('routeTop1', 'logits', logits);
  if (hasKernel(ROUTE_TOP1)) {
    // poolSize rides along as an attr so the gradient need not save the (wide) logits.
    const attrs = { poolSize: logits.shape[logits.rank - 1] };
    const [index, gate] = tf.engine().runKernel(ROUTE_TOP1, { logits }, attrs) as tf.Tensor[];
    return { index, gate };
  }
  return routeTop1Composite(logits);
}

/** Plain tfjs ops; used on backends without a kernel. Autodiff gives the same gradient. */
export function routeTop1Composite(logits: tf.Tensor): RouteTop1Result {
  return tf.tidy(() => {
    const index = tf.cast(tf.argMax(logits, -1), 'int32');
    const gate = tf.sigmoid(tf.max(logits, -1));
    return { index, gate };
  });
}
