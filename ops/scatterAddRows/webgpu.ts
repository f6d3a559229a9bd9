// WebGPU kernel for scatterAddRows (the gradient of gatherRows): zero-fill, then a float atomic add
// per input element.
import * as tf from '@tensorflow/tfjs-core';
import { SCATTER_ADD_ROWS } from '../kernelNames';
import {
  checkIndicesIfOnCpu, flatDispatch, FlatProgram, input, view, WebGPUBackend, webgpuKernelConfig, WebGPUProgram,
} from '../util/webgpu';
const OP = 'scatterAddRows';

/** Writes 0 to every output element: the accumulator the scatter adds into (pooled buffers are dirty). */
export class ZeroFillProgram extends FlatProgram implements WebGPUProgram {
  override variableNames: string[] = [];
  override shaderKey = 'collectivekvZeroFill';
  size = true;

  constructor(size: number) {
    super(size);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          result[index] = 0.0;
        }
      }
    `;
  }
}

/**
 * out[index[p], c] += rows[p, c], one invocation per input element (p, c).
 *
 * Why atomics: WGSL atomics are integer only, so a float add is a compare-and-swap loop on the
 * value's bit pattern (the output buffer is declared atomic<i32>; we bitcast). Work is
 * O(positions * width) and invocations only contend where indices repeat. The alternative without
 * atomics, one invocation per output (row, column) looping over all positions whose index equals
 * the row, costs O(numRows * positions * width): for a 4096-row pool and a few thousand positions
 * that is thousands of times more reads. The price is a run-to-run summation order, so duplicate
 * rows may differ in the last bits between runs; gradients do not care.
 *
 * An index outside [0, numRows) is skipped (it contributes nothing), consistent with gatherRows
 * reading a zero row for it; see checkIndicesIfOnCpu for when it throws instead.
 */
export class ScatterAddRowsProgram extends FlatProgram implements WebGPUProgram {
  override variableNames = ['rows', 'rowIndex'];
  override shaderKey = 'collectivekvScatterAddRows';
  atomic = true;
  uniforms = 'numRows : i32, width : i32, inputSize : i32,';

  constructor(numRows: number, width: number, inputSize: number) {
    super();
    this.outputShape = [numRows * width];
    this.dispatch = flatDispatch(inputSize);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.inputSize) {
          let p = index / uniforms.width;
          let c = index - p * uniforms.width;
          let r = rowIndex[p];
          if (r >= 0 && r < uniforms.numRows) {
            let add = rows[index];
            let slot = &result[r * uniforms.width + c];
            var old = atomicLoad(slot);
            loop {
              let swapped = atomicCompareExchangeWeak(slot, old, bitcast<i32>(bitcast<f32>(old) + add));
              if (swapped.exchanged) { break; }
              old = swapped.old_value;
            }
          }
        }
      }
    `;
  }
}

function scatterAddRowsWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: tf.NamedAttrMap }): tf.TensorInfo {
  const { backend } = args;
  const rows = input(OP, args.inputs, 'rows');
  const index = input(OP, args.inputs, 'index');
  const numRows = args.attrs.numRows as number;
  const width = rows.shape[rows.shape.length - 1];
  checkIndicesIfOnCpu(backend, OP, 'index', index, numRows);
  const positions = index.shape.reduce((a, b) => a * b, 1);
  const outSize = numRows * width;
  const out = backend.runWebGPUProgram(new ZeroFillProgram(outSize), [], 'float32');
  if (positions * width > 0) {
    const program = new ScatterAddRowsProgram(numRows, width, positions * width);
    // One entry per scalar: the backend aligns a multi-value entry like a vector, not like i32 fields.
    const uniforms = [numRows, width, positions * width].map((n) => ({ type: 'int32' as const, data: [n] }));
    backend.runWebGPUProgram(program, [view(rows, [positions * width]), view(index, [positions])], 'float32', uniforms,
      view(out, [outSize]));
  }
  return view(out, [numRows, width]);
}

export const scatterAddRowsWebGPUConfig = webgpuKernelConfig(SCATTER_ADD_ROWS, scatterAddRowsWebGPU);
