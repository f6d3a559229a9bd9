// Gradient of routeTop1: only the gate is differentiable (the index is piecewise constant), so
// d logits is zero except at the winning column: dgate * g * (1 - g).
import * as tf from '@tensorflow/tfjs-core';
// Equals ROUTE_TOP1 in ./index. Not imported: index.ts imports this file first, so the constant
// would still be uninitialized (TDZ) when this module registers.
const ROUTE_TOP1 = 'CollectiveKVRouteTop1';

tf.registerGradient({
  kernelName: ROUTE_TOP1,
  inputsToSave: ['logits'],
  outputsToSave: [true, true],
  gradFunc: (dys, saved) => {
    const [logits, index, gate] = saved;
    const dgate = (dys as tf.Tensor[])[1];
    return {
      logits: () => tf.tidy(() => {
        const poolSize = logits.shape[logits.rank - 1] as number;
        const local = tf.mul(dgate, tf.mul(gate, tf.sub(1, gate)));
        // Not tf.oneHot(..., 'float32'): tfjs 4.22's wasm OneHot writes int bits into float outputs.
        const winner = tf.cast(tf.equal(tf.expandDims(index, -1), tf.range(0, poolSize, 1, 'int32')), 'float32');
        return tf.mul(winner, tf.expandDims(local, -1));
      }),
    };
  },
});
