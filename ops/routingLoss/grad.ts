// Gradient of the fused routing loss: one kernel call that writes d logits directly (see ./core for
// the formula). Saved for it: logits, the mask and the forward's meanProb [m]; nothing full-size
// beyond the logits themselves. The mask is data, not a parameter: its gradient is zero.
import * as tf from '@tensorflow/tfjs-core';

// Equal ROUTING_LOSS / ROUTING_LOSS_GRAD in ./index (not imported: see cpu.ts).
const ROUTING_LOSS = 'CollectiveKVRoutingLoss';
const ROUTING_LOSS_GRAD = 'CollectiveKVRoutingLossGrad';

tf.registerGradient({
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
});
