// Gradient of c = a b (per batch entry): da = dc b^T, db = a^T dc, both through batchedMatMul so
// the backward products take the same fast path as the forward one.
import * as tf from '@tensorflow/tfjs-core';
import { BATCHED_MAT_MUL } from '../kernelNames';
import { batchedMatMul } from './index';

export const batchedMatMulGradientConfig: tf.GradConfig = {
  kernelName: BATCHED_MAT_MUL,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved) => {
    const [a, b] = saved;
    return {
      a: () => batchedMatMul(dy as tf.Tensor, b, false, true),
      b: () => batchedMatMul(a, dy as tf.Tensor, true, false),
    };
  },
};
