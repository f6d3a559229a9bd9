import * as tf from '@tensorflow/tfjs-core';
import { GATHER_ROWS } from '../kernelNames';
import { isTapeOn } from '../util/tfjsInternals';
import { ArgumentError, assertFloatDtype, assertIntDtype, assertRank, assertShape, describeShape, dim, hasKernel } from '../util/validate';

export { GATHER_ROWS, GATHER_ROWS_GATE_GRAD, GATHER_ROWS_TABLE_GRAD, GATHER_ROWS_TAIL_GRAD } from '../kernelNames';

/**
 * Pool lookup: out[..., :width] = gate[...] * table[index[...], :] (no gate: plain lookup), and
 * out[..., width:] = tail[...] when a tail is given: the collective part of a key/value joined to
 * its user part in one pass (no concat in the forward, no split in the backward).
 * table: float32 [numRows, width]; index: int32 [...]; gate: float32 of index's shape;
 * tail: float32 [..., tailWidth] with index's leading shape. Indices outside [0, numRows) are
 * rejected by the kernels.
 */
export function gatherRows(table: tf.Tensor, index: tf.Tensor, gate?: tf.Tensor, tail?: tf.Tensor): tf.Tensor {
  assertRank('gatherRows', 'table', table, [2]);
  assertFloatDtype('gatherRows', 'table', table);
  assertIntDtype('gatherRows', 'index', index);
  if (gate != null) {
    assertFloatDtype('gatherRows', 'gate', gate);
    assertShape('gatherRows', 'gate', gate, index.shape);
  }
  if (tail != null) {
    assertFloatDtype('gatherRows', 'tail', tail);
    assertSameLeadingShape('gatherRows', 'tail', tail, index.shape);
    // A zero-width tail joins nothing (and webgpu cannot bind an empty buffer).
    if (dim(tail, -1) === 0) tail = undefined;
  }
  if (!hasKernel(GATHER_ROWS)) return gatherRowsComposite(table, index, gate, tail);
  const inputs: tf.NamedTensorMap = { table, index };
  if (gate != null) inputs.gate = gate;
  if (tail != null) inputs.tail = tail;
  if (gate == null && isTapeOn()) {
    // Under a gradient tape the kernel needs a gate to save (tfjs cannot save an absent input
    // for the backward pass); a gate of ones gives the same output and table gradient.
    return tf.tidy(() => tf.engine().runKernel(GATHER_ROWS, { ...inputs, gate: tf.ones(index.shape, 'float32') }, {}) as tf.Tensor);
  }
  return tf.engine().runKernel(GATHER_ROWS, inputs, {}) as tf.Tensor;
}

/** tfjs ops only (gather, mul, concat): the reference the kernels are tested against. */
export function gatherRowsComposite(table: tf.Tensor, index: tf.Tensor, gate?: tf.Tensor, tail?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const raw = tf.gather(table, index);
    const rows = gate == null ? raw : tf.mul(raw, tf.expandDims(gate, -1));
    return tail == null || dim(tail, -1) === 0 ? rows : tf.concat([rows, tail], -1);
  });
}

export function assertSameLeadingShape(op: string, arg: string, t: tf.Tensor, leading: readonly number[]): void {
  const ok = t.rank === leading.length + 1 && leading.every((n, i) => t.shape[i] === n);
  if (!ok) {
    throw new ArgumentError(op, arg, `of shape ${describeShape([...leading, -1])} (index shape plus a row width)`,
      `shape ${describeShape(t.shape)}`);
  }
}
