import * as tf from '@tensorflow/tfjs-core';
import { ArgumentError, assertFloatDtype, assertIntDtype, assertRank, assertShape, describeShape, hasKernel } from '../util/validate';
import './grad';
import './cpu';
import './wasm';
import './webgpu';

export const GATHER_ROWS = 'CollectiveKVGatherRows';

/**
 * Pool lookup: out[..., :] = gate[...] * table[index[...], :] (no gate: plain lookup).
 * table: float32 [numRows, width]; index: int32 [...]; gate: float32 of index's shape.
 * Indices outside [0, numRows) are rejected by the kernels.
 */
export function gatherRows(table: tf.Tensor, index: tf.Tensor, gate?: tf.Tensor): tf.Tensor {
  assertRank('gatherRows', 'table', table, [2]);
  assertFloatDtype('gatherRows', 'table', table);
  assertIntDtype('gatherRows', 'index', index);
  if (gate != null) {
    assertFloatDtype('gatherRows', 'gate', gate);
    assertShape('gatherRows', 'gate', gate, index.shape);
  }
  if (hasKernel(GATHER_ROWS)) {
    if (gate == null && tf.engine().isTapeOn()) {
      // Under a gradient tape the kernel needs a gate to save (tfjs cannot save an absent input
      // for the backward pass); a gate of ones gives the same output and table gradient.
      return tf.tidy(() => tf.engine().runKernel(GATHER_ROWS, { table, index, gate: tf.ones(index.shape, 'float32') }, {}) as tf.Tensor);
    }
    const inputs: tf.NamedTensorMap = gate == null ? { table, index } : { table, index, gate };
    return tf.engine().runKernel(GATHER_ROWS, inputs, {}) as tf.Tensor;
  }
  return gatherRowsComposite(table, index, gate);
}

export function gatherRowsComposite(table: tf.Tensor, index: tf.Tensor, gate?: tf.Tensor): tf.Tensor {
  return tf.tidy(() => {
    const rows = tf.gather(table, index);
    return gate == null ? rows : tf.mul(rows, tf.expandDims(gate, -1));
  });
}

export function assertSameLeadingShape(op: string, arg: string, t: tf.Tensor, leading: readonly number[]): void {
  const ok = t.rank === leading.length + 1 && leading.every((n, i) => t.shape[i] === n);
  if (!ok) {
    throw new ArgumentError(op, arg, `of shape ${describeShape([...leading, -1])} (index shape plus a row width)`,
      `shape ${describeShape(t.shape)}`);
  }
}
