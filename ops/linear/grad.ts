// Gradient of linear (y = x W + b over the last axis), with rows = x's leading axes flattened:
//   dx = dy W^T,  dW = x^T dy (or (dy^T x)^T),  db = sum_rows dy
// The transposes are explicit: wasm's matMul with transpose flags is 10-30x slower, and W and x
// are narrow, so transposing them is cheap. db is a product with a column of ones (see below).
// Saved: x and W only (never the wide output).
import * as tf from '@tensorflow/tfjs-core';
import { LINEAR } from '../kernelNames';
import { dim } from '../util/validate';

/**
 * Gradients of y = x kernel + bias (x [..., in], kernel [in, out]) for dy [..., out]: each a thunk,
 * as tfjs's gradFunc returns them. Shared with straightThroughLinear (layers), whose forward never
 * computes y.
 */
export function linearGradients(dy: tf.Tensor, x: tf.Tensor, kernel: tf.Tensor): { x: () => tf.Tensor; kernel: () => tf.Tensor; bias: () => tf.Tensor } {
  const [inDim, outDim] = kernel.shape as [number, number];
  const rows2d = () => tf.reshape(dy, [-1, outDim]) as tf.Tensor2D;
  return {
    x: () => tf.tidy(() => tf.reshape(tf.matMul(rows2d(), tf.transpose(kernel as tf.Tensor2D)), x.shape)),
    kernel: () => tf.tidy(() => {
      const x2d = tf.reshape(x, [-1, inDim]) as tf.Tensor2D;
      // XNNPACK repacks the right operand on every call (it cannot know a fresh tensor's values):
      // for [25856, 32] against [25856, 256] that repacking costs more than the product, so the
      // narrower of x and dy goes on the right (measured 58 ms against 116 ms a call).
      return inDim <= outDim ? tf.transpose(tf.matMul(tf.transpose(rows2d()), x2d)) : tf.matMul(tf.transpose(x2d), rows2d());
    }),
    bias: () => tf.tidy(() => {
      const rows = rows2d();
      // dy^T ones: with one output column the backend's plain loop wins (~10 ms at [25856, 256],
      // where ones x dy repacks all of dy for XNNPACK, ~60 ms, and Sum over axis 0 transposes it).
      return tf.reshape(tf.matMul(rows, tf.ones([dim(rows, 0), 1]), true, false), [outDim]);
    }),
  };
}

export const linearGradientConfig: tf.GradConfig = {
  kernelName: LINEAR,
  inputsToSave: ['x', 'kernel'],
  gradFunc: (dy, saved) => linearGradients(dy as tf.Tensor, saved[0], saved[1]),
};
