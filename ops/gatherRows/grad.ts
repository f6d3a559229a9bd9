// Gradient of gatherRows (out = concat(gate * table[index], tail)), with dyRows = dy[..., :width]:
//   d table = scatter-add of dyRows * gate into the table's rows
//   d gate  = sum(dyRows * table[index], -1)
//   d tail  = dy[..., width:]
//   d index = zeros (indices are not differentiable)
// On cpu and wasm each is one pass over dy by its own kernel (reading dy in place, with its row
// stride: no slice of dy is made); elsewhere composite ops.
// The op always hands the kernel a gate while a gradient tape records (see index.ts), because
// tfjs saves inputs by name and cannot save an absent one.
import * as tf from '@tensorflow/tfjs-core';
import { GATHER_ROWS, GATHER_ROWS_GATE_GRAD, GATHER_ROWS_TABLE_GRAD, GATHER_ROWS_TAIL_GRAD } from '../kernelNames';
import { scatterAddRows } from '../scatterAddRows/index';
import { hasKernel } from '../util/validate';
import { gatherRows } from './index';

export const gatherRowsGradientConfig: tf.GradConfig = {
  kernelName: GATHER_ROWS,
  inputsToSave: ['table', 'index', 'gate'],
  gradFunc: (dy, saved) => {
    const [table, index, gate] = saved;
    const dyT = dy as tf.Tensor;
    const [numRows, width] = table.shape as [number, number];
    const tailWidth = dyT.shape[dyT.rank - 1] - width;
    const dyRows = () => (tailWidth === 0 ? dyT : tf.slice(dyT, dyT.shape.map(() => 0), [...index.shape, width]));
    return {
      table: () => (hasKernel(GATHER_ROWS_TABLE_GRAD)
        ? tf.engine().runKernel(GATHER_ROWS_TABLE_GRAD, { dy: dyT, index, gate }, { numRows, width }) as tf.Tensor
        : scatterAddRows(tf.mul(dyRows(), tf.expandDims(gate, -1)), index, numRows)),
      gate: () => (hasKernel(GATHER_ROWS_GATE_GRAD)
        ? tf.engine().runKernel(GATHER_ROWS_GATE_GRAD, { dy: dyT, table, index }, {}) as tf.Tensor
        : tf.sum(tf.mul(dyRows(), gatherRows(table, index)), -1)),
      tail: () => (hasKernel(GATHER_ROWS_TAIL_GRAD)
        ? tf.engine().runKernel(GATHER_ROWS_TAIL_GRAD, { dy: dyT }, { width }) as tf.Tensor
        : tf.slice(dyT, [...index.shape.map(() => 0), width], [...index.shape, tailWidth])),
      index: () => tf.zeros(index.shape, 'float32'),
    };
  },
};
