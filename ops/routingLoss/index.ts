import * as tf from '@tensorflow/tfjs-core';
import { ROUTING_LOSS, ROUTING_LOSS_GRAD } from '../kernelNames';
import { ArgumentError, assertFloatDtype, assertShape, describeShape, dim, hasKernel } from '../util/validate';
// RoutingLossWeights is not re-exported: the layers export an interface of that name
// (GlobalKVPool.ts), structurally the same.
import type { RoutingLossWeights } from './core';

export { ROUTING_LOSS, ROUTING_LOSS_GRAD } from '../kernelNames';
const OP = 'fusedRoutingLoss';

/**
 * Weighted peak + balance loss of one routed pool (docs/design.md section 2.2), averaged over valid tokens:
 *   peak    = -mean_valid log sigmoid(max logit)
 *   balance = KL(mean_valid softmax(logits) || uniform(m))
 * logits: float32 [..., m]; mask: logits' leading shape (1 valid, 0 padding; float32, int32 or
 * bool), null = all valid. Means divide by max(valid count, 1); a weight of 0 skips its term.
 * Returns a float32 scalar.
 *
 * On cpu and wasm one kernel computes it in a pass over the rows, and the gradient kernel writes
 * d logits directly (the composite keeps ~10 logits-sized intermediates alive per pool); webgpu
 * runs a short chain of programs that writes nothing logits-sized but dlogits. Other backends
 * (webgl) run the composite. Not named routingLoss: that is the layers'
 * wrapper (GlobalKVPool.ts), which returns null when both weights are 0.
 * Ties: the kernel's peak gradient goes to the first maximum (as routeTop1); the composite's
 * tf.max gradient goes to every tied maximum.
 */
export function fusedRoutingLoss(logits: tf.Tensor, mask: tf.Tensor | null, weights: RoutingLossWeights): tf.Scalar {
  checkInputs(logits, mask, weights);
  if (!hasKernel(ROUTING_LOSS) || !hasKernel(ROUTING_LOSS_GRAD)) return routingLossComposite(logits, mask, weights);
  const attrs = { peakWeight: weights.peakWeight, balanceWeight: weights.balanceWeight };
  return tf.tidy(() => {
    // The kernel always gets a mask: tfjs cannot save an absent input for the backward pass.
    const valid = mask ?? tf.ones(logits.shape.slice(0, -1), 'float32');
    // The second output (meanProb [m]) only feeds the gradient; this tidy disposes it.
    const [loss] = tf.engine().runKernel(ROUTING_LOSS, { logits, mask: valid }, attrs as unknown as tf.NamedAttrMap) as tf.Tensor[];
    return loss as tf.Scalar;
  });
}

/** The same loss from plain tfjs ops (autodiff gives the gradient); the fallback and the reference. */
export function routingLossComposite(logits: tf.Tensor, mask: tf.Tensor | null, weights: RoutingLossWeights): tf.Scalar {
  checkInputs(logits, mask, weights);
  return tf.tidy(() => {
    const m = dim(logits, -1);
    const flat = tf.reshape(logits, [-1, m]);
    const valid = mask == null ? tf.onesLike(tf.slice(flat, [0, 0], [-1, 1])) : tf.reshape(tf.cast(mask, 'float32'), [-1, 1]);
    // max(count, 1): a batch of pure padding contributes 0 instead of NaN.
    const count = tf.maximum(tf.sum(valid), 1);
    let loss: tf.Tensor = tf.scalar(0);
    if (weights.peakWeight !== 0) {
      // -softplus(-x) rather than tf.logSigmoid: logSigmoid is a customGrad whose saved input is
      // disposed by this tidy before the backward pass runs.
      const logSig = tf.neg(tf.softplus(tf.neg(tf.max(flat, -1, true))));
      loss = tf.add(loss, tf.mul(-weights.peakWeight, tf.div(tf.sum(tf.mul(logSig, valid)), count)));
    }
    if (weights.balanceWeight !== 0) {
      const meanProb = tf.div(tf.sum(tf.mul(tf.softmax(flat), valid), 0), count);
      // KL(p || 1/m) = sum p log(p m); the clamp keeps log finite for rows nobody uses.
      const kl = tf.sum(tf.mul(meanProb, tf.log(tf.mul(tf.maximum(meanProb, 1e-30), m))));
      loss = tf.add(loss, tf.mul(weights.balanceWeight, kl));
    }
    return loss as tf.Scalar;
  });
}

function checkInputs(logits: tf.Tensor, mask: tf.Tensor | null, weights: RoutingLossWeights): void {
  if (logits.rank < 1) throw new ArgumentError(OP, 'logits', 'a tensor of rank >= 1 ([..., poolSize])', 'a scalar');
  assertFloatDtype(OP, 'logits', logits);
  if (dim(logits, -1) < 1) {
    throw new ArgumentError(OP, 'logits', 'a non-empty pool axis', `shape ${describeShape(logits.shape)}`);
  }
  if (mask != null) {
    assertShape(OP, 'mask', mask, logits.shape.slice(0, -1));
    if (mask.dtype !== 'float32' && mask.dtype !== 'int32' && mask.dtype !== 'bool') {
      throw new ArgumentError(OP, 'mask', 'a float32, int32 or bool tensor', `dtype ${mask.dtype}`);
    }
  }
  for (const key of ['peakWeight', 'balanceWeight'] as const) {
    const w = weights[key];
    if (!(typeof w === 'number' && Number.isFinite(w) && w >= 0)) {
      throw new ArgumentError(OP, key, 'a finite number >= 0', String(w));
    }
  }
}
