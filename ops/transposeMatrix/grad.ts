// Gradient of transposeMatrix: the transpose of dy.
import * as tf from '@tensorflow/tfjs-core';

// Equals TRANSPOSE_MATRIX in ./index (not imported: see cpu.ts).
const TRANSPOSE_MATRIX = 'CollectiveKVTransposeMatrix';

tf.registerGradient({
  kernelName: TRANSPOSE_MATRIX,
  gradFunc: (dy) => ({ x: () => tf.engine().runKernel(TRANSPOSE_MATRIX, { x: dy as tf.Tensor }, {}) as tf.Tensor }),
});
