// CPU kernel for gatherRows, plus the array routine the wasm kernel reuses on heap views.
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { assertIndicesInRange, kernelInput } from '../util/validate';

// Equals GATHER_ROWS in ./index. Not imported: index.ts imports this file first, so the constant
// would still be uninitialized (TDZ) when this module registers.
const GATHER_ROWS = 'CollectiveKVGatherRows';
const OP = 'gatherRows';

/**
 * out[p, :] = gate[p] * table[index[p], :] (gate absent: a plain copy). Indices must already be
 * checked; row-major inner loop over the width.
 */
export function gatherRowsInto(table: Float32Array, width: number, index: Int32Array,
  gate: Float32Array | null, out: Float32Array): void {
  for (let p = 0, dst = 0; p < index.length; p++, dst += width) {
    const src = index[p] * width;
    if (gate == null) {
      for (let k = 0; k < width; k++) out[dst + k] = table[src + k];
    } else {
      const g = gate[p];
      for (let k = 0; k < width; k++) out[dst + k] = g * table[src + k];
    }
  }
}

/** The shapes a gatherRows kernel needs, from its inputs. */
export function gatherRowsGeometry(table: tf.TensorInfo, index: tf.TensorInfo): { numRows: number; width: number; outShape: number[] } {
  const [numRows, width] = table.shape;
  return { numRows, width, outShape: [...index.shape, width] };
}

function gatherRowsCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const table = kernelInput(OP, args.inputs, 'table');
  const index = kernelInput(OP, args.inputs, 'index');
  const gate = args.inputs.gate;
  const { numRows, width, outShape } = gatherRowsGeometry(table, index);
  const idx = backend.data.get(index.dataId).values as Int32Array;
  assertIndicesInRange(OP, 'index', idx, numRows);
  const out = new Float32Array(idx.length * width);
  const gateValues = gate == null ? null : backend.data.get(gate.dataId).values as Float32Array;
  gatherRowsInto(backend.data.get(table.dataId).values as Float32Array, width, idx, gateValues, out);
  return backend.makeTensorInfo(outShape, 'float32', out);
}

tf.registerKernel({ kernelName: GATHER_ROWS, backendName: 'cpu', kernelFunc: gatherRowsCpu as tf.KernelFunc });
