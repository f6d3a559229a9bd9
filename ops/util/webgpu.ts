// Shared pieces of the webgpu kernels. The webgpu backend is an optional peer dependency, so it is
// imported for types only: nothing here may load '@tensorflow/tfjs-backend-webgpu' at runtime
// (that would also pull its `webgpu_util`, which we re-implement in the few lines we need).
import * as tf from '@tensorflow/tfjs-core';
import type { WebGPUBackend, WebGPUProgram } from '@tensorflow/tfjs-backend-webgpu';
import { webgpuCpuValues } from './tfjsInternals';
import { assertIndicesInRange } from './validate';

export type { WebGPUBackend, WebGPUProgram };

/** The uniforms a program adds after the backend's own (shapes, strides, size), in declaration order. */
export type ProgramUniforms = Array<{ type: 'int32' | 'float32'; data: number[] }>;

/** Flat (1-D) workgroup size of every program here; 64 is what tfjs's own flat kernels use. */
export const WORKGROUP_SIZE = 64;

/**
 * Dispatch for `groups` workgroups, laid out flat. When that exceeds the device's per-dimension
 * limit the backend folds it into x*y (or x*y*z) before running; shaders read the linear index
 * through the backend's getGlobalIndex(), which undoes the fold, and guard against the padding
 * groups a fold adds.
 */
/**
 * The fields tfjs's WebGPUProgram asks of every program here, with their common values: a 1-D
 * dispatch of WORKGROUP_SIZE invocations, one per output element when built with `outputSize`.
 * Subclasses set names and key (and shape and dispatch when they differ).
 */
export abstract class FlatProgram {
  variableNames: string[] = [];
  outputShape: number[] = [];
  shaderKey = '';
  dispatchLayout: { x: number[] } = { x: [0] };
  dispatch: [number, number, number] = [1, 1, 1];
  workgroupSize: [number, number, number] = [WORKGROUP_SIZE, 1, 1];

  constructor(outputSize?: number) {
    if (outputSize !== undefined) {
      this.outputShape = [outputSize];
      this.dispatch = flatDispatch(outputSize);
    }
  }
}

export function dispatchFor(groups: number): [number, number, number] {
  return [Math.max(1, groups), 1, 1];
}

/** Dispatch for one invocation per element of a flat output of `size` elements. */
export function flatDispatch(size: number): [number, number, number] {
  return dispatchFor(Math.ceil(size / WORKGROUP_SIZE));
}

/**
 * A view of `t` with another shape over the same GPU buffer, like the webgpu Reshape kernel but
 * without taking a reference: it is only handed to runWebGPUProgram during this kernel call. We
 * flatten every input to rank <= 2 so shaders index flat arrays and rank never limits the ops.
 */
export function view(t: tf.TensorInfo, shape: number[]): tf.TensorInfo {
  return { dataId: t.dataId, shape, dtype: t.dtype };
}

/** Number of elements of a tensor. */
export function numel(t: tf.TensorInfo): number {
  return t.shape.reduce((a, b) => a * b, 1);
}

/**
 * WebGPU cannot bind a zero-sized buffer, but an op may legally get an empty input (a zero-width
 * user part, an empty history). Kernels pass this one-element stand-in instead and tell the shader
 * the real size through a uniform, so the stand-in is never read. Dispose with `releaseAll`.
 */
export function nonEmpty(backend: WebGPUBackend, t: tf.TensorInfo, temps: tf.TensorInfo[]): tf.TensorInfo {
  if (numel(t) > 0) return t;
  const values = t.dtype === 'float32' ? new Float32Array(1) : new Int32Array(1);
  const stand = backend.makeTensorInfo([1], t.dtype, values);
  temps.push(stand);
  return stand;
}

/** Disposes kernel temporaries; the backend defers the buffer release until queued work is done. */
export function releaseAll(backend: WebGPUBackend, temps: tf.TensorInfo[]): void {
  for (const t of temps) backend.disposeData(t.dataId);
  temps.length = 0;
}

/**
 * A GPU kernel cannot throw on a bad index, and reading indices back would stall the pipeline. But
 * when the index tensor's values still sit on the CPU (the usual case for a cache loaded from a
 * store and not yet uploaded), checking them costs nothing, so we throw the same error as the cpu
 * kernel. Indices already on the GPU (e.g. routeTop1's output, in range by construction) are not
 * checked; the shaders then treat an out-of-range index as a zero row (see each kernel).
 */
export function checkIndicesIfOnCpu(backend: WebGPUBackend, op: string, arg: string, index: tf.TensorInfo, numRows: number): void {
  const values = webgpuCpuValues(backend, index);
  if (values == null) return;
  assertIndicesInRange(op, arg, values as Int32Array, numRows);
}

/** The config of a webgpu kernel (registered by ops/register/webgpu), typed for a WebGPUBackend. */
export function webgpuKernelConfig(kernelName: string, kernelFunc: (args: {
  inputs: tf.NamedTensorInfoMap; backend: WebGPUBackend; attrs: tf.NamedAttrMap;
}) => tf.TensorInfo | tf.TensorInfo[]): tf.KernelConfig {
  return { kernelName, backendName: 'webgpu', kernelFunc: kernelFunc as unknown as tf.KernelFunc };
}

/** A kernel's named input, with an error naming the op when a direct runKernel caller omits it. */
export function input(op: string, inputs: tf.NamedTensorInfoMap, name: string): tf.TensorInfo {
  const t = inputs[name];
  if (t == null) throw new Error(`${op}: missing input '${name}'`);
  return t;
}
