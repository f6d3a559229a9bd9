// CPU kernel for scatterAddRows. Its scatter-add routine is THE cpu scatter-add of the package:
// the wasm kernel runs scatterAddInto on heap views, and useFastEmbeddingGradients() serves
// tfjs's UnsortedSegmentSum with scatterAddCpu / scatterAddInto.
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { SCATTER_ADD_ROWS } from '../kernelNames';
import { cpuValues } from '../util/tfjsInternals';
import { assertIndicesInRange, kernelInput, sizeOf } from '../util/validate';

const OP = 'scatterAddRows';

/** Typed arrays the scatter-add accumulates in (float32, int32 tensors). */
export type NumericArray = Float32Array | Int32Array;

/**
 * out[index[p], :] += scale[p] * rows[p, :width] for every position p (no scale: 1), rows
 * `rowStride` apart (default: width); `out` must start zeroed. Ids outside [0, numRows) are
 * skipped (tfjs's UnsortedSegmentSum semantics; our own ops reject them before calling). One pass
 * over the rows, row-major inner loop: O(positions * width), independent of numRows, where tfjs's
 * cpu kernel is O(numRows * positions * width). The stride and scale serve gatherRows' backward
 * pass, which reads the table's columns of a wider gradient and scales them by the gate.
 */
export function scatterAddInto(out: NumericArray, rows: NumericArray, index: Int32Array, width: number, numRows: number,
  rowStride = width, scale: Float32Array | null = null): void {
  for (let p = 0, src = 0; p < index.length; p++, src += rowStride) {
    const r = index[p];
    if (r < 0 || r >= numRows) continue;
    const dst = r * width;
    const g = scale == null ? 1 : scale[p];
    if (g === 1) {
      for (let k = 0; k < width; k++) out[dst + k] += rows[src + k];
    } else {
      for (let k = 0; k < width; k++) out[dst + k] += g * rows[src + k];
    }
  }
}

/** Row width of a scatter: elements of `rows` per index entry (outShape decides when empty). */
export function scatterWidth(rowsShape: readonly number[], indexSize: number, outShape: readonly number[]): number {
  return indexSize > 0 ? sizeOf(rowsShape) / indexSize : sizeOf(outShape.slice(1));
}

/** Allocates a zeroed output of `outShape` in rows' dtype and scatter-adds `rows` into it. */
export function scatterAddCpu(backend: MathBackendCPU, rows: tf.TensorInfo, index: tf.TensorInfo,
  numRows: number, outShape: number[]): tf.TensorInfo {
  const idx = cpuValues(backend, index) as Int32Array;
  const values = cpuValues(backend, rows) as NumericArray;
  const out = rows.dtype === 'int32' ? new Int32Array(sizeOf(outShape)) : new Float32Array(sizeOf(outShape));
  scatterAddInto(out, values, idx, scatterWidth(rows.shape, idx.length, outShape), numRows);
  return backend.makeTensorInfo(outShape, rows.dtype, out);
}

function scatterAddRowsCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const rows = kernelInput(OP, args.inputs, 'rows');
  const index = kernelInput(OP, args.inputs, 'index');
  const numRows = args.attrs?.numRows as number;
  assertIndicesInRange(OP, 'index', cpuValues(backend, index) as Int32Array, numRows);
  const width = rows.shape[rows.shape.length - 1];
  return scatterAddCpu(backend, rows, index, numRows, [numRows, width]);
}

export const scatterAddRowsCpuConfig: tf.KernelConfig = { kernelName: SCATTER_ADD_ROWS, backendName: 'cpu', kernelFunc: scatterAddRowsCpu as tf.KernelFunc };
