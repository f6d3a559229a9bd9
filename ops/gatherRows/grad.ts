// Gradient of gatherRows (out = gate * table[index]):
//   d table = scatterAddRows(dy * gate, index, numRows)   (our fast scatter-add, not tfjs's)
//   d gate  = sum(dy * table[index], -1)
//   d index = zeros (indices are not differentiable)
// The op always hands the kernel a gate while a gradient tape records (see index.ts), because
// tfjs saves inputs by name and cannot save an absent one.
import * as tf from '@tensorflow/tfjs-core';
import { scatterAddRows } from '../scatterAddRows/index';
import { gatherRows } from './index';

// Equals GATHER_ROWS in ./index (not imported: see cpu.ts).
const GATHER_ROWS = 'CollectiveKVGatherRows';

tf.registerGradient({
  kernelName: GATHER_ROWS,
  inputsToSave: ['table', 'index', 'gate'],
  gradFunc: (dy, saved) => {
    const [table, index, gate] = saved;
    const dyT = dy as tf.Tensor;
    const numRows = table.shape[0] as number;
    return {
      table: () => tf.tidy(() => scatterAddRows(tf.mul(dyT, tf.expandDims(gate, -1)), index, numRows)),
      gate: () => tf.tidy(() => tf.sum(tf.mul(dyT, gatherRows(table, index)), -1)),
      index: () => tf.zeros(index.shape, 'float32'),
    };
  },
});
