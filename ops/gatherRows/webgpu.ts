// WebGPU kernel for gatherRows: one invocation per output element. Its backward pass runs
// composite ops here (see grad.ts).
import * as tf from '@tensorflow/tfjs-core';
import { GATHER_ROWS } from '../kernelNames';
import {
  checkIndicesIfOnCpu, flatDispatch, FlatProgram, input, nonEmpty, releaseAll, view, WebGPUBackend, webgpuKernelConfig, WebGPUProgram,
} from '../util/webgpu';
const OP = 'gatherRows';

/**
 * out[p, c] = gate[p] * table[index[p], c] for c < width and tail[p, c - width] after, over a
 * [positions, width + tailWidth] output. An index outside
 * [0, numRows) cannot throw on the GPU: it yields a zero row, as tfjs's own webgpu Gather does
 * (a clamp would silently read a plausible but wrong row). checkIndicesIfOnCpu catches bad indices
 * whose values are still on the CPU, and the cpu/wasm kernels always reject them.
 */
export class GatherRowsProgram extends FlatProgram implements WebGPUProgram {
  override dispatchLayout = { x: [0, 1] };
  size = true;
  uniforms = 'numRows : i32, width : i32,';
  private readonly gated: boolean;
  private readonly tailed: boolean;

  constructor(positions: number, width: number, tailWidth: number, gated: boolean) {
    super();
    this.gated = gated;
    this.tailed = tailWidth > 0;
    this.variableNames = ['table', 'rowIndex', ...(gated ? ['gate'] : []), ...(this.tailed ? ['tail'] : [])];
    this.outputShape = [positions, width + tailWidth];
    this.shaderKey = `collectivekvGatherRows_${gated ? 'gated' : 'plain'}_${this.tailed ? 'tail' : 'notail'}`;
    this.dispatch = flatDispatch(positions * (width + tailWidth));
  }

  getUserCode(): string {
    const row = `
          let r = rowIndex[p];
          var v = 0.0;
          if (r >= 0 && r < uniforms.numRows) {
            v = table[r * uniforms.width + c];
          }
          result[index] = ${this.gated ? 'gate[p] * v' : 'v'};`;
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let stride = uniforms.outShape.y;
          let p = index / stride;
          let c = index - p * stride;
          ${this.tailed ? `if (c >= uniforms.width) {
            let tailWidth = stride - uniforms.width;
            result[index] = tail[p * tailWidth + c - uniforms.width];
            return;
          }` : ''}${row}
        }
      }
    `;
  }
}

function gatherRowsWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend }): tf.TensorInfo {
  const { backend } = args;
  const table = input(OP, args.inputs, 'table');
  const index = input(OP, args.inputs, 'index');
  const { gate, tail } = args.inputs;
  const [numRows, width] = table.shape;
  const tailWidth = tail == null ? 0 : tail.shape[tail.shape.length - 1];
  checkIndicesIfOnCpu(backend, OP, 'index', index, numRows);
  const positions = index.shape.reduce((a, b) => a * b, 1);
  const outShape = [...index.shape, width + tailWidth];
  if (positions * (width + tailWidth) === 0) return backend.makeTensorInfo(outShape, 'float32', new Float32Array(0));
  // An empty table (numRows 0) is legal when every index is out of range; it cannot be bound.
  const temps: tf.TensorInfo[] = [];
  const inputs = [nonEmpty(backend, table, temps), view(index, [positions])];
  if (gate != null) inputs.push(view(gate, [positions]));
  if (tail != null && tailWidth > 0) inputs.push(view(tail, [positions * tailWidth]));
  const program = new GatherRowsProgram(positions, width, tailWidth, gate != null);
  const out = backend.runWebGPUProgram(program, inputs, 'float32', [{ type: 'int32', data: [numRows, width] }]);
  releaseAll(backend, temps);
  return view(out, outShape);
}

export const gatherRowsWebGPUConfig = webgpuKernelConfig(GATHER_ROWS, gatherRowsWebGPU);
