// Gradient of transposeMatrix: the transpose of dy.
import * as tf from '@tensorflow/tfjs-core';
import { TRANSPOSE_MATRIX } from '../kernelNames';

export const transposeMatrixGradientConfig: tf.GradConfig = {
  kernelName: TRANSPOSE_MATRIX,
  gradFunc: (dy) => ({ x: () => tf.engine().runKernel(TRANSPOSE_MATRIX, { x: dy as tf.Tensor }, {}) as tf.Tensor }),
};
