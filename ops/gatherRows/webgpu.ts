// WebGPU kernel for gatherRows: one invocation per output element.
import * as tf from '@tensorflow/tfjs-core';
import { checkIndicesIfOnCpu, flatDispatch, input, nonEmpty, registerWebGPUKernel, releaseAll, view, WebGPUBackend, WebGPUProgram, WORKGROUP_SIZE } from '../util/webgpu';

// Equals GATHER_ROWS in ./index; not imported because index.ts imports this file first (TDZ).
const GATHER_ROWS = 'CollectiveKVGatherRows';
const OP = 'gatherRows';

/**
 * out[p, c] = gate[p] * table[index[p], c] over a [positions, width] output. An index outside
 * [0, numRows) cannot throw on the GPU: it yields a zero row, as tfjs's own webgpu Gather does
 * (a clamp would silently read a plausible but wrong row). checkIndicesIfOnCpu catches bad indices
 * whose values are still on the CPU, and the cpu/wasm kernels always reject them.
 */
export class GatherRowsProgram implements WebGPUProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0, 1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WORKGROUP_SIZE, 1, 1];
  size = true;
  uniforms = 'numRows : i32,';
  private readonly gated: boolean;

  constructor(positions: number, width: number, gated: boolean) {
    this.gated = gated;
    this.variableNames = gated ? ['table', 'rowIndex', 'gate'] : ['table', 'rowIndex'];
    this.outputShape = [positions, width];
    this.shaderKey = `collectivekvGatherRows_${gated ? 'gated' : 'plain'}`;
    this.dispatch = flatDispatch(positions * width);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let width = uniforms.outShape.y;
          let p = index / width;
          let c = index - p * width;
          let r = rowIndex[p];
          var v = 0.0;
          if (r >= 0 && r < uniforms.numRows) {
            v = table[r * width + c];
          }
          result[index] = ${this.gated ? 'gate[p] * v' : 'v'};
        }
      }
    `;
  }
}

function gatherRowsWebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend }): tf.TensorInfo {
  const { backend } = args;
  const table = input(OP, args.inputs, 'table');
  const index = input(OP, args.inputs, 'index');
  const gate = args.inputs.gate;
  const [numRows, width] = table.shape;
  checkIndicesIfOnCpu(backend, OP, 'index', index, numRows);
  const positions = index.shape.reduce((a, b) => a * b, 1);
  const outShape = [...index.shape, width];
  if (positions * width === 0) return backend.makeTensorInfo(outShape, 'float32', new Float32Array(0));
  // An empty table (numRows 0) is legal when every index is out of range; it cannot be bound.
  const temps: tf.TensorInfo[] = [];
  const inputs = [nonEmpty(backend, table, temps), view(index, [positions])];
  if (gate != null) inputs.push(view(gate, [positions]));
  const program = new GatherRowsProgram(positions, width, gate != null);
  const out = backend.runWebGPUProgram(program, inputs, 'float32', [{ type: 'int32', data: [numRows] }]);
  releaseAll(backend, temps);
  return view(out, outShape);
}

registerWebGPUKernel(GATHER_ROWS, gatherRowsWebGPU);
