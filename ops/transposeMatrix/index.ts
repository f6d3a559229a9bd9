import * as tf from '@tensorflow/tfjs-core';
import { TRANSPOSE_MATRIX } from '../kernelNames';
import { assertRank, hasKernel } from '../util/validate';

export { TRANSPOSE_MATRIX } from '../kernelNames';

/**
 * The transpose of a matrix [rows, cols] -> [cols, rows] (float32 or int32).
 *
 * Why not tf.transpose: wasm's Transpose kernel runs a generic n-d loop, ~10 ns an element (237 ms
 * for a [6400, 3417] softmax); the cache-blocked copy here takes ~70 ms. It lets a product with a
 * wide matrix put that matrix on the left, where XNNPACK does not repack it (catalogCrossEntropy's
 * table gradient). Other backends run tf.transpose.
 */
export function transposeMatrix<T extends tf.Tensor2D>(x: T): T {
  assertRank('transposeMatrix', 'x', x, [2]);
  if (hasKernel(TRANSPOSE_MATRIX)) return tf.engine().runKernel(TRANSPOSE_MATRIX, { x }, {}) as T;
  return tf.transpose(x);
}
