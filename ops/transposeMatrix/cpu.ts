// CPU kernel for transposeMatrix; its copy routine also serves the wasm kernel on heap views.
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { TRANSPOSE_MATRIX } from '../kernelNames';
import { cpuValues } from '../util/tfjsInternals';
import { kernelInput } from '../util/validate';

const OP = 'transposeMatrix';

/** Square tiles of this side fit both the rows read and the columns written in the L1 cache. */
const TILE = 16;

/** out[c * rows + r] = x[r * cols + c], tile by tile. */
export function transposeInto(x: ArrayLike<number>, out: Float32Array | Int32Array, rows: number, cols: number): void {
  for (let r0 = 0; r0 < rows; r0 += TILE) {
    const r1 = Math.min(rows, r0 + TILE);
    for (let c0 = 0; c0 < cols; c0 += TILE) {
      const c1 = Math.min(cols, c0 + TILE);
      for (let r = r0; r < r1; r++) {
        const src = r * cols;
        for (let c = c0; c < c1; c++) out[c * rows + r] = x[src + c];
      }
    }
  }
}

/** The kernel's input, checked: a float32 or int32 matrix. */
export function transposeInput(inputs: tf.NamedTensorInfoMap): tf.TensorInfo {
  const x = kernelInput(OP, inputs, 'x');
  if (x.shape.length !== 2) throw new Error(`${OP}: x must be a matrix, received shape [${x.shape.join(', ')}]`);
  if (x.dtype !== 'float32' && x.dtype !== 'int32') throw new Error(`${OP}: x must be float32 or int32, received ${x.dtype}`);
  return x;
}

function transposeMatrixCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const x = transposeInput(args.inputs);
  const [rows, cols] = x.shape;
  const out = x.dtype === 'int32' ? new Int32Array(rows * cols) : new Float32Array(rows * cols);
  transposeInto(cpuValues(backend, x) as Float32Array | Int32Array, out, rows, cols);
  return backend.makeTensorInfo([cols, rows], x.dtype, out);
}

export const transposeMatrixCpuConfig: tf.KernelConfig = { kernelName: TRANSPOSE_MATRIX, backendName: 'cpu', kernelFunc: transposeMatrixCpu as tf.KernelFunc };
