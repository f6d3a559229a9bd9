import * as tf from '@tensorflow/tfjs-core';
import { BATCHED_MAT_MUL } from '../kernelNames';
import { ArgumentError, assertFloatDtype, describeShape, hasKernel } from '../util/validate';

export { BATCHED_MAT_MUL } from '../kernelNames';
const OP = 'batchedMatMul';

/**
 * a [..., M, K] x b [..., K, N] -> [..., M, N] over equal leading axes (no broadcasting); with
 * `transposeA` a is [..., K, M], with `transposeB` b is [..., N, K]. Attention's two products
 * (scores and weighted values) and their gradients.
 *
 * Why not tf.matMul: wasm's BatchMatMul hands XNNPACK only a single untransposed product; a batch
 * of them, or a transposed one, runs a scalar loop (measured at attention's [1024, 101, 101] x
 * [1024, 101, 64]: 1.5 GFLOP/s against 9-17 for this op's kernel, which runs XNNPACK once per batch
 * entry on the heap in place). Transposes are explicit copies for the same reason; the gradient
 * uses this op too, so the backward products run on the fast path as well.
 */
export function batchedMatMul(a: tf.Tensor, b: tf.Tensor, transposeA = false, transposeB = false): tf.Tensor {
  checkInputs(a, b, transposeA, transposeB);
  if (!hasKernel(BATCHED_MAT_MUL)) return tf.matMul(a, b, transposeA, transposeB);
  return tf.tidy(() => {
    const left = transposeA ? swapLastAxes(a) : a;
    const right = transposeB ? swapLastAxes(b) : b;
    return tf.engine().runKernel(BATCHED_MAT_MUL, { a: left, b: right }, {}) as tf.Tensor;
  });
}

function swapLastAxes(t: tf.Tensor): tf.Tensor {
  const perm = t.shape.map((_, i) => i);
  [perm[t.rank - 2], perm[t.rank - 1]] = [t.rank - 1, t.rank - 2];
  return tf.transpose(t, perm);
}

function checkInputs(a: tf.Tensor, b: tf.Tensor, transposeA: boolean, transposeB: boolean): void {
  for (const [name, t] of [['a', a], ['b', b]] as const) {
    if (t.rank < 3) throw new ArgumentError(OP, name, 'a tensor of rank >= 3 (batch axes, then a matrix)', `shape ${describeShape(t.shape)}`);
    assertFloatDtype(OP, name, t);
  }
  const lead = (t: tf.Tensor) => t.shape.slice(0, -2);
  if (a.rank !== b.rank || lead(a).some((d, i) => d !== lead(b)[i])) {
    throw new ArgumentError(OP, 'b', `the batch axes of a, [${lead(a).join(', ')}]`, `shape ${describeShape(b.shape)}`);
  }
  const innerA = a.shape[a.rank - (transposeA ? 2 : 1)];
  const innerB = b.shape[b.rank - (transposeB ? 1 : 2)];
  if (innerA !== innerB) {
    throw new ArgumentError(OP, 'b', `an inner axis of ${innerA} (a's ${transposeA ? 'rows' : 'columns'})`,
      `shape ${describeShape(b.shape)}${transposeB ? ' (transposed)' : ''}`);
  }
}
