// The backend's own BatchMatMul on untransposed operands: the cpu kernel, and the wasm kernel's
// path for products too small to gain from one XNNPACK call per entry.
import * as tf from '@tensorflow/tfjs-core';

const OP = 'batchedMatMul';

export function ownBatchMatMul(backendName: string, a: tf.TensorInfo, b: tf.TensorInfo, backend: {}): tf.TensorInfo {
  const kernel = tf.getKernel(tf.BatchMatMul, backendName);
  if (kernel == null) throw new Error(`${OP}: the ${backendName} backend has no BatchMatMul kernel`);
  return kernel.kernelFunc({ inputs: { a, b }, backend, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
}
