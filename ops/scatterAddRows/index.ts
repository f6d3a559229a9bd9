import * as tf from '@tensorflow/tfjs-core';
import { assertSameLeadingShape } from '../gatherRows/index';
import { SCATTER_ADD_ROWS } from '../kernelNames';
import { assertFloatDtype, assertIntDtype, assertPositiveInt, hasKernel } from '../util/validate';

export { SCATTER_ADD_ROWS } from '../kernelNames';

/**
 * The gradient of a row lookup: out[r, :] = sum over positions p with index[p] == r of rows[p, :].
 * rows: float32 [..., width]; index: int32 [...] (rows' leading shape); numRows: the table's row count.
 */
export function scatterAddRows(rows: tf.Tensor, index: tf.Tensor, numRows: number): tf.Tensor {
  assertFloatDtype('scatterAddRows', 'rows', rows);
  assertIntDtype('scatterAddRows', 'index', index);
  assertPositiveInt('scatterAddRows', 'numRows', numRows);
  assertSameLeadingShape('scatterAddRows', 'rows', rows, index.shape);
  if (hasKernel(SCATTER_ADD_ROWS)) {
    return tf.engine().runKernel(SCATTER_ADD_ROWS, { rows, index }, { numRows }) as tf.Tensor;
  }
  return scatterAddRowsComposite(rows, index, numRows);
}

export function scatterAddRowsComposite(rows: tf.Tensor, index: tf.Tensor, numRows: number): tf.Tensor {
  return tf.tidy(() => {
    const width = rows.shape[rows.rank - 1];
    return tf.unsortedSegmentSum(tf.reshape(rows, [-1, width]), tf.reshape(index, [-1]), numRows);
  });
}
