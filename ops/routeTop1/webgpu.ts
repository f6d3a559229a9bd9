// WebGPU kernel for routeTop1: argmax over the pool axis (one workgroup per row, shared-memory
// tree reduction) and the sigmoid of the winning logit (one invocation per row).
import * as tf from '@tensorflow/tfjs-core';
import { ROUTE_TOP1 } from '../kernelNames';
import {
  dispatchFor, FlatProgram, input, view, WebGPUBackend, webgpuKernelConfig, WebGPUProgram, WORKGROUP_SIZE,
} from '../util/webgpu';
const OP = 'routeTop1';

/**
 * index[r] = argmax_c logits[r, c], ties to the lowest c (as tf.argMax and the cpu kernel). Each of
 * the 64 invocations of row r's workgroup scans columns tid, tid+64, ...; then a tree reduction in
 * workgroup memory. A candidate at column >= cols is the "nothing seen" sentinel and always loses,
 * so rows of -Infinity still pick column 0. NaN logits give an unspecified (in-range) column.
 */
export class ArgMaxRowsProgram extends FlatProgram implements WebGPUProgram {
  override variableNames = ['logits'];
  override shaderKey = 'collectivekvArgMaxRows';

  constructor(rows: number) {
    super();
    this.outputShape = [rows];
    this.dispatch = dispatchFor(rows);
  }

  getUserCode(): string {
    return `
      var<workgroup> bestValue : array<f32, ${WORKGROUP_SIZE}>;
      var<workgroup> bestCol : array<i32, ${WORKGROUP_SIZE}>;

      fn beats(v : f32, c : i32, bv : f32, bc : i32, cols : i32) -> bool {
        return c < cols && (bc >= cols || v > bv || (v == bv && c < bc));
      }

      fn main(index : i32) {
        let rows = uniforms.logitsShape.x;
        let cols = uniforms.logitsShape.y;
        let row = index / ${WORKGROUP_SIZE};
        let tid = index % ${WORKGROUP_SIZE};
        // Padding workgroups of a folded dispatch read row rows-1 and write nothing.
        let base = min(row, rows - 1) * cols;
        var bv = 0.0;
        var bc = cols;
        for (var c = tid; c < cols; c += ${WORKGROUP_SIZE}) {
          let v = logits[base + c];
          if (beats(v, c, bv, bc, cols)) { bv = v; bc = c; }
        }
        bestValue[tid] = bv;
        bestCol[tid] = bc;
        workgroupBarrier();
        for (var stride = ${WORKGROUP_SIZE / 2}; stride > 0; stride = stride / 2) {
          if (tid < stride) {
            let v = bestValue[tid + stride];
            let c = bestCol[tid + stride];
            if (beats(v, c, bestValue[tid], bestCol[tid], cols)) {
              bestValue[tid] = v;
              bestCol[tid] = c;
            }
          }
          workgroupBarrier();
        }
        if (tid == 0 && row < rows) {
          result[row] = bestCol[0];
        }
      }
    `;
  }
}

/** gate[r] = sigmoid(logits[r, index[r]]), the same formula as tf.sigmoid on webgpu. */
export class WinnerSigmoidProgram extends FlatProgram implements WebGPUProgram {
  override variableNames = ['logits', 'winner'];
  override shaderKey = 'collectivekvWinnerSigmoid';
  size = true;

  constructor(rows: number) {
    super(rows);
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          let cols = uniforms.logitsShape.y;
          let v = logits[index * cols + winner[index]];
          result[index] = 1.0 / (1.0 + exp(-v));
        }
      }
    `;
  }
}

function routeTop1WebGPU(args: { inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend }): tf.TensorInfo[] {
  const { backend } = args;
  const logits = input(OP, args.inputs, 'logits');
  const outShape = logits.shape.slice(0, -1);
  const cols = logits.shape[logits.shape.length - 1];
  if (cols < 1) throw new Error(`${OP}: the pool axis of logits is empty (shape [${logits.shape.join(', ')}])`);
  const rows = outShape.reduce((a, b) => a * b, 1);
  const flat = view(logits, [rows, cols]);
  const index = backend.runWebGPUProgram(new ArgMaxRowsProgram(rows), [flat], 'int32');
  const gate = backend.runWebGPUProgram(new WinnerSigmoidProgram(rows), [flat, index], 'float32');
  // Outputs own their buffers; reshaping them to the logits' leading shape is only new metadata.
  return [view(index, outShape), view(gate, outShape)];
}

export const routeTop1WebGPUConfig = webgpuKernelConfig(ROUTE_TOP1, routeTop1WebGPU);
