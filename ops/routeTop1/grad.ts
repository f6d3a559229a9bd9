// Gradient of routeTop1: only the gate is differentiable (the index is piecewise constant), so
// d logits is zero except at the winning column: dgate * g * (1 - g). On cpu and wasm a kernel
// writes exactly that; elsewhere a composite (one-hot mask times the local gradient).
import * as tf from '@tensorflow/tfjs-core';
import { ROUTE_TOP1, ROUTE_TOP1_GRAD } from '../kernelNames';
import { hasKernel } from '../util/validate';

export const routeTop1GradientConfig: tf.GradConfig = {
  kernelName: ROUTE_TOP1,
  // Not the logits: only their width is needed (attr poolSize), and a saved tensor is a full copy
  // on wasm.
  inputsToSave: [],
  outputsToSave: [true, true],
  gradFunc: (dys, saved, attrs) => {
    const [index, gate] = saved;
    const dgate = (dys as (tf.Tensor | null)[])[1];
    const poolSize = Number(attrs.poolSize);
    return {
      logits: () => {
        // Only the index reached the loss (e.g. an ungated lookup): no gradient flows.
        if (dgate == null) return tf.zeros([...index.shape, poolSize]);
        if (hasKernel(ROUTE_TOP1_GRAD)) return tf.engine().runKernel(ROUTE_TOP1_GRAD, { dgate, index, gate }, { poolSize }) as tf.Tensor;
        return routeTop1GradComposite(dgate, index, gate, poolSize);
      },
    };
  },
};

function routeTop1GradComposite(dgate: tf.Tensor, index: tf.Tensor, gate: tf.Tensor, poolSize: number): tf.Tensor {
  return tf.tidy(() => {
    const local = tf.mul(dgate, tf.mul(gate, tf.sub(1, gate)));
    // Not tf.oneHot(..., 'float32'): tfjs 4.22's wasm OneHot writes int bits into float outputs.
    const winner = tf.cast(tf.equal(tf.expandDims(index, -1), tf.range(0, poolSize, 1, 'int32')), 'float32');
    return tf.mul(winner, tf.expandDims(local, -1));
  });
}
