// Gradient of c = a b (per batch entry): da = dc b^T, db = a^T dc, both through batchedMatMul so
// the backward products take the same fast path as the forward one.
import * as tf from '@tensorflow/tfjs-core';
import { batchedMatMul } from './index';

// Equals BATCHED_MAT_MUL in ./index (not imported as a value: index.ts imports this file first, TDZ).
const BATCHED_MAT_MUL = 'CollectiveKVBatchedMatMul';

tf.registerGradient({
  kernelName: BATCHED_MAT_MUL,
  inputsToSave: ['a', 'b'],
  gradFunc: (dy, saved) => {
    const [a, b] = saved;
    return {
      a: () => batchedMatMul(dy as tf.Tensor, b, false, true),
      b: () => batchedMatMul(a, dy as tf.Tensor, true, false),
    };
  },
});
