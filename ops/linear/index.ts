import * as tf from '@tensorflow/tfjs-core';
import { LINEAR } from '../kernelNames';
import { ArgumentError, assertFloatDtype, assertRank, assertShape, describeShape, dim, hasKernel } from '../util/validate';

export { LINEAR } from '../kernelNames';
// The gradient's math, shared with the layers' straightThroughLinear (./grad registers nothing).
export { linearGradients } from './grad';
const OP = 'linear';

/**
 * y = x kernel + bias over the last axis: x [..., in], kernel [in, out], bias [out] | null -> [..., out].
 *
 * Why not matMul + add + reshape: under a gradient tape tfjs saves Add's and Reshape's inputs, and
 * on wasm every saved tensor is a copy (its Identity kernel copies), so a wide output such as the
 * router logits [B*T, poolSize] was stored three extra times. This kernel saves only x and kernel
 * (narrow), and its gradient multiplies by explicitly transposed operands: wasm's matMul with
 * transpose flags is 10-30x slower than on pre-transposed inputs.
 */
export function linear(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
  checkInputs(x, kernel, bias);
  // _FusedMatMul is looked up when the kernel runs: the backend package may load after this one.
  if (!hasKernel(LINEAR) || !hasKernel(tf._FusedMatMul)) return linearComposite(x, kernel, bias);
  return tf.tidy(() => {
    // The kernel always gets a bias: tfjs cannot save an absent input for the backward pass.
    const b = bias ?? tf.zeros([dim(kernel, 1)], 'float32');
    return tf.engine().runKernel(LINEAR, { x, kernel, bias: b }, {}) as tf.Tensor;
  });
}

/** Plain tfjs ops (autodiff gives the gradient); the fallback and the reference. */
export function linearComposite(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null): tf.Tensor {
  return tf.tidy(() => {
    const lead = x.shape.slice(0, -1);
    let y: tf.Tensor = tf.matMul(tf.reshape(x, [-1, dim(x, -1)]) as tf.Tensor2D, kernel as tf.Tensor2D);
    if (bias != null) y = tf.add(y, bias);
    return tf.reshape(y, [...lead, dim(kernel, 1)]);
  });
}

function checkInputs(x: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor | null): void {
  if (x.rank < 1) throw new ArgumentError(OP, 'x', 'a tensor of rank >= 1', 'a scalar');
  assertFloatDtype(OP, 'x', x);
  assertRank(OP, 'kernel', kernel, [2]);
  assertFloatDtype(OP, 'kernel', kernel);
  if (dim(kernel, 0) !== dim(x, -1)) {
    throw new ArgumentError(OP, 'kernel', `of shape [${dim(x, -1)}, out] (x's last axis first)`, `shape ${describeShape(kernel.shape)}`);
  }
  if (bias != null) {
    assertFloatDtype(OP, 'bias', bias);
    assertShape(OP, 'bias', bias, [dim(kernel, 1)]);
  }
}
