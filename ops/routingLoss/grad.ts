// Gradient of the fused routing loss: one kernel call that writes d logits directly (see ./core for
// the formula). Saved for it: logits, the mask and the forward's meanProb [m]; nothing full-size
// beyond the logits themselves. The mask is data, not a parameter: its gradient is zero.
import * as tf from '@tensorflow/tfjs-core';
import { ROUTING_LOSS, ROUTING_LOSS_GRAD } from '../kernelNames';

export const routingLossGradientConfig: tf.GradConfig = {
  kernelName: ROUTING_LOSS,
  inputsToSave: ['logits', 'mask'],
  outputsToSave: [false, true],
  gradFunc: (dys, saved, attrs) => {
    const [logits, mask, meanProb] = saved;
    const dy = (dys as tf.Tensor[])[0];
    return {
      logits: () => tf.engine().runKernel(ROUTING_LOSS_GRAD, { dy, logits, mask, meanProb }, attrs) as tf.Tensor,
      mask: () => tf.zeros(mask.shape, 'float32'),
    };
  },
};
