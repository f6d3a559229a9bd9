// Gradient of linear (y = x W + b over the last axis), with rows = x's leading axes flattened:
//   dx = dy W^T,  dW = x^T dy,  db = sum_rows dy
// The transposes are explicit: wasm's matMul with transpose flags is 10-30x slower, and W and x
// are narrow, so transposing them is cheap. db is a product with a row of ones: wasm's Sum over
// the leading axis transposes dy first (~10x slower for [12800, 256]). Saved: x and W only
// (never the wide output).
import * as tf from '@tensorflow/tfjs-core';
import { dim } from '../util/validate';

// Equals LINEAR in ./index (not imported: see kernel.ts).
const LINEAR = 'CollectiveKVLinear';

tf.registerGradient({
  kernelName: LINEAR,
  inputsToSave: ['x', 'kernel'],
  gradFunc: (dy, saved) => {
    const [x, kernel] = saved;
    const dyT = dy as tf.Tensor;
    const [inDim, outDim] = kernel.shape as [number, number];
    const rows2d = () => tf.reshape(dyT, [-1, outDim]) as tf.Tensor2D;
    return {
      x: () => tf.tidy(() => tf.reshape(tf.matMul(rows2d(), tf.transpose(kernel as tf.Tensor2D)), x.shape)),
      kernel: () => tf.tidy(() => tf.matMul(tf.transpose(tf.reshape(x, [-1, inDim]) as tf.Tensor2D), rows2d())),
      bias: () => tf.tidy(() => {
        const rows = rows2d();
        return tf.reshape(tf.matMul(tf.ones([1, dim(rows, 0)]), rows), [outDim]);
      }),
    };
  },
});
