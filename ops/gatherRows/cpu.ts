// CPU kernels for gatherRows and its backward pass, plus the array routines the wasm kernels
// reuse on heap views.
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { GATHER_ROWS, GATHER_ROWS_GATE_GRAD, GATHER_ROWS_TABLE_GRAD, GATHER_ROWS_TAIL_GRAD } from '../kernelNames';
import { scatterAddInto } from '../scatterAddRows/cpu';
import { cpuValues as backendValues } from '../util/tfjsInternals';
import { assertIndicesInRange, kernelInput, sizeOf } from '../util/validate';

const OP = 'gatherRows';

/** A user-specific tail joined after each gathered row: [positions, width] values. */
export interface RowTail { values: Float32Array; width: number }

/** Rows at least this wide are copied with TypedArray.set (a memcpy, 3-7x faster than a loop at width 255). */
const BLOCK_COPY_WIDTH = 16;

/**
 * out[p, :width] = gate[p] * table[index[p], :] (gate absent: a plain copy) and
 * out[p, width:] = tail[p, :]. Indices must already be checked; row-major inner loops.
 */
export function gatherRowsInto(table: Float32Array, width: number, index: Int32Array,
  gate: Float32Array | null, out: Float32Array, tail: RowTail | null = null): void {
  const tailWidth = tail?.width ?? 0;
  const stride = width + tailWidth;
  for (let p = 0, dst = 0; p < index.length; p++, dst += stride) {
    const src = index[p] * width;
    // A gate of exactly 1 (the ones a taped call passes for "no gate") copies: 1 * v is v.
    const g = gate == null ? 1 : gate[p];
    if (g === 1 && width >= BLOCK_COPY_WIDTH) {
      out.set(table.subarray(src, src + width), dst);
    } else if (g === 1) {
      for (let k = 0; k < width; k++) out[dst + k] = table[src + k];
    } else {
      for (let k = 0; k < width; k++) out[dst + k] = g * table[src + k];
    }
    if (tail != null) {
      for (let k = 0, t = p * tailWidth; k < tailWidth; k++) out[dst + width + k] = tail.values[t + k];
    }
  }
}

/** out[p] = dot(dy[p, :width], table[index[p], :]) with dy rows `stride` apart: the gate's gradient. */
export function rowDotsInto(dy: Float32Array, stride: number, table: Float32Array, width: number,
  index: Int32Array, out: Float32Array): void {
  for (let p = 0, src = 0; p < index.length; p++, src += stride) {
    const row = index[p] * width;
    let sum = 0;
    for (let k = 0; k < width; k++) sum += dy[src + k] * table[row + k];
    out[p] = sum;
  }
}

/** out[p, :] = dy[p, width:] (dy rows `stride` apart): the tail's gradient, a strided column copy. */
export function tailColumnsInto(dy: Float32Array, stride: number, width: number, out: Float32Array): void {
  const tailWidth = stride - width;
  for (let src = width, dst = 0; dst < out.length; src += stride, dst += tailWidth) {
    for (let k = 0; k < tailWidth; k++) out[dst + k] = dy[src + k];
  }
}

/** Shape of the tail's gradient: dy's, with the tail's width. */
export function tailGradShape(dy: tf.TensorInfo, width: number): number[] {
  return [...dy.shape.slice(0, -1), gradStride(dy) - width];
}

/** The shapes a gatherRows kernel needs, from its inputs. */
export function gatherRowsGeometry(table: tf.TensorInfo, index: tf.TensorInfo, tail: tf.TensorInfo | undefined): {
  numRows: number; width: number; tailWidth: number; outShape: number[];
} {
  const [numRows, width] = table.shape;
  const tailWidth = tail == null ? 0 : tail.shape[tail.shape.length - 1];
  return { numRows, width, tailWidth, outShape: [...index.shape, width + tailWidth] };
}

/** Row stride of dy in a backward kernel: the forward output's width (table width + tail width). */
export function gradStride(dy: tf.TensorInfo): number {
  return dy.shape[dy.shape.length - 1];
}

/** A tensor's values in the cpu backend. */
function cpuValues<T extends Float32Array | Int32Array>(backend: MathBackendCPU, t: tf.TensorInfo): T {
  return backendValues(backend, t) as T;
}

function gatherRowsCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const table = kernelInput(OP, args.inputs, 'table');
  const index = kernelInput(OP, args.inputs, 'index');
  const { gate, tail } = args.inputs;
  const { numRows, width, tailWidth, outShape } = gatherRowsGeometry(table, index, tail);
  const idx = cpuValues<Int32Array>(backend, index);
  assertIndicesInRange(OP, 'index', idx, numRows);
  const out = new Float32Array(sizeOf(outShape));
  const values = (t: tf.TensorInfo) => cpuValues<Float32Array>(backend, t);
  gatherRowsInto(values(table), width, idx, gate == null ? null : values(gate), out,
    tail == null ? null : { values: values(tail), width: tailWidth });
  return backend.makeTensorInfo(outShape, 'float32', out);
}

function tableGradCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const dy = kernelInput(OP, args.inputs, 'dy');
  const index = kernelInput(OP, args.inputs, 'index');
  const gate = kernelInput(OP, args.inputs, 'gate');
  const numRows = args.attrs?.numRows as number;
  const width = args.attrs?.width as number;
  const out = new Float32Array(numRows * width);
  scatterAddInto(out, cpuValues<Float32Array>(backend, dy), cpuValues<Int32Array>(backend, index), width, numRows, gradStride(dy),
    cpuValues<Float32Array>(backend, gate));
  return backend.makeTensorInfo([numRows, width], 'float32', out);
}

function gateGradCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {} }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const dy = kernelInput(OP, args.inputs, 'dy');
  const table = kernelInput(OP, args.inputs, 'table');
  const index = kernelInput(OP, args.inputs, 'index');
  const out = new Float32Array(sizeOf(index.shape));
  rowDotsInto(cpuValues<Float32Array>(backend, dy), gradStride(dy), cpuValues<Float32Array>(backend, table), table.shape[1],
    cpuValues<Int32Array>(backend, index), out);
  return backend.makeTensorInfo(index.shape, 'float32', out);
}

function tailGradCpu(args: { inputs: tf.NamedTensorInfoMap; backend: {}; attrs?: tf.NamedAttrMap }): tf.TensorInfo {
  const backend = args.backend as MathBackendCPU;
  const dy = kernelInput(OP, args.inputs, 'dy');
  const width = args.attrs?.width as number;
  const shape = tailGradShape(dy, width);
  const out = new Float32Array(sizeOf(shape));
  tailColumnsInto(cpuValues<Float32Array>(backend, dy), gradStride(dy), width, out);
  return backend.makeTensorInfo(shape, 'float32', out);
}

export const gatherRowsCpuConfig: tf.KernelConfig = { kernelName: GATHER_ROWS, backendName: 'cpu', kernelFunc: gatherRowsCpu as tf.KernelFunc };
export const gatherRowsTableGradCpuConfig: tf.KernelConfig = { kernelName: GATHER_ROWS_TABLE_GRAD, backendName: 'cpu', kernelFunc: tableGradCpu as tf.KernelFunc };
export const gatherRowsGateGradCpuConfig: tf.KernelConfig = { kernelName: GATHER_ROWS_GATE_GRAD, backendName: 'cpu', kernelFunc: gateGradCpu as tf.KernelFunc };
export const gatherRowsTailGradCpuConfig: tf.KernelConfig = { kernelName: GATHER_ROWS_TAIL_GRAD, backendName: 'cpu', kernelFunc: tailGradCpu as tf.KernelFunc };
