// Gradient of scatterAddRows (out[r] = sum of rows[p] with index[p] == r): d rows = dy[index],
// i.e. a row lookup; the index gets zeros (not differentiable).
import * as tf from '@tensorflow/tfjs-core';
import { gatherRows } from '../gatherRows/index';
import { SCATTER_ADD_ROWS } from '../kernelNames';

export const scatterAddRowsGradientConfig: tf.GradConfig = {
  kernelName: SCATTER_ADD_ROWS,
  inputsToSave: ['index'],
  gradFunc: (dy, saved) => {
    const [index] = saved;
    return {
      rows: () => gatherRows(dy as tf.Tensor, index),
      index: () => tf.zeros(index.shape, 'float32'),
    };
  },
};
